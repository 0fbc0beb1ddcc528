// Stage iii on the shapes world (issue 19), the method's distillation step end to end:
//   1. stage i  — one mask per train image with the world's backbone (gen-masks);
//   2. stage ii — the train masks clustered into K pseudo classes, named by the Hungarian pairing with
//                 the train ground truth (the reference's matched file: the usual protocol for scoring an
//                 unsupervised clustering; the labels themselves never reach the masks or the boxes);
//   3. stage iii — Mask R-CNN trained from scratch on those pseudo-masks (the shapes recipe), then run on
//                 the val split, next to the stage-i masks of val with their stage-ii classes and the same
//                 network untrained: class-aware and class-agnostic mask AP50 (COCOeval, multi protocol).
// Everything is resumable: masks, embeddings, the Mask R-CNN checkpoint and the detections are reused.
import * as fs from "node:fs";
import * as path from "node:path";
import { cocoSubsetByIds, readCocoDataset, readCocoResults, type CocoDataset, type CocoResult } from "../data/coco.js";
import { cocoImages } from "../distill/imageList.js";
import { genMasks } from "../distill/genMasks.js";
import { loadBackbone } from "../modeling/backbone.js";
import { fileSha256 } from "../modeling/session.js";
import { runClustering } from "../cluster/run.js";
import { evaluateInstances } from "../evaluation/instances.js";
import { MaskdistillError } from "../errors.js";

export interface ShapesStageIIIOptions {
  world: string;
  /** The stage i–ii backbone. */
  weights: string;
  /** Stage ii's backbone when it is another one (default `weights`). */
  clusterWeights?: string;
  /** Stage-i short side (0: the image size). */
  resize: number;
  out: string;
  /** The val split's stage-i masks labelled by stage ii (targets.ts writes OUT/clusters_masks.matched.json). */
  valPseudoLabels: string;
  /** Train images used (default all); Mask R-CNN iterations (default the shapes recipe's). */
  trainLimit?: number;
  valLimit?: number;
  iterations?: number;
  /**
   * The Mask R-CNN body's initialisation: "none" (default, the shapes recipe: random, each bottleneck's last conv
   * at zero) or a torchvision ResNet-50 file of the recipe's width (e.g. `pretrain --arch resnet50 --width 16`'s
   * teacher: the paper starts from a self-supervised ResNet-50).
   */
  init?: string;
  threads?: number;
  onProgress?: (what: string) => void;
  onStep?: (step: number, total: number, loss: number) => void;
}

/** Val images the untrained Mask R-CNN's row is scored on (its AP is 0.0 on any number of them). */
const UNTRAINED_VAL_IMAGES = 100;

/** What the shapes recipe changes for a pretrained body (the world's ResNet-50 by default in `demo --world shapes`, or `--maskrcnn-init FILE`). */
export const SHAPES_PRETRAINED_BODY = { lr: 0.02, freezeAt: 1 } as const;

export interface ApRow {
  method: string;
  ap50: number;
  ap50Agnostic: number;
}

export interface ShapesStageIII {
  /** The trained Mask R-CNN, and the world category id of each of its classes (label l → categoryIds[l − 1]). */
  modelFile: string;
  /** SHA-256 of modelFile: the detection journals' weights tag. */
  modelSha256: string;
  categoryIds: number[];
  trainImages: number;
  pseudoMasks: number;
  /** Stage ii on the train masks: ACC of the clusters the Mask R-CNN learns from. */
  trainClusterAcc: number;
  iterations: number;
  /** What initialised the body ("none" or the ResNet file). */
  init: string;
  /** Mean loss over the first and the last 20 iterations (a quarter of the run when shorter). */
  lossStart: number;
  lossEnd: number;
  trainSeconds: number;
  rows: ApRow[];
}

const round1 = (x: number) => Math.round(10 * x) / 10;

/** Class-aware and class-agnostic mask AP50 (%, one decimal; 0 where COCOeval has nothing to score), multi protocol. */
export function maskAp50s(gt: CocoDataset, results: CocoResult[]): { ap50: number; ap50Agnostic: number } {
  return {
    ap50: round1(100 * Math.max(0, evaluateInstances(gt, results).ap50)),
    ap50Agnostic: round1(100 * Math.max(0, evaluateInstances(gt, results, { agnostic: true }).ap50)),
  };
}

export interface ShapesPseudoMasks {
  /** The train masks with their stage-ii classes (COCO category ids of the world), for train-maskrcnn. */
  matchedFile: string;
  trainImages: number;
  /** ACC % of the clusters against the train classes. */
  clusterAcc: number;
}

/**
 * Stages i–ii on the world's train split (the first `trainLimit` images): one mask per image, clustered into K
 * pseudo classes named by the Hungarian pairing with the train ground truth. Resumable (masks and embeddings).
 */
