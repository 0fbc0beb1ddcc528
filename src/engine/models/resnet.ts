// ResNet-50 pieces (torchvision v1.5 layout, NHWC): conv-bn(-relu) units, bottleneck blocks, stages
// with stride or dilation (DeepLab's output-stride-8 variant), and the 7×7 stem.
import * as tf from "@tensorflow/tfjs";
import { batchNormTrain, batchNormFrozen, inferenceConv } from "../ops.js";
import { Rng, normalVariable, constantVariable, collectVariables, countParams } from "./params.js";
import { StepMemoryModel } from "../memory.js";

export interface ConvBn {
  kernel: tf.Variable;       // [k, k, Cin, Cout]
  gamma: tf.Variable;
  beta: tf.Variable;
  runningMean: tf.Variable;
  runningVar: tf.Variable;
  stride: number;
  dilation: number;
  /** Symmetric zero padding, as PyTorch's Conv2d(padding=…). */
  padding: number;
  /** Frozen units use their running statistics and get no gradient. */
  trainable: boolean;
}

export interface ConvBnOptions {
  stride?: number;
  dilation?: number;
  trainable?: boolean;
}

/** A k×k conv without bias followed by batch norm; He (fan-out) initialisation as in torchvision. */
export function makeConvBn(rng: Rng, k: number, cin: number, cout: number, opts: ConvBnOptions = {}): ConvBn {
  const trainable = opts.trainable ?? true;
  const dilation = opts.dilation ?? 1;
  return {
    kernel: normalVariable(rng, [k, k, cin, cout], Math.sqrt(2 / (k * k * cout)), trainable),
    gamma: constantVariable([cout], 1, trainable),
    beta: constantVariable([cout], 0, trainable),
    runningMean: constantVariable([cout], 0, false),
    runningVar: constantVariable([cout], 1, false),
    stride: opts.stride ?? 1,
    dilation,
    padding: (dilation * (k - 1)) >> 1,
    trainable,
  };
}

const BN_MOMENTUM = 0.1;   // PyTorch's convention: running ← (1 − m)·running + m·batch

