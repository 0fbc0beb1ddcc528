// OpenCV-exact resampling of 8-bit images and label maps: `cv2.resize`, `cv2.warpAffine`,
// `cv2.getRotationMatrix2D` and `cv2.flip` as OpenCV 4.6 (Debian's python3-opencv) computes them.
// The reference's stage v (segmentation/) resizes and warps with OpenCV, not PIL, and OpenCV's
// arithmetic differs from Pillow's (src/data/resize.ts) everywhere:
// - resize samples at ((x + 0.5)·scale − 0.5) without antialiasing (no filter stretching when
//   shrinking); the taps are clamped to the image (replicated border);
// - weights are float32 values rounded to 11-bit fixed point (INTER_RESIZE_COEF_BITS); the
//   horizontal pass keeps the 11-bit products in int. Bilinear's vertical pass takes the high 16
//   bits of products of 4-bit pre-shifted values (OpenCV's 8-bit specialisation). Bicubic's rounds
//   the 22-bit integer sum to 8 bits, except where OpenCV's SIMD code does it in float32 (the
//   leading multiple of 8 of each row's values, SSE2 lanes) — reproduced here element by element;
// - bilinear resize by exactly 2 on both axes is OpenCV's INTER_AREA (2×2 mean, rounded);
// - nearest takes source index floor(x · (1 / (outSize / inSize))) in double precision;
// - warpAffine inverts the matrix, steps the source position in 10-bit fixed point, quantises it
//   to 1/32 pixel (INTER_BITS = 5) and interpolates with 32×32 precomputed 2-D weight tables in
//   15-bit fixed point (INTER_REMAP_COEF_BITS), corrected to sum to 1 as OpenCV corrects them.
// Bicubic is Keys' kernel with a = −0.75 (Pillow uses −0.5).
import { MaskdistillError } from "../errors.js";
import type { RgbImage } from "./image.js";
import type { LabelMap } from "./png.js";
import { roundHalfEven } from "./preprocess.js";
import { checkSize, type Filter } from "./resize.js";

/** OpenCV's INTER_RESIZE_COEF_BITS: resize weights in 11-bit fixed point. */
const RESIZE_COEF_SCALE = 2048;
/** OpenCV's INTER_BITS / INTER_TAB_SIZE: warp positions quantised to 1/32 pixel. */
const INTER_BITS = 5;
const INTER_TAB_SIZE = 1 << INTER_BITS;
/** OpenCV's INTER_REMAP_COEF_BITS: warp weights in 15-bit fixed point. */
const REMAP_COEF_BITS = 15;
const REMAP_COEF_SCALE = 1 << REMAP_COEF_BITS;
/** warpAffine's AB_BITS: source positions stepped in 10-bit fixed point. */
const AB_BITS = 10;
const AB_SCALE = 1 << AB_BITS;
/** int16 lanes of OpenCV's baseline (SSE2, 128-bit) SIMD: the bicubic vertical pass's step. */
const SIMD_LANES = 8;

const f32 = Math.fround;

function checkPixels(op: string, src: Uint8Array, width: number, height: number, channels: number): void {
  checkSize("width", width);
  checkSize("height", height);
  checkSize("channels", channels);
  if (src.length !== width * height * channels) {
    throw new MaskdistillError(`${op}: expected ${width}×${height}×${channels} = ${width * height * channels} values, got ${src.length}`);
  }
}

