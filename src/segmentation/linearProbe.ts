// The linear probe of the stage-v DeepLab (METHOD.md §6.2; the reference's segmentation/linear_finetune.py
// with configs/multi_obj/linear/linear_deeplab.yml and configs/multi_obj_avg/linear*/): the whole DeepLab
// frozen in eval mode (running BN statistics, no dropout), only the head's last 1×1 conv (`head[4]`,
// 256 → classes) re-initialised N(0, 0.01) with bias 0 and trained on ground truth with plain
// cross-entropy (ignore 255, mean over the batch's valid pixels), SGD lr 0.1, momentum 0.9, weight
// decay 1e-4 (on weight and bias), step decay ×0.1 once the epoch index exceeds 25, the stage-v
// augmentation (src/segmentation/transforms.ts), shuffled batches with drop_last.
//
// Because nothing before head[4] trains, its 256-channel input at 1/8 resolution is computed for each
// augmented view in eval mode without a gradient tape; only head[4] + the bilinear upsampling to the
// input size + the cross-entropy run under the tape, one image at a time (the gradients are summed and
// divided by the batch's valid pixel count: the same mean as torch's CrossEntropyLoss over the batch,
// with one image's full-resolution logits in memory instead of a batch's).
//
// Files in OUT: checkpoint.safetensors (head[4] under the reference's keys + its momentum buffers + the
// run's state in metadata; written every few minutes, at the end and when stopped), train_log.jsonl,
// model.safetensors (the whole DeepLab with the trained head[4], reference layout: what `segment` and
// `linear-probe --eval-only` load), val/plain/<id>.png and val/crf/<id>.png (val predictions at the
// original size), summary.json.
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { MaskdistillError, inputError } from "../errors.js";
import { mulberry32 } from "../random.js";
import type { RgbImage } from "../data/image.js";
import { writeLabelPng, type LabelMap } from "../data/png.js";
import { VOC_CLASSES } from "../data/voc.js";
import { mixSeed, epochOrder, truncateLog, CHECKPOINT_FILE, MODEL_FILE, LOG_FILE } from "../engine/loop.js";
import { sgdMomentumStep, newMomentumBuffers, type MomentumBuffers } from "../engine/train.js";
import { resizeBilinearHalfPixel, crossEntropyPerRow } from "../engine/ops.js";
import { ASPP_RATES, makeDeepLabV3, deepLabFrozenFeatures, deepLabTrainableForward, type DeepLabV3, type DeepLabWidths } from "../engine/models/deeplab.js";
import { collectVariables, normalArray, seededRng } from "../engine/models/params.js";
import { writeSafetensors, type StateDict } from "../modeling/checkpoint/index.js";
import { readSafetensorsFile } from "../pretrain/safetensorsIo.js";
import { deepLabFileMetadata, deepLabStateDict, deepLabTensors, loadDeepLabStateDict, readDeepLabStateDict, hwioToOihw, oihwToHwio } from "./model.js";
import { IGNORE_LABEL, SEGMENTATION_INPUT_SIZE, alignLabel, trainSample, valImage } from "./transforms.js";
import { newConfusion, accumulate, scoreConfusion, matchPredictions, type Confusion, type SemsegScore } from "../evaluation/semseg.js";
import { loadPair, segmentationItems, type SegmentationItem } from "./data.js";
import { argmaxPlanes, labelsFromLogits, logitsOfInput, type Prediction } from "./predict.js";
export { CHECKPOINT_FILE, MODEL_FILE, LOG_FILE };

// ---------------------------------------------------------------------------------------------
// recipes

export interface LinearProbeRecipe {
  name: string;
  /** Where the numbers come from. */
  source: string;
  batchSize: number;
  epochs: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  /** lr × lrDecayRate^(number of these epochs the epoch index exceeds) (the reference's "step" scheduler). */
  lrDecayEpochs: number[];
  lrDecayRate: number;
  /** Square network input (train: the augmentation's FixedResize; val: the resize before the forward). */
  inputSize: number;
  /** Std of head[4]'s re-initialised weights (bias 0). */
  initStd: number;
}

const REFERENCE_OPTIMISER = { lr: 0.1, momentum: 0.9, weightDecay: 1e-4, lrDecayRate: 0.1, initStd: 0.01 };

