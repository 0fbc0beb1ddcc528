// 2-D convolution kernels for wasm (NHWC, filter [kh, kw, Cin, Cout]): the two gradients, with
// strides, any padding and dilation, and a Conv2D that skips filter taps reading only padding; all
// built on the stock XNNPACK Conv2D and BatchMatMul.
//
// Forward: y[n, oy, ox, co] = Σ_{i, j, ci} x[n, oy·sh + i·dh − pt, ox·sw + j·dw − pl, ci] · w[i, j, ci, co].
//
// Filter gradient (tfjs-wasm 4.22 has none): for each tap t = (i, j), dW[i, j] = window_t(x)ᵀ · dy
//   over the rectangle of output positions where tap t reads data (not padding): we copy that window
//   of x [Mt, Ci] (with stride 1 each output row is one block copy) and run dW[t]ᵀ = dyᵀ · window_t
//   as an XNNPACK GEMM without transpose flags (the stock kernel takes a naive path for flags or
//   batches), then transpose the small [Co, Ci] result into place. With few input channels, one
//   GEMM over a row-layout im2col.
//
// Input gradient (the stock kernel is naive C++, ~10× slower than a forward conv; and it has no
//   dilation): dx = conv(z, w′, stride 1, dilation d) where w′[i, j, co, ci] = w[kh−1−i, kw−1−j, ci, co]
//   and z is dy with (s−1) zeros inserted between samples, padded by (k−1)·d − p before. For stride 1
//   the padding is passed to the conv and no copy of dy is made; for 1×1 filters dx is one GEMM; for
//   strides > 1 (undilated) dx is split into stride² phases, each a stride-1 conv (no zero insertion).
import * as tf from "@tensorflow/tfjs";
import {
  WasmBackend, KernelArgs, alloc, release, reshaped, runStock, heapView, heapF32, elementIndex,
} from "./backend.js";
import { transposeHeap, transposeInto, sliceHeap } from "./layout.js";
import { gemm, gemmProvider } from "./gemm.js";
import { tapsOf, rectRows, usefulShare, convPerTap, convForwardGemm, convFilterGradGemm, convInputGradGemm } from "./convGemm.js";
import { useOrtConv, convForwardOrt } from "./convOrt.js";

/** Largest im2col chunk, in floats (64 MB). */
const COLS_BUDGET = 16 * 1024 * 1024;

/** Attributes of Conv2D and its gradients (the part the geometry needs). */
export type ConvAttrs = {
  strides: number | [number, number];
  pad: "same" | "valid" | number | tf.backend_util.ExplicitPadding;
  dilations?: number | [number, number];
  dimRoundingMode?: "floor" | "round" | "ceil";
  dataFormat?: "NHWC" | "NCHW";
};

export function convGeometry(xShape: number[], filterShape: number[], attrs: ConvAttrs): tf.backend_util.Conv2DInfo {
  if (attrs.dataFormat === "NCHW") throw new Error("the engine's conv kernels support NHWC only");
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    attrs.strides, attrs.dilations ?? 1, attrs.pad, attrs.dimRoundingMode);
}

/** Below this many input channels the filter gradient uses row-layout im2col (see below). */
const SMALL_CI = 32;

/** cols[m, (t − t0)·Ci + c] = x at tap t for output position m (zero in the padding). */
function im2colRows(b: WasmBackend, x: tf.TensorInfo, info: tf.backend_util.Conv2DInfo, t0: number, nt: number): tf.TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow } = info;
  const { filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const pt = info.padInfo.top, pl = info.padInfo.left;
  const k = nt * ci;
  const cols = alloc(b, [n * oh * ow, k]);
  const hv = heapF32(b);
  const xs = elementIndex(b, x);
  let dst = elementIndex(b, cols);
  for (let in_ = 0; in_ < n; in_++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        for (let t = t0; t < t0 + nt; t++, dst += ci) {
          const iy = oy * sh - pt + Math.floor(t / kw) * dh;
          const ix = ox * sw - pl + (t % kw) * dw;
          if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
            for (let c = 0; c < ci; c++) hv[dst + c] = 0;
          } else {
            const src = xs + ((in_ * h + iy) * w + ix) * ci;
            for (let c = 0; c < ci; c++) hv[dst + c] = hv[src + c];
          }
        }
      }
    }
  }
  return cols;
}

