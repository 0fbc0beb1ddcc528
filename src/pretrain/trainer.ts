// DINO self-distillation (Caron et al., ICCV 2021) in TensorFlow.js: a student and an EMA teacher
// with the same ViT + projection head; the student learns to match, on every other view, the
// teacher's centred and sharpened distribution of the two global views.
//
// One iteration (main_dino.py train_one_epoch):
//   teacher on the 2 global crops → logits t; q = softmax((t − center) / τ_t)       (no gradient)
//   student on all crops → logits s; loss = mean over pairs (q of global i, s of view v ≠ i) of
//     −Σ q · log_softmax(s / τ_s), averaged over the batch
//   gradients: clipped per parameter to norm 3, the head's last layer frozen in the first epoch
//   AdamW (weight decay on matrices only) with per-iteration lr / wd schedules
//   teacher ← m·teacher + (1 − m)·student, m on a cosine 0.996 → 1
//   center ← 0.9·center + 0.1·mean(t)
//
// Determinism: the image order of epoch e and the augmentations of image i in epoch e come from
// PRNGs seeded with (seed, e[, i]); a state saved at an iteration boundary resumes bit-identically.
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { withHeapGuard } from "../engine/memory.js";
import { seededRng } from "../engine/models/params.js";
import { loadRgb, type RgbImage } from "../data/image.js";
import { resizeImage, shortSideSize } from "../data/resize.js";
import { inputError, MaskdistillError } from "../errors.js";
import { mulberry32 } from "../random.js";
import { epochOrder, mixSeed, truncateLog, CHECKPOINT_FILE, LOG_FILE } from "../engine/loop.js";
export { epochOrder } from "../engine/loop.js";
import { readSafetensorsFile, writeSafetensors } from "./safetensorsIo.js";
import { removeStaleTemporaries } from "../runner/perImage.js";
import { multiCrop, type MultiCrop } from "./augment.js";
import { checkConfig, type PretrainConfig } from "./config.js";
import { dinoHead, headEmbedding, headParams, makeDinoHead, type DinoHead } from "./head.js";
import { cosineSchedule, teacherTemperature } from "./schedule.js";
import {
  assignVitStateDict, fromTorchLayout, LN_EPS, makePretrainVit, patchify, toTorchLayout, vitCls, vitParams, vitStateDict,
  type NamedParam, type PretrainVit,
} from "./vit.js";
import { readStateDict, type StateDict } from "../modeling/checkpoint/index.js";
import { loadResNet50Backbone } from "../segmentation/model.js";
import {
  chwToNhwc, makePretrainResNet, resnetBuffers, resnetEmbedDim, resnetParams, resnetPooled, resnetStateDict,
  type PretrainResNet,
} from "./resnet.js";
export { CHECKPOINT_FILE, LOG_FILE };

/** The network pretraining trains: a ViT (DINO's) or a ResNet-50 (`config.resnet`; MoCo v2's). */
export type PretrainBackbone = PretrainVit | PretrainResNet;

export interface Network { backbone: PretrainBackbone; head: DinoHead }

const isResNet = (b: PretrainBackbone): b is PretrainResNet => (b as PretrainResNet).kind === "resnet50";

/** The ViT of a network (an error for a ResNet run: the caller needs a ViT). */
export function vitOf(net: Network): PretrainVit {
  if (isResNet(net.backbone)) throw new MaskdistillError("pretrain: this run trains a ResNet-50, not a ViT");
  return net.backbone;
}

/** Width of the backbone's output: the ViT's CLS token or the ResNet's pooled layer4. */
export function embedDim(config: PretrainConfig): number {
  return config.resnet ? resnetEmbedDim(config.resnet.width) : config.arch.dim;
}

function backboneParams(b: PretrainBackbone): NamedParam[] {
  return isResNet(b) ? resnetParams(b) : vitParams(b);
}

/**
 * One training image, decoded and resized once. Images beyond the resident budget keep only their file and
 * size: their pixels are decoded again for each batch that uses them (`withBatchImages`), so memory stays
 * bounded however many images there are, and the pixels (hence the run) are the same either way.
 */
export interface TrainImage {
  name: string; file: string; shortSide: number; image: RgbImage | undefined;
  /** With paired views: the second picture of the same object (same file name in the paired folder). */
  pairFile?: string; pair?: RgbImage;
}

/** Decoded pixels kept in memory across steps (default 2 GiB); the rest are decoded per batch. */
export const RESIDENT_IMAGE_BYTES = 2 * 2 ** 30;

