#!/usr/bin/env bash
# S3 backup benchmark: Bulwark against restic 0.18.1's S3 backend, both
# against the same S3 server (versitygw on a scratch directory, loopback).
#
#   bench/backup/s3.sh            # RUNS=3 SIZE=2GiB CHANGED=0.10
#
# The data set is compare.sh's (gendata: a site with version 1 of every
# model, the fine-tune kept aside and moved into the store for the second
# backup). Per run and per tool, in a fresh prefix of one bucket:
#   1. first backup of the site: time, MB/s, bytes sent
#   2. second backup after the fine-tune arrived: time, bytes sent
#   3. restore of the latest snapshot into an empty directory
# Then, for Bulwark, the off-site copy: a local repository holds the
# snapshot of version 1 and the fine-tuned one; version 1 is copied to a
# fresh S3 repository, then the fine-tuned snapshot: its bytes sent against
# the bytes the fine-tune replaced.
# "Bytes sent" is the growth of the prefix's directory on the server (what
# was stored; request overhead is not counted). The tools alternate which
# goes first; the table shows medians over RUNS. Page cache is not dropped:
# both tools read warm files.
#
# Environment:
#   RUNS       runs per tool (default 3)
#   SIZE       data set size (default 2GiB)
#   CHANGED    fraction of tensors the fine-tune replaces (default 0.10)
#   DATA       where the data set is kept (default
#              ~/.cache/bulwark-bench/backup-data-$SIZE, shared with compare.sh)
#   BIN_DIR    where restic 0.18.1 is installed if missing
#              (default ~/.cache/bulwark-bench/bin)
#   VERSITYGW  the versitygw binary (default: PATH, then
#              ~/.cache/bulwark-test/bin/versitygw, installed there if missing)
#   PORT       port of the S3 server on 127.0.0.1 (default 9731)
#   KEEP=1     keep the scratch directory

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

RUNS=${RUNS:-3}
SIZE=${SIZE:-2GiB}
CHANGED=${CHANGED:-0.10}
DATA=${DATA:-$HOME/.cache/bulwark-bench/backup-data-$SIZE}
BIN_DIR=${BIN_DIR:-$HOME/.cache/bulwark-bench/bin}
PORT=${PORT:-9731}
RESTIC_VERSION=0.18.1
PASSWORD=bench-password-not-secret
HOST=bench
BUCKET=bench
export AWS_ACCESS_KEY_ID=benchaccess AWS_SECRET_ACCESS_KEY=bench-secret-not-secret

ensure_restic() {
	RESTIC=$BIN_DIR/restic
	if [[ -x $RESTIC ]] && "$RESTIC" version | grep -q "restic $RESTIC_VERSION "; then return; fi
	log "installing restic $RESTIC_VERSION into $BIN_DIR (takes a few minutes)"
	mkdir -p "$BIN_DIR"
	GOBIN=$BIN_DIR go install "github.com/restic/restic/cmd/restic@v$RESTIC_VERSION" >&2
}

ensure_versitygw() {
	if [[ -n ${VERSITYGW:-} ]]; then return; fi
	if VERSITYGW=$(command -v versitygw); then return; fi
	VERSITYGW=$HOME/.cache/bulwark-test/bin/versitygw
	if [[ -x $VERSITYGW ]]; then return; fi
	local version
	version=$(sed -n 's/^const Version = "\(.*\)"/\1/p' "$REPO/internal/backend/s3/s3test/s3test.go")
	log "installing versitygw $version into $(dirname "$VERSITYGW") (takes a few minutes)"
	GOBIN=$(dirname "$VERSITYGW") go install "github.com/versity/versitygw/cmd/versitygw@$version" >&2
}

start_server() {
	addr_free "127.0.0.1:$PORT"
	S3DIR=$WORK/s3
	mkdir -p "$S3DIR/$BUCKET"
	"$VERSITYGW" --access "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" \
		--port "127.0.0.1:$PORT" posix "$S3DIR" >"$WORK/versitygw.log" 2>&1 &
	PIDS+=($!)
	local deadline=$((SECONDS + 30))
	until curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; do
		if ((SECONDS >= deadline)); then
			echo "versitygw did not answer on 127.0.0.1:$PORT" >&2
			cat "$WORK/versitygw.log" >&2
			return 1
		fi
		sleep 0.05
	done
}