/** dW for x [N,H,W,Ci] and dy [N,oh,ow,Co]. */
export function convFilterGrad(b: WasmBackend, x: tf.TensorInfo, dy: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const pt = info.padInfo.top, pl = info.padInfo.left;
  checkShape(dy.shape, [n, oh, ow, co], "dy");
  const m = n * oh * ow;
  const out = alloc(b, [kh, kw, ci, co]);
  const dy2 = reshaped(b, dy, [m, co]);
  const dyT = transposeHeap(b, dy2, [1, 0]);                      // [Co, M]
  release(b, dy2);

  const identityWindow = kh === 1 && kw === 1 && sh === 1 && sw === 1 && pt === 0 && pl === 0 && oh === h && ow === w;
  if (identityWindow) {
    // dWᵀ = dyᵀ · x
    const x2 = reshaped(b, x, [m, ci]);
    const gT = gemm(b, dyT, x2);                               // [Co, Ci]
    transposeInto(heapView(b, "float32"), elementIndex(b, gT), elementIndex(b, out), [co, ci], [1, 0]);
    release(b, gT, x2, dyT);
    return out;
  }

  const taps = kh * kw;
  if (ci < SMALL_CI) {
    // Few input channels (an RGB stem, a patch embedding): one im2col GEMM per chunk is far
    // cheaper than many thin ones. cols[m, (t, c)], dW[t0…]ᵀ = dyᵀ · cols.
    const tapsPerChunk = Math.max(1, Math.min(taps, Math.floor(COLS_BUDGET / (m * ci))));
    for (let t0 = 0; t0 < taps; t0 += tapsPerChunk) {
      const nt = Math.min(tapsPerChunk, taps - t0);
      const cols = im2colRows(b, x, info, t0, nt);
      const gT = gemm(b, dyT, cols);                           // [Co, nt·Ci]
      transposeInto(heapView(b, "float32"), elementIndex(b, gT), elementIndex(b, out) + t0 * ci * co, [co, nt * ci], [1, 0]);
      release(b, gT, cols);
    }
    release(b, dyT);
    return out;
  }
  // One GEMM per tap over the output positions where the tap reads data (a rectangle): no products
  // with padding, which matters for dilated convs on small maps (ASPP).
  for (const tap of tapsOf(info)) {
    if (tap.count === 0) {
      const os = elementIndex(b, out) + tap.t * ci * co;
      heapF32(b).fill(0, os, os + ci * co);
      continue;
    }
    const win = rectRows(b, x, tap, sh, sw, tap.shiftY, tap.shiftX);   // window_t(x) [Mt, Ci]
    let dyTt = dyT;
    if (tap.count !== m) {
      const dyCrop = rectRows(b, dy, tap, 1, 1, 0, 0);                  // [Mt, Co]
      dyTt = transposeHeap(b, dyCrop, [1, 0]);                        // [Co, Mt]
      release(b, dyCrop);
    }
    const gT = gemm(b, dyTt, win);                                     // [Co, Ci]
    transposeInto(heapView(b, "float32"), elementIndex(b, gT), elementIndex(b, out) + tap.t * ci * co, [co, ci], [1, 0]);
    release(b, gT, win);
    if (dyTt !== dyT) release(b, dyTt);
  }
  release(b, dyT);
  return out;
}

