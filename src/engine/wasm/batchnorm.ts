// Training-mode batch normalisation (+ optional ReLU) as two fused wasm kernels.
//
// Composed from tf ops, BN-train + ReLU makes about 17 passes over the activations per step
// (mean, subtract, square, mean, scale, shift, relu; and as many backwards), each a separate
// single-threaded stock kernel: a third of a DeepLab training step once the products run in MLAS.
// With the onnxruntime provider each direction is one small ONNX graph run natively (vectorised and
// on MLAS's threads) over views of the wasm heap; otherwise four JS passes over the heap: statistics
// and output forward, two sums and the input gradient backward.
//
//   forward   μ, σ² over every axis but the channels (float64 sums around a per-channel shift),
//             y = max(0?, x·s + t),  s = γ/√(σ²+ε),  t = β − μ·s
//   backward  dz = dy·[y > 0] (with ReLU) or dy;  dβ = Σ dz,  dγ = Σ dz·x̂,  x̂ = (x − μ)/√(σ²+ε)
//             dx = s·(dz − dβ/M − x̂·dγ/M)  written as  a·dz + b·x + c per channel.
import * as tf from "@tensorflow/tfjs";
import { WasmBackend, KernelArgs, alloc, release, heapF32, elementIndex } from "./backend.js";
import { createGraph, DataType } from "../../modeling/onnx/graph.js";
import { gemmProvider, ortSession, ortRun } from "./gemm.js";

const F = DataType.FLOAT;

/** Forward graph: X [M, C], G, B [C] → Y [M, C], MEAN, VAR [C] (two-pass variance). */
function forwardModel(eps: number, relu: boolean): Uint8Array {
  const g = createGraph("batchnorm_train");
  g.input("X", F, ["m", "c"]); g.input("G", F, ["c"]); g.input("B", F, ["c"]);
  g.node("ReduceMean", ["X"], { axes: [0], keepdims: 0 }, ["MEAN"]);
  const xc = g.op("Sub", ["X", "MEAN"]);
  g.node("ReduceMean", [g.op("Mul", [xc, xc])], { axes: [0], keepdims: 0 }, ["VAR"]);
  const scale = g.op("Div", ["G", g.op("Sqrt", [g.op("Add", ["VAR", g.constFloat([], [eps])])])]);
  const z = g.op("Add", [g.op("Mul", [xc, scale]), "B"]);
  g.node(relu ? "Relu" : "Identity", [z], {}, ["Y"]);
  g.output("Y", F, ["m", "c"]); g.output("MEAN", F, ["c"]); g.output("VAR", F, ["c"]);
  return g.encode();
}

/** Backward graph: DY, X, Y [M, C], G, MEAN, VAR [C], INVM [1] (1/M) → DX [M, C], DG, DB [C]. */
function backwardModel(eps: number, relu: boolean): Uint8Array {
  const g = createGraph("batchnorm_train_grad");
  g.input("DY", F, ["m", "c"]); g.input("X", F, ["m", "c"]); g.input("Y", F, ["m", "c"]);
  g.input("G", F, ["c"]); g.input("MEAN", F, ["c"]); g.input("VAR", F, ["c"]); g.input("INVM", F, [1]);
  const zero = relu ? g.constFloat([], [0]) : "";
  const dz = relu ? g.op("Where", [g.op("Greater", ["Y", zero]), "DY", zero]) : "DY";
  const inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", ["VAR", g.constFloat([], [eps])])])]);
  const xhat = g.op("Mul", [g.op("Sub", ["X", "MEAN"]), inv]);
  const axes = g.constInt64([0]);
  g.node("ReduceSum", [dz, axes], { keepdims: 0 }, ["DB"]);
  g.node("ReduceSum", [g.op("Mul", [dz, xhat]), axes], { keepdims: 0 }, ["DG"]);
  const centred = g.op("Sub", [g.op("Sub", [dz, g.op("Mul", ["DB", "INVM"])]), g.op("Mul", [xhat, g.op("Mul", ["DG", "INVM"])])]);
  g.node("Mul", [g.op("Mul", ["G", inv]), centred], {}, ["DX"]);
  g.output("DX", F, ["m", "c"]); g.output("DG", F, ["c"]); g.output("DB", F, ["c"]);
  return g.encode();
}

export const BN_TRAIN = "MaskdistillBatchNormTrain";
export const BN_TRAIN_GRAD = "MaskdistillBatchNormTrainGrad";

export interface BnAttrs { eps: number; relu: boolean }

