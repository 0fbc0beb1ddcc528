// Training ops with closed-form gradients (fewer, larger kernels than autodiff would record).
import * as tf from "@tensorflow/tfjs";
import { BN_TRAIN, BN_TRAIN_GRAD } from "./wasm/batchnorm.js";
import { LAYER_NORM, LAYER_NORM_GRAD, GELU, GELU_GRAD } from "./wasm/layerNormGelu.js";
import { gemmProvider } from "./wasm/gemm.js";
import { CONV_AFFINE, ConvAffineAttrs, useOrtConv } from "./wasm/convOrt.js";

/** Whether the fused onnxruntime kernels of layerNormGelu.ts can run (wasm with the onnxruntime provider). */
function ortFused(name: string): boolean {
  return tf.getBackend() === "wasm" && gemmProvider().provider === "onnxruntime" && tf.getKernel(name, "wasm") !== undefined;
}

/** Axes [0 … rank−2]: every axis but the channel axis of a channels-last tensor. */
export function leadingAxes(rank: number): number[] {
  return [...Array(rank - 1).keys()];
}

/** Per-channel sum over all leading axes (on wasm: one matrix-vector product, see wasm/reduce.ts). */
export function channelSum(x: tf.Tensor): tf.Tensor1D {
  return tf.sum(x, leadingAxes(x.rank)) as tf.Tensor1D;
}

/** Batch statistics of a channels-last tensor: mean and biased variance per channel. */
export interface BatchStats {
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  /** Number of values per channel. */
  count: number;
}

/**
 * Batch normalisation in training mode over every axis but the last, optionally followed by ReLU:
 *   y = γ · (x − μ) / √(σ² + ε) + β,  μ, σ² the batch mean and biased variance.
 * The gradient is the closed form (no Tile, three channel reductions):
 *   dβ = Σ dz,  dγ = Σ dz·x̂,  dx = γ/√(σ²+ε) · (dz − dβ/M − x̂·dγ/M),  M values per channel,
 *   dz = dy (or dy·[y > 0] with ReLU).
 * On wasm both directions are single fused kernels (wasm/batchnorm.ts); elsewhere tf ops.
 * `onStats` receives μ and σ² (inside the op's scope: copy or assign what you keep, e.g. running
 * averages into variables).
 */
export function batchNormTrain(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-5,
    onStats?: (s: BatchStats) => void, opts: { relu?: boolean } = {}): tf.Tensor {
  const relu = opts.relu ?? false;
  const count = x.size / x.shape[x.rank - 1];
  if (tf.getBackend() === "wasm" && tf.getKernel(BN_TRAIN, "wasm")) {
    const fused = tf.customGrad((xIn, g, b, save) => {
      const attrs = { eps, relu } as unknown as tf.NamedAttrMap;
      const [y, mean, variance] = tf.engine().runKernel(BN_TRAIN, { x: xIn as tf.Tensor, gamma: g as tf.Tensor, beta: b as tf.Tensor }, attrs) as tf.Tensor[];
      if (onStats) onStats({ mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D, count });
      (save as (saved: tf.Tensor[]) => void)([xIn as tf.Tensor, y, g as tf.Tensor, mean, variance]);
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const [xs, ys, gs, ms, vs] = saved;
          const [dx, dGamma, dBeta] = tf.engine().runKernel(BN_TRAIN_GRAD,
            { dy: dy as tf.Tensor, x: xs, y: ys, gamma: gs, mean: ms, variance: vs }, attrs) as tf.Tensor[];
          return [dx, dGamma, dBeta];
        },
      };
    });
    return fused(x, gamma, beta);
  }
  const axes = leadingAxes(x.rank);
  const op = tf.customGrad((xIn, g, b, save) => {
    const xt = xIn as tf.Tensor, gt = g as tf.Tensor1D, bt = b as tf.Tensor1D;
    const mean = tf.mean(xt, axes) as tf.Tensor1D;
    const xc = tf.sub(xt, mean);
    const variance = tf.mean(tf.square(xc), axes) as tf.Tensor1D;
    const invStd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(xc, invStd);
    if (onStats) onStats({ mean, variance, count });
    const z = tf.add(tf.mul(xhat, gt), bt);
    const y = relu ? tf.relu(z) : z;
    (save as (saved: tf.Tensor[]) => void)([xhat, invStd, gt, y]);
    return {
      value: y,
      gradFunc: (dy, saved) => {
        const [xh, is, gm, ys] = saved;
        const d = relu ? tf.mul(dy as tf.Tensor, tf.step(ys)) : dy as tf.Tensor;
        const dBeta = tf.sum(d, axes);
        const dGamma = tf.sum(tf.mul(d, xh), axes);
        const dx = tf.mul(tf.mul(gm, is),
          tf.sub(tf.sub(d, tf.div(dBeta, count)), tf.mul(xh, tf.div(dGamma, count))));
        return [dx, dGamma, dBeta];
      },
    };
  });
  return op(x, gamma, beta);
}

