// PIL-compatible resampling of 8-bit images, bit for bit (Pillow's Image.resize for modes L and RGB).
//
// Pillow resizes with a separable convolution: a horizontal pass, then a vertical pass. Each output
// pixel's weights come from the filter evaluated at the input pixel centres around the output pixel's
// centre mapped into the input; when shrinking, the filter is stretched by the scale factor
// (antialiasing). Weights are normalised to sum 1 in double precision, then turned into integers with
// 22 fractional bits; each pass accumulates in integers with a rounding half added and clips to
// 0..255. Every intermediate value is rounded to 8 bits between the two passes, so the order of the
// passes and the exact float expressions matter for bit-exactness. NEAREST is a different code path
// in Pillow (an affine scale that steps the source coordinate by repeated addition).
import { MaskdistillError } from "../errors.js";
import type { RgbImage } from "./image.js";

export type Filter = "nearest" | "bilinear" | "bicubic";

/** Fractional bits of the integer weights: 32 bits minus 8 for the pixel and 2 of headroom. */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

interface Kernel {
  /** Half-width of the filter at scale 1, in input pixels. */
  support: number;
  weight: (x: number) => number;
}

const BILINEAR: Kernel = {
  support: 1,
  weight: (x) => {
    if (x < 0) x = -x;
    return x < 1 ? 1 - x : 0;
  },
};

// Keys' cubic convolution with a = -0.5 (Catmull-Rom), the expressions grouped as Pillow groups them.
const A = -0.5;
const BICUBIC: Kernel = {
  support: 2,
  weight: (x) => {
    if (x < 0) x = -x;
    if (x < 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * A;
    return 0;
  },
};

/** Integer weights of one pass: output pixel i reads input pixels first[i] .. first[i]+count[i]-1. */
interface PassWeights {
  /** Weights per output pixel (row stride `taps`). */
  taps: number;
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
}

/** Weights mapping `inSize` pixels onto `outSize` pixels (Pillow's coefficient precomputation). */
function passWeights(inSize: number, outSize: number, kernel: Kernel): PassWeights {
  const scale = inSize / outSize;
  const filterScale = scale < 1 ? 1 : scale; // stretch the filter only when shrinking
  const support = kernel.support * filterScale;
  const taps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * taps);
  const real = new Float64Array(taps);
  const invFilterScale = 1 / filterScale;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    // Math.trunc: C's (int) conversion, which rounds toward zero
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    const n = hi - lo;
    let sum = 0;
    for (let k = 0; k < n; k++) {
      const w = kernel.weight((k + lo - center + 0.5) * invFilterScale);
      real[k] = w;
      sum += w;
    }
    for (let k = 0; k < n; k++) {
      const w = sum !== 0 ? real[k] / sum : real[k];
      // round half away from zero into fixed point
      weights[i * taps + k] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    first[i] = lo;
    count[i] = n;
  }
  return { taps, first, count, weights };
}

/** Fixed-point accumulator to 8 bits: drop the fraction (arithmetic shift) and clip. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over input rows rowStart .. rowStart+rows-1. */
function resampleRows(
  src: Uint8Array, width: number, channels: number, rowStart: number, rows: number, pass: PassWeights,
): Uint8Array {
  const outWidth = pass.first.length;
  const out = new Uint8Array(outWidth * rows * channels);
  const { taps, first, count, weights } = pass;
  const acc = new Float64Array(channels);
  for (let y = 0; y < rows; y++) {
    const rowBase = (y + rowStart) * width * channels;
    const outBase = y * outWidth * channels;
    for (let x = 0; x < outWidth; x++) {
      const n = count[x], wBase = x * taps;
      const inBase = rowBase + first[x] * channels;
      if (channels === 3) {
        let s0 = HALF, s1 = HALF, s2 = HALF;
        for (let k = 0; k < n; k++) {
          const w = weights[wBase + k], p = inBase + k * 3;
          s0 += src[p] * w;
          s1 += src[p + 1] * w;
          s2 += src[p + 2] * w;
        }
        const o = outBase + x * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      } else if (channels === 1) {
        let s = HALF;
        for (let k = 0; k < n; k++) s += src[inBase + k] * weights[wBase + k];
        out[outBase + x] = clip8(s);
      } else {
        acc.fill(HALF);
        for (let k = 0; k < n; k++) {
          const w = weights[wBase + k], p = inBase + k * channels;
          for (let c = 0; c < channels; c++) acc[c] += src[p + c] * w;
        }
        for (let c = 0; c < channels; c++) out[outBase + x * channels + c] = clip8(acc[c]);
      }
    }
  }
  return out;
}

