// Stage iv, per image (METHOD.md §4.2, the reference's gen_segmentation.py): keep the confident
// detections, then paint `1 + category_id` in descending score order on a background-0 map.
//
// Overlap rules (METHOD.md "Decisions" 3):
//   intended  skip a detection whose painted region overlaps any pixel painted before (the default)
//   released  what the released code does: it tests `painted[mask].any()` with a uint8 0/1 mask, which
//             NumPy reads as integer row indexing, not a boolean mask: the test looks at painted row 0
//             (where the mask has a 0) and row 1 (where it has a 1). Real overlaps go unnoticed (later
//             masks overwrite earlier ones) and once anything is painted in the top two rows every
//             further detection of the image is dropped.
import { MaskdistillError } from "../errors.js";

export type OverlapRule = "intended" | "released";
export type MaskType = "mask" | "bbx";

/** What happened to one detection of an image. */
export type Outcome =
  | "painted"
  /** threshold rule: the image's top detection is ≥ threshold and this one is below it */
  | "below-threshold"
  /** threshold rule: the top detection is below threshold, so only it is kept */
  | "not-top"
  /** intended overlap rule: its region overlaps painted pixels */
  | "overlap"
  /** released overlap rule: painted rows 0/1 hold a label (NumPy integer indexing) */
  | "top-rows";

/** A detection as painting needs it: score, class and its decoded mask (h*w, row-major, 0/1). */
export interface PaintDetection {
  score: number;
  category_id: number;
  /** [x, y, w, h]; used by mask type "bbx". */
  bbox: ArrayLike<number>;
  /** The mask (h*w, 0/1) or the row-major indices of its ones (`pixels`, e.g. `rlePixels`); one of them is needed. */
  mask?: Uint8Array;
  pixels?: Int32Array;
}

/** Indices of the non-zero entries of a 0/1 mask. */
export function maskPixels(mask: Uint8Array): Int32Array {
  let n = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]) n++;
  const out = new Int32Array(n);
  for (let i = 0, k = 0; i < mask.length; i++) if (mask[i]) out[k++] = i;
  return out;
}

/**
 * The order to visit an image's detections: stable sort by descending score. `sorted` says whether the
 * input already was in that order (the reference assumes it; see `genSegmentation`'s warning).
 */
export function scoreOrder(scores: ArrayLike<number>): { order: number[]; sorted: boolean } {
  const order = Array.from({ length: scores.length }, (_, i) => i);
  let sorted = true;
  for (let i = 1; i < scores.length; i++) if (scores[i] > scores[i - 1]) sorted = false;
  if (!sorted) order.sort((a, b) => scores[b] - scores[a] || a - b);
  return { order, sorted };
}

/**
 * The threshold rule on scores in descending order: if the top one is below `threshold` keep only it
 * (every image keeps an object), otherwise keep every score ≥ threshold. Returns the kept flags.
 */
export function selectConfident(sortedScores: ArrayLike<number>, threshold: number): boolean[] {
  const n = sortedScores.length;
  if (n === 0) return [];
  if (sortedScores[0] < threshold) return Array.from({ length: n }, (_, i) => i === 0);
  return Array.from({ length: n }, (_, i) => sortedScores[i] >= threshold);
}

/** Python's round(): half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** A Python slice bound on an axis of length n (negative counts from the end, then clamped). */
function sliceBound(i: number, n: number): number {
  if (i < 0) i += n;
  return Math.min(Math.max(i, 0), n);
}

/**
 * The reference's box mask: rows round(y) .. round(y+h) and columns round(x) .. round(x+w), both ends
 * included (`[round(y):round(y+h)+1, round(x):round(x+w)+1]` with Python rounding and slicing).
 */
export function boxMask(bbox: ArrayLike<number>, height: number, width: number): Uint8Array {
  const out = new Uint8Array(height * width);
  const y0 = sliceBound(roundHalfEven(bbox[1]), height), y1 = sliceBound(roundHalfEven(bbox[1] + bbox[3]) + 1, height);
  const x0 = sliceBound(roundHalfEven(bbox[0]), width), x1 = sliceBound(roundHalfEven(bbox[0] + bbox[2]) + 1, width);
  for (let y = y0; y < y1; y++) out.fill(1, y * width + x0, y * width + Math.max(x0, x1));
  return out;
}

/**
 * The released code's test `painted[mask].any()` for a uint8 0/1 `mask`: NumPy takes each mask value as
 * a row index, so the result holds row 0 of `painted` (if the mask has a 0) and row 1 (if it has a 1).
 * `ones` = the number of ones in the mask (given by callers that know it).
 */
export function releasedOverlapHit(painted: Uint8Array, mask: Uint8Array, height: number, width: number, ones?: number): boolean {
  if (ones === undefined) {
    ones = 0;
    for (let i = 0; i < mask.length; i++) if (mask[i]) ones++;
  }
  const hasOne = ones > 0, hasZero = ones < height * width;
  const rowHasLabel = (r: number): boolean => {
    if (r >= height) throw new MaskdistillError(`the released overlap rule indexes row ${r} of a ${height}-row image (NumPy IndexError)`);
    for (let x = 0; x < width; x++) if (painted[r * width + x]) return true;
    return false;
  };
  return (hasZero && rowHasLabel(0)) || (hasOne && rowHasLabel(1));
}

export interface PaintOptions {
  overlapRule?: OverlapRule;
  maskType?: MaskType;
}

/**
 * Paints detections (already kept, visited in the given order) on a zero map: `1 + category_id` where
 * the mask (or, for "bbx", the box) is set, skipping detections by the overlap rule. The released rule
 * tests the decoded mask even for "bbx", as the reference does; the intended rule tests what would be
 * painted. Returns the map and one outcome per detection.
 */
export function paintDetections(dets: PaintDetection[], height: number, width: number, opts: PaintOptions = {}): { map: Uint8Array; outcomes: Outcome[] } {
  const rule = opts.overlapRule ?? "intended", type = opts.maskType ?? "mask";
  const map = new Uint8Array(height * width);
  const outcomes: Outcome[] = [];
  let paintedAny = false;
  for (const d of dets) {
    if (!d.pixels && d.mask?.length !== height * width) throw new MaskdistillError(`a detection mask has ${d.mask?.length ?? 0} pixels, the image ${height}×${width}`);
    const label = 1 + d.category_id;
    if (!Number.isInteger(d.category_id) || label < 1 || label > 254) {
      throw new MaskdistillError(`category_id ${d.category_id} does not give a label 1 + category_id in 1..254`);
    }
    const maskIdx = d.pixels ?? maskPixels(d.mask!);
    const region = type === "bbx" ? maskPixels(boxMask(d.bbox, height, width)) : maskIdx;
    if (paintedAny) {
      if (rule === "intended" && region.some((i) => map[i] !== 0)) { outcomes.push("overlap"); continue; }
      if (rule === "released" && releasedOverlapHit(map, d.mask ?? new Uint8Array(0), height, width, maskIdx.length)) { outcomes.push("top-rows"); continue; }
    }
    for (let k = 0; k < region.length; k++) map[region[k]] = label;
    paintedAny = true;
    outcomes.push("painted");
  }
  return { map, outcomes };
}
