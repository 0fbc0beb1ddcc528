// torchvision 0.14's GeneralizedRCNNTransform in eval mode, on float32 CHW images:
//   to_tensor (uint8 HWC → float32 CHW, v/255) → normalise ((v − mean)/std, ImageNet) → resize
//   (scale = min(min_size / short side, max_size / long side) in float32 as reciprocal·size; F.interpolate(bilinear,
//   scale_factor = scale, recompute_scale_factor = True, align_corners = False): output size
//   floor(side · scale) in double, the kernel then samples with the ratio in/out) → zero-pad the
//   batch to a multiple of 32; `postprocess` scales boxes back by float32 ratios original/resized.
// The bilinear kernel is PyTorch's CPU kernel for NCHW-contiguous inputs (`upsample_generic_Nd`
// with linear interpolation): ratio in/out in float32, source index max(ratio·(i + ½) − ½, 0) in
// double, lower cell trunc(·), upper cell +1 unless at the border, λ1 = float32(src − lower),
// λ0 = float32(1 − λ1) (probed on PyTorch with one-hot inputs: every weight of 64 → 80 and 48 → 60
// equal). Rows are interpolated along x first, then the two rows along y, each as
// fma(v0, λ0, v1·λ1) in float32 — the AVX2 build of the kernel contracts `t0*w0 + t1*w1` into a
// fused multiply-add; this order reproduced PyTorch bit for bit on random 48×64 → 60×80 inputs,
// where the unfused sum differed in 38 % of the values by 1 ulp.
// The detectron2 preset (resize of the uint8 image with PIL, normalisation in the model) is at the end.
import { MaskdistillError } from "../errors.js";
import type { RgbImage } from "../data/image.js";
import { resizeImage } from "../data/resize.js";

const f = Math.fround;

const f32buf = new Float32Array(1);
const i32buf = new Int32Array(f32buf.buffer);

/** The float32 next to x (a float32) towards +∞ (up) or −∞. */
function nextFloat(x: number, up: boolean): number {
  if (x === 0) return up ? 1.401298464324817e-45 : -1.401298464324817e-45;
  f32buf[0] = x;
  i32buf[0] += (x > 0) === up ? 1 : -1;
  return f32buf[0];
}

/** fma(a, b, c) rounded once to float32, for float32 a, b, c (a·b is exact in double; the double sum is corrected at float32 midpoints). */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const bb = s - p;
  const err = (p - (s - bb)) + (c - bb); // p + c = s + err exactly
  const r = f(s);
  if (err === 0 || r === s || !Number.isFinite(s)) return r;
  const next = nextFloat(r, s > r);
  if (s - r === (next - r) / 2) return (err > 0) === (s > r) ? next : r; // s is a midpoint: err decides
  return r;
}

/** A float32 image, channels first: value (c, y, x) at data[(c*height + y)*width + x]. */
export interface ChwImage {
  channels: number;
  height: number;
  width: number;
  data: Float32Array;
}

export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

export interface RcnnTransformOptions {
  /** Short side target (torchvision maskrcnn_resnet50_fpn: 800). */
  minSize: number;
  /** Long side limit (1333). */
  maxSize: number;
  mean: readonly number[];
  std: readonly number[];
  /** Batch padding multiple (32). */
  sizeDivisible: number;
}

export const TORCHVISION_TRANSFORM: RcnnTransformOptions = { minSize: 800, maxSize: 1333, mean: IMAGENET_MEAN, std: IMAGENET_STD, sizeDivisible: 32 };

/** torchvision `to_tensor` on an 8-bit RGB image: float32 CHW, v/255. */
export function toTensor(img: RgbImage): ChwImage {
  const { width, height, data } = img;
  if (data.length !== width * height * 3) throw new MaskdistillError(`toTensor: ${data.length} bytes for a ${width}×${height} RGB image`);
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[c * plane + p] = data[3 * p + c] / 255;
  return { channels: 3, height, width, data: out };
}

