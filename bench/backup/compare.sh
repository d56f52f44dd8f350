#!/usr/bin/env bash
# Backup benchmark: Bulwark against restic 0.18.1 on the same model
# artifacts and the same disk.
#
#   bench/backup/compare.sh            # RUNS=3 SIZE=2GiB CHANGED=0.10
#
# The data set (gendata) is a site whose model store holds version 1 of an
# LLM in sharded safetensors, a BERT-like encoder and ONNX classifiers; the
# fine-tune (version 2 of each model, CHANGED of the tensors replaced) is
# kept aside and moved into the store between the two backups, so both
# tools see one directory grow by a fine-tuned version, as a site does.
# Per run and per tool, in a fresh repository:
#   1. first backup of the site (version 1 of every model)
#   2. second backup after the fine-tune arrived: time and bytes added
#   3. restore of the latest snapshot into an empty directory
# The tools alternate which goes first; the table shows medians over RUNS.
# Wall time and peak RSS come from GNU time. Page cache is not dropped (it
# would disturb everyone else on a shared machine): both tools read warm
# files. restic does not fsync restored files, Bulwark does; the restore
# rows give each tool's time and, for comparison, the time with a sync
# afterwards.
#
# Environment:
#   RUNS      runs per tool (default 3)
#   SIZE      data set size (default 2GiB)
#   CHANGED   fraction of tensors the fine-tune replaces (default 0.10)
#   DATA      where the data set is kept between invocations
#             (default ~/.cache/bulwark-bench/backup-data-$SIZE)
#   BIN_DIR   where restic 0.18.1 is installed if missing
#             (default ~/.cache/bulwark-bench/bin)
#   TOOLS     tools to run (default "restic bulwark"; bulwark is skipped
#             with a note if the CLI cannot back up yet)
#   KEEP=1    keep the scratch directory (repositories, restores)

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RUNS=${RUNS:-3}
SIZE=${SIZE:-2GiB}
CHANGED=${CHANGED:-0.10}
DATA=${DATA:-$HOME/.cache/bulwark-bench/backup-data-$SIZE}
BIN_DIR=${BIN_DIR:-$HOME/.cache/bulwark-bench/bin}
TOOLS=${TOOLS:-restic bulwark}
RESTIC_VERSION=0.18.1
PASSWORD=bench-password-not-secret
HOST=bench

ensure_gnu_time() {
	if [[ -x /usr/bin/time ]] && /usr/bin/time -v true >/dev/null 2>&1; then return; fi
	log "GNU time missing: installing it with apt-get"
	local sudo=""
	((EUID == 0)) || sudo=sudo
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq time >&2
}

ensure_restic() {
	RESTIC=$BIN_DIR/restic
	if [[ -x $RESTIC ]] && "$RESTIC" version | grep -q "restic $RESTIC_VERSION "; then return; fi
	log "installing restic $RESTIC_VERSION into $BIN_DIR (takes a few minutes)"
	mkdir -p "$BIN_DIR"
	GOBIN=$BIN_DIR go install "github.com/restic/restic/cmd/restic@v$RESTIC_VERSION" >&2
}

# bulwark_ready tells whether the CLI has the backup commands yet.
bulwark_ready() {
	[[ -x $WORK/bin/bulwark ]] && "$WORK/bin/bulwark" backup --help >/dev/null 2>&1 &&
		"$WORK/bin/bulwark" restore --help >/dev/null 2>&1
}