/** What follows the conv in `inferenceConv`: a bias, or a batch norm with fixed statistics. */
export type ConvEpilogue =
  | { bias: tf.Tensor1D }
  | { gamma: tf.Tensor1D; beta: tf.Tensor1D; mean: tf.Tensor1D; variance: tf.Tensor1D; eps: number };

/**
 * Inference form of a conv unit: relu?(conv(x, filter) + bias), or relu?(batchNormFrozen(conv(x, filter)))
 * (NHWC, filter [k, k, Ci, Co], symmetric zero padding `pad`), as one kernel: on wasm with the
 * onnxruntime provider, one onnxruntime Conv with the affine map folded into its filter and bias and
 * the ReLU fused (wasm/convOrt.ts). Returns undefined where that does not apply — a gradient tape
 * records (training keeps the separate ops and their gradients), another backend, a geometry left to
 * the GEMM kernels — and the caller then runs the separate ops.
 */
export function inferenceConv(x: tf.Tensor4D, filter: tf.Tensor4D, geometry: { stride: number; pad: number; dilation?: number },
    epilogue: ConvEpilogue, relu: boolean): tf.Tensor4D | undefined {
  if (!ortFused(CONV_AFFINE) || x.dtype !== "float32") return undefined;
  const dilation = geometry.dilation ?? 1;
  const info = tf.backend_util.computeConv2DInfo(x.shape, filter.shape, geometry.stride, dilation, geometry.pad);
  if (!useOrtConv(info)) return undefined;
  const attrs: ConvAffineAttrs = { strides: geometry.stride, pad: geometry.pad, dilations: dilation, relu, eps: "eps" in epilogue ? epilogue.eps : undefined };
  const inputs: tf.NamedTensorMap = "bias" in epilogue ? { x, filter, bias: epilogue.bias }
    : { x, filter, gamma: epilogue.gamma, beta: epilogue.beta, mean: epilogue.mean, variance: epilogue.variance };
  return tf.engine().runKernel(CONV_AFFINE, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
}

/** Batch normalisation with fixed statistics (eval mode / frozen layers): an affine map per channel. */
export function batchNormFrozen(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, mean: tf.Tensor1D,
    variance: tf.Tensor1D, eps = 1e-5): tf.Tensor {
  return tf.tidy(() => {
    const scale = tf.mul(gamma, tf.rsqrt(tf.add(variance, eps)));
    return tf.add(tf.mul(x, scale), tf.sub(beta, tf.mul(mean, scale)));
  });
}

/**
 * Layer normalisation over the last axis with a closed-form gradient:
 *   dx = r·(g − mean(g) − x̂·mean(g·x̂)),  g = dy·γ,  r = 1/√(σ²+ε), means over the last axis.
 */
export function layerNorm(x: tf.Tensor, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps = 1e-6): tf.Tensor {
  if (ortFused(LAYER_NORM)) {
    const fused = tf.customGrad((xIn, g, b, save) => {
      const [y, mean, inv] = tf.engine().runKernel(LAYER_NORM, { x: xIn as tf.Tensor, gamma: g as tf.Tensor, beta: b as tf.Tensor },
        { eps } as unknown as tf.NamedAttrMap) as tf.Tensor[];
      (save as (saved: tf.Tensor[]) => void)([xIn as tf.Tensor, g as tf.Tensor, mean, inv]);
      return {
        value: y,
        gradFunc: (dy, saved) => {
          const [xs, gs, ms, is] = saved;
          return tf.engine().runKernel(LAYER_NORM_GRAD, { dy: dy as tf.Tensor, x: xs, gamma: gs, mean: ms, inv: is }) as tf.Tensor[];
        },
      };
    });
    return fused(x, gamma, beta);
  }
  const d = x.shape[x.rank - 1];
  const rows = x.size / d;
  const op = tf.customGrad((xIn, g, b, save) => {
    const x2 = tf.reshape(xIn as tf.Tensor, [rows, d]);
    const mean = tf.mean(x2, 1, true);
    const xc = tf.sub(x2, mean);
    const invStd = tf.rsqrt(tf.add(tf.mean(tf.square(xc), 1, true), eps));
    const xhat = tf.mul(xc, invStd);
    (save as (saved: tf.Tensor[]) => void)([xhat, invStd, g as tf.Tensor]);
    return {
      value: tf.reshape(tf.add(tf.mul(xhat, g as tf.Tensor), b as tf.Tensor), x.shape),
      gradFunc: (dy, saved) => {
        const [xh, is, gm] = saved;
        const dy2 = tf.reshape(dy as tf.Tensor, [rows, d]);
        const dBeta = tf.sum(dy2, 0);
        const dGamma = tf.sum(tf.mul(dy2, xh), 0);
        const gx = tf.mul(dy2, gm);
        const dx = tf.mul(is, tf.sub(tf.sub(gx, tf.mean(gx, 1, true)), tf.mul(xh, tf.mean(tf.mul(gx, xh), 1, true))));
        return [tf.reshape(dx, x.shape), dGamma, dBeta];
      },
    };
  });
  return op(x, gamma, beta);
}

/** GELU, the exact (erf) form used by PyTorch's nn.GELU: x·Φ(x). */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (ortFused(GELU)) {
    const fused = tf.customGrad((xIn, save) => {
      const y = tf.engine().runKernel(GELU, { x: xIn as tf.Tensor }) as tf.Tensor;
      (save as (saved: tf.Tensor[]) => void)([xIn as tf.Tensor]);
      return { value: y, gradFunc: (dy, saved) => tf.engine().runKernel(GELU_GRAD, { dy: dy as tf.Tensor, x: saved[0] }) as tf.Tensor };
    });
    return fused(x);
  }
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)));
}