/** (v − mean[c]) / std[c] in float32 (mean and std as float32 tensors). New image. */
export function normalize(img: ChwImage, mean: readonly number[] = IMAGENET_MEAN, std: readonly number[] = IMAGENET_STD): ChwImage {
  if (mean.length !== img.channels || std.length !== img.channels) throw new MaskdistillError(`normalize: ${img.channels} channels, ${mean.length} means, ${std.length} stds`);
  const plane = img.width * img.height;
  const out = new Float32Array(img.data.length);
  for (let c = 0; c < img.channels; c++) {
    const m = f(mean[c]), s = f(std[c]);
    for (let p = c * plane; p < (c + 1) * plane; p++) out[p] = f(img.data[p] - m) / s;
  }
  return { ...img, data: out };
}

/** The resized size of an h×w image: the float32 scale, then floor(side·scale) (torchvision `_resize_image_and_masks`). */
export function resizedSize(height: number, width: number, minSize = 800, maxSize = 1333): { height: number; width: number; scale: number } {
  if (!(height >= 1 && width >= 1)) throw new MaskdistillError(`resize: empty image ${width}×${height}`);
  // `self_min_size / min_size` with a float32 tensor on the right is Tensor.__rtruediv__:
  // reciprocal() * other, i.e. f(f(1/side)·size) — not the correctly rounded quotient
  // (800/480 gives 1.6666667461, not 1.6666666269, so 480 → 800 rather than 799)
  const scale = Math.min(f(f(1 / Math.min(height, width)) * minSize), f(f(1 / Math.max(height, width)) * maxSize));
  return { height: Math.floor(height * scale), width: Math.floor(width * scale), scale };
}

/** One axis of PyTorch's linear interpolation: per output index the two source indices and weights. */
export interface LinearAxis {
  i0: Int32Array;
  i1: Int32Array;
  l0: Float32Array;
  l1: Float32Array;
}

/** PyTorch's `compute_source_index_and_lambda` (align_corners = false, no scale given: ratio in/out in float32). */
export function linearAxis(inSize: number, outSize: number): LinearAxis {
  const ax: LinearAxis = { i0: new Int32Array(outSize), i1: new Int32Array(outSize), l0: new Float32Array(outSize), l1: new Float32Array(outSize) };
  const ratio = f(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    if (inSize === outSize) {
      ax.i0[i] = ax.i1[i] = i;
      ax.l0[i] = 1;
      ax.l1[i] = 0;
      continue;
    }
    // float32 ratio, the source index and λ in double (PyTorch 1.13's CPU accumulate type), λ stored as float32
    let src = ratio * (i + 0.5) - 0.5;
    if (src < 0) src = 0;
    const i0 = Math.trunc(src);
    ax.i0[i] = i0;
    ax.i1[i] = i0 + (i0 < inSize - 1 ? 1 : 0);
    ax.l1[i] = src - i0;
    ax.l0[i] = 1 - ax.l1[i];
  }
  return ax;
}

/**
 * F.interpolate(x[None], size = (outH, outW), mode = "bilinear", align_corners = False) on an
 * NCHW-contiguous float32 image (the kernel `recompute_scale_factor = True` ends in).
 */
export function resizeBilinear(img: ChwImage, outH: number, outW: number): ChwImage {
  if (!(outH >= 1 && outW >= 1)) throw new MaskdistillError(`resize: output size ${outW}×${outH} is empty`);
  const { channels: C, height: H, width: W } = img;
  const ay = linearAxis(H, outH), ax = linearAxis(W, outW);
  const out = new Float32Array(C * outH * outW);
  for (let c = 0; c < C; c++) {
    const src = c * H * W;
    for (let y = 0; y < outH; y++) {
      const r0 = src + ay.i0[y] * W, r1 = src + ay.i1[y] * W, wy0 = ay.l0[y], wy1 = ay.l1[y];
      const o = (c * outH + y) * outW;
      for (let x = 0; x < outW; x++) {
        const x0 = ax.i0[x], x1 = ax.i1[x], wx0 = ax.l0[x], wx1 = ax.l1[x];
        const t0 = fma32(img.data[r0 + x0], wx0, f(img.data[r0 + x1] * wx1));
        const t1 = fma32(img.data[r1 + x0], wx0, f(img.data[r1 + x1] * wx1));
        out[o + x] = fma32(t0, wy0, f(t1 * wy1));
      }
    }
  }
  return { channels: C, height: outH, width: outW, data: out };
}