export interface TrainState {
  config: PretrainConfig;
  student: Network;
  teacher: Network;
  /** AdamW first and second moments, keyed like `params` (student.backbone.*, student.head.*). */
  expAvg: Map<string, tf.Variable>;
  expAvgSq: Map<string, tf.Variable>;
  /** AdamW step count per parameter (the frozen last layer starts later). */
  adamSteps: Map<string, number>;
  center: tf.Variable;       // [1, outDim]
  /** Iterations done. */
  step: number;
  /** Seconds spent training, over all sittings. */
  trainSeconds: number;
  /** Names of the training images (order-sensitive: checked on resume). */
  imageNames: string[];
  /** The image folders as given when training started (so a resume needs no --images). */
  imageDirs: string[];
  /** With paired views: the folders of the second pictures, one per image folder. */
  pairedDirs: string[];
}

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  wd: number;
  momentum: number;
  teacherTemp: number;
  /** Mean entropy of the teacher's targets (nats); ln(outDim) = uniform collapse, 0 = one-hot. DINO only. */
  teacherEntropy?: number;
  imagesPerSecond: number;
  trainSeconds: number;
}

export const TEACHER_FILE = "teacher_vit.safetensors";
export const TEACHER_CONFIG = "teacher_vit.json";
/** The exported teacher of a ResNet run (torchvision layout, with a sidecar of the same stem). */
export const TEACHER_RESNET_FILE = "teacher_resnet50.safetensors";

/** The file `train` keeps the teacher exported to, in `outDir`. */
export const teacherFileOf = (config: PretrainConfig): string => config.resnet ? TEACHER_RESNET_FILE : TEACHER_FILE;
const META_KEY = "maskdistill_pretrain";

/** Student parameters under DINO checkpoint keys (student.backbone.*, student.head.*). */
export function networkParams(net: Network, prefix: string): NamedParam[] {
  return [
    ...backboneParams(net.backbone).map((p) => ({ ...p, key: `${prefix}.backbone.${p.key}` })),
    ...headParams(net.head).map((p) => ({ ...p, key: `${prefix}.head.${p.key}` })),
  ];
}

/** A ResNet's BN running statistics under `<prefix>.backbone.*` (none for a ViT): checkpointed, not trained. */
export function networkBuffers(net: Network, prefix: string): NamedParam[] {
  return isResNet(net.backbone) ? resnetBuffers(net.backbone).map((p) => ({ ...p, key: `${prefix}.backbone.${p.key}` })) : [];
}

/** DINO's parameter groups: no weight decay on biases and 1-D tensors (norms). */
function regularised(p: NamedParam): boolean {
  return !p.key.endsWith(".bias") && p.torchShape.length > 1;
}

export function itersPerEpoch(config: PretrainConfig, images: number): number {
  const n = Math.floor(images / config.batchSize);   // drop_last=True
  if (n < 1) throw new MaskdistillError(`pretrain: ${images} images are fewer than one batch of ${config.batchSize}`);
  return n;
}

/** A fresh state: student initialised from the seed, teacher a copy of it, center 0. */
export function initState(config: PretrainConfig, imageNames: string[], imageDirs: string[] = [], pairedDirs: string[] = []): TrainState {
  checkConfig(config);
  const rng = seededRng(config.seed);
  const vitCfg = { ...config.arch, posGrid: config.crops.globalSize / config.arch.patch };
  const makeBackbone = (): PretrainBackbone => config.resnet ? makePretrainResNet(rng, config.resnet.width) : makePretrainVit(rng, vitCfg);
  const student: Network = { backbone: makeBackbone(), head: makeDinoHead(rng, embedDim(config), config.head) };
  const teacher: Network = { backbone: makeBackbone(), head: makeDinoHead(rng, embedDim(config), config.head) };
  const sp = networkParams(student, "student"), tp = networkParams(teacher, "teacher");
  sp.forEach((p, i) => tp[i].variable.assign(p.variable));
  for (const p of tp) (p.variable as { trainable: boolean }).trainable = false;
  const sb = networkBuffers(student, "student"), tb = networkBuffers(teacher, "teacher");
  sb.forEach((p, i) => tb[i].variable.assign(p.variable));
  const expAvg = new Map<string, tf.Variable>(), expAvgSq = new Map<string, tf.Variable>(), adamSteps = new Map<string, number>();
  for (const p of sp) {
    expAvg.set(p.key, tf.variable(tf.zerosLike(p.variable), false));
    expAvgSq.set(p.key, tf.variable(tf.zerosLike(p.variable), false));
    adamSteps.set(p.key, 0);
  }
  return {
    config, student, teacher, expAvg, expAvgSq, adamSteps,
    center: tf.variable(tf.zeros([1, config.head.outDim]), false),
    step: 0, trainSeconds: 0, imageNames, imageDirs, pairedDirs,
  };
}

/**
 * Sets the student's and the teacher's backbones to a checkpoint of the same architecture: a DINO-layout ViT,
 * or a torchvision-layout ResNet-50 (its running statistics too) for a ResNet run.
 */
export async function initBackbonesFrom(state: TrainState, file: string): Promise<void> {
  const s = state.student.backbone, t = state.teacher.backbone;
  if (isResNet(s) && isResNet(t)) {
    const { stateDict } = await readStateDict(file, "resnet");
    loadResNet50Backbone(s, stateDict, file);
    loadResNet50Backbone(t, stateDict, file);
    return;
  }
  const { stateDict } = await readStateDict(file, "vit");
  assignVitStateDict(vitOf(state.student), stateDict, file);
  assignVitStateDict(vitOf(state.teacher), stateDict, file);
}