/** inputs x [..., C], gamma [C], beta [C] → [y, mean, variance (biased)]. */
function bnTrainKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const b = backend as WasmBackend;
  const { x, gamma, beta } = inputs as { x: tf.TensorInfo; gamma: tf.TensorInfo; beta: tf.TensorInfo };
  const { eps, relu } = attrs as unknown as BnAttrs;
  const c = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((a, d) => a * d, 1) / c;
  const y = alloc(b, x.shape.slice()), mean = alloc(b, [c]), variance = alloc(b, [c]);
  if (gemmProvider().provider === "onnxruntime" && rows > 0) {
    ortRun(b, ortSession(`bn_fwd_${eps}_${relu}`, () => forwardModel(eps, relu)),
      { X: [x, [rows, c]], G: gamma, B: beta }, { Y: [y, [rows, c]], MEAN: mean, VAR: variance });
    return [y, mean, variance];
  }
  const h = heapF32(b);
  const xs = elementIndex(b, x), ys = elementIndex(b, y);
  const sum = new Float64Array(c), sq = new Float64Array(c), shift = new Float64Array(c);
  for (let j = 0; j < c; j++) shift[j] = rows > 0 ? h[xs + j] : 0;
  for (let r = 0, o = xs; r < rows; r++, o += c) {
    for (let j = 0; j < c; j++) {
      const d = h[o + j] - shift[j];
      sum[j] += d;
      sq[j] += d * d;
    }
  }
  const scale = new Float64Array(c), offset = new Float64Array(c);
  const ms = elementIndex(b, mean), vs = elementIndex(b, variance), gs = elementIndex(b, gamma), bs = elementIndex(b, beta);
  for (let j = 0; j < c; j++) {
    const m = sum[j] / rows;
    const v = Math.max(0, sq[j] / rows - m * m);
    const mu = shift[j] + m;
    h[ms + j] = mu;
    h[vs + j] = v;
    scale[j] = h[gs + j] / Math.sqrt(v + eps);
    offset[j] = h[bs + j] - mu * scale[j];
  }
  for (let r = 0, i = xs, o = ys; r < rows; r++, i += c, o += c) {
    if (relu) {
      for (let j = 0; j < c; j++) { const z = h[i + j] * scale[j] + offset[j]; h[o + j] = z > 0 ? z : 0; }
    } else {
      for (let j = 0; j < c; j++) h[o + j] = h[i + j] * scale[j] + offset[j];
    }
  }
  return [y, mean, variance];
}

/** inputs dy, x, y, gamma, mean, variance → [dx, dGamma, dBeta]. */
function bnTrainGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const b = backend as WasmBackend;
  const { dy, x, y, gamma, mean, variance } = inputs as Record<string, tf.TensorInfo>;
  const { eps, relu } = attrs as unknown as BnAttrs;
  const c = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((a, d) => a * d, 1) / c;
  const dx = alloc(b, x.shape.slice()), dGamma = alloc(b, [c]), dBeta = alloc(b, [c]);
  if (gemmProvider().provider === "onnxruntime" && rows > 0) {
    const invM = alloc(b, [1]);
    heapF32(b)[elementIndex(b, invM)] = 1 / rows;
    const mc = [rows, c];
    ortRun(b, ortSession(`bn_bwd_${eps}_${relu}`, () => backwardModel(eps, relu)),
      { DY: [dy, mc], X: [x, mc], Y: [y, mc], G: gamma, MEAN: mean, VAR: variance, INVM: invM },
      { DX: [dx, mc], DG: dGamma, DB: dBeta });
    release(b, invM);
    return [dx, dGamma, dBeta];
  }
  const h = heapF32(b);
  const dys = elementIndex(b, dy), xs = elementIndex(b, x), ys = elementIndex(b, y), dxs = elementIndex(b, dx);
  const sumDz = new Float64Array(c), sumDzX = new Float64Array(c);
  for (let r = 0, o = 0; r < rows; r++, o += c) {
    for (let j = 0; j < c; j++) {
      const dz = relu && !(h[ys + o + j] > 0) ? 0 : h[dys + o + j];
      sumDz[j] += dz;
      sumDzX[j] += dz * h[xs + o + j];
    }
  }
  const ka = new Float64Array(c), kb = new Float64Array(c), kc = new Float64Array(c);
  const gs = elementIndex(b, gamma), ms = elementIndex(b, mean), vs = elementIndex(b, variance);
  const dgs = elementIndex(b, dGamma), dbs = elementIndex(b, dBeta);
  for (let j = 0; j < c; j++) {
    const inv = 1 / Math.sqrt(h[vs + j] + eps), mu = h[ms + j], g = h[gs + j];
    const dBetaJ = sumDz[j];
    const dGammaJ = inv * (sumDzX[j] - mu * sumDz[j]);        // Σ dz·x̂
    h[dbs + j] = dBetaJ;
    h[dgs + j] = dGammaJ;
    const s = g * inv;
    ka[j] = s;
    kb[j] = -s * inv * dGammaJ / rows;
    kc[j] = -s * dBetaJ / rows + s * inv * dGammaJ * mu / rows;
  }
  for (let r = 0, o = 0; r < rows; r++, o += c) {
    if (relu) {
      for (let j = 0; j < c; j++) {
        const dz = h[ys + o + j] > 0 ? h[dys + o + j] : 0;
        h[dxs + o + j] = ka[j] * dz + kb[j] * h[xs + o + j] + kc[j];
      }
    } else {
      for (let j = 0; j < c; j++) h[dxs + o + j] = ka[j] * h[dys + o + j] + kb[j] * h[xs + o + j] + kc[j];
    }
  }
  return [dx, dGamma, dBeta];
}

export const batchNormKernels: Array<{ name: string; kernelFunc: (a: KernelArgs) => tf.TensorInfo | tf.TensorInfo[] }> = [
  { name: BN_TRAIN, kernelFunc: bnTrainKernel },
  { name: BN_TRAIN_GRAD, kernelFunc: bnTrainGradKernel },
];