# make_data, tuned_in, tuned_out: as in compare.sh (the data sets are
# interchangeable).
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

dir_bytes() { if [[ -d $1 ]]; then du -sb "$1" | cut -f1; else echo 0; fi; }
restored_bytes() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END{print s+0}'; }
record() { mkdir -p "$WORK/res" && echo "$2" >"$WORK/res/$1"; }

# timed NAME CMD... runs CMD, output to $WORK/log/NAME.*, seconds in
# $WORK/res/NAME.s.
timed() {
	local name=$1 t0 t1
	shift
	mkdir -p "$WORK/log" "$WORK/res"
	t0=$(date +%s.%N)
	if ! "$@" >"$WORK/log/$name.out" 2>"$WORK/log/$name.err"; then
		echo "$name failed: $*" >&2
		tail -20 "$WORK/log/$name.err" >&2
		return 1
	fi
	t1=$(date +%s.%N)
	record "$name.s" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')"
}

# sent NAME PREFIX CMD... times CMD and records the growth of PREFIX on
# the server as NAME.sent.
sent() {
	local name=$1 prefix=$2 before
	shift 2
	before=$(dir_bytes "$S3DIR/$BUCKET/$prefix")
	timed "$name" "$@"
	record "$name.sent" $(($(dir_bytes "$S3DIR/$BUCKET/$prefix") - before))
}

run_tool() {
	local tool=$1 run=$2 prefix=$1-$2 target=$WORK/restore-$1-$2
	local url=s3:http://127.0.0.1:$PORT/$BUCKET/$prefix
	rm -rf "$target"
	tuned_out
	log "run $run: $tool"
	case $tool in
	restic)
		export RESTIC_REPOSITORY=$url RESTIC_PASSWORD=$PASSWORD
		"$RESTIC" init -q >/dev/null
		sent "$tool-$run-backup1" "$prefix" "$RESTIC" backup -q --host "$HOST" "$DATA/site"
		tuned_in
		sent "$tool-$run-backup2" "$prefix" "$RESTIC" backup -q --host "$HOST" "$DATA/site"
		timed "$tool-$run-restore" "$RESTIC" restore -q latest --target "$target"
		;;
	bulwark)
		export BULWARK_REPOSITORY=$url BULWARK_PASSWORD=$PASSWORD
		"$WORK/bin/bulwark" repo init >/dev/null
		sent "$tool-$run-backup1" "$prefix" "$WORK/bin/bulwark" backup --cold --site "$DATA/site" --host "$HOST"
		tuned_in
		sent "$tool-$run-backup2" "$prefix" "$WORK/bin/bulwark" backup --cold --site "$DATA/site" --host "$HOST"
		timed "$tool-$run-restore" "$WORK/bin/bulwark" restore latest --target "$target"
		run_copy "$run"
		;;
	esac
	record "$tool-$run-repo" "$(dir_bytes "$S3DIR/$BUCKET/$prefix")"
	record "$tool-$run-restored" "$(restored_bytes "$target")"
	if ((run == 1)); then check_restore "$tool" "$target"; fi
	tuned_out
	rm -rf "$target"
	rm -rf "${S3DIR:?}/$BUCKET/$prefix"
}

# make_local_repo backs version 1 and the fine-tune up into a local
# repository once, the source of the off-site copies.
make_local_repo() {
	LOCAL=$WORK/local-repo
	tuned_out
	log "local repository: version 1 and the fine-tune"
	BULWARK_REPOSITORY=$LOCAL BULWARK_PASSWORD=$PASSWORD "$WORK/bin/bulwark" repo init >/dev/null
	SNAP1=$(BULWARK_REPOSITORY=$LOCAL BULWARK_PASSWORD=$PASSWORD "$WORK/bin/bulwark" --json backup --cold --site "$DATA/site" --host "$HOST" | jq -r .id)
	tuned_in
	SNAP2=$(BULWARK_REPOSITORY=$LOCAL BULWARK_PASSWORD=$PASSWORD "$WORK/bin/bulwark" --json backup --cold --site "$DATA/site" --host "$HOST" | jq -r .id)
	tuned_out
}

