// Forward 2-D convolution for inference as an onnxruntime Conv node (NHWC in and out), for the
// onnxruntime GEMM provider, and the inference conv unit CONV_AFFINE built on it.
//
// With the filter a constant of the session, onnxruntime's NCHWc graph transformer (optimisation level
// "all") turns the node into ReorderInput(channels_last) → NchwcConv → ReorderOutput(channels_last):
// MLAS's blocked direct convolution, reading and writing our NHWC tensors with no transpose of ours.
// Measured on Mask R-CNN R50-FPN shapes at short side 800 (2 threads, same run, loaded machine): 3×3
// convs 1.2–2× faster than im2col + SGEMM (convGemm.ts: FPN/RPN 200×272×256 1.8×, mask head
// 100×14×14×256 2×), the 7×7 stem 1.7×; a plain 1×1 stride-1 conv is slower there (the two
// reorders cost more than the product saves), so Conv2D leaves those to one GEMM.
//
// A constant filter means one session per filter tensor, so this path is for inference only: it is
// taken when no gradient tape is recording (training recomputes its filters every step and keeps the
// im2col path, whose gradients are in convGemm.ts). Sessions are cached by the wasm data ids of the
// tensors they hold as constants (unique for the backend's lifetime; tfjs variables get a new one on
// every assign) and disposed once one of those tensors is gone.
//
// CONV_AFFINE is the inference form of a whole unit, conv → bias or frozen batch norm → optional ReLU
// (ops.ts `inferenceConv`): the per-channel affine map is folded into the session's filter and bias and
// the ReLU fused into the NchwcConv, so the unit makes no elementwise passes (single-threaded wasm)
// over its output. 1×1 stride-1 units stay separate ops: one GEMM plus the passes measured 10–60 %
// faster than the session with its reorders.
import * as tf from "@tensorflow/tfjs";
import { WasmBackend, KernelArgs, alloc, heapF32, elementIndex, size } from "./backend.js";
import { ortSession, ortRun, dropOrtSession } from "./gemm.js";
import { mostlyPadding } from "./convGemm.js";
import { createGraph, DataType } from "../../modeling/onnx/graph.js";

type Info = tf.backend_util.Conv2DInfo;

/** Session key → the tensors whose values it holds as constants. */
const sessionSources = new Map<string, tf.DataId[]>();

/** For the tests: `enabled: false` keeps every forward conv on the im2col path. */
export const convOrtTuning = { enabled: true };

/** True while a gradient tape records (tf.grad, variableGrads): conv outputs then feed backward passes. */
export function recordingGradients(): boolean {
  return tf.engine().state.gradientDepth > 0;
}

/** Whether the forward conv `info` runs as an onnxruntime Conv session (see the file comment). */
export function useOrtConv(info: Info): boolean {
  if (!convOrtTuning.enabled || recordingGradients()) return false;
  const p = info.padInfo;
  if (Math.min(p.top, p.bottom, p.left, p.right) < 0) return false;
  // 1×1 stride 1: one GEMM on the NHWC data as it is, faster than the reorders even with BN/ReLU fused
  const pointwise = info.filterHeight === 1 && info.filterWidth === 1 && info.strideHeight === 1 && info.strideWidth === 1;
  // mostly padding (dilated convs on small maps, DeepLab's ASPP): the per-tap GEMMs skip those products
  return !pointwise && info.batchSize * info.outHeight * info.outWidth > 0 && !mostlyPadding(info);
}

/** Per output channel: y ↦ y·scale + shift (scale omitted: 1), then ReLU if asked. */
interface Epilogue { scale?: Float64Array; shift?: Float64Array; relu: boolean }

/** Conv with W [Co, Ci, kh, kw] and bias B (constants), then optional ReLU, between NHWC tensors X [n, h, w, Ci] → Y [n, oh, ow, Co]. */
function convModel(info: Info, w: Float32Array, bias: Float32Array | undefined, relu: boolean): Uint8Array {
  const { inChannels: ci, outChannels: co, filterHeight: kh, filterWidth: kw, padInfo: p } = info;
  const g = createGraph("conv_nhwc");
  g.input("X", DataType.FLOAT, ["n", "h", "w", ci]);
  const consts = [g.constFloat([co, ci, kh, kw], w, "W"), ...(bias ? [g.constFloat([co], bias, "B")] : [])];
  const xNchw = g.op("Transpose", ["X"], { perm: [0, 3, 1, 2] });
  let y = g.op("Conv", [xNchw, ...consts], {
    kernel_shape: [kh, kw], strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth], pads: [p.top, p.left, p.bottom, p.right],
  });
  if (relu) y = g.op("Relu", [y]);
  g.node("Transpose", [y], { perm: [0, 2, 3, 1] }, ["Y"]);
  g.output("Y", DataType.FLOAT, ["n", "oh", "ow", co]);
  return g.encode();
}