export async function shapesPseudoMasks(opts: { world: string; weights: string; clusterWeights?: string; resize: number; out: string; trainLimit?: number; onProgress?: (what: string) => void }): Promise<ShapesPseudoMasks> {
  const trainGtFile = path.join(opts.world, "instances_train.json");
  if (!fs.existsSync(trainGtFile)) throw new MaskdistillError("missing: is this a make-shapes folder?", trainGtFile);
  fs.mkdirSync(opts.out, { recursive: true });
  const trainGt = readCocoDataset(trainGtFile);
  let trainImages = cocoImages(trainGtFile, opts.world, trainGt);
  if (opts.trainLimit) trainImages = trainImages.slice(0, opts.trainLimit);
  const trainSubset = path.join(opts.out, "gt_train.json");
  fs.writeFileSync(trainSubset, JSON.stringify(cocoSubsetByIds(trainGt, trainImages.map((im) => im.id))));
  opts.onProgress?.(`stage-i masks of ${trainImages.length} train images`);
  const masksTrain = path.join(opts.out, "masks_train.json");
  const backbone = await loadBackbone(opts.weights);
  try {
    await genMasks({ images: trainImages, predJson: masksTrain, backbone, resize: opts.resize, heads: 5, resume: true, quiet: true, keepEntries: true,
      configTag: { weightsSha256: await fileSha256(opts.weights), resize: opts.resize, heads: 5 } });
  } finally {
    await backbone.dispose();
  }
  opts.onProgress?.("clustering the train masks (stage ii)");
  const embedder = await loadBackbone(opts.clusterWeights ?? opts.weights);
  try {
    const run = await runClustering({
      dataset: "coco", numClasses: trainGt.categories.length,
      primary: { inputFile: masksTrain, datasetRoot: opts.world, gtFile: trainSubset },
      backbone: embedder, outputFile: path.join(opts.out, "clusters_train.json"), saveDir: path.join(opts.out, "cluster-cache-train"),
    });
    if (!run.summary.matchedFile) throw new MaskdistillError("clustering wrote no matched file (no ground truth?)", trainSubset);
    return { matchedFile: run.summary.matchedFile, trainImages: trainImages.length, clusterAcc: round1(run.summary.scores?.acc ?? 0) };
  } finally {
    await embedder.dispose();
  }
}

/** Mean loss over the first and the last 20 steps of a training log (a quarter of it when shorter), 3 decimals. */
export function lossAtEnds(log: { loss: number }[]): { start: number; end: number } {
  const edge = Math.max(1, Math.min(20, Math.floor(log.length / 4)));
  const mean = (xs: { loss: number }[]) => +(xs.reduce((s, x) => s + x.loss, 0) / Math.max(1, xs.length)).toFixed(3);
  return { start: mean(log.slice(0, edge)), end: mean(log.slice(-edge)) };
}

/**
 * A shapes-recipe Mask R-CNN run on `images` at the recipe's test size; COCO results in `out` whose classes
 * are world category ids (label l → categoryIds[l − 1]). Resumable (the per-image journal of `detect`).
 */
export async function detectShapes(o: {
  net: import("../engine/models/maskrcnn.js").MaskRcnnNet; images: ReturnType<typeof cocoImages>; out: string;
  categories: { id: number; name: string }[]; categoryIds: number[]; name: string;
  /** What the network's weights are (e.g. the model file's SHA-256): a rerun reuses the detections only of the same weights. */
  weightsId: string;
  /** Detections kept per image (default 100, detectron2's). */
  detectionsPerImage?: number;
  /** Threads detecting images side by side (detectDataset's workers; the same detections). */
  workers?: number;
}): Promise<void> {
  const { shapesInference } = await import("./maskRcnn.js");
  const { detectDataset } = await import("../instance/detect.js");
  const inference = await shapesInference(o.detectionsPerImage);
  await detectDataset({ images: o.images, out: o.out, net: o.net, inference, categories: o.categories, categoryOf: (l) => o.categoryIds[l - 1], resume: true, quiet: true, configTag: { name: o.name, weights: o.weightsId }, workers: o.workers,
    // a rerun of the demo (or one after a kill in a later stage) reuses finished detections
    keepEntries: true });
}

