// Training checkpoints as safetensors with their JSON metadata: writing goes through the project's
// writer (src/modeling/checkpoint); reading here keeps `__metadata__`, which the state-dict reader drops.
import * as fs from "node:fs";
import { inputError } from "../errors.js";
import { looksLikeSafetensors } from "../modeling/checkpoint/safetensors.js";
export { writeSafetensors } from "../modeling/checkpoint/index.js";

export interface SafetensorsContents {
  /** float32 tensors (other dtypes are an error: training checkpoints are float32). */
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  metadata: Record<string, string>;
}

/** Reads a float32 safetensors file (or only its header and metadata). */
export async function readSafetensorsFile(file: string, opts: { headerOnly?: boolean } = {}): Promise<SafetensorsContents> {
  if (!fs.existsSync(file)) throw inputError(file, "no such checkpoint");
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || fs.readSync(fd, lenBuf, 0, 8, 0) !== 8) throw inputError(file, "truncated safetensors file (no header length)");
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (!(headerLen > 1 && 8 + headerLen <= size)) throw inputError(file, `bad safetensors header length ${headerLen} for a ${size}-byte file`);
    const headerBuf = Buffer.alloc(headerLen);
    fs.readSync(fd, headerBuf, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString("utf8")) as Record<string, unknown>;
    } catch (e) {
      throw inputError(file, "safetensors header is not valid JSON", e);
    }
    const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
    const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
    if (opts.headerOnly) return { tensors, metadata };
    const base = 8 + headerLen;
    for (const [name, entry] of Object.entries(header)) {
      if (name === "__metadata__") continue;
      const { dtype, shape, data_offsets: [start, end] } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
      if (dtype !== "F32") throw inputError(file, `tensor "${name}" is ${dtype}; training checkpoints are F32`);
      const n = shape.reduce((a, b) => a * b, 1);
      if (end - start !== 4 * n || base + end > size) throw inputError(file, `tensor "${name}" has a bad extent [${start}, ${end}) for shape [${shape}]`);
      const data = new Float32Array(n);
      fs.readSync(fd, new Uint8Array(data.buffer), 0, 4 * n, base + start);
      tensors.set(name, { shape, data });
    }
    return { tensors, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/** The `__metadata__` of a model file when it is a safetensors file (of any dtype); undefined for a PyTorch pickle. */
export async function safetensorsMetadataOf(file: string): Promise<Record<string, string> | undefined> {
  const head = Buffer.alloc(16);
  const fd = fs.openSync(file, "r");
  try {
    fs.readSync(fd, head, 0, 16, 0);
  } finally {
    fs.closeSync(fd);
  }
  return looksLikeSafetensors(head) ? (await readSafetensorsFile(file, { headerOnly: true })).metadata : undefined;
}