export function disposeState(s: TrainState): void {
  const vars = [...networkParams(s.student, "s"), ...networkParams(s.teacher, "t"), ...networkBuffers(s.student, "s"), ...networkBuffers(s.teacher, "t")].map((p) => p.variable);
  tf.dispose([...vars, ...s.expAvg.values(), ...s.expAvgSq.values(), s.center]);
}

// ---------------------------------------------------------------------------------------------
// data

/** Decodes one training image and brings its short side down to `shortSide` (0: kept). */
async function decodeTrainImage(file: string, shortSide: number): Promise<RgbImage> {
  let image = await loadRgb(file);
  if (shortSide > 0 && Math.min(image.width, image.height) > shortSide) {
    const [w, h] = shortSideSize(image.width, image.height, shortSide);
    image = resizeImage(image, w, h, "bicubic");
  }
  return image;
}

/**
 * The images of the given folders (jpg/jpeg/png, sorted by name), each decoded once to check it (a bad one is
 * left out with `onSkip`); the first `residentBytes` of pixels stay in memory. With `pairedDirs` (one per
 * folder), each image's second picture is the file of the same name there.
 */
export async function loadTrainImages(dirs: string[], shortSide: number,
    opts: { limit?: number; residentBytes?: number; onSkip?: (file: string, reason: string) => void; pairedDirs?: string[] } = {}): Promise<TrainImage[]> {
  const paired = opts.pairedDirs ?? [];
  if (paired.length && paired.length !== dirs.length) {
    throw new MaskdistillError(`pretrain: ${paired.length} paired-view folder(s) for ${dirs.length} image folder(s); give one per --images folder`);
  }
  const files: { name: string; file: string; pairFile?: string }[] = [];
  for (const [k, dir] of dirs.entries()) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw inputError(dir, "not a folder of images");
    if (paired.length && !(fs.existsSync(paired[k]) && fs.statSync(paired[k]).isDirectory())) throw inputError(paired[k], "not a folder of paired views");
    for (const f of fs.readdirSync(dir).sort()) {
      if (!/\.(jpe?g|png)$/i.test(f)) continue;
      const pairFile = paired.length ? path.join(paired[k], f) : undefined;
      if (pairFile && !fs.existsSync(pairFile)) throw inputError(pairFile, `missing: --paired-views needs a picture of the same name for every image of ${dir}`);
      files.push({ name: `${path.basename(dir)}/${f}`, file: path.join(dir, f), pairFile });
    }
  }
  if (files.length === 0) throw new MaskdistillError(`pretrain: no .jpg/.png images in ${dirs.join(", ")}`);
  const take = opts.limit ? files.slice(0, opts.limit) : files;
  const out: TrainImage[] = [];
  const budget = opts.residentBytes ?? RESIDENT_IMAGE_BYTES;
  let resident = 0;
  for (const { name, file, pairFile } of take) {
    let image: RgbImage, pair: RgbImage | undefined;
    try {
      image = await decodeTrainImage(file, shortSide);
      if (pairFile) pair = await decodeTrainImage(pairFile, shortSide);
    } catch (e) {
      // one bad image does not stop training: with `onSkip` it is left out (and the caller records it);
      // the names stored in the checkpoint leave it out too, so a resume skips the same images
      if (!(e instanceof MaskdistillError) || !opts.onSkip) throw e;
      opts.onSkip(file, e.file && e.message.startsWith(`${e.file}: `) ? e.message.slice(e.file.length + 2) : e.message);
      continue;
    }
    const bytes = image.data.byteLength + (pair?.data.byteLength ?? 0);
    const keep = resident + bytes <= budget;
    if (keep) resident += bytes;
    out.push({ name, file, shortSide, image: keep ? image : undefined, pairFile, pair: keep ? pair : undefined });
  }
  if (out.length === 0) throw new MaskdistillError(`pretrain: none of the ${take.length} images in ${dirs.join(", ")} can be read`);
  return out;
}

/** The multi-crop views of image `index` in `epoch`: the same for a given seed, on every run. */
export function viewsOf(config: PretrainConfig, images: TrainImage[], epoch: number, index: number): MultiCrop {
  const { image, pair } = images[index];
  if (!image || (config.pairedViews && !pair)) throw new Error(`pretrain: ${images[index].file} or its paired view is not in memory (use withBatchImages)`);
  return multiCrop(mulberry32(mixSeed(config.seed, epoch, 2, index)), image, config.crops, config.pairedViews ? pair : undefined);
}