export const LINEAR_PROBE_RECIPES = {
  /** configs/multi_obj/linear/linear_deeplab.yml (METHOD.md §6.2). */
  multi_obj: {
    name: "multi_obj", source: "configs/multi_obj/linear/linear_deeplab.yml",
    batchSize: 16, epochs: 60, lrDecayEpochs: [25], inputSize: SEGMENTATION_INPUT_SIZE, ...REFERENCE_OPTIMISER,
  },
  /** configs/multi_obj_avg/linear_plus_crf/linear_deeplab_plus_crf.yml (the README's 62.77; linear/linear_deeplab_avg.yml is the same schedule). */
  multi_obj_avg: {
    name: "multi_obj_avg", source: "configs/multi_obj_avg/linear_plus_crf/linear_deeplab_plus_crf.yml",
    batchSize: 24, epochs: 45, lrDecayEpochs: [25], inputSize: SEGMENTATION_INPUT_SIZE, ...REFERENCE_OPTIMISER,
  },
  /**
   * For a CPU and the demo data (not the paper's): 128² input, batch 8, 3 epochs, lr ×0.1 after epoch
   * index 1; the reference's optimiser and augmentation otherwise. A frozen R50 forward at 128² takes
   * about 1 s on 2 loaded cores, so the demo's 250 training images take about 4 minutes an epoch.
   */
  cpu: {
    name: "cpu", source: "maskdistill CPU recipe for the demo data (not the paper's)",
    batchSize: 8, epochs: 3, lrDecayEpochs: [1], inputSize: 128, ...REFERENCE_OPTIMISER,
  },
  /**
   * The shapes world (issue 19; what `demo --world shapes` runs): 96² input, batch 8, 4 epochs at the
   * reference's lr 0.1, ×0.1 after epoch index 2. Measured on 1,000 train / 200 val images with a DeepLab
   * trained 500 steps from the stage-iii Mask R-CNN body: 22.6 mIoU, against 11.3 with the recipe until
   * session 12 (2 epochs at lr 0.001, chosen when 0.1 diverged on a briefly trained DeepLab from scratch:
   * loss 2.2 → 80–270); on session 11's committed DeepLab (from scratch) lr 0.1 gave 10.4 against 7.8.
   */
  shapes: {
    name: "shapes", source: "maskdistill shapes world (issue 19): the reference's optimiser, 4 epochs, 96² input",
    batchSize: 8, epochs: 4, lrDecayEpochs: [2], inputSize: 96, ...REFERENCE_OPTIMISER,
  },
} satisfies Record<string, LinearProbeRecipe>;

export type LinearProbeRecipeName = keyof typeof LINEAR_PROBE_RECIPES;

/** The reference's adjust_learning_rate with scheduler "step". */
export function probeLearningRate(recipe: LinearProbeRecipe, epoch: number): number {
  const steps = recipe.lrDecayEpochs.filter((e) => epoch > e).length;
  return recipe.lr * recipe.lrDecayRate ** steps;
}

// ---------------------------------------------------------------------------------------------
// data

export interface ProbeItem {
  id: string;
  image: string;
  label: string;
}

export interface ProbeData {
  train: ProbeItem[];
  val: ProbeItem[];
  /** What the data is, for the summary ("VOC2012 trainaug → val at DIR", "folders …"). */
  description: string;
}

/** The probe's items are stage v's (data.ts) under the id the probe reports. */
const probeItems = (items: SegmentationItem[]): ProbeItem[] => items.map((it) => ({ id: it.name, image: it.image, label: it.label! }));

/**
 * PASCAL VOC: JPEGImages/<id>.jpg with SegmentationClassAug/<id>.png where that folder exists (trainaug
 * needs SBD's labels), else SegmentationClass/<id>.png. Splits: ImageSets/Segmentation/<set>.txt, or
 * the reference's lists in data/splits/voc/ (trainaug → trainaug_seg.txt, val → val_seg.txt); data.ts.
 */
