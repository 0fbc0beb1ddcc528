// The DINO recipe, scaled down for CPU/wasm training on a few hundred images, next to the official
// defaults (facebookresearch/dino main_dino.py). `DINO_DEFAULTS` documents those; `DEMO_RECIPE` is ours.
import type { MultiCropConfig } from "./augment.js";
import type { DinoHeadConfig } from "./head.js";
import { MaskdistillError } from "../errors.js";

export interface PretrainArch {
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /** A convolutional stem's channels (`pretrain --conv-stem`; PretrainVitConfig.convStem); absent: DINO's patch embedding. */
  convStem?: number[];
}

export interface PretrainConfig {
  seed: number;
  /** The ViT's architecture (unused when `resnet` is set). */
  arch: PretrainArch;
  /**
   * Train a ResNet-50 (torchvision's, this stem width; 64 = the real one) instead of the ViT
   * (`pretrain --arch resnet50 --width W`): the backbone of stage iii's Mask R-CNN and stage v's DeepLab, as
   * the paper's DINO and MoCo v2 ResNet-50s. Its layer4 output is average-pooled into the head.
   */
  resnet?: { width: number };
  head: DinoHeadConfig;
  crops: MultiCropConfig;
  /**
   * Each image comes with a second picture of the same object (`pretrain --paired-views`): the second
   * global view and every other local view are cut from it (augment.ts multiCrop). Absent: off.
   */
  pairedViews?: boolean;
  /**
   * The training objective. "dino" (absent: DINO): the student matches the teacher's centred, sharpened
   * prototype distributions. "contrastive": MoCo-style InfoNCE on the head's L2-normalised bottleneck
   * embedding — each student view must pick its image's teacher global view (the other one, for a global)
   * among the teacher global views of the whole batch, at temperature `contrastTemp` (the momentum teacher
   * as the key encoder; the prototype layer is not used). Far more signal per iteration than DINO's
   * prototypes, which matters when only a few thousand iterations are affordable.
   */
  objective?: "dino" | "contrastive";
  /** InfoNCE temperature of the contrastive objective (default 0.2, MoCo v3's). */
  contrastTemp?: number;
  /**
   * Contrastive objective: subtract the batch mean from the head's output before the L2 normalisation
   * (a batch norm without scale, as at the end of MoCo v3's and SimCLR v2's projectors). Without it, a
   * component shared by every embedding can grow until all of them point the same way: the loss then
   * sits at chance (0.4·ln 2B), where InfoNCE's gradient vanishes — a collapse seen when the views share
   * little (re-coloured pairs, strong hue jitter).
   */
  centreEmbeddings?: boolean;
  /**
   * Start the student and teacher backbones from this DINO-layout ViT checkpoint (same architecture; e.g. an
   * exported teacher, to continue a finished run on a new schedule) instead of the seeded initialisation; the
   * heads start fresh. Read once, when training starts; the path and the file's SHA-256 are kept for the record.
   */
  initFrom?: { file: string; sha256: string };
  /** Images are decoded once and resized to this short side (bicubic) before cropping; 0 = keep. */
  cacheShortSide: number;
  batchSize: number;
  epochs: number;
  /** Peak learning rate (DINO: lr · batch / 256) reached after `warmupEpochs`, then cosine to `minLr`. */
  lr: number;
  minLr: number;
  warmupEpochs: number;
  weightDecay: number;
  weightDecayEnd: number;
  /** Teacher EMA momentum, cosine from this to 1. */
  momentumTeacher: number;
  /** Per-parameter gradient-norm clip (0 = off). */
  clipGrad: number;
  /** Epochs during which the head's last layer is not updated. */
  freezeLastLayer: number;
  studentTemp: number;
  warmupTeacherTemp: number;
  teacherTemp: number;
  warmupTeacherTempEpochs: number;
  centerMomentum: number;
}

/** The official defaults (ViT-S/16, main_dino.py), for the record and the notebook's recipe table. */
export const DINO_DEFAULTS = {
  arch: "vit_small: patch 16, dim 384, depth 12, heads 6, mlp_ratio 4",
  head: "hidden 2048, bottleneck 256, out_dim 65536, norm_last_layer",
  crops: "2 × 224 px (scale 0.4–1) + 8 × 96 px (scale 0.05–0.4); blur σ 0.1–2",
  batchSize: "64 per GPU (1024 in the paper)",
  epochs: "100 (up to 800)",
  lr: "0.0005 · batch / 256, warm-up 10 epochs, cosine to min_lr 1e-6",
  weightDecay: "0.04 → 0.4 (cosine)",
  momentumTeacher: "0.996 → 1 (cosine)",
  clipGrad: "3.0 (per parameter)",
  freezeLastLayer: "1 epoch",
  temperatures: "student 0.1; teacher 0.04 (warm-up 0.04, 0 epochs)",
  centerMomentum: "0.9",
  dropPath: "0.1",
  optimizer: "AdamW (β 0.9, 0.999; ε 1e-8)",
} as const;

