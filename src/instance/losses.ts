// Mask R-CNN training losses, both presets, in one pass (what GeneralizedRCNN.forward returns in train
// mode):
//   RPN: anchors matched to GT (IoU ≥ 0.7 / < 0.3, each GT's best anchors kept), 256 anchors per image
//        sampled half positive; objectness BCE and box regression (weights 1,1,1,1).
//   proposals: the RPN's boxes in training mode (torchvision 2000 pre-NMS per level / 2000 post-NMS per
//        image; detectron2 2000 / 1000), computed from the (constant) RPN outputs, GT boxes appended.
//   ROI heads: proposals matched at IoU 0.5, 512 per image sampled 25 % foreground; classification CE,
//        class-specific box regression (weights 10,10,5,5) of the foreground; mask BCE of the
//        foreground's 28×28 logits of its GT class against targets cut from the GT mask.
// Normalisation and details per preset:
//   torchvision 0.14: objectness BCE mean over sampled anchors; RPN box smooth-L1 (β = 1/9) summed over
//        positives / number sampled; class CE mean; box smooth-L1 (β = 1/9) summed / number sampled;
//        mask targets = roi_align(GT mask, proposal, 28×28, scale 1, adaptive sampling, aligned=False)
//        of the {0,1} mask at the resized size (soft targets, not binarised).
//   detectron2: RPN BCE and L1 (SMOOTH_L1_BETA 0) summed / (256 · images); class CE mean; box L1 summed
//        / number sampled; mask targets: we use detectron2's BitMasks path (INPUT.MASK_FORMAT "bitmask"):
//        ROIAlign(28×28, scale 1, sampling 0, aligned=True) of the mask, then ≥ 0.5 → {0, 1}. (Its default
//        polygon path rasterises each polygon inside the box instead; our inputs are often RLE, so the
//        bitmask path is the one that applies to every input.)
// Optional DropLoss (CutLER): the classification loss of background proposals whose best IoU with any
// GT is below `dropLossIou` is dropped (they may be unlabelled objects); the mean runs over the rest.
//
// The random choices go through an IndexPicker (sampling.ts). Everything non-differentiable (matching,
// proposals, targets) is plain TypeScript on values read synchronously from the RPN outputs.
import * as tf from "@tensorflow/tfjs";
import { MaskdistillError } from "../errors.js";
import { resizeU8 } from "../data/resize.js";
import { softmaxCrossEntropy } from "../engine/ops.js";
import { backboneFeatures, boxHeadOutputs, maskHeadOutputs, multiScaleRoiAlign, rpnHeadOutputs, type MaskRcnnNet } from "../engine/models/maskrcnn.js";
import { fpnAnchors } from "./anchors.js";
import { BOX_HEAD_WEIGHTS, RPN_WEIGHTS, boxIou, encodeBoxes, type BoxWeights } from "./boxes.js";
import { poolerLevels } from "./levels.js";
import { rpnProposals, rpnProposalsDetectron2, type MaskRcnnPreset } from "./maskrcnn.js";
import { roiAlignForward } from "./roiAlign.js";
import { BETWEEN_THRESHOLDS, BELOW_LOW_THRESHOLD, ROI_MATCHER, RPN_MATCHER, matchPredictions, sampleBalanced, type IndexPicker } from "./sampling.js";

export const LOSS_NAMES = ["loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"] as const;
export type LossName = (typeof LOSS_NAMES)[number];

/** Training-mode settings of a preset. */
export interface MaskRcnnTraining {
  preset: MaskRcnnPreset;
  rpn: { preNmsTopN: number; postNmsTopN: number; nmsThresh: number; scoreThresh: number; minSize: number; batchPerImage: number; positiveFraction: number };
  roi: { batchPerImage: number; positiveFraction: number };
  pool: { boxSize: number; maskSize: number; samplingRatio: number; aligned: boolean };
  /** Smooth-L1 β of both box losses (0 = L1). */
  smoothL1Beta: number;
  /** Mask targets: binarised at 0.5 (detectron2) or soft (torchvision). */
  binarizeMaskTargets: boolean;
  /** DropLoss IoU (CutLER 0.01); 0 = off. */
  dropLossIou: number;
}

