// 2-D convolution and its two gradients as GEMMs (NHWC, filter [kh, kw, Ci, Co]), for the
// onnxruntime GEMM provider (gemm.ts), which takes transposed operands for free:
//
//   forward       y = cols · W          cols [M, kh·kw·Ci] (im2col, zero in the padding), W as [kh·kw·Ci, Co]
//   filter grad   dW[t] = window_tᵀ · dy_t       one GEMM (transA) per tap t, straight into dW
//   input grad    dx[window_t] += dy_t · W[t]ᵀ   one GEMM (transB) per tap, scattered back
//
// where window_t / dy_t are x / dy over the rectangle of output positions for which tap t reads data
// (not padding): no product with padding is computed in the gradients. When most tap·position
// products of the forward conv read padding (DeepLab's ASPP at rates 12–36 on a 32² map), the
// forward conv is done per tap as well. Windows that are whole rows of a tensor are zero-copy views.
import * as tf from "@tensorflow/tfjs";
import { WasmBackend, alloc, aliasAt, release, reshaped, heapF32, elementIndex } from "./backend.js";
import { gemm } from "./gemm.js";

type Info = tf.backend_util.Conv2DInfo;

/** im2col rows in one chunk are limited to `colsBudget` floats (64 MB); the tests lower it to cover chunking. */
export const convGemmTuning = { colsBudget: 16 * 1024 * 1024 };
/** Below this share of useful tap·position products the forward conv runs per tap. */
const PER_TAP_BELOW = 0.75;

/** Output positions [o0, o1) of one axis whose input index o·stride + shift lies in [0, size). */
export function readingOutputs(size: number, outSize: number, stride: number, shift: number): [number, number] {
  const o0 = Math.min(outSize, Math.max(0, Math.ceil(-shift / stride)));
  const o1 = Math.max(o0, Math.min(outSize, Math.floor((size - 1 - shift) / stride) + 1));
  return [o0, o1];
}

/** Tap (i, j) of a conv: the input offset it reads at and the output rectangle where that is data. */
export interface Tap { t: number; shiftY: number; shiftX: number; oy0: number; oy1: number; ox0: number; ox1: number; count: number }

export function tapsOf(info: Info): Tap[] {
  const { batchSize: n, inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const taps: Tap[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const shiftY = i * dh - info.padInfo.top, shiftX = j * dw - info.padInfo.left;
      const [oy0, oy1] = readingOutputs(h, oh, sh, shiftY), [ox0, ox1] = readingOutputs(w, ow, sw, shiftX);
      taps.push({ t: i * kw + j, shiftY, shiftX, oy0, oy1, ox0, ox1, count: n * (oy1 - oy0) * (ox1 - ox0) });
    }
  }
  return taps;
}

const isPlainPointwise = (info: Info) =>
  info.filterHeight === 1 && info.filterWidth === 1 && info.strideHeight === 1 && info.strideWidth === 1 &&
  info.padInfo.top === 0 && info.padInfo.left === 0 && info.outHeight === info.inHeight && info.outWidth === info.inWidth;

/**
 * The rows of `src` [N, H, W, C] read by tap `tap` for its output rectangle, as a [Mt, C] matrix in
 * output order: a view when they are whole rows in one block, else a copy. `stride` and `shift`
 * map output to input positions (for dy itself: stride 1, shift 0).
 */
export function rectRows(b: WasmBackend, src: tf.TensorInfo, tap: Tap, sh: number, sw: number, shiftY: number, shiftX: number): tf.TensorInfo {
  const [n, h, w, c] = src.shape;
  const rh = tap.oy1 - tap.oy0, rw = tap.ox1 - tap.ox0;
  if (sw === 1 && rw === w && (sh === 1 || rh === 1) && (n === 1 || rh === h)) {
    return aliasAt(b, src, (tap.oy0 * sh + shiftY) * w * c, [n * rh * rw, c]);
  }
  const out = alloc(b, [n * rh * rw, c]);
  const hv = heapF32(b), xs = elementIndex(b, src);
  let dst = elementIndex(b, out);
  for (let in_ = 0; in_ < n; in_++) {
    for (let oy = tap.oy0; oy < tap.oy1; oy++) {
      const row = xs + ((in_ * h + oy * sh + shiftY) * w) * c;
      if (sw === 1) {
        const s = row + (tap.ox0 + shiftX) * c;
        hv.copyWithin(dst, s, s + rw * c);
        dst += rw * c;
      } else {
        for (let ox = tap.ox0; ox < tap.ox1; ox++, dst += c) {
          const s = row + (ox * sw + shiftX) * c;
          hv.copyWithin(dst, s, s + c);
        }
      }
    }
  }
  return out;
}