/** dx of shape info.inShape for dy [N,oh,ow,Co] and filter [kh,kw,Ci,Co]. */
export function convInputGrad(b: WasmBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const pt = info.padInfo.top, pl = info.padInfo.left;
  checkShape(dy.shape, [n, oh, ow, co], "dy");

  if (kh === 1 && kw === 1) {
    const w2 = reshaped(b, filter, [ci, co]);
    const wT = transposeHeap(b, w2, [1, 0]);                        // [Co, Ci]
    const dy2 = reshaped(b, dy, [n * oh * ow, co]);
    const core = gemm(b, dy2, wT);                              // [M, Ci]
    release(b, w2, wT, dy2);
    if (sh === 1 && sw === 1 && pt === 0 && pl === 0 && oh === h && ow === w) {
      const dx = reshaped(b, core, [n, h, w, ci]);
      release(b, core);
      return dx;
    }
    const dx = alloc(b, [n, h, w, ci]);
    const hv = heapF32(b);
    const ds = elementIndex(b, dx), cs = elementIndex(b, core);
    hv.fill(0, ds, ds + n * h * w * ci);
    for (let in_ = 0; in_ < n; in_++) {
      for (let oy = 0; oy < oh; oy++) {
        const iy = oy * sh - pt;
        if (iy < 0 || iy >= h) continue;
        for (let ox = 0; ox < ow; ox++) {
          const ix = ox * sw - pl;
          if (ix < 0 || ix >= w) continue;
          const src = cs + ((in_ * oh + oy) * ow + ox) * ci;
          hv.copyWithin(ds + ((in_ * h + iy) * w + ix) * ci, src, src + ci);
        }
      }
    }
    release(b, core);
    return dx;
  }

  if (dh === 1 && dw === 1 && (sh > 1 || sw > 1)) return stridedInputGrad(b, dy, filter, info);

  // w′: spatially flipped, channels swapped.
  const wf = alloc(b, [kh, kw, co, ci]);
  const heap = heapView(b, "float32");
  const ws = elementIndex(b, filter), wd = elementIndex(b, wf);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const srcTap = ((kh - 1 - i) * kw + (kw - 1 - j)) * ci * co;
      transposeInto(heap, ws + srcTap, wd + (i * kw + j) * co * ci, [ci, co], [1, 0]);
    }
  }
  const padTop = (kh - 1) * dh - pt, padLeft = (kw - 1) * dw - pl;
  const hz = h + (kh - 1) * dh, wz = w + (kw - 1) * dw;
  const padBottom = hz - padTop - oh, padRight = wz - padLeft - ow;
  const convAttrs = (pad: tf.backend_util.ExplicitPadding | "valid") =>
    ({ strides: [1, 1], pad, dilations: [dh, dw], dataFormat: "NHWC", dimRoundingMode: undefined } as unknown as tf.NamedAttrMap);

  let dx: tf.TensorInfo;
  if (sh === 1 && sw === 1 && padTop >= 0 && padLeft >= 0 && padBottom >= 0 && padRight >= 0) {
    dx = convStride1(b, dy, wf, dh, dw, padTop, padBottom, padLeft, padRight);
  } else {
    const z = alloc(b, [n, hz, wz, co]);
    const hv = heapF32(b);
    const zs = elementIndex(b, z), ys = elementIndex(b, dy);
    hv.fill(0, zs, zs + n * hz * wz * co);
    for (let in_ = 0; in_ < n; in_++) {
      for (let oy = 0; oy < oh; oy++) {
        const r = padTop + oy * sh;
        if (r < 0 || r >= hz) continue;
        for (let ox = 0; ox < ow; ox++) {
          const c = padLeft + ox * sw;
          if (c < 0 || c >= wz) continue;
          const src = ys + ((in_ * oh + oy) * ow + ox) * co;
          hv.copyWithin(zs + ((in_ * hz + r) * wz + c) * co, src, src + co);
        }
      }
    }
    dx = runStock(b, "Conv2D", { x: z, filter: wf }, convAttrs("valid"));
    release(b, z);
  }
  release(b, wf);
  checkShape(dx.shape, [n, h, w, ci], "dx");
  return dx;
}

/** One axis of the stride decomposition: phase r gets taps i0, i0+s, … (count k) read from dy at offset c − t. */
interface Phase { r: number; count: number; i0: number; k: number; padBefore: number; padAfter: number }