/** torchvision 0.14 maskrcnn_resnet50_fpn in train mode. */
export function torchvisionTraining(over: Partial<Pick<MaskRcnnTraining, "dropLossIou">> = {}): MaskRcnnTraining {
  return {
    preset: "torchvision",
    rpn: { preNmsTopN: 2000, postNmsTopN: 2000, nmsThresh: 0.7, scoreThresh: 0, minSize: 1e-3, batchPerImage: 256, positiveFraction: 0.5 },
    roi: { batchPerImage: 512, positiveFraction: 0.25 },
    pool: { boxSize: 7, maskSize: 14, samplingRatio: 2, aligned: false },
    smoothL1Beta: 1 / 9, binarizeMaskTargets: false, dropLossIou: over.dropLossIou ?? 0,
  };
}

/** detectron2 Base-RCNN-FPN + mask_rcnn_R_50_FPN in training (PRE/POST_NMS_TOPK_TRAIN 2000/1000). */
export function detectron2Training(over: Partial<Pick<MaskRcnnTraining, "dropLossIou">> = {}): MaskRcnnTraining {
  return {
    preset: "detectron2",
    rpn: { preNmsTopN: 2000, postNmsTopN: 1000, nmsThresh: 0.7, scoreThresh: -Infinity, minSize: 0, batchPerImage: 256, positiveFraction: 0.5 },
    roi: { batchPerImage: 512, positiveFraction: 0.25 },
    pool: { boxSize: 7, maskSize: 14, samplingRatio: 0, aligned: true },
    smoothL1Beta: 0, binarizeMaskTargets: true, dropLossIou: over.dropLossIou ?? 0,
  };
}

/** A preset's training settings, with DropLoss and (when given) the ROI heads' sample count per image changed. */
export function presetTraining(preset: MaskRcnnPreset, over: Partial<Pick<MaskRcnnTraining, "dropLossIou">> & { roiBatchPerImage?: number } = {}): MaskRcnnTraining {
  const t = preset === "detectron2" ? detectron2Training(over) : torchvisionTraining(over);
  return over.roiBatchPerImage ? { ...t, roi: { ...t.roi, batchPerImage: over.roiBatchPerImage } } : t;
}

/** The ground truth of one image at the network's (resized, unpadded) size. */
export interface InstanceTargets {
  /** [G·4] x1, y1, x2, y2 in resized-image pixels. */
  boxes: Float32Array;
  /** [G] class indices 1…numClasses−1 (0 is background). */
  labels: Int32Array;
  /** G binary masks, row-major height × width of the resized image. */
  masks: Uint8Array[];
  height: number;
  width: number;
}

const f = Math.fround;

/**
 * Ground truth at the original size → at the resized size, as each preset's data path does it.
 * torchvision (GeneralizedRCNNTransform.resize): boxes × (resized / original) divided in float32;
 * masks by F.interpolate(nearest, recompute_scale_factor) — source index ⌊dst · (in/out as float32)⌋.
 * detectron2 (ResizeTransform): boxes × (new/old) in doubles then clipped to the image; masks by PIL
 * NEAREST (src/data/resize.ts).
 */
