// Matrix products for our wasm kernels, on the wasm heap, by one of two providers:
//
//  - "onnxruntime": onnxruntime-node's MLAS SGEMM (native code: AVX2/AVX-512 on x86-64, NEON on arm64,
//    its own thread pool), called synchronously through the package's native binding with
//    Float32Array views of the wasm heap as inputs *and* as the preallocated output: no copies.
//    Measured here (2 cores, [1024,2048]·[2048,512], tools/engine-probe.ts gemm): 271 against 67
//    GFLOP/s for XNNPACK-wasm with 2 threads. onnxruntime-node refuses views of a SharedArrayBuffer,
//    so this needs the single-threaded wasm build (whose heap is a plain ArrayBuffer); MLAS brings
//    the threads.
//  - "xnnpack": the stock wasm BatchMatMul (XNNPACK) on flag-free operands; transposed operands are
//    transposed on the heap first.
//
// The ONNX Gemm node takes transA/transB itself, so with onnxruntime no operand is ever transposed.
import * as path from "node:path";
import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs";
import { encodeModel } from "../../modeling/onnx/proto.js";
import { DataType } from "../../modeling/onnx/proto.js";
import { projectRoot } from "../../paths.js";
import { WasmBackend, alloc, release, reshaped, runStock, heapBuffer, heapView, elementIndex, size } from "./backend.js";
import { transposeHeap, transposeInto } from "./layout.js";

export type GemmProviderName = "onnxruntime" | "xnnpack";

export interface OrtSession {
  run(feeds: Record<string, unknown>, fetches: Record<string, unknown>, options: object): Record<string, unknown>;
  dispose(): void;
}
interface OrtBinding {
  binding: { InferenceSession: new () => OrtSession & { loadModel(buf: ArrayBufferLike, off: number, len: number, opts: object): void } };
  initOrt(): void;
}
type OrtTensorCtor = new (type: "float32", data: Float32Array, dims: readonly number[]) => unknown;

let provider: GemmProviderName = "xnnpack";
let ortThreads = 1;
let ort: { binding: OrtBinding; Tensor: OrtTensorCtor } | undefined;
const sessions = new Map<string, OrtSession>();

/** The ONNX model of one Gemm node with symbolic sizes: Y = op(A)·op(B). */
function gemmModel(transA: boolean, transB: boolean): Uint8Array {
  return encodeModel({
    graph: {
      name: "gemm",
      nodes: [{
        opType: "Gemm", inputs: ["A", "B"], outputs: ["Y"], name: "gemm",
        attributes: { transA: { kind: "int", value: transA ? 1 : 0 }, transB: { kind: "int", value: transB ? 1 : 0 } },
      }],
      initializers: [],
      inputs: [
        { name: "A", elemType: DataType.FLOAT, shape: ["a0", "a1"] },
        { name: "B", elemType: DataType.FLOAT, shape: ["b0", "b1"] },
      ],
      outputs: [{ name: "Y", elemType: DataType.FLOAT, shape: ["m", "n"] }],
    },
    opsetVersion: 17,
    irVersion: 8,
    producerName: "maskdistill",
  });
}

/** The ONNX model of one batched MatMul node: Y [B, m, n] = A [B|1, m, k] · B [B|1, k, n]. */
function batchedModel(): Uint8Array {
  return encodeModel({
    graph: {
      name: "batched_matmul",
      nodes: [{ opType: "MatMul", inputs: ["A", "B"], outputs: ["Y"], name: "matmul" }],
      initializers: [],
      inputs: [
        { name: "A", elemType: DataType.FLOAT, shape: ["a0", "a1", "a2"] },
        { name: "B", elemType: DataType.FLOAT, shape: ["b0", "b1", "b2"] },
      ],
      outputs: [{ name: "Y", elemType: DataType.FLOAT, shape: ["y0", "m", "n"] }],
    },
    opsetVersion: 17,
    irVersion: 8,
    producerName: "maskdistill",
  });
}

function session(transA: boolean, transB: boolean, batched = false): OrtSession {
  return ortSession(batched ? "batched" : `gemm${transA ? 1 : 0}${transB ? 1 : 0}`,
    () => (batched ? batchedModel() : gemmModel(transA, transB)));
}

/**
 * The onnxruntime session of a small model, made once per key (dropped when the provider changes).
 * Other kernels use it for work MLAS does better than single-threaded wasm (batchnorm.ts, convOrt.ts).
 */
