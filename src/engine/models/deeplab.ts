// DeepLab-v3 on a ResNet-50 at output stride 8, in the layout of MaskDistill's
// segmentation/models/deeplabv3_model.py and torchvision's deeplabv3_resnet50 (NHWC): dilated
// layer3/layer4, ASPP with a 1×1 branch, three 3×3 branches at rates 12/24/36 (the reference's, for 512²
// inputs; a model for small images takes smaller ones, see DeepLabV3.asppRates) and an image-pooling
// branch (global average → 1×1 conv → BN → ReLU → broadcast), each conv bias-free + BN + ReLU; the
// 1×1 projection (+ BN, ReLU, Dropout 0.5), a 3×3 conv + BN + ReLU, the 1×1 classifier with bias,
// and bilinear upsampling (align_corners false) of the logits to the input size.
//
// Batch 1 in training: batch norm over the pooling branch's 1×1 map of one image has one value per
// channel, so its variance is 0 (PyTorch refuses it: "Expected more than 1 value per channel"). With a
// batch of one image that BN alone runs in eval mode (running statistics, not updated); every other
// BN still uses the batch statistics. From 2 images on it trains like PyTorch.
import * as tf from "@tensorflow/tfjs";
import { ResNet50, makeResNet50, stem, stage, ConvBn, makeConvBn, convBn, Walk, walkConvBn, walkStage } from "./resnet.js";
import { Rng, normalVariable, constantVariable, collectVariables, countParams } from "./params.js";
import { StepMemoryModel } from "../memory.js";
import { resizeBilinearHalfPixel } from "../ops.js";

export interface DeepLabAspp {
  /** 1×1 branch. */
  conv1x1: ConvBn;
  /** 3×3 branches at the model's asppRates. */
  atrous: ConvBn[];
  /** Image-pooling branch: 1×1 conv + BN on the globally averaged features. */
  pool: ConvBn;
  /** 1×1 projection of the 5·256 concatenated channels (followed by Dropout 0.5 in training). */
  project: ConvBn;
}

export interface DeepLabV3 {
  backbone: ResNet50;
  aspp: DeepLabAspp;
  head: { conv: ConvBn; classifier: tf.Variable; classifierBias: tf.Variable };
  numClasses: number;
  /** Backbone stages before this one are frozen (forward only, running BN statistics). */
  trainableFrom: "stem" | "layer1" | "layer2" | "layer3" | "layer4";
  widths: DeepLabWidths;
  /**
   * Dilation of the three 3×3 ASPP branches (default ASPP_RATES, the reference's for 512² inputs: 64×64 maps at
   * output stride 8). At rate ≥ the map's side every tap but the centre falls in the zero padding and a branch is
   * a 1×1 conv, so smaller images take proportionally smaller rates (the shapes recipe: 2/4/6 at 96², 12×12 maps).
   * Not visible in the weights: model files carry it in their metadata (deepLabFileMetadata).
   */
  asppRates: number[];
}

/** Channel widths: the ResNet's stem (64 = ResNet-50; its stages scale with it) and the ASPP/head (256). */
export interface DeepLabWidths { backbone: number; aspp: number }
export const DEEPLAB_R50_WIDTHS: DeepLabWidths = { backbone: 64, aspp: 256 };

export const ASPP_RATES = [12, 24, 36];

/** Three positive integer dilations: what the ASPP's three 3×3 branches take. */
export const validAsppRates = (rates: number[]) => rates.length === 3 && rates.every((r) => Number.isInteger(r) && r >= 1);
export const DROPOUT_P = 0.5;

/**
 * Seeded initialisation. Backbone convs and the head's conv units: He (fan-out) normal as
 * torchvision's ResNet; the classifier N(0, 1/256). (PyTorch's own head init is kaiming-uniform;
 * only the distribution differs, and training starts from a loaded backbone anyway.)
 */
export function makeDeepLabV3(rng: Rng, opts: { numClasses: number; trainableFrom?: DeepLabV3["trainableFrom"]; widths?: DeepLabWidths; asppRates?: number[] }): DeepLabV3 {
  const trainableFrom = opts.trainableFrom ?? "layer3";
  const widths = opts.widths ?? DEEPLAB_R50_WIDTHS;
  const asppRates = [...(opts.asppRates ?? ASPP_RATES)];
  if (!validAsppRates(asppRates)) throw new Error(`DeepLab-v3: three positive integer ASPP rates expected, got ${asppRates.join(",")}`);
  const c = widths.aspp, features = 32 * widths.backbone;   // layer4's output channels (2048 for ResNet-50)
  return {
    backbone: makeResNet50(rng, { outputStride8: true, trainableFrom, width: widths.backbone }),
    aspp: {
      conv1x1: makeConvBn(rng, 1, features, c),
      atrous: asppRates.map((r) => makeConvBn(rng, 3, features, c, { dilation: r })),
      pool: makeConvBn(rng, 1, features, c),
      project: makeConvBn(rng, 1, 5 * c, c),
    },
    head: {
      conv: makeConvBn(rng, 3, c, c),
      classifier: normalVariable(rng, [1, 1, c, opts.numClasses], Math.sqrt(1 / c), true),
      classifierBias: constantVariable([opts.numClasses], 0, true),
    },
    numClasses: opts.numClasses,
    trainableFrom,
    widths: { ...widths },
    asppRates,
  };
}

const STAGE_ORDER = ["stem", "layer1", "layer2", "layer3", "layer4"] as const;