export function resizeTargets(preset: MaskRcnnPreset, t: InstanceTargets, height: number, width: number): InstanceTargets {
  const G = t.labels.length;
  const boxes = new Float32Array(4 * G);
  if (preset === "torchvision") {
    const rh = f(f(height) / f(t.height)), rw = f(f(width) / f(t.width));
    for (let i = 0; i < 4 * G; i++) boxes[i] = f(f(t.boxes[i]) * (i % 2 === 0 ? rw : rh));
  } else {
    const sx = width / t.width, sy = height / t.height;
    for (let i = 0; i < 4 * G; i++) {
      const v = t.boxes[i] * (i % 2 === 0 ? sx : sy), lim = i % 2 === 0 ? width : height;
      boxes[i] = f(Math.min(Math.max(v, 0), lim));
    }
  }
  let masks: Uint8Array[];
  if (preset === "torchvision") {
    const idx = (inSize: number, outSize: number): Int32Array => {
      const out = new Int32Array(outSize);
      if (outSize === inSize) { for (let i = 0; i < outSize; i++) out[i] = i; return out; }
      if (outSize === 2 * inSize) { for (let i = 0; i < outSize; i++) out[i] = i >> 1; return out; }
      const scale = f(inSize / outSize);
      for (let i = 0; i < outSize; i++) out[i] = Math.min(Math.floor(f(i * scale)), inSize - 1);
      return out;
    };
    const ys = idx(t.height, height), xs = idx(t.width, width);
    masks = t.masks.map((m) => {
      const out = new Uint8Array(height * width);
      for (let y = 0; y < height; y++) {
        const row = ys[y] * t.width;
        for (let x = 0; x < width; x++) out[y * width + x] = m[row + xs[x]];
      }
      return out;
    });
  } else {
    masks = t.masks.map((m) => resizeU8(m, t.width, t.height, 1, width, height, "nearest"));
  }
  return { boxes, labels: t.labels, masks, height, width };
}

/** A training batch: normalised, padded images (NHWC) and each image's resized size and targets. */
export interface TrainBatch {
  images: tf.Tensor4D;
  imageSizes: [number, number][];
  targets: InstanceTargets[];
}

/** Counts of one loss evaluation (for logs and tests). */
export interface LossStats {
  anchors: number;
  proposals: number[];
  rpnSampled: { positive: number; negative: number }[];
  roiSampled: { positive: number; negative: number }[];
  droppedBackground: number;
}

export interface LossResult {
  losses: Record<LossName, tf.Scalar>;
  total: tf.Scalar;
  stats: LossStats;
}

/** BCE with logits, elementwise, with torch's gradient σ(x) − y (no subgradient choice at x = 0). */
function bceWithLogits(logits: tf.Tensor, targets: tf.Tensor): tf.Tensor {
  const op = tf.customGrad((x, save) => {
    const xs = x as tf.Tensor;
    // the targets are saved too: the forward scope is gone when the gradient runs
    (save as (s: tf.Tensor[]) => void)([xs, targets]);
    const value = tf.add(tf.sub(tf.relu(xs), tf.mul(xs, targets)), tf.log1p(tf.exp(tf.neg(tf.abs(xs)))));
    return { value, gradFunc: (dy, saved) => tf.mul(dy as tf.Tensor, tf.sub(tf.sigmoid(saved[0]), saved[1])) };
  });
  return op(logits);
}

/**
 * Smooth-L1 elementwise (β = 0: L1), as torch.nn.functional.smooth_l1_loss / detectron2's
 * smooth_l1_loss, with torch's gradient: d/β inside |d| < β, sign(d) outside (0 at d = 0).
 */
function smoothL1(x: tf.Tensor, y: tf.Tensor, beta: number): tf.Tensor {
  const op = tf.customGrad((xIn, save) => {
    const d = tf.sub(xIn as tf.Tensor, y);
    (save as (s: tf.Tensor[]) => void)([d]);
    const a = tf.abs(d);
    const value = beta < 1e-5 ? a : tf.where(tf.less(a, beta), tf.div(tf.mul(tf.square(a), 0.5), beta), tf.sub(a, 0.5 * beta));
    return {
      value,
      gradFunc: (dy, saved) => {
        const dd = saved[0];
        const g = beta < 1e-5 ? tf.sign(dd) : tf.where(tf.less(tf.abs(dd), beta), tf.div(dd, beta), tf.sign(dd));
        return tf.mul(dy as tf.Tensor, g);
      },
    };
  });
  return op(x);
}

function gatherBoxes(src: Float32Array, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(4 * idx.length);
  for (let i = 0; i < idx.length; i++) out.set(src.subarray(4 * idx[i], 4 * idx[i] + 4), 4 * i);
  return out;
}

