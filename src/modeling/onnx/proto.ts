// Minimal protobuf encoder for the ONNX messages we emit (onnx.proto, proto2 syntax).
// Only what graph building needs: ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto
// (raw_data or external data), ValueInfoProto with tensor types. Field numbers follow onnx.proto.

/** ONNX TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** Growable byte buffer with protobuf wire-format primitives. */
class Writer {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** Unsigned varint; negative numbers are written as 10-byte two's complement (int64 semantics). */
  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    this.reserve(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
  }

  private smallVarint(v: number): void {
    // fast path for tags and lengths (non-negative, < 2^31)
    this.reserve(5);
    while (v >= 0x80) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.len++] = v;
  }

  tag(field: number, wireType: 0 | 1 | 2 | 5): void {
    this.smallVarint((field << 3) | wireType);
  }

  bytes(data: Uint8Array): void {
    this.smallVarint(data.length);
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  float32(v: number): void {
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset + this.len, 4).setFloat32(0, v, true);
    this.len += 4;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

const utf8 = new TextEncoder();

/** Field writers on top of Writer: one call per proto field. */
class Message {
  readonly w = new Writer();
  int(field: number, v: number | bigint): this {
    this.w.tag(field, 0);
    this.w.varint(v);
    return this;
  }
  ints(field: number, vs: readonly (number | bigint)[]): this {
    for (const v of vs) this.int(field, v); // unpacked: valid for proto2 repeated scalars
    return this;
  }
  str(field: number, s: string): this {
    this.w.tag(field, 2);
    this.w.bytes(utf8.encode(s));
    return this;
  }
  raw(field: number, b: Uint8Array): this {
    this.w.tag(field, 2);
    this.w.bytes(b);
    return this;
  }
  float(field: number, v: number): this {
    this.w.tag(field, 5);
    this.w.float32(v);
    return this;
  }
  msg(field: number, m: Message): this {
    return this.raw(field, m.w.finish());
  }
  finish(): Uint8Array {
    return this.w.finish();
  }
}

// ---- typed records for the messages ----

export type AttributeValue =
  | { kind: "int"; value: number }
  | { kind: "float"; value: number }
  | { kind: "string"; value: string }
  | { kind: "ints"; value: number[] }
  | { kind: "floats"; value: number[] }
  | { kind: "tensor"; value: TensorRecord };

export interface NodeRecord {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  attributes?: Record<string, AttributeValue>;
}

/** Where an initializer's bytes live: inline (raw_data) or in an external file (ONNX external data). */
export type TensorPayload =
  | { raw: Uint8Array }
  | { external: { location: string; offset: number; length: number } };

export interface TensorRecord {
  name: string;
  dataType: DataTypeCode;
  dims: number[];
  payload: TensorPayload;
}

/** A dimension is a fixed size or a symbolic name (dim_param). */
export type Dim = number | string;

export interface ValueInfoRecord {
  name: string;
  elemType: DataTypeCode;
  shape: Dim[];
}

export interface GraphRecord {
  name: string;
  nodes: NodeRecord[];
  initializers: TensorRecord[];
  inputs: ValueInfoRecord[];
  outputs: ValueInfoRecord[];
}

export interface ModelRecord {
  graph: GraphRecord;
  opsetVersion: number; // default domain ""
  /** Opsets of other operator domains the nodes use (e.g. {"com.microsoft": 1} for onnxruntime's contrib ops). */
  domainOpsets?: Record<string, number>;
  irVersion: number;
  producerName?: string;
  docString?: string;
  metadata?: Record<string, string>;
}

// AttributeProto.AttributeType
const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

function encodeTensor(t: TensorRecord): Message {
  // TensorProto: dims=1, data_type=2, name=8, raw_data=9, external_data=13, data_location=14
  const m = new Message().ints(1, t.dims).int(2, t.dataType).str(8, t.name);
  if ("raw" in t.payload) {
    m.raw(9, t.payload.raw);
  } else {
    const { location, offset, length } = t.payload.external;
    for (const [key, value] of [["location", location], ["offset", String(offset)], ["length", String(length)]]) {
      m.msg(13, new Message().str(1, key).str(2, value)); // StringStringEntryProto
    }
    m.int(14, 1); // DataLocation.EXTERNAL
  }
  return m;
}

function encodeAttribute(name: string, a: AttributeValue): Message {
  // AttributeProto: name=1, f=2, i=3, s=4, t=5, floats=7, ints=8, type=20
  const m = new Message().str(1, name);
  switch (a.kind) {
    case "int": return m.int(3, a.value).int(20, AttrType.INT);
    case "float": return m.float(2, a.value).int(20, AttrType.FLOAT);
    case "string": return m.raw(4, utf8.encode(a.value)).int(20, AttrType.STRING);
    case "ints": return m.ints(8, a.value).int(20, AttrType.INTS);
    case "floats": {
      for (const f of a.value) m.float(7, f);
      return m.int(20, AttrType.FLOATS);
    }
    case "tensor": return m.msg(5, encodeTensor(a.value)).int(20, AttrType.TENSOR);
  }
}

function encodeNode(n: NodeRecord): Message {
  // NodeProto: input=1, output=2, name=3, op_type=4, attribute=5, domain=7
  const m = new Message();
  for (const i of n.inputs) m.str(1, i);
  for (const o of n.outputs) m.str(2, o);
  if (n.name) m.str(3, n.name);
  m.str(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes ?? {})) m.msg(5, encodeAttribute(k, v));
  if (n.domain) m.str(7, n.domain);
  return m;
}

function encodeValueInfo(v: ValueInfoRecord): Message {
  // ValueInfoProto: name=1, type=2; TypeProto.tensor_type=1; Tensor: elem_type=1, shape=2;
  // TensorShapeProto.dim=1; Dimension: dim_value=1, dim_param=2
  const shape = new Message();
  for (const d of v.shape) shape.msg(1, typeof d === "number" ? new Message().int(1, d) : new Message().str(2, d));
  const tensorType = new Message().int(1, v.elemType).msg(2, shape);
  return new Message().str(1, v.name).msg(2, new Message().msg(1, tensorType));
}

function encodeGraph(g: GraphRecord): Message {
  // GraphProto: node=1, name=2, initializer=5, input=11, output=12
  const m = new Message();
  for (const n of g.nodes) m.msg(1, encodeNode(n));
  m.str(2, g.name);
  for (const t of g.initializers) m.msg(5, encodeTensor(t));
  for (const i of g.inputs) m.msg(11, encodeValueInfo(i));
  for (const o of g.outputs) m.msg(12, encodeValueInfo(o));
  return m;
}

/** Serialises a model to ONNX protobuf bytes. */
export function encodeModel(model: ModelRecord): Uint8Array {
  // ModelProto: ir_version=1, producer_name=2, doc_string=6, graph=7, opset_import=8, metadata_props=14
  const m = new Message().int(1, model.irVersion);
  if (model.producerName) m.str(2, model.producerName);
  if (model.docString) m.str(6, model.docString);
  m.msg(7, encodeGraph(model.graph));
  m.msg(8, new Message().str(1, "").int(2, model.opsetVersion)); // OperatorSetIdProto
  for (const [domain, version] of Object.entries(model.domainOpsets ?? {})) m.msg(8, new Message().str(1, domain).int(2, version));
  for (const [key, value] of Object.entries(model.metadata ?? {})) m.msg(14, new Message().str(1, key).str(2, value));
  return m.finish();
}