/** The frozen front of the backbone (no tape needed): stem … the last frozen stage. */
export function deepLabFrozenFeatures(m: DeepLabV3, images: tf.Tensor4D): tf.Tensor4D {
  const b = m.backbone;
  const stop = STAGE_ORDER.indexOf(m.trainableFrom);
  return tf.tidy(() => {
    let x = images;
    if (stop > 0) x = stem(b.stem, x, false);
    if (stop > 1) x = stage(b.layer1, x, false);
    if (stop > 2) x = stage(b.layer2, x, false);
    if (stop > 3) x = stage(b.layer3, x, false);
    return x;
  });
}

export interface DeepLabForwardOptions {
  /**
   * Training only: the generator of the Dropout(0.5) mask after the ASPP projection (one draw per
   * value, NHWC order: kept when rng() ≥ 0.5, then ×2). Without it no dropout is applied.
   */
  dropout?: Rng;
}

/** Dropout keep-mask values (0 or 1/(1−p)) for `n` activations, NHWC order. */
export function dropoutMask(rng: Rng, n: number, p = DROPOUT_P): Float32Array {
  const out = new Float32Array(n);
  const keep = 1 / (1 - p);
  for (let i = 0; i < n; i++) out[i] = rng() < p ? 0 : keep;
  return out;
}

/** Logits [N, H, W, numClasses] at the input size, from the output of deepLabFrozenFeatures. */
export function deepLabTrainableForward(m: DeepLabV3, features: tf.Tensor4D, inputSize: [number, number], train: boolean,
    opts: DeepLabForwardOptions = {}): tf.Tensor4D {
  const b = m.backbone;
  const from = STAGE_ORDER.indexOf(m.trainableFrom);
  let x = features;
  if (from <= 0) x = stem(b.stem, x, train);
  if (from <= 1) x = stage(b.layer1, x, train);
  if (from <= 2) x = stage(b.layer2, x, train);
  if (from <= 3) x = stage(b.layer3, x, train);
  x = stage(b.layer4, x, train);

  const [n, h, w] = x.shape;
  const a = m.aspp;
  // batch 1: the pooling BN sees one value per channel; it runs on its running statistics (file comment)
  const pooled = convBn(a.pool, tf.mean(x, [1, 2], true) as tf.Tensor4D, train && n > 1, true);
  const branches = [
    convBn(a.conv1x1, x, train, true),
    ...a.atrous.map((p) => convBn(p, x, train, true)),
    // bilinear upsampling of a 1×1 map (align_corners false) is a broadcast
    tf.broadcastTo(pooled, [n, h, w, m.widths.aspp]) as tf.Tensor4D,
  ];
  let projected = convBn(a.project, tf.concat(branches, 3) as tf.Tensor4D, train, true);
  if (train && opts.dropout) {
    projected = tf.mul(projected, tf.tensor4d(dropoutMask(opts.dropout, projected.size), projected.shape)) as tf.Tensor4D;
  }
  const feat = convBn(m.head.conv, projected, train, true);
  const logits = tf.add(tf.conv2d(feat, m.head.classifier as tf.Tensor4D, 1, 0), m.head.classifierBias) as tf.Tensor4D;
  return resizeBilinearHalfPixel(logits, inputSize);
}

/** Eval-mode logits [N, H, W, numClasses] of normalised images [N, H, W, 3] (running BN statistics, no dropout). */
export function deepLabLogits(m: DeepLabV3, images: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const f = deepLabFrozenFeatures(m, images);
    return deepLabTrainableForward(m, f, [images.shape[1], images.shape[2]], false);
  });
}

/** Shape walk of a DeepLab-v3 training step, for estimateStepMemory. */
export function deepLabMemoryModel(m: DeepLabV3): StepMemoryModel {
  const all = collectVariables(m), trainable = collectVariables(m, true);
  const b = m.backbone;
  return {
    name: `DeepLab-v3 R50 OS8 (trainable from ${m.trainableFrom})`,
    paramFloats: countParams(all),
    trainableFloats: countParams(trainable),
    activations(h, w) {
      let walk: Walk = { saved: 0, largest: 3 * h * w, h, w };
      walk = walkConvBn(b.stem, walk, true);
      walk = { ...walk, h: Math.floor((walk.h - 1) / 2) + 1, w: Math.floor((walk.w - 1) / 2) + 1 };   // max pool
      for (const s of [b.layer1, b.layer2, b.layer3, b.layer4]) {
        const trainableStage = s[0].conv1.trainable;
        if (trainableStage && walk.saved === 0) walk = { ...walk, saved: (s[0].conv1.kernel.shape as number[])[2] * walk.h * walk.w };
        walk = walkStage(s, walk);
      }
      const c = m.widths.aspp, hw = walk.h * walk.w, k = m.numClasses;
      let saved = walk.saved;
      const a = m.aspp;
      for (const p of [a.conv1x1, ...a.atrous]) saved += walkConvBn(p, { ...walk, saved: 0 }, true).saved;
      saved += 3 * c * hw;                     // pooled branch broadcast, concat (5·256 channels, counted as 3·256 extra)
      saved += 2 * c * hw;                     // concat
      saved += 2 * 4 * c * hw;                 // project and head conv units
      saved += 2 * c * hw;                     // dropout mask and output
      saved += 2 * k * hw + 5 * k * h * w;     // classifier, upsampled logits and the cross-entropy
      return { savedFloats: saved, largestFloats: Math.max(walk.largest, 5 * c * hw, k * h * w) };
    },
  };
}
