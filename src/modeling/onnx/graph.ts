// Graph building helpers: add nodes, initializers, inputs and outputs by name, then serialise.
// Large weights go to one external-data file (ONNX external data) shared by every graph built from
// the same checkpoint, so the ViT's "qk", "cls" and "tokens" graphs cost one copy of the weights
// on disk; small constants are stored inline.
import * as fs from "node:fs";
import { DataType, encodeModel } from "./proto.js";
import type { AttributeValue, DataTypeCode, Dim, NodeRecord, TensorRecord, ValueInfoRecord } from "./proto.js";

export { DataType } from "./proto.js";
export type { Dim } from "./proto.js";

export const OPSET = 17;
/** onnxruntime's contrib operators (DynamicQuantizeMatMul, MatMulIntegerToFloat, …) and their opset. */
export const CONTRIB_DOMAIN = "com.microsoft";
const CONTRIB_OPSET = 1;
export const IR_VERSION = 8;

/** Attribute shorthand: numbers are ints unless wrapped with `float(...)`. */
export type Attr = number | number[] | string | AttributeValue;
export const float = (value: number): AttributeValue => ({ kind: "float", value });
export const floats = (value: number[]): AttributeValue => ({ kind: "floats", value });

function toAttribute(a: Attr): AttributeValue {
  if (typeof a === "number") return { kind: "int", value: a };
  if (typeof a === "string") return { kind: "string", value: a };
  if (Array.isArray(a)) return { kind: "ints", value: a };
  return a;
}

/**
 * Weights destined for an external-data file: tensors are appended at 4096-byte aligned offsets
 * (page aligned, so onnxruntime may memory-map them).
 */
export interface WeightFile {
  /** File name the graphs refer to (relative to the .onnx file's folder). */
  location: string;
  entries: Map<string, { dims: number[]; offset: number; length: number }>;
  chunks: Uint8Array[];
  size: number;
  /** The float32 values of an entry (graphs that derive tensors from the weights, e.g. int8 copies, read them). */
  values(name: string): Float32Array;
}

const ALIGN = 4096;

export function createWeightFile(location: string): WeightFile {
  const arrays = new Map<string, Float32Array>();
  const wf: WeightFile = {
    location, entries: new Map(), chunks: [], size: 0,
    values(name) {
      const a = arrays.get(name);
      if (!a) throw new Error(`weight ${name} not in ${location}`);
      return a;
    },
  };
  addedArrays.set(wf, arrays);
  return wf;
}

/** In-memory values of the weight files made by createWeightFile (addWeight fills them). */
const addedArrays = new WeakMap<WeightFile, Map<string, Float32Array>>();

/** A weight file saved earlier at `file`, described by its entries; values are read from disk on demand. */
export function openWeightFile(file: string, location: string, entries: Map<string, { dims: number[]; offset: number; length: number }>, size: number): WeightFile {
  return {
    location, entries, chunks: [], size,
    values(name) {
      const e = entries.get(name);
      if (!e) throw new Error(`weight ${name} not in ${location}`);
      const out = new Float32Array(e.length / 4);
      const fd = fs.openSync(file, "r");
      try {
        fs.readSync(fd, new Uint8Array(out.buffer), 0, e.length, e.offset);
      } finally {
        fs.closeSync(fd);
      }
      return out;
    },
  };
}

/** Appends a float32 tensor under `name` (keeps a view of `data`: do not modify it before saving). */
export function addWeight(wf: WeightFile, name: string, dims: number[], data: Float32Array): void {
  if (wf.entries.has(name)) throw new Error(`weight ${name} added twice`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`weight ${name}: dims [${dims}] need ${count} values, got ${data.length}`);
  const pad = (ALIGN - (wf.size % ALIGN)) % ALIGN;
  if (pad) {
    wf.chunks.push(new Uint8Array(pad));
    wf.size += pad;
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength); // a view: written out as is
  wf.entries.set(name, { dims: [...dims], offset: wf.size, length: bytes.length });
  addedArrays.get(wf)?.set(name, data);
  wf.chunks.push(bytes);
  wf.size += bytes.length;
}

/** Writes the weight file (raw little-endian float32, zero padding between tensors). */
export function saveWeightFile(wf: WeightFile, file: string): void {
  const fd = fs.openSync(file, "w");
  try {
    for (const chunk of wf.chunks) fs.writeSync(fd, chunk);
  } finally {
    fs.closeSync(fd);
  }
}