/** The filter [kh, kw, Ci, Co] on the heap in ONNX's order [Co, Ci, kh, kw], output channel o scaled by scale[o]. */
function onnxFilter(b: WasmBackend, filter: tf.TensorInfo, scale?: Float64Array): Float32Array {
  const [kh, kw, ci, co] = filter.shape;
  const hv = heapF32(b), s = elementIndex(b, filter);
  const w = new Float32Array(co * ci * kh * kw);
  for (let t = 0; t < kh * kw; t++) {
    for (let c = 0; c < ci; c++) {
      const row = s + (t * ci + c) * co;
      for (let o = 0; o < co; o++) w[(o * ci + c) * kh * kw + t] = scale ? hv[row + o] * scale[o] : hv[row + o];
    }
  }
  return w;
}

/** Disposes the sessions that hold values of tensors which no longer exist. */
function dropSessionsOfDisposedTensors(b: WasmBackend): void {
  for (const [key, sources] of sessionSources) {
    if (sources.every((d) => b.dataIdMap.has(d))) continue;
    dropOrtSession(key);
    sessionSources.delete(key);
  }
}

function dataIdNumber(b: WasmBackend, t: tf.TensorInfo): number {
  const data = b.dataIdMap.get(t.dataId);
  if (!data) throw new Error("conv: operand not on the wasm heap (disposed?)");
  return data.id;
}

/**
 * y = epilogue(conv(x, filter)) in an onnxruntime Conv session made for these constant tensors
 * (`filter` and `sources`, from which `epilogue` is computed on a cache miss) and this geometry.
 */
function convSession(b: WasmBackend, x: tf.TensorInfo, filter: tf.TensorInfo, info: Info,
    sources: tf.TensorInfo[], tag: string, epilogue: () => Epilogue): tf.TensorInfo {
  const p = info.padInfo;
  const ids = [filter, ...sources].map((t) => dataIdNumber(b, t)).join(",");
  const key = `conv_${ids}_${tag}_s${info.strideHeight},${info.strideWidth}_d${info.dilationHeight},${info.dilationWidth}_p${p.top},${p.left},${p.bottom},${p.right}`;
  if (!sessionSources.has(key)) {
    dropSessionsOfDisposedTensors(b);
    sessionSources.set(key, [filter, ...sources].map((t) => t.dataId));
  }
  const session = ortSession(key, () => {
    const e = epilogue();
    return convModel(info, onnxFilter(b, filter, e.scale), e.shift && Float32Array.from(e.shift), e.relu);
  }, { memArena: false });
  const y = alloc(b, [info.batchSize, info.outHeight, info.outWidth, info.outChannels]);
  ortRun(b, session, { X: x }, { Y: y });
  return y;
}

/** y = conv(x, filter) (the Conv2D kernel's inference path). */
export function convForwardOrt(b: WasmBackend, x: tf.TensorInfo, filter: tf.TensorInfo, info: Info): tf.TensorInfo {
  return convSession(b, x, filter, info, [], "plain", () => ({ relu: false }));
}

export const CONV_AFFINE = "MaskdistillConvAffine";

/** Attributes of CONV_AFFINE: the conv's geometry as for Conv2D, then ReLU or not; eps of the frozen batch norm. */
export interface ConvAffineAttrs {
  strides: number | [number, number];
  pad: number | "same" | "valid";
  dilations: number | [number, number];
  relu: boolean;
  eps?: number;
}

/**
 * relu?(conv(x, filter) + bias) for inputs {x, filter, bias}, or relu?(frozen BN(conv(x, filter)))
 * for {x, filter, gamma, beta, mean, variance}: y·s + (β − μ·s), s = γ/√(σ² + ε), folded into the
 * session's filter and bias. Only for geometries where `useOrtConv` (ops.ts checks).
 */
function convAffineKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const b = backend as WasmBackend;
  const { x, filter, bias, gamma, beta, mean, variance } = inputs as Record<string, tf.TensorInfo>;
  const a = attrs as unknown as ConvAffineAttrs;
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad);
  const co = info.outChannels;
  const read = (t: tf.TensorInfo) => {
    if (size(t.shape) !== co) throw new Error(`${CONV_AFFINE}: per-channel operand has shape [${t.shape}], expected [${co}]`);
    return Float64Array.from(heapF32(b).subarray(elementIndex(b, t), elementIndex(b, t) + co));
  };
  if (bias) return convSession(b, x, filter, info, [bias], `bias_relu${+a.relu}`, () => ({ shift: read(bias), relu: a.relu }));
  const eps = a.eps ?? 1e-5;
  return convSession(b, x, filter, info, [gamma, beta, mean, variance], `bn${eps}_relu${+a.relu}`, () => {
    const g = read(gamma), be = read(beta), m = read(mean), v = read(variance);
    const scale = g.map((gi, o) => gi / Math.sqrt(v[o] + eps));
    return { scale, shift: be.map((bi, o) => bi - m[o] * scale[o]), relu: a.relu };
  });
}

export const convOrtKernels: Array<{ name: string; kernelFunc: (a: KernelArgs) => tf.TensorInfo }> = [
  { name: CONV_AFFINE, kernelFunc: convAffineKernel },
];

/** How many cached sessions hold values of live tensors (for the tests). */
export function cachedConvSessions(): number {
  dropSessionsOfDisposedTensors(tf.backend() as unknown as WasmBackend);
  return sessionSources.size;
}
