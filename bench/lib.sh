# Shared helpers for the bench/*.sh scripts; source it, do not run it.
# Every server these scripts start listens on 127.0.0.1 only.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

# WORK is the scratch directory (binaries, site, bodies, logs); removed on exit
# unless KEEP=1.
WORK=$(mktemp -d -t bulwark-bench.XXXXXX)
PIDS=()

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [[ "${KEEP:-0}" == 1 ]]; then
		echo "kept $WORK" >&2
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# build_tools PKG... builds ./cmd/bulwark and the given bench packages into
# $WORK/bin.
build_tools() {
	mkdir -p "$WORK/bin"
	(cd "$REPO" && go build -o "$WORK/bin/bulwark" ./cmd/bulwark)
	local p
	for p in "$@"; do
		(cd "$REPO" && go build -o "$WORK/bin/$(basename "$p")" "./$p")
	done
}

# new_site DIR NAME FILE creates a site and pushes FILE as model NAME.
new_site() {
	"$WORK/bin/bulwark" --site "$1" model push "$2" "$3" >&2
}

# addr_free ADDR fails if something already answers on ADDR.
addr_free() {
	if curl -s -o /dev/null --max-time 1 "http://$1/"; then
		echo "something is already listening on $1; set another address" >&2
		return 1
	fi
}

# wait_ready PID URL [TIMEOUT_S] polls URL until it answers 200, failing
# early if PID exits.
wait_ready() {
	local pid=$1 url=$2 timeout=${3:-120}
	local deadline=$((SECONDS + timeout))
	until curl -sf -o /dev/null --max-time 2 "$url"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "process $pid exited before $url answered" >&2
			return 1
		fi
		if ((SECONDS >= deadline)); then
			echo "$url not ready after ${timeout}s" >&2
			return 1
		fi
		sleep 0.05
	done
}

# wait_post PID URL BODYFILE [TIMEOUT_S] polls URL with a POST of BODYFILE
# until it answers 200.
wait_post() {
	local pid=$1 url=$2 body=$3 timeout=${4:-60}
	local deadline=$((SECONDS + timeout))
	until curl -sf -o /dev/null --max-time 2 -H 'Content-Type: application/json' --data-binary "@$body" "$url"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "process $pid exited before $url answered" >&2
			return 1
		fi
		if ((SECONDS >= deadline)); then
			echo "$url not ready after ${timeout}s" >&2
			return 1
		fi
		sleep 0.05
	done
}

# stop PID sends SIGTERM and waits for the process; prints its exit status.
stop() {
	local pid=$1 rc=0
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" || rc=$?
	local p keep=()
	for p in "${PIDS[@]}"; do
		[[ "$p" == "$pid" ]] || keep+=("$p")
	done
	PIDS=("${keep[@]+"${keep[@]}"}")
	return "$rc"
}

# sample_body BATCH prints an infer request for the sample model ("iris",
# input "input", FP32 [BATCH,4]) built from the typical row of each species.
sample_body() {
	local batch=$1 i rows=() ex=("5.006,3.428,1.462,0.246" "5.936,2.77,4.26,1.326" "6.588,2.974,5.552,2.026")
	for ((i = 0; i < batch; i++)); do
		rows+=("[${ex[i % 3]}]")
	done
	local data
	data=$(IFS=,; echo "${rows[*]}")
	printf '{"id":"load","inputs":[{"name":"input","datatype":"FP32","shape":[%d,4],"data":[%s]}]}' "$batch" "$data"
}