# run_copy copies version 1, then the fine-tuned snapshot, from the local
# repository to a fresh off-site repository on the server.
run_copy() {
	local run=$1 prefix=offsite-$1
	local url=s3:http://127.0.0.1:$PORT/$BUCKET/$prefix
	BULWARK_REPOSITORY=$url BULWARK_PASSWORD=$PASSWORD "$WORK/bin/bulwark" repo init >/dev/null
	export BULWARK_FROM_PASSWORD=$PASSWORD
	sent "copy-$run-v1" "$prefix" "$WORK/bin/bulwark" copy --from "$LOCAL" --to "$url" "$SNAP1"
	sent "copy-$run-tuned" "$prefix" "$WORK/bin/bulwark" copy --from "$LOCAL" --to "$url" "$SNAP2"
	rm -rf "${S3DIR:?}/$BUCKET/$prefix"
}

check_restore() {
	local tool=$1 target=$2 models
	models=$(find "$target" -type d -name models -print -quit)
	if [[ -z $models ]] || ! diff -rq "$DATA/site/models" "$models" >&2; then
		echo "$tool: the restored models differ from the originals" >&2
		return 1
	fi
	log "$tool: restored models are identical to the originals"
}

median() {
	local r
	for r in $(seq 1 "$RUNS"); do cat "$WORK/res/$1-$r-$2"; done | sort -g |
		awk '{v[NR]=$1} END{if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
mb() { awk -v b="$1" 'BEGIN{printf "%.1f", b/1e6}'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN{printf "%.0f", b/1e6/s}'; }

table() {
	local base replaced tools=(restic bulwark) t
	base=$(dir_bytes "$DATA/site/models")
	replaced=$(cat "$DATA/replaced_bytes")
	echo
	echo "Data set: $(mb "$base") MB of model files (version 1), fine-tune replaces $(mb "$replaced") MB of tensors; S3 server: versitygw (posix) on loopback; medians of $RUNS runs."
	echo "Machine: $(nproc) CPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(go version | cut -d' ' -f3), $(date -u '+%Y-%m-%d')."
	echo
	echo "| metric | restic | bulwark |"
	echo "| --- | ---: | ---: |"
	row() {
		local line="| $1 |" fn=$2
		for t in "${tools[@]}"; do line+=" $($fn "$t") |"; done
		echo "$line"
	}
	_b1s() { median "$1" backup1.s; }
	_b1r() { rate "$base" "$(median "$1" backup1.s)"; }
	_b1b() { mb "$(median "$1" backup1.sent)"; }
	_b2s() { median "$1" backup2.s; }
	_b2b() { mb "$(median "$1" backup2.sent)"; }
	_b2x() { awk -v b="$(median "$1" backup2.sent)" -v r="$replaced" 'BEGIN{printf "%.2f×", b/r}'; }
	_rs() { median "$1" restore.s; }
	_rr() { rate "$(median "$1" restored)" "$(median "$1" restore.s)"; }
	_repo() { mb "$(median "$1" repo)"; }
	row "first backup, s" _b1s
	row "first backup, MB/s" _b1r
	row "first backup, MB sent" _b1b
	row "fine-tune backup, s" _b2s
	row "fine-tune backup, MB sent" _b2b
	row "fine-tune backup, sent / replaced" _b2x
	row "restore ($(mb "$(median bulwark restored)") MB), s" _rs
	row "restore, MB/s" _rr
	row "bucket size after both backups, MB" _repo
	echo
	echo "Off-site copy (bulwark copy, local repository → S3 repository holding version 1):"
	echo
	echo "| metric | bulwark |"
	echo "| --- | ---: |"
	echo "| copy of version 1, s | $(median copy v1.s) |"
	echo "| copy of version 1, MB sent | $(mb "$(median copy v1.sent)") |"
	echo "| copy of the fine-tune, s | $(median copy tuned.s) |"
	echo "| copy of the fine-tune, MB sent | $(mb "$(median copy tuned.sent)") |"
	echo "| bytes changed by the fine-tune, MB | $(mb "$replaced") |"
	echo "| sent / changed | $(awk -v b="$(median copy tuned.sent)" -v r="$replaced" 'BEGIN{printf "%.2f×", b/r}') |"
}

main() {
	build_tools bench/backup/gendata
	ensure_restic
	ensure_versitygw
	make_data
	trap 'tuned_out; cleanup' EXIT
	start_server
	make_local_repo
	local run order
	for run in $(seq 1 "$RUNS"); do
		order=(restic bulwark)
		if ((run % 2 == 0)); then order=(bulwark restic); fi
		for t in "${order[@]}"; do run_tool "$t" "$run"; done
	done
	table
}

main