/** Runs `f` with the pixels of `indices` in memory: non-resident images are decoded for it and dropped after. */
export async function withBatchImages<T>(images: TrainImage[], indices: readonly number[], f: () => T | Promise<T>): Promise<T> {
  const loaded: number[] = [];
  try {
    for (const i of indices) {
      const im = images[i];
      if (im.image) continue;
      for (const file of im.pairFile ? [im.file, im.pairFile] : [im.file]) {
        try {
          const pixels = await decodeTrainImage(file, im.shortSide);
          if (file === im.file) im.image = pixels;
          else im.pair = pixels;
        } catch (e) {
          throw inputError(file, `could be read when training started but not now (${(e as Error).message}); restore it and rerun with --resume`);
        }
      }
      loaded.push(i);
    }
    return await f();
  } finally {
    for (const i of loaded) images[i].image = images[i].pair = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// one iteration

/** The backbone's output [N, embedDim] on N normalised CHW crops of one size (a ResNet normalises with the batch's statistics). */
function backboneOutput(b: PretrainBackbone, images: Float32Array[], size: number, patch: number): tf.Tensor2D {
  return isResNet(b) ? resnetPooled(b, chwToNhwc(images, size), true) : vitCls(b, patchify(images, size, size, patch));
}

function forward(net: Network, crops: MultiCrop[], which: "globals" | "all", patch: number, output: "logits" | "embedding" = "logits", centre = false): tf.Tensor2D {
  const g = crops[0].globals[0].size;
  // DINO's MultiCropWrapper: crops of one resolution run as one batch, view-major (view 0 of every
  // image, then view 1, …), so the logits chunk into views.
  const out = [backboneOutput(net.backbone, [...crops.map((c) => c.globals[0].data), ...crops.map((c) => c.globals[1].data)], g, patch)];
  const nLocal = crops[0].locals.length;
  if (which === "all" && nLocal > 0) {
    const l = crops[0].locals[0].size;
    const locals: Float32Array[] = [];
    for (let v = 0; v < nLocal; v++) for (const c of crops) locals.push(c.locals[v].data);
    out.push(backboneOutput(net.backbone, locals, l, patch));
  }
  const cls = out.length === 1 ? out[0] : tf.concat(out, 0) as tf.Tensor2D;
  return output === "logits" ? dinoHead(net.head, cls) : headEmbedding(net.head, cls, centre);
}

/**
 * InfoNCE of student embeddings s [V·B, E] (view-major) against teacher global embeddings k [2B, E]
 * (constant): for student view v of image b the positive is the teacher's global view of b that is not
 * v itself (v = 0 → global 1, v = 1 → global 0, a local → both globals, averaged), the negatives every other
 * teacher global of the batch; cross-entropy over the 2B keys at temperature τ, averaged over all
 * (query, positive) pairs and scaled by 2τ (MoCo v3) so the gradient size does not depend on τ.
 */
export function contrastiveLoss(k: tf.Tensor2D, student: tf.Tensor2D, batch: number, temp: number): tf.Scalar {
  const views = student.shape[0] / batch;
  const logp = tf.logSoftmax(tf.div(tf.matMul(student, k, false, true), temp));   // [V·B, 2B]
  // the positive weights: row (v, b) puts 1 on key (1 − v, b) for globals, ½ on (0, b) and (1, b) for locals
  const w = new Float32Array(views * batch * 2 * batch);
  for (let v = 0; v < views; v++) {
    for (let b = 0; b < batch; b++) {
      const row = (v * batch + b) * 2 * batch;
      if (v < 2) w[row + (1 - v) * batch + b] = 1;
      else { w[row + b] = 0.5; w[row + batch + b] = 0.5; }
    }
  }
  const nll = tf.neg(tf.sum(tf.mul(logp, tf.tensor2d(w, [views * batch, 2 * batch]))));
  return tf.mul(tf.div(nll, views * batch), 2 * temp) as tf.Scalar;
}

/**
 * DINO loss from teacher probabilities q [2B, K] (constant) and student logits s [V·B, K]:
 * the mean over (global i, view v ≠ i) of the batch-mean cross-entropy −Σ q_i log softmax(s_v / τ_s).
 */
export function dinoLoss(q: tf.Tensor2D, studentLogits: tf.Tensor2D, batch: number, studentTemp: number): tf.Scalar {
  const k = q.shape[1];
  const views = studentLogits.shape[0] / batch;
  const logp = tf.logSoftmax(tf.div(studentLogits, studentTemp));
  // [2, V] matrix of Σ_b Σ_k q_i · log p_v, one matmul over the flattened (batch, prototype) axis
  const cross = tf.matMul(tf.reshape(q, [2, batch * k]), tf.reshape(logp, [views, batch * k]), false, true);
  const diag = tf.sum(tf.mul(cross, tf.oneHot([0, 1], views)));
  const terms = 2 * views - 2;
  return tf.div(tf.neg(tf.sub(tf.sum(cross), diag)), batch * terms) as tf.Scalar;
}

/** `teacherEntropy`: DINO's only (absent for the contrastive objective, which has no teacher distribution). */
export interface StepResult { loss: number; lr: number; wd: number; momentum: number; teacherTemp: number; teacherEntropy?: number }

/** Runs iteration `state.step` on `crops` (one MultiCrop per image of the batch) and advances the state. */
export async function trainStep(state: TrainState, crops: MultiCrop[], nImages: number): Promise<StepResult> {
  const c = state.config;
  const ipe = itersPerEpoch(c, nImages);
  const total = c.epochs * ipe;
  if (state.step >= total) throw new MaskdistillError(`pretrain: iteration ${state.step} is past the schedule's ${total}`);
  const it = state.step, epoch = Math.floor(it / ipe);
  const lr = cosineSchedule(c.lr, c.minLr, c.epochs, ipe, c.warmupEpochs)[it];
  const wd = cosineSchedule(c.weightDecay, c.weightDecayEnd, c.epochs, ipe)[it];
  const momentum = cosineSchedule(c.momentumTeacher, 1, c.epochs, ipe)[it];
  const teacherTemp = teacherTemperature(epoch, c.warmupTeacherTemp, c.teacherTemp, c.warmupTeacherTempEpochs);
  const batch = crops.length;
  const patch = c.arch.patch;

  // teacher: DINO's targets, the batch centre and the targets' entropy; for the contrastive objective
  // only its global embeddings (the keys) — no centre, no entropy
  const contrastive = c.objective === "contrastive";
  let q: tf.Tensor2D, batchCenter: tf.Tensor | undefined, teacherEntropy: number | undefined;
  if (contrastive) {
    q = tf.tidy(() => forward(state.teacher, crops, "globals", patch, "embedding", c.centreEmbeddings));
  } else {
    const t = tf.tidy(() => {
      const logits = forward(state.teacher, crops, "globals", patch);
      const scaled = tf.div(tf.sub(logits, state.center), teacherTemp);
      const probs = tf.softmax(scaled) as tf.Tensor2D;
      return { probs, center: tf.mean(logits, 0, true), entropy: tf.neg(tf.mean(tf.sum(tf.mul(probs, tf.logSoftmax(scaled)), 1))) };
    });
    q = t.probs;
    batchCenter = t.center;
    teacherEntropy = (await t.entropy.data())[0];
    t.entropy.dispose();
  }

  const params = networkParams(state.student, "student");
  const frozen = epoch < c.freezeLastLayer;
  // the prototype layer is not on the contrastive objective's path
  const trained = params.filter((p) => !((frozen || contrastive) && p.key.endsWith("last_layer.weight_v")));
  const { value, grads } = await withHeapGuard(`pretrain iteration ${it}`, async () => tf.variableGrads(
    () => contrastive
      ? contrastiveLoss(q, forward(state.student, crops, "all", patch, "embedding", c.centreEmbeddings), batch, c.contrastTemp ?? 0.2)
      : dinoLoss(q, forward(state.student, crops, "all", patch), batch, c.studentTemp),
    trained.map((p) => p.variable)));
  const loss = (await value.data())[0];
  if (!Number.isFinite(loss)) throw new MaskdistillError(`pretrain: loss is ${loss} at iteration ${it}; stopping (lower --lr?)`);

  const beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  for (const p of trained) {
    const g0 = grads[p.variable.name];
    const n = (state.adamSteps.get(p.key) ?? 0) + 1;
    state.adamSteps.set(p.key, n);
    tf.tidy(() => {
      let g: tf.Tensor = g0;
      if (c.clipGrad > 0) {
        // utils.clip_gradients: scale a parameter's gradient when its norm exceeds the clip
        const norm = tf.norm(g);
        g = tf.mul(g, tf.minimum(tf.div(c.clipGrad, tf.add(norm, 1e-6)), 1));
      }
      const m = state.expAvg.get(p.key)!, v = state.expAvgSq.get(p.key)!;
      m.assign(tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1)));
      v.assign(tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2)));
      const decayed = regularised(p) && wd > 0 ? tf.mul(p.variable, 1 - lr * wd) : p.variable;
      const denom = tf.add(tf.div(tf.sqrt(v), Math.sqrt(1 - beta2 ** n)), eps);
      p.variable.assign(tf.sub(decayed, tf.mul(tf.div(m, denom), lr / (1 - beta1 ** n))));
    });
  }
  tf.dispose([value, q, ...Object.values(grads)]);

  // teacher EMA over all parameters, then the centre
  const tp = networkParams(state.teacher, "teacher");
  tf.tidy(() => {
    params.forEach((p, i) => tp[i].variable.assign(tf.add(tf.mul(tp[i].variable, momentum), tf.mul(p.variable, 1 - momentum))));
    if (batchCenter) state.center.assign(tf.add(tf.mul(state.center, c.centerMomentum), tf.mul(batchCenter, 1 - c.centerMomentum)));
  });
  batchCenter?.dispose();
  state.step++;
  return { loss, lr, wd, momentum, teacherTemp, teacherEntropy };
}