/** A zero-padded batch [N, C, H, W], H and W the largest sizes rounded up to sizeDivisible. */
export interface ImageBatch {
  data: Float32Array;
  shape: [number, number, number, number];
}

/** torchvision `batch_images`: zero padding at the bottom/right up to a multiple of sizeDivisible. */
export function batchImages(images: readonly ChwImage[], sizeDivisible = 32): ImageBatch {
  if (images.length === 0) throw new MaskdistillError("batchImages: no images");
  const C = Math.max(...images.map((i) => i.channels));
  const H = Math.ceil(Math.max(...images.map((i) => i.height)) / sizeDivisible) * sizeDivisible;
  const W = Math.ceil(Math.max(...images.map((i) => i.width)) / sizeDivisible) * sizeDivisible;
  const data = new Float32Array(images.length * C * H * W);
  images.forEach((img, n) => {
    for (let c = 0; c < img.channels; c++) for (let y = 0; y < img.height; y++) {
      const s = (c * img.height + y) * img.width;
      data.set(img.data.subarray(s, s + img.width), ((n * C + c) * H + y) * W);
    }
  });
  return { data, shape: [images.length, C, H, W] };
}

export interface TransformedBatch extends ImageBatch {
  /** (height, width) of each image after resizing, before padding (`ImageList.image_sizes`). */
  imageSizes: [number, number][];
  /** (height, width) of each input image. */
  originalSizes: [number, number][];
}

/** GeneralizedRCNNTransform.forward in eval mode (no targets) on 8-bit RGB images. */
export function rcnnTransform(images: readonly RgbImage[], opts: RcnnTransformOptions = TORCHVISION_TRANSFORM): TransformedBatch {
  const resized = images.map((img) => {
    const x = normalize(toTensor(img), opts.mean, opts.std);
    const size = resizedSize(x.height, x.width, opts.minSize, opts.maxSize);
    return resizeBilinear(x, size.height, size.width);
  });
  return {
    ...batchImages(resized, opts.sizeDivisible),
    imageSizes: resized.map((r) => [r.height, r.width]),
    originalSizes: images.map((i) => [i.height, i.width]),
  };
}

/**
 * torchvision `resize_boxes(boxes, resized, original)` as `postprocess` uses it: x·(W_orig/W_resized),
 * y·(H_orig/H_resized), the ratios divided in float32. New array.
 */
export function postprocessBoxes(boxes: ArrayLike<number>, resized: readonly [number, number], original: readonly [number, number]): Float32Array {
  if (boxes.length % 4 !== 0) throw new MaskdistillError(`postprocessBoxes: length ${boxes.length} is not a multiple of 4`);
  const rh = f(f(original[0]) / f(resized[0])), rw = f(f(original[1]) / f(resized[1]));
  const out = new Float32Array(boxes.length);
  for (let i = 0; i < boxes.length; i++) out[i] = f(boxes[i]) * (i % 2 === 0 ? rw : rh);
  return out;
}

// ---------------------------------------------------------------------------------------------
// detectron2 preset: the resize happens on the 8-bit image (data side), the model normalises.
//   ResizeShortestEdge(800, 1333) (data/transforms/augmentation_impl.py, get_output_shape): in
//   Python floats, scale = short/min(h, w); the short side becomes `short`, the other side·scale;
//   if the longer result exceeds max_size both are scaled by max_size/longer; each side
//   int(x + 0.5). ResizeTransform.apply_image resizes the uint8 image with PIL BILINEAR (bit-exact
//   in src/data/resize.ts). GeneralizedRCNN.preprocess_image: (x − pixel_mean)/pixel_std on the
//   float32 CHW image in cfg.INPUT.FORMAT channel order (BGR by default, means 103.530, 116.280,
//   123.675 and stds 1 of the MSRA R-50), then ImageList.from_tensors pads with 0 to a multiple of 32.