export function ortSession(key: string, model: () => Uint8Array, opts: { memArena?: boolean } = {}): OrtSession {
  if (provider !== "onnxruntime") throw new Error("onnxruntime sessions need the onnxruntime GEMM provider");
  let s = sessions.get(key);
  if (!s) {
    const bytes = model();
    const created = new ort!.binding.binding.InferenceSession();
    created.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, {
      intraOpNumThreads: ortThreads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all",
      logSeverityLevel: 3,
      // Each session's arena keeps the largest intermediates it has seen: worth it for a few shared
      // graphs, not for the dozens of per-layer ones (convOrt.ts), which ask for memArena: false.
      enableCpuMemArena: opts.memArena ?? true,
      // No spinning between runs: the JS thread does the elementwise work in between, and a
      // spinning MLAS worker takes the core it needs (steps measured 20–35 % slower with spinning).
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    });
    sessions.set(key, created);
    s = created;
  }
  return s;
}

/** Disposes the session made under `key`, if any (for caches whose source data is gone: convOrt.ts). */
export function dropOrtSession(key: string): void {
  sessions.get(key)?.dispose();
  sessions.delete(key);
}

/**
 * Runs a session on float32 heap tensors: inputs and preallocated outputs are views of the wasm
 * heap (take no view before the outputs are allocated: allocation may grow the heap). `shapes`
 * overrides the shape a tensor is presented with (same size).
 */
export function ortRun(b: WasmBackend, s: OrtSession, feeds: Record<string, tf.TensorInfo | [tf.TensorInfo, number[]]>,
    fetches: Record<string, tf.TensorInfo | [tf.TensorInfo, number[]]>): void {
  const T = ort!.Tensor;
  const wrap = (v: tf.TensorInfo | [tf.TensorInfo, number[]]) => {
    const [t, shape] = Array.isArray(v) ? v : [v, v.shape];
    return new T("float32", view(b, t), shape);
  };
  const f: Record<string, unknown> = {}, o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = wrap(v);
  for (const [k, v] of Object.entries(fetches)) o[k] = wrap(v);
  s.run(f, o, {});
}

/**
 * Selects the GEMM provider. "onnxruntime" needs onnxruntime-node and a heap that is a plain
 * ArrayBuffer (the single-threaded wasm build); returns the provider in effect and, if it is not the
 * one asked for, why.
 */
export function setGemmProvider(want: GemmProviderName, threads = 1, b?: WasmBackend): { provider: GemmProviderName; why?: string } {
  for (const s of sessions.values()) s.dispose();
  sessions.clear();
  provider = "xnnpack";
  if (want === "xnnpack") return { provider };
  if (b && heapBuffer(b) instanceof SharedArrayBuffer) {
    return { provider, why: "the threaded wasm build's heap is a SharedArrayBuffer, which onnxruntime-node does not accept" };
  }
  try {
    const req = createRequire(path.join(projectRoot(), "package.json"));
    const pkgDir = path.dirname(req.resolve("onnxruntime-node/package.json"));
    const binding = req(path.join(pkgDir, "dist", "binding.js")) as OrtBinding;
    const common = req("onnxruntime-node") as { Tensor: OrtTensorCtor };
    binding.initOrt();
    ort = { binding, Tensor: common.Tensor };
    ortThreads = Math.max(1, Math.floor(threads));
    provider = "onnxruntime";
    session(false, false);   // fail here, not in a kernel, if the runtime cannot load
    return { provider };
  } catch (e) {
    provider = "xnnpack";
    return { provider, why: `onnxruntime-node is unavailable (${(e as Error).message.split("\n")[0]})` };
  }
}

export function gemmProvider(): { provider: GemmProviderName; threads: number } {
  return { provider, threads: provider === "onnxruntime" ? ortThreads : 1 };
}

function view(b: WasmBackend, t: tf.TensorInfo): Float32Array {
  const data = b.dataIdMap.get(t.dataId);
  if (!data) throw new Error("gemm: operand not on the wasm heap (disposed?)");
  return new Float32Array(heapBuffer(b), data.memoryOffset, size(t.shape));
}

/**
 * C = op(A)·op(B) for 2-D float32 operands on the heap, op = transpose where asked. `out`, when
 * given, receives C (it must have C's size); otherwise a new tensor is allocated.
 */
