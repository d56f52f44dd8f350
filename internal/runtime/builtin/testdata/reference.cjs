#!/usr/bin/env node
// Compute reference outputs for the ONNX test cases with onnxruntime-node.
//
// For every cases/<case>.inputs.json written by gen_models.py this loads
// cases/<model>.onnx in onnxruntime, feeds the inputs, writes
// cases/<case>.json (metadata, inputs and reference outputs) and removes
// the .inputs.json file. Cases with "expect_load_error" get no outputs; for
// them the script only checks what onnxruntime does with the file.
//
// Usage: NODE_PATH=<dir with onnxruntime-node> node reference.cjs [cases dir] [--crosscheck]
//   --crosscheck  also run each model with all graph optimizations and
//                 report the largest difference to the reference, scaled as
//                 |opt - ref| / max(|ref|, 1) (the comparison README.md suggests).
//
// References are computed with graph optimizations disabled and one thread,
// so they follow the plain operator definitions (no Conv+BatchNorm folding,
// no fused kernels).

'use strict';

const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const args = process.argv.slice(2);
const crosscheck = args.includes('--crosscheck');
const positional = args.filter((a) => !a.startsWith('--'));
const casesDir = positional[0] || path.join(__dirname, 'cases');

const ORT_TYPES = {
  FP32: { ort: 'float32', array: Float32Array },
  FP64: { ort: 'float64', array: Float64Array },
  INT32: { ort: 'int32', array: Int32Array },
  INT64: { ort: 'int64', array: BigInt64Array },
  BOOL: { ort: 'bool', array: Uint8Array },
};
const DATATYPES = {
  float32: 'FP32',
  float64: 'FP64',
  int32: 'INT32',
  int64: 'INT64',
  bool: 'BOOL',
};

function toTensor(t) {
  const spec = ORT_TYPES[t.datatype];
  if (!spec) throw new Error(`input ${t.name}: unsupported datatype ${t.datatype}`);
  let data;
  if (t.datatype === 'INT64') data = BigInt64Array.from(t.data, (v) => BigInt(v));
  else if (t.datatype === 'BOOL') data = Uint8Array.from(t.data, (v) => (v ? 1 : 0));
  else data = spec.array.from(t.data);
  return new ort.Tensor(spec.ort, data, t.shape);
}

// The shortest decimal that parses (as a double, then rounded to float32)
// back to exactly the same float32 value.
function shortestFloat32(v) {
  for (let p = 1; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return v;
}

function fromTensor(name, t) {
  const datatype = DATATYPES[t.type];
  if (!datatype) throw new Error(`output ${name}: unsupported type ${t.type}`);
  let data;
  if (datatype === 'INT64') {
    data = Array.from(t.data, (v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new Error(`output ${name}: int64 ${v} not exact in JSON`);
      return n;
    });
  } else if (datatype === 'BOOL') {
    data = Array.from(t.data, (v) => v !== 0 && v !== false);
  } else {
    data = Array.from(t.data);
    for (const v of data) {
      if (!Number.isFinite(v)) throw new Error(`output ${name}: non-finite value ${v}`);
    }
    if (datatype === 'FP32') data = data.map(shortestFloat32);
  }
  return { name, datatype, shape: t.dims.map(Number), data };
}

function sessionOptions(optimize) {
  return {
    graphOptimizationLevel: optimize ? 'all' : 'disabled',
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
}

async function run(modelPath, inputs, optimize) {
  const session = await ort.InferenceSession.create(modelPath, sessionOptions(optimize));
  const feeds = {};
  for (const t of inputs) feeds[t.name] = toTensor(t);
  const results = await session.run(feeds);
  const outputs = session.outputNames.map((n) => fromTensor(n, results[n]));
  if (typeof session.release === 'function') await session.release();
  return outputs;
}

function maxRelDiff(a, b) {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i].datatype !== b[i].datatype || JSON.stringify(a[i].shape) !== JSON.stringify(b[i].shape)) {
      return Infinity;
    }
    for (let j = 0; j < a[i].data.length; j++) {
      const x = Number(a[i].data[j]);
      const y = Number(b[i].data[j]);
      const d = Math.abs(x - y) / Math.max(Math.abs(y), 1);
      if (d > worst) worst = d;
    }
  }
  return worst;
}

// Stable, compact layout: one line per tensor.
function format(c) {
  const lines = ['{'];
  const keys = Object.keys(c);
  keys.forEach((k, i) => {
    const comma = i === keys.length - 1 ? '' : ',';
    const v = c[k];
    if ((k === 'inputs' || k === 'outputs') && v.length > 0) {
      lines.push(`  ${JSON.stringify(k)}: [`);
      v.forEach((t, j) => lines.push(`    ${JSON.stringify(t)}${j === v.length - 1 ? '' : ','}`));
      lines.push(`  ]${comma}`);
    } else {
      lines.push(`  ${JSON.stringify(k)}: ${JSON.stringify(v)}${comma}`);
    }
  });
  lines.push('}');
  return lines.join('\n') + '\n';
}

async function main() {
  const files = fs.readdirSync(casesDir).filter((f) => f.endsWith('.inputs.json')).sort();
  if (files.length === 0) throw new Error(`no *.inputs.json in ${casesDir}`);
  let ok = 0;
  let bad = 0;
  const failures = [];
  for (const f of files) {
    const name = f.slice(0, -'.inputs.json'.length);
    const meta = JSON.parse(fs.readFileSync(path.join(casesDir, f), 'utf8'));
    const modelPath = path.join(casesDir, meta.model);
    const out = {
      model: meta.model,
      opset: meta.opset,
      ir_version: meta.ir_version,
      ops: meta.ops,
    };
    if (meta.tolerance !== undefined) out.tolerance = meta.tolerance;

    if (meta.expect_load_error !== undefined) {
      // Negative fixture: record what onnxruntime does, write no outputs.
      let loaded = true;
      try {
        await ort.InferenceSession.create(modelPath, sessionOptions(false));
      } catch (e) {
        loaded = false;
      }
      if (meta.expect_load_error === '' && loaded) {
        failures.push(`${name}: expected onnxruntime to reject the file, it loaded it`);
      }
      console.log(`${name}: negative fixture (onnxruntime ${loaded ? 'loads' : 'rejects'} it)`);
      out.expect_load_error = meta.expect_load_error;
      out.inputs = meta.inputs;
      bad++;
    } else {
      let outputs;
      try {
        outputs = await run(modelPath, meta.inputs, false);
      } catch (e) {
        failures.push(`${name}: ${e.message}`);
        continue;
      }
      if (crosscheck) {
        const opt = await run(modelPath, meta.inputs, true);
        const d = maxRelDiff(opt, outputs);
        console.log(`${name}: optimized vs reference max scaled diff ${d.toExponential(2)}`);
      }
      out.inputs = meta.inputs;
      out.outputs = outputs;
      ok++;
    }
    fs.writeFileSync(path.join(casesDir, `${name}.json`), format(out));
    fs.unlinkSync(path.join(casesDir, f));
  }
  console.log(
    `onnxruntime-node ${ort.env.versions.node}: ${ok} cases with reference outputs, ${bad} negative fixtures`,
  );
  if (failures.length > 0) {
    for (const m of failures) console.error(`FAILED ${m}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
