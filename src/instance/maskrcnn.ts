// Mask R-CNN inference, image by image: transform → backbone + FPN → RPN proposals → box head →
// per-class NMS → mask head → boxes and masks at the original size. The network runs in tfjs
// (src/engine/models/maskrcnn.ts); everything between the heads is the forward-only geometry of this
// folder, each step exact to the reference library's (torchvision 0.14 for the `torchvision` preset;
// detectron2's mask_rcnn_R_50_FPN_3x inference for the `detectron2` preset, checked against a
// re-implementation of its steps in torch — test/fixtures/maskrcnn-d2).
//
// Labels are 1…numClasses−1 for both presets (0 = background): with detectron2 checkpoints the
// loader moves detectron2's background (its last class) to index 0, so label = detectron2 class + 1.
import * as tf from "@tensorflow/tfjs";
import type { RgbImage } from "../data/image.js";
import { MaskdistillError } from "../errors.js";
import { backboneFeatures, boxHeadOutputs, maskHeadOutputs, multiScaleRoiAlign, rpnHeadOutputs, type MaskRcnnNet } from "../engine/models/maskrcnn.js";
import { fpnAnchors } from "./anchors.js";
import { BBOX_XFORM_CLIP, BOX_HEAD_WEIGHTS, RPN_WEIGHTS, batchedNms, clipBoxes, decodeBoxes, nonEmptyBoxes, removeSmallBoxes, topK } from "./boxes.js";
import { poolerLevels } from "./levels.js";
import { pasteMaskBinary } from "./paste.js";
import {
  DETECTRON2_TRANSFORM, TORCHVISION_TRANSFORM, detectron2PostprocessBoxes, detectron2Transform, postprocessBoxes, rcnnTransform,
  type Detectron2TransformOptions, type RcnnTransformOptions,
} from "./transform.js";

export type MaskRcnnPreset = "torchvision" | "detectron2";
export const MASK_RCNN_PRESETS: readonly MaskRcnnPreset[] = ["torchvision", "detectron2"];

/** Inference settings; `torchvisionInference()` gives maskrcnn_resnet50_fpn's, `detectron2Inference()` mask_rcnn_R_50_FPN_3x's. */
export interface MaskRcnnInference {
  preset: MaskRcnnPreset;
  /** torchvision's transform; for the detectron2 preset only minSize/maxSize are meaningful (= `detectron2`'s short edge / max size). */
  transform: RcnnTransformOptions;
  /** The detectron2 preset's transform (ResizeShortestEdge, BGR 0–255 minus PIXEL_MEAN, std 1). */
  detectron2?: Detectron2TransformOptions;
  rpn: { preNmsTopN: number; postNmsTopN: number; nmsThresh: number; scoreThresh: number; minSize: number };
  box: { poolSize: number; samplingRatio: number; aligned: boolean; scoreThresh: number; nmsThresh: number; detectionsPerImage: number; minSize: number };
  mask: { poolSize: number; threshold: number };
}

/** What a caller may change in a preset's test settings; `proposals`: RPN proposals kept per image after NMS (both presets: 1000). */
export interface InferenceOverrides { minSize?: number; maxSize?: number; scoreThresh?: number; detectionsPerImage?: number; proposals?: number }

/** torchvision 0.14 maskrcnn_resnet50_fpn in eval mode (box_score_thresh 0.05 unless overridden). */
export function torchvisionInference(over: InferenceOverrides = {}): MaskRcnnInference {
  return {
    preset: "torchvision",
    transform: { ...TORCHVISION_TRANSFORM, minSize: over.minSize ?? 800, maxSize: over.maxSize ?? 1333 },
    rpn: { preNmsTopN: 1000, postNmsTopN: over.proposals ?? 1000, nmsThresh: 0.7, scoreThresh: 0, minSize: 1e-3 },
    box: { poolSize: 7, samplingRatio: 2, aligned: false, scoreThresh: over.scoreThresh ?? 0.05, nmsThresh: 0.5, detectionsPerImage: over.detectionsPerImage ?? 100, minSize: 1e-2 },
    mask: { poolSize: 14, threshold: 0.5 },
  };
}