function phasesOf(size: number, outSize: number, kernel: number, stride: number, padBefore: number): Phase[] {
  const phases: Phase[] = [];
  for (let r = 0; r < stride && r < size; r++) {
    const count = Math.ceil((size - r) / stride);          // rows r, r+s, … of dx
    const i0 = (r + padBefore) % stride;
    const k = i0 < kernel ? Math.ceil((kernel - i0) / stride) : 0;
    const c = (r + padBefore - i0) / stride;
    // dx[q] = Σ_u dy[q + c − (k−1) + u] · w[i0 + s(k−1−u)]: a stride-1 correlation of dy padded by k−1−c before.
    const before = k - 1 - c;
    phases.push({ r, count, i0, k, padBefore: before, padAfter: count + k - 1 - before - outSize });
  }
  return phases;
}

/**
 * dx for a strided, undilated conv, split into stride² phases: the rows (and columns) of dx with the
 * same remainder modulo the stride receive the same subset of taps, so each phase is a stride-1
 * convolution of dy with a flipped sub-filter. No zero-inserted copy, no multiplications by zero.
 */
function stridedInputGrad(b: WasmBackend, dy: tf.TensorInfo, filter: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const dx = alloc(b, [n, h, w, ci]);
  const dxs = elementIndex(b, dx);
  heapF32(b).fill(0, dxs, dxs + n * h * w * ci);
  for (const py of phasesOf(h, oh, kh, sh, info.padInfo.top)) {
    for (const px of phasesOf(w, ow, kw, sw, info.padInfo.left)) {
      if (py.k === 0 || px.k === 0) continue;                  // no tap reaches these rows: zeros
      // Sub-filter f[u, v, co, ci] = w[i0y + sh(ky−1−u), i0x + sw(kx−1−v), ci, co].
      const f = alloc(b, [py.k, px.k, co, ci]);
      const heap = heapView(b, "float32");
      for (let u = 0; u < py.k; u++) {
        for (let v = 0; v < px.k; v++) {
          const i = py.i0 + sh * (py.k - 1 - u), j = px.i0 + sw * (px.k - 1 - v);
          transposeInto(heap, elementIndex(b, filter) + (i * kw + j) * ci * co, elementIndex(b, f) + (u * px.k + v) * co * ci, [ci, co], [1, 0]);
        }
      }
      const part = convWithAnyPadding(b, dy, f, py.padBefore, py.padAfter, px.padBefore, px.padAfter);  // [N, count_y, count_x, Ci]
      release(b, f);
      const hv = heapF32(b), ps = elementIndex(b, part);
      for (let in_ = 0; in_ < n; in_++) {
        for (let qy = 0; qy < py.count; qy++) {
          const rowDst = dxs + ((in_ * h + py.r + qy * sh) * w + px.r) * ci;
          const rowSrc = ps + ((in_ * py.count + qy) * px.count) * ci;
          for (let qx = 0; qx < px.count; qx++) {
            hv.copyWithin(rowDst + qx * sw * ci, rowSrc + qx * ci, rowSrc + (qx + 1) * ci);
          }
        }
      }
      release(b, part);
    }
  }
  return dx;
}

/** A stride-1 valid conv of x padded by the given amounts; negative amounts crop. */
function convWithAnyPadding(b: WasmBackend, x: tf.TensorInfo, f: tf.TensorInfo, top: number, bottom: number, left: number, right: number): tf.TensorInfo {
  const attrs = (pad: tf.backend_util.ExplicitPadding) =>
    ({ strides: [1, 1], pad, dilations: [1, 1], dataFormat: "NHWC", dimRoundingMode: undefined } as unknown as tf.NamedAttrMap);
  if (top >= 0 && bottom >= 0 && left >= 0 && right >= 0) {
    return runStock(b, "Conv2D", { x, filter: f }, attrs([[0, 0], [top, bottom], [left, right], [0, 0]]));
  }
  // Crop the negative sides, pad the positive ones.
  const [n, h, w, c] = x.shape;
  const y0 = Math.max(0, -top), y1 = h - Math.max(0, -bottom), x0 = Math.max(0, -left), x1 = w - Math.max(0, -right);
  const cropped = sliceHeap(b, x, [0, y0, x0, 0], [n, Math.max(0, y1 - y0), Math.max(0, x1 - x0), c]);
  const out = runStock(b, "Conv2D", { x: cropped, filter: f },
    attrs([[0, 0], [Math.max(0, top), Math.max(0, bottom)], [Math.max(0, left), Math.max(0, right)], [0, 0]]));
  release(b, cropped);
  return out;
}

