// safetensors: an 8-byte little-endian header length, a JSON header
// `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {...} }`, then the raw
// little-endian data (offsets relative to the end of the header).
import * as fs from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { inputError } from "../../errors.js";
import { readExactly } from "./zip.js";
import { DTYPE_SIZE, numel, viewAs, type DType, type StateDict, type TensorData } from "./tensor.js";

const SAFETENSORS_DTYPES: Record<string, DType> = {
  F64: "float64", F32: "float32", F16: "float16", BF16: "bfloat16",
  I64: "int64", I32: "int32", I16: "int16", I8: "int8", U8: "uint8", BOOL: "bool",
};
const MAX_HEADER = 100 * 1024 * 1024;

/** True when the first bytes look like a safetensors header (a plausible length, then '{'). */
export function looksLikeSafetensors(head: Uint8Array): boolean {
  if (head.length < 9) return false;
  const n = new DataView(head.buffer, head.byteOffset, head.byteLength).getBigUint64(0, true);
  return n >= 2n && n <= BigInt(MAX_HEADER) && head[8] === 0x7b;
}

export async function readSafetensors(file: string, handle: FileHandle, fileSize: number): Promise<StateDict> {
  const lengthBytes = new Uint8Array(8);
  await readExactly(handle, file, lengthBytes, 0);
  const headerLength = Number(new DataView(lengthBytes.buffer).getBigUint64(0, true));
  if (headerLength > MAX_HEADER || 8 + headerLength > fileSize) {
    throw inputError(file, `truncated safetensors: the header of ${headerLength} bytes does not fit in the ${fileSize}-byte file`);
  }
  const headerBytes = new Uint8Array(headerLength);
  await readExactly(handle, file, headerBytes, 8);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw inputError(file, "corrupt safetensors: the header is not valid JSON", e);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) throw inputError(file, "corrupt safetensors: the header is not a JSON object");
  const dataStart = 8 + headerLength;
  const dataLength = fileSize - dataStart;

  const specs: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof v?.dtype === "string" ? SAFETENSORS_DTYPES[v.dtype] : undefined;
    if (!dtype) throw inputError(file, `tensor ${name}: unsupported safetensors dtype ${String(v?.dtype)}`);
    const shape = v.shape, offsets = v.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw inputError(file, `corrupt safetensors: tensor ${name} has a bad shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isInteger(d) && d >= 0)) {
      throw inputError(file, `corrupt safetensors: tensor ${name} has bad data_offsets`);
    }
    const [begin, end] = offsets as number[];
    const nbytes = numel(shape as number[]) * DTYPE_SIZE[dtype];
    if (end - begin !== nbytes) throw inputError(file, `corrupt safetensors: tensor ${name} ${JSON.stringify(shape)} ${dtype} needs ${nbytes} bytes, data_offsets give ${end - begin}`);
    if (end > dataLength) throw inputError(file, `truncated safetensors: tensor ${name} ends at data byte ${end}, but only ${dataLength} data bytes are present`);
    specs.push({ name, dtype, shape: (shape as number[]).slice(), begin, end });
  }
  // In the writer's order (JSON objects reorder integer-like names).
  specs.sort((a, b) => a.begin - b.begin);
  // tensors must not share bytes: a writer never overlaps them, so an overlap is a forged or corrupt file
  let prev: (typeof specs)[number] | undefined;
  for (const s of specs) {
    if (s.end === s.begin) continue;
    if (prev && s.begin < prev.end) {
      throw inputError(file, `corrupt safetensors: tensors ${prev.name} (data bytes ${prev.begin}..${prev.end}) and ${s.name} (${s.begin}..${s.end}) overlap`);
    }
    prev = s;
  }
  const out: StateDict = new Map();
  for (const s of specs) {
    const bytes = new Uint8Array(s.end - s.begin);
    await readExactly(handle, file, bytes, dataStart + s.begin);
    const tensor: TensorData = { dtype: s.dtype, shape: s.shape, data: viewAs(s.dtype, bytes.buffer as ArrayBuffer) };
    out.set(s.name, tensor);
  }
  return out;
}

const SAFETENSORS_DTYPE = Object.fromEntries(Object.entries(SAFETENSORS_DTYPES).map(([k, v]) => [v, k])) as Record<DType, string>;

/**
 * Writes a state dict as safetensors (8-byte little-endian header length, JSON header padded to 8
 * bytes, raw little-endian data in insertion order), atomically. `metadata` goes to `__metadata__`.
 */
export function writeSafetensors(file: string, sd: StateDict, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of sd) {
    const bytes = t.data.byteLength;
    header[name] = { dtype: SAFETENSORS_DTYPE[t.dtype], shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const tmp = `${file}.tmp-${process.pid}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "w");
    fs.writeSync(fd, len);
    fs.writeSync(fd, Buffer.from(json));
    for (const t of sd.values()) fs.writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    // never leave the temporary file behind (a full disk, a folder in the way, ...)
    if (fd !== undefined) try { fs.closeSync(fd); } catch { /* already closed */ }
    fs.rmSync(tmp, { force: true });
    throw inputError(file, "could not be written", e);
  }
}