/**
 * detectron2's mask_rcnn_R_50_FPN_3x at test time (configs/Base-RCNN-FPN.yaml + config/defaults.py):
 * ResizeShortestEdge(800, 1333), BGR, PIXEL_MEAN [103.53, 116.28, 123.675], PIXEL_STD 1; anchors with
 * fixed strides, unrounded; RPN PRE/POST_NMS_TOPK_TEST 1000/1000, NMS 0.7, MIN_SIZE 0 (nonempty);
 * ROIAlignV2 (aligned, sampling 0) 7×7 / 14×14; SCORE_THRESH_TEST 0.05, NMS_THRESH_TEST 0.5,
 * DETECTIONS_PER_IMAGE 100; mask threshold 0.5 (≥). detectron2 filters no small boxes in the box head.
 */
export function detectron2Inference(over: InferenceOverrides & { transform?: Partial<Detectron2TransformOptions> } = {}): MaskRcnnInference {
  const d2: Detectron2TransformOptions = { ...DETECTRON2_TRANSFORM, ...over.transform, shortEdge: over.minSize ?? 800, maxSize: over.maxSize ?? 1333 };
  return {
    preset: "detectron2",
    transform: { ...TORCHVISION_TRANSFORM, minSize: d2.shortEdge, maxSize: d2.maxSize },
    detectron2: d2,
    rpn: { preNmsTopN: 1000, postNmsTopN: over.proposals ?? 1000, nmsThresh: 0.7, scoreThresh: -Infinity, minSize: 0 },
    box: { poolSize: 7, samplingRatio: 0, aligned: true, scoreThresh: over.scoreThresh ?? 0.05, nmsThresh: 0.5, detectionsPerImage: over.detectionsPerImage ?? 100, minSize: 0 },
    mask: { poolSize: 14, threshold: 0.5 },
  };
}

/** The inference settings of a preset. */
export function presetInference(preset: MaskRcnnPreset, over: InferenceOverrides = {}): MaskRcnnInference {
  return preset === "detectron2" ? detectron2Inference(over) : torchvisionInference(over);
}

/** Detections of one image, best first. Boxes (x1, y1, x2, y2) and masks are at the original size. */
export interface ImageDetections {
  width: number;
  height: number;
  boxes: Float32Array;      // [D·4]
  scores: Float32Array;     // [D]
  labels: Int32Array;       // [D], 1…numClasses−1 (0 is background)
  masks: Uint8Array[];      // D binary masks, row-major height × width
  /** What the steps produced on the way (resized-image coordinates), for parity checks and notebooks. */
  steps?: DetectionSteps;
}

export interface DetectionSteps {
  imageSize: [number, number];
  batchShape: [number, number, number, number];
  proposals: Float32Array;
  /** torchvision: sigmoid probabilities; detectron2: the objectness logits (what each library keeps). */
  proposalScores: Float32Array;
  classLogits: Float32Array;
  boxesResized: Float32Array;
  maskProbs: Float32Array;  // [D·M·M] the label channel after the sigmoid
  featureShapes: number[][];
}

const f = Math.fround;
const sigmoid = (x: number): number => f(1 / (1 + Math.exp(-x)));