/** conv → BN (batch statistics when training a trainable unit, else running ones) → optional ReLU. */
export function convBn(p: ConvBn, x: tf.Tensor4D, train: boolean, relu: boolean): tf.Tensor4D {
  const frozenStats = !(train && p.trainable);
  const bn = { gamma: p.gamma as tf.Tensor1D, beta: p.beta as tf.Tensor1D, mean: p.runningMean as tf.Tensor1D, variance: p.runningVar as tf.Tensor1D, eps: 1e-5 };
  // inference: conv, batch norm and ReLU as one kernel where the engine has it
  const fused = frozenStats ? inferenceConv(x, p.kernel as tf.Tensor4D, { stride: p.stride, pad: p.padding, dilation: p.dilation }, bn, relu) : undefined;
  if (fused) return fused;
  const y = tf.conv2d(x, p.kernel as tf.Tensor4D, p.stride, p.padding, "NHWC", p.dilation);
  let z: tf.Tensor;
  if (!frozenStats) {
    z = batchNormTrain(y, p.gamma as tf.Tensor1D, p.beta as tf.Tensor1D, 1e-5, ({ mean, variance, count }) => {
      const unbiased = tf.mul(variance, count / Math.max(count - 1, 1));
      p.runningMean.assign(tf.add(tf.mul(p.runningMean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
      p.runningVar.assign(tf.add(tf.mul(p.runningVar, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
    }, { relu });                                             // ReLU fused into the BN kernels
    return z as tf.Tensor4D;
  }
  z = batchNormFrozen(y, bn.gamma, bn.beta, bn.mean, bn.variance, bn.eps);
  return (relu ? tf.relu(z) : z) as tf.Tensor4D;
}

export interface Bottleneck {
  conv1: ConvBn;             // 1×1 reduce
  conv2: ConvBn;             // 3×3, carries the stride and dilation
  conv3: ConvBn;             // 1×1 expand (×4)
  downsample?: ConvBn;       // 1×1 projection when the shape changes
}

export function makeBottleneck(rng: Rng, cin: number, width: number,
    opts: { stride?: number; dilation?: number; trainable?: boolean } = {}): Bottleneck {
  const stride = opts.stride ?? 1, trainable = opts.trainable ?? true;
  const cout = width * 4;
  return {
    conv1: makeConvBn(rng, 1, cin, width, { trainable }),
    conv2: makeConvBn(rng, 3, width, width, { stride, dilation: opts.dilation ?? 1, trainable }),
    conv3: makeConvBn(rng, 1, width, cout, { trainable }),
    downsample: stride !== 1 || cin !== cout ? makeConvBn(rng, 1, cin, cout, { stride, trainable }) : undefined,
  };
}

export function bottleneck(p: Bottleneck, x: tf.Tensor4D, train: boolean): tf.Tensor4D {
  const y = convBn(p.conv3, convBn(p.conv2, convBn(p.conv1, x, train, true), train, true), train, false);
  const shortcut = p.downsample ? convBn(p.downsample, x, train, false) : x;
  return tf.relu(tf.add(y, shortcut)) as tf.Tensor4D;
}

/**
 * A ResNet stage of `blocks` bottlenecks. With `dilate`, the stride becomes dilation (torchvision's
 * replace_stride_with_dilation): the first block keeps the previous dilation, the others use
 * previousDilation·stride.
 */
export function makeStage(rng: Rng, cin: number, width: number, blocks: number,
    opts: { stride: number; dilate?: boolean; previousDilation?: number; trainable?: boolean }): Bottleneck[] {
  const prev = opts.previousDilation ?? 1;
  const dilation = opts.dilate ? prev * opts.stride : prev;
  const stride = opts.dilate ? 1 : opts.stride;
  const stage = [makeBottleneck(rng, cin, width, { stride, dilation: prev, trainable: opts.trainable })];
  for (let i = 1; i < blocks; i++) stage.push(makeBottleneck(rng, width * 4, width, { dilation, trainable: opts.trainable }));
  return stage;
}

export function stage(blocks: Bottleneck[], x: tf.Tensor4D, train: boolean): tf.Tensor4D {
  let y = x;
  for (const b of blocks) y = bottleneck(b, y, train);
  return y;
}

export interface ResNet50 {
  stem: ConvBn;              // 7×7/2, 3 → 64, then 3×3/2 max pool
  layer1: Bottleneck[];
  layer2: Bottleneck[];
  layer3: Bottleneck[];
  layer4: Bottleneck[];
}

export interface ResNet50Options {
  /** Output stride 8 (DeepLab): layer3 and layer4 dilated instead of strided. */
  outputStride8?: boolean;
  /** Stages before this one are frozen (no gradients, running BN statistics). */
  trainableFrom?: "stem" | "layer1" | "layer2" | "layer3" | "layer4";
  /** Stem channels (64 = ResNet-50); the stages scale with it (bottleneck widths w, 2w, 4w, 8w; outputs ×4). */
  width?: number;
}

export function makeResNet50(rng: Rng, opts: ResNet50Options = {}): ResNet50 {
  const order = ["stem", "layer1", "layer2", "layer3", "layer4"];
  const from = order.indexOf(opts.trainableFrom ?? "stem");
  const t = (name: string) => order.indexOf(name) >= from;
  const os8 = opts.outputStride8 ?? false;
  const w = opts.width ?? 64;
  if (!(Number.isInteger(w) && w >= 1)) throw new Error(`makeResNet50: width must be a positive integer, got ${w}`);
  return {
    stem: makeConvBn(rng, 7, 3, w, { stride: 2, trainable: t("stem") }),
    layer1: makeStage(rng, w, w, 3, { stride: 1, trainable: t("layer1") }),
    layer2: makeStage(rng, 4 * w, 2 * w, 4, { stride: 2, trainable: t("layer2") }),
    layer3: makeStage(rng, 8 * w, 4 * w, 6, { stride: 2, dilate: os8, trainable: t("layer3") }),
    layer4: makeStage(rng, 16 * w, 8 * w, 3, { stride: 2, dilate: os8, previousDilation: os8 ? 2 : 1, trainable: t("layer4") }),
  };
}

/** Stem: conv-bn-relu then 3×3/2 max pool with padding 1. */
export function stem(p: ConvBn, x: tf.Tensor4D, train: boolean): tf.Tensor4D {
  const y = convBn(p, x, train, true);
  const padded = tf.pad(y, [[0, 0], [1, 1], [1, 1], [0, 0]], -Infinity);
  return tf.maxPool(padded, 3, 2, "valid");
}

// ---- Memory shape walk (see ../memory.ts) ----

/** A ResNet stage stack (e.g. layer1 + layer2) on an input of `channels` channels, for estimateStepMemory. */
export function stagesMemoryModel(name: string, stages: Bottleneck[][], channels: number): StepMemoryModel {
  const all = collectVariables(stages), trainable = collectVariables(stages, true);
  return {
    name,
    paramFloats: countParams(all),
    trainableFloats: countParams(trainable),
    activations(h, w) {
      let walk: Walk = { saved: channels * h * w, largest: channels * h * w, h, w };
      for (const s of stages) walk = walkStage(s, walk);
      return { savedFloats: walk.saved, largestFloats: walk.largest };
    },
  };
}

/** Floats kept for backward and the largest activation, accumulated along a walk. */
export interface Walk { saved: number; largest: number; h: number; w: number }

function convOutSize(size: number, k: number, stride: number, dilation: number, padding: number): number {
  return Math.floor((size + 2 * padding - dilation * (k - 1) - 1) / stride) + 1;
}

/**
 * A trainable conv-bn(-relu) unit keeps its conv output, the normalised x̂, the BN output and the
 * ReLU output: 4 maps (3 without ReLU). A frozen unit keeps nothing.
 */
export function walkConvBn(p: ConvBn, walk: Walk, relu: boolean): Walk {
  const [k, , , cout] = p.kernel.shape as number[];
  const h = convOutSize(walk.h, k, p.stride, p.dilation, p.padding);
  const w = convOutSize(walk.w, k, p.stride, p.dilation, p.padding);
  const map = cout * h * w;
  return {
    saved: walk.saved + (p.trainable ? (relu ? 4 : 3) * map : 0),
    largest: Math.max(walk.largest, map),
    h, w,
  };
}

export function walkStage(blocks: Bottleneck[], walk: Walk): Walk {
  let cur = walk;
  for (const b of blocks) {
    let y = walkConvBn(b.conv1, cur, true);
    y = walkConvBn(b.conv2, y, true);
    y = walkConvBn(b.conv3, y, false);
    if (b.downsample) {
      const d = walkConvBn(b.downsample, { ...cur, saved: 0 }, false);
      y = { ...y, saved: y.saved + d.saved, largest: Math.max(y.largest, d.largest) };
    }
    const map = (b.conv3.kernel.shape as number[])[3] * y.h * y.w;
    cur = { ...y, saved: y.saved + (b.conv3.trainable ? 2 * map : 0) };   // the residual sum and its ReLU
  }
  return cur;
}
