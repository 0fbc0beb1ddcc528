// Pasting a detection's M×M mask probabilities into the image, as the two presets do.
//
// torchvision 0.14 (`paste_masks_in_image`, models/detection/roi_heads.py): the mask is zero-padded
// by 1 cell (M+2 square) and the box scaled about its centre by (M+2)/M (float32 steps, the scale
// rounded to float32), the box truncated to int64; the padded mask is resized with
// F.interpolate(bilinear, align_corners=False) to (y2 − y1 + 1) × (x2 − x1 + 1) (at least 1×1)
// and copied into rows max(y1, 0)..min(y2 + 1, H), columns max(x1, 0)..min(x2 + 1, W). The result is
// the soft mask; torchvision's users binarise it with > 0.5.
//
// detectron2 (`paste_masks_in_image` / `_do_paste_mask`, layers/mask_ops.py; CPU path, one box at a
// time with skip_empty): only the region x ∈ [max(floor(x0) − 1, 0), min(ceil(x1) + 1, W)), likewise
// y, is computed; each pixel centre (x + 0.5) is mapped to (x + 0.5 − x0)/(x1 − x0)·2 − 1 (float32)
// and sampled by F.grid_sample(bilinear, zeros padding, align_corners=False) on the unpadded M×M
// mask; the binary mask is value ≥ threshold (0.5).
// Both soft masks equal PyTorch's CPU results bit for bit (the float32/double/fused steps of its
// kernels are noted where they are reproduced), so the binary masks are identical too.
import { MaskdistillError } from "../errors.js";
import { fma32, linearAxis } from "./transform.js";

const f = Math.fround;

export type PastePreset = "torchvision" | "detectron2";

/** torchvision `expand_boxes` (one box): centre ± half size·scale, in float32. */
export function expandBox(box: ArrayLike<number>, scale: number): [number, number, number, number] {
  const s = f(scale);
  const wHalf = f(f(f(box[2]) - f(box[0])) * 0.5) , hHalf = f(f(f(box[3]) - f(box[1])) * 0.5);
  const xc = f(f(f(box[2]) + f(box[0])) * 0.5), yc = f(f(f(box[3]) + f(box[1])) * 0.5);
  const w = f(wHalf * s), h = f(hHalf * s);
  return [f(xc - w), f(yc - h), f(xc + w), f(yc + h)];
}

function checkMask(mask: ArrayLike<number>, m: number, box: ArrayLike<number>): void {
  if (mask.length !== m * m) throw new MaskdistillError(`paste: mask of ${mask.length} values is not ${m}×${m}`);
  if (box.length < 4) throw new MaskdistillError("paste: box needs 4 coordinates");
}

/**
 * torchvision's paste of one M×M mask (padding 1) into an imH×imW float32 image: the soft mask
 * [imH*imW], zeros outside the box. `out` (zeroed here) may be given to reuse a buffer.
 */
export function pasteMaskTorchvision(mask: ArrayLike<number>, maskSize: number, box: ArrayLike<number>, imH: number, imW: number, out?: Float32Array): Float32Array {
  checkMask(mask, maskSize, box);
  const res = out ?? new Float32Array(imH * imW);
  if (res.length !== imH * imW) throw new MaskdistillError(`paste: output buffer of ${res.length} values for a ${imW}×${imH} image`);
  res.fill(0);
  const P = maskSize + 2;
  const padded = new Float32Array(P * P);
  for (let y = 0; y < maskSize; y++) for (let x = 0; x < maskSize; x++) padded[(y + 1) * P + x + 1] = mask[y * maskSize + x];
  const eb = expandBox(box, P / maskSize).map(Math.trunc); // .to(torch.int64)
  const [bx0, by0, bx2, by2] = eb;
  const w = Math.max(bx2 - bx0 + 1, 1), h = Math.max(by2 - by0 + 1, 1);
  const x0 = Math.max(bx0, 0), x1 = Math.min(bx2 + 1, imW), y0 = Math.max(by0, 0), y1 = Math.min(by2 + 1, imH);
  if (x1 <= x0 || y1 <= y0) return res; // nothing of the box inside the image
  // A [1, 1, h, w] view counts as channels-last contiguous, so PyTorch runs its channels-last
  // bilinear kernel here: the same indices and λ as the NCHW kernel, the four corner weights
  // float32(λy·λx), and the four products summed in double, rounded once (probed: exact on
  // 30 → 37×23, 61×45, 12×80, 5×7).
  const ay = linearAxis(P, h), ax = linearAxis(P, w);
  for (let y = y0; y < y1; y++) {
    const ry = y - by0;
    const r0 = ay.i0[ry] * P, r1 = ay.i1[ry] * P, hy0 = ay.l0[ry], hy1 = ay.l1[ry];
    for (let x = x0; x < x1; x++) {
      const rx = x - bx0;
      const c0 = ax.i0[rx], c1 = ax.i1[rx], wx0 = ax.l0[rx], wx1 = ax.l1[rx];
      res[y * imW + x] = padded[r0 + c0] * f(hy0 * wx0) + padded[r0 + c1] * f(hy0 * wx1) + padded[r1 + c0] * f(hy1 * wx0) + padded[r1 + c1] * f(hy1 * wx1);
    }
  }
  return res;
}