# make_data generates the site and the fine-tune once, and keeps the
# fine-tuned versions outside the store under $DATA/tuned.
make_data() {
	if [[ -f $DATA/ready ]]; then return; fi
	rm -rf "$DATA"
	mkdir -p "$DATA"
	log "generating $SIZE of model artifacts in $DATA"
	"$WORK/bin/gendata" -out "$DATA/site" -size "$SIZE" >&2
	"$WORK/bin/gendata" -finetune-of "$DATA/site" -changed "$CHANGED" | tee "$DATA/finetune.log" >&2
	awk '/^replaced_bytes/{print $2}' "$DATA/finetune.log" >"$DATA/replaced_bytes"
	local m
	for m in "$DATA"/site/models/*/; do
		m=$(basename "$m")
		mkdir -p "$DATA/tuned/$m"
		mv "$DATA/site/models/$m/2" "$DATA/tuned/$m/2"
	done
	touch "$DATA/ready"
}

# tuned_in / tuned_out move the fine-tuned versions into the store and out
# again (renames on one file system: the files keep their inodes).
tuned_in() {
	local m
	for m in "$DATA"/tuned/*/; do
		m=$(basename "$m")
		mv "$DATA/tuned/$m/2" "$DATA/site/models/$m/2"
	done
}
tuned_out() {
	local m
	for m in "$DATA"/tuned/*/; do
		m=$(basename "$m")
		if [[ -d $DATA/site/models/$m/2 ]]; then mv "$DATA/site/models/$m/2" "$DATA/tuned/$m/2"; fi
	done
}

# timed NAME CMD... runs CMD under GNU time, output to $WORK/log/NAME.*,
# and records seconds and peak RSS (MB) in $WORK/res/NAME.{s,rss}.
timed() {
	local name=$1
	shift
	mkdir -p "$WORK/log" "$WORK/res"
	if ! /usr/bin/time -v -o "$WORK/log/$name.time" "$@" >"$WORK/log/$name.out" 2>"$WORK/log/$name.err"; then
		echo "$name failed: $*" >&2
		tail -20 "$WORK/log/$name.err" >&2
		return 1
	fi
	awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; printf "%.3f\n", s}' \
		"$WORK/log/$name.time" >"$WORK/res/$name.s"
	awk -F': ' '/Maximum resident set size/{printf "%.1f\n", $2/1024}' "$WORK/log/$name.time" >"$WORK/res/$name.rss"
}

dir_bytes() { du -sb "$1" | cut -f1; }

# restored_bytes counts the bytes of regular files under a directory.
restored_bytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END{print s+0}'; }

record() { echo "$2" >"$WORK/res/$1"; }

run_tool() {
	local tool=$1 run=$2
	local repo=$WORK/repo-$tool-$run target=$WORK/restore-$tool-$run
	rm -rf "$repo" "$target"
	tuned_out
	log "run $run: $tool"
	case $tool in
	restic)
		export RESTIC_REPOSITORY=$repo RESTIC_PASSWORD=$PASSWORD
		"$RESTIC" init -q >/dev/null
		timed "$tool-$run-backup1" "$RESTIC" backup -q --host "$HOST" "$DATA/site"
		local before
		before=$(dir_bytes "$repo")
		tuned_in
		timed "$tool-$run-backup2" "$RESTIC" backup -q --host "$HOST" "$DATA/site"
		record "$tool-$run-added" $(($(dir_bytes "$repo") - before))
		timed "$tool-$run-restore" "$RESTIC" restore -q latest --target "$target"
		;;
	bulwark)
		export BULWARK_REPOSITORY=$repo BULWARK_PASSWORD=$PASSWORD
		"$WORK/bin/bulwark" repo init >/dev/null
		timed "$tool-$run-backup1" "$WORK/bin/bulwark" backup --cold --site "$DATA/site" --host "$HOST"
		local before
		before=$(dir_bytes "$repo")
		tuned_in
		timed "$tool-$run-backup2" "$WORK/bin/bulwark" backup --cold --site "$DATA/site" --host "$HOST"
		record "$tool-$run-added" $(($(dir_bytes "$repo") - before))
		timed "$tool-$run-restore" "$WORK/bin/bulwark" restore latest --target "$target"
		;;
	esac
	local t0
	t0=$(date +%s.%N)
	sync
	record "$tool-$run-sync" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.3f", b-a}')"
	record "$tool-$run-repo" "$(dir_bytes "$repo")"
	record "$tool-$run-restored" "$(restored_bytes "$target")"
	if ((run == 1)); then check_restore "$tool" "$target"; fi
	tuned_out
	rm -rf "$target" "$repo"
}

# check_restore compares the restored models with the originals once.
check_restore() {
	local tool=$1 target=$2 models
	models=$(find "$target" -type d -name models -print -quit)
	if [[ -z $models ]] || ! diff -rq "$DATA/site/models" "$models" >&2; then
		echo "$tool: the restored models differ from the originals" >&2
		return 1
	fi
	log "$tool: restored models are identical to the originals"
}

# median TOOL METRIC prints the median over the runs.
median() {
	local r
	for r in $(seq 1 "$RUNS"); do cat "$WORK/res/$1-$r-$2"; done | sort -g |
		awk '{v[NR]=$1} END{if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

table() {
	local base_bytes replaced tools=("$@") t
	base_bytes=$(dir_bytes "$DATA/site/models")
	replaced=$(cat "$DATA/replaced_bytes")
	echo
	echo "Data set: $(awk -v b="$base_bytes" 'BEGIN{printf "%.0f MB", b/1e6}') of model files (version 1), fine-tune replaces $(awk -v b="$replaced" 'BEGIN{printf "%.1f MB", b/1e6}') of tensors; medians of $RUNS runs."
	echo "Machine: $(nproc) CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(go version | cut -d' ' -f3), $(date -u '+%Y-%m-%d')."
	echo
	local header="| metric |" sep="| --- |"
	for t in "${tools[@]}"; do header+=" $t |"; sep+=" ---: |"; done
	echo "$header"
	echo "$sep"
	row() {
		local label=$1 fn=$2 line="| $1 |"
		for t in "${tools[@]}"; do line+=" $($fn "$t") |"; done
		echo "$line"
	}
	restored_mb() { awk -v b="$(median "$1" restored)" 'BEGIN{printf "%.0f", b/1e6}'; }
	row "first backup, s" _b1s
	row "first backup, MB/s" _b1r
	row "first backup, peak RSS MB" _b1m
	row "fine-tune backup, s" _b2s
	row "fine-tune backup, MB added" _b2a
	row "fine-tune backup, added / replaced" _b2x
	row "fine-tune backup, peak RSS MB" _b2m
	row "restore ($(restored_mb "${tools[0]}") MB), s" _rs
	row "restore, MB/s" _rr
	row "restore + sync, MB/s" _rsr
	row "restore, peak RSS MB" _rm
	row "repository size, MB" _repo
}
_b1s() { median "$1" backup1.s; }
_b1r() { awk -v b="$(dir_bytes "$DATA/site/models")" -v s="$(median "$1" backup1.s)" 'BEGIN{printf "%.0f", b/1e6/s}'; }
_b1m() { median "$1" backup1.rss; }
_b2s() { median "$1" backup2.s; }
_b2a() { awk -v b="$(median "$1" added)" 'BEGIN{printf "%.1f", b/1e6}'; }
_b2x() { awk -v b="$(median "$1" added)" -v r="$(cat "$DATA/replaced_bytes")" 'BEGIN{printf "%.2f×", b/r}'; }
_b2m() { median "$1" backup2.rss; }
_rs() { median "$1" restore.s; }
_rr() { awk -v b="$(median "$1" restored)" -v s="$(median "$1" restore.s)" 'BEGIN{printf "%.0f", b/1e6/s}'; }
_rsr() { awk -v b="$(median "$1" restored)" -v s="$(median "$1" restore.s)" -v y="$(median "$1" sync)" 'BEGIN{printf "%.0f", b/1e6/(s+y)}'; }
_rm() { median "$1" restore.rss; }
_repo() { awk -v b="$(median "$1" repo)" 'BEGIN{printf "%.0f", b/1e6}'; }

main() {
	ensure_gnu_time
	mkdir -p "$WORK/bin"
	(cd "$REPO" && go build -o "$WORK/bin/gendata" ./bench/backup/gendata)
	local tools=() t
	for t in $TOOLS; do
		case $t in
		restic)
			ensure_restic
			tools+=(restic)
			;;
		bulwark)
			if (cd "$REPO" && go build -o "$WORK/bin/bulwark" ./cmd/bulwark) 2>"$WORK/build.err" && bulwark_ready; then
				tools+=(bulwark)
			else
				log "bulwark CLI cannot back up yet (build or command missing): skipping it"
				cat "$WORK/build.err" >&2
			fi
			;;
		*)
			echo "unknown tool $t" >&2
			exit 2
			;;
		esac
	done
	((${#tools[@]} > 0)) || { echo "no tool to run" >&2; exit 1; }
	make_data
	trap 'tuned_out; cleanup' EXIT
	local run i order
	for run in $(seq 1 "$RUNS"); do
		order=("${tools[@]}")
		if ((run % 2 == 0)); then # alternate who goes first
			order=()
			for ((i = ${#tools[@]} - 1; i >= 0; i--)); do order+=("${tools[i]}"); done
		fi
		for t in "${order[@]}"; do run_tool "$t" "$run"; done
	done
	table "${tools[@]}"
}

main