/** Vertical pass; `rowOffset` is the first input row held in `src` (Pillow's bounding box of needed rows). */
function resampleColumns(
  src: Uint8Array, width: number, channels: number, rowOffset: number, pass: PassWeights,
): Uint8Array {
  const outHeight = pass.first.length;
  const rowLen = width * channels;
  const out = new Uint8Array(outHeight * rowLen);
  const { taps, first, count, weights } = pass;
  // accumulate whole rows (contiguous reads); the sums fit in 32 bits as in Pillow's int accumulator
  const acc = new Int32Array(rowLen);
  for (let y = 0; y < outHeight; y++) {
    const n = count[y], wBase = y * taps;
    const inBase = (first[y] - rowOffset) * rowLen;
    const outBase = y * rowLen;
    if (n === 2) {
      // the common case when enlarging with bilinear: one fused loop
      const w0 = weights[wBase], w1 = weights[wBase + 1], r1 = inBase + rowLen;
      for (let i = 0; i < rowLen; i++) out[outBase + i] = clip8(HALF + src[inBase + i] * w0 + src[r1 + i] * w1);
      continue;
    }
    acc.fill(HALF);
    for (let k = 0; k < n; k++) {
      const w = weights[wBase + k], rowBase = inBase + k * rowLen;
      if (w === 0) continue;
      for (let i = 0; i < rowLen; i++) acc[i] += src[rowBase + i] * w;
    }
    for (let i = 0; i < rowLen; i++) out[outBase + i] = clip8(acc[i]);
  }
  return out;
}

/**
 * Pillow's NEAREST: output pixel x samples input column floor(x0 + x·step) with step = in/out and
 * x0 = step/2, the position advanced by repeated addition exactly as Pillow does (it matters where
 * a position lands on an integer).
 */
function nearestIndices(inSize: number, outSize: number): Int32Array {
  const idx = new Int32Array(outSize);
  const step = inSize / outSize;
  let pos = step * 0.5;
  for (let i = 0; i < outSize; i++) {
    idx[i] = pos < 0 ? -1 : Math.trunc(pos);
    pos += step;
  }
  return idx;
}

function resizeNearest(
  src: Uint8Array, width: number, height: number, channels: number, outWidth: number, outHeight: number,
): Uint8Array {
  const xs = nearestIndices(width, outWidth), ys = nearestIndices(height, outHeight);
  const out = new Uint8Array(outWidth * outHeight * channels);
  for (let y = 0; y < outHeight; y++) {
    const rowBase = ys[y] * width * channels;
    let o = y * outWidth * channels;
    for (let x = 0; x < outWidth; x++) {
      const p = rowBase + xs[x] * channels;
      for (let c = 0; c < channels; c++) out[o++] = src[p + c];
    }
  }
  return out;
}

/** Throws unless `v` is a positive integer (an image dimension or channel count). */
export function checkSize(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new MaskdistillError(`resize: ${what} must be a positive integer, got ${v}`);
}

/**
 * Resizes interleaved 8-bit pixels (`channels` per pixel, row-major) like Pillow's `Image.resize`
 * with NEAREST, BILINEAR or BICUBIC — bit-exact for modes L (1 channel) and RGB (3 channels). Other
 * channel counts get the same per-channel arithmetic (Pillow's non-premultiplied modes).
 */
export function resizeU8(
  src: Uint8Array, width: number, height: number, channels: number,
  outWidth: number, outHeight: number, filter: Filter,
): Uint8Array {
  checkSize("width", width);
  checkSize("height", height);
  checkSize("channels", channels);
  checkSize("output width", outWidth);
  checkSize("output height", outHeight);
  if (src.length !== width * height * channels) {
    throw new MaskdistillError(`resize: expected ${width}×${height}×${channels} = ${width * height * channels} values, got ${src.length}`);
  }
  if (width === outWidth && height === outHeight) return Uint8Array.from(src); // Pillow copies
  if (filter === "nearest") return resizeNearest(src, width, height, channels, outWidth, outHeight);
  const kernel = filter === "bilinear" ? BILINEAR : filter === "bicubic" ? BICUBIC : undefined;
  if (!kernel) throw new MaskdistillError(`resize: unknown filter "${String(filter)}" (nearest, bilinear or bicubic)`);

  // Pillow skips the pass of an unchanged dimension, runs the horizontal pass first, and only on the
  // rows the vertical pass will read.
  const vertical = passWeights(height, outHeight, kernel);
  let img = src, rowOffset = 0, w = width;
  if (outWidth !== width) {
    const rowFirst = vertical.first[0];
    const rowEnd = vertical.first[outHeight - 1] + vertical.count[outHeight - 1];
    img = resampleRows(src, width, channels, rowFirst, rowEnd - rowFirst, passWeights(width, outWidth, kernel));
    rowOffset = rowFirst;
    w = outWidth;
  }
  if (outHeight !== height) img = resampleColumns(img, w, channels, rowOffset, vertical);
  return img;
}

/** Resizes an RGB image (PIL `Image.resize((w, h), filter)` on an RGB image). */
export function resizeImage(img: RgbImage, width: number, height: number, filter: Filter): RgbImage {
  return { width, height, data: resizeU8(img.data, img.width, img.height, 3, width, height, filter) };
}

/**
 * Output size of torchvision `Resize(shortSide)`: the shorter side becomes `shortSide`, the longer
 * one floor(shortSide·long/short) (aspect kept, rounded down). Returns [width, height]; equal to the
 * input when nothing needs resizing.
 */
export function shortSideSize(width: number, height: number, shortSide: number): [number, number] {
  checkSize("width", width);
  checkSize("height", height);
  checkSize("short side", shortSide);
  if (width <= height) {
    if (width === shortSide) return [width, height];
    return [shortSide, Math.floor((shortSide * height) / width)];
  }
  if (height === shortSide) return [width, height];
  return [Math.floor((shortSide * width) / height), shortSide];
}
