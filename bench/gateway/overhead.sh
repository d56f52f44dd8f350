#!/usr/bin/env bash
# Gateway overhead: the same load straight to a node, through the Bulwark
# gateway and through HAProxy, both proxies in front of the SAME node(s),
# alternating run by run, all on loopback.
#
#   bench/gateway/overhead.sh                 # ~8 min
#   RUNS=7 DURATION=15s bench/gateway/overhead.sh
#   PROFILE=1 bench/gateway/overhead.sh       # also a CPU profile of the gateway under load
#
# Phases, each printing a Markdown table on stdout:
#  1. closed loop, CONCURRENCY (16) workers, batch-1 sample model, RUNS (5)
#     runs of DURATION (10s) per target: direct, bulwark, haproxy (1 node);
#  2. open loop at RATE (1000) req/s, same targets: p50 where queueing
#     does not dominate, and the p50 each proxy adds over direct;
#  3. (NODES3=1, default) closed loop with 3 nodes behind each proxy (direct
#     still goes to node 1): on 2 cores the extra nodes add no capacity,
#     this shows the cost of choosing among replicas;
#  4. (PROFILE=1) `go tool pprof -top` of the gateway (bench/gateway/gwprof,
#     the same gateway code with pprof) under phase 1's load.
#
# Bulwark: `bulwark gateway` with default policies (adaptive hedging,
# retries, health checks every 1s). HAProxy (Debian's, installed with
# apt-get if missing): mode http, balance leastconn, http-reuse always,
# health checks every 1s, default nbthread (one per CPU).
# Environment: RUNS, DURATION, CONCURRENCY, RATE, RATE_DURATION (10s),
# NODES3, PROFILE, NODE_PORT (18400), GW_PORT (18500), HA_PORT (18600),
# BATCH (1), BASELINE (path of another bulwark binary: its gateway is added
# to phases 1 and 2 as "baseline"), KEEP=1 keeps the scratch directory.
source "$(dirname "$0")/common.sh"

RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONCURRENCY=${CONCURRENCY:-16}
RATE=${RATE:-1000}
RATE_DURATION=${RATE_DURATION:-10s}
NODES3=${NODES3:-1}
PROFILE=${PROFILE:-0}

ensure_haproxy
setup
echo "# Gateway overhead"
echo
echo "Machine: $(machine)"
echo

start_node 1
start_gateway gw1 "$GW_PORT" 1
start_haproxy ha1 "$HA_PORT" 1
log "node, gateway and haproxy ready"

DIRECT="direct=$(infer_url $((NODE_PORT + 1)))"
# BASELINE=path/to/another/bulwark adds its gateway as a fourth target, to
# compare two builds of the gateway in the same run.
BASE_T=()
if [[ -n "${BASELINE:-}" ]]; then
	gateway_yaml $((GW_PORT + 30)) 1 >"$WORK/baseline.yaml"
	"$BASELINE" --log-level warn gateway --config "$WORK/baseline.yaml" >/dev/null 2>>"$WORK/baseline.log" &
	PIDS+=("$!")
	wait_ready "$!" "http://127.0.0.1:$((GW_PORT + 30))/v2/health/ready"
	BASE_T=(-name "baseline=$(infer_url $((GW_PORT + 30)))")
fi
attack() {
	"$BIN/oipload" attack -body "$WORK/body.json" -format table "$@"
}

log "phase 1: closed loop, concurrency $CONCURRENCY, $RUNS x $DURATION per target"
attack -title "## 1 node, closed loop" -concurrency "$CONCURRENCY" -duration "$DURATION" -runs "$RUNS" \
	-name "$DIRECT" -name "bulwark=$(infer_url "$GW_PORT")" -name "haproxy=$(infer_url "$HA_PORT")" "${BASE_T[@]}"

log "phase 2: open loop at $RATE req/s, $RUNS x $RATE_DURATION per target"
attack -title "## 1 node, fixed rate" -rate "$RATE" -duration "$RATE_DURATION" -runs "$RUNS" \
	-name "$DIRECT" -name "bulwark=$(infer_url "$GW_PORT")" -name "haproxy=$(infer_url "$HA_PORT")" "${BASE_T[@]}"

if [[ "$NODES3" == 1 ]]; then
	start_node 2
	start_node 3
	start_gateway gw3 $((GW_PORT + 10)) 3
	start_haproxy ha3 $((HA_PORT + 10)) 3
	log "phase 3: 3 nodes behind each proxy, closed loop"
	attack -title "## 3 nodes behind each proxy, closed loop (direct: node 1)" -concurrency "$CONCURRENCY" \
		-duration "$DURATION" -runs "$RUNS" -name "$DIRECT" \
		-name "bulwark3=$(infer_url $((GW_PORT + 10)))" -name "haproxy3=$(infer_url $((HA_PORT + 10)))"
fi

if [[ "$PROFILE" == 1 ]]; then
	port=$((GW_PORT + 20))
	pprof=127.0.0.1:$((GW_PORT + 21))
	gateway_yaml "$port" 1 >"$WORK/gwprof.yaml"
	"$BIN/gwprof" -config "$WORK/gwprof.yaml" -pprof "$pprof" 2>>"$WORK/gwprof.log" &
	PIDS+=("$!")
	wait_ready "$!" "http://127.0.0.1:$port/v2/health/ready"
	log "phase 4: CPU profile of the gateway under closed-loop load"
	"$BIN/oipload" attack -body "$WORK/body.json" -concurrency "$CONCURRENCY" -duration 12s -runs 1 \
		-name "bulwark=$(infer_url "$port")" >/dev/null 2>&1 &
	load=$!
	sleep 2
	(cd "$REPO" && go tool pprof -proto "http://$pprof/debug/pprof/profile?seconds=8" >"$WORK/gateway.pprof" 2>/dev/null)
	wait "$load"
	echo "## CPU profile of the gateway, closed loop, concurrency $CONCURRENCY (8 s)"
	echo
	echo '```'
	(cd "$REPO" && go tool pprof -top -nodecount 40 "$BIN/gwprof" "$WORK/gateway.pprof" 2>/dev/null | sed -n '1,48p')
	echo '```'
	echo
	echo '```'
	(cd "$REPO" && go tool pprof -top -cum -nodecount 40 "$BIN/gwprof" "$WORK/gateway.pprof" 2>/dev/null | sed -n '6,48p')
	echo '```'
	if [[ "${KEEP:-0}" == 1 ]]; then log "profile: $WORK/gateway.pprof"; fi
fi
