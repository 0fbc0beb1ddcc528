// Stage v training (METHOD.md §5.2; the reference's segmentation/multi_gpu.py with
// configs/multi_obj/deeplab.yml): DeepLab-v3 R50 OS8 on image + label pairs (the stage-iv
// pseudo-labels), the reference's augmentation (transforms.ts), OHEM cross-entropy (0.2, ignore 255),
// SGD lr 0.002 / momentum 0.9 / weight decay 1e-4 on every trained parameter (BN and biases too),
// conv1..layer2 frozen in eval mode, lr × 0.1 for epochs > 40 of 45, batches without the last
// partial one. The model used afterwards is the last epoch's (`model.safetensors`); with a val set,
// each epoch is also scored on it (the reference's online validation) and `select: "best-val"` keeps
// the best epoch in `model_best_val.safetensors` — a selection on val, reported as such.
//
// Determinism: the image order of epoch e, the augmentation of image i in epoch e and the dropout
// mask of step s come from PRNGs seeded by (seed, e[, i]) and (seed, s); the checkpoint holds the
// weights, BN running statistics and momentum buffers, so a run stopped at a step boundary resumes
// bit for bit. Files in OUT: checkpoint.safetensors (weights under the reference's keys +
// `optimizer.momentum_buffer.<key>` in PyTorch layout + JSON metadata), model.safetensors (weights
// only, reference keys: `segment --weights` and PyTorch load it), train_log.jsonl (one line per step,
// plus one per validation).
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { assertFitsInHeap } from "../engine/memory.js";
import { sgdMomentumStep, newMomentumBuffers, type MomentumBuffers } from "../engine/train.js";
import { makeDeepLabV3, validAsppRates, deepLabFrozenFeatures, deepLabTrainableForward, deepLabMemoryModel, type DeepLabV3, type DeepLabWidths } from "../engine/models/deeplab.js";
import { collectVariables, seededRng } from "../engine/models/params.js";
import { mixSeed, epochOrder, truncateLog, CHECKPOINT_FILE, MODEL_FILE, LOG_FILE } from "../engine/loop.js";
import { inputError, MaskdistillError } from "../errors.js";
import { writeSafetensors, type StateDict } from "../modeling/checkpoint/index.js";
import { requireWeights } from "../modeling/weights.js";
import { readSafetensorsFile } from "../pretrain/safetensorsIo.js";
import { removeStaleTemporaries } from "../runner/perImage.js";
import { mulberry32 } from "../random.js";
import { deepLabFileMetadata, deepLabTensors, deepLabStateDict, hwioToOihw, oihwToHwio, loadDeepLabStateDict, loadResNet50BackboneFile, torchShape, type DeepLabTensor } from "./model.js";
import { ohemCrossEntropy } from "./loss.js";
import { validate } from "./predict.js";
import { collateSamples, trainSample, REFERENCE_AUGMENT_RANGES, type SegmentationPair } from "./transforms.js";
export { CHECKPOINT_FILE, MODEL_FILE, LOG_FILE };

export interface DeepLabTrainConfig {
  /** "moco_v2" (the reference), a ResNet-50 file (torchvision / MoCo layout), or "none" (random backbone). */
  init: string;
  numClasses: number;
  epochs: number;
  /** lr × decayRate for every listed epoch the current epoch index exceeds (the reference's "step"). */
  decayEpochs: number[];
  decayRate: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  batchSize: number;
  /** Network input side (the reference's FixedResize 512). */
  inputSize: number;
  ohemThreshold: number;
  /** "last" (default) or "best-val" (selection on val, reported as such). */
  select: "last" | "best-val";
  seed: number;
  /** Channel widths (default ResNet-50's: stem 64, ASPP 256). */
  widths?: DeepLabWidths;
  /** The first trained backbone stage (default layer3: conv1..layer2 frozen, the reference's). */
  trainableFrom?: DeepLabV3["trainableFrom"];
  /** Dilations of the ASPP's 3×3 branches (default ASPP_RATES, the reference's 12/24/36 for 512² inputs). */
  asppRates?: number[];
}

