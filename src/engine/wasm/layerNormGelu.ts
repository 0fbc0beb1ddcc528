// Layer norm and GELU (forward and closed-form backward) as small onnxruntime graphs over views of
// the wasm heap, for the onnxruntime provider: composed from stock tfjs-wasm kernels they are a
// dozen single-threaded passes each, the largest share of a ViT training step once MLAS does the
// products. ops.ts uses these kernels only with that provider (else it composes tf ops).
//
//   layer norm  y = x̂·γ + β,  x̂ = (x − μ)·r,  r = 1/√(σ² + ε) over the last axis
//               dx = r·(g − mean(g) − x̂·mean(g·x̂)),  g = dy·γ;  dγ = Σ dy·x̂,  dβ = Σ dy
//   GELU        y = x·Φ(x);  dx = dy·(Φ(x) + x·φ(x))   (the exact erf form, as nn.GELU)
import * as tf from "@tensorflow/tfjs";
import { WasmBackend, KernelArgs, alloc } from "./backend.js";
import { createGraph, DataType } from "../../modeling/onnx/graph.js";
import { ortSession, ortRun } from "./gemm.js";

export const LAYER_NORM = "MaskdistillLayerNorm";
export const LAYER_NORM_GRAD = "MaskdistillLayerNormGrad";
export const GELU = "MaskdistillGelu";
export const GELU_GRAD = "MaskdistillGeluGrad";

const F = DataType.FLOAT;

function layerNormModel(eps: number): Uint8Array {
  const g = createGraph("layer_norm");
  g.input("X", F, ["r", "d"]); g.input("G", F, ["d"]); g.input("B", F, ["d"]);
  g.node("LayerNormalization", ["X", "G", "B"], { axis: -1, epsilon: { kind: "float", value: eps } }, ["Y", "MEAN", "INV"]);
  g.output("Y", F, ["r", "d"]); g.output("MEAN", F, ["r", 1]); g.output("INV", F, ["r", 1]);
  return g.encode();
}

function layerNormGradModel(): Uint8Array {
  const g = createGraph("layer_norm_grad");
  g.input("DY", F, ["r", "d"]); g.input("X", F, ["r", "d"]); g.input("G", F, ["d"]);
  g.input("MEAN", F, ["r", 1]); g.input("INV", F, ["r", 1]);
  const xhat = g.op("Mul", [g.op("Sub", ["X", "MEAN"]), "INV"]);
  const gx = g.op("Mul", ["DY", "G"]);
  const rowMean = (t: string) => g.op("ReduceMean", [t], { axes: [1], keepdims: 1 });
  const centred = g.op("Sub", [g.op("Sub", [gx, rowMean(gx)]), g.op("Mul", [xhat, rowMean(g.op("Mul", [gx, xhat]))])]);
  g.node("Mul", ["INV", centred], {}, ["DX"]);
  const axes = g.constInt64([0]);
  g.node("ReduceSum", [g.op("Mul", ["DY", xhat]), axes], { keepdims: 0 }, ["DG"]);
  g.node("ReduceSum", ["DY", axes], { keepdims: 0 }, ["DB"]);
  g.output("DX", F, ["r", "d"]); g.output("DG", F, ["d"]); g.output("DB", F, ["d"]);
  return g.encode();
}

/** Φ(x) = ½(1 + erf(x/√2)) as a graph value. */
function normalCdf(g: ReturnType<typeof createGraph>, x: string): string {
  return g.op("Mul", [g.op("Add", [g.op("Erf", [g.op("Mul", [x, g.constFloat([], [Math.SQRT1_2])])]), g.constFloat([], [1])]), g.constFloat([], [0.5])]);
}

function geluModel(): Uint8Array {
  const g = createGraph("gelu");
  g.input("X", F, ["n"]);
  g.node("Mul", ["X", normalCdf(g, "X")], {}, ["Y"]);
  g.output("Y", F, ["n"]);
  return g.encode();
}

function geluGradModel(): Uint8Array {
  const g = createGraph("gelu_grad");
  g.input("DY", F, ["n"]); g.input("X", F, ["n"]);
  const pdf = g.op("Mul", [g.op("Exp", [g.op("Mul", [g.op("Mul", ["X", "X"]), g.constFloat([], [-0.5])])]), g.constFloat([], [1 / Math.sqrt(2 * Math.PI)])]);
  g.node("Mul", ["DY", g.op("Add", [normalCdf(g, "X"), g.op("Mul", ["X", pdf])])], {}, ["DX"]);
  g.output("DX", F, ["n"]);
  return g.encode();
}

const rowsOf = (x: tf.TensorInfo) => x.shape.reduce((a, d) => a * d, 1) / x.shape[x.shape.length - 1];

/** x [..., D], gamma, beta [D] → [y, mean [rows, 1], invStd [rows, 1]]. */
function layerNormKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const b = backend as WasmBackend;
  const { x, gamma, beta } = inputs as Record<string, tf.TensorInfo>;
  const eps = (attrs as unknown as { eps: number }).eps;
  const d = x.shape[x.shape.length - 1], r = rowsOf(x);
  const y = alloc(b, x.shape.slice()), mean = alloc(b, [r, 1]), inv = alloc(b, [r, 1]);
  ortRun(b, ortSession(`layer_norm_${eps}`, () => layerNormModel(eps)), { X: [x, [r, d]], G: gamma, B: beta }, { Y: [y, [r, d]], MEAN: mean, INV: inv });
  return [y, mean, inv];
}

/** dy, x [..., D], gamma [D], mean, invStd [rows, 1] → [dx, dGamma, dBeta]. */
function layerNormGradKernel({ inputs, backend }: KernelArgs): tf.TensorInfo[] {
  const b = backend as WasmBackend;
  const { dy, x, gamma, mean, inv } = inputs as Record<string, tf.TensorInfo>;
  const d = x.shape[x.shape.length - 1], r = rowsOf(x);
  const dx = alloc(b, x.shape.slice()), dGamma = alloc(b, [d]), dBeta = alloc(b, [d]);
  ortRun(b, ortSession("layer_norm_grad", layerNormGradModel),
    { DY: [dy, [r, d]], X: [x, [r, d]], G: gamma, MEAN: mean, INV: inv }, { DX: [dx, [r, d]], DG: dGamma, DB: dBeta });
  return [dx, dGamma, dBeta];
}

function geluKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const b = backend as WasmBackend;
  const x = inputs.x!;
  const n = x.shape.reduce((a, d) => a * d, 1);
  const y = alloc(b, x.shape.slice());
  if (n > 0) ortRun(b, ortSession("gelu", geluModel), { X: [x, [n]] }, { Y: [y, [n]] });
  return y;
}

function geluGradKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const b = backend as WasmBackend;
  const { dy, x } = inputs as Record<string, tf.TensorInfo>;
  const n = x.shape.reduce((a, d) => a * d, 1);
  const dx = alloc(b, x.shape.slice());
  if (n > 0) ortRun(b, ortSession("gelu_grad", geluGradModel), { DY: [dy, [n]], X: [x, [n]] }, { DX: [dx, [n]] });
  return dx;
}

export const layerNormGeluKernels: Array<{ name: string; kernelFunc: (a: KernelArgs) => tf.TensorInfo | tf.TensorInfo[] }> = [
  { name: LAYER_NORM, kernelFunc: layerNormKernel },
  { name: LAYER_NORM_GRAD, kernelFunc: layerNormGradKernel },
  { name: GELU, kernelFunc: geluKernel },
  { name: GELU_GRAD, kernelFunc: geluGradKernel },
];