export async function runShapesStageIII(opts: ShapesStageIIIOptions): Promise<ShapesStageIII> {
  const valGtFile = path.join(opts.world, "instances_val.json");
  if (!fs.existsSync(valGtFile)) throw new MaskdistillError("missing: is this a make-shapes folder?", valGtFile);
  const pseudo = await shapesPseudoMasks({ ...opts, onProgress: (what) => opts.onProgress?.(`stage iii: ${what}`) });
  const matched = pseudo.matchedFile;

  // stage iii: Mask R-CNN on the pseudo-masks
  const { initEngine } = await import("../engine/index.js");
  await initEngine({ backend: "wasm", threads: opts.threads ?? 1 });
  const { shapesRecipe, loadTrainSet, trainMaskRcnn, disposeTrainState, buildTrainNet, checkpointConfig, MODEL_FILE, LOG_FILE, CHECKPOINT_FILE } = await import("../instance/train.js");
  const set = loadTrainSet(matched, opts.world, { agnostic: false });
  // a pretrained body (a ResNet-50 file) takes a gentler recipe: the shapes recipe's lr 0.04 was tuned for a random
  // body and washed R1's features out (class-aware AP50 6.7); with the stem frozen, lr 0.02 beat 0.01 at both lengths
  // (64.0 vs 62.4 at 720 iterations, 78.9 vs 72.4 at 1,440; data/backbones/shapes_resnet50_trials.jsonl)
  const init = opts.init ?? "none";
  const config = { ...shapesRecipe(), init, ...(init !== "none" ? SHAPES_PRETRAINED_BODY : {}), ...(opts.iterations ? { iterations: opts.iterations, steps: [Math.round((5 * opts.iterations) / 6)] } : {}) };
  const rcnnDir = path.join(opts.out, "maskrcnn");
  // a rerun resumes what the folder holds: a run started from another body would silently go on
  const started = await checkpointConfig(path.join(rcnnDir, CHECKPOINT_FILE));
  if (started && started.init !== config.init) {
    throw new MaskdistillError(`holds a Mask R-CNN started from ${started.init}, not ${config.init}: use another --out`, path.join(rcnnDir, CHECKPOINT_FILE));
  }
  opts.onProgress?.(`stage iii: training Mask R-CNN on ${set.samples.length} pseudo-masks, ${config.iterations} iterations (resumable)`);
  disposeTrainState(await trainMaskRcnn({
    outDir: rcnnDir, set, config, resume: true,
    onStep: (log) => opts.onStep?.(log.step, config.iterations, log.loss),
  }));
  const log = fs.readFileSync(path.join(rcnnDir, LOG_FILE), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { loss: number; trainSeconds: number });
  const loss = lossAtEnds(log);

  // val: the trained network, the same network untrained, and the stage-i masks it learned from
  const valGt = readCocoDataset(valGtFile);
  let valImages = cocoImages(valGtFile, opts.world, valGt);
  if (opts.valLimit) valImages = valImages.slice(0, opts.valLimit);
  const valIds = new Set(valImages.map((im) => im.id));
  const valSub = cocoSubsetByIds(valGt, valIds);
  const { loadMaskRcnnModel } = await import("../instance/detect.js");
  const { maskRcnnVariables } = await import("../engine/models/maskrcnn.js");
  const tf = await import("@tensorflow/tfjs");
  const categories = valGt.categories.map((c) => ({ id: c.id, name: c.name }));
  const detect = async (net: import("../engine/models/maskrcnn.js").MaskRcnnNet, name: string, weightsId: string, images = valImages, detectionsPerImage?: number) => {
    opts.onProgress?.(`stage iii: detecting on ${images.length} val images (${name})`);
    const out = path.join(opts.out, `detections_val_${name}.json`);
    await detectShapes({ net, images, out, categories, categoryIds: set.categoryIds, name, weightsId, detectionsPerImage, workers: opts.threads });
    return readCocoResults(out, valSub);
  };
  const modelFile = path.join(rcnnDir, MODEL_FILE);
  const trained = (await loadMaskRcnnModel(modelFile)).net;
  const modelSha256 = await fileSha256(modelFile);
  const trainedRow = { method: "stage iii: Mask R-CNN trained on the pseudo-masks", ...maskAp50s(valSub, await detect(trained, "trained", modelSha256)) };
  tf.dispose(maskRcnnVariables(trained));
  const untrained = await buildTrainNet(config, set.numClasses);
  // the untrained network's boxes are noise that all pass the 0.05 score threshold: 100 masks pasted per image
  // cost 3 minutes for an AP of 0.0; its 10 best on the first 100 val images give the same row in a 25th of the time
  const untrainedImages = valImages.slice(0, UNTRAINED_VAL_IMAGES);
  const untrainedSub = cocoSubsetByIds(valGt, new Set(untrainedImages.map((im) => im.id)));
  const untrainedDets = await detect(untrained, "untrained", `seed ${config.seed}, ${set.numClasses} classes, body ${config.init === "none" ? "random" : await fileSha256(config.init)}`,
    untrainedImages, 10);
  const untrainedRow = { method: `the same Mask R-CNN, untrained (10 detections per image, first ${untrainedImages.length} val images)`, ...maskAp50s(untrainedSub, untrainedDets) };
  tf.dispose(maskRcnnVariables(untrained));
  // unmatched clusters (category −1) have no class to score
  const stageI = readCocoResults(opts.valPseudoLabels, undefined, { anyCategory: true }).filter((r) => valIds.has(r.image_id) && r.category_id >= 0);
  const stageIRow = { method: "stage-i masks with their stage-ii classes", ...maskAp50s(valSub, stageI) };

  return {
    modelFile, modelSha256, categoryIds: set.categoryIds,
    trainImages: pseudo.trainImages, pseudoMasks: set.samples.length, trainClusterAcc: pseudo.clusterAcc, iterations: log.length, init: config.init,
    lossStart: loss.start, lossEnd: loss.end, trainSeconds: Math.round(log[log.length - 1]?.trainSeconds ?? 0),
    rows: [trainedRow, stageIRow, untrainedRow],
  };
}
