# Helpers shared by bench/gateway/*.sh; source it, do not run it. It sources
# bench/lib.sh (scratch directory $WORK, cleanup on exit, build_tools,
# wait_ready, sample_body, log). Every server listens on 127.0.0.1 only.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

GW_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$WORK/bin
TOKEN=bench-token
# Ports: nodes at NODE_PORT+1.., the Bulwark gateway(s) at GW_PORT.., HAProxy
# at HA_PORT, its stats page at HA_PORT+1.
NODE_PORT=${NODE_PORT:-18400}
GW_PORT=${GW_PORT:-18500}
HA_PORT=${HA_PORT:-18600}
declare -a NODE_PID=()
NODE_FLAGS=()

# ensure_haproxy installs Debian's haproxy if it is missing (needs root and
# apt), without starting the system service.
ensure_haproxy() {
	if command -v haproxy >/dev/null; then return; fi
	log "haproxy missing: installing it with apt-get"
	local sudo=""
	((EUID == 0)) || sudo=sudo
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq haproxy >&2
	$sudo service haproxy stop >/dev/null 2>&1 || true
}

# machine prints one line describing the machine and the versions used.
machine() {
	local cpu
	cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPU ($cpu), $(free -g | awk '/Mem:/{print $2}') GiB," \
		"Linux $(uname -r), $(go version | cut -d' ' -f3), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
}

# setup builds bulwark, oipload and gwprof, writes the sample model into a
# site and the batch-1 request body into $WORK/body.json.
setup() {
	log "building bulwark, oipload, gwprof"
	build_tools bench/oipload bench/gateway/gwprof
	"$BIN/bulwark" sample -o "$WORK/iris.onnx" >&2
	new_site "$WORK/site" iris "$WORK/iris.onnx"
	sample_body "${BATCH:-1}" >"$WORK/body.json"
}

node_addr() { echo "127.0.0.1:$((NODE_PORT + $1))"; }

# start_node I starts node I (1-based) on node_addr I, with NODE_FLAGS
# (e.g. --chaos), and waits until it answers an inference.
start_node() {
	local i=$1 addr
	addr=$(node_addr "$i")
	addr_free "$addr"
	"$BIN/bulwark" --site "$WORK/site" --log-level warn node --listen "$addr" --name "n$i" \
		--admin-token "$TOKEN" "${NODE_FLAGS[@]}" 2>>"$WORK/node$i.log" &
	NODE_PID[i]=$!
	PIDS+=("$!")
	wait_ready "$!" "http://$addr/v2/health/ready"
	wait_post "$!" "http://$addr/v2/models/iris/infer" "$WORK/body.json" 10
}

# ensure_nodes N starts any of nodes 1..N that is not running (killed by a
# previous case) and resumes any that is stopped.
ensure_nodes() {
	local i pid
	for ((i = 1; i <= $1; i++)); do
		pid=${NODE_PID[i]:-}
		if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
			kill -CONT "$pid" 2>/dev/null || true
			continue
		fi
		if [[ -n "$pid" ]]; then
			wait "$pid" 2>/dev/null || true
			log "restarting node $i"
		fi
		start_node "$i"
	done
}

# gateway_yaml PORT N [POLICY_YAML] prints a gateway config for nodes 1..N.
# POLICY_YAML goes under defaults: (indented by the caller with 2 spaces).
gateway_yaml() {
	local port=$1 n=$2 policy=${3:-} i
	echo "listen: 127.0.0.1:$port"
	echo "admin: {token: $TOKEN}"
	if [[ -n "$policy" ]]; then
		echo "defaults:"
		echo "$policy"
	fi
	echo "models:"
	echo "  iris:"
	echo "    replicas:"
	for ((i = 1; i <= n; i++)); do
		echo "      - {address: \"http://$(node_addr "$i")\"}"
	done
}

