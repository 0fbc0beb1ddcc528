// Mask R-CNN training on a COCO instances file (stage iii: the stage-ii clustered pseudo-masks, or any
// COCO file): multi-scale short side + horizontal flip, SGD with momentum and weight decay, linear
// warm-up and a step schedule, optional global gradient-norm clipping and DropLoss, frozen stages
// (`freezeAt`), class-aware or class-agnostic. The five losses are those of losses.ts (both presets).
//
// Determinism: the image order of epoch e, the scale and flip of each image of iteration i and the
// sampler's choices of iteration i come from PRNGs seeded by (seed, e / i); the checkpoint holds the
// weights and the momentum buffers, so a run stopped at an iteration boundary resumes bit for bit.
// Checkpoint: OUT/checkpoint.safetensors (weights under torchvision's maskrcnn_resnet50_fpn keys +
// `optimizer.momentum_buffer.<key>` in our layout + JSON metadata) and OUT/model.safetensors (weights
// and pixel_mean/pixel_std only: what `detect --weights` loads). OUT/train_log.jsonl: one line per step.
import * as fs from "node:fs";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { loadRgb, type RgbImage } from "../data/image.js";
import { readCocoDataset, type CocoDataset, type CocoResult } from "../data/coco.js";
import { cocoEval, defaultParams, loadResults } from "../evaluation/cocoeval.js";
import { assertFitsInHeap, withHeapGuard, type StepMemoryModel } from "../engine/memory.js";
import { sgdMomentumUpdate } from "../engine/train.js";
import { startEngineWorkers, type WorkerEngine, type WorkerPool } from "../engine/workers.js";
import { maskRcnnFromStateDict, maskRcnnParams, maskRcnnStateDict, maskRcnnVariables, setTrainable, type MaskRcnnNet, type MaskRcnnParam } from "../engine/models/maskrcnn.js";
import { walkConvBn, walkStage, type Walk } from "../engine/models/resnet.js";
import { mixSeed, epochOrder, truncateLog, CHECKPOINT_FILE, MODEL_FILE, LOG_FILE } from "../engine/loop.js";
import { seededRng, normalArray, type Rng } from "../engine/models/params.js";
import { inputError, MaskdistillError } from "../errors.js";
import { readStateDict, toFloat32, writeSafetensors, type StateDict, type TensorData } from "../modeling/checkpoint/index.js";
import { requireWeights } from "../modeling/weights.js";
import { maskFromRle, rleArea, rleFromCoco, rleToBbox, rleToCoco } from "../mask/rle.js";
import { mulberry32 } from "../random.js";
import { readSafetensorsFile } from "../pretrain/safetensorsIo.js";
import { removeStaleTemporaries } from "../runner/perImage.js";
import { LOSS_NAMES, maskRcnnLosses, presetTraining, resizeTargets, type InstanceTargets, type LossName } from "./losses.js";
import { detectImage, type MaskRcnnInference, type MaskRcnnPreset } from "./maskrcnn.js";
import { detectionAnnotations } from "./detect.js";
import { seededPicker } from "./sampling.js";
import { DETECTRON2_TRANSFORM, IMAGENET_MEAN, IMAGENET_STD, detectron2ResizedSize, detectron2Transform, rcnnTransform, resizedSize } from "./transform.js";
export { CHECKPOINT_FILE, MODEL_FILE, LOG_FILE };

/** Narrower networks (tests, the overfit check): ResNet stem width (64 = ResNet-50), FPN, box and mask head widths. */
export interface MaskRcnnWidths { stem: number; fpn: number; boxHead: number; maskHead: number }
export const R50_FPN_WIDTHS: MaskRcnnWidths = { stem: 64, fpn: 256, boxHead: 1024, maskHead: 256 };

export interface MaskRcnnTrainConfig {
  preset: MaskRcnnPreset;
  /** Backbone initialisation: a known name (dino_resnet50, moco_v2_r50), a torchvision ResNet-50 file, or "none". */
  init: string;
  widths: MaskRcnnWidths;
  /** Stages frozen below this one (detectron2 FREEZE_AT: 2 = stem + layer1). */
  freezeAt: number;
  /**
   * The body's normalisation (detectron2 RESNETS.NORM): FrozenBN (default; a pretrained body's statistics)
   * or BN — batch statistics in training, running ones at inference — for a body trained from scratch.
   */
  norm?: "FrozenBN" | "BN";
  /**
   * The box side the ROI poolers pool from FPN level p4 (default 224, both libraries'): boxes half as large come
   * from p3, a quarter from p2. Saved in the model file (`canonical_box_size`), so `detect` pools as training did.
   */
  canonicalBoxSize?: number;
  /** One class for every object (the category ids are ignored). */
  agnostic: boolean;
  /** Short sides to choose from per image (multi-scale training), and the long-side limit. */
  minSizes: number[];
  maxSize: number;
  flip: boolean;
  batchSize: number;
  iterations: number;
  lr: number;
  momentum: number;
  weightDecay: number;
  /** Linear warm-up from lr·warmupFactor over warmupIters (detectron2 WarmupMultiStepLR). */
  warmupIters: number;
  warmupFactor: number;
  /** lr × gamma at each of these iterations. */
  steps: number[];
  gamma: number;
  /** Global L2 norm of all gradients clipped to this (0 = off). */
  clipGradNorm: number;
  /** DropLoss IoU (CutLER: 0.01; 0 = off). */
  dropLossIou: number;
  /** Proposals sampled per image for the ROI heads (25 % foreground); absent = the preset's 512. */
  roiBatchPerImage?: number;
  /**
   * Data-parallel shares of each batch (absent = 1): share k computes the losses of its batchSize/workers images
   * with its own normalisation and sampler, and the step averages the shares' gradients — detectron2's DDP over
   * `workers` GPUs (the reference trained on 4). The shares run in helper threads (engine/workers.ts) unless
   * the loop is told otherwise; the numbers are the same either way.
   */
  workers?: number;
  seed: number;
}

/**
 * LOST's recipe (METHOD.md §4.1), the documented GPU default: DINO ResNet-50, conv1 + res2 frozen,
 * batch 16, lr 0.02, warm-up 100, ×0.1 at 18k and 22k, 24k iterations, short side 480–800 (max 1333).
 */
