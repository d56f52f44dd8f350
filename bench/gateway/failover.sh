#!/usr/bin/env bash
# Failover, Bulwark gateway vs HAProxy, both in front of the same 3 bulwark
# nodes: an open-loop load of RATE (1000) req/s for DURATION (30s), and at
# 10 s one node is SIGKILLed ("sigkill" case), or SIGSTOPped at 10 s and
# SIGCONTed at 20 s ("sigstop" case). Every request's result is kept; the
# table gives, per case and proxy, requests, failures (any non-2xx or
# transport error at the client), p50/p99/p99.9 and max latency.
#
#   bench/gateway/failover.sh              # 5 runs, ~13 min
#   RUNS=1 bench/gateway/failover.sh
#
# Run by run the proxy order alternates; before each attack every node is
# running (a killed one is restarted, a stopped one resumed), the proxy
# about to be measured is restarted (so that no run inherits another's
# ejections) and sees all three nodes healthy, then 2 s pass.
#
# Bulwark: `bulwark gateway`, default policies (adaptive hedging, retries,
# outlier ejection, breaker) except health: {interval: 500ms, rise: 2,
# fall: 2} (timeout 500ms, the default) to match HAProxy's checks.
# HAProxy (Debian's, installed if missing), configured as a careful
# operator would: balance leastconn, http-reuse always, option httpchk GET
# /v2/health/ready with check inter 500 fall 2 rise 2, retries 3, option
# redispatch 1, retry-on all-retryable-errors, http-request wait-for-body
# time 1s (so that POSTs can be retried), timeout server 3s, timeout
# connect 1s.
#
# Environment: RUNS (5), RATE (1000), DURATION (30s), VICTIM (2: the node
# killed or stopped), CASES ("sigkill sigstop"), KILL_AT (10s: SIGKILL or
# SIGSTOP), CONT_AT (20s: SIGCONT), NODE_PORT, GW_PORT,
# HA_PORT, KEEP=1 keeps the scratch directory (with per-request CSVs).
source "$(dirname "$0")/common.sh"

RUNS=${RUNS:-5}
RATE=${RATE:-1000}
DURATION=${DURATION:-30s}
WARMUP=${WARMUP:-2s}
VICTIM=${VICTIM:-2}
CASES=${CASES:-"sigkill sigstop"}
KILL_AT=${KILL_AT:-10s}
CONT_AT=${CONT_AT:-20s}

ensure_haproxy
setup
GW_HEALTH="  health: {interval: 500ms, timeout: 500ms, rise: 2, fall: 2}"
HA_CHECK="default-server check inter 500 fall 2 rise 2"
HA_TIMEOUT_SERVER=3s
HA_DEFAULTS="    retries 3
    option redispatch 1
    retry-on all-retryable-errors"
HA_FRONTEND="    http-request wait-for-body time 1s"

for i in 1 2 3; do start_node "$i"; done
start_gateway gw "$GW_PORT" 3 "$GW_HEALTH"
start_haproxy ha "$HA_PORT" 3
log "3 nodes, gateway and haproxy ready"

echo "# Failover: 1 of 3 nodes killed or paused"
echo
echo "Machine: $(machine)"
echo
echo "Open loop, $RATE req/s for $DURATION, $RUNS runs per case and proxy, alternating;" \
	"sigkill: kill -KILL node $VICTIM at $KILL_AT; sigstop: kill -STOP at $KILL_AT, kill -CONT at $CONT_AT." \
	"Bulwark gateway: default policies, health interval 500ms fall 2 rise 2. Latencies: medians over runs."
echo

OUT=$WORK/failover.jsonl
: >"$OUT"
for ((r = 1; r <= RUNS; r++)); do
	for c in $CASES; do
		if ((r % 2)); then order="bulwark haproxy"; else order="haproxy bulwark"; fi
		for t in $order; do
			ensure_nodes 3
			# A fresh proxy for every attack: the gateway keeps a replica's
			# ejection history (each ejection is twice as long as the last),
			# which would make the runs depend on each other.
			if [[ $t == bulwark ]]; then
				stop "$GWPID" || true
				start_gateway gw "$GW_PORT" 3 "$GW_HEALTH"
			else
				stop "$HAPID" || true
				start_haproxy ha "$HA_PORT" 3
			fi
			sleep 2
			pid=${NODE_PID[VICTIM]}
			case $c in
			sigkill) hooks=(-at "$KILL_AT=kill -KILL $pid") ;;
			sigstop) hooks=(-at "$KILL_AT=kill -STOP $pid" -at "$CONT_AT=kill -CONT $pid") ;;
			*) echo "unknown case $c" >&2; exit 2 ;;
			esac
			port=$GW_PORT
			[[ $t == haproxy ]] && port=$HA_PORT
			log "run $r, $c, $t"
			"$BIN/oipload" record -url "$(infer_url "$port")" -body "$WORK/body.json" -rate "$RATE" \
				-duration "$DURATION" -warmup "$WARMUP" -timeout 10s -case "$c" -label "$t" -run "$r" "${hooks[@]}" \
				-out "$WORK/$c-$t-$r.csv" >>"$OUT"
		done
	done
done

"$BIN/oipload" report "$OUT"