/** configs/multi_obj/deeplab.yml (batch 16 over 2 GPUs, SyncBN: one batch of 16 here). */
export function referenceRecipe(init = "moco_v2"): DeepLabTrainConfig {
  return {
    init, numClasses: 21, epochs: 45, decayEpochs: [40], decayRate: 0.1, lr: 0.002, momentum: 0.9,
    weightDecay: 1e-4, batchSize: 16, inputSize: 512, ohemThreshold: 0.2, select: "last", seed: 0,
  };
}

/**
 * A CPU recipe for the bundled demo data (a smoke test, not the paper's numbers): input 128×128,
 * batch 2, one epoch at the reference's lr; everything else as the reference. A step is parameter-bound
 * (~24 M trained weights), about 2 s on 2 quiet cores, so one epoch over the 250 demo training images
 * is ~4 minutes. Without network access run it with `init: "none"` (random backbone).
 */
export function cpuRecipe(init?: string): DeepLabTrainConfig {
  return { ...referenceRecipe(init), epochs: 1, decayEpochs: [], batchSize: 2, inputSize: 128 };
}

/**
 * The shapes world's recipe (issue 19: 96×96 images, K = 8 shapes + background): the DeepLab-v3 R50 OS8
 * shape at 1/4 width (stem 16, ASPP 64), input 96 (the images' own size), batch 8, lr 0.02, ×0.1 for the
 * last of 6 epochs, the reference's augmentation, and:
 * - ASPP rates 2/4/6: the reference's 12/24/36 scaled to 96² inputs (at 12×12 maps they are 1×1 convs).
 *   Session 16, 500 images' pseudo-labels, 6 epochs: val mIoU 26.6 against 20.4; input 144² with rates
 *   3/7/10 gave 21.6 at 2.2× the cost; no dropout 24.1.
 * - A pretrained backbone (`init` a file; the demo's default, the world's ResNet-50) trains from layer3,
 *   conv1..layer2 frozen as the reference freezes them: 37.8 against 26.6 with every layer trained (a random
 *   head at lr 0.02 wore the pretrained front down), 109 s against 124–160 s; freezing the stem and layer1
 *   only gave 38.4 in 120 s. A random backbone (`init` "none") trains every layer.
 * - Plain cross-entropy (`ohemThreshold` 1): from scratch the reference's OHEM (hardest 20 %) never lets
 *   the network learn the background first (materials world's GT labels, one epoch: loss stuck at ln 9,
 *   val mIoU 0.6 %, against 8.8 % with cross-entropy; session 8); with R1 OHEM 0.2 stayed at 2 %.
 * - Steps are what it lacks: 12 epochs gave 38.3 where 6 gave 26.6; lr 0.05 was no faster.
 * About 14 images/s on one wasm thread (an epoch of 3,500 images ≈ 4 min).
 */
export function shapesRecipe(init = "none"): DeepLabTrainConfig {
  return {
    ...referenceRecipe(), init, numClasses: 9, widths: { backbone: 16, aspp: 64 },
    // a random backbone trains every layer; a pretrained one (`--init FILE`, the demo's default) from layer3
    trainableFrom: init === "none" ? "stem" : "layer3",
    inputSize: 96, batchSize: 8, epochs: 6, decayEpochs: [4], lr: 0.02, ohemThreshold: 1, asppRates: [2, 4, 6],
  };
}

/** `train-deeplab --recipe NAME`. */
export const DEEPLAB_RECIPES: Readonly<Record<string, (init?: string) => DeepLabTrainConfig>> = {
  reference: referenceRecipe,
  cpu: cpuRecipe,
  shapes: shapesRecipe,
};

/** The model a config describes (its widths and frozen front; ResNet-50 and layer3 by default). */
function modelOf(c: DeepLabTrainConfig): DeepLabV3 {
  return makeDeepLabV3(seededRng(c.seed), { numClasses: c.numClasses, trainableFrom: c.trainableFrom ?? "layer3", widths: c.widths, asppRates: c.asppRates });
}

/** The learning rate of epoch `epoch` (0-based): adjust_learning_rate's step schedule. */
export function learningRate(c: DeepLabTrainConfig, epoch: number): number {
  return c.lr * c.decayRate ** c.decayEpochs.filter((d) => epoch > d).length;
}