export function probeDataFromVoc(root: string, opts: { year?: string; trainSet?: string; valSet?: string } = {}): ProbeData {
  const year = opts.year ?? "2012";
  const trainSet = opts.trainSet ?? "trainaug", valSet = opts.valSet ?? "val";
  const items = (split: string, what: string) => segmentationItems({ vocRoot: root, year, split, augLabels: true }, what);
  const train = items(trainSet, "training set"), val = items(valSet, "val set");
  const labelDir = path.dirname(train[0].label!);
  return { train: probeItems(train), val: probeItems(val), description: `PASCAL VOC ${year} ${trainSet} → ${valSet} (${path.basename(labelDir)}) at ${path.dirname(labelDir)}` };
}

/** An image folder and a label folder (<stem>.png), with split lists of stems for train and val (data.ts). */
export function probeDataFromFolders(imagesDir: string, labelsDir: string, trainList: string, valList: string): ProbeData {
  const items = (list: string, what: string) => probeItems(segmentationItems({ images: imagesDir, labels: labelsDir, list }, what));
  return { train: items(trainList, "training set"), val: items(valList, "val set"), description: `images ${imagesDir}, labels ${labelsDir}, train ${trainList}, val ${valList}` };
}

/** Reads an item's image and label (data.ts loadPair: values must be < classes or 255), the label aligned to the image. */
export async function loadProbePair(item: ProbeItem, classes: number): Promise<{ image: RgbImage; label: LabelMap }> {
  const { image, label } = await loadPair({ name: item.id, image: item.image, label: item.label }, classes);
  return { image, label: alignLabel(image, label) };
}

// ---------------------------------------------------------------------------------------------
// the frozen network and the probe

/** Side of the DeepLab's output-stride-8 features for an input side (7×7/2 conv, 3×3/2 max pool, layer2's stride 2). */
export function deepLabFeatureSide(side: number): number {
  return Math.ceil(Math.ceil(Math.ceil(side / 2) / 2) / 2);
}

/**
 * The 256-channel input of head[4] (after head[3]'s ReLU) at 1/8 resolution, eval mode, no tape:
 * the network's own forward with head[4] replaced by the identity and the upsampling to the feature
 * size itself (both exact), so this is the same code path as the logits.
 */
export function headFeatures(m: DeepLabV3, images: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const c = m.widths.aspp;
    const identity: DeepLabV3 = {
      ...m,
      head: { ...m.head, classifier: tf.reshape(tf.eye(c), [1, 1, c, c]) as unknown as tf.Variable, classifierBias: tf.zeros([c]) as unknown as tf.Variable },
      numClasses: c,
    };
    const side: [number, number] = [deepLabFeatureSide(images.shape[1]), deepLabFeatureSide(images.shape[2])];
    return deepLabTrainableForward(identity, deepLabFrozenFeatures(identity, images), side, false);
  });
}

/** head[4] on features [N, h, w, 256], logits bilinearly upsampled (align_corners false) to `size`. */
export function probeLogits(m: DeepLabV3, features: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const low = tf.add(tf.conv2d(features, m.head.classifier as tf.Tensor4D, 1, 0), m.head.classifierBias) as tf.Tensor4D;
    return resizeBilinearHalfPixel(low, size);
  });
}

/** Σ of the per-pixel cross-entropy (255 and other non-class values ignored) of the probe on features of labels [N, H, W]. */
export function probeImageLoss(m: DeepLabV3, features: tf.Tensor4D, labels: tf.Tensor3D): tf.Scalar {
  return tf.tidy(() => tf.sum(crossEntropyPerRow(probeLogits(m, features, [labels.shape[1], labels.shape[2]]), labels).losses) as tf.Scalar);
}

/**
 * The probe's model: `frozen` with a fresh head[4] for `classes` classes (weights N(0, std²) from the
 * seed, bias 0); every other variable is shared with `frozen`.
 */
export function withProbeHead(frozen: DeepLabV3, classes: number, seed: number, std = REFERENCE_OPTIMISER.initStd): DeepLabV3 {
  const c = frozen.widths.aspp;
  return {
    ...frozen,
    head: {
      ...frozen.head,
      classifier: tf.variable(tf.tensor4d(normalArray(seededRng(mixSeed(seed, 4)), c * classes, std), [1, 1, c, classes]), true),
      classifierBias: tf.variable(tf.zeros([classes]), true),
    },
    numClasses: classes,
  };
}