// ---------------------------------------------------------------------------------------------
// checkpoints

interface CheckpointMeta {
  format: 1;
  config: PretrainConfig;
  step: number;
  trainSeconds: number;
  adamSteps: Record<string, number>;
  imageNames: string[];
  imageDirs: string[];
  pairedDirs?: string[];
}

/** Writes the full training state (atomic): DINO-style keys in PyTorch layout + a JSON metadata entry. */
export async function saveCheckpoint(state: TrainState, file: string): Promise<void> {
  const sd: StateDict = new Map();
  const put = async (key: string, p: NamedParam, v: tf.Variable) => {
    sd.set(key, { dtype: "float32", shape: p.torchShape, data: Float32Array.from(toTorchLayout((await v.data()) as Float32Array, p)) });
  };
  const sp = networkParams(state.student, "student");
  for (const p of sp) await put(p.key, p, p.variable);
  for (const p of networkParams(state.teacher, "teacher")) await put(p.key, p, p.variable);
  for (const p of sp) await put(`optimizer.exp_avg.${p.key}`, p, state.expAvg.get(p.key)!);
  for (const p of sp) await put(`optimizer.exp_avg_sq.${p.key}`, p, state.expAvgSq.get(p.key)!);
  for (const p of [...networkBuffers(state.student, "student"), ...networkBuffers(state.teacher, "teacher")]) await put(p.key, p, p.variable);
  sd.set("dino_loss.center", { dtype: "float32", shape: [1, state.config.head.outDim], data: Float32Array.from((await state.center.data()) as Float32Array) });
  const meta: CheckpointMeta = {
    format: 1, config: state.config, step: state.step, trainSeconds: state.trainSeconds,
    adamSteps: Object.fromEntries(state.adamSteps), imageNames: state.imageNames, imageDirs: state.imageDirs,
    ...(state.pairedDirs.length ? { pairedDirs: state.pairedDirs } : {}),
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeSafetensors(file, sd, { [META_KEY]: JSON.stringify(meta) });
}

/** Reads a state written by saveCheckpoint. */
export async function loadCheckpoint(file: string): Promise<TrainState> {
  const { tensors, metadata } = await readSafetensorsFile(file);
  const raw = metadata[META_KEY];
  if (!raw) throw inputError(file, `not a maskdistill pretraining checkpoint (no "${META_KEY}" metadata)`);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(raw) as CheckpointMeta;
  } catch (e) {
    throw inputError(file, "pretraining metadata is not valid JSON", e);
  }
  if (meta.format !== 1) throw inputError(file, `unknown pretraining checkpoint format ${String(meta.format)}`);
  const state = initState(meta.config, meta.imageNames, meta.imageDirs ?? [], meta.pairedDirs ?? []);
  const fill = (key: string, p: NamedParam, v: tf.Variable) => {
    const t = tensors.get(key);
    if (!t) throw inputError(file, `missing tensor "${key}"`);
    if (t.shape.join(",") !== p.torchShape.join(",")) throw inputError(file, `"${key}" has shape [${t.shape}], expected [${p.torchShape}]`);
    v.assign(tf.tensor(fromTorchLayout(t.data, p), v.shape));
  };
  const sp = networkParams(state.student, "student");
  for (const p of sp) fill(p.key, p, p.variable);
  for (const p of networkParams(state.teacher, "teacher")) fill(p.key, p, p.variable);
  for (const p of sp) fill(`optimizer.exp_avg.${p.key}`, p, state.expAvg.get(p.key)!);
  for (const p of sp) fill(`optimizer.exp_avg_sq.${p.key}`, p, state.expAvgSq.get(p.key)!);
  for (const p of [...networkBuffers(state.student, "student"), ...networkBuffers(state.teacher, "teacher")]) fill(p.key, p, p.variable);
  const center = tensors.get("dino_loss.center");
  if (!center || center.data.length !== meta.config.head.outDim) throw inputError(file, "missing or mis-shaped dino_loss.center");
  state.center.assign(tf.tensor(center.data, [1, meta.config.head.outDim]));
  state.step = meta.step;
  state.trainSeconds = meta.trainSeconds;
  for (const [k, n] of Object.entries(meta.adamSteps)) state.adamSteps.set(k, n);
  return state;
}

