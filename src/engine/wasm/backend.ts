// Access to the tfjs wasm backend's heap, for kernels written in TypeScript.
//
// A wasm tensor is a block of the module's linear memory (`memoryOffset`, in bytes). Our kernels read
// and write those blocks through typed-array views and call the backend's own (C++/XNNPACK) kernels
// for the heavy arithmetic. Two rules keep this correct:
//  - views go stale when the heap grows, so take them (`f32`, `i32`, `u8`) after every allocation;
//  - intermediate TensorInfos made here are not tracked by the engine: `release` each one.
import * as tf from "@tensorflow/tfjs";

export interface WasmModule {
  HEAPU8: Uint8Array;
  tfjs: { disposeData(id: number): void };
  /** Present in the threaded build, whose heap is a SharedArrayBuffer that another thread may grow. */
  wasmMemory?: { buffer: ArrayBufferLike };
}

interface WasmTensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

/** The parts of tfjs-backend-wasm's BackendWasm that our kernels use. */
export interface WasmBackend {
  wasm: WasmModule;
  /** `get` of a disposed id asks the engine to move the data from another backend (and fails): test with `has` first. */
  dataIdMap: { get(dataId: tf.DataId): WasmTensorData | undefined; has(dataId: tf.DataId): boolean; delete(dataId: tf.DataId): boolean };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): tf.TensorInfo;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
  incRef(dataId: tf.DataId): void;
}

export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap };

/** The current heap buffer (a new object after every growth). */
export function heapBuffer(b: WasmBackend): ArrayBufferLike {
  return b.wasm.wasmMemory ? b.wasm.wasmMemory.buffer : b.wasm.HEAPU8.buffer;
}

/** Current heap size in bytes: wasm memory never shrinks, so this is the high-water mark. */
export function heapBytes(b: WasmBackend): number {
  return heapBuffer(b).byteLength;
}

function offsetOf(b: WasmBackend, t: tf.TensorInfo): number {
  const data = b.dataIdMap.get(t.dataId);
  if (!data) throw new Error("wasm tensor data not found (disposed?)");
  return data.memoryOffset;
}

export function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function f32(b: WasmBackend, t: tf.TensorInfo): Float32Array {
  return new Float32Array(heapBuffer(b), offsetOf(b, t), size(t.shape));
}
export function i32(b: WasmBackend, t: tf.TensorInfo): Int32Array {
  return new Int32Array(heapBuffer(b), offsetOf(b, t), size(t.shape));
}

/** The whole heap as float32 (index with `elementIndex`). */
export function heapF32(b: WasmBackend): Float32Array {
  const buf = heapBuffer(b);
  return new Float32Array(buf, 0, buf.byteLength >>> 2);
}

/** The whole heap as int32. */
export function heapI32(b: WasmBackend): Int32Array {
  const buf = heapBuffer(b);
  return new Int32Array(buf, 0, buf.byteLength >>> 2);
}

/**
 * A whole-heap view with the element width of `dtype` (4-byte types as Int32Array so that copies are
 * bit-exact), plus each tensor's start index in it.
 */
export function heapView(b: WasmBackend, dtype: tf.DataType): Int32Array | Uint8Array {
  const buf = heapBuffer(b);
  if (dtype === "bool") return new Uint8Array(buf);
  if (dtype === "float32" || dtype === "int32") return new Int32Array(buf, 0, buf.byteLength >>> 2);
  throw new Error(`dtype ${dtype} is not supported by this kernel`);
}
export function elementIndex(b: WasmBackend, t: tf.TensorInfo): number {
  const off = offsetOf(b, t);
  return t.dtype === "bool" ? off : off >>> 2;
}

export function alloc(b: WasmBackend, shape: number[], dtype: tf.DataType = "float32"): tf.TensorInfo {
  return b.makeOutput(shape, dtype);
}

/** Aliases made by `aliasAt`: registered with the C++ side but owning no allocation. */
const aliases = new WeakSet<object>();

export function release(b: WasmBackend, ...ts: tf.TensorInfo[]): void {
  for (const t of ts) {
    if (aliases.has(t.dataId)) {
      const data = b.dataIdMap.get(t.dataId);
      if (!data || --data.refCount > 0) continue;
      b.wasm.tfjs.disposeData(data.id);   // drops C++ caches keyed on this id; frees nothing
      b.dataIdMap.delete(t.dataId);
    } else {
      b.disposeData(t.dataId);
    }
  }
}

/**
 * A tensor viewing part of another one (float32 elements from `elementOffset`), with no copy, so that
 * stock kernels can work on a slice of a buffer. Release it before its base. Never return one from a
 * kernel.
 */
export function aliasAt(b: WasmBackend, base: tf.TensorInfo, elementOffset: number, shape: number[]): tf.TensorInfo {
  if (base.dtype !== "float32") throw new Error("aliasAt: float32 only");
  if (elementOffset + size(shape) > size(base.shape)) throw new Error("aliasAt: view exceeds its base");
  const t = b.makeOutput(shape, "float32", offsetOf(b, base) + 4 * elementOffset);
  aliases.add(t.dataId);
  return t;
}

/** A reshaped alias that shares memory (one more reference: release it like any other). */
export function reshaped(b: WasmBackend, t: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  if (size(shape) !== size(t.shape)) throw new Error(`cannot reshape [${t.shape}] to [${shape}]`);
  b.incRef(t.dataId);
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

/** The stock wasm kernels, captured before we override some of them. */
const stockKernels = new Map<string, tf.KernelConfig>();

export function rememberStockKernel(name: string): tf.KernelConfig | undefined {
  if (!stockKernels.has(name)) {
    const k = tf.getKernel(name, "wasm");
    if (k) stockKernels.set(name, k);
  }
  return stockKernels.get(name);
}

/** Runs the stock wasm kernel `name` (never one of our overrides). */
export function runStock(b: WasmBackend, name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap = {}): tf.TensorInfo {
  const k = rememberStockKernel(name);
  if (!k) throw new Error(`wasm kernel ${name} is not registered`);
  return k.kernelFunc({ inputs, backend: b, attrs }) as tf.TensorInfo;
}

/** Runs whatever kernel is registered for `name` now (ours if overridden). */
export function runRegistered(b: WasmBackend, name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap = {}): tf.TensorInfo {
  const k = tf.getKernel(name, "wasm");
  if (!k) throw new Error(`wasm kernel ${name} is not registered`);
  return k.kernelFunc({ inputs, backend: b, attrs }) as tf.TensorInfo;
}