export function lostRecipe(): MaskRcnnTrainConfig {
  return {
    preset: "detectron2", init: "dino_resnet50", widths: R50_FPN_WIDTHS, freezeAt: 2, agnostic: false,
    minSizes: [480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800], maxSize: 1333, flip: true,
    batchSize: 16, iterations: 24000, lr: 0.02, momentum: 0.9, weightDecay: 1e-4, warmupIters: 100, warmupFactor: 0.001,
    steps: [18000, 22000], gamma: 0.1, clipGradNorm: 0, dropLossIou: 0, seed: 0,
  };
}

/**
 * A CPU recipe for the bundled demo data (≤ 15 min on 2 cores): LOST's, changed to short side 256–320
 * (max 533), batch 2, 90 iterations, the whole ResNet body frozen (freezeAt 5: the FPN and heads train),
 * 128 ROI samples per image instead of 512 (≤ 32 foreground: the mask head's cost and heap are per
 * foreground ROI), lr 0.01 with warm-up 15 and ×0.1 at 70, gradient clipping 1.0 (CutLER) against early
 * blow-ups. Measured on the demo train pseudo-masks: 11.5 s of CPU per iteration (2 threads, user + sys),
 * so 90 iterations are ≈ 17 CPU-minutes (120 would be 23).
 */
export function cpuRecipe(): MaskRcnnTrainConfig {
  return {
    ...lostRecipe(), minSizes: [256, 288, 320], maxSize: 533, batchSize: 2, iterations: 90, freezeAt: 5,
    roiBatchPerImage: 128, lr: 0.01, warmupIters: 15, steps: [70], clipGradNorm: 1,
  };
}

/**
 * The shapes world's recipe (issue 19: 96×96 images, one object of 8 classes), from random init: the
 * ResNet-50 shape at 1/4 width (stem 16, FPN 64, box head 256, mask head 64), nothing frozen, short side
 * 128–160 (max 267: the images upscaled 1.33–1.67×, so the objects, 30–68 px at 96 px, span the FPN's smallest
 * anchors of 32 and 64 px), flip, batch 4, 128 ROI samples per image, lr 0.04 with warm-up 50 and ×0.1 at 900,
 * 1,080 iterations (1.2 epochs of the 3,500 train images), gradient clipping 5; the body's residual branches start
 * at zero (freshStateDict). The batch is 2 data-parallel shares of 2 images (`workers`), one per core.
 * Session 20 made the shares: an iteration takes 0.43 s instead of 0.65 in the default run, so the run went from
 * 720 to 1,080 iterations in about the same time. The length is what names the two late classes (square, cross):
 * on the default run's pseudo-masks 1,080 iterations named 40 of 59 train squares and 49 of 64 crosses right
 * (stage v 69.0, 78.3 with the CRF); 960 (×0.1 at 800) 8 and 40 (50.4, 57.2); 720 in one batch 13 and 3.
 * Session 13 lowered the short side from 160–192 (max 320): an iteration costs 26 % less (the body, FPN, RPN and
 * its NMS scale with the pixels), and on session 12's 720-iteration pseudo-masks val mask AP50 was 11.9 / 44.1
 * (class-aware / agnostic, 300 test proposals) against 12.5 / 44.2 at 160–192; 64 ROI samples per image as well
 * was 11.1 / 43.6 (the classifier learns from the foreground samples).
 * Before: on the materials world's stage-ii pseudo-masks val mask AP50 class-agnostic 43.3, class-aware 17.4
 * with session 11's backbones (train pseudo-classes 47.6 % right); 33.0 (box 39.0) / 3.5 with session 10's
 * (24 % right); 360 iterations (the recipe until session 10) gave 8.3 / 1.3 on session 10's, so the length
 * matters most. The session-7 runs on the full world's GT masks (360 iterations, He-initialised residual
 * branches): class-aware 7.4, class-agnostic 19.0 (box 37.8).
 */
export function shapesRecipe(): MaskRcnnTrainConfig {
  return {
    ...lostRecipe(), init: "none", widths: { stem: 16, fpn: 64, boxHead: 256, maskHead: 64 }, freezeAt: 0,
    minSizes: [128, 144, 160], maxSize: 267, batchSize: 4, iterations: 1080, roiBatchPerImage: 128,
    lr: 0.04, warmupIters: 50, steps: [900], clipGradNorm: 5, workers: 2,
  };
}

/** `train-maskrcnn --recipe NAME`. */
export const MASK_RCNN_RECIPES: Readonly<Record<string, () => MaskRcnnTrainConfig>> = { lost: lostRecipe, cpu: cpuRecipe, shapes: shapesRecipe };

/** The recipe called `name` (lost, cpu, shapes). */
export function maskRcnnRecipe(name: string): MaskRcnnTrainConfig {
  if (!Object.hasOwn(MASK_RCNN_RECIPES, name)) throw new MaskdistillError(`--recipe expects ${Object.keys(MASK_RCNN_RECIPES).join(", ")}, got '${name}'`);
  return MASK_RCNN_RECIPES[name]();
}

/** Learning rate of iteration `it` (detectron2 WarmupMultiStepLR, linear warm-up). */
export function learningRate(c: MaskRcnnTrainConfig, it: number): number {
  let lr = c.lr;
  for (const s of c.steps) if (it >= s) lr *= c.gamma;
  if (it < c.warmupIters) {
    const alpha = it / c.warmupIters;
    lr *= c.warmupFactor * (1 - alpha) + alpha;
  }
  return lr;
}

// ---------------------------------------------------------------------------------------------
// the network

function uniformArray(rng: Rng, n: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng() - 1) * bound;
  return out;
}

const tensorOf = (shape: number[], data: Float32Array): TensorData => ({ dtype: "float32", shape, data });

/**
 * A torchvision-layout state dict of a fresh network: the body from `backbone` (a torchvision ResNet
 * state dict) or He-initialised with each bottleneck's last conv at zero, FrozenBN at identity; FPN, RPN and heads initialised as torchvision
 * does (FPN kaiming-uniform a=1, RPN N(0, 0.01), linear layers PyTorch's default, mask head
 * kaiming-normal fan-out; biases 0 except the linear layers').
 */
