#!/usr/bin/env bash
# Per-call latency of small_cnn.onnx (input 1x3x32x32), single-threaded:
# the builtin Go interpreter (bench/cnnlat with GOMAXPROCS=1) against
# onnxruntime-node 1.30.0 (bench/ort/cnn_latency.cjs, intraOpNumThreads=1),
# run alternately ROUNDS times on the same file and the same input data.
#
#   bench/cnn_vs_ort.sh
#   ROUNDS=7 RUNS=2000 bench/cnn_vs_ort.sh
#
# Environment: ROUNDS (5), RUNS (timed calls per round, 1000), WARMUP (50),
# MODEL (internal/runtime/builtin/testdata/bench/small_cnn.onnx, a path
# relative to the repository root), SHAPE
# (1,3,32,32), KEEP=1 keeps the scratch directory.
#
# Needs Node.js 18+ and npm; onnxruntime-node is installed with
# --ignore-scripts into the scratch directory (its CPU library ships in
# the npm package). Prints one JSON object on stdout: each round's p50 in
# microseconds for both, their medians and bulwark/ort (above 1 means
# Bulwark is slower). Also reported: Bulwark with the default GOMAXPROCS
# and onnxruntime with its default thread pool.
source "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-5}
RUNS=${RUNS:-1000}
WARMUP=${WARMUP:-50}
MODEL=${MODEL:-internal/runtime/builtin/testdata/bench/small_cnn.onnx}
SHAPE=${SHAPE:-1,3,32,32}
ORT_VERSION=1.30.0
cd "$REPO" # MODEL is relative to the repository root

log "building cnnlat"
mkdir -p "$WORK/bin"
(cd "$REPO" && go build -o "$WORK/bin/cnnlat" ./bench/cnnlat)

log "installing onnxruntime-node@$ORT_VERSION"
mkdir -p "$WORK/ort"
(cd "$WORK/ort" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "onnxruntime-node@$ORT_VERSION" >&2)
export NODE_PATH=$WORK/ort/node_modules

: >"$WORK/results.jsonl"
for ((r = 1; r <= ROUNDS; r++)); do
	go1=$(GOMAXPROCS=1 "$WORK/bin/cnnlat" -shape "$SHAPE" -runs "$RUNS" -warmup "$WARMUP" "$MODEL")
	ort=$(node "$REPO/bench/ort/cnn_latency.cjs" "$MODEL" --shape "$SHAPE" --runs "$RUNS" --warmup "$WARMUP")
	gon=$("$WORK/bin/cnnlat" -shape "$SHAPE" -runs "$RUNS" -warmup "$WARMUP" "$MODEL")
	printf '{"round":%d,"bulwark":%s,"ort":%s,"bulwark_default_procs":%s}\n' "$r" "$go1" "$ort" "$gon" >>"$WORK/results.jsonl"
	node -e '
		const [b, o, d] = process.argv.slice(1).map((s) => JSON.parse(s));
		console.error(`round ${process.argv[4]}: bulwark p50 ${b.p50_us} us, ort p50 ${o.p50_us} us (default threads ${o.default_threads.p50_us} us), bulwark GOMAXPROCS=${d.gomaxprocs} p50 ${d.p50_us} us`);
	' "$go1" "$ort" "$gon" "$r"
done

node -e '
	const fs = require("fs");
	const rounds = fs.readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
	const median = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
	const r2 = (v) => Math.round(v * 100) / 100;
	const col = (f) => rounds.map(f);
	const b = median(col((r) => r.bulwark.p50_us));
	const o = median(col((r) => r.ort.p50_us));
	const d = median(col((r) => r.bulwark_default_procs.p50_us));
	const od = median(col((r) => r.ort.default_threads.p50_us));
	console.log(JSON.stringify({
		model: rounds[0].ort.model, shape: rounds[0].ort.shape, runs_per_round: rounds[0].ort.runs, rounds: rounds.length,
		onnxruntime_node: rounds[0].ort.onnxruntime_node, go: rounds[0].bulwark.go,
		bulwark_p50_us: col((r) => r.bulwark.p50_us), ort_p50_us: col((r) => r.ort.p50_us),
		median_bulwark_p50_us: b, median_ort_p50_us: o, ratio_bulwark_over_ort: r2(b / o),
		bulwark_default_procs: { gomaxprocs: rounds[0].bulwark_default_procs.gomaxprocs, median_p50_us: d },
		ort_default_threads: { median_p50_us: od },
	}, null, 2));
' "$WORK/results.jsonl"