export function stepsPerEpoch(c: DeepLabTrainConfig, images: number): number {
  const n = Math.floor(images / c.batchSize);   // drop_last
  if (n < 1) throw new MaskdistillError(`train-deeplab: ${images} training images are fewer than one batch of ${c.batchSize}`);
  return n;
}

export function checkConfig(c: DeepLabTrainConfig): void {
  const bad = (what: string) => { throw new MaskdistillError(`train-deeplab: ${what}`); };
  if (!(Number.isInteger(c.epochs) && c.epochs >= 1)) bad(`epochs must be a positive integer, got ${c.epochs}`);
  if (!(Number.isInteger(c.batchSize) && c.batchSize >= 1)) bad(`batch size must be a positive integer, got ${c.batchSize}`);
  if (!(Number.isInteger(c.inputSize) && c.inputSize >= 32 && c.inputSize % 8 === 0)) bad(`input size must be a multiple of 8, at least 32, got ${c.inputSize}`);
  if (!(c.lr > 0)) bad(`lr must be positive, got ${c.lr}`);
  if (!(c.ohemThreshold > 0 && c.ohemThreshold <= 1)) bad(`OHEM threshold must be in (0, 1], got ${c.ohemThreshold}`);
  if (!(Number.isInteger(c.numClasses) && c.numClasses >= 2 && c.numClasses <= 255)) bad(`classes must be 2..255, got ${c.numClasses}`);
  if (c.select !== "last" && c.select !== "best-val") bad(`select must be last or best-val, got ${String(c.select)}`);
  if (c.asppRates && !validAsppRates(c.asppRates)) bad(`ASPP rates must be three positive integers, got ${c.asppRates.join(",")}`);
}

// ---------------------------------------------------------------------------------------------
// state

export interface ValRecord { epoch: number; step: number; miou: number; pixelAcc: number; perClass: (number | null)[] }

export interface DeepLabTrainState {
  config: DeepLabTrainConfig;
  model: DeepLabV3;
  /** Trained tensors (layer3, layer4, head) and their momentum buffers (keyed by variable name). */
  trained: DeepLabTensor[];
  buffers: MomentumBuffers;
  step: number;
  trainSeconds: number;
  /** Training image names in order (checked on resume). */
  names: string[];
  /** Online validation after each epoch (empty without a val set). */
  val: ValRecord[];
  /** What initialised the backbone (kept for the record). */
  initLayout: string;
}

/**
 * The head at PyTorch's default init (DeepLabHead is built by torchvision with nn.Conv2d defaults:
 * kaiming-uniform a = √5, i.e. U(±1/√fan_in), classifier bias U(±1/√fan_in); BN γ 1, β 0).
 */
function initHeadLikePyTorch(m: DeepLabV3, seed: number): void {
  const rng = seededRng(mixSeed(seed, 7));
  for (const t of deepLabTensors(m)) {
    if (!t.key.startsWith("head.")) continue;
    const shape = t.variable.shape as number[];
    let values: Float32Array | undefined;
    if (t.conv) {
      const bound = 1 / Math.sqrt(shape[0] * shape[1] * shape[2]);
      values = Float32Array.from({ length: t.variable.size }, () => (2 * rng() - 1) * bound);
    } else if (t.key === "head.4.bias") {
      const bound = 1 / Math.sqrt(m.widths.aspp);   // fan-in of head.4
      values = Float32Array.from({ length: t.variable.size }, () => (2 * rng() - 1) * bound);
    }
    if (values) tf.tidy(() => t.variable.assign(tf.tensor(values!, shape)));
  }
}

/** The ResNet-50 file an init names ("moco_v2" → the cached MoCo v2 release), or undefined for "none". */
export function initFile(init: string): string | undefined {
  if (init === "none") return undefined;
  return requireWeights(init === "moco_v2" ? "moco_v2_r50" : init).path;
}

function trainedTensors(m: DeepLabV3): DeepLabTensor[] {
  return deepLabTensors(m).filter((t) => t.variable.trainable);
}

/** A fresh state: backbone from the init, head at PyTorch's default init. */
export async function initTrainState(config: DeepLabTrainConfig, names: string[]): Promise<DeepLabTrainState> {
  checkConfig(config);
  const model = modelOf(config);
  initHeadLikePyTorch(model, config.seed);
  const file = initFile(config.init);
  const initLayout = file ? await loadResNet50BackboneFile(model, file) : "none (random backbone)";
  const trained = trainedTensors(model);
  return { config, model, trained, buffers: newMomentumBuffers(trained.map((t) => t.variable)), step: 0, trainSeconds: 0, names, val: [], initLayout };
}

