// Notebook 03 (Mask R-CNN training) helpers: the RPN's anchors and proposals before and after NMS on one
// image, the five-loss chart of a training log, and the recipe table.
import * as tf from "@tensorflow/tfjs";
import type { RgbImage } from "../data/image.js";
import { backboneFeatures, rpnHeadOutputs, type MaskRcnnNet } from "../engine/models/maskrcnn.js";
import { fpnAnchors } from "../instance/anchors.js";
import { rpnProposalsDetectron2, type MaskRcnnInference } from "../instance/maskrcnn.js";
import { detectron2Transform, DETECTRON2_TRANSFORM } from "../instance/transform.js";
import { LOSS_NAMES } from "../instance/losses.js";
import type { MaskRcnnTrainConfig } from "../instance/train.js";
import type { VegaLiteSpec } from "./plot.js";

export interface RpnStages {
  /** Resized (unpadded) image size [h, w] and the factor original → resized. */
  imageSize: [number, number];
  scale: number;
  /** All anchors [A·4] (resized-image coordinates) and their count per FPN level. */
  anchors: Float32Array;
  perLevel: number[];
  featureShapes: number[][];
  /** The per-level top-k proposals, decoded and clipped, before NMS, and the ones NMS keeps (best first). */
  beforeNms: { boxes: Float32Array; scores: Float32Array };
  afterNms: { boxes: Float32Array; scores: Float32Array };
}

/**
 * The detectron2 preset's RPN on one image, as detectImage runs it: anchors of every level, the
 * top-k proposals per level before NMS (the same function with NMS made a no-op: IoU threshold 1),
 * and after NMS (the inference settings' threshold and post-NMS count).
 */
export function rpnStages(net: MaskRcnnNet, img: RgbImage, cfg: MaskRcnnInference): RpnStages {
  const batch = detectron2Transform([img], cfg.detectron2 ?? DETECTRON2_TRANSFORM);
  const [, , Hp, Wp] = batch.shape;
  const imageSize = batch.imageSizes[0];
  const nhwc = new Float32Array(Hp * Wp * 3);
  for (let c = 0; c < 3; c++) for (let i = 0; i < Hp * Wp; i++) nhwc[i * 3 + c] = batch.data[c * Hp * Wp + i];
  const input = tf.tensor4d(nhwc, [1, Hp, Wp, 3]);
  const features = backboneFeatures(net, input);
  const rpn = rpnHeadOutputs(net, features);
  const flat = (ts: tf.Tensor4D[]) => Float32Array.from(ts.flatMap((t) => Array.from(t.dataSync() as Float32Array)));
  const objectness = flat(rpn.objectness), deltas = flat(rpn.deltas);
  const featureShapes = features.map((t) => t.shape.slice(1, 3));
  tf.dispose([input, ...features, ...rpn.objectness, ...rpn.deltas]);
  const { anchors, perLevel } = fpnAnchors("detectron2", featureShapes.map(([h, w]) => ({ featH: h, featW: w })), Hp, Wp);
  const beforeNms = rpnProposalsDetectron2(objectness, deltas, anchors, perLevel, imageSize, { ...cfg.rpn, nmsThresh: 1, postNmsTopN: Number.MAX_SAFE_INTEGER });
  const afterNms = rpnProposalsDetectron2(objectness, deltas, anchors, perLevel, imageSize, cfg.rpn);
  return { imageSize, scale: imageSize[0] / img.height, anchors, perLevel, featureShapes, beforeNms, afterNms };
}

/** The five losses (and their sum) of a train_log.jsonl against the iteration, one panel each. */
export function lossChartSpec(log: { step: number; loss: number; losses: Record<string, number> }[], title: string): VegaLiteSpec {
  const values = log.flatMap((r) => [
    { step: r.step, value: r.loss, loss: "total" },
    ...LOSS_NAMES.map((k) => ({ step: r.step, value: r.losses[k], loss: k.replace("loss_", "") })),
  ]);
  return {
    title, data: { values },
    facet: { field: "loss", type: "nominal", sort: ["total", ...LOSS_NAMES.map((k) => k.replace("loss_", ""))], title: null },
    columns: 3,
    spec: { width: 180, height: 110, mark: { type: "line", point: log.length <= 30 }, encoding: {
      x: { field: "step", type: "quantitative", title: "iteration" },
      y: { field: "value", type: "quantitative", title: null, scale: { zero: false } },
    } },
    resolve: { scale: { y: "independent" } },
  };
}

/** The settings of training recipes side by side (rows = setting, one column per recipe). */
export function recipeRows(recipes: Record<string, MaskRcnnTrainConfig>): Record<string, unknown>[] {
  const names = Object.keys(recipes);
  const row = (setting: string, get: (c: MaskRcnnTrainConfig) => unknown) =>
    ({ setting, ...Object.fromEntries(names.map((n) => [n, get(recipes[n])])) });
  return [
    row("init", (c) => c.init),
    row("frozen (freeze-at)", (c) => ["nothing", "stem", "stem + res2", "… + res3", "… + res4", "whole body"][c.freezeAt] + ` (${c.freezeAt})`),
    row("classes", (c) => (c.agnostic ? "agnostic" : "pseudo-classes")),
    row("short side (max)", (c) => `${Math.min(...c.minSizes)}–${Math.max(...c.minSizes)} (${c.maxSize})`),
    row("batch × iterations", (c) => `${c.batchSize} × ${c.iterations}`),
    row("lr, momentum, weight decay", (c) => `${c.lr}, ${c.momentum}, ${c.weightDecay}`),
    row("warm-up, steps (×γ)", (c) => `${c.warmupIters}, ${c.steps.join("/")} (×${c.gamma})`),
    row("ROI samples / image", (c) => c.roiBatchPerImage ?? 512),
    row("gradient clipping", (c) => (c.clipGradNorm ? c.clipGradNorm : "off")),
    row("DropLoss IoU", (c) => (c.dropLossIou ? c.dropLossIou : "off")),
  ];
}