function freshStateDict(rng: Rng, numClasses: number, w: MaskRcnnWidths, backbone?: StateDict): StateDict {
  const sd: StateDict = new Map();
  const conv = (key: string, o: number, i: number, k: number, init: "he-out" | "fpn" | "rpn" | "zero", bias: boolean) => {
    const n = o * i * k * k;
    const data = init === "zero" ? new Float32Array(n) : init === "he-out" ? normalArray(rng, n, Math.sqrt(2 / (o * k * k))) : init === "rpn" ? normalArray(rng, n, 0.01) : uniformArray(rng, n, Math.sqrt(3 / (i * k * k)));
    sd.set(`${key}.weight`, tensorOf([o, i, k, k], data));
    if (bias) sd.set(`${key}.bias`, tensorOf([o], new Float32Array(o)));
  };
  const linear = (key: string, o: number, i: number) => {
    const b = 1 / Math.sqrt(i);
    sd.set(`${key}.weight`, tensorOf([o, i], uniformArray(rng, o * i, b)));
    sd.set(`${key}.bias`, tensorOf([o], uniformArray(rng, o, b)));
  };
  const bn = (key: string, c: number) => {
    sd.set(`${key}.weight`, tensorOf([c], new Float32Array(c).fill(1)));
    sd.set(`${key}.bias`, tensorOf([c], new Float32Array(c)));
    sd.set(`${key}.running_mean`, tensorOf([c], new Float32Array(c)));
    sd.set(`${key}.running_var`, tensorOf([c], new Float32Array(c).fill(1)));
  };
  const b = "backbone.body", s = w.stem;
  if (backbone) {
    for (const [k, t] of backbone) if (!k.startsWith("fc.") && !k.endsWith("num_batches_tracked")) sd.set(`${b}.${k}`, t);
  } else {
    conv(`${b}.conv1`, s, 3, 7, "he-out", false);
    bn(`${b}.bn1`, s);
    let cin = s;
    [3, 4, 6, 3].forEach((blocks, li) => {
      const width = s * 2 ** li, out = 4 * width;
      for (let i = 0; i < blocks; i++) {
        const p = `${b}.layer${li + 1}.${i}`;
        conv(`${p}.conv1`, width, cin, 1, "he-out", false); bn(`${p}.bn1`, width);
        conv(`${p}.conv2`, width, width, 3, "he-out", false); bn(`${p}.bn2`, width);
        // zero: each residual branch starts as the identity (Fixup / "zero-γ", Goyal et al. 2017). He-initialised,
        // the 16 branches each add their input's variance again: with FrozenBN at identity the body's output
        // was ~300× its input and the first mask loss ~29 instead of ln 2.
        conv(`${p}.conv3`, out, width, 1, "zero", false); bn(`${p}.bn3`, out);
        if (i === 0) { conv(`${p}.downsample.0`, out, cin, 1, "he-out", false); bn(`${p}.downsample.1`, out); }
        cin = out;
      }
    });
  }
  const stageOut = [1, 2, 3, 4].map((li) => {
    const t = sd.get(`${b}.layer${li}.0.conv3.weight`);
    if (!t) throw new MaskdistillError(`backbone has no layer${li}.0.conv3 (not a Bottleneck ResNet)`);
    return t.shape[0];
  });
  const F = w.fpn;
  stageOut.forEach((c, i) => {
    conv(`backbone.fpn.inner_blocks.${i}.0`, F, c, 1, "fpn", true);
    conv(`backbone.fpn.layer_blocks.${i}.0`, F, F, 3, "fpn", true);
  });
  conv("rpn.head.conv.0.0", F, F, 3, "rpn", true);
  conv("rpn.head.cls_logits", 3, F, 1, "rpn", true);
  conv("rpn.head.bbox_pred", 12, F, 1, "rpn", true);
  linear("roi_heads.box_head.fc6", w.boxHead, F * 49);
  linear("roi_heads.box_head.fc7", w.boxHead, w.boxHead);
  linear("roi_heads.box_predictor.cls_score", numClasses, w.boxHead);
  linear("roi_heads.box_predictor.bbox_pred", 4 * numClasses, w.boxHead);
  for (let i = 0; i < 4; i++) conv(`roi_heads.mask_head.${i}.0`, w.maskHead, i === 0 ? F : w.maskHead, 3, "he-out", true);
  const M = w.maskHead;
  sd.set("roi_heads.mask_predictor.conv5_mask.weight", tensorOf([M, M, 2, 2], normalArray(rng, M * M * 4, Math.sqrt(2 / (M * 4)))));
  sd.set("roi_heads.mask_predictor.conv5_mask.bias", tensorOf([M], new Float32Array(M)));
  conv("roi_heads.mask_predictor.mask_fcn_logits", numClasses, M, 1, "he-out", true);
  return sd;
}

/** The ImageNet-normalised input of a torchvision ResNet, in the detectron2 preset's BGR order (0–255 scale). */
export const BGR_PIXEL_MEAN = [103.53, 116.28, 123.675];
export const BGR_PIXEL_STD = [57.375, 57.12, 58.395];

/**
 * A fresh network for `config` with `numClasses` (background included). The detectron2 preset feeds
 * BGR: the stem's input channels of an RGB-pretrained backbone are reversed so that it sees the same.
 */
export async function buildTrainNet(config: MaskRcnnTrainConfig, numClasses: number): Promise<MaskRcnnNet> {
  const rng = seededRng(mixSeed(config.seed, 0x51));
  let backbone: StateDict | undefined;
  if (config.init !== "none") {
    const file = requireWeights(config.init === "moco_v2" ? "moco_v2_r50" : config.init).path;
    backbone = (await readStateDict(file, "resnet")).stateDict;
    if (config.preset === "detectron2") {
      const c1 = backbone.get("conv1.weight")!;
      const src = toFloat32(c1), [o, i, kh, kw] = c1.shape, dst = new Float32Array(src.length);
      for (let a = 0; a < o; a++) for (let c = 0; c < i; c++) dst.set(src.subarray(((a * i + c) * kh) * kw, ((a * i + c + 1) * kh) * kw), ((a * i + (i - 1 - c)) * kh) * kw);
      backbone = new Map(backbone);
      backbone.set("conv1.weight", tensorOf(c1.shape, dst));
    }
  }
  return withPooler(maskRcnnFromStateDict(freshStateDict(rng, numClasses, config.widths, backbone), config.init), config);
}

/** The net with the config's ROI level assignment. */
function withPooler(net: MaskRcnnNet, config: MaskRcnnTrainConfig): MaskRcnnNet {
  if (config.canonicalBoxSize !== undefined) net.canonicalBoxSize = config.canonicalBoxSize;
  return net;
}

// ---------------------------------------------------------------------------------------------
// data