/**
 * Softmax cross-entropy per row of logits [..., K] (flattened to rows) against integer labels [...]:
 * `losses` [rows], 0 where the label is outside [0, K) (e.g. 255 = ignore), and `valid` [rows] (1/0).
 */
export function crossEntropyPerRow(logits: tf.Tensor, labels: tf.Tensor): { losses: tf.Tensor1D; valid: tf.Tensor1D } {
  return tf.tidy(() => {
    const k = logits.shape[logits.rank - 1];
    const flat = tf.reshape(logits, [-1, k]);
    const lab = tf.reshape(labels, [-1]).toInt();
    const inRange = tf.logicalAnd(tf.greaterEqual(lab, 0), tf.less(lab, k));
    const oneHot = tf.oneHot(tf.where(inRange, lab, tf.zerosLike(lab)), k);
    const valid = tf.cast(inRange, "float32") as tf.Tensor1D;
    const losses = tf.mul(tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(flat)), 1)), valid) as tf.Tensor1D;
    return { losses, valid };
  });
}

/**
 * Mean softmax cross-entropy of logits [..., K] against integer labels [...] (same leading shape).
 * Labels outside [0, K) (e.g. 255 = ignore) contribute nothing and are not counted.
 */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const { losses, valid } = crossEntropyPerRow(logits, labels);
    return tf.div(tf.sum(losses), tf.maximum(tf.sum(valid), 1)) as tf.Scalar;
  });
}

/**
 * The interpolation matrix R [out, in] of PyTorch's bilinear resize with align_corners=False along one
 * axis: source position max((o + 0.5)·in/out − 0.5, 0), its two neighbours (the upper one clamped).
 */
export function bilinearMatrix(inSize: number, outSize: number): Float32Array {
  const r = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.max((o + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l1 = src - i0;
    r[o * inSize + i0] += 1 - l1;
    r[o * inSize + i1] += l1;
  }
  return r;
}

/**
 * Bilinear resize of NHWC maps with half-pixel centres (PyTorch's F.interpolate(mode="bilinear",
 * align_corners=False)). The forward is tfjs's resizeBilinear; the gradient is computed here as
 * dX = Ryᵀ · dY · Rx with the two interpolation matrices, because tfjs's ResizeBilinearGrad ignores
 * halfPixelCenters (it back-propagates the legacy corner mapping: wrong weight updates).
 */
export function resizeBilinearHalfPixel(x: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [H, W] = size;
  const op = tf.customGrad((xIn, save) => {
    (save as (saved: tf.Tensor[]) => void)([]);
    return {
      value: tf.image.resizeBilinear(xIn as tf.Tensor4D, size, false, true),
      gradFunc: (dy) => tf.tidy(() => {
        const ry = tf.tensor2d(bilinearMatrix(h, H), [H, h]);
        const rx = tf.tensor2d(bilinearMatrix(w, W), [W, w]);
        // contract the output rows: [H, n·W·c] → [h, n·W·c]
        const rows = tf.matMul(ry, tf.reshape(tf.transpose(dy as tf.Tensor4D, [1, 0, 2, 3]), [H, n * W * c]), true, false);
        // then the output columns: [W, n·h·c] → [w, n·h·c]
        const byCol = tf.reshape(tf.transpose(tf.reshape(rows, [h, n, W, c]), [2, 1, 0, 3]), [W, n * h * c]);
        const cols = tf.matMul(rx, byCol, true, false);
        return tf.transpose(tf.reshape(cols, [w, n, h, c]), [1, 2, 0, 3]);
      }),
    };
  });
  return op(x) as tf.Tensor4D;
}