/** torchvision RPN.filter_proposals for one image: top-n per level by logit, decode, clip, NMS per level (training uses it with 2000/2000). */
export function rpnProposals(objectness: Float32Array, deltas: Float32Array, anchors: Float32Array, perLevel: number[],
    imageSize: [number, number], cfg: MaskRcnnInference["rpn"]): { boxes: Float32Array; scores: Float32Array } {
  const picked: number[] = [], pickedLevel: number[] = [];
  let offset = 0;
  perLevel.forEach((n, level) => {
    const top = topK(objectness.subarray(offset, offset + n), Math.min(cfg.preNmsTopN, n));
    for (const i of top) { picked.push(offset + i); pickedLevel.push(level); }
    offset += n;
  });
  const K = picked.length;
  const selDeltas = new Float32Array(4 * K), selAnchors = new Float32Array(4 * K), scores = new Float32Array(K);
  picked.forEach((i, j) => {
    selDeltas.set(deltas.subarray(4 * i, 4 * i + 4), 4 * j);
    selAnchors.set(anchors.subarray(4 * i, 4 * i + 4), 4 * j);
    scores[j] = sigmoid(objectness[i]);
  });
  let boxes = clipBoxes(decodeBoxes(selDeltas, selAnchors, RPN_WEIGHTS, BBOX_XFORM_CLIP), imageSize[0], imageSize[1]);
  const keep = Array.from(removeSmallBoxes(boxes, cfg.minSize)).filter((i) => scores[i] >= cfg.scoreThresh);
  const kBoxes = new Float32Array(4 * keep.length), kScores = new Float32Array(keep.length), kLevels = new Int32Array(keep.length);
  keep.forEach((i, j) => { kBoxes.set(boxes.subarray(4 * i, 4 * i + 4), 4 * j); kScores[j] = scores[i]; kLevels[j] = pickedLevel[i]; });
  const nmsKeep = batchedNms(kBoxes, kScores, kLevels, cfg.nmsThresh).subarray(0, cfg.postNmsTopN);
  boxes = new Float32Array(4 * nmsKeep.length);
  const outScores = new Float32Array(nmsKeep.length);
  nmsKeep.forEach((i, j) => { boxes.set(kBoxes.subarray(4 * i, 4 * i + 4), 4 * j); outScores[j] = kScores[i]; });
  return { boxes, scores: outScores };
}

/**
 * detectron2 find_top_rpn_proposals for one image: per level the top-k anchors by logit (torch.topk),
 * then over all levels: drop non-finite boxes/scores, clip, keep nonempty (w, h > MIN_SIZE = 0),
 * batched NMS by level on the logits, the first post-NMS top-k. Scores stay logits.
 */
export function rpnProposalsDetectron2(objectness: Float32Array, deltas: Float32Array, anchors: Float32Array, perLevel: number[],
    imageSize: [number, number], cfg: MaskRcnnInference["rpn"]): { boxes: Float32Array; scores: Float32Array } {
  const picked: number[] = [], pickedLevel: number[] = [];
  let offset = 0;
  perLevel.forEach((n, level) => {
    for (const i of topK(objectness.subarray(offset, offset + n), Math.min(cfg.preNmsTopN, n))) { picked.push(offset + i); pickedLevel.push(level); }
    offset += n;
  });
  const K = picked.length;
  const selDeltas = new Float32Array(4 * K), selAnchors = new Float32Array(4 * K);
  picked.forEach((i, j) => {
    selDeltas.set(deltas.subarray(4 * i, 4 * i + 4), 4 * j);
    selAnchors.set(anchors.subarray(4 * i, 4 * i + 4), 4 * j);
  });
  const decoded = decodeBoxes(selDeltas, selAnchors, RPN_WEIGHTS, BBOX_XFORM_CLIP);
  const finite: number[] = [];
  for (let j = 0; j < K; j++) {
    const i = picked[j];
    if (Number.isFinite(objectness[i]) && Number.isFinite(decoded[4 * j]) && Number.isFinite(decoded[4 * j + 1]) && Number.isFinite(decoded[4 * j + 2]) && Number.isFinite(decoded[4 * j + 3])) finite.push(j);
  }
  const fBoxes = new Float32Array(4 * finite.length);
  finite.forEach((j, k) => fBoxes.set(decoded.subarray(4 * j, 4 * j + 4), 4 * k));
  const clipped = clipBoxes(fBoxes, imageSize[0], imageSize[1]);
  const keep = nonEmptyBoxes(clipped, cfg.minSize);
  const kBoxes = new Float32Array(4 * keep.length), kScores = new Float32Array(keep.length), kLevels = new Int32Array(keep.length);
  keep.forEach((i, j) => { kBoxes.set(clipped.subarray(4 * i, 4 * i + 4), 4 * j); kScores[j] = objectness[picked[finite[i]]]; kLevels[j] = pickedLevel[finite[i]]; });
  const nmsKeep = batchedNms(kBoxes, kScores, kLevels, cfg.nmsThresh).subarray(0, cfg.postNmsTopN);
  const boxes = new Float32Array(4 * nmsKeep.length), scores = new Float32Array(nmsKeep.length);
  nmsKeep.forEach((i, j) => { boxes.set(kBoxes.subarray(4 * i, 4 * i + 4), 4 * j); scores[j] = kScores[i]; });
  return { boxes, scores };
}