function clamp8(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** OpenCV's cvRound / saturate_cast<int> of a float or double: nearest, ties to even. */
const cvRound = roundHalfEven;

/** OpenCV's interpolateCubic (a = −0.75), every operation rounded to float32 as the C++ float code is. */
function cubicCoeffs(x: number, out: Float64Array | Float32Array, at = 0): void {
  const A = -0.75;
  const x1 = f32(x + 1);
  const c0 = f32(f32(f32(f32(f32(f32(A * x1) - 5 * A) * x1) + 8 * A) * x1) - 4 * A);
  const c1 = f32(f32(f32(f32(f32(1.25 * x) - 2.25) * x) * x) + 1);
  const t = f32(1 - x);
  const c2 = f32(f32(f32(f32(f32(1.25 * t) - 2.25) * t) * t) + 1);
  out[at] = c0;
  out[at + 1] = c1;
  out[at + 2] = c2;
  out[at + 3] = f32(f32(f32(1 - c0) - c1) - c2);
}

// ------------------------------------------------------------------------------------------------
// cv2.resize
// ------------------------------------------------------------------------------------------------

/** INTER_NEAREST source indices: min(floor(i · (1 / (out / in))), in − 1). */
function nearestIndices(inSize: number, outSize: number): Int32Array {
  const inv = 1 / (outSize / inSize);
  const idx = new Int32Array(outSize);
  for (let i = 0; i < outSize; i++) idx[i] = Math.min(Math.floor(i * inv), inSize - 1);
  return idx;
}

function resizeNearest(src: Uint8Array, w: number, h: number, cn: number, ow: number, oh: number): Uint8Array {
  const xs = nearestIndices(w, ow), ys = nearestIndices(h, oh);
  const out = new Uint8Array(ow * oh * cn);
  let o = 0;
  for (let y = 0; y < oh; y++) {
    const row = ys[y] * w * cn;
    for (let x = 0; x < ow; x++) {
      const p = row + xs[x] * cn;
      for (let c = 0; c < cn; c++) out[o++] = src[p + c];
    }
  }
  return out;
}

/** OpenCV's INTER_AREA for an exact factor 2 on both axes: the rounded mean of each 2×2 block. */
function resizeHalf(src: Uint8Array, w: number, cn: number, ow: number, oh: number): Uint8Array {
  const out = new Uint8Array(ow * oh * cn);
  const stride = w * cn;
  let o = 0;
  for (let y = 0; y < oh; y++) {
    const r0 = 2 * y * stride, r1 = r0 + stride;
    for (let x = 0; x < ow; x++) {
      const p = 2 * x * cn;
      for (let c = 0; c < cn; c++, o++) {
        out[o] = (src[r0 + p + c] + src[r0 + p + cn + c] + src[r1 + p + c] + src[r1 + p + cn + c] + 2) >> 2;
      }
    }
  }
  return out;
}

/** Taps of one resize axis: source index of the first tap and fixed-point weights per output index. */
interface AxisTaps {
  ksize: number;
  first: Int32Array;
  weights: Int32Array;
}

/**
 * OpenCV's coefficient setup of one axis (resizeGeneric): the source position in double, cast to
 * float, split into floor and fraction; bilinear clamps positions left of the first / right of the
 * last pixel to that pixel, bicubic keeps them (its taps are clamped later).
 */
function axisTaps(inSize: number, outSize: number, cubic: boolean, clampLinear: boolean): AxisTaps {
  const ksize = cubic ? 4 : 2;
  const scale = 1 / (outSize / inSize);
  const first = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const cbuf = new Float64Array(4);
  for (let d = 0; d < outSize; d++) {
    let fx = f32((d + 0.5) * scale - 0.5);
    let sx = Math.floor(fx);
    fx = f32(fx - sx);
    if (!cubic && clampLinear) {
      if (sx < 0) { fx = 0; sx = 0; }
      if (sx >= inSize - 1) { fx = 0; sx = inSize - 1; }
    }
    if (cubic) cubicCoeffs(fx, cbuf);
    else { cbuf[0] = f32(1 - fx); cbuf[1] = fx; }
    first[d] = cubic ? sx - 1 : sx;
    for (let k = 0; k < ksize; k++) weights[d * ksize + k] = cvRound(cbuf[k] * RESIZE_COEF_SCALE);
  }
  return { ksize, first, weights };
}

/** Pixel offsets (index · channels) of every tap of every output column, clamped to the row. */
function tapOffsets(taps: AxisTaps, inSize: number, cn: number): Int32Array {
  const { ksize, first } = taps;
  const offs = new Int32Array(first.length * ksize);
  for (let x = 0; x < first.length; x++) {
    for (let k = 0; k < ksize; k++) {
      const sx = first[x] + k;
      offs[x * ksize + k] = (sx < 0 ? 0 : sx >= inSize ? inSize - 1 : sx) * cn;
    }
  }
  return offs;
}

/** Horizontal pass of one source row into 11-bit fixed point (integer sums, exact in a double). */
function horizontalPass(src: Uint8Array, rowBase: number, cn: number, taps: AxisTaps, offs: Int32Array, out: Float64Array): void {
  const { ksize, weights } = taps;
  const ow = taps.first.length;
  for (let x = 0, t = 0; x < ow; x++, t += ksize) {
    for (let c = 0; c < cn; c++) {
      const p = rowBase + c;
      let acc = src[p + offs[t]] * weights[t] + src[p + offs[t + 1]] * weights[t + 1];
      if (ksize === 4) acc += src[p + offs[t + 2]] * weights[t + 2] + src[p + offs[t + 3]] * weights[t + 3];
      out[x * cn + c] = acc;
    }
  }
}

function resizeSeparable(
  src: Uint8Array, w: number, h: number, cn: number, ow: number, oh: number, cubic: boolean,
): Uint8Array {
  const hTaps = axisTaps(w, ow, cubic, true);
  const vTaps = axisTaps(h, oh, cubic, false);
  const rowLen = ow * cn;
  // every source row's horizontal pass, computed once
  const offs = tapOffsets(hTaps, w, cn);
  const rows: Float64Array[] = [];
  for (let y = 0; y < h; y++) {
    const r = new Float64Array(rowLen);
    horizontalPass(src, y * w * cn, cn, hTaps, offs, r);
    rows.push(r);
  }
  const out = new Uint8Array(oh * rowLen);
  const ks = vTaps.ksize;
  const S: Float64Array[] = new Array(ks);
  const beta = new Int32Array(ks);
  for (let y = 0; y < oh; y++) {
    for (let k = 0; k < ks; k++) {
      let sy = vTaps.first[y] + k;
      sy = sy < 0 ? 0 : sy >= h ? h - 1 : sy;
      S[k] = rows[sy];
      beta[k] = vTaps.weights[y * ks + k];
    }
    const o = y * rowLen;
    if (cubic) {
      // SIMD part: float32, S0·b0 + (S1·b1 + (S2·b2 + S3·b3)), rounded half to even
      const b0 = beta[0] / 4194304, b1 = beta[1] / 4194304, b2 = beta[2] / 4194304, b3 = beta[3] / 4194304;
      const [S0, S1, S2, S3] = S;
      const simd = rowLen - (rowLen % SIMD_LANES);
      for (let x = 0; x < simd; x++) {
        const t3 = f32(S3[x] * b3);
        const t2 = f32(f32(S2[x] * b2) + t3);
        const t1 = f32(f32(S1[x] * b1) + t2);
        const t0 = f32(f32(S0[x] * b0) + t1);
        out[o + x] = clamp8(cvRound(t0));
      }
      for (let x = simd; x < rowLen; x++) {
        const acc = S0[x] * beta[0] + S1[x] * beta[1] + S2[x] * beta[2] + S3[x] * beta[3];
        out[o + x] = clamp8(Math.floor((acc + 2097152) / 4194304));
      }
    } else {
      // OpenCV's 8-bit bilinear specialisation (SIMD and scalar alike): high 16 bits of the products
      // of the 4-bit pre-shifted rows, then (sum + 2) >> 2
      const [S0, S1] = S;
      const b0 = beta[0], b1 = beta[1];
      for (let x = 0; x < rowLen; x++) {
        out[o + x] = (Math.floor(((S0[x] >> 4) * b0) / 65536) + Math.floor(((S1[x] >> 4) * b1) / 65536) + 2) >> 2;
      }
    }
  }
  return out;
}

/**
 * `cv2.resize(src, (outWidth, outHeight), interpolation=…)` on interleaved 8-bit pixels
 * (`channels` per pixel, row-major): "nearest" = INTER_NEAREST, "bilinear" = INTER_LINEAR,
 * "bicubic" = INTER_CUBIC. Bit-exact with OpenCV 4.6 for 1 and 3 channels (see the module comment).
 */
export function cvResizeU8(
  src: Uint8Array, width: number, height: number, channels: number,
  outWidth: number, outHeight: number, filter: Filter,
): Uint8Array {
  checkPixels("cv resize", src, width, height, channels);
  checkSize("output width", outWidth);
  checkSize("output height", outHeight);
  if (width === outWidth && height === outHeight) return Uint8Array.from(src); // OpenCV copies
  if (filter === "nearest") return resizeNearest(src, width, height, channels, outWidth, outHeight);
  if (filter === "bilinear") {
    if (width === 2 * outWidth && height === 2 * outHeight) return resizeHalf(src, width, channels, outWidth, outHeight);
    return resizeSeparable(src, width, height, channels, outWidth, outHeight, false);
  }
  if (filter === "bicubic") return resizeSeparable(src, width, height, channels, outWidth, outHeight, true);
  throw new MaskdistillError(`cv resize: unknown filter "${String(filter)}" (nearest, bilinear or bicubic)`);
}

/** `cv2.resize` of an RGB image. */
export function cvResizeImage(img: RgbImage, width: number, height: number, filter: Filter): RgbImage {
  return { width, height, data: cvResizeU8(img.data, img.width, img.height, 3, width, height, filter) };
}

/** `cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)`: class ids are never blended. */
export function cvResizeLabel(label: LabelMap, width: number, height: number): LabelMap {
  return { width, height, data: cvResizeU8(label.data, label.width, label.height, 1, width, height, "nearest") };
}

// ------------------------------------------------------------------------------------------------
// cv2.flip, cv2.getRotationMatrix2D, cv2.warpAffine
// ------------------------------------------------------------------------------------------------

/** `cv2.flip(src, 1)`: mirror left–right. */
export function cvFlipHorizontalU8(src: Uint8Array, width: number, height: number, channels: number): Uint8Array {
  checkPixels("cv flip", src, width, height, channels);
  const out = new Uint8Array(src.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    for (let x = 0; x < width; x++) {
      const s = row + x * channels, d = row + (width - 1 - x) * channels;
      for (let c = 0; c < channels; c++) out[d + c] = src[s + c];
    }
  }
  return out;
}

// Correctly rounded sine and cosine. OpenCV calls glibc's, which round correctly in practice;
// V8's Math.sin / Math.cos are off by one ulp now and then (3 of 300 fixture angles), which would
// shift the matrix. Evaluated in double-double arithmetic (~106 bits), then rounded once.
type DD = [number, number];
function twoSum(a: number, b: number): DD {
  const s = a + b, bb = s - a;
  return [s, (a - (s - bb)) + (b - bb)];
}
function quickTwoSum(a: number, b: number): DD {
  const s = a + b;
  return [s, b - (s - a)];
}
function split(a: number): DD {
  const c = 134217729 * a, hi = c - (c - a);
  return [hi, a - hi];
}
function twoProd(a: number, b: number): DD {
  const p = a * b, [ah, al] = split(a), [bh, bl] = split(b);
  return [p, ((ah * bh - p) + ah * bl + al * bh) + al * bl];
}
function ddAdd(a: DD, b: DD): DD {
  const [s, e] = twoSum(a[0], b[0]);
  return quickTwoSum(s, e + a[1] + b[1]);
}
function ddMul(a: DD, b: DD): DD {
  const [p, e] = twoProd(a[0], b[0]);
  return quickTwoSum(p, e + a[0] * b[1] + a[1] * b[0]);
}
function ddDivNumber(a: DD, b: number): DD {
  const q = a[0] / b, [p, e] = twoProd(q, b);
  return quickTwoSum(q, (a[0] - p - e + a[1]) / b);
}
/** π/2 as three doubles (Cody–Waite style reduction). */
const HALF_PI: readonly number[] = [1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33];

/** [sin x, cos x], each the double nearest the exact value. */
function sinCos(x: number): [number, number] {
  if (!Number.isFinite(x)) return [NaN, NaN];
  const k = Math.round(x / HALF_PI[0]);
  let r: DD = [x, 0];
  for (const part of HALF_PI) r = ddAdd(r, twoProd(-k, part));
  const r2 = ddMul(r, r);
  // Taylor series of sin and cos about 0, |r| ≤ π/4 (plus rounding): terms fall below 1e-33 by n = 30
  let sTerm: DD = r, sSum: DD = r, cTerm: DD = [1, 0], cSum: DD = [1, 0];
  for (let n = 1; n <= 15; n++) {
    sTerm = ddDivNumber(ddMul(sTerm, r2), -(2 * n) * (2 * n + 1));
    cTerm = ddDivNumber(ddMul(cTerm, r2), -(2 * n - 1) * (2 * n));
    sSum = ddAdd(sSum, sTerm);
    cSum = ddAdd(cSum, cTerm);
  }
  const s = sSum[0] + sSum[1], c = cSum[0] + cSum[1];
  switch (((k % 4) + 4) % 4) {
    case 0: return [s, c];
    case 1: return [c, -s];
    case 2: return [-s, -c];
    default: return [-c, s];
  }
}

/** A 2×3 affine matrix [a, b, c, d, e, f] mapping source (x, y) to (a·x + b·y + c, d·x + e·y + f). */
export type AffineMatrix = [number, number, number, number, number, number];

/**
 * `cv2.getRotationMatrix2D(center, angle, scale)`: rotation by `angleDeg` degrees counter-clockwise
 * (as displayed, y down) about the centre, with isotropic scaling. The centre is a float32 Point2f
 * in OpenCV, so it is rounded to float32 here too.
 */
export function cvRotationMatrix2D(centerX: number, centerY: number, angleDeg: number, scale: number): AffineMatrix {
  const angle = angleDeg * (Math.PI / 180);
  const [sin, cos] = sinCos(angle);
  const alpha = cos * scale, beta = sin * scale;
  const cx = f32(centerX), cy = f32(centerY);
  return [alpha, beta, (1 - alpha) * cx - beta * cy, -beta, alpha, beta * cx + (1 - alpha) * cy];
}

/** warpAffine's inversion of the forward matrix (destination → source), in OpenCV's operation order. */
function invertAffine(m: AffineMatrix): AffineMatrix {
  let [m0, m1, m2, m3, m4, m5] = m;
  let det = m0 * m4 - m1 * m3;
  det = det !== 0 ? 1 / det : 0;
  const a11 = m4 * det, a22 = m0 * det;
  m0 = a11; m1 *= -det;
  m3 *= -det; m4 = a22;
  const b1 = -m0 * m2 - m1 * m5;
  const b2 = -m3 * m2 - m4 * m5;
  return [m0, m1, b1, m3, m4, b2];
}

/**
 * OpenCV's 2-D interpolation weight table (initInterTab2D) for 1/32-pixel fractional positions:
 * products of the 1-D weights in float32, rounded to 15-bit fixed point, then one weight nudged so
 * each entry sums to exactly 1 — searching only entries [k/2, k/2+1]², and for bilinear (k = 2)
 * that search reads past the 2×2 entry into the not-yet-filled (zero) next one, as OpenCV does.
 */
function interTab2D(cubic: boolean): Int32Array {
  const ksize = cubic ? 4 : 2, kk = ksize * ksize;
  const n = INTER_TAB_SIZE * INTER_TAB_SIZE;
  const tab1 = new Float64Array(INTER_TAB_SIZE * ksize);
  const step = f32(1 / INTER_TAB_SIZE);
  for (let i = 0; i < INTER_TAB_SIZE; i++) {
    const x = f32(i * step);
    if (cubic) cubicCoeffs(x, tab1, i * 4);
    else { tab1[i * 2] = f32(1 - x); tab1[i * 2 + 1] = x; }
  }
  const itab = new Int32Array((n + 1) * kk); // one spare zero entry for the search past the end
  const sat16 = (v: number) => (v < -32768 ? -32768 : v > 32767 ? 32767 : v);
  for (let i = 0; i < INTER_TAB_SIZE; i++) {
    for (let j = 0; j < INTER_TAB_SIZE; j++) {
      const base = (i * INTER_TAB_SIZE + j) * kk;
      let isum = 0;
      for (let k1 = 0; k1 < ksize; k1++) {
        const vy = tab1[i * ksize + k1];
        for (let k2 = 0; k2 < ksize; k2++) {
          const v = f32(vy * tab1[j * ksize + k2]);
          const q = sat16(cvRound(v * REMAP_COEF_SCALE));
          itab[base + k1 * ksize + k2] = q;
          isum += q;
        }
      }
      if (isum !== REMAP_COEF_SCALE) {
        const diff = isum - REMAP_COEF_SCALE;
        const k2h = ksize >> 1;
        let Mk1 = k2h, Mk2 = k2h, mk1 = k2h, mk2 = k2h;
        for (let k1 = k2h; k1 < k2h + 2; k1++) {
          for (let k2 = k2h; k2 < k2h + 2; k2++) {
            const v = itab[base + k1 * ksize + k2];
            if (v < itab[base + mk1 * ksize + mk2]) { mk1 = k1; mk2 = k2; }
            else if (v > itab[base + Mk1 * ksize + Mk2]) { Mk1 = k1; Mk2 = k2; }
          }
        }
        // (short) casts: a weight of 32768 wraps to −32768 in OpenCV's int16 table
        const wrap16 = (v: number) => ((v + 32768) & 0xffff) - 32768;
        if (diff < 0) itab[base + Mk1 * ksize + Mk2] = wrap16(itab[base + Mk1 * ksize + Mk2] - diff);
        else itab[base + mk1 * ksize + mk2] = wrap16(itab[base + mk1 * ksize + mk2] - diff);
      }
    }
  }
  return itab.subarray(0, n * kk);
}

let bilinearTab: Int32Array | undefined;
let bicubicTab: Int32Array | undefined;

/**
 * `cv2.warpAffine(src, M, (outWidth, outHeight), flags=…, borderMode=BORDER_CONSTANT,
 * borderValue=borderValue)` with the forward matrix M (no WARP_INVERSE_MAP): "nearest",
 * "bilinear" or "bicubic" (INTER_NEAREST / INTER_LINEAR / INTER_CUBIC). Destination pixels whose
 * taps fall outside the source take `borderValue` for those taps.
 */
export function cvWarpAffineU8(
  src: Uint8Array, width: number, height: number, channels: number, matrix: AffineMatrix,
  outWidth: number, outHeight: number, filter: Filter, borderValue = 0,
): Uint8Array {
  checkPixels("cv warpAffine", src, width, height, channels);
  checkSize("output width", outWidth);
  checkSize("output height", outHeight);
  if (matrix.length !== 6 || !matrix.every(Number.isFinite)) {
    throw new MaskdistillError(`cv warpAffine: the matrix must be 6 finite numbers, got [${matrix.join(", ")}]`);
  }
  if (filter !== "nearest" && filter !== "bilinear" && filter !== "bicubic") {
    throw new MaskdistillError(`cv warpAffine: unknown filter "${String(filter)}" (nearest, bilinear or bicubic)`);
  }
  const cval = clamp8(Math.round(borderValue));
  const M = invertAffine(matrix);
  const nearest = filter === "nearest";
  const sat32 = (v: number) => (v < -2147483648 ? -2147483648 : v > 2147483647 ? 2147483647 : v);
  const sat16 = (v: number) => (v < -32768 ? -32768 : v > 32767 ? 32767 : v);
  const adelta = new Int32Array(outWidth), bdelta = new Int32Array(outWidth);
  for (let x = 0; x < outWidth; x++) {
    adelta[x] = sat32(cvRound(M[0] * x * AB_SCALE));
    bdelta[x] = sat32(cvRound(M[3] * x * AB_SCALE));
  }
  const roundDelta = nearest ? AB_SCALE / 2 : AB_SCALE / INTER_TAB_SIZE / 2;
  const cubic = filter === "bicubic";
  const tab: Int32Array = nearest ? new Int32Array(0) : cubic ? (bicubicTab ??= interTab2D(true)) : (bilinearTab ??= interTab2D(false));
  const ksize = cubic ? 4 : 2, kk = ksize * ksize, k0 = cubic ? -1 : 0;
  const out = new Uint8Array(outWidth * outHeight * channels);
  const xi = new Int32Array(ksize), yi = new Int32Array(ksize);
  const stride = width * channels;
  let o = 0;
  for (let y = 0; y < outHeight; y++) {
    const X0 = sat32(cvRound((M[1] * y + M[2]) * AB_SCALE)) + roundDelta;
    const Y0 = sat32(cvRound((M[4] * y + M[5]) * AB_SCALE)) + roundDelta;
    for (let x = 0; x < outWidth; x++, o += channels) {
      if (nearest) {
        const sx = sat16((X0 + adelta[x]) >> AB_BITS), sy = sat16((Y0 + bdelta[x]) >> AB_BITS);
        if (sx >= 0 && sx < width && sy >= 0 && sy < height) {
          const p = (sy * width + sx) * channels;
          for (let c = 0; c < channels; c++) out[o + c] = src[p + c];
        } else {
          for (let c = 0; c < channels; c++) out[o + c] = cval;
        }
        continue;
      }
      const X = (X0 + adelta[x]) >> (AB_BITS - INTER_BITS), Y = (Y0 + bdelta[x]) >> (AB_BITS - INTER_BITS);
      const sx = sat16(X >> INTER_BITS) + k0, sy = sat16(Y >> INTER_BITS) + k0;
      const wBase = ((Y & (INTER_TAB_SIZE - 1)) * INTER_TAB_SIZE + (X & (INTER_TAB_SIZE - 1))) * kk;
      if (sx >= 0 && sx + ksize <= width && sy >= 0 && sy + ksize <= height) {
        // every tap inside the source
        const base = (sy * width + sx) * channels;
        for (let c = 0; c < channels; c++) {
          let p = base + c, t = wBase, sum = 0;
          if (cubic) {
            for (let ky = 0; ky < 4; ky++, p += stride, t += 4) {
              sum += src[p] * tab[t] + src[p + channels] * tab[t + 1] + src[p + 2 * channels] * tab[t + 2] + src[p + 3 * channels] * tab[t + 3];
            }
          } else {
            sum = src[p] * tab[t] + src[p + channels] * tab[t + 1] + src[p + stride] * tab[t + 2] + src[p + stride + channels] * tab[t + 3];
          }
          out[o + c] = clamp8((sum + (1 << (REMAP_COEF_BITS - 1))) >> REMAP_COEF_BITS);
        }
        continue;
      }
      if (sx >= width || sx + ksize <= 0 || sy >= height || sy + ksize <= 0) {
        for (let c = 0; c < channels; c++) out[o + c] = cval;
        continue;
      }
      // taps outside the source read the border value: cval·ONE + Σ (S − cval)·w over inside taps
      // equals Σ S·w over all taps with outside S = cval, since the weights sum to ONE
      for (let k = 0; k < ksize; k++) {
        const tx = sx + k, ty = sy + k;
        xi[k] = tx >= 0 && tx < width ? tx : -1;
        yi[k] = ty >= 0 && ty < height ? ty : -1;
      }
      for (let c = 0; c < channels; c++) {
        let sum = 0;
        for (let ky = 0; ky < ksize; ky++) {
          const ry = yi[ky];
          for (let kx = 0; kx < ksize; kx++) {
            const rx = xi[kx];
            const v = ry >= 0 && rx >= 0 ? src[(ry * width + rx) * channels + c] : cval;
            sum += v * tab[wBase + ky * ksize + kx];
          }
        }
        out[o + c] = clamp8((sum + (1 << (REMAP_COEF_BITS - 1))) >> REMAP_COEF_BITS);
      }
    }
  }
  return out;
}
