// A small NumPy `.npy` reader/writer: float32, float16 and uint8 arrays, C order, little endian —
// what the CRF logits/Q files use. Format (NumPy's `format.py` docs): magic "\x93NUMPY", major/minor
// version bytes, header length (uint16 LE for v1.0, uint32 LE for v2.0/v3.0), an ASCII Python dict
// `{'descr': '<f4', 'fortran_order': False, 'shape': (21, 107, 160), }` padded with spaces and "\n"
// so the data start at a multiple of 64 bytes. Anything else is refused with an error naming the file.
import * as fs from "node:fs";
import { inputError, MaskdistillError } from "../errors.js";

export type NpyDtype = "float32" | "float16" | "uint8";

/** An array read from `.npy`. float16 data are widened to float32 (exactly) on read. */
export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: Float32Array | Uint8Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const DESCR: Record<string, NpyDtype> = { "<f4": "float32", "<f2": "float16", "|u1": "uint8", "<u1": "uint8" };
const WRITE_DESCR: Record<NpyDtype, string> = { float32: "<f4", float16: "<f2", uint8: "|u1" };
const ITEMSIZE: Record<NpyDtype, number> = { float32: 4, float16: 2, uint8: 1 };

/** IEEE binary16 bits → number (exact). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** number → IEEE binary16 bits, rounded to nearest even (as NumPy's astype(float16)). */
export function floatToHalf(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || (v === 0 && 1 / v < 0) ? 0x8000 : 0;
  const a = Math.abs(Math.fround(v));
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) {
    // subnormal (or zero): units of 2^-24, round half to even
    const q = a / 2 ** -24;
    let r = Math.round(q);
    if (r - q === 0.5 && r & 1) r -= 1;
    return sign | r; // r == 1024 gives the smallest normal, which is the right bit pattern
  }
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const q = (a / 2 ** e - 1) * 1024; // exact: a has 24 significant bits
  let m = Math.round(q);
  if (m - q === 0.5 && m & 1) m -= 1;
  if (m === 1024) { m = 0; e++; }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

/** Parses `.npy` bytes; `file` names the source in errors. */
export function parseNpy(buf: Uint8Array, file: string): NpyArray {
  if (buf.length < 10 || MAGIC.some((b, i) => buf[i] !== b)) throw new MaskdistillError("not a NumPy .npy file (bad magic bytes)", file);
  const major = buf[6];
  let headerLen: number, start: number;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (major === 1) { headerLen = dv.getUint16(8, true); start = 10; }
  else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new MaskdistillError("truncated .npy header", file);
    headerLen = dv.getUint32(8, true); start = 12;
  } else throw new MaskdistillError(`unsupported .npy format version ${major}.${buf[7]}`, file);
  if (start + headerLen > buf.length) throw new MaskdistillError("truncated .npy header", file);
  const header = Buffer.from(buf.buffer, buf.byteOffset + start, headerLen).toString("latin1");
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new MaskdistillError(`malformed .npy header ${JSON.stringify(header.trim())}`, file);
  }
  const dtype = DESCR[descr];
  if (!dtype) throw new MaskdistillError(`unsupported .npy dtype '${descr}' (expected float32 '<f4', float16 '<f2' or uint8 '|u1', little endian)`, file);
  if (fortran === "True") throw new MaskdistillError("Fortran-order .npy arrays are not supported (save with C order, e.g. np.ascontiguousarray)", file);
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (shape.some((s) => !Number.isInteger(s) || s < 0)) throw new MaskdistillError(`bad .npy shape (${shapeText})`, file);
  const count = shape.reduce((a, b) => a * b, 1);
  const off = start + headerLen, size = ITEMSIZE[dtype];
  if (buf.length - off !== count * size) {
    throw new MaskdistillError(`.npy data have ${buf.length - off} bytes, expected ${count * size} for shape (${shape.join(", ")}) ${dtype}`, file);
  }
  let data: Float32Array | Uint8Array;
  if (dtype === "uint8") data = buf.slice(off, off + count);
  else if (dtype === "float32") {
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = dv.getFloat32(off + 4 * i, true);
  } else {
    data = new Float32Array(count);
    const table = halfTable();
    for (let i = 0; i < count; i++) data[i] = table[dv.getUint16(off + 2 * i, true)];
  }
  return { dtype, shape, data };
}

let HALF: Float32Array | null = null;
function halfTable(): Float32Array {
  if (!HALF) {
    HALF = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) HALF[h] = halfToFloat(h);
  }
  return HALF;
}

/** Reads a `.npy` file (float32, float16 or uint8; C order; little endian). */
export function readNpy(file: string): NpyArray {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new MaskdistillError(".npy file not found", file);
    throw inputError(file, "cannot read .npy file", e);
  }
  return parseNpy(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), file);
}

/** Encodes an array as `.npy` v1.0 bytes. float16 rounds float values to nearest even. */
export function encodeNpy(data: Float32Array | Uint8Array | ArrayLike<number>, shape: number[], dtype: NpyDtype = data instanceof Uint8Array ? "uint8" : "float32"): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new MaskdistillError(`encodeNpy: ${data.length} values for shape (${shape.join(", ")})`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let header = `{'descr': '${WRITE_DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = 10 + header.length + 1;
  header += " ".repeat((64 - (unpadded % 64)) % 64) + "\n";
  const size = ITEMSIZE[dtype];
  const out = new Uint8Array(10 + header.length + count * size);
  out.set(MAGIC, 0);
  out[6] = 1; out[7] = 0;
  const dv = new DataView(out.buffer);
  dv.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const off = 10 + header.length;
  if (dtype === "uint8") for (let i = 0; i < count; i++) out[off + i] = data[i];
  else if (dtype === "float32") for (let i = 0; i < count; i++) dv.setFloat32(off + 4 * i, data[i], true);
  else for (let i = 0; i < count; i++) dv.setUint16(off + 2 * i, floatToHalf(data[i]), true);
  return out;
}

/** Writes a `.npy` file atomically (a killed run never leaves half a file). */
export function writeNpy(file: string, data: Float32Array | Uint8Array | ArrayLike<number>, shape: number[], dtype?: NpyDtype): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, encodeNpy(data, shape, dtype));
  fs.renameSync(tmp, file);
}