/**
 * detectron2 fast_rcnn_inference_single_image on the loader's class layout (0 = background): softmax,
 * class-specific decode, drop proposals with a non-finite box or score, clip, candidates (proposal,
 * class) with score > thresh in row-major order, batched NMS by class, the first top-k. No size filter.
 */
function boxDetectionsDetectron2(classLogits: Float32Array, boxDeltas: Float32Array, proposals: Float32Array, numClasses: number,
    imageSize: [number, number], cfg: MaskRcnnInference["box"]): { boxes: Float32Array; scores: Float32Array; labels: Int32Array } {
  const P = proposals.length / 4;
  const decoded = decodeBoxes(boxDeltas, proposals, BOX_HEAD_WEIGHTS, BBOX_XFORM_CLIP);
  const candBoxes: number[] = [], candScores: number[] = [], candLabels: number[] = [];
  const probs = new Float64Array(numClasses), ps = new Float32Array(numClasses);
  for (let p = 0; p < P; p++) {
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) max = Math.max(max, classLogits[p * numClasses + c]);
    let sum = 0;
    for (let c = 0; c < numClasses; c++) sum += (probs[c] = Math.exp(classLogits[p * numClasses + c] - max));
    let finite = true;
    for (let c = 0; c < numClasses; c++) { ps[c] = f(probs[c] / sum); if (!Number.isFinite(ps[c])) finite = false; }
    for (let c = 1; c < numClasses && finite; c++) for (let k = 0; k < 4; k++) if (!Number.isFinite(decoded[(p * numClasses + c) * 4 + k])) finite = false;
    if (!finite) continue;
    for (let c = 1; c < numClasses; c++) {
      const s = ps[c];
      if (!(s > cfg.scoreThresh)) continue;
      const o = (p * numClasses + c) * 4;
      candBoxes.push(decoded[o], decoded[o + 1], decoded[o + 2], decoded[o + 3]);
      candScores.push(s);
      candLabels.push(c);
    }
  }
  const cb = clipBoxes(Float32Array.from(candBoxes), imageSize[0], imageSize[1]), cs = Float32Array.from(candScores), cl = Int32Array.from(candLabels);
  const keep = batchedNms(cb, cs, cl, cfg.nmsThresh).subarray(0, cfg.detectionsPerImage);
  const boxes = new Float32Array(4 * keep.length), scores = new Float32Array(keep.length), labels = new Int32Array(keep.length);
  keep.forEach((i, j) => { boxes.set(cb.subarray(4 * i, 4 * i + 4), 4 * j); scores[j] = cs[i]; labels[j] = cl[i]; });
  return { boxes, scores, labels };
}

