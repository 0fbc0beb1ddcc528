// DINO's multi-crop augmentation (DataAugmentationDINO), on RgbImage, deterministic given a PRNG:
//   global crop 1: RandomResizedCrop(global, scale (0.4, 1), bicubic), flip + colour jitter, blur p=1.0
//   global crop 2: the same, blur p=0.1, solarisation p=0.2
//   local crops:   RandomResizedCrop(local, scale (0.05, 0.4)), flip + colour jitter, blur p=0.5
//   flip + colour jitter: horizontal flip p=0.5; ColorJitter(0.4, 0.4, 0.2, 0.1) p=0.8 (the four
//   adjustments in random order, as torchvision); RandomGrayscale p=0.2; then ImageNet normalisation.
// Crops are cut and resized with src/data/resize.ts (PIL-exact bicubic); the jitter, blur and
// solarisation follow torchvision / PIL on [0, 1] floats.
import type { RgbImage } from "../data/image.js";
import { resizeU8 } from "../data/resize.js";
import { IMAGENET_MEAN, IMAGENET_STD } from "../data/preprocess.js";
import { MaskdistillError } from "../errors.js";

export type Rng = () => number;

export interface MultiCropConfig {
  globalSize: number;
  localSize: number;
  localCrops: number;
  globalScale: [number, number];
  localScale: [number, number];
  /** Gaussian-blur σ range at 224 px; scaled by crop size / 224 for smaller crops. */
  blurSigma: [number, number];
  /** Colour jitter (absent: DINO's, COLOR_JITTER_DINO). */
  colorJitter?: ColorJitterConfig;
  /**
   * Both global views blurred with p 0.5 and never solarised (SimCLR's symmetric augmentation) instead of
   * DINO's asymmetric pair (blur 1.0 / 0.1, solarisation 0 / 0.2). Absent: DINO's.
   */
  symmetricGlobals?: boolean;
}

/**
 * torchvision ColorJitter(brightness, contrast, saturation, hue) applied with probability `p`, then
 * RandomGrayscale(`grayscale`). A stronger hue range takes colour away as a cue for matching views
 * (SimCLR's colour-distortion ablation) — useful where colours are random per image.
 */
export interface ColorJitterConfig {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  p: number;
  grayscale: number;
}

export const COLOR_JITTER_DINO: ColorJitterConfig = { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, p: 0.8, grayscale: 0.2 };

export interface CropBox { x: number; y: number; w: number; h: number }

/** A crop as the model sees it: normalised CHW float32. */
export interface Crop {
  data: Float32Array;
  size: number;
}

export interface MultiCrop {
  globals: [Crop, Crop];
  locals: Crop[];
}

const uniform = (rng: Rng, a: number, b: number) => a + (b - a) * rng();
const randint = (rng: Rng, lo: number, hiExclusive: number) => lo + Math.floor(rng() * (hiExclusive - lo));

/** torchvision RandomResizedCrop.get_params (ratio 3/4 … 4/3, 10 tries, then a centre crop). */
export function randomResizedCropBox(rng: Rng, width: number, height: number, scale: [number, number],
    ratio: [number, number] = [3 / 4, 4 / 3]): CropBox {
  const area = width * height;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])];
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * uniform(rng, scale[0], scale[1]);
    const aspect = Math.exp(uniform(rng, logRatio[0], logRatio[1]));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return { y: randint(rng, 0, height - h + 1), x: randint(rng, 0, width - w + 1), w, h };
    }
  }
  const inRatio = width / height;
  let w: number, h: number;
  if (inRatio < ratio[0]) { w = width; h = Math.round(w / ratio[0]); }
  else if (inRatio > ratio[1]) { h = height; w = Math.round(h * ratio[1]); }
  else { w = width; h = height; }
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), w, h };
}