export interface Detectron2TransformOptions {
  shortEdge: number;
  maxSize: number;
  /** Channel order the model sees (cfg.INPUT.FORMAT). */
  format: "BGR" | "RGB";
  /** MODEL.PIXEL_MEAN / PIXEL_STD in `format` order, 0–255 scale. */
  pixelMean: readonly number[];
  pixelStd: readonly number[];
  sizeDivisible: number;
}

/** detectron2's defaults (Base-RCNN-FPN with the MSRA R-50 weights). */
export const DETECTRON2_TRANSFORM: Detectron2TransformOptions = {
  shortEdge: 800, maxSize: 1333, format: "BGR", pixelMean: [103.53, 116.28, 123.675], pixelStd: [1, 1, 1], sizeDivisible: 32,
};

/** ResizeShortestEdge's output (height, width) for an h×w image. */
export function detectron2ResizedSize(height: number, width: number, shortEdge = 800, maxSize = 1333): [number, number] {
  if (!(height >= 1 && width >= 1)) throw new MaskdistillError(`resize: empty image ${width}×${height}`);
  const size = shortEdge;
  let scale = size / Math.min(height, width);
  let newh: number, neww: number;
  if (height < width) {
    newh = size;
    neww = scale * width;
  } else {
    newh = scale * height;
    neww = size;
  }
  if (Math.max(newh, neww) > maxSize) {
    scale = maxSize / Math.max(newh, neww);
    newh = newh * scale;
    neww = neww * scale;
  }
  return [Math.trunc(newh + 0.5), Math.trunc(neww + 0.5)];
}

/** The resize + normalise + pad of detectron2's inference on 8-bit RGB images. */
export function detectron2Transform(images: readonly RgbImage[], opts: Detectron2TransformOptions = DETECTRON2_TRANSFORM): TransformedBatch {
  const chw = images.map((img) => {
    const [h, w] = detectron2ResizedSize(img.height, img.width, opts.shortEdge, opts.maxSize);
    const r = h === img.height && w === img.width ? img : resizeImage(img, w, h, "bilinear");
    const plane = w * h;
    const data = new Float32Array(3 * plane);
    for (let c = 0; c < 3; c++) {
      const src = opts.format === "BGR" ? 2 - c : c;
      const m = f(opts.pixelMean[c]), s = f(opts.pixelStd[c]);
      for (let p = 0; p < plane; p++) data[c * plane + p] = f(r.data[3 * p + src] - m) / s;
    }
    return { channels: 3, height: h, width: w, data } as ChwImage;
  });
  return {
    ...batchImages(chw, opts.sizeDivisible),
    imageSizes: chw.map((r) => [r.height, r.width]),
    originalSizes: images.map((i) => [i.height, i.width]),
  };
}

/**
 * detectron2 `detector_postprocess` for boxes: scale by output/input size (Python float ratios
 * applied to float32 boxes), clip to the output size, keep the nonempty boxes (w > 0 and h > 0).
 * Returns the kept boxes and their indices (the masks of those are pasted at the output size).
 */
export function detectron2PostprocessBoxes(boxes: ArrayLike<number>, resized: readonly [number, number], output: readonly [number, number]): { boxes: Float32Array; keep: Int32Array } {
  if (boxes.length % 4 !== 0) throw new MaskdistillError(`detectron2PostprocessBoxes: length ${boxes.length} is not a multiple of 4`);
  const sx = f(output[1] / resized[1]), sy = f(output[0] / resized[0]);
  const n = boxes.length / 4;
  const H = f(output[0]), W = f(output[1]);
  const scaled = new Float32Array(boxes.length);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 4; c++) {
      const lim = c % 2 === 0 ? W : H;
      const v = f(f(boxes[4 * i + c]) * (c % 2 === 0 ? sx : sy));
      scaled[4 * i + c] = v < 0 ? 0 : v > lim ? lim : v;
    }
    if (f(scaled[4 * i + 2] - scaled[4 * i]) > 0 && f(scaled[4 * i + 3] - scaled[4 * i + 1]) > 0) keep.push(i);
  }
  const out = new Float32Array(4 * keep.length);
  keep.forEach((i, k) => out.set(scaled.subarray(4 * i, 4 * i + 4), 4 * k));
  return { boxes: out, keep: Int32Array.from(keep) };
}
