// Which FPN level (p2..p5) a RoI is pooled from: Eqn. 1 of the FPN paper,
// k = floor(k0 + log2(sqrt(area) / 224)), clamped to the available levels, as the two libraries
// compute it in float32. Returns level indices relative to the first level (0 = p2).
//
// torchvision 0.14 (`MultiScaleRoIAlign` / `LevelMapper`): the scale of each feature map is
// inferred as 2^round(log2(feature size / image size)) (first axis; image size = the largest
// image size of the batch, before padding), k_min/k_max = −log2 of the first/last scale;
// k = floor(4 + log2(s/224) + 1e-6) in float32, clamped.
// detectron2 (`assign_boxes_to_levels`, modeling/poolers.py): floor(4 + log2(s/224 + 1e-8)),
// the epsilon inside the log, clamped to min_level = 2, max_level = 5 (from the fixed strides).
import { MaskdistillError } from "../errors.js";
import { boxArea } from "./boxes.js";

const f = Math.fround;

export interface LevelMapper {
  kMin: number;
  kMax: number;
  canonicalScale: number;
  canonicalLevel: number;
  eps: number;
}

/** Python's round() (half to even) on a float32 value, as `torch.tensor(x).log2().round()`. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision `_infer_scale`: 2^round(log2(featH / imageH)) — only the first (height) axis counts. */
export function inferScale(featH: number, imageH: number): number {
  const approx = featH / imageH; // float(s1) / float(s2) in Python (double)
  return 2 ** roundHalfEven(f(Math.log2(f(approx))));
}

/**
 * torchvision `_setup_scales`: the scales of the pooled levels (e.g. p2..p5 = 1/4..1/32) and the
 * LevelMapper from them. imageSizes: (h, w) of each image of the batch before padding.
 */
export function torchvisionLevelMapper(featureHeights: readonly number[], imageSizes: readonly (readonly [number, number])[]): { scales: number[]; mapper: LevelMapper } {
  if (imageSizes.length === 0) throw new MaskdistillError("levels: images list should not be empty");
  if (featureHeights.length === 0) throw new MaskdistillError("levels: no feature maps");
  let maxH = 0;
  for (const [h] of imageSizes) maxH = Math.max(maxH, h);
  const scales = featureHeights.map((fh) => inferScale(fh, maxH));
  const kMin = Math.trunc(-f(Math.log2(f(scales[0]))));
  const kMax = Math.trunc(-f(Math.log2(f(scales[scales.length - 1]))));
  return { scales, mapper: { kMin, kMax, canonicalScale: 224, canonicalLevel: 4, eps: 1e-6 } };
}

/** torchvision's LevelMapper for p2..p5 (scales 1/4..1/32). */
export const TORCHVISION_FPN_MAPPER: LevelMapper = { kMin: 2, kMax: 5, canonicalScale: 224, canonicalLevel: 4, eps: 1e-6 };

/** torchvision `LevelMapper.__call__`: level index (0 = k_min) per box [N*4]. */
export function torchvisionLevels(boxes: ArrayLike<number>, mapper: LevelMapper = TORCHVISION_FPN_MAPPER): Int32Array {
  const area = boxArea(boxes);
  const out = new Int32Array(area.length);
  const s0 = f(mapper.canonicalScale), eps = f(mapper.eps), lvl0 = f(mapper.canonicalLevel);
  for (let i = 0; i < area.length; i++) {
    const s = f(Math.sqrt(area[i]));
    const t = Math.floor(f(f(lvl0 + f(Math.log2(f(s / s0)))) + eps));
    out[i] = clampLevel(t, mapper.kMin, mapper.kMax) - mapper.kMin;
  }
  return out;
}

/**
 * detectron2 `assign_boxes_to_levels(box_lists, min_level, max_level, canonical_box_size=224,
 * canonical_level=4)`: floor(4 + log2(sqrt(area)/224 + 1e-8)) clamped to [minLevel, maxLevel], minus minLevel.
 */
export function detectron2Levels(boxes: ArrayLike<number>, minLevel = 2, maxLevel = 5, canonicalBoxSize = 224, canonicalLevel = 4): Int32Array {
  const area = boxArea(boxes);
  const out = new Int32Array(area.length);
  const s0 = f(canonicalBoxSize), eps = f(1e-8);
  for (let i = 0; i < area.length; i++) {
    const s = f(Math.sqrt(area[i]));
    const t = Math.floor(f(canonicalLevel + f(Math.log2(f(f(s / s0) + eps)))));
    out[i] = clampLevel(t, minLevel, maxLevel) - minLevel;
  }
  return out;
}

/** torch.clamp then .to(int64): NaN (0/0 areas never occur; log2(0) = −inf) clamps as PyTorch's min/max. */
function clampLevel(t: number, lo: number, hi: number): number {
  if (t !== t) return lo; // not reached for finite boxes; keeps the result an index
  return t < lo ? lo : t > hi ? hi : t;
}

/**
 * The ROI poolers' level assignment of a preset for one batch: the scales of p2..p5 and the level of each box.
 * torchvision infers the scales from the map sizes; detectron2 uses the fixed strides 4…32. `canonicalBoxSize`
 * is the box side pooled from p4 (224 in both libraries; a world of small images may lower it).
 */
export function poolerLevels(preset: "detectron2" | "torchvision", featureHeights: readonly number[], imageSizes: readonly (readonly [number, number])[], canonicalBoxSize = 224): { scales: number[]; levelsOf: (boxes: Float32Array) => Int32Array } {
  if (preset === "detectron2") return { scales: [1 / 4, 1 / 8, 1 / 16, 1 / 32], levelsOf: (b) => detectron2Levels(b, 2, 5, canonicalBoxSize) };
  const { scales, mapper } = torchvisionLevelMapper(featureHeights, imageSizes);
  const m = { ...mapper, canonicalScale: canonicalBoxSize };
  return { scales, levelsOf: (b) => torchvisionLevels(b, m) };
}