/** detectron2's region of one box: [x0, x1) × [y0, y1) integer pixel bounds (skip_empty). */
export function detectron2PasteRegion(box: ArrayLike<number>, imH: number, imW: number): [number, number, number, number] {
  const x0 = Math.max(Math.floor(f(box[0])) - 1, 0), y0 = Math.max(Math.floor(f(box[1])) - 1, 0);
  const x1 = Math.min(Math.ceil(f(box[2])) + 1, imW), y1 = Math.min(Math.ceil(f(box[3])) + 1, imH);
  return [x0, y0, x1, y1];
}

/** Grid coordinates of pixel centres in [start, end) for the box side [b0, b1]: ((p + .5) − b0)/(b1 − b0)·2 − 1. */
function gridAxis(start: number, end: number, b0: number, b1: number): Float32Array {
  const g = new Float32Array(Math.max(end - start, 0));
  const lo = f(b0), ext = f(f(b1) - lo);
  for (let p = start; p < end; p++) g[p - start] = f(f(f(f(p + 0.5) - lo) / ext) * 2) - 1;
  return g;
}

/**
 * grid_sample's unnormalisation (align_corners=False): ((g + 1)·size − 1)/2, computed by PyTorch's
 * vectorised CPU kernel as (g + 1)·(size/2) − 0.5 with a fused multiply-add (probed).
 */
function unnormalize(g: number, size: number): number {
  return fma32(f(g + 1), f(size / 2), -0.5);
}

/**
 * detectron2's soft paste of one M×M mask (no padding): grid_sample values inside the box's
 * region, zeros elsewhere; [imH*imW].
 */
export function pasteMaskDetectron2(mask: ArrayLike<number>, maskSize: number, box: ArrayLike<number>, imH: number, imW: number, out?: Float32Array): Float32Array {
  checkMask(mask, maskSize, box);
  const res = out ?? new Float32Array(imH * imW);
  if (res.length !== imH * imW) throw new MaskdistillError(`paste: output buffer of ${res.length} values for a ${imW}×${imH} image`);
  res.fill(0);
  const [rx0, ry0, rx1, ry1] = detectron2PasteRegion(box, imH, imW);
  const gx = gridAxis(rx0, rx1, box[0], box[2]), gy = gridAxis(ry0, ry1, box[1], box[3]);
  const M = maskSize;
  const at = (yy: number, xx: number): number => (yy >= 0 && yy < M && xx >= 0 && xx < M ? mask[yy * M + xx] : 0);
  if (rx1 <= rx0 || ry1 <= ry0) return res; // the box's region misses the image
  const nx = rx1 - rx0;
  const xws = new Int32Array(nx), ws = new Float32Array(nx), es = new Float32Array(nx);
  for (let k = 0; k < nx; k++) {
    const ix = unnormalize(gx[k], M);
    xws[k] = Math.floor(ix);
    ws[k] = ix - xws[k];
    es[k] = 1 - ws[k];
  }
  for (let y = ry0; y < ry1; y++) {
    const iy = unnormalize(gy[y - ry0], M);
    const yn = Math.floor(iy);
    const n = f(iy - yn), s = f(1 - n);
    for (let x = rx0; x < rx1; x++) {
      const xw = xws[x - rx0], w = ws[x - rx0], e = es[x - rx0];
      const nw = f(s * e), ne = f(s * w), sw = f(n * e), se = f(n * w);
      // nw·v_nw + ne·v_ne + sw·v_sw + se·v_se, left to right, contracted into fused multiply-adds (probed: exact)
      const v = fma32(at(yn + 1, xw + 1), se, fma32(at(yn + 1, xw), sw, fma32(at(yn, xw + 1), ne, f(at(yn, xw) * nw))));
      res[y * imW + x] = v;
    }
  }
  return res;
}

/**
 * The binary mask of one detection [imH*imW] (1 = object): torchvision's soft paste > threshold,
 * or detectron2's ≥ threshold (threshold 0.5).
 */
export function pasteMaskBinary(preset: PastePreset, mask: ArrayLike<number>, maskSize: number, box: ArrayLike<number>, imH: number, imW: number, threshold = 0.5, out?: Uint8Array): Uint8Array {
  const soft = preset === "torchvision" ? pasteMaskTorchvision(mask, maskSize, box, imH, imW) : pasteMaskDetectron2(mask, maskSize, box, imH, imW);
  const res = out ?? new Uint8Array(imH * imW);
  if (res.length !== imH * imW) throw new MaskdistillError(`paste: output buffer of ${res.length} values for a ${imW}×${imH} image`);
  const t = f(threshold);
  if (preset === "torchvision") for (let i = 0; i < soft.length; i++) res[i] = soft[i] > t ? 1 : 0;
  else for (let i = 0; i < soft.length; i++) res[i] = soft[i] >= t ? 1 : 0;
  return res;
}