/**
 * Our recipe for the demo backbone: ViT dim 192 (6 heads of 32), depth 6, patch 16; 2 × 96 px global
 * and 6 × 48 px local crops; a 4096-prototype head; batch 16 (19 iterations per epoch on 313 images);
 * peak lr 1e-4, ≈3× DINO's linear rule (0.0005·16/256 = 3.1e-5; a few hundred iterations in all, where
 * DINO runs hundreds of thousands). A first run at 3e-4 (10×) with teacher momentum 0.99 drifted
 * towards the uniform collapse after warm-up (loss 6.97 → 8.03 ≈ ln 4096 by epoch 8); at 1e-4 with DINO's
 * teacher temperature 0.04 the teacher's targets still flattened (entropy ≈ 7.2 of ln 4096 = 8.3 after
 * 30 epochs); teacher temperature 0.02 keeps them sharper (entropy 2.4 → 4.8): the demo backbone.
 */
export const DEMO_RECIPE: PretrainConfig = {
  seed: 0,
  arch: { patch: 16, dim: 192, depth: 6, heads: 6, mlpRatio: 4 },
  head: { hidden: 512, bottleneck: 128, outDim: 4096 },
  crops: { globalSize: 96, localSize: 48, localCrops: 6, globalScale: [0.4, 1], localScale: [0.05, 0.4], blurSigma: [0.1, 2.0] },
  cacheShortSide: 192,
  batchSize: 16,
  epochs: 30,
  lr: 1e-4,
  minLr: 1e-6,
  warmupEpochs: 2,
  weightDecay: 0.04,
  weightDecayEnd: 0.4,
  momentumTeacher: 0.996,
  clipGrad: 3.0,
  freezeLastLayer: 1,
  studentTemp: 0.1,
  warmupTeacherTemp: 0.02,
  teacherTemp: 0.02,
  warmupTeacherTempEpochs: 0,
  centerMomentum: 0.9,
};

/** Checks a config; errors name the field. */
export function checkConfig(c: PretrainConfig): void {
  const bad = (what: string) => { throw new MaskdistillError(`pretrain config: ${what}`); };
  const { arch, crops } = c;
  if (c.resnet) {
    if (!(Number.isInteger(c.resnet.width) && c.resnet.width >= 1)) bad(`ResNet width must be a positive integer, got ${c.resnet.width}`);
    if (!(crops.globalSize >= 32 && (crops.localCrops === 0 || crops.localSize >= 32))) bad(`a ResNet-50 (stride 32) needs crops of 32 px or more, got ${crops.globalSize} and ${crops.localSize}`);
  } else {
    if (!(arch.dim > 0 && arch.depth > 0 && arch.heads > 0 && arch.patch > 0)) bad("arch dim, depth, heads and patch must be positive");
    if (arch.dim % arch.heads !== 0) bad(`dim ${arch.dim} is not divisible by heads ${arch.heads}`);
    if (crops.globalSize % arch.patch !== 0 || crops.localSize % arch.patch !== 0) {
      bad(`crop sizes (${crops.globalSize}, ${crops.localSize}) must be multiples of the patch ${arch.patch}`);
    }
  }
  if (!(c.batchSize >= 1 && Number.isInteger(c.batchSize))) bad(`batch size must be a positive integer, got ${c.batchSize}`);
  if (!(c.epochs >= 1 && Number.isInteger(c.epochs))) bad(`epochs must be a positive integer, got ${c.epochs}`);
  if (c.objective !== undefined && c.objective !== "dino" && c.objective !== "contrastive") bad(`objective must be "dino" or "contrastive", got ${JSON.stringify(c.objective)}`);
  if (c.contrastTemp !== undefined && !(c.contrastTemp > 0)) bad(`contrastTemp must be positive, got ${c.contrastTemp}`);
  if (c.centreEmbeddings && c.objective !== "contrastive") bad("centreEmbeddings applies to the contrastive objective only");
  if (!(crops.localCrops >= 0 && Number.isInteger(crops.localCrops))) bad("localCrops must be a non-negative integer");
  if (!(c.lr > 0)) bad(`lr must be positive, got ${c.lr}`);
}
