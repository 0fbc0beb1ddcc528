// ViT input preprocessing as the reference does it (METHOD.md §2.2, §3.1): torchvision
// Resize(short side, PIL bilinear) -> ToTensor -> Normalize(ImageNet) -> zero-pad bottom/right to a
// multiple of the patch size. Padding comes after normalisation, so padded pixels are 0 in normalised
// space (the mean colour), not black.
import { MaskdistillError } from "../errors.js";
import type { RgbImage } from "./image.js";
import { resizeImage, shortSideSize } from "./resize.js";

export const IMAGENET_MEAN: readonly [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly [number, number, number] = [0.229, 0.224, 0.225];

/** A normalised image tensor, float32 CHW (3 × height × width), zero-padded bottom/right. */
export interface PreprocessedImage {
  data: Float32Array;
  /** Padded size (a multiple of the requested multiple). */
  width: number;
  height: number;
  /** Size of the image content (after resizing, before padding): rows/columns beyond are padding. */
  validWidth: number;
  validHeight: number;
  /** Size of the image that was given (before resizing; for a crop, the crop's own size). */
  originalWidth: number;
  originalHeight: number;
}

export interface PreprocessOptions {
  /** Resize so the shorter side is this long (torchvision Resize(int), PIL bilinear); undefined keeps the size. */
  resize?: number;
  /** Pad width and height up to a multiple of this (the patch size; 1 = no padding). */
  multiple: number;
}

/**
 * Per-channel lookup table (channel c, level v at c·256 + v) of the normalised value of each 8-bit
 * level, computed in float32 step by step as torch does: ToTensor (x / 255), then (x - mean) / std with mean and std as float32.
 */
export const IMAGENET_NORMALISED_LUT: Float32Array = (() => {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(IMAGENET_MEAN[c]), std = Math.fround(IMAGENET_STD[c]);
    for (let v = 0; v < 256; v++) {
      const x = Math.fround(v / 255);
      lut[c * 256 + v] = Math.fround(Math.fround(x - mean) / std);
    }
  }
  return lut;
})();

/** Smallest multiple of `multiple` that is ≥ n. */
export function padSize(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}

function checkMultiple(multiple: number): void {
  if (!Number.isInteger(multiple) || multiple < 1) {
    throw new MaskdistillError(`preprocess: multiple must be a positive integer, got ${multiple}`);
  }
}

/** Normalises the region [x0, x0+w) × [y0, y0+h) of `img` into a zero-filled CHW tensor of width×height. */
function normaliseRegion(
  img: RgbImage, x0: number, y0: number, w: number, h: number, width: number, height: number,
): Float32Array {
  const out = new Float32Array(3 * width * height);
  const plane = width * height;
  for (let y = 0; y < h; y++) {
    let p = ((y + y0) * img.width + x0) * 3;
    const row = y * width;
    for (let x = 0; x < w; x++, p += 3) {
      out[row + x] = IMAGENET_NORMALISED_LUT[img.data[p]];
      out[plane + row + x] = IMAGENET_NORMALISED_LUT[256 + img.data[p + 1]];
      out[2 * plane + row + x] = IMAGENET_NORMALISED_LUT[512 + img.data[p + 2]];
    }
  }
  return out;
}

/** Resize (optional) → normalise → pad: the stage-i input (METHOD.md §2.2). */
export function preprocess(img: RgbImage, opts: PreprocessOptions): PreprocessedImage {
  checkMultiple(opts.multiple);
  let resized = img;
  if (opts.resize !== undefined) {
    const [w, h] = shortSideSize(img.width, img.height, opts.resize);
    if (w !== img.width || h !== img.height) resized = resizeImage(img, w, h, "bilinear");
  }
  const width = padSize(resized.width, opts.multiple), height = padSize(resized.height, opts.multiple);
  return {
    data: normaliseRegion(resized, 0, 0, resized.width, resized.height, width, height),
    width, height,
    validWidth: resized.width, validHeight: resized.height,
    originalWidth: img.width, originalHeight: img.height,
  };
}

/** Python's round() for floats: nearest integer, ties to even. */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v), frac = v - f;
  if (frac < 0.5) return f;
  if (frac > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The stage-ii input (METHOD.md §3.1): the original-resolution image, normalised, cropped to a COCO
 * box [x, y, w, h] as `t[:, round(y):round(y+h), round(x):round(x+w)]` (Python rounding, half to
 * even), then zero-padded bottom/right to a multiple of the patch size. Crop limits are clipped to
 * the image like a Python slice; a box with no pixels inside the image is an error.
 */
export function cropNormalized(
  img: RgbImage, box: readonly [number, number, number, number], multiple: number,
): PreprocessedImage {
  checkMultiple(multiple);
  const [bx, by, bw, bh] = box;
  if (![bx, by, bw, bh].every(Number.isFinite)) throw new MaskdistillError(`crop box [${box.join(", ")}] is not finite`);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  const x0 = clip(roundHalfEven(bx), img.width), x1 = clip(roundHalfEven(bx + bw), img.width);
  const y0 = clip(roundHalfEven(by), img.height), y1 = clip(roundHalfEven(by + bh), img.height);
  const w = x1 - x0, h = y1 - y0;
  if (w <= 0 || h <= 0) {
    throw new MaskdistillError(`crop box [${box.join(", ")}] selects no pixels of the ${img.width}×${img.height} image`);
  }
  const width = padSize(w, multiple), height = padSize(h, multiple);
  return {
    data: normaliseRegion(img, x0, y0, w, h, width, height),
    width, height, validWidth: w, validHeight: h, originalWidth: w, originalHeight: h,
  };
}
