// The "it learns" check of Mask R-CNN training: a reduced model trained on a few one-object images of a
// COCO file until it reproduces their masks; mask AP50 on those images before and after.
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { readCocoDataset } from "../data/coco.js";
import { maskRcnnVariables } from "../engine/models/maskrcnn.js";
import { detectron2Inference } from "./maskrcnn.js";
import {
  BGR_PIXEL_MEAN, BGR_PIXEL_STD, buildTrainNet, disposeTrainState, evaluateOnSamples, loadTrainSet, lostRecipe, trainMaskRcnn,
  type MaskRcnnTrainConfig, type StepLog,
} from "./train.js";

/** The reduced recipe: narrow body (stem 8), FPN 32, heads 128/32, random init, nothing frozen, short side 256, no flip. */
export function overfitRecipe(iterations: number): MaskRcnnTrainConfig {
  return {
    ...lostRecipe(), init: "none", widths: { stem: 8, fpn: 32, boxHead: 128, maskHead: 32 }, freezeAt: 0,
    minSizes: [256], maxSize: 384, flip: false, batchSize: 2, iterations, lr: 0.05, warmupIters: 5,
    steps: [Math.round(0.8 * iterations)], clipGradNorm: 5, seed: 7,
  };
}

export interface OverfitResult {
  images: number;
  iterations: number;
  ap50Before: number;
  ap50After: number;
  apAfter: number;
  firstLoss: number;
  lastLoss: number;
  trainSeconds: number;
}

/**
 * Trains overfitRecipe on the first `images` images (by id, present in `imagesDir`) of `annotations` with 1 to
 * `maxObjects` (default 1) objects, evaluating before and after.
 */
export async function overfitCheck(opts: { annotations: string; imagesDir: string; images: number; iterations: number; outDir: string; maxObjects?: number; onStep?: (l: StepLog) => void }): Promise<OverfitResult> {
  const ds = readCocoDataset(opts.annotations);
  const count = new Map<number, number>();
  for (const a of ds.annotations) if (!a.iscrowd) count.set(a.image_id, (count.get(a.image_id) ?? 0) + 1);
  const fits = (id: number) => (count.get(id) ?? 0) >= 1 && count.get(id)! <= (opts.maxObjects ?? 1);
  const chosen = new Set(ds.images.filter((im) => fits(im.id) && fs.existsSync(path.join(opts.imagesDir, im.file_name)))
    .map((im) => im.id).sort((a, b) => a - b).slice(0, opts.images));
  const subset = { ...ds, images: ds.images.filter((im) => chosen.has(im.id)), annotations: ds.annotations.filter((a) => chosen.has(a.image_id) && !a.iscrowd) };
  const usedCats = new Set(subset.annotations.map((a) => a.category_id));
  subset.categories = ds.categories.filter((c) => usedCats.has(c.id));
  fs.mkdirSync(opts.outDir, { recursive: true });
  const annFile = path.join(opts.outDir, "subset.json");
  fs.writeFileSync(annFile, JSON.stringify(subset));
  const set = loadTrainSet(annFile, opts.imagesDir, { agnostic: false });
  const config = overfitRecipe(opts.iterations);
  const inference = detectron2Inference({ minSize: 256, maxSize: 384, transform: { pixelMean: BGR_PIXEL_MEAN, pixelStd: BGR_PIXEL_STD } });
  const untrained = await buildTrainNet(config, set.numClasses);
  const before = await evaluateOnSamples(untrained, set, set.samples, inference);
  tf.dispose(maskRcnnVariables(untrained));
  const losses: number[] = [];
  const state = await trainMaskRcnn({ outDir: opts.outDir, set, config, resume: false, checkpointSeconds: 1e9, onStep: (l) => { losses.push(l.loss); opts.onStep?.(l); } });
  try {
    const after = await evaluateOnSamples(state.net, set, set.samples, inference);
    return {
      images: set.samples.length, iterations: state.step, ap50Before: before.ap50, ap50After: after.ap50, apAfter: after.ap,
      firstLoss: losses[0], lastLoss: losses[losses.length - 1], trainSeconds: Math.round(state.trainSeconds),
    };
  } finally {
    disposeTrainState(state);
  }
}