/** torchvision RoIHeads.postprocess_detections for one image. */
function boxDetections(classLogits: Float32Array, boxDeltas: Float32Array, proposals: Float32Array, numClasses: number,
    imageSize: [number, number], cfg: MaskRcnnInference["box"]): { boxes: Float32Array; scores: Float32Array; labels: Int32Array } {
  const P = proposals.length / 4;
  const decoded = clipBoxes(decodeBoxes(boxDeltas, proposals, BOX_HEAD_WEIGHTS, BBOX_XFORM_CLIP), imageSize[0], imageSize[1]);
  // softmax per proposal (float32 result), then every foreground (proposal, class) pair is a candidate
  const candBoxes: number[] = [], candScores: number[] = [], candLabels: number[] = [];
  const probs = new Float64Array(numClasses);
  for (let p = 0; p < P; p++) {
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) max = Math.max(max, classLogits[p * numClasses + c]);
    let sum = 0;
    for (let c = 0; c < numClasses; c++) sum += (probs[c] = Math.exp(classLogits[p * numClasses + c] - max));
    for (let c = 1; c < numClasses; c++) {
      const s = f(probs[c] / sum);
      if (!(s > cfg.scoreThresh)) continue;
      const o = (p * numClasses + c) * 4;
      candBoxes.push(decoded[o], decoded[o + 1], decoded[o + 2], decoded[o + 3]);
      candScores.push(s);
      candLabels.push(c);
    }
  }
  const cb = Float32Array.from(candBoxes), cs = Float32Array.from(candScores), cl = Int32Array.from(candLabels);
  const nonSmall = removeSmallBoxes(cb, cfg.minSize);
  const sb = new Float32Array(4 * nonSmall.length), ss = new Float32Array(nonSmall.length), sl = new Int32Array(nonSmall.length);
  nonSmall.forEach((i, j) => { sb.set(cb.subarray(4 * i, 4 * i + 4), 4 * j); ss[j] = cs[i]; sl[j] = cl[i]; });
  const keep = batchedNms(sb, ss, sl, cfg.nmsThresh).subarray(0, cfg.detectionsPerImage);
  const boxes = new Float32Array(4 * keep.length), scores = new Float32Array(keep.length), labels = new Int32Array(keep.length);
  keep.forEach((i, j) => { boxes.set(sb.subarray(4 * i, 4 * i + 4), 4 * j); scores[j] = ss[i]; labels[j] = sl[i]; });
  return { boxes, scores, labels };
}

