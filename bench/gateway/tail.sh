#!/usr/bin/env bash
# Tail latency with one slow replica: 3 bulwark nodes in chaos mode, node
# SLOW (3) delays a share of its inference requests (default: 5 %, fixed
# 200 ms), and an open-loop load of RATE (400) req/s for DURATION (30s)
# goes through, alternating run by run:
#   bulwark          `bulwark gateway`, default policies (adaptive hedging:
#                    a copy to another replica once a try is older than the
#                    model's recent p95, clamped to [2ms, 1s], within a
#                    hedge budget of 5 % of requests)
#   bulwark-nohedge  the same with hedge: {enabled: false}
#   haproxy          Debian's HAProxy, balance leastconn, http-reuse always
# The table gives p50/p99/p99.9/max and the extra requests each proxy sent:
# the requests the three nodes counted (bulwark_node_infer_requests_total,
# scraped before and after each run) over the requests the client sent,
# minus 1.
#
#   bench/gateway/tail.sh                 # 5 runs per proxy, ~9 min
#   CHAOS_ALL='{"latency":{"distribution":"pareto","ms":1,"shape":1.5,"max_ms":500}}' bench/gateway/tail.sh
#
# Environment: RUNS (5), RATE (400), DURATION (30s), SLOW (3), CHAOS (the
# slow node's /admin/chaos body), CHAOS_ALL (if set, this body goes to
# every node instead), NODE_PORT, GW_PORT, HA_PORT, KEEP=1.
source "$(dirname "$0")/common.sh"

RUNS=${RUNS:-5}
RATE=${RATE:-400}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-2s}
SLOW=${SLOW:-3}
CHAOS=${CHAOS:-'{"models":["iris"],"latency":{"rate":0.05,"distribution":"fixed","ms":200}}'}
CHAOS_ALL=${CHAOS_ALL:-}

ensure_haproxy
setup
NODE_FLAGS=(--chaos)
for i in 1 2 3; do start_node "$i"; done
start_gateway gw "$GW_PORT" 3
start_gateway gwnh $((GW_PORT + 10)) 3 "  hedge: {enabled: false}"
start_haproxy ha "$HA_PORT" 3
log "3 nodes, 2 gateways and haproxy ready"

chaos() { # chaos NODE BODY
	curl -sf --max-time 5 -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		"http://$(node_addr "$1")/admin/chaos" -d "$2" >&2
	echo >&2
}
if [[ -n "$CHAOS_ALL" ]]; then
	for i in 1 2 3; do chaos "$i" "$CHAOS_ALL"; done
	what="every node: $CHAOS_ALL"
else
	chaos "$SLOW" "$CHAOS"
	what="node $SLOW of 3: $CHAOS"
fi

echo "# Tail latency: slow replicas"
echo
echo "Machine: $(machine)"
echo
echo "Open loop, $RATE req/s for $DURATION, $RUNS runs per proxy, alternating; chaos on $what." \
	"Latencies: medians over runs; extra requests: node-counted requests / client requests - 1, median over runs."
echo

COUNTS=()
for i in 1 2 3; do COUNTS+=(-count "http://$(node_addr "$i")/metrics"); done
OUT=$WORK/tail.jsonl
: >"$OUT"
targets=(bulwark bulwark-nohedge haproxy)
for ((r = 1; r <= RUNS; r++)); do
	for ((k = 0; k < 3; k++)); do
		t=${targets[(r - 1 + k) % 3]} # rotate the order run by run
		case $t in
		bulwark) port=$GW_PORT ;;
		bulwark-nohedge) port=$((GW_PORT + 10)) ;;
		haproxy) port=$HA_PORT ;;
		esac
		log "run $r, $t"
		"$BIN/oipload" record -url "$(infer_url "$port")" -body "$WORK/body.json" -rate "$RATE" \
			-duration "$DURATION" -warmup "$WARMUP" -timeout 10s -case "slow replica" -label "$t" -run "$r" "${COUNTS[@]}" \
			-out "$WORK/$t-$r.csv" >>"$OUT"
		sleep 1
	done
done

"$BIN/oipload" report "$OUT"
curl -s "http://127.0.0.1:$GW_PORT/metrics" | grep -E '^bulwark_gateway_(tries_total|hedges_total|ejections_total)' || true