export function disposeTrainState(s: DeepLabTrainState): void {
  tf.dispose([...collectVariables(s.model), ...s.buffers.values()]);
}

// ---------------------------------------------------------------------------------------------
// one step

export interface StepLog {
  step: number;
  epoch: number;
  lr: number;
  loss: number;
  /** Pixel accuracy of the training batch (train-mode argmax vs labels, 255 skipped). */
  pixelAcc: number;
  imagesPerSecond: number;
  trainSeconds: number;
}

/** The batch of step `step`: indices from the epoch order, each image augmented with its own PRNG. */
export function batchOf(c: DeepLabTrainConfig, pairs: SegmentationPair[], step: number): { indices: number[]; images: Float32Array; labels: Uint8Array } {
  const per = stepsPerEpoch(c, pairs.length), epoch = Math.floor(step / per), b = step % per;
  const order = epochOrder(c.seed, epoch, pairs.length);
  const indices = order.slice(b * c.batchSize, (b + 1) * c.batchSize);
  const samples = indices.map((i) => trainSample(pairs[i], mulberry32(mixSeed(c.seed, epoch, 2, i)), c.inputSize, REFERENCE_AUGMENT_RANGES));
  const batch = collateSamples(samples);
  return { indices, images: batch.images, labels: batch.labels };
}

/** Runs step `state.step` on `pairs` and advances the state. */
export async function trainStep(state: DeepLabTrainState, pairs: SegmentationPair[]): Promise<Omit<StepLog, "imagesPerSecond" | "trainSeconds">> {
  const c = state.config, s = c.inputSize;
  const per = stepsPerEpoch(c, pairs.length), epoch = Math.floor(state.step / per);
  if (epoch >= c.epochs) throw new MaskdistillError(`train-deeplab: step ${state.step} is past the schedule's ${c.epochs * per}`);
  const { images, labels } = batchOf(c, pairs, state.step);
  const n = labels.length / (s * s);
  const x = tf.tensor4d(images, [n, s, s, 3]);
  const y = tf.tensor3d(Int32Array.from(labels), [n, s, s], "int32");
  const features = deepLabFrozenFeatures(state.model, x);   // the frozen front needs no tape
  if (features !== x) x.dispose();   // nothing frozen (trainableFrom "stem"): the features are the images
  const dropout = mulberry32(mixSeed(c.seed, state.step, 3));
  let correct = 0, counted = 0;
  const lr = learningRate(c, epoch);
  let loss: number;
  try {
    loss = await sgdMomentumStep(() => {
      const logits = deepLabTrainableForward(state.model, features, [s, s], true, { dropout });
      const pred = tf.tidy(() => tf.argMax(logits, 3).dataSync() as Int32Array);
      for (let i = 0; i < labels.length; i++) if (labels[i] !== 255) { counted++; if (pred[i] === labels[i]) correct++; }
      return ohemCrossEntropy(logits, y, c.ohemThreshold);
    }, state.trained.map((t) => t.variable), state.buffers, { lr, momentum: c.momentum, weightDecay: c.weightDecay });
  } finally {
    tf.dispose([features, y]);
  }
  if (!Number.isFinite(loss)) throw new MaskdistillError(`train-deeplab: loss is ${loss} at step ${state.step}; stopping (lower --lr?)`);
  state.step++;
  return { step: state.step, epoch: state.step / per, lr, loss, pixelAcc: counted ? correct / counted : 0 };
}

// ---------------------------------------------------------------------------------------------
// checkpoints

export const BEST_VAL_FILE = "model_best_val.safetensors";
const META_KEY = "maskdistill_train_deeplab";

interface CheckpointMeta {
  format: 1;
  config: DeepLabTrainConfig;
  step: number;
  trainSeconds: number;
  names: string[];
  val: ValRecord[];
  initLayout: string;
}

function modelInfo(state: DeepLabTrainState, what: string): Record<string, string> {
  return {
    format: "pt", source: `maskdistill train-deeplab (${what})`, layout: "MaskDistill segmentation/models/deeplabv3_model.py (head.*)",
    num_classes: String(state.config.numClasses), step: String(state.step), init: state.config.init, ...deepLabFileMetadata(state.model),
  };
}