/** Runs the detector on one image. The engine (tfjs backend) must be initialised. */
export async function detectImage(net: MaskRcnnNet, img: RgbImage, cfg: MaskRcnnInference,
    opts: { keepSteps?: boolean; /** seconds per phase are added here */ timings?: Record<string, number> } = {}): Promise<ImageDetections> {
  let t0 = performance.now();
  const lap = (name: string) => {
    const t = performance.now();
    if (opts.timings) opts.timings[name] = (opts.timings[name] ?? 0) + (t - t0) / 1000;
    t0 = t;
  };
  const d2 = cfg.preset === "detectron2";
  const batch = d2 ? detectron2Transform([img], cfg.detectron2 ?? DETECTRON2_TRANSFORM) : rcnnTransform([img], cfg.transform);
  lap("transform");
  const [, , Hp, Wp] = batch.shape;
  const imageSize = batch.imageSizes[0];
  const minSide = 2 ** 5;   // P6 needs at least one cell
  if (Hp < minSide || Wp < minSide) throw new MaskdistillError(`image ${img.width}×${img.height} is too small for the detector (resized ${imageSize[1]}×${imageSize[0]})`);
  // CHW → NHWC for the engine
  const nhwc = new Float32Array(Hp * Wp * 3);
  for (let c = 0; c < 3; c++) for (let i = 0; i < Hp * Wp; i++) nhwc[i * 3 + c] = batch.data[c * Hp * Wp + i];
  const input = tf.tensor4d(nhwc, [1, Hp, Wp, 3]);
  const features = backboneFeatures(net, input);
  input.dispose();
  if (opts.timings) await features[4].data();   // wait for the backbone only when timing
  lap("backbone");
  try {
    const featureShapes = features.map((t) => t.shape.slice(1, 3));
    const rpn = rpnHeadOutputs(net, features);
    const objectness = Float32Array.from((await Promise.all(rpn.objectness.map((t) => t.data()))).flatMap((d) => Array.from(d as Float32Array)));
    const deltas = Float32Array.from((await Promise.all(rpn.deltas.map((t) => t.data()))).flatMap((d) => Array.from(d as Float32Array)));
    tf.dispose([...rpn.objectness, ...rpn.deltas]);
    const { anchors, perLevel } = fpnAnchors(cfg.preset, featureShapes.map(([h, w]) => ({ featH: h, featW: w })), Hp, Wp);
    lap("rpnHead");
    const proposals = (d2 ? rpnProposalsDetectron2 : rpnProposals)(objectness, deltas, anchors, perLevel, imageSize, cfg.rpn);
    lap("proposals");

    const pooledLevels = features.slice(0, 4);
    const { scales, levelsOf } = poolerLevels(cfg.preset, pooledLevels.map((t) => t.shape[1]), [imageSize], net.canonicalBoxSize);
    const P = proposals.scores.length;
    const pooled = multiScaleRoiAlign(pooledLevels, proposals.boxes, levelsOf(proposals.boxes), new Int32Array(P),
      { outputSize: cfg.box.poolSize, samplingRatio: cfg.box.samplingRatio, aligned: cfg.box.aligned, scales });
    lap("boxRoiAlign");
    const head = boxHeadOutputs(net, pooled);
    pooled.dispose();
    const classLogits = (await head.classLogits.data()) as Float32Array, boxDeltas = (await head.boxDeltas.data()) as Float32Array;
    tf.dispose([head.classLogits, head.boxDeltas]);
    lap("boxHead");
    const det = (d2 ? boxDetectionsDetectron2 : boxDetections)(classLogits, boxDeltas, proposals.boxes, net.numClasses, imageSize, cfg.box);
    lap("boxNms");

    const D = det.scores.length, M = 2 * cfg.mask.poolSize;
    const maskProbs = new Float32Array(D * M * M);
    if (D > 0) {
      const mp = multiScaleRoiAlign(pooledLevels, det.boxes, levelsOf(det.boxes), new Int32Array(D),
        { outputSize: cfg.mask.poolSize, samplingRatio: cfg.box.samplingRatio, aligned: cfg.box.aligned, scales });
      const logitsT = maskHeadOutputs(net, mp);
      mp.dispose();
      const logits = (await logitsT.data()) as Float32Array;
      logitsT.dispose();
      const C = net.numClasses;
      for (let d = 0; d < D; d++) for (let i = 0; i < M * M; i++) maskProbs[d * M * M + i] = sigmoid(logits[(d * M * M + i) * C + det.labels[d]]);
    }
    lap("maskHead");
    // detectron2's detector_postprocess also clips and drops the boxes that became empty at the output size
    let boxes: Float32Array, kept: Int32Array;
    if (d2) ({ boxes, keep: kept } = detectron2PostprocessBoxes(det.boxes, imageSize, [img.height, img.width]));
    else { boxes = postprocessBoxes(det.boxes, imageSize, [img.height, img.width]); kept = Int32Array.from({ length: D }, (_, i) => i); }
    const masks: Uint8Array[] = [];
    kept.forEach((d, k) => {
      masks.push(pasteMaskBinary(cfg.preset, maskProbs.subarray(d * M * M, (d + 1) * M * M), M, boxes.subarray(4 * k, 4 * k + 4), img.height, img.width, cfg.mask.threshold));
    });
    lap("paste");
    const scores = kept.length === D ? det.scores : Float32Array.from(kept, (d) => det.scores[d]);
    const labels = kept.length === D ? det.labels : Int32Array.from(kept, (d) => det.labels[d]);
    return {
      width: img.width, height: img.height, boxes, scores, labels, masks,
      steps: opts.keepSteps ? {
        imageSize, batchShape: batch.shape, proposals: proposals.boxes, proposalScores: proposals.scores,
        classLogits, boxesResized: det.boxes, maskProbs, featureShapes,
      } : undefined,
    };
  } finally {
    tf.dispose(features);
  }
}