function checkShape(got: number[], want: number[], what: string): void {
  if (got.length !== want.length || got.some((d, i) => d !== want[i])) {
    throw new Error(`conv gradient: ${what} has shape [${got}], expected [${want}]`);
  }
}

// ---- Taps that only ever read padding ----
//
// With a large dilation on a small map (DeepLab's ASPP at rate 36 on a 32×32 feature map), whole
// rows or columns of the filter land in the zero padding for every output position. They add
// nothing to y, dx or dW, so we convolve with the filter cropped to the taps that can read data
// (and padding reduced to match): exact, and for rate 36 at 32² a 9× smaller conv.

interface TapCrop { i0: number; i1: number; j0: number; j1: number; info: tf.backend_util.Conv2DInfo }

/** The taps [first, last] along one axis that read the input for at least one output position. */
function usefulTaps(size: number, outSize: number, k: number, stride: number, dilation: number, pad: number): [number, number] {
  const useful = (i: number) => {
    for (let o = 0; o < outSize; o++) {
      const at = o * stride + i * dilation - pad;
      if (at >= 0 && at < size) return true;
    }
    return false;
  };
  let first = 0, last = k - 1;
  while (first <= last && !useful(first)) first++;
  while (last >= first && !useful(last)) last--;
  return [first, last];
}

/** The geometry of the same conv with the filter cropped to its useful taps, or undefined if none are useless. */
function cropTaps(info: tf.backend_util.Conv2DInfo): TapCrop | undefined {
  const { inHeight: h, inWidth: w, outHeight: oh, outWidth: ow, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, padInfo } = info;
  const [i0, i1] = usefulTaps(h, oh, kh, sh, dh, padInfo.top);
  const [j0, j1] = usefulTaps(w, ow, kw, sw, dw, padInfo.left);
  if (i0 === 0 && i1 === kh - 1 && j0 === 0 && j1 === kw - 1) return undefined;
  if (i1 < i0 || j1 < j0) return undefined;            // nothing reads data (degenerate): keep the stock path
  const pads = [padInfo.top - i0 * dh, padInfo.bottom - (kh - 1 - i1) * dh, padInfo.left - j0 * dw, padInfo.right - (kw - 1 - j1) * dw];
  if (pads.some((p) => p < 0)) return undefined;
  const cropped = tf.backend_util.computeConv2DInfo(
    [info.batchSize, h, w, info.inChannels], [i1 - i0 + 1, j1 - j0 + 1, info.inChannels, info.outChannels],
    [sh, sw], [dh, dw], [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]]);
  if (cropped.outHeight !== oh || cropped.outWidth !== ow) return undefined;
  return { i0, i1, j0, j1, info: cropped };
}

function cropFilter(b: WasmBackend, filter: tf.TensorInfo, c: TapCrop): tf.TensorInfo {
  const [, , ci, co] = filter.shape;
  return sliceHeap(b, filter, [c.i0, c.j0, 0, 0], [c.i1 - c.i0 + 1, c.j1 - c.j0 + 1, ci, co]);
}

// ---- Taps that read padding for part of the output ----
//
// A dilated 3×3 conv on a small map reads zero padding with its outer taps over a large part of the
// output (DeepLab's ASPP at 32²: rate 24 reads data with only 25 % of its tap·position pairs, rate 12
// with 56 %). Below PER_TAP_BELOW useful products, one GEMM per tap over the outputs where it reads
// data (convPerTap) beats the stock conv, which multiplies the padding too.

const PER_TAP_BELOW = 0.9;   // measured at 32², 2048→256 and 512→512