/** The box of `img` resized to size × size (bicubic), as floats in [0, 1], HWC. */
function cropResize(img: RgbImage, box: CropBox, size: number): Float32Array {
  const cut = new Uint8Array(box.w * box.h * 3);
  for (let y = 0; y < box.h; y++) {
    const src = ((box.y + y) * img.width + box.x) * 3;
    cut.set(img.data.subarray(src, src + box.w * 3), y * box.w * 3);
  }
  const u8 = resizeU8(cut, box.w, box.h, 3, size, size, "bicubic");
  const out = new Float32Array(u8.length);
  for (let i = 0; i < u8.length; i++) out[i] = u8[i] / 255;
  return out;
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
const gray = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;

function hflip(px: Float32Array, size: number): void {
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size >> 1; x++) {
      const a = (y * size + x) * 3, b = (y * size + size - 1 - x) * 3;
      for (let c = 0; c < 3; c++) { const t = px[a + c]; px[a + c] = px[b + c]; px[b + c] = t; }
    }
  }
}

function adjustBrightness(px: Float32Array, f: number): void {
  for (let i = 0; i < px.length; i++) px[i] = clamp01(px[i] * f);
}
function adjustContrast(px: Float32Array, f: number): void {
  let mean = 0;
  for (let i = 0; i < px.length; i += 3) mean += gray(px[i], px[i + 1], px[i + 2]);
  mean /= px.length / 3;
  for (let i = 0; i < px.length; i++) px[i] = clamp01(f * px[i] + (1 - f) * mean);
}
function adjustSaturation(px: Float32Array, f: number): void {
  for (let i = 0; i < px.length; i += 3) {
    const g = gray(px[i], px[i + 1], px[i + 2]);
    for (let c = 0; c < 3; c++) px[i + c] = clamp01(f * px[i + c] + (1 - f) * g);
  }
}
/** Hue rotation by `shift` turns in HSV (torchvision adjust_hue). */
function adjustHue(px: Float32Array, shift: number): void {
  for (let i = 0; i < px.length; i += 3) {
    const r = px[i], g = px[i + 1], b = px[i + 2];
    const max = Math.max(r, g, b), min = Math.min(r, g, b), d = max - min;
    let h = 0;
    if (d > 0) {
      if (max === r) h = ((g - b) / d) % 6;
      else if (max === g) h = (b - r) / d + 2;
      else h = (r - g) / d + 4;
      h /= 6;
    }
    h = (((h + shift) % 1) + 1) % 1;
    const s = max === 0 ? 0 : d / max;
    // no closures in this per-pixel loop: tsx names every function it creates (≈ 10× the loop's cost)
    px[i] = hsvChannel(5, h, s, max); px[i + 1] = hsvChannel(3, h, s, max); px[i + 2] = hsvChannel(1, h, s, max);
  }
}
/** One RGB channel of HSV (h in turns): v − v·s·clamp(min(k, 4 − k), 0, 1), k = (n + 6h) mod 6. */
function hsvChannel(n: number, h: number, s: number, v: number): number {
  const k = (n + h * 6) % 6;
  return v - v * s * Math.max(0, Math.min(k, 4 - k, 1));
}
function toGrayscale(px: Float32Array): void {
  for (let i = 0; i < px.length; i += 3) {
    const g = gray(px[i], px[i + 1], px[i + 2]);
    px[i] = px[i + 1] = px[i + 2] = g;
  }
}
/** Separable Gaussian blur, radius ⌈3σ⌉, edges clamped. */
function gaussianBlur(px: Float32Array, size: number, sigma: number): void {
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) sum += kernel[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < kernel.length; i++) kernel[i] /= sum;
  const tmp = new Float32Array(px.length);
  const idx = (v: number) => (v < 0 ? 0 : v >= size ? size - 1 : v);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let k = -radius; k <= radius; k++) acc += kernel[k + radius] * px[(y * size + idx(x + k)) * 3 + c];
        tmp[(y * size + x) * 3 + c] = acc;
      }
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let acc = 0;
        for (let k = -radius; k <= radius; k++) acc += kernel[k + radius] * tmp[(idx(y + k) * size + x) * 3 + c];
        px[(y * size + x) * 3 + c] = acc;
      }
    }
  }
}
/** PIL ImageOps.solarize(threshold=128) on [0, 1] values. */
function solarize(px: Float32Array): void {
  for (let i = 0; i < px.length; i++) if (px[i] >= 128 / 255) px[i] = 1 - px[i];
}

