#!/usr/bin/env node
// Single-input inference latency of an ONNX model in onnxruntime-node, as a
// baseline for the builtin Go interpreter.
//
// Usage:
//   NODE_PATH=<dir with onnxruntime-node> node cnn_latency.cjs MODEL.onnx \
//       [--shape 1,3,32,32] [--runs 200] [--warmup 20]
//
// Runs the model with one thread (intraOpNumThreads=1, interOpNumThreads=1)
// and again with onnxruntime's default thread settings. The input is the
// model's first input, filled with deterministic pseudo-random float32 data.
// Prints one JSON object: the top-level p50_us / mean_us / runs are the
// single-threaded numbers, "default_threads" holds the same for the default
// session.

'use strict';

const fs = require('fs');
const ort = require('onnxruntime-node');

function usage(msg) {
  if (msg) console.error(msg);
  console.error('usage: node cnn_latency.cjs MODEL.onnx [--shape 1,3,32,32] [--runs 200] [--warmup 20]');
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { shape: [1, 3, 32, 32], runs: 200, warmup: 20, model: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--shape') opts.shape = next().split(',').map((s) => parseInt(s, 10));
    else if (a === '--runs') opts.runs = parseInt(next(), 10);
    else if (a === '--warmup') opts.warmup = parseInt(next(), 10);
    else if (a === '-h' || a === '--help') usage();
    else if (a.startsWith('--')) usage(`unknown option ${a}`);
    else if (opts.model === null) opts.model = a;
    else usage(`unexpected argument ${a}`);
  }
  if (opts.model === null) usage('missing model path');
  if (!fs.existsSync(opts.model)) usage(`no such file: ${opts.model}`);
  if (opts.shape.some((d) => !(d > 0))) usage('--shape needs positive integers, e.g. 1,3,32,32');
  if (!(opts.runs > 0) || !(opts.warmup >= 0)) usage('--runs must be > 0 and --warmup >= 0');
  return opts;
}

// Deterministic input data (xorshift32), values in [-1, 1).
function inputData(n) {
  const data = new Float32Array(n);
  let s = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    data[i] = ((s >>> 0) / 4294967296) * 2 - 1;
  }
  return data;
}

async function measure(opts, sessionOptions) {
  const session = await ort.InferenceSession.create(opts.model, sessionOptions);
  const n = opts.shape.reduce((a, b) => a * b, 1);
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', inputData(n), opts.shape) };
  for (let i = 0; i < opts.warmup; i++) await session.run(feeds);
  const times = new Float64Array(opts.runs);
  for (let i = 0; i < opts.runs; i++) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    times[i] = Number(process.hrtime.bigint() - t0) / 1000;
  }
  if (typeof session.release === 'function') await session.release();
  const sorted = Array.from(times).sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const p50 = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  const round = (v) => Math.round(v * 10) / 10;
  return { p50_us: round(p50), mean_us: round(mean), min_us: round(sorted[0]), runs: opts.runs };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const single = await measure(opts, {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const dflt = await measure(opts, { graphOptimizationLevel: 'all' });
  const result = {
    ...single,
    warmup: opts.warmup,
    threads: 1,
    shape: opts.shape,
    model: opts.model,
    onnxruntime_node: ort.env.versions.node,
    default_threads: dflt,
  };
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