/** Writes the model alone (reference keys, float32): what `segment --weights` and PyTorch load. */
export async function saveModel(state: DeepLabTrainState, file: string, what: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, await deepLabStateDict(state.model), modelInfo(state, what));
}

/** Writes OUT/checkpoint.safetensors: weights, BN statistics, momentum buffers and the metadata (atomic). */
export async function saveCheckpoint(state: DeepLabTrainState, file: string): Promise<void> {
  const sd: StateDict = await deepLabStateDict(state.model);
  for (const t of state.trained) {
    const b = state.buffers.get(t.variable.name)!;
    const v = (await b.data()) as Float32Array;
    sd.set(`optimizer.momentum_buffer.${t.key}`, { dtype: "float32", shape: torchShape(t), data: t.conv ? hwioToOihw(v, t.variable.shape as number[]) : Float32Array.from(v) });
  }
  const meta: CheckpointMeta = { format: 1, config: state.config, step: state.step, trainSeconds: state.trainSeconds, names: state.names, val: state.val, initLayout: state.initLayout };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, sd, { ...modelInfo(state, "training checkpoint"), [META_KEY]: JSON.stringify(meta) });
}

/** Reads a state written by saveCheckpoint. */
export async function loadCheckpoint(file: string): Promise<DeepLabTrainState> {
  const { tensors, metadata } = await readSafetensorsFile(file);
  const raw = metadata[META_KEY];
  if (!raw) throw inputError(file, `not a train-deeplab checkpoint (no "${META_KEY}" metadata)`);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(raw) as CheckpointMeta;
  } catch (e) {
    throw inputError(file, "train-deeplab metadata is not valid JSON", e);
  }
  if (meta.format !== 1) throw inputError(file, `unknown train-deeplab checkpoint format ${String(meta.format)}`);
  const model = modelOf(meta.config);
  const weights: StateDict = new Map();
  for (const [k, t] of tensors) if (!k.startsWith("optimizer.")) weights.set(k, { dtype: "float32", shape: t.shape, data: t.data });
  loadDeepLabStateDict(model, weights, file);
  const trained = trainedTensors(model);
  const buffers = newMomentumBuffers(trained.map((t) => t.variable));
  for (const t of trained) {
    const b = tensors.get(`optimizer.momentum_buffer.${t.key}`);
    if (!b || b.data.length !== t.variable.size) throw inputError(file, `missing or mis-shaped momentum buffer of ${t.key}`);
    buffers.get(t.variable.name)!.assign(tf.tensor(t.conv ? oihwToHwio(b.data, b.shape) : b.data, t.variable.shape));
  }
  return { config: meta.config, model, trained, buffers, step: meta.step, trainSeconds: meta.trainSeconds, names: meta.names, val: meta.val ?? [], initLayout: meta.initLayout };
}

/** What a checkpoint holds, without its tensors (undefined when there is none). */
export async function checkpointInfo(file: string): Promise<CheckpointMeta | undefined> {
  if (!fs.existsSync(file)) return undefined;
  const { metadata } = await readSafetensorsFile(file, { headerOnly: true });
  const raw = metadata[META_KEY];
  if (!raw) throw inputError(file, `not a train-deeplab checkpoint (no "${META_KEY}" metadata)`);
  return JSON.parse(raw) as CheckpointMeta;
}

// ---------------------------------------------------------------------------------------------
// the loop

export interface TrainOptions {
  outDir: string;
  /** Training pairs and their names (in this order; the names are checked on resume). */
  pairs: SegmentationPair[];
  names: string[];
  /** Validation pairs: scored after every epoch (the reference's online validation). */
  valPairs?: SegmentationPair[];
  /** Start fresh with this config; ignored when resuming. */
  config: DeepLabTrainConfig;
  resume: boolean;
  /** Stop after this many steps in this sitting (the state is saved). */
  maxSteps?: number;
  /** Seconds between checkpoints (default 180); also at every epoch end and when stopped. */
  checkpointSeconds?: number;
  signal?: AbortSignal;
  onStart?: (state: DeepLabTrainState, info: { heapGiB?: number; resumedAt: number; totalSteps: number }) => void;
  onStep?: (log: StepLog, state: DeepLabTrainState) => void;
  onVal?: (rec: ValRecord, state: DeepLabTrainState) => void;
}