/** The two trained variables (head.4.weight, head.4.bias). */
export function probeVariables(m: DeepLabV3): tf.Variable[] {
  return [m.head.classifier, m.head.classifierBias];
}

/** Every variable of the model but head[4] (what must stay bit-identical). */
export function frozenVariables(m: DeepLabV3): tf.Variable[] {
  const probe = new Set(probeVariables(m));
  return collectVariables(m).filter((v) => !probe.has(v));
}

/**
 * FNV-1a over the bytes of every tensor but head[4] (keys sorted): identifies the frozen network a
 * checkpoint was trained on, so --resume on other weights is refused.
 */
export function frozenFingerprint(sd: StateDict, asppRates: number[] = ASPP_RATES): string {
  let h = 0x811c9dc5;
  // the rates change the features without changing a weight (the reference's leave the hash as it was)
  const rates = asppRates.join(",");
  if (rates !== ASPP_RATES.join(",")) for (let i = 0; i < rates.length; i++) h = Math.imul(h ^ rates.charCodeAt(i), 0x01000193);
  for (const key of [...sd.keys()].sort()) {
    if (/^(head|classifier)\.4\./.test(key) || key.endsWith("num_batches_tracked")) continue;
    const t = sd.get(key)!;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/**
 * Reads a DeepLab-v3 checkpoint (reference or torchvision naming) strictly: a missing, unexpected or
 * mis-shaped tensor is an error naming it (the reference's strict=False would train on a random network).
 */
export async function loadFrozenDeepLab(file: string): Promise<{ model: DeepLabV3; fingerprint: string; layout: string; sourceClasses: number }> {
  if (!fs.existsSync(file)) throw inputError(file, "no such DeepLab checkpoint");
  const { stateDict, numClasses, widths, asppRates } = await readDeepLabStateDict(file);
  const model = makeDeepLabV3(seededRng(0), { numClasses, trainableFrom: "layer4", widths, asppRates });
  try {
    const layout = loadDeepLabStateDict(model, stateDict, file);
    return { model, fingerprint: frozenFingerprint(stateDict, asppRates), layout, sourceClasses: numClasses };
  } catch (e) {
    tf.dispose(collectVariables(model));
    throw e;
  }
}

/**
 * A DeepLab with every weight drawn from a seed: the notebook's and the tests' stand-in when no trained
 * DeepLab exists, and the random-features baseline of a probe (`widths`: another network's, e.g. the
 * quarter-width shapes DeepLab; default DeepLab-v3 R50). Convs N(0, 1/fan_in) with identity batch norms
 * (mean 0, var 1, γ 1, β 0), so the activations keep an O(1) scale through the 50 layers in eval mode (He's
 * fan-out init without trained BN statistics grows them by orders of magnitude, and lr 0.1 on head[4] then
 * diverges).
 */
export async function seededFrozenDeepLab(seed: number, classes = 21, widths?: DeepLabWidths): Promise<{ model: DeepLabV3; fingerprint: string }> {
  const model = makeDeepLabV3(seededRng(seed), { numClasses: classes, trainableFrom: "layer4", widths });
  const rng = seededRng(mixSeed(seed, 3));
  for (const t of deepLabTensors(model)) {
    if (!t.conv) continue;
    const [kh, kw, cin] = t.variable.shape as number[];
    tf.tidy(() => t.variable.assign(tf.tensor(normalArray(rng, t.variable.size, Math.sqrt(1 / (kh * kw * cin))), t.variable.shape)));
  }
  return { model, fingerprint: frozenFingerprint(await deepLabStateDict(model)) };
}

// ---------------------------------------------------------------------------------------------
// training

export interface ProbeConfig {
  recipe: LinearProbeRecipe;
  classes: number;
  seed: number;
  /** The --weights file (or a description of the seeded network). */
  weights: string;
  fingerprint: string;
}

export interface ProbeState {
  config: ProbeConfig;
  model: DeepLabV3;
  momentum: MomentumBuffers;
  /** Optimiser steps done. */
  step: number;
  trainSeconds: number;
  /** Training ids in the order of the data (checked on resume). */
  trainIds: string[];
}

export interface ProbeStepLog {
  step: number;
  epoch: number;
  lr: number;
  loss: number;
  validPixels: number;
  imagesPerSecond: number;
  trainSeconds: number;
}

export const SUMMARY_FILE = "summary.json";
const META_KEY = "maskdistill_linear_probe";

export function stepsPerEpoch(config: ProbeConfig, trainImages: number): number {
  return Math.floor(trainImages / config.recipe.batchSize);   // drop_last, as the reference's loader
}

/**
 * One SGD step on one batch of items. The frozen features of each augmented view are computed
 * without a tape; head[4]'s gradient is summed over the images and divided by the batch's valid
 * pixels; torch.optim.SGD's update (src/engine/train.ts) then runs on a surrogate loss Σ w·ḡ whose
 * gradient is exactly that mean gradient.
 */
export async function probeTrainStep(state: ProbeState, items: ProbeItem[], rngs: (() => number)[], lr: number): Promise<{ loss: number; validPixels: number }> {
  const { model } = state, { recipe, classes } = state.config;
  const size = recipe.inputSize;
  const [w, b] = probeVariables(model);
  const gradSum: tf.Tensor[] = [tf.zerosLike(w), tf.zerosLike(b)];
  let lossSum = 0, valid = 0;
  try {
    for (let i = 0; i < items.length; i++) {
      const pair = await loadProbePair(items[i], classes);
      const sample = trainSample(pair, rngs[i], size);
      for (const v of sample.label) if (v < classes) valid++;
      const x = tf.tensor4d(sample.image, [1, size, size, 3]);
      const features = headFeatures(model, x);
      const labels = tf.tensor3d(Int32Array.from(sample.label), [1, size, size], "int32");
      const { value, grads } = tf.variableGrads(() => probeImageLoss(model, features, labels), [w, b]);
      lossSum += (await value.data())[0];
      for (const [k, v] of [w, b].entries()) {
        const next = tf.add(gradSum[k], grads[v.name]);
        gradSum[k].dispose();
        gradSum[k] = next;
      }
      tf.dispose([x, features, labels, value, ...Object.values(grads)]);
    }
    if (valid === 0) return { loss: NaN, validPixels: 0 };   // torch's empty mean: no step
    const mean = gradSum.map((g) => tf.div(g, valid));
    await sgdMomentumStep(() => tf.add(tf.sum(tf.mul(w, mean[0])), tf.sum(tf.mul(b, mean[1]))) as tf.Scalar, [w, b], state.momentum,
      { lr, momentum: recipe.momentum, weightDecay: recipe.weightDecay });
    tf.dispose(mean);
  } finally {
    tf.dispose(gradSum);
  }
  state.step++;
  return { loss: lossSum / valid, validPixels: valid };
}

interface CheckpointMeta {
  format: 1;
  config: ProbeConfig;
  step: number;
  trainSeconds: number;
  trainIds: string[];
}

async function probeHeadStateDict(state: ProbeState): Promise<StateDict> {
  const [w, b] = probeVariables(state.model);
  const sd: StateDict = new Map();
  const put = (key: string, v: tf.Variable, conv: boolean, data: Float32Array) => {
    const s = v.shape as number[];
    sd.set(key, { dtype: "float32", shape: conv ? [s[3], s[2], s[0], s[1]] : s, data: conv ? hwioToOihw(data, s) : Float32Array.from(data) });
  };
  put("head.4.weight", w, true, (await w.data()) as Float32Array);
  put("head.4.bias", b, false, (await b.data()) as Float32Array);
  put("optimizer.momentum_buffer.head.4.weight", w, true, (await state.momentum.get(w.name)!.data()) as Float32Array);
  put("optimizer.momentum_buffer.head.4.bias", b, false, (await state.momentum.get(b.name)!.data()) as Float32Array);
  return sd;
}

/** Writes OUT/checkpoint.safetensors: head[4], its momentum buffers and the run's state. */
export async function saveProbeCheckpoint(state: ProbeState, outDir: string): Promise<void> {
  const meta: CheckpointMeta = { format: 1, config: state.config, step: state.step, trainSeconds: state.trainSeconds, trainIds: state.trainIds };
  fs.mkdirSync(outDir, { recursive: true });
  writeSafetensors(path.join(outDir, CHECKPOINT_FILE), await probeHeadStateDict(state), { [META_KEY]: JSON.stringify(meta), source: "maskdistill linear-probe" });
}

/** Restores head[4], the momentum buffers and the counters from a checkpoint into `state` (same frozen network). */
export async function loadProbeCheckpoint(state: ProbeState, file: string): Promise<void> {
  const { tensors, metadata } = await readSafetensorsFile(file);
  const raw = metadata[META_KEY];
  if (!raw) throw inputError(file, `not a linear-probe checkpoint (no "${META_KEY}" metadata)`);
  const meta = JSON.parse(raw) as CheckpointMeta;
  if (meta.config.fingerprint !== state.config.fingerprint) {
    throw inputError(file, `was trained on another frozen DeepLab (${meta.config.weights}, fingerprint ${meta.config.fingerprint}; now ${state.config.weights}, ${state.config.fingerprint})`);
  }
  if (meta.config.classes !== state.config.classes || meta.config.recipe.name !== state.config.recipe.name) {
    throw inputError(file, `was trained with recipe ${meta.config.recipe.name} and ${meta.config.classes} classes; now ${state.config.recipe.name}, ${state.config.classes}`);
  }
  if (meta.trainIds.join("\n") !== state.trainIds.join("\n")) throw inputError(file, `was trained on ${meta.trainIds.length} other images; resume with the same data`);
  const [w, b] = probeVariables(state.model);
  const assign = (key: string, v: tf.Variable, conv: boolean) => {
    const t = tensors.get(key);
    if (!t || t.data.length !== v.size) throw inputError(file, `missing or mis-shaped tensor ${key}`);
    v.assign(tf.tensor(conv ? oihwToHwio(t.data, t.shape) : t.data, v.shape));
  };
  assign("head.4.weight", w, true);
  assign("head.4.bias", b, false);
  assign("optimizer.momentum_buffer.head.4.weight", state.momentum.get(w.name)!, true);
  assign("optimizer.momentum_buffer.head.4.bias", state.momentum.get(b.name)!, false);
  state.step = meta.step;
  state.trainSeconds = meta.trainSeconds;
}

export interface ProbeTrainOptions {
  outDir: string;
  data: ProbeData;
  config: ProbeConfig;
  /** The frozen DeepLab (its head[4] is replaced). */
  frozen: DeepLabV3;
  resume: boolean;
  /** Use only the first N training images (demo runs). */
  limit?: number;
  /** Stop after this many steps in this sitting. */
  maxSteps?: number;
  /** Seconds between checkpoints (default 300); also at the end and when stopped. */
  checkpointSeconds?: number;
  signal?: AbortSignal;
  onStep?: (log: ProbeStepLog, state: ProbeState, totalSteps: number) => void;
}

/** Trains head[4] (or resumes) until the schedule ends, `maxSteps` or the signal; returns the state (caller disposes). */
export async function trainLinearProbe(opts: ProbeTrainOptions): Promise<ProbeState> {
  const { config } = opts;
  const train = opts.limit !== undefined ? opts.data.train.slice(0, opts.limit) : opts.data.train;
  const per = stepsPerEpoch(config, train.length);
  if (per === 0) throw new MaskdistillError(`${train.length} training images are fewer than one batch of ${config.recipe.batchSize} (the loader drops the last partial batch)`);
  const total = per * config.recipe.epochs;
  const model = withProbeHead(opts.frozen, config.classes, config.seed, config.recipe.initStd);
  const state: ProbeState = { config, model, momentum: newMomentumBuffers(probeVariables(model)), step: 0, trainSeconds: 0, trainIds: train.map((t) => t.id) };
  const ckpt = path.join(opts.outDir, CHECKPOINT_FILE), logFile = path.join(opts.outDir, LOG_FILE);
  if (opts.resume && fs.existsSync(ckpt)) {
    await loadProbeCheckpoint(state, ckpt);
    truncateLog(logFile, state.step);
  } else {
    if (fs.existsSync(ckpt) && !opts.resume) throw inputError(ckpt, "a checkpoint is already there: pass --resume to continue it, or choose another --out");
    fs.mkdirSync(opts.outDir, { recursive: true });
    fs.writeFileSync(logFile, "");
  }
  const every = (opts.checkpointSeconds ?? 300) * 1000;
  let lastSave = Date.now(), sitting = 0, savedAt = state.step;
  const bs = config.recipe.batchSize;
  while (state.step < total && !(opts.maxSteps !== undefined && sitting >= opts.maxSteps) && !opts.signal?.aborted) {
    const epoch = Math.floor(state.step / per), inEpoch = state.step % per;
    const order = epochOrder(config.seed, epoch, train.length);
    const positions = Array.from({ length: bs }, (_, k) => inEpoch * bs + k);
    const items = positions.map((p) => train[order[p]]);
    // one generator per (epoch, position): the augmentation of a resumed run is the same
    const rngs = positions.map((p) => mulberry32(mixSeed(config.seed, epoch, p, 2)));
    const lr = probeLearningRate(config.recipe, epoch);
    const t0 = Date.now();
    const r = await probeTrainStep(state, items, rngs, lr);
    const seconds = (Date.now() - t0) / 1000;
    state.trainSeconds += seconds;
    sitting++;
    const log: ProbeStepLog = { step: state.step, epoch: state.step / per, lr, loss: r.loss, validPixels: r.validPixels, imagesPerSecond: bs / seconds, trainSeconds: state.trainSeconds };
    fs.appendFileSync(logFile, JSON.stringify(log) + "\n");
    opts.onStep?.(log, state, total);
    if (Date.now() - lastSave >= every) { await saveProbeCheckpoint(state, opts.outDir); savedAt = state.step; lastSave = Date.now(); }
    await new Promise<void>((resolve) => setImmediate(resolve));   // let Ctrl-C / SIGTERM handlers run
  }
  if (savedAt !== state.step || !fs.existsSync(ckpt)) await saveProbeCheckpoint(state, opts.outDir);
  return state;
}

/** Writes OUT/model.safetensors: the whole DeepLab with the trained head[4] (reference keys). */
export async function saveProbeModel(state: ProbeState, outDir: string): Promise<string> {
  const file = path.join(outDir, MODEL_FILE);
  writeSafetensors(file, await deepLabStateDict(state.model), { ...deepLabFileMetadata(state.model), source: "maskdistill linear-probe", recipe: state.config.recipe.name, weights: state.config.weights });
  return file;
}

/** Frees head[4] and its momentum buffers (the frozen network stays: it belongs to the caller). */
export function disposeProbeHead(state: ProbeState): void {
  tf.dispose([...probeVariables(state.model), ...state.momentum.values()]);
}

// ---------------------------------------------------------------------------------------------
// evaluation

/** argmax over classes of logits [K, S, S] (first index on ties): predict.ts's argmaxPlanes. */
export const argmaxChw = argmaxPlanes;

export interface ProbePrediction {
  /** Label map at the original size: argmax at the input size, nearest-resized (cv2.INTER_NEAREST). */
  plain: LabelMap;
  /** With the CRF (logits bilinearly upsampled to the original size, MaskDistill's dense CRF). */
  crf?: LabelMap;
}

/** The reference's save_results_to_disk for one image: argmax (+ CRF) at the original size. */
export async function predictWithProbe(m: DeepLabV3, image: RgbImage, size: number, withCrf: boolean): Promise<ProbePrediction> {
  const k = m.numClasses;
  // the frozen features, then the probe's 1×1 classifier, upsampled to the input (the probe's forward)
  const logits = await logitsOfInput(m, valImage(image, size), size, (x) => probeLogits(m, headFeatures(m, x), [size, size]));
  const map = (p: Prediction): LabelMap => ({ width: p.width, height: p.height, data: p.labels });
  const plain = map(labelsFromLogits(logits, k, size, image));
  if (!withCrf) return { plain };
  return { plain, crf: map(labelsFromLogits(logits, k, size, image, true)) };
}

export interface ProbeEvaluation {
  images: number;
  plain: SemsegScore;
  crf?: SemsegScore;
  seconds: number;
}

/** mIoU on the val items (METHOD.md §6.1: original resolution, 255 ignored), with and without the CRF; PNGs into `predictionsDir`. */
export async function evaluateLinearProbe(m: DeepLabV3, items: ProbeItem[], opts: {
  size: number; crf: boolean; classes: number; predictionsDir?: string; limit?: number; signal?: AbortSignal; onImage?: (id: string) => void;
}): Promise<ProbeEvaluation> {
  const t0 = Date.now();
  const k = opts.classes;
  const confusions: { plain: Confusion; crf?: Confusion } = { plain: newConfusion(k, k), crf: opts.crf ? newConfusion(k, k) : undefined };
  const list = opts.limit !== undefined ? items.slice(0, opts.limit) : items;
  const dirs = opts.predictionsDir ? { plain: path.join(opts.predictionsDir, "plain"), crf: path.join(opts.predictionsDir, "crf") } : undefined;
  if (dirs) { fs.mkdirSync(dirs.plain, { recursive: true }); if (opts.crf) fs.mkdirSync(dirs.crf, { recursive: true }); }
  let done = 0;
  for (const item of list) {
    if (opts.signal?.aborted) break;
    const { image, label } = await loadProbePair(item, k);
    const p = await predictWithProbe(m, image, opts.size, opts.crf);
    accumulate(confusions.plain, p.plain.data, label.data, IGNORE_LABEL, item.id, item.label);
    if (dirs) writeLabelPng(path.join(dirs.plain, `${item.id}.png`), p.plain);
    if (p.crf && confusions.crf) {
      accumulate(confusions.crf, p.crf.data, label.data, IGNORE_LABEL, item.id, item.label);
      if (dirs) writeLabelPng(path.join(dirs.crf, `${item.id}.png`), p.crf);
    }
    done++;
    opts.onImage?.(item.id);
  }
  const score = (c: Confusion) => scoreConfusion(c, matchPredictions(c, "none"));
  return { images: done, plain: score(confusions.plain), crf: confusions.crf ? score(confusions.crf) : undefined, seconds: (Date.now() - t0) / 1000 };
}

// ---------------------------------------------------------------------------------------------
// summary

export interface LinearProbeSummary {
  kind: "linear-probe";
  command: string;
  data: string;
  weights: string;
  recipe: LinearProbeRecipe;
  classes: number;
  class_names: string[];
  train_images: number;
  val_images: number;
  steps: number;
  epochs: number;
  final_loss: number | null;
  train_seconds: number;
  /** mIoU in [0, 1] over all classes (empty ones count 0), as eval-semseg reports it. */
  miou: number;
  miou_crf: number | null;
  per_class: Record<string, number | null>;
  per_class_crf: Record<string, number | null> | null;
  /** class × class pixel counts, rows = prediction, columns = GT. */
  confusion: number[][];
  confusion_crf: number[][] | null;
}

/** Class names: VOC's for 21 classes, else class_0 … */
export function probeClassNames(classes: number): string[] {
  return classes === VOC_CLASSES.length ? [...VOC_CLASSES] : Array.from({ length: classes }, (_, i) => `class_${i}`);
}

export function probeSummary(state: ProbeState, ev: ProbeEvaluation, info: { command: string; data: string; trainImages: number; finalLoss: number | null; classNames?: string[] }): LinearProbeSummary {
  const names = info.classNames ?? probeClassNames(state.config.classes);
  if (names.length !== state.config.classes) throw new MaskdistillError(`${names.length} class names for ${state.config.classes} classes`);
  const perClass = (s: SemsegScore) => Object.fromEntries(names.map((n, i) => [n, s.per_class[i]]));
  const per = stepsPerEpoch(state.config, info.trainImages);
  return {
    kind: "linear-probe",
    command: info.command,
    data: info.data,
    weights: state.config.weights,
    recipe: state.config.recipe,
    classes: state.config.classes,
    class_names: names,
    train_images: info.trainImages,
    val_images: ev.images,
    steps: state.step,
    epochs: per ? state.step / per : 0,
    final_loss: info.finalLoss,
    train_seconds: state.trainSeconds,
    miou: ev.plain.miou,
    miou_crf: ev.crf ? ev.crf.miou : null,
    per_class: perClass(ev.plain),
    per_class_crf: ev.crf ? perClass(ev.crf) : null,
    confusion: ev.plain.confusion,
    confusion_crf: ev.crf ? ev.crf.confusion : null,
  };
}

/** Reads train_log.jsonl. */
export function readProbeLog(file: string): ProbeStepLog[] {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as ProbeStepLog);
}