function flipAndColorJitter(rng: Rng, px: Float32Array, size: number, cj: ColorJitterConfig): void {
  if (rng() < 0.5) hflip(px, size);
  if (rng() < cj.p) {
    const factors = [uniform(rng, 1 - cj.brightness, 1 + cj.brightness), uniform(rng, 1 - cj.contrast, 1 + cj.contrast),
      uniform(rng, 1 - cj.saturation, 1 + cj.saturation), uniform(rng, -cj.hue, cj.hue)];
    const order = [0, 1, 2, 3];
    for (let i = 3; i > 0; i--) { const j = randint(rng, 0, i + 1); [order[i], order[j]] = [order[j], order[i]]; }
    for (const op of order) {
      if (op === 0) adjustBrightness(px, factors[0]);
      else if (op === 1) adjustContrast(px, factors[1]);
      else if (op === 2) adjustSaturation(px, factors[2]);
      else adjustHue(px, factors[3]);
    }
  }
  if (rng() < cj.grayscale) toGrayscale(px);
}

/** HWC [0, 1] → ImageNet-normalised CHW. */
function normalise(px: Float32Array, size: number): Float32Array {
  const n = size * size, out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = (px[i * 3 + c] - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
  return out;
}

function view(rng: Rng, img: RgbImage, size: number, scale: [number, number], cfg: MultiCropConfig,
    blurP: number, solarizeP: number): Crop {
  const px = cropResize(img, randomResizedCropBox(rng, img.width, img.height, scale), size);
  flipAndColorJitter(rng, px, size, cfg.colorJitter ?? COLOR_JITTER_DINO);
  if (rng() < blurP) gaussianBlur(px, size, uniform(rng, cfg.blurSigma[0], cfg.blurSigma[1]) * (size / 224));
  if (rng() < solarizeP) solarize(px);
  return { data: normalise(px, size), size };
}

/**
 * Two global and `localCrops` local views of one image. With `paired` (a second picture of the same
 * object, e.g. a later video frame), the second global view and every other local view are cut from it,
 * so what the views share is the object, not the background around it.
 */
export function multiCrop(rng: Rng, img: RgbImage, cfg: MultiCropConfig, paired?: RgbImage): MultiCrop {
  for (const im of paired ? [img, paired] : [img]) {
    if (im.width < 1 || im.height < 1 || im.data.length !== im.width * im.height * 3) {
      throw new MaskdistillError(`multiCrop: bad RGB image ${im.width}×${im.height} with ${im.data.length} bytes`);
    }
  }
  const other = paired ?? img;
  const sym = cfg.symmetricGlobals === true;
  const g1 = view(rng, img, cfg.globalSize, cfg.globalScale, cfg, sym ? 0.5 : 1.0, 0);
  const g2 = view(rng, other, cfg.globalSize, cfg.globalScale, cfg, sym ? 0.5 : 0.1, sym ? 0 : 0.2);
  const locals = Array.from({ length: cfg.localCrops }, (_, i) => view(rng, i % 2 ? other : img, cfg.localSize, cfg.localScale, cfg, 0.5, 0));
  return { globals: [g1, g2], locals };
}

/** Undoes the ImageNet normalisation of a crop (for display). */
export function cropToRgb(crop: Crop): RgbImage {
  const n = crop.size * crop.size, data = new Uint8Array(3 * n);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const v = (crop.data[c * n + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255;
      data[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
    }
  }
  return { width: crop.size, height: crop.size, data };
}