/** y = conv(x, f), stride 1, dilation (dh, dw), zero padding (top, bottom, left, right) ≥ 0. */
export function convStride1(b: WasmBackend, x: tf.TensorInfo, f: tf.TensorInfo, dh: number, dw: number,
    top: number, bottom: number, left: number, right: number): tf.TensorInfo {
  const pad: tf.backend_util.ExplicitPadding = [[0, 0], [top, bottom], [left, right], [0, 0]];
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number],
    f.shape as [number, number, number, number], [1, 1], [dh, dw], pad);
  if (info.outHeight > 0 && info.outWidth > 0 && usefulShare(info) < PER_TAP_BELOW) return convPerTap(b, x, f, info);
  const attrs = { strides: [1, 1], pad, dilations: [dh, dw], dataFormat: "NHWC", dimRoundingMode: undefined };
  return runStock(b, "Conv2D", { x, filter: f }, attrs as unknown as tf.NamedAttrMap);
}

function conv2dKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const b = backend as WasmBackend;
  const { x, filter } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as ConvAttrs;
  if (a.dataFormat === "NCHW") return runStock(b, "Conv2D", inputs, attrs);
  const info = convGeometry(x.shape, filter.shape, a);
  if (x.dtype === "float32" && gemmProvider().provider === "onnxruntime") {
    return useOrtConv(info) ? convForwardOrt(b, x, filter, info) : convForwardGemm(b, x, filter, info);
  }
  const p = info.padInfo;
  if (info.strideHeight === 1 && info.strideWidth === 1 && Math.min(p.top, p.bottom, p.left, p.right) >= 0) {
    const y = convStride1(b, x, filter, info.dilationHeight, info.dilationWidth, p.top, p.bottom, p.left, p.right);
    checkShape(y.shape, [info.batchSize, info.outHeight, info.outWidth, info.outChannels], "y");
    return y;
  }
  const crop = cropTaps(info);
  if (!crop) return runStock(b, "Conv2D", inputs, attrs);
  const f = cropFilter(b, filter, crop);
  const cp = crop.info.padInfo;
  const y = runStock(b, "Conv2D", { x, filter: f }, { ...attrs, pad: [[0, 0], [cp.top, cp.bottom], [cp.left, cp.right], [0, 0]] } as unknown as tf.NamedAttrMap);
  release(b, f);
  return y;
}

function backpropFilterKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const b = backend as WasmBackend;
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as ConvAttrs & { filterShape: number[] };
  const info = convGeometry(x.shape, a.filterShape, a);
  if (gemmProvider().provider === "onnxruntime") return convFilterGradGemm(b, x, dy, info);
  const crop = cropTaps(info);
  if (!crop) return convFilterGrad(b, x, dy, info);
  // Useless taps get a zero gradient.
  const part = convFilterGrad(b, x, dy, crop.info);
  const [kh, kw, ci, co] = a.filterShape;
  const out = alloc(b, [kh, kw, ci, co]);
  const hv = heapF32(b), os = elementIndex(b, out), ps = elementIndex(b, part);
  hv.fill(0, os, os + kh * kw * ci * co);
  const rowLen = (crop.j1 - crop.j0 + 1) * ci * co;
  for (let i = crop.i0; i <= crop.i1; i++) {
    const src = ps + (i - crop.i0) * rowLen;
    hv.copyWithin(os + (i * kw + crop.j0) * ci * co, src, src + rowLen);
  }
  release(b, part);
  return out;
}

function backpropInputKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const b = backend as WasmBackend;
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as ConvAttrs & { inputShape: number[] };
  const info = convGeometry(a.inputShape, filter.shape, a);
  if (gemmProvider().provider === "onnxruntime") return convInputGradGemm(b, dy, filter, info);
  const crop = cropTaps(info);
  if (!crop) return convInputGrad(b, dy, filter, info);
  const f = cropFilter(b, filter, crop);
  const dx = convInputGrad(b, dy, f, crop.info);
  release(b, f);
  return dx;
}

export const convKernels: Array<{ name: string; kernelFunc: (a: KernelArgs) => tf.TensorInfo }> = [
  { name: "Conv2D", kernelFunc: conv2dKernel },
  { name: "Conv2DBackpropFilter", kernelFunc: backpropFilterKernel },
  { name: "Conv2DBackpropInput", kernelFunc: backpropInputKernel },
];