export function gemm(b: WasmBackend, a: tf.TensorInfo, bm: tf.TensorInfo,
    opts: { transA?: boolean; transB?: boolean; out?: tf.TensorInfo } = {}): tf.TensorInfo {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const [ar, ac] = a.shape, [br, bc] = bm.shape;
  const m = transA ? ac : ar, k = transA ? ar : ac, k2 = transB ? bc : br, n = transB ? br : bc;
  if (k !== k2) throw new Error(`gemm: inner sizes ${k} and ${k2} differ ([${a.shape}]${transA ? "ᵀ" : ""} · [${bm.shape}]${transB ? "ᵀ" : ""})`);
  if (opts.out && size(opts.out.shape) !== m * n) throw new Error(`gemm: output has ${size(opts.out.shape)} elements, expected ${m * n}`);
  if (provider === "onnxruntime" || m === 0 || n === 0 || k === 0) {
    const out = opts.out ?? alloc(b, [m, n]);
    if (m === 0 || n === 0) return out;
    if (k === 0) {
      view(b, out).fill(0);
      return out;
    }
    if (transA || transB) return ortFlagFree(b, a, bm, transA, transB, m, k, n, out);
    ortRun(b, session(false, false), { A: a, B: bm }, { Y: [out, [m, n]] });
    return out;
  }
  const temps: tf.TensorInfo[] = [];
  const a2 = transA ? (temps.push(transposeHeap(b, a, [1, 0])), temps[temps.length - 1]) : a;
  const b2 = transB ? (temps.push(transposeHeap(b, bm, [1, 0])), temps[temps.length - 1]) : bm;
  const a3 = reshaped(b, a2, [1, m, k]);
  const b3 = reshaped(b, b2, [1, k, n]);
  const c = runStock(b, "BatchMatMul", { a: a3, b: b3 }, { transposeA: false, transposeB: false });
  release(b, a3, b3, ...temps);
  if (!opts.out) {
    c.shape = [m, n];
    return c;
  }
  view(b, opts.out).set(view(b, c));
  release(b, c);
  return opts.out;
}

/**
 * MLAS runs a product with a transposed operand at about half the speed of a plain one here (measured
 * on 30 shapes of a DeepLab step: 100–150 against 250–290 GFLOP/s), while our tile transpose moves
 * about 350 M floats/s. So a flagged product is turned into a plain one when the transposes cost less
 * than the time saved (about one plain product), choosing the cheaper of
 *   C = op(A)·op(B)       transposing the flagged operands, or
 *   Cᵀ = op(B)ᵀ·op(A)ᵀ    transposing the unflagged operands and then Cᵀ
 * (the second wins for colsᵀ·dy: dy and dW are much smaller than the im2col matrix).
 */
const TRANSPOSE_FLOATS_PER_MS = 350_000;
/** For the tests: force one way of handling flags (each must give the same product). */
export const gemmTuning = { flagStrategy: "auto" as "auto" | "flags" | "transpose" | "transposeResult" };
const PLAIN_FLOPS_PER_MS = 250_000_000;

function ortFlagFree(b: WasmBackend, a: tf.TensorInfo, bm: tf.TensorInfo, transA: boolean, transB: boolean,
    m: number, k: number, n: number, out: tf.TensorInfo): tf.TensorInfo {
  const sizeA = size(a.shape), sizeB = size(bm.shape);
  const direct = (transA ? sizeA : 0) + (transB ? sizeB : 0);
  const viaCt = (transB ? 0 : sizeB) + (transA ? 0 : sizeA) + m * n;
  const saved = (2 * m * n * k) / PLAIN_FLOPS_PER_MS;
  const strategy = gemmTuning.flagStrategy !== "auto" ? gemmTuning.flagStrategy
    : Math.min(direct, viaCt) / TRANSPOSE_FLOATS_PER_MS >= saved ? "flags" : direct <= viaCt ? "transpose" : "transposeResult";
  if (strategy === "flags") {
    ortRun(b, session(transA, transB), { A: a, B: bm }, { Y: [out, [m, n]] });
    return out;
  }
  if (strategy === "transpose") {
    const a2 = transA ? transposeHeap(b, a, [1, 0]) : a;
    const b2 = transB ? transposeHeap(b, bm, [1, 0]) : bm;
    gemm(b, a2, b2, { out });
    if (a2 !== a) release(b, a2);
    if (b2 !== bm) release(b, b2);
    return out;
  }
  // Cᵀ [n, m] = op(B)ᵀ · op(A)ᵀ with plain operands, then transposed into out.
  const bt = transB ? bm : transposeHeap(b, bm, [1, 0]);
  const at = transA ? a : transposeHeap(b, a, [1, 0]);
  const ct = gemm(b, bt, at);
  const heap = heapView(b, "float32");
  transposeInto(heap, elementIndex(b, ct), elementIndex(b, out), [n, m], [1, 0]);
  release(b, ct);
  if (bt !== bm) release(b, bt);
  if (at !== a) release(b, at);
  return out;
}

/**
 * C [batch, m, n] = A [batchA, m, k] · B [batchB, k, n], batchA and batchB equal or 1 (broadcast),
 * flag-free operands, for the onnxruntime provider: one call for the whole batch (attention runs
 * hundreds of tiny products per layer; one call each would cost more than the arithmetic).
 */
export function gemmBatched(b: WasmBackend, a: tf.TensorInfo, bm: tf.TensorInfo, out: tf.TensorInfo): tf.TensorInfo {
  if (provider !== "onnxruntime") throw new Error("gemmBatched needs the onnxruntime GEMM provider");
  ortRun(b, session(false, false, true), { A: a, B: bm }, { Y: out });
  return out;
}
