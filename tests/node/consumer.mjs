// A consumer of calib's model.onnx in a second language: Node.js with onnxruntime-node (npm).
//
//   cd tests/node && npm install          # onnxruntime-node (CPU binaries ship in the package)
//   node consumer.mjs MODEL.onnx READINGS.csv            -> JSON: metadata + every output
//   node consumer.mjs MODEL.onnx READINGS.csv --refusals -> JSON: ONNX Runtime's error per wrong feed
//
// READINGS.csv: a header naming the features exactly as the model's inputs (any order, other
// columns ignored), comma-separated numbers in the model's units. The model's contract
// (calib.artifact.contract): one float32 [N] input per feature, named as the feature; outputs
// described by the metadata property output_meaning. onnxruntime-node does not expose an ONNX
// file's metadata_props, so readMetadataProps reads them from the protobuf bytes (ModelProto
// field 14: StringStringEntryProto {1: key, 2: value}).
import { readFileSync } from "node:fs";
import * as ort from "onnxruntime-node";

function varint(buf, i) {
  let value = 0n, shift = 0n;
  for (;;) {
    const b = buf[i++];
    value |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [value, i];
    shift += 7n;
  }
}

function* fields(buf) {
  let i = 0;
  while (i < buf.length) {
    let tag, v;
    [tag, i] = varint(buf, i);
    const number = Number(tag >> 3n), wire = Number(tag & 7n);
    if (wire === 0) { [v, i] = varint(buf, i); yield [number, wire, v]; }
    else if (wire === 1) { i += 8; }
    else if (wire === 5) { i += 4; }
    else if (wire === 2) {
      let size;
      [size, i] = varint(buf, i);
      yield [number, wire, buf.subarray(i, i + Number(size))];
      i += Number(size);
    } else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
}

export function readMetadataProps(bytes) {
  const props = {};
  for (const [number, wire, value] of fields(bytes)) {
    if (number !== 14 || wire !== 2) continue;
    const entry = {};
    for (const [n, w, v] of fields(value)) if (w === 2) entry[n] = Buffer.from(v).toString("utf8");
    if (entry[1] !== undefined) props[entry[1]] = entry[2] ?? "";
  }
  return props;
}

function readCsv(path) {
  const lines = readFileSync(path, "utf8").trim().split(/\r?\n/);
  const header = lines[0].split(",").map((s) => s.trim());
  const rows = lines.slice(1).map((l) => l.split(","));
  const column = (name) => {
    const j = header.indexOf(name);
    if (j < 0) throw new Error(`${path}: no column ${name} (the model's input)`);
    return Float32Array.from(rows, (r) => Number(r[j]));
  };
  return { n: rows.length, column };
}

const [modelPath, csvPath, mode] = process.argv.slice(2);
const bytes = readFileSync(modelPath);
const meta = readMetadataProps(bytes);
const inputs = JSON.parse(meta.inputs);            // [{name, unit, dtype: "float32", shape: ["N"]}]
const session = await ort.InferenceSession.create(bytes);
const names = inputs.map((i) => i.name);
if (JSON.stringify(session.inputNames) !== JSON.stringify(names)) {
  throw new Error(`graph inputs ${session.inputNames} differ from the metadata's ${names}`);
}
const data = readCsv(csvPath);
const feed = {};
for (const name of names) feed[name] = new ort.Tensor("float32", data.column(name), [data.n]);

if (mode === "--refusals") {
  const tries = {
    missing: () => { const f = { ...feed }; delete f[names[0]]; return f; },
    extra: () => ({ ...feed, readings: feed[names[0]] }),
    float64: () => ({ ...feed, [names[0]]: new ort.Tensor("float64", Float64Array.from(feed[names[0]].data), [data.n]) }),
    "2-D": () => ({ ...feed, [names[0]]: new ort.Tensor("float32", feed[names[0]].data, [data.n, 1]) }),
  };
  const out = {};
  for (const [k, make] of Object.entries(tries)) {
    try { await session.run(make()); out[k] = null; } catch (e) { out[k] = String(e.message ?? e).split("\n")[0]; }
  }
  console.log(JSON.stringify(out));
} else {
  const res = await session.run(feed);
  const outputs = {};
  for (const name of session.outputNames) outputs[name] = Array.from(res[name].data, Number);
  console.log(JSON.stringify({
    model: { name: meta.name, version: meta.version, target: meta.target, unit: meta.unit, opset: meta.opset },
    inputs,
    output_meaning: JSON.parse(meta.output_meaning),
    outputs,
  }));
}