/** The config sidecar of an exported backbone (read by src/distill/backboneChoice.ts and the loader). */
export interface BackboneSidecar {
  arch: string;
  weights: string;
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlp_ratio: number;
  ln_eps: number;
  pos_grid: number;
  /** A convolutional stem's channels (the state dict's patch_embed.stem.<i>); absent for DINO's layout. */
  conv_stem?: number[];
  label: string;
  training: {
    method: string; epochs_done: number; epochs_planned: number; iterations: number; images: number;
    train_seconds: number; seed: number;
    /** The full recipe (its seed and arch reproduce the random initialisation). */
    config: PretrainConfig;
  };
}

/** The sidecar of a ResNet run's exported teacher: what trained it (the width is read from the weights). */
export interface ResNetSidecar {
  arch: string;
  family: "resnet";
  weights: string;
  /** Stem channels (64 = ResNet-50); the stages scale with it. */
  width: number;
  label: string;
  training: BackboneSidecar["training"];
}

/**
 * Exports the teacher backbone (DINO and MoCo evaluate the teacher) as safetensors — a ViT in the official
 * DINO layout, a ResNet-50 in torchvision's — with its config sidecar `<stem>.json` next to it.
 */
export async function exportTeacher(state: TrainState, file: string, opts: { dtype?: "float32" | "float16"; label?: string } = {}): Promise<BackboneSidecar | ResNetSidecar> {
  const b = state.teacher.backbone;
  const sd = isResNet(b) ? await resnetStateDict(b, opts.dtype ?? "float32") : await vitStateDict(b, opts.dtype ?? "float32");
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const method = state.config.objective === "contrastive"
    ? `contrastive (InfoNCE against the momentum teacher${state.config.pairedViews ? ", paired views" : ""}; maskdistill pretrain)`
    : `DINO${state.config.pairedViews ? " with paired views" : ""} (maskdistill pretrain)`;
  writeSafetensors(file, sd, { format: "pt", source: `maskdistill pretrain (teacher backbone; ${method})` });
  const { arch, crops, epochs, seed } = state.config;
  const ipe = Math.max(1, Math.floor(state.imageNames.length / state.config.batchSize));
  const epochsDone = Math.floor(state.step / ipe);
  const training = { method, epochs_done: epochsDone, epochs_planned: epochs, iterations: state.step, images: state.imageNames.length, train_seconds: Math.round(state.trainSeconds), seed, config: state.config };
  const trainedOn = `${state.config.objective === "contrastive" ? "contrastive-" : "DINO-"}pretrained ${epochsDone} epochs on ${state.imageNames.length} unlabelled images`;
  const sidecar: BackboneSidecar | ResNetSidecar = isResNet(b)
    ? { arch: `resnet50_w${b.width}`, family: "resnet", weights: path.basename(file), width: b.width,
      label: opts.label ?? `demo ResNet-50 (stem width ${b.width}), ${trainedOn}`, training }
    : {
      arch: `vit_d${arch.dim}_l${arch.depth}_p${arch.patch}`,
      weights: path.basename(file),
      patch: arch.patch, dim: arch.dim, depth: arch.depth, heads: arch.heads, mlp_ratio: arch.mlpRatio,
      ln_eps: LN_EPS, pos_grid: crops.globalSize / arch.patch, ...(arch.convStem ? { conv_stem: arch.convStem } : {}),
      label: opts.label ?? `demo ViT (dim ${arch.dim}, depth ${arch.depth}, ${arch.heads} heads, patch ${arch.patch}), ${trainedOn}`,
      training,
    };
  const sidecarFile = file.replace(/\.safetensors$/, "") + ".json";
  fs.writeFileSync(sidecarFile, JSON.stringify(sidecar, null, 2) + "\n");
  return sidecar;
}