/** Mask targets [P, M, M] for proposals `boxes` [P·4] matched to GT masks `gtIndex` [P]. */
function maskTargets(t: InstanceTargets, boxes: Float32Array, gtIndex: Int32Array, M: number, cfg: MaskRcnnTraining): Float32Array {
  const P = gtIndex.length, out = new Float32Array(P * M * M);
  const params = { outputSize: [M, M] as const, spatialScale: 1, samplingRatio: 0, aligned: cfg.preset === "detectron2" };
  for (let g = 0; g < t.masks.length; g++) {
    const rows: number[] = [];
    for (let p = 0; p < P; p++) if (gtIndex[p] === g) rows.push(p);
    if (!rows.length) continue;
    const map = Float32Array.from(t.masks[g]);
    const cut = roiAlignForward(map, [1, t.height, t.width, 1], gatherBoxes(boxes, rows), new Int32Array(rows.length), params);
    rows.forEach((p, k) => {
      for (let i = 0; i < M * M; i++) {
        const v = cut[k * M * M + i];
        out[p * M * M + i] = cfg.binarizeMaskTargets ? (v >= 0.5 ? 1 : 0) : v;
      }
    });
  }
  return out;
}

/**
 * The five training losses of `net` on `batch` (call inside tf.variableGrads / a tape: every tensor
 * the losses depend on is built here). Class indices of the targets must be < net.numClasses.
 */