# start_gateway NAME PORT N [POLICY_YAML] starts `bulwark gateway` with
# gateway_yaml's config and waits until it sees N healthy replicas. Sets
# GWPID.
start_gateway() {
	local name=$1 port=$2 n=$3 policy=${4:-}
	gateway_yaml "$port" "$n" "$policy" >"$WORK/$name.yaml"
	addr_free "127.0.0.1:$port"
	"$BIN/bulwark" --log-level warn gateway --config "$WORK/$name.yaml" >/dev/null 2>>"$WORK/$name.log" &
	GWPID=$!
	PIDS+=("$!")
	wait_ready "$!" "http://127.0.0.1:$port/v2/health/ready"
	wait_gateway_healthy "$port" "$n"
}

# wait_gateway_healthy PORT N waits until the gateway reports N replicas in
# state healthy (not unhealthy, ejected or breaker-open).
wait_gateway_healthy() {
	local port=$1 n=$2 deadline=$((SECONDS + 60)) got
	while :; do
		got=$(curl -sf --max-time 2 "http://127.0.0.1:$port/metrics" |
			grep -c '^bulwark_gateway_replica_state{.*state="healthy"} 1' || true)
		((got >= n)) && return 0
		if ((SECONDS >= deadline)); then
			echo "gateway on $port: $got of $n replicas healthy after 60s" >&2
			return 1
		fi
		sleep 0.1
	done
}

# haproxy_cfg PORT N prints an HAProxy config: mode http, balance
# leastconn, keep-alive to the backends (http-reuse always), nodes 1..N,
# stats CSV on PORT+1. Set by the caller: HA_CHECK (server defaults, health
# checks), HA_TIMEOUT_SERVER, HA_DEFAULTS and HA_FRONTEND (extra lines).
HA_CHECK="default-server check inter 1s fall 2 rise 2"
HA_TIMEOUT_SERVER=30s
HA_DEFAULTS=""
HA_FRONTEND=""
haproxy_cfg() {
	local port=$1 n=$2 i
	cat <<EOF
global
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 1s
    timeout client 30s
    timeout server $HA_TIMEOUT_SERVER
    timeout http-keep-alive 30s
$HA_DEFAULTS
frontend fe
    bind 127.0.0.1:$port
$HA_FRONTEND
    default_backend be
backend be
    balance leastconn
    option httpchk GET /v2/health/ready
    $HA_CHECK
EOF
	for ((i = 1; i <= n; i++)); do
		echo "    server n$i $(node_addr "$i")"
	done
	cat <<EOF
listen stats
    bind 127.0.0.1:$((port + 1))
    stats enable
    stats uri /stats
EOF
}

# start_haproxy NAME PORT N starts haproxy with haproxy_cfg's config in the
# foreground (-db) and waits until its stats show N backends UP. Sets HAPID.
start_haproxy() {
	local name=$1 port=$2 n=$3
	haproxy_cfg "$port" "$n" >"$WORK/$name.cfg"
	haproxy -c -q -f "$WORK/$name.cfg" >&2
	addr_free "127.0.0.1:$port"
	haproxy -db -f "$WORK/$name.cfg" >>"$WORK/$name.log" 2>&1 &
	HAPID=$!
	PIDS+=("$!")
	wait_haproxy_up "$port" "$n" "$HAPID"
}

# wait_haproxy_up PORT N [PID] waits until N servers of backend be are UP.
wait_haproxy_up() {
	local port=$1 n=$2 pid=${3:-} deadline=$((SECONDS + 60)) got
	while :; do
		if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
			echo "haproxy (pid $pid) exited; see its log in $WORK" >&2
			return 1
		fi
		got=$(curl -sf --max-time 2 "http://127.0.0.1:$((port + 1))/stats;csv" |
			awk -F, '$1=="be" && $2!="BACKEND" && $18=="UP"' | wc -l || true)
		((got >= n)) && return 0
		if ((SECONDS >= deadline)); then
			echo "haproxy on $port: $got of $n servers UP after 60s" >&2
			return 1
		fi
		sleep 0.1
	done
}

infer_url() { echo "http://127.0.0.1:$1/v2/models/iris/infer"; }