function littleEndianBytes(data: Float32Array): Uint8Array {
  // Node runs on little-endian hosts (x64, arm64); a copy keeps the caller's array independent.
  return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

export interface GraphBuilder {
  /**
   * Adds a node; returns its output names (auto-named unless `outputs` given). `domain`: the operator
   * set, "" (ONNX) unless given, e.g. CONTRIB_DOMAIN for onnxruntime's contrib ops.
   */
  node(opType: string, inputs: string[], attributes?: Record<string, Attr>, outputs?: number | string[], domain?: string): string[];
  /** Shorthand for a single-output node. */
  op(opType: string, inputs: string[], attributes?: Record<string, Attr>, domain?: string): string;
  /** Inline float32 constant initializer. */
  constFloat(dims: number[], values: ArrayLike<number>, name?: string): string;
  /** Inline int8 constant initializer (quantised weights). */
  constInt8(dims: number[], values: Int8Array, name?: string): string;
  /** Inline int64 constant initializer (shapes, axes, indices). */
  constInt64(values: number[], name?: string): string;
  /** Initializer whose data lives in the external weight file (a whole entry or a byte range of one). */
  weight(name: string, slice?: { dims: number[]; byteOffset: number }): string;
  input(name: string, elemType: DataTypeCode, shape: Dim[]): string;
  output(name: string, elemType: DataTypeCode, shape: Dim[]): void;
  /** Renames the producer of `from` so the value is called `to` (for graph outputs). */
  rename(from: string, to: string): void;
  /** Serialised ModelProto bytes. */
  encode(docString?: string, metadata?: Record<string, string>): Uint8Array;
}

export function createGraph(name: string, weights?: WeightFile): GraphBuilder {
  const nodes: NodeRecord[] = [];
  const initializers: TensorRecord[] = [];
  const inputs: ValueInfoRecord[] = [];
  const outputs: ValueInfoRecord[] = [];
  const used = new Set<string>();
  let counter = 0;
  const fresh = (base: string): string => {
    let n: string;
    do n = `${base}_${counter++}`; while (used.has(n));
    used.add(n);
    return n;
  };
  const claim = (n: string): string => {
    if (used.has(n)) throw new Error(`graph ${name}: value name ${n} used twice`);
    used.add(n);
    return n;
  };

  const builder: GraphBuilder = {
    node(opType, ins, attributes, outs = 1, domain) {
      const outNames = typeof outs === "number" ? Array.from({ length: outs }, () => fresh(opType)) : outs.map(claim);
      const attrs: Record<string, AttributeValue> = {};
      for (const [k, v] of Object.entries(attributes ?? {})) attrs[k] = toAttribute(v);
      nodes.push({ opType, inputs: ins, outputs: outNames, name: `${opType}_${nodes.length}`, attributes: attrs, ...(domain ? { domain } : {}) });
      return outNames;
    },
    op(opType, ins, attributes, domain) {
      return builder.node(opType, ins, attributes, 1, domain)[0];
    },
    constFloat(dims, values, n) {
      const nm = n ? claim(n) : fresh("const");
      initializers.push({ name: nm, dataType: DataType.FLOAT, dims, payload: { raw: littleEndianBytes(Float32Array.from(values)) } });
      return nm;
    },
    constInt8(dims, values, n) {
      const nm = n ? claim(n) : fresh("const");
      if (values.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`graph ${name}: int8 constant ${nm} has ${values.length} values for dims [${dims}]`);
      initializers.push({ name: nm, dataType: DataType.INT8, dims, payload: { raw: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)) } });
      return nm;
    },
    constInt64(values, n) {
      const nm = n ? claim(n) : fresh("shape");
      const raw = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
      initializers.push({ name: nm, dataType: DataType.INT64, dims: [values.length], payload: { raw } });
      return nm;
    },
    weight(wname, slice) {
      if (!weights) throw new Error(`graph ${name}: no weight file attached`);
      const entry = weights.entries.get(wname);
      if (!entry) throw new Error(`graph ${name}: weight ${wname} not in ${weights.location}`);
      let dims = entry.dims, offset = entry.offset, length = entry.length;
      if (slice) {
        length = slice.dims.reduce((a, b) => a * b, 1) * 4;
        if (slice.byteOffset + length > entry.length) throw new Error(`graph ${name}: slice of ${wname} out of range`);
        dims = slice.dims;
        offset = entry.offset + slice.byteOffset;
      }
      const nm = slice ? fresh(wname) : claim(wname);
      initializers.push({ name: nm, dataType: DataType.FLOAT, dims, payload: { external: { location: weights.location, offset, length } } });
      return nm;
    },
    input(n, elemType, shape) {
      inputs.push({ name: claim(n), elemType, shape });
      return n;
    },
    output(n, elemType, shape) {
      outputs.push({ name: n, elemType, shape });
    },
    rename(from, to) {
      claim(to);
      for (const nd of nodes) {
        nd.outputs = nd.outputs.map((o) => (o === from ? to : o));
        nd.inputs = nd.inputs.map((i) => (i === from ? to : i));
      }
    },
    encode(docString, metadata) {
      const domains = new Set(nodes.map((n) => n.domain ?? "").filter((d) => d !== ""));
      return encodeModel({
        graph: { name, nodes, initializers, inputs, outputs },
        opsetVersion: OPSET,
        ...(domains.size ? { domainOpsets: Object.fromEntries([...domains].map((d) => [d, CONTRIB_OPSET])) } : {}),
        irVersion: IR_VERSION,
        producerName: "maskdistill",
        docString,
        metadata,
      });
    },
  };
  return builder;
}