export function maskRcnnLosses(net: MaskRcnnNet, batch: TrainBatch, cfg: MaskRcnnTraining, pick: IndexPicker): LossResult {
  const N = batch.images.shape[0];
  if (batch.targets.length !== N || batch.imageSizes.length !== N) throw new MaskdistillError(`maskRcnnLosses: ${N} images, ${batch.targets.length} targets, ${batch.imageSizes.length} sizes`);
  for (const t of batch.targets) {
    for (const l of t.labels) if (!(l >= 1 && l < net.numClasses)) throw new MaskdistillError(`maskRcnnLosses: class ${l} is outside 1…${net.numClasses - 1} of the model`);
  }
  const [, Hp, Wp] = batch.images.shape;
  const d2 = cfg.preset === "detectron2";
  const features = backboneFeatures(net, batch.images, true);
  const rpn = rpnHeadOutputs(net, features);
  const objFlat = tf.concat(rpn.objectness.map((o) => tf.reshape(o, [N, -1])), 1) as tf.Tensor2D;               // [N, T]
  const delFlat = tf.concat(rpn.deltas.map((d) => tf.reshape(d, [N, -1, 4])), 1) as tf.Tensor3D;               // [N, T, 4]
  const T = objFlat.shape[1];
  const objValues = objFlat.dataSync() as Float32Array, delValues = delFlat.dataSync() as Float32Array;
  const { anchors, perLevel } = fpnAnchors(cfg.preset, features.map((t) => ({ featH: t.shape[1], featW: t.shape[2] })), Hp, Wp);
  if (anchors.length / 4 !== T) throw new MaskdistillError(`maskRcnnLosses: ${anchors.length / 4} anchors for ${T} RPN outputs`);

  const stats: LossStats = { anchors: T, proposals: [], rpnSampled: [], roiSampled: [], droppedBackground: 0 };
  // ---- RPN targets
  const rpnIdx: number[] = [], rpnLabels: number[] = [], rpnPosIdx: number[] = [], rpnPosTargets: number[] = [];
  for (let n = 0; n < N; n++) {
    const t = batch.targets[n], G = t.labels.length;
    const m = matchPredictions(boxIou(t.boxes, anchors, d2), G, T, RPN_MATCHER);
    const labels = new Int8Array(T);
    for (let j = 0; j < T; j++) labels[j] = m[j] >= 0 ? 1 : m[j] === BETWEEN_THRESHOLDS ? -1 : 0;
    const s = sampleBalanced(labels, cfg.rpn.batchPerImage, cfg.rpn.positiveFraction, pick, { stage: "rpn", image: n });
    stats.rpnSampled.push({ positive: s.positive.length, negative: s.negative.length });
    const matchedGt = new Float32Array(4 * s.positive.length);
    s.positive.forEach((j, k) => matchedGt.set(t.boxes.subarray(4 * m[j], 4 * m[j] + 4), 4 * k));
    const targets = encodeBoxes(matchedGt, gatherBoxes(anchors, s.positive), RPN_WEIGHTS);
    for (const j of s.positive) { rpnIdx.push(n * T + j); rpnLabels.push(1); rpnPosIdx.push(n * T + j); }
    for (const j of s.negative) { rpnIdx.push(n * T + j); rpnLabels.push(0); }
    for (const v of targets) rpnPosTargets.push(v);
  }
  const rpnSampled = rpnIdx.length;
  const rpnNorm = d2 ? cfg.rpn.batchPerImage * N : Math.max(rpnSampled, 1);
  const objLogits = tf.gather(tf.reshape(objFlat, [-1]), tf.tensor1d(rpnIdx, "int32"));
  const bce = bceWithLogits(objLogits, tf.tensor1d(rpnLabels));
  const lossObjectness = (d2 ? tf.div(tf.sum(bce), rpnNorm) : tf.mean(bce)) as tf.Scalar;
  const posDeltas = tf.gather(tf.reshape(delFlat, [-1, 4]), tf.tensor1d(rpnPosIdx, "int32"));
  const lossRpnBox = tf.div(tf.sum(smoothL1(posDeltas, tf.tensor2d(rpnPosTargets, [rpnPosIdx.length, 4]), cfg.smoothL1Beta)), rpnNorm) as tf.Scalar;

  // ---- proposals (constants), GT appended, ROI targets
  const roiBoxes: number[] = [], roiImage: number[] = [], roiLabels: number[] = [], roiTargets: number[] = [], roiKeep: number[] = [];
  const posRows: number[] = [], posGt: number[] = [];
  for (let n = 0; n < N; n++) {
    const t = batch.targets[n], G = t.labels.length;
    const obj = objValues.subarray(n * T, (n + 1) * T), del = delValues.subarray(4 * n * T, 4 * (n + 1) * T);
    const props = (d2 ? rpnProposalsDetectron2 : rpnProposals)(obj, del, anchors, perLevel, batch.imageSizes[n], cfg.rpn).boxes;
    stats.proposals.push(props.length / 4);
    const all = new Float32Array(props.length + t.boxes.length);
    all.set(props);
    all.set(t.boxes, props.length);
    const P = all.length / 4;
    const iou = boxIou(t.boxes, all, d2);
    const m = matchPredictions(iou, G, P, ROI_MATCHER);
    const labels = new Int8Array(P);
    for (let j = 0; j < P; j++) labels[j] = m[j] >= 0 ? 1 : m[j] === BELOW_LOW_THRESHOLD ? 0 : -1;
    const s = sampleBalanced(labels, cfg.roi.batchPerImage, cfg.roi.positiveFraction, pick, { stage: "roi", image: n });
    stats.roiSampled.push({ positive: s.positive.length, negative: s.negative.length });
    // torchvision keeps the sampled proposals in index order; detectron2 positives first
    const order = d2 ? [...s.positive, ...s.negative] : [...s.positive, ...s.negative].sort((a, b) => a - b);
    const isPos = new Set<number>(s.positive);
    for (const j of order) {
      const row = roiLabels.length;
      for (let k = 0; k < 4; k++) roiBoxes.push(all[4 * j + k]);
      roiImage.push(n);
      const pos = isPos.has(j);
      roiLabels.push(pos ? t.labels[m[j]] : 0);
      const gi = pos ? m[j] : 0;
      const enc = encodeBoxes(t.boxes.subarray(4 * gi, 4 * gi + 4), all.subarray(4 * j, 4 * j + 4), BOX_HEAD_WEIGHTS);
      for (const v of enc) roiTargets.push(v);
      let keep = 1;
      if (!pos && cfg.dropLossIou > 0) {
        let best = 0;
        for (let g = 0; g < G; g++) best = Math.max(best, iou[g * P + j]);
        if (!(best >= cfg.dropLossIou)) { keep = 0; stats.droppedBackground++; }
      }
      roiKeep.push(keep);
      if (pos) { posRows.push(row); posGt.push(m[j]); }
    }
  }
  const R = roiLabels.length, C = net.numClasses;
  const boxesArr = Float32Array.from(roiBoxes);
  const pooledLevels = features.slice(0, 4);
  const { scales, levelsOf } = poolerLevels(cfg.preset, pooledLevels.map((t) => t.shape[1]), batch.imageSizes, net.canonicalBoxSize);
  const pool = (b: Float32Array, idx: number[], size: number) =>
    multiScaleRoiAlign(pooledLevels, b, levelsOf(b), Int32Array.from(idx), { outputSize: size, samplingRatio: cfg.pool.samplingRatio, aligned: cfg.pool.aligned, scales });
  const head = boxHeadOutputs(net, pool(boxesArr, roiImage, cfg.pool.boxSize));
  const labelsT = tf.tensor1d(roiLabels, "int32");
  let lossClassifier: tf.Scalar;
  if (cfg.dropLossIou > 0) {
    const w = tf.tensor1d(roiKeep);
    const perRow = tf.neg(tf.sum(tf.mul(tf.oneHot(labelsT, C), tf.logSoftmax(head.classLogits)), 1));
    lossClassifier = tf.div(tf.sum(tf.mul(perRow, w)), Math.max(1, roiKeep.reduce((a, b) => a + b, 0))) as tf.Scalar;
  } else {
    lossClassifier = softmaxCrossEntropy(head.classLogits, labelsT);
  }
  const boxRows = posRows.map((r) => r * C + roiLabels[r]);
  const posPred = tf.gather(tf.reshape(head.boxDeltas, [R * C, 4]), tf.tensor1d(boxRows, "int32"));
  const posTargets = tf.tensor2d(Float32Array.from(posRows.flatMap((r) => roiTargets.slice(4 * r, 4 * r + 4))), [posRows.length, 4]);
  const lossBoxReg = tf.div(tf.sum(smoothL1(posPred, posTargets, cfg.smoothL1Beta)), Math.max(R, 1)) as tf.Scalar;

  // ---- masks of the foreground proposals
  let lossMask: tf.Scalar;
  const M = 2 * cfg.pool.maskSize;
  if (posRows.length === 0) {
    lossMask = tf.mul(tf.sum(head.classLogits), 0) as tf.Scalar;
  } else {
    const posBoxes = gatherBoxes(boxesArr, posRows);
    const posImage = posRows.map((r) => roiImage[r]);
    const logits = maskHeadOutputs(net, pool(posBoxes, posImage, cfg.pool.maskSize));            // [P, M, M, C]
    const labelOneHot = tf.reshape(tf.oneHot(tf.tensor1d(posRows.map((r) => roiLabels[r]), "int32"), C), [posRows.length, 1, 1, C]);
    const chosen = tf.sum(tf.mul(logits, labelOneHot), 3);                                          // [P, M, M]
    const targets = new Float32Array(posRows.length * M * M);
    for (let n = 0; n < N; n++) {
      const rows: number[] = [];
      posRows.forEach((r, k) => { if (roiImage[r] === n) rows.push(k); });
      if (!rows.length) continue;
      const cut = maskTargets(batch.targets[n], gatherBoxes(posBoxes, rows), Int32Array.from(rows, (k) => posGt[k]), M, cfg);
      rows.forEach((k, i) => targets.set(cut.subarray(i * M * M, (i + 1) * M * M), k * M * M));
    }
    lossMask = tf.mean(bceWithLogits(chosen, tf.tensor3d(targets, [posRows.length, M, M]))) as tf.Scalar;
  }
  const losses: Record<LossName, tf.Scalar> = {
    loss_objectness: lossObjectness, loss_rpn_box_reg: lossRpnBox, loss_classifier: lossClassifier, loss_box_reg: lossBoxReg, loss_mask: lossMask,
  };
  const total = tf.addN(LOSS_NAMES.map((k) => losses[k])) as tf.Scalar;
  return { losses, total, stats };
}