// ---------------------------------------------------------------------------------------------
// the loop

export interface TrainOptions {
  outDir: string;
  images: TrainImage[];
  /** The folders the images came from (stored in the checkpoint). */
  imageDirs?: string[];
  /** The folders of their paired views (config.pairedViews; stored in the checkpoint). */
  pairedDirs?: string[];
  /** Start fresh with this config; ignored when resuming from `outDir`. */
  config: PretrainConfig;
  resume: boolean;
  /** Stop after this many iterations in this sitting (for tests / short runs). */
  maxSteps?: number;
  /** Seconds between checkpoints (default 180). Always also at epoch ends and at the end. */
  checkpointSeconds?: number;
  /** Set to stop after the current iteration (the state is saved first). */
  signal?: AbortSignal;
  onStep?: (log: StepLog, state: TrainState) => void;
}

/** Trains (or resumes) until the schedule ends, `maxSteps` or the signal; returns the state (caller disposes). */
export async function train(opts: TrainOptions): Promise<TrainState> {
  const ckpt = path.join(opts.outDir, CHECKPOINT_FILE);
  const logFile = path.join(opts.outDir, LOG_FILE);
  const names = opts.images.map((im) => im.name);
  // a kill during a checkpoint write leaves `<file>.tmp-<pid>` (writeSafetensors): remove those of dead runs
  removeStaleTemporaries(opts.outDir, /^[^/]+\.safetensors\.tmp-(?<pid>\d+)$/);
  let state: TrainState;
  if (opts.resume && fs.existsSync(ckpt)) {
    state = await loadCheckpoint(ckpt);
    if (state.imageNames.join("\n") !== names.join("\n")) {
      throw inputError(ckpt, `was trained on ${state.imageNames.length} other images (first: ${state.imageNames[0]}); resume with the same --images`);
    }
    truncateLog(logFile, state.step);
  } else {
    if (fs.existsSync(ckpt) && !opts.resume) throw inputError(ckpt, "a checkpoint is already there: pass --resume to continue it, or choose another --out");
    state = initState(opts.config, names, opts.imageDirs ?? [], opts.pairedDirs ?? []);
    if (opts.config.initFrom) await initBackbonesFrom(state, opts.config.initFrom.file);
    fs.mkdirSync(opts.outDir, { recursive: true });
    fs.writeFileSync(logFile, "");
  }
  const c = state.config;
  const ipe = itersPerEpoch(c, names.length);
  const total = c.epochs * ipe;
  const every = (opts.checkpointSeconds ?? 180) * 1000;
  let lastSave = Date.now(), sitting = 0;
  const save = async () => {
    await saveCheckpoint(state, ckpt);
    await exportTeacher(state, path.join(opts.outDir, teacherFileOf(state.config)));
    lastSave = Date.now();
  };
  while (state.step < total && !(opts.maxSteps !== undefined && sitting >= opts.maxSteps) && !opts.signal?.aborted) {
    const it = state.step, epoch = Math.floor(it / ipe), b = it % ipe;
    const t0 = Date.now();
    const order = epochOrder(c.seed, epoch, names.length).slice(b * c.batchSize, (b + 1) * c.batchSize);
    const crops = await withBatchImages(opts.images, order, () => order.map((i) => viewsOf(c, opts.images, epoch, i)));
    const r = await trainStep(state, crops, names.length);
    const seconds = (Date.now() - t0) / 1000;
    state.trainSeconds += seconds;
    sitting++;
    const log: StepLog = { step: state.step, epoch: state.step / ipe, loss: r.loss, lr: r.lr, wd: r.wd, momentum: r.momentum, teacherTemp: r.teacherTemp, teacherEntropy: r.teacherEntropy, imagesPerSecond: c.batchSize / seconds, trainSeconds: state.trainSeconds };
    fs.appendFileSync(logFile, JSON.stringify(log) + "\n");
    opts.onStep?.(log, state);
    const epochEnd = state.step % ipe === 0;
    if (Date.now() - lastSave >= every || epochEnd || state.step === total) await save();
    // On wasm every await above resolves as a microtask: yield to the event loop so that signal
    // handlers (Ctrl-C, SIGTERM → opts.signal) get to run.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if ((await checkpointStep(ckpt)) !== state.step) await save();
  return state;
}

/** What a checkpoint holds, without its tensors (undefined when there is none). */
export async function checkpointInfo(file: string): Promise<{ step: number; config: PretrainConfig; imageDirs: string[]; pairedDirs: string[]; images: number } | undefined> {
  if (!fs.existsSync(file)) return undefined;
  const { metadata } = await readSafetensorsFile(file, { headerOnly: true });
  const meta = JSON.parse(metadata[META_KEY] ?? "null") as CheckpointMeta | null;
  if (!meta) throw inputError(file, `not a maskdistill pretraining checkpoint (no "${META_KEY}" metadata)`);
  return { step: meta.step, config: meta.config, imageDirs: meta.imageDirs ?? [], pairedDirs: meta.pairedDirs ?? [], images: meta.imageNames.length };
}

/** The iteration a checkpoint file was saved at (-1 when none). */
export async function checkpointStep(file: string): Promise<number> {
  return (await checkpointInfo(file))?.step ?? -1;
}

/** Reads a backbone sidecar written by exportTeacher (`<stem>.json` next to `<stem>.safetensors`). */
export function readBackboneSidecar(weightsFile: string): BackboneSidecar {
  const file = weightsFile.replace(/\.(safetensors|pth|pt)$/, "") + ".json";
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw inputError(file, "cannot read the backbone config sidecar", e);
  }
  const s = raw as BackboneSidecar;
  for (const k of ["patch", "dim", "depth", "heads"] as const) {
    if (!(Number.isInteger(s?.[k]) && s[k] > 0)) throw inputError(file, `sidecar field "${k}" must be a positive integer, got ${JSON.stringify(s?.[k])}`);
  }
  return s;
}

/** Writes the teacher at initialisation (= the student's seeded init) for `config`: the untrained baseline. */
export async function exportInitialisation(config: PretrainConfig, file: string): Promise<BackboneSidecar | ResNetSidecar> {
  const state = initState(config, ["(none)"]);
  try {
    return await exportTeacher(state, file, { label: `random initialisation (seed ${config.seed})` });
  } finally {
    disposeState(state);
  }
}

/**
 * A backbone exported by exportTeacher (or any DINO-layout ViT with such a sidecar) as a tfjs model,
 * e.g. to look at its attention or to fine-tune it.
 */
export async function loadPretrainVit(weightsFile: string): Promise<PretrainVit> {
  const sc = readBackboneSidecar(weightsFile);
  const { stateDict } = await readStateDict(weightsFile, "vit");
  const m = makePretrainVit(seededRng(0), { patch: sc.patch, dim: sc.dim, depth: sc.depth, heads: sc.heads, mlpRatio: sc.mlp_ratio ?? 4, posGrid: sc.pos_grid,
    ...(sc.conv_stem ? { convStem: sc.conv_stem } : {}) });
  assignVitStateDict(m, stateDict, weightsFile);
  return m;
}
