#!/usr/bin/env bash
# Side-by-side load test: a bulwark node serving the sample model against
# bench/oipload's bare net/http handler, both on loopback, alternating runs.
#
#   bench/load.sh                       # batch 1, 5 runs of 10s per target
#   BATCHES="1 8" RUNS=7 bench/load.sh  # also batch 8, 7 runs each
#
# Environment: BATCHES (default "1"), RUNS (5), DURATION (10s),
# CONCURRENCY (16), NODE_ADDR (127.0.0.1:18000), BARE_ADDR
# (127.0.0.1:18090), KEEP=1 keeps the scratch directory.
#
# Prints on stdout a JSON array with, per batch size, oipload's summary:
# median throughput (successful requests/s), p50 and p99 latency (ms) of
# each target over the runs, and the node/bare throughput ratio. Progress
# and per-run lines go to stderr.
source "$(dirname "$0")/lib.sh"

BATCHES=${BATCHES:-1}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
NODE_ADDR=${NODE_ADDR:-127.0.0.1:18000}
BARE_ADDR=${BARE_ADDR:-127.0.0.1:18090}

log "building bulwark and oipload"
build_tools bench/oipload
BIN=$WORK/bin

"$BIN/bulwark" sample -o "$WORK/iris.onnx" >&2
new_site "$WORK/site" iris "$WORK/iris.onnx"

addr_free "$NODE_ADDR"
addr_free "$BARE_ADDR"
"$BIN/bulwark" --site "$WORK/site" --log-level warn node --listen "$NODE_ADDR" 2>"$WORK/node.log" &
NODE_PID=$!
PIDS+=("$NODE_PID")
"$BIN/oipload" bare -listen "$BARE_ADDR" 2>"$WORK/bare.log" &
BARE_PID=$!
PIDS+=("$BARE_PID")

sample_body 1 >"$WORK/probe.json"
wait_ready "$NODE_PID" "http://$NODE_ADDR/v2/health/ready"
wait_post "$BARE_PID" "http://$BARE_ADDR/v2/models/iris/infer" "$WORK/probe.json"
log "node (pid $NODE_PID) on $NODE_ADDR and bare handler (pid $BARE_PID) on $BARE_ADDR are ready"

echo "["
first=1
for batch in $BATCHES; do
	sample_body "$batch" >"$WORK/body$batch.json"
	# Both must answer this body with 200 before we time them.
	wait_post "$NODE_PID" "http://$NODE_ADDR/v2/models/iris/infer" "$WORK/body$batch.json" 10
	wait_post "$BARE_PID" "http://$BARE_ADDR/v2/models/iris/infer" "$WORK/body$batch.json" 10
	log "batch $batch: $RUNS runs of $DURATION per target at concurrency $CONCURRENCY, alternating"
	((first)) || echo ","
	first=0
	printf '{"batch": %d, "summary":\n' "$batch"
	"$BIN/oipload" attack \
		-name "node=http://$NODE_ADDR/v2/models/iris/infer" \
		-name "bare=http://$BARE_ADDR/v2/models/iris/infer" \
		-body "$WORK/body$batch.json" -concurrency "$CONCURRENCY" -duration "$DURATION" -runs "$RUNS"
	echo "}"
done
echo "]"

stop "$NODE_PID"
stop "$BARE_PID" || true # the bare handler dies of SIGTERM
