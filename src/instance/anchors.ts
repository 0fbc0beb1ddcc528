// Anchors of the FPN's RPN, one size per level (32, 64, 128, 256, 512) and three aspect ratios
// (h/w = 0.5, 1, 2), as flat Float32Array [N*4] (x1, y1, x2, y2) in input-image pixels. Order (both
// libraries): locations row-major, at each location the A anchors of the level in ratio order.
//
// torchvision 0.14 (`AnchorGenerator`): cell anchors computed in float32 — h_ratio = sqrt(r),
// w_ratio = 1/h_ratio, w = w_ratio·size, [−w, −h, w, h]/2, then `torch.round` (half to even); the
// stride of a level is image_size // feature_size per axis (of the padded batch), the anchor at
// (row, col) is the cell anchor shifted by (col·stride_w, row·stride_h) — no half-stride offset.
//
// detectron2 (`DefaultAnchorGenerator`, mask_rcnn_R_50_FPN defaults): cell anchors in Python float64
// — w = sqrt(size²/r), h = r·w, [−w/2, −h/2, w/2, h/2] — stored as float32 and not rounded; fixed
// strides 4, 8, 16, 32, 64 (the feature strides of p2–p6); shifts k·stride + offset·stride with
// ANCHOR_GENERATOR.OFFSET = 0.0 by default; shift + cell anchor in float32.
import { MaskdistillError } from "../errors.js";

const f = Math.fround;

export type AnchorPreset = "torchvision" | "detectron2";
/** Anchor size (sqrt of area) per FPN level p2..p6. */
export const ANCHOR_SIZES: readonly number[] = [32, 64, 128, 256, 512];
/** Aspect ratios h/w, the same on every level. */
export const ASPECT_RATIOS: readonly number[] = [0.5, 1, 2];
/** detectron2's fixed strides of p2..p6. */
export const FPN_STRIDES: readonly number[] = [4, 8, 16, 32, 64];

/** torch.round: to nearest, ties to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The A zero-centred anchors of one level [A*4], ratio-major (one size per level: A = ratios). */
export function cellAnchors(preset: AnchorPreset, sizes: readonly number[], ratios: readonly number[] = ASPECT_RATIOS): Float32Array {
  const out = new Float32Array(sizes.length * ratios.length * 4);
  let k = 0;
  if (preset === "torchvision") {
    // ws = (w_ratios[:, None] * scales[None, :]).view(-1): ratio-major, then size
    for (const r of ratios) {
      const hr = f(Math.sqrt(f(r))), wr = f(1 / hr);
      for (const s of sizes) {
        const w = f(wr * f(s)), h = f(hr * f(s));
        out[k++] = roundHalfEven(f(-w / 2));
        out[k++] = roundHalfEven(f(-h / 2));
        out[k++] = roundHalfEven(f(w / 2));
        out[k++] = roundHalfEven(f(h / 2));
      }
    }
  } else {
    // detectron2 generate_cell_anchors: for size: for aspect_ratio (size-major), float64 then float32
    for (const s of sizes) {
      for (const r of ratios) {
        const w = Math.sqrt((s * s) / r), h = r * w;
        out[k++] = -w / 2;
        out[k++] = -h / 2;
        out[k++] = w / 2;
        out[k++] = h / 2;
      }
    }
  }
  return out;
}

/**
 * Cell anchors tiled over a gridH × gridW feature map: location (row, col) gets the shift
 * (col·strideW + offset·strideW, row·strideH + offset·strideH); result [gridH*gridW*A*4].
 */
export function gridAnchors(cell: Float32Array, gridH: number, gridW: number, strideH: number, strideW: number, offset = 0): Float32Array {
  const A = cell.length / 4;
  const out = new Float32Array(gridH * gridW * A * 4);
  let k = 0;
  for (let y = 0; y < gridH; y++) {
    const sy = f(y * strideH + offset * strideH);
    for (let x = 0; x < gridW; x++) {
      const sx = f(x * strideW + offset * strideW);
      for (let a = 0; a < A; a++) {
        out[k++] = sx + cell[4 * a];
        out[k++] = sy + cell[4 * a + 1];
        out[k++] = sx + cell[4 * a + 2];
        out[k++] = sy + cell[4 * a + 3];
      }
    }
  }
  return out;
}

/** torchvision's stride of a level: image_size // feature_size per axis, [strideH, strideW]. */
export function torchvisionStrides(imageH: number, imageW: number, featH: number, featW: number): [number, number] {
  if (featH < 1 || featW < 1) throw new MaskdistillError(`anchors: empty feature map ${featH}×${featW}`);
  return [Math.floor(imageH / featH), Math.floor(imageW / featW)];
}

export interface AnchorLevel {
  /** Feature map height and width of the level. */
  featH: number;
  featW: number;
}

/**
 * The anchors of one FPN level (0 = p2 … 4 = p6) for a feature map featH × featW of a padded
 * batch imageH × imageW (the image size matters only for torchvision, which infers the stride).
 */
export function levelAnchors(preset: AnchorPreset, level: number, featH: number, featW: number, imageH: number, imageW: number): Float32Array {
  if (!(level >= 0 && level < ANCHOR_SIZES.length)) throw new MaskdistillError(`anchors: FPN level ${level} is not in 0..${ANCHOR_SIZES.length - 1}`);
  const cell = cellAnchors(preset, [ANCHOR_SIZES[level]]);
  if (preset === "torchvision") {
    const [sh, sw] = torchvisionStrides(imageH, imageW, featH, featW);
    return gridAnchors(cell, featH, featW, sh, sw, 0);
  }
  const s = FPN_STRIDES[level];
  return gridAnchors(cell, featH, featW, s, s, 0);
}

/** All levels' anchors concatenated (p2 first), with the count per level. */
export function fpnAnchors(preset: AnchorPreset, levels: readonly AnchorLevel[], imageH: number, imageW: number): { anchors: Float32Array; perLevel: number[] } {
  const parts = levels.map((l, i) => levelAnchors(preset, i, l.featH, l.featW, imageH, imageW));
  const anchors = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    anchors.set(p, o);
    o += p.length;
  }
  return { anchors, perLevel: parts.map((p) => p.length / 4) };
}
