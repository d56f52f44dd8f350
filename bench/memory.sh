#!/usr/bin/env bash
# Resident memory of a bulwark node serving one model: after load, the peak
# while loading, after 10,000 and after 100,000 inference requests, and the
# peak over the whole run, for the sample model and for a generated ~36 MB
# MLP (bench/bigmodel).
#
#   bench/memory.sh                 # both models
#   MODELS=sample bench/memory.sh   # only the sample model
#   MODELS=big GOMEMLIMIT=off bench/memory.sh
#                                   # without the node's automatic memory limit
#                                   # (the node leaves the limit to GOMEMLIMIT when set)
#
# Environment: MODELS ("sample big"), NODE_ADDR (127.0.0.1:18100),
# CONCURRENCY (8 client connections), KEEP=1 keeps the scratch directory.
#
# The node runs under GNU time (`/usr/bin/time -v`, Debian package "time",
# installed with apt-get when missing). RSS readings are VmRSS from
# /proc/PID/status of the node; the load peak is VmHWM (the high-water mark
# of RSS) read as soon as the node is ready, before any request; the peak is
# time's "Maximum resident set size" after SIGTERM. The bound checked is
#   RSS <= 2 × model file size + 50 MB   (1 MB = 10^6 bytes)
# for every reading, the load peak and the peak, and "no growth" means RSS after 100k
# requests is at most 5 MB above RSS after 10k requests.
#
# Prints one JSON object per model on stdout; progress goes to stderr.
source "$(dirname "$0")/lib.sh"

MODELS=${MODELS:-sample big}
NODE_ADDR=${NODE_ADDR:-127.0.0.1:18100}
CONCURRENCY=${CONCURRENCY:-8}
GROWTH_LIMIT_KB=5000

if [[ ! -x /usr/bin/time ]]; then
	log "installing GNU time"
	apt-get update -qq >&2 && apt-get install -y -qq time >&2
fi

log "building bulwark, reqloop and bigmodel"
build_tools bench/reqloop bench/bigmodel
BIN=$WORK/bin

vmrss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
vmhwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# big_body prints an infer request for the bigmodel MLP: FP32 [1,256].
big_body() {
	local i vals=()
	for ((i = 0; i < 256; i++)); do
		vals+=("$(( (i * 37) % 200 - 100 )).5")
	done
	printf '{"id":"mem","inputs":[{"name":"input","datatype":"FP32","shape":[1,256],"data":[%s]}]}' "$(IFS=,; echo "${vals[*]}")"
}

measure() {
	local name=$1 file=$2 body=$3
	local site=$WORK/site-$name timefile=$WORK/time-$name.txt
	local size url
	size=$(stat -c %s "$file")
	new_site "$site" "$name" "$file"
	url="http://$NODE_ADDR/v2/models/$name/infer"

	addr_free "$NODE_ADDR"
	/usr/bin/time -v -o "$timefile" "$BIN/bulwark" --site "$site" --log-level warn node --listen "$NODE_ADDR" 2>"$WORK/node-$name.log" &
	local time_pid=$! node_pid=""
	PIDS+=("$time_pid")
	local deadline=$((SECONDS + 30))
	until node_pid=$(pgrep -P "$time_pid"); do
		((SECONDS < deadline)) || { echo "bulwark did not start under time" >&2; return 1; }
		sleep 0.01
	done
	PIDS+=("$node_pid")
	wait_ready "$node_pid" "http://$NODE_ADDR/v2/health/ready"
	local rss_load hwm_load rss_10k rss_100k hwm
	rss_load=$(vmrss_kb "$node_pid")
	hwm_load=$(vmhwm_kb "$node_pid")
	log "$name: file $size bytes, node pid $node_pid ready, VmRSS ${rss_load} kB, VmHWM ${hwm_load} kB"

	"$BIN/reqloop" -url "$url" -body "$body" -n 10000 -concurrency "$CONCURRENCY" >"$WORK/loop1-$name.json"
	rss_10k=$(vmrss_kb "$node_pid")
	log "$name: after 10k requests ($(cat "$WORK/loop1-$name.json")) VmRSS ${rss_10k} kB"
	"$BIN/reqloop" -url "$url" -body "$body" -n 90000 -concurrency "$CONCURRENCY" >"$WORK/loop2-$name.json"
	rss_100k=$(vmrss_kb "$node_pid")
	hwm=$(vmhwm_kb "$node_pid")
	log "$name: after 100k requests ($(cat "$WORK/loop2-$name.json")) VmRSS ${rss_100k} kB, VmHWM ${hwm} kB"

	kill -TERM "$node_pid"
	local rc=0
	wait "$time_pid" || rc=$?
	PIDS=()
	[[ $rc == 0 ]] || { echo "node exited with status $rc; time output:" >&2; cat "$timefile" >&2; return 1; }
	local peak
	peak=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$timefile")

	local bound_kb=$(( (2 * size + 50000000) / 1000 ))
	local ok_bound=true ok_growth=true v
	for v in "$rss_load" "$hwm_load" "$rss_10k" "$rss_100k" "$peak"; do
		(( v * 1024 <= bound_kb * 1000 )) || ok_bound=false
	done
	(( rss_100k - rss_10k <= GROWTH_LIMIT_KB )) || ok_growth=false
	mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb * 1024 / 1e6 }'; }
	printf '{"model":"%s","file_bytes":%d,"file_mb":%s,"bound_mb":%s,"rss_after_load_mb":%s,"load_peak_mb":%s,"rss_after_10k_mb":%s,"rss_after_100k_mb":%s,"growth_10k_to_100k_mb":%s,"vmhwm_mb":%s,"peak_rss_mb":%s,"within_bound":%s,"no_growth":%s}\n' \
		"$name" "$size" "$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1e6 }')" "$(awk -v k="$bound_kb" 'BEGIN { printf "%.1f", k / 1e3 }')" \
		"$(mb "$rss_load")" "$(mb "$hwm_load")" "$(mb "$rss_10k")" "$(mb "$rss_100k")" "$(mb $((rss_100k - rss_10k)))" "$(mb "$hwm")" "$(mb "$peak")" \
		"$ok_bound" "$ok_growth"
}

for model in $MODELS; do
	case $model in
	sample)
		"$BIN/bulwark" sample -o "$WORK/iris.onnx" >&2
		sample_body 1 >"$WORK/iris.json"
		measure iris "$WORK/iris.onnx" "$WORK/iris.json"
		;;
	big)
		"$BIN/bigmodel" -o "$WORK/big.onnx" >&2
		big_body >"$WORK/big.json"
		measure big "$WORK/big.onnx" "$WORK/big.json"
		;;
	*)
		echo "unknown model $model (sample or big)" >&2
		exit 2
		;;
	esac
done