/** cols[m − m0, t·Ci + c] = x at tap t for output position m (zero in the padding), m0 ≤ m < m1. */
function im2col(b: WasmBackend, x: tf.TensorInfo, info: Info, m0: number, m1: number): tf.TensorInfo {
  const { inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const pt = info.padInfo.top, pl = info.padInfo.left;
  const k = kh * kw * ci;
  const cols = alloc(b, [m1 - m0, k]);
  const hv = heapF32(b), xs = elementIndex(b, x);
  let dst = elementIndex(b, cols);
  const rowRun = dw === 1 ? kw * ci : 0;   // undilated: a tap row inside the image is one block
  for (let m = m0; m < m1; m++) {
    const ox = m % ow, oy = Math.floor(m / ow) % oh, in_ = Math.floor(m / (ow * oh));
    const ix0 = ox * sw - pl;
    const whole = rowRun > 0 && ix0 >= 0 && ix0 + kw <= w;
    for (let i = 0; i < kh; i++, dst += kw * ci) {
      const iy = oy * sh + i * dh - pt;
      if (iy < 0 || iy >= h) { hv.fill(0, dst, dst + kw * ci); continue; }
      const row = xs + (in_ * h + iy) * w * ci;
      if (whole) { hv.copyWithin(dst, row + ix0 * ci, row + ix0 * ci + rowRun); continue; }
      for (let j = 0; j < kw; j++) {
        const ix = ix0 + j * dw, d = dst + j * ci;
        if (ix < 0 || ix >= w) hv.fill(0, d, d + ci);
        else hv.copyWithin(d, row + ix * ci, row + (ix + 1) * ci);
      }
    }
  }
  return cols;
}

/** Calls `use` with the im2col rows of output positions [m0, m1), chunk by chunk (bounded memory). */
function im2colChunks(b: WasmBackend, x: tf.TensorInfo, info: Info, use: (cols: tf.TensorInfo, m0: number, m1: number) => void): void {
  const m = info.batchSize * info.outHeight * info.outWidth, k = info.filterHeight * info.filterWidth * info.inChannels;
  const rows = Math.max(1, Math.min(m, Math.floor(convGemmTuning.colsBudget / k)));
  for (let m0 = 0; m0 < m; m0 += rows) {
    const m1 = Math.min(m, m0 + rows);
    const cols = im2col(b, x, info, m0, m1);
    use(cols, m0, m1);
    release(b, cols);
  }
}

/** Adds part [Mt, C] into dst [N, H', W', C] at the positions that tap's output rectangle maps to. */
function scatterAdd(b: WasmBackend, part: tf.TensorInfo, dst: tf.TensorInfo, tap: Tap, sh: number, sw: number, shiftY: number, shiftX: number): void {
  const [n, h, w, c] = dst.shape;
  const hv = heapF32(b), ps = elementIndex(b, part), ds = elementIndex(b, dst);
  const rw = tap.ox1 - tap.ox0;
  let src = ps;
  for (let in_ = 0; in_ < n; in_++) {
    for (let oy = tap.oy0; oy < tap.oy1; oy++) {
      const row = ds + ((in_ * h + oy * sh + shiftY) * w) * c;
      if (sw === 1) {
        const d = row + (tap.ox0 + shiftX) * c;
        for (let e = 0; e < rw * c; e++) hv[d + e] += hv[src + e];
        src += rw * c;
      } else {
        for (let ox = tap.ox0; ox < tap.ox1; ox++, src += c) {
          const d = row + (ox * sw + shiftX) * c;
          for (let e = 0; e < c; e++) hv[d + e] += hv[src + e];
        }
      }
    }
  }
}

function zeros(b: WasmBackend, shape: number[]): tf.TensorInfo {
  const t = alloc(b, shape);
  const s = elementIndex(b, t);
  heapF32(b).fill(0, s, s + shape.reduce((a, d) => a * d, 1));
  return t;
}

/** Share of the tap·position products of a conv that read data rather than padding. */
export function usefulShare(info: Info): number {
  const taps = tapsOf(info);
  return taps.reduce((s, t) => s + t.count, 0) / (taps.length * info.batchSize * info.outHeight * info.outWidth);
}

/** Whether the forward conv runs per tap: most of its tap·position products would read padding. */
export function mostlyPadding(info: Info): boolean {
  return usefulShare(info) < PER_TAP_BELOW;
}

/** y = conv(x, filter) as one GEMM per tap over the outputs where the tap reads data. */
export function convPerTap(b: WasmBackend, x: tf.TensorInfo, filter: tf.TensorInfo, info: Info): tf.TensorInfo {
  const { batchSize: n, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const y = zeros(b, [n, oh, ow, co]);
  for (const tap of tapsOf(info)) {
    if (tap.count === 0) continue;
    const win = rectRows(b, x, tap, info.strideHeight, info.strideWidth, tap.shiftY, tap.shiftX);
    const wt = aliasAt(b, filter, tap.t * ci * co, [ci, co]);
    const part = gemm(b, win, wt);                                    // [Mt, Co]
    release(b, wt, win);
    scatterAdd(b, part, y, tap, 1, 1, 0, 0);
    release(b, part);
  }
  return y;
}

/** y = conv(x, filter) for the geometry `info`. */
export function convForwardGemm(b: WasmBackend, x: tf.TensorInfo, filter: tf.TensorInfo, info: Info): tf.TensorInfo {
  const { batchSize: n, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co, filterHeight: kh, filterWidth: kw } = info;
  const m = n * oh * ow, k = kh * kw * ci;
  if (isPlainPointwise(info)) {
    const x2 = reshaped(b, x, [m, ci]), w2 = reshaped(b, filter, [ci, co]);
    const y = gemm(b, x2, w2);
    release(b, x2, w2);
    y.shape = [n, oh, ow, co];
    return y;
  }
  if (mostlyPadding(info)) return convPerTap(b, x, filter, info);
  const y = alloc(b, [n, oh, ow, co]);
  const w2 = reshaped(b, filter, [k, co]);
  im2colChunks(b, x, info, (cols, m0, m1) => {
    const out = aliasAt(b, y, m0 * co, [m1 - m0, co]);
    gemm(b, cols, w2, { out });
    release(b, out);
  });
  release(b, w2);
  return y;
}

/** dW [kh, kw, Ci, Co] for x [N,H,W,Ci] and dy [N,oh,ow,Co]. */
export function convFilterGradGemm(b: WasmBackend, x: tf.TensorInfo, dy: tf.TensorInfo, info: Info): tf.TensorInfo {
  const { batchSize: n, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co, filterHeight: kh, filterWidth: kw } = info;
  const dW = alloc(b, [kh, kw, ci, co]);
  if (isPlainPointwise(info)) {
    const m = n * oh * ow;
    const x2 = reshaped(b, x, [m, ci]), dy2 = reshaped(b, dy, [m, co]), out = reshaped(b, dW, [ci, co]);
    gemm(b, x2, dy2, { transA: true, out });
    release(b, x2, dy2, out);
    return dW;
  }
  if (usefulShare(info) >= PER_TAP_BELOW) {
    // dW as [kh·kw·Ci, Co] = colsᵀ · dy, summed over chunks of output positions.
    const dW2 = reshaped(b, dW, [kh * kw * ci, co]);
    im2colChunks(b, x, info, (cols, m0, m1) => {
      const dyc = aliasAt(b, dy, m0 * co, [m1 - m0, co]);
      if (m0 === 0) {
        gemm(b, cols, dyc, { transA: true, out: dW2 });
      } else {
        const part = gemm(b, cols, dyc, { transA: true });
        addInto(b, dW2, part);
        release(b, part);
      }
      release(b, dyc);
    });
    release(b, dW2);
    return dW;
  }
  for (const tap of tapsOf(info)) {
    const out = aliasAt(b, dW, tap.t * ci * co, [ci, co]);
    if (tap.count === 0) {
      heapF32(b).fill(0, elementIndex(b, out), elementIndex(b, out) + ci * co);
    } else {
      const win = rectRows(b, x, tap, info.strideHeight, info.strideWidth, tap.shiftY, tap.shiftX);   // [Mt, Ci]
      const dyt = rectRows(b, dy, tap, 1, 1, 0, 0);                                                   // [Mt, Co]
      gemm(b, win, dyt, { transA: true, out });
      release(b, win, dyt);
    }
    release(b, out);
  }
  return dW;
}

/** dst += src, elementwise over equal sizes. */
function addInto(b: WasmBackend, dst: tf.TensorInfo, src: tf.TensorInfo): void {
  const hv = heapF32(b), d = elementIndex(b, dst), s = elementIndex(b, src);
  const len = dst.shape.reduce((a, x) => a * x, 1);
  for (let e = 0; e < len; e++) hv[d + e] += hv[s + e];
}

/** dx [N,H,W,Ci] for dy [N,oh,ow,Co] and filter [kh,kw,Ci,Co]. */
export function convInputGradGemm(b: WasmBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, info: Info): tf.TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  if (isPlainPointwise(info)) {
    const m = n * oh * ow;
    const dy2 = reshaped(b, dy, [m, co]), w2 = reshaped(b, filter, [ci, co]);
    const dx = gemm(b, dy2, w2, { transB: true });
    release(b, dy2, w2);
    dx.shape = [n, h, w, ci];
    return dx;
  }
  const { filterHeight: kh, filterWidth: kw, dilationHeight: dh, dilationWidth: dw } = info;
  // Stride 1: dx = conv(dy, w′), w′ the filter flipped in space with channels swapped, padded so that
  // dx has the input's size. As a GEMM: dx = cols(dy) · Bᵀ, B [Ci, kh·kw·Co] = w′ in block order.
  const pads = [(kh - 1) * dh - info.padInfo.top, h - oh + info.padInfo.top, (kw - 1) * dw - info.padInfo.left, w - ow + info.padInfo.left];
  if (info.strideHeight === 1 && info.strideWidth === 1 && pads.every((p) => p >= 0)) {
    const flipped = tf.backend_util.computeConv2DInfo([n, oh, ow, co], [kh, kw, co, ci], [1, 1], [dh, dw],
      [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]]);
    if (flipped.outHeight === h && flipped.outWidth === w && usefulShare(flipped) >= PER_TAP_BELOW) {
      const k = kh * kw * co;
      const bt = alloc(b, [ci, k]);
      const hv = heapF32(b), ws = elementIndex(b, filter), bs = elementIndex(b, bt);
      for (let c = 0; c < ci; c++) {
        for (let t = 0; t < kh * kw; t++) {
          const src = ws + ((kh * kw - 1 - t) * ci + c) * co;    // tap (kh−1−i, kw−1−j) of w
          hv.copyWithin(bs + c * k + t * co, src, src + co);
        }
      }
      const dx = alloc(b, [n, h, w, ci]);
      im2colChunks(b, dy, flipped, (cols, m0, m1) => {
        const out = aliasAt(b, dx, m0 * ci, [m1 - m0, ci]);
        gemm(b, cols, bt, { transB: true, out });
        release(b, out);
      });
      release(b, bt);
      return dx;
    }
  }
  const dx = zeros(b, [n, h, w, ci]);
  for (const tap of tapsOf(info)) {
    if (tap.count === 0) continue;
    const dyt = rectRows(b, dy, tap, 1, 1, 0, 0);                      // [Mt, Co]
    const wt = aliasAt(b, filter, tap.t * ci * co, [ci, co]);
    const part = gemm(b, dyt, wt, { transB: true });                  // [Mt, Ci]
    release(b, wt, dyt);
    scatterAdd(b, part, dx, tap, info.strideHeight, info.strideWidth, tap.shiftY, tap.shiftX);
    release(b, part);
  }
  return dx;
}