export interface TrainSample {
  imageId: number;
  file: string;
  width: number;
  height: number;
  /** [G·4] x1, y1, x2, y2 at the original size. */
  boxes: Float32Array;
  labels: Int32Array;
  segmentations: Parameters<typeof rleFromCoco>[0][];
}

export interface TrainSet {
  samples: TrainSample[];
  /** Category id of class c (index c − 1); class 0 is the background. */
  categoryIds: number[];
  numClasses: number;
  skipped: { imagesWithoutAnnotations: number; crowd: number; boxesUnder1px: number; emptyMasks: number; missingImages: number };
}

/** Reads a COCO instances file and the images' sizes; instances and images that cannot train are counted, not fatal. */
export function loadTrainSet(annotations: string, imagesDir: string, opts: { agnostic: boolean }): TrainSet {
  const ds = readCocoDataset(annotations);
  const cats = ds.categories.map((c) => c.id).sort((a, b) => a - b);
  const classOf = new Map(cats.map((id, i) => [id, i + 1]));
  const skipped = { imagesWithoutAnnotations: 0, crowd: 0, boxesUnder1px: 0, emptyMasks: 0, missingImages: 0 };
  const byImage = new Map<number, typeof ds.annotations>();
  for (const a of ds.annotations) {
    const list = byImage.get(a.image_id) ?? [];
    list.push(a);
    byImage.set(a.image_id, list);
  }
  const samples: TrainSample[] = [];
  for (const im of ds.images) {
    const file = path.join(imagesDir, im.file_name);
    const boxes: number[] = [], labels: number[] = [], segs: TrainSample["segmentations"] = [];
    for (const a of byImage.get(im.id) ?? []) {
      if (a.iscrowd) { skipped.crowd++; continue; }
      if (!a.segmentation) { skipped.emptyMasks++; continue; }
      const rle = rleFromCoco(a.segmentation, im.height, im.width);
      let area = 0;
      for (let j = 1; j < rle.counts.length; j += 2) area += rle.counts[j];
      if (area === 0) { skipped.emptyMasks++; continue; }
      const [x, y, w, h] = a.bbox ?? rleToBbox(rle);
      if (!(w >= 1 && h >= 1)) { skipped.boxesUnder1px++; continue; }
      boxes.push(x, y, x + w, y + h);
      labels.push(opts.agnostic ? 1 : classOf.get(a.category_id) ?? 0);
      segs.push(a.segmentation);
    }
    if (labels.some((l) => l === 0)) throw inputError(annotations, `an annotation of image ${im.id} has a category not in "categories"`);
    if (!labels.length) { skipped.imagesWithoutAnnotations++; continue; }
    if (!fs.existsSync(file)) { skipped.missingImages++; continue; }
    samples.push({ imageId: im.id, file, width: im.width, height: im.height, boxes: Float32Array.from(boxes), labels: Int32Array.from(labels), segmentations: segs });
  }
  if (!samples.length) throw inputError(annotations, `no image with a usable instance under ${imagesDir} (skipped: ${JSON.stringify(skipped)})`);
  return { samples, categoryIds: opts.agnostic ? [cats[0] ?? 1] : cats, numClasses: opts.agnostic ? 2 : cats.length + 1, skipped };
}

/** Flips an image, its boxes and masks left–right (x ↦ W − x). */
function flipSample(img: RgbImage, t: InstanceTargets): { img: RgbImage; t: InstanceTargets } {
  const { width: W, height: H } = img;
  const data = new Uint8Array(img.data.length);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) data[(y * W + x) * 3 + c] = img.data[(y * W + W - 1 - x) * 3 + c];
  const boxes = new Float32Array(t.boxes.length);
  for (let i = 0; i < boxes.length; i += 4) { boxes[i] = W - t.boxes[i + 2]; boxes[i + 1] = t.boxes[i + 1]; boxes[i + 2] = W - t.boxes[i]; boxes[i + 3] = t.boxes[i + 3]; }
  const masks = t.masks.map((m) => {
    const out = new Uint8Array(m.length);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[y * W + x] = m[y * W + W - 1 - x];
    return out;
  });
  return { img: { width: W, height: H, data }, t: { ...t, boxes, masks } };
}

/** The network input and targets of `samples` at iteration `it` (scale and flip seeded by (seed, it, index)). */
export async function makeTrainBatch(c: MaskRcnnTrainConfig, samples: TrainSample[], it: number, cache?: Map<string, RgbImage>, first = 0): Promise<{ images: tf.Tensor4D; imageSizes: [number, number][]; targets: InstanceTargets[] }> {
  const imgs: RgbImage[] = [], origTargets: InstanceTargets[] = [], minSizes: number[] = [];
  for (let k = 0; k < samples.length; k++) {
    const s = samples[k];
    let img = cache?.get(s.file);
    if (!img) { img = await loadRgb(s.file); cache?.set(s.file, img); }
    if (img.width !== s.width || img.height !== s.height) throw inputError(s.file, `is ${img.width}×${img.height}, the annotations say ${s.width}×${s.height}`);
    let t: InstanceTargets = { boxes: s.boxes, labels: s.labels, masks: s.segmentations.map((g) => maskFromRle(rleFromCoco(g, s.height, s.width))), height: s.height, width: s.width };
    // `first`: the image's place in the whole batch when this is one share of it
    const rng = mulberry32(mixSeed(c.seed, it, 2, first + k));
    minSizes.push(c.minSizes[Math.floor(rng() * c.minSizes.length)]);
    if (c.flip && rng() < 0.5) ({ img, t } = flipSample(img, t));
    // masks stored row-major here; maskFromRle gives row-major (h × w)
    imgs.push(img);
    origTargets.push(t);
  }
  // one short side per image: resize each alone, then pad them together
  const per = imgs.map((img, k) => (c.preset === "detectron2"
    ? detectron2Transform([img], { ...DETECTRON2_TRANSFORM, pixelMean: BGR_PIXEL_MEAN, pixelStd: BGR_PIXEL_STD, shortEdge: minSizes[k], maxSize: c.maxSize })
    : rcnnTransform([img], { minSize: minSizes[k], maxSize: c.maxSize, mean: IMAGENET_MEAN, std: IMAGENET_STD, sizeDivisible: 32 })));
  const imageSizes = per.map((b) => b.imageSizes[0]);
  const Hp = Math.max(...per.map((b) => b.shape[2])), Wp = Math.max(...per.map((b) => b.shape[3]));
  const N = per.length, nhwc = new Float32Array(N * Hp * Wp * 3);
  per.forEach((b, n) => {
    const [, , h, w] = b.shape;
    for (let ch = 0; ch < 3; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) nhwc[((n * Hp + y) * Wp + x) * 3 + ch] = b.data[(ch * h + y) * w + x];
  });
  const targets = origTargets.map((t, n) => resizeTargets(c.preset, t, imageSizes[n][0], imageSizes[n][1]));
  return { images: tf.tensor4d(nhwc, [N, Hp, Wp, 3]), imageSizes, targets };
}