/** Trains (or resumes) until the schedule ends, `maxSteps` or the signal; returns the state (caller disposes). */
export async function trainDeepLab(opts: TrainOptions): Promise<DeepLabTrainState> {
  const ckpt = path.join(opts.outDir, CHECKPOINT_FILE), logFile = path.join(opts.outDir, LOG_FILE);
  removeStaleTemporaries(opts.outDir, /^[^/]+\.safetensors\.tmp-(?<pid>\d+)$/);
  let state: DeepLabTrainState;
  if (opts.resume && fs.existsSync(ckpt)) {
    state = await loadCheckpoint(ckpt);
    if (state.names.join("\n") !== opts.names.join("\n")) {
      throw inputError(ckpt, `was trained on ${state.names.length} other images (first: ${state.names[0]}); resume with the same images and labels`);
    }
    truncateLog(logFile, state.step);
  } else {
    if (fs.existsSync(ckpt) && !opts.resume) throw inputError(ckpt, "a checkpoint is already there: pass --resume to continue it, or choose another --out");
    state = await initTrainState(opts.config, opts.names);
    fs.mkdirSync(opts.outDir, { recursive: true });
    fs.writeFileSync(logFile, "");
  }
  const c = state.config;
  const per = stepsPerEpoch(c, opts.pairs.length), total = per * c.epochs;
  let heapGiB: number | undefined;
  if (tf.getBackend() === "wasm") {
    heapGiB = assertFitsInHeap(deepLabMemoryModel(state.model), c.batchSize, [c.inputSize, c.inputSize], { optimizerSlots: 1, sizeMultiple: 8 }).bytes / 1024 ** 3;
  }
  opts.onStart?.(state, { heapGiB, resumedAt: state.step, totalSteps: total });
  const every = (opts.checkpointSeconds ?? 180) * 1000;
  let lastSave = Date.now(), sitting = 0, savedAt = state.step;
  const save = async () => {
    await saveCheckpoint(state, ckpt);
    lastSave = Date.now();
    savedAt = state.step;
  };
  while (state.step < total && !(opts.maxSteps !== undefined && sitting >= opts.maxSteps) && !opts.signal?.aborted) {
    const t0 = Date.now();
    const r = await trainStep(state, opts.pairs);
    const seconds = (Date.now() - t0) / 1000;
    state.trainSeconds += seconds;
    sitting++;
    const log: StepLog = { ...r, imagesPerSecond: c.batchSize / seconds, trainSeconds: state.trainSeconds };
    fs.appendFileSync(logFile, JSON.stringify(log) + "\n");
    opts.onStep?.(log, state);
    if (state.step % per === 0) {
      const epoch = state.step / per - 1;
      if (opts.valPairs?.length) {
        const score = await validate(state.model, opts.valPairs, c.inputSize);
        const rec: ValRecord = { epoch, step: state.step, miou: score.miou, pixelAcc: score.pixel_acc, perClass: score.per_class };
        const best = Math.max(-1, ...state.val.map((v) => v.miou));
        state.val.push(rec);
        fs.appendFileSync(logFile, JSON.stringify({ step: state.step, val: rec }) + "\n");
        opts.onVal?.(rec, state);
        if (c.select === "best-val" && rec.miou > best) await saveModel(state, path.join(opts.outDir, BEST_VAL_FILE), `best val mIoU ${rec.miou.toFixed(4)} at epoch ${epoch} (selected on val)`);
      }
      await saveModel(state, path.join(opts.outDir, MODEL_FILE), `epoch ${epoch}`);
      await save();
    } else if (Date.now() - lastSave >= every) {
      await save();
    }
    // yield to the event loop so that Ctrl-C / SIGTERM handlers (→ opts.signal) get to run
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (savedAt !== state.step || !fs.existsSync(ckpt)) await save();
  if (state.step >= total && !fs.existsSync(path.join(opts.outDir, MODEL_FILE))) await saveModel(state, path.join(opts.outDir, MODEL_FILE), "last epoch");
  return state;
}