// Keep resizedSize/detectron2ResizedSize reachable for the heap check (the largest input of the recipe).
function largestInput(c: MaskRcnnTrainConfig, samples: TrainSample[]): [number, number] {
  let best: [number, number] = [0, 0];
  const top = Math.max(...c.minSizes);
  for (const s of samples) {
    const [h, w] = c.preset === "detectron2" ? detectron2ResizedSize(s.height, s.width, top, c.maxSize)
      : ((r) => [r.height, r.width])(resizedSize(s.height, s.width, top, c.maxSize));
    const hp = Math.ceil(h / 32) * 32, wp = Math.ceil(w / 32) * 32;
    if (hp * wp > best[0] * best[1]) best = [hp, wp];
  }
  return best;
}

// ---------------------------------------------------------------------------------------------
// memory

/** The step's heap model: the body walk of the trained stages, FPN, RPN and the two heads' ROI batches. */
export function maskRcnnMemoryModel(net: MaskRcnnNet, freezeAt: number, roisPerImage = 512): StepMemoryModel {
  const all = maskRcnnParams(net);
  const count = (ps: MaskRcnnParam[]) => ps.reduce((s, p) => s + p.variable.size, 0);
  const trainable = all.filter((p) => p.learnable && (p.stage < 0 || p.stage >= freezeAt));
  const F = net.fpnChannels, M = net.maskConvs[0].kernel.shape[3] as number, B = net.fc6.w.shape[1] as number;
  return {
    name: "Mask R-CNN R50-FPN",
    paramFloats: count(all),
    trainableFloats: count(trainable),
    activations(h, w) {
      const mark = <T extends { trainable: boolean }>(u: T, on: boolean): T => ({ ...u, trainable: on });
      const bodyWalk = (from: number) => {
        let walk: Walk = { saved: 0, largest: 3 * h * w, h, w };
        walk = walkConvBn(mark(net.body.stem, from <= 0), walk, true);
        walk = { ...walk, h: Math.ceil(walk.h / 2), w: Math.ceil(walk.w / 2) };
        const stages = [net.body.layer1, net.body.layer2, net.body.layer3, net.body.layer4];
        let pyramid = 0;
        stages.forEach((blocks, i) => {
          walk = walkStage(blocks.map((b) => ({ conv1: mark(b.conv1, i + 1 >= from), conv2: mark(b.conv2, i + 1 >= from), conv3: mark(b.conv3, i + 1 >= from), downsample: b.downsample && mark(b.downsample, i + 1 >= from) })), walk);
          pyramid += walk.h * walk.w;
        });
        return { ...walk, pyramid };
      };
      const walk = bodyWalk(freezeAt);
      // Frozen stages still leave forward values on the tape (tfjs records every op inside variableGrads),
      // not their gradients. Calibrated on one measurement (wasm heap high-water after a step at batch 2,
      // 320×544, body frozen, 128 ROIs per image, demo images with 40 and 35 objects so that the 32
      // foreground ROIs per image are all taken): 2.69 GiB, 2.12 without this term → 0.15 of a trained stage.
      const frozen = freezeAt > 0 ? 0.15 * (bodyWalk(0).saved - walk.saved) : 0;
      const F_ = F * walk.pyramid;
      const fpn = 6 * F_ * 1.34;                             // lateral, sum, output, RPN conv + relu, heads (+P6)
      const rois = roisPerImage * (49 * F * 2 + 4 * B);      // pooled map and its copy, fc6/fc7 in and out
      const masks = roisPerImage * 0.25 * (196 * M * 10 + 784 * M * 3);
      return { savedFloats: walk.saved + frozen + fpn + rois + masks, largestFloats: Math.max(walk.largest, F_) };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// state, one step, checkpoints

export interface TrainState {
  config: MaskRcnnTrainConfig;
  net: MaskRcnnNet;
  trained: MaskRcnnParam[];
  /** Momentum buffers, keyed by torchvision key (our layout). */
  momentum: Map<string, tf.Variable>;
  step: number;
  trainSeconds: number;
  numClasses: number;
  categoryIds: number[];
  /** Image ids in training order base (checked on resume). */
  imageIds: number[];
}

export interface StepLog {
  step: number;
  epoch: number;
  lr: number;
  loss: number;
  losses: Record<LossName, number>;
  gradNorm: number;
  imagesPerSecond: number;
  trainSeconds: number;
}

const META_KEY = "maskdistill_maskrcnn_train";

export function newTrainState(config: MaskRcnnTrainConfig, net: MaskRcnnNet, set: Pick<TrainSet, "numClasses" | "categoryIds">, imageIds: number[]): TrainState {
  const trained = setTrainable(net, config.freezeAt, config.norm === "BN");
  const momentum = new Map(trained.map((p) => [p.key, tf.variable(tf.zerosLike(p.variable), false)]));
  return { config, net, trained, momentum, step: 0, trainSeconds: 0, numClasses: set.numClasses, categoryIds: set.categoryIds, imageIds };
}

export function disposeTrainState(s: TrainState): void {
  tf.dispose([...maskRcnnVariables(s.net), ...s.momentum.values()]);
}

/** Image ranges [from, to) of the batch's data-parallel shares: as even as can be, in order. */
export function batchShares(batchSize: number, workers: number): [number, number][] {
  return Array.from({ length: workers }, (_, k) => [Math.floor((k * batchSize) / workers), Math.floor(((k + 1) * batchSize) / workers)]);
}

interface ShareResult {
  loss: number;
  losses: Record<LossName, number>;
  /** By variable name; a variable the share's loss does not reach has none. */
  grads: tf.NamedTensorMap;
}

/**
 * The losses and gradients of one share of iteration `it`'s batch: `samples` are images first.. of the batch.
 * Share 0 draws its sampler's choices from (seed, it) as a one-share batch always has; share k > 0 from (seed, it, k).
 */
async function shareGradients(state: TrainState, samples: TrainSample[], it: number, share: number, first: number, cache?: Map<string, RgbImage>): Promise<ShareResult> {
  const c = state.config;
  const batch = await makeTrainBatch(c, samples, it, cache, first);
  const cfg = presetTraining(c.preset, { dropLossIou: c.dropLossIou, roiBatchPerImage: c.roiBatchPerImage });
  const pick = seededPicker(share === 0 ? mixSeed(c.seed, it, 3) : mixSeed(c.seed, it, 3, share));
  const losses = {} as Record<LossName, number>;
  const { value, grads } = await withHeapGuard(`Mask R-CNN iteration ${it}`, async () => tf.variableGrads(() => {
    const r = maskRcnnLosses(state.net, batch, cfg, pick);
    for (const k of LOSS_NAMES) losses[k] = r.losses[k].dataSync()[0];
    return r.total;
  }, state.trained.map((p) => p.variable)));
  batch.images.dispose();
  const loss = (await value.data())[0];
  value.dispose();
  return { loss, losses, grads };
}

/** What a helper thread is sent once: how to run, and the network (every weight, frozen ones included). */
export interface MaskRcnnWorkerInit {
  engine: WorkerEngine;
  config: MaskRcnnTrainConfig;
  numClasses: number;
  weights: StateDict;
  /** The trained variables' keys in order (the weights and gradients follow it). */
  trainedKeys: string[];
  /** The trained variables' current values, one after the other in trainedKeys order: written by the main thread before each job. */
  shared: SharedArrayBuffer;
}

/** A helper's job for one iteration: its share of the batch (at the weights in `shared`). */
export interface MaskRcnnShareJob {
  it: number;
  share: number;
  first: number;
  samples: TrainSample[];
}

/** A helper's answer: the share's losses and its gradients in trainedKeys order (null: none). */
export interface MaskRcnnShareAnswer {
  loss: number;
  losses: Record<LossName, number>;
  grads: (Float32Array | null)[];
}

/** Views of the trained variables' values in one shared buffer (trained order). */
function sharedViews(trained: MaskRcnnParam[], shared: SharedArrayBuffer): Float32Array[] {
  let at = 0;
  return trained.map((p) => { const v = new Float32Array(shared, 4 * at, p.variable.size); at += p.variable.size; return v; });
}

/** A helper's network and its views of the shared weights, from its init message (instance/maskRcnnWorker.ts). */
export function workerTrainState(m: MaskRcnnWorkerInit): { state: TrainState; weights: Float32Array[] } {
  const net = withPooler(maskRcnnFromStateDict(m.weights, "train-maskrcnn worker"), m.config);
  const state = newTrainState(m.config, net, { numClasses: m.numClasses, categoryIds: [] }, []);
  const keys = state.trained.map((p) => p.key);
  if (keys.join(",") !== m.trainedKeys.join(",")) throw new Error("the worker's trained variables differ from its parent's");
  return { state, weights: sharedViews(state.trained, m.shared) };
}

/** A helper's job: take the shared weights, compute the share's gradients. */
export async function runShareJob(helper: { state: TrainState; weights: Float32Array[] }, job: MaskRcnnShareJob, cache: Map<string, RgbImage>): Promise<MaskRcnnShareAnswer> {
  const { state, weights } = helper;
  state.trained.forEach((p, i) => tf.tidy(() => p.variable.assign(tf.tensor(weights[i], p.variable.shape))));
  const r = await shareGradients(state, job.samples, job.it, job.share, job.first, cache);
  const grads = state.trained.map((p) => { const g = r.grads[p.variable.name]; return g ? (g.dataSync() as Float32Array).slice() : null; });
  tf.dispose(Object.values(r.grads));
  return { loss: r.loss, losses: r.losses, grads };
}

/** The helper threads of a data-parallel run and the shared weights they read (written before each run). */
type SharePool = WorkerPool<MaskRcnnShareJob, MaskRcnnShareAnswer> & { weights: Float32Array[] };

/**
 * One iteration: the losses and gradients — of each data-parallel share, averaged (config.workers; shares
 * 1.. in the helper threads of `pool` when given, else here one after the other) — then torch.optim.SGD's
 * update with the global-norm clip (sgdMomentumUpdate of the engine: d = g + wd·w, b ← μ·b + d, w ← w − lr·b;
 * no decay on frozen BN, which never trains).
 */
export async function trainStep(state: TrainState, samples: TrainSample[], cache?: Map<string, RgbImage>, pool?: SharePool): Promise<Omit<StepLog, "epoch" | "imagesPerSecond" | "trainSeconds">> {
  const c = state.config, it = state.step;
  const shares = batchShares(samples.length, c.workers ?? 1);
  if (pool && pool.size !== shares.length - 1) throw new Error(`trainStep: ${pool.size} helpers for ${shares.length} shares`);
  // the helpers start first, then this thread computes its share (and, without helpers, the others)
  if (pool) state.trained.forEach((p, i) => pool.weights[i].set(p.variable.dataSync() as Float32Array));
  const away = pool?.run(shares.slice(1).map(([a, b], k) => ({ it, share: k + 1, first: a, samples: samples.slice(a, b) })));
  const results: ShareResult[] = [];
  for (let k = 0; k < (pool ? 1 : shares.length); k++) results.push(await shareGradients(state, samples.slice(...shares[k]), it, k, shares[k][0], cache));
  for (const r of (await away) ?? []) {
    const grads: tf.NamedTensorMap = {};
    state.trained.forEach((p, i) => { const g = r.grads[i]; if (g) grads[p.variable.name] = tf.tensor(g, p.variable.shape); });
    results.push({ loss: r.loss, losses: r.losses, grads });
  }
  const grads = results.length === 1 ? results[0].grads : averageGradients(results.map((r) => r.grads));
  const mean = (f: (r: ShareResult) => number) => results.reduce((s, r) => s + f(r), 0) / results.length;
  const loss = mean((r) => r.loss);
  const lossValues = Object.fromEntries(LOSS_NAMES.map((k) => [k, mean((r) => r.losses[k])])) as Record<LossName, number>;
  if (!Number.isFinite(loss)) {
    tf.dispose(Object.values(grads));
    throw new MaskdistillError(`train-maskrcnn: loss is ${loss} at iteration ${it} (${JSON.stringify(lossValues)}); lower --lr or enable --clip-grad`);
  }
  const lr = learningRate(c, it);
  const bufferOf = new Map(state.trained.map((p) => [p.variable.name, state.momentum.get(p.key)!]));
  const gradNorm = sgdMomentumUpdate(state.trained.map((p) => p.variable), grads, (v) => bufferOf.get(v.name),
    { lr, momentum: c.momentum, weightDecay: c.weightDecay, clipGradNorm: c.clipGradNorm }, { measureNorm: true });
  tf.dispose(Object.values(grads));
  state.step++;
  return { step: state.step, lr, loss, losses: lossValues, gradNorm };
}

/** The shares' gradients summed in share order and divided by the number of shares (DDP's all-reduce mean); disposes its inputs. */
function averageGradients(maps: tf.NamedTensorMap[]): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  const names = new Set(maps.flatMap((m) => Object.keys(m)));
  for (const name of names) {
    out[name] = tf.tidy(() => {
      let sum: tf.Tensor | undefined;
      for (const m of maps) if (m[name]) sum = sum ? tf.add(sum, m[name]) : m[name];
      return tf.div(sum!, maps.length);
    });
  }
  for (const m of maps) tf.dispose(Object.values(m));
  return out;
}

interface CheckpointMeta {
  format: 1;
  config: MaskRcnnTrainConfig;
  step: number;
  trainSeconds: number;
  numClasses: number;
  categoryIds: number[];
  imageIds: number[];
}

async function weightsStateDict(state: TrainState): Promise<StateDict> {
  const sd = await maskRcnnStateDict(state.net);
  if (state.config.preset === "detectron2") {
    sd.set("pixel_mean", tensorOf([3], Float32Array.from(BGR_PIXEL_MEAN)));
    sd.set("pixel_std", tensorOf([3], Float32Array.from(BGR_PIXEL_STD)));
  }
  return sd;
}

/** Writes OUT/checkpoint.safetensors (full state) and OUT/model.safetensors (weights for `detect`), atomically. */
export async function saveCheckpoint(state: TrainState, outDir: string): Promise<void> {
  const sd = await weightsStateDict(state);
  const meta: CheckpointMeta = { format: 1, config: state.config, step: state.step, trainSeconds: state.trainSeconds, numClasses: state.numClasses, categoryIds: state.categoryIds, imageIds: state.imageIds };
  const info = { [META_KEY]: JSON.stringify(meta), format: "pt", source: "maskdistill train-maskrcnn", preset: state.config.preset, category_ids: JSON.stringify(state.categoryIds),
    ...(state.config.canonicalBoxSize !== undefined ? { canonical_box_size: String(state.config.canonicalBoxSize) } : {}) };
  fs.mkdirSync(outDir, { recursive: true });
  writeSafetensors(path.join(outDir, MODEL_FILE), sd, info);
  const full: StateDict = new Map(sd);
  for (const p of state.trained) {
    const b = state.momentum.get(p.key)!;
    full.set(`optimizer.momentum_buffer.${p.key}`, tensorOf(b.shape, Float32Array.from((await b.data()) as Float32Array)));
  }
  writeSafetensors(path.join(outDir, CHECKPOINT_FILE), full, info);
}

/** The config a checkpoint was started with (its header only), or undefined when there is none. */
export async function checkpointConfig(file: string): Promise<MaskRcnnTrainConfig | undefined> {
  if (!fs.existsSync(file)) return undefined;
  const { metadata } = await readSafetensorsFile(file, { headerOnly: true });
  const raw = metadata[META_KEY];
  if (!raw) throw inputError(file, `not a train-maskrcnn checkpoint (no "${META_KEY}" metadata)`);
  return (JSON.parse(raw) as CheckpointMeta).config;
}

/** Reads a state written by saveCheckpoint. */
export async function loadCheckpoint(file: string): Promise<TrainState> {
  const { tensors, metadata } = await readSafetensorsFile(file);
  const raw = metadata[META_KEY];
  if (!raw) throw inputError(file, `not a train-maskrcnn checkpoint (no "${META_KEY}" metadata)`);
  const meta = JSON.parse(raw) as CheckpointMeta;
  const weights: StateDict = new Map();
  for (const [k, t] of tensors) if (!k.startsWith("optimizer.")) weights.set(k, tensorOf(t.shape, t.data));
  const net = withPooler(maskRcnnFromStateDict(weights, file), meta.config);
  const state = newTrainState(meta.config, net, meta, meta.imageIds);
  for (const p of state.trained) {
    const t = tensors.get(`optimizer.momentum_buffer.${p.key}`);
    if (!t || t.data.length !== p.variable.size) throw inputError(file, `missing or mis-shaped momentum buffer of ${p.key}`);
    state.momentum.get(p.key)!.assign(tf.tensor(t.data, p.variable.shape));
  }
  state.step = meta.step;
  state.trainSeconds = meta.trainSeconds;
  return state;
}

// ---------------------------------------------------------------------------------------------
// the loop

export interface TrainOptions {
  outDir: string;
  set: TrainSet;
  config: MaskRcnnTrainConfig;
  resume: boolean;
  /** Stop after this many iterations in this sitting. */
  maxSteps?: number;
  /** Seconds between checkpoints (default 180); also at the end and when stopped. */
  checkpointSeconds?: number;
  signal?: AbortSignal;
  /** Keep decoded images in memory (default true). */
  cacheImages?: boolean;
  /** With config.workers > 1: run shares 1.. in helper threads (default true) or here, one after the other (the same numbers). */
  workerThreads?: boolean;
  onStep?: (log: StepLog, state: TrainState) => void;
  /** Called once before the first step with the heap estimate (wasm) or undefined. */
  onStart?: (state: TrainState, info: { heapGiB?: number; inputSize: [number, number]; resumedAt: number }) => void;
}

/** Trains (or resumes) until the schedule ends, `maxSteps` or the signal; returns the state (caller disposes). */
export async function trainMaskRcnn(opts: TrainOptions): Promise<TrainState> {
  const ckpt = path.join(opts.outDir, CHECKPOINT_FILE), logFile = path.join(opts.outDir, LOG_FILE);
  const ids = opts.set.samples.map((s) => s.imageId);
  removeStaleTemporaries(opts.outDir, /^[^/]+\.safetensors\.tmp-(?<pid>\d+)$/);
  let state: TrainState;
  if (opts.resume && fs.existsSync(ckpt)) {
    state = await loadCheckpoint(ckpt);
    if (state.imageIds.join(",") !== ids.join(",")) throw inputError(ckpt, `was trained on ${state.imageIds.length} other images; resume with the same annotations and images`);
    truncateLog(logFile, state.step);
  } else {
    if (fs.existsSync(ckpt) && !opts.resume) throw inputError(ckpt, "a checkpoint is already there: pass --resume to continue it, or choose another --out");
    const net = await buildTrainNet(opts.config, opts.set.numClasses);
    state = newTrainState(opts.config, net, opts.set, ids);
    fs.mkdirSync(opts.outDir, { recursive: true });
    fs.writeFileSync(logFile, "");
  }
  const c = state.config;
  const workers = c.workers ?? 1;
  if (!(Number.isInteger(workers) && workers >= 1 && workers <= c.batchSize)) throw new MaskdistillError(`train-maskrcnn: workers must be an integer from 1 to the batch size (${c.batchSize}), got ${workers}`);
  if (workers > 1 && c.norm === "BN") throw new MaskdistillError("train-maskrcnn: --norm BN trains on one share's batch statistics; use --workers 1 with it");
  const inputSize = largestInput(c, opts.set.samples);
  let heapGiB: number | undefined;
  if (tf.getBackend() === "wasm") {
    heapGiB = assertFitsInHeap(maskRcnnMemoryModel(state.net, c.freezeAt, c.roiBatchPerImage), Math.ceil(c.batchSize / workers), inputSize, { optimizerSlots: 1 }).bytes / 1024 ** 3;
  }
  opts.onStart?.(state, { heapGiB, inputSize, resumedAt: state.step });
  const pool = workers > 1 && opts.workerThreads !== false && state.step < c.iterations ? await startSharePool(state, workers) : undefined;
  try {
    await trainLoop(opts, state, pool);
  } finally {
    await pool?.close();
  }
  return state;
}

/**
 * The helper threads of a data-parallel run: workers − 1 of them, the engine's threads divided among all
 * (this thread's MLAS pool shrinks alike while they live; close() gives it back).
 */
async function startSharePool(state: TrainState, workers: number): Promise<SharePool> {
  const shared = new SharedArrayBuffer(4 * state.trained.reduce((s, p) => s + p.variable.size, 0));
  const init = { config: state.config, numClasses: state.numClasses, weights: await weightsStateDict(state), trainedKeys: state.trained.map((p) => p.key), shared };
  const pool = await startEngineWorkers<Omit<MaskRcnnWorkerInit, "engine">, MaskRcnnShareJob, MaskRcnnShareAnswer>("instance/maskRcnnWorker", workers, init, "train-maskrcnn");
  return { ...pool, weights: sharedViews(state.trained, shared) };
}

async function trainLoop(opts: TrainOptions, state: TrainState, pool: SharePool | undefined): Promise<void> {
  const c = state.config, logFile = path.join(opts.outDir, LOG_FILE);
  const n = opts.set.samples.length, per = Math.max(1, Math.floor(n / c.batchSize));
  const cache = opts.cacheImages === false ? undefined : new Map<string, RgbImage>();
  const every = (opts.checkpointSeconds ?? 180) * 1000;
  let lastSave = Date.now(), sitting = 0, savedAt = -1;
  while (state.step < c.iterations && !(opts.maxSteps !== undefined && sitting >= opts.maxSteps) && !opts.signal?.aborted) {
    const it = state.step, epoch = Math.floor(it / per), b = it % per;
    const order = epochOrder(c.seed, epoch, n);
    const batch = Array.from({ length: c.batchSize }, (_, k) => opts.set.samples[order[(b * c.batchSize + k) % n]]);
    const t0 = Date.now();
    const r = await trainStep(state, batch, cache, pool);
    const seconds = (Date.now() - t0) / 1000;
    state.trainSeconds += seconds;
    sitting++;
    const log: StepLog = { ...r, epoch: state.step / per, imagesPerSecond: c.batchSize / seconds, trainSeconds: state.trainSeconds };
    fs.appendFileSync(logFile, JSON.stringify(log) + "\n");
    opts.onStep?.(log, state);
    if (Date.now() - lastSave >= every || state.step === c.iterations) { await saveCheckpoint(state, opts.outDir); savedAt = state.step; lastSave = Date.now(); }
    await new Promise<void>((resolve) => setImmediate(resolve));   // let Ctrl-C / SIGTERM handlers run
  }
  if (savedAt !== state.step) await saveCheckpoint(state, opts.outDir);
}

// ---------------------------------------------------------------------------------------------
// evaluation on a training set (the overfit check, notebooks)

/** Mask AP of `net` on `samples` against their own annotations (COCOeval segm): stats[0] AP, stats[1] AP50. */
export async function evaluateOnSamples(net: MaskRcnnNet, set: Pick<TrainSet, "categoryIds">, samples: TrainSample[],
    inference: MaskRcnnInference, opts: { useCats?: boolean } = {}): Promise<{ ap: number; ap50: number; detections: number }> {
  const gt: CocoDataset = {
    images: samples.map((s) => ({ id: s.imageId, file_name: path.basename(s.file), width: s.width, height: s.height })),
    annotations: [], categories: set.categoryIds.map((id) => ({ id, name: String(id) })),
  } as unknown as CocoDataset;
  let annId = 1;
  for (const s of samples) {
    s.segmentations.forEach((seg, g) => {
      const rle = rleFromCoco(seg, s.height, s.width);
      const b = s.boxes.subarray(4 * g, 4 * g + 4);
      gt.annotations.push({ id: annId++, image_id: s.imageId, category_id: set.categoryIds[s.labels[g] - 1], iscrowd: 0, area: rleArea(rle), bbox: [b[0], b[1], b[2] - b[0], b[3] - b[1]], segmentation: rleToCoco(rle) } as CocoDataset["annotations"][number]);
    });
  }
  const results: CocoResult[] = [];
  for (const s of samples) {
    const det = await detectImage(net, await loadRgb(s.file), inference);
    results.push(...detectionAnnotations(det, s.imageId, s.height, s.width, (l) => set.categoryIds[l - 1]));
  }
  const r = cocoEval(gt, loadResults(gt, results), defaultParams(gt, "segm", opts.useCats ?? true));
  return { ap: r.stats[0], ap50: r.stats[1], detections: results.length };
}
