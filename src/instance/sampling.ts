// Training-time assignment of anchors / proposals to ground truth, and the balanced sampling of the
// RPN and ROI batches. Both presets share it: torchvision's `Matcher` and
// `BalancedPositiveNegativeSampler` (models/detection/_utils.py) and detectron2's `Matcher` and
// `subsample_labels` compute the same thing (thresholds [low, high), low-quality matches restored for
// each GT's best predictions, min(⌊B·f⌋, #pos) positives, then min(B − #pos, #neg) negatives).
//
// The random choice inside the sampler is an injectable `IndexPicker`, so that tests can replay the
// indices torch's randperm chose, and training can use a seeded PRNG (resumable bit for bit).
import { MaskdistillError } from "../errors.js";
import { mulberry32 } from "../random.js";

/** Match value of a prediction whose best IoU is below the low threshold (torchvision BELOW_LOW_THRESHOLD). */
export const BELOW_LOW_THRESHOLD = -1;
/** Match value of a prediction between the thresholds (ignored in training). */
export const BETWEEN_THRESHOLDS = -2;

export interface MatcherOptions {
  high: number;
  low: number;
  allowLowQualityMatches: boolean;
}

/** The RPN's matcher (both presets): IoU ≥ 0.7 foreground, < 0.3 background, best anchors of each GT kept. */
export const RPN_MATCHER: MatcherOptions = { high: 0.7, low: 0.3, allowLowQualityMatches: true };
/** The ROI heads' matcher (both presets): IoU ≥ 0.5 foreground, else background. */
export const ROI_MATCHER: MatcherOptions = { high: 0.5, low: 0.5, allowLowQualityMatches: false };

/**
 * torchvision `Matcher.__call__` on an IoU matrix [G×N] (row g = GT g): per prediction the GT with the
 * highest IoU (the first on ties), or BELOW_LOW_THRESHOLD / BETWEEN_THRESHOLDS. With low-quality matches,
 * every prediction whose IoU with some GT equals that GT's best IoU keeps its argmax GT (as torchvision
 * and detectron2 do, even when that best IoU is 0).
 */
export function matchPredictions(iou: Float32Array, numGt: number, numPred: number, opts: MatcherOptions): Int32Array {
  if (iou.length !== numGt * numPred) throw new MaskdistillError(`matchPredictions: IoU matrix has ${iou.length} values, expected ${numGt}×${numPred}`);
  const matches = new Int32Array(numPred).fill(BELOW_LOW_THRESHOLD);
  if (numGt === 0) return matches;
  const all = new Int32Array(numPred);
  for (let j = 0; j < numPred; j++) {
    let best = iou[j], arg = 0;
    for (let g = 1; g < numGt; g++) {
      const v = iou[g * numPred + j];
      if (v > best) { best = v; arg = g; }
    }
    all[j] = arg;
    matches[j] = best < opts.low ? BELOW_LOW_THRESHOLD : best < opts.high ? BETWEEN_THRESHOLDS : arg;
  }
  if (opts.allowLowQualityMatches) {
    for (let g = 0; g < numGt; g++) {
      let best = -Infinity;
      for (let j = 0; j < numPred; j++) best = Math.max(best, iou[g * numPred + j]);
      for (let j = 0; j < numPred; j++) if (iou[g * numPred + j] === best) matches[j] = all[j];
    }
  }
  return matches;
}

/** Which stage, image and kind a sampler call is about (what a recorded picker looks its answer up by). */
export interface PickContext {
  stage: "rpn" | "roi";
  image: number;
  kind: "positive" | "negative";
}

/**
 * Chooses `k` of `candidates` (indices, ascending) without replacement. torch's sampler takes
 * randperm(n)[:k] of them; any picker is valid that returns k distinct candidates.
 */
export type IndexPicker = (candidates: Int32Array, k: number, ctx: PickContext) => Int32Array;

/** A seeded picker: a partial Fisher–Yates shuffle driven by mulberry32 (the same choice for the same seed). */
export function seededPicker(seed: number): IndexPicker {
  const rng = mulberry32(seed >>> 0);
  return (candidates, k) => {
    const a = Int32Array.from(candidates);
    const n = a.length;
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(rng() * (n - i));
      const t = a[i]; a[i] = a[j]; a[j] = t;
    }
    return a.slice(0, k);
  };
}

export interface SampledIndices {
  positive: Int32Array;
  negative: Int32Array;
}

/**
 * BalancedPositiveNegativeSampler / subsample_labels for one image: `labels` 1 = foreground,
 * 0 = background, −1 = ignored. Returns the chosen indices of each kind, ascending.
 */
export function sampleBalanced(labels: Int8Array, batchSize: number, positiveFraction: number, pick: IndexPicker,
    ctx: Omit<PickContext, "kind">): SampledIndices {
  const pos: number[] = [], neg: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= 1) pos.push(i);
    else if (labels[i] === 0) neg.push(i);
  }
  const numPos = Math.min(Math.trunc(batchSize * positiveFraction), pos.length);
  const numNeg = Math.min(batchSize - numPos, neg.length);
  const choose = (cands: number[], k: number, kind: PickContext["kind"]): Int32Array => {
    const c = Int32Array.from(cands);
    const got = k === c.length ? c : pick(c, k, { ...ctx, kind });
    if (got.length !== k) throw new MaskdistillError(`sampler: the ${ctx.stage} ${kind} picker of image ${ctx.image} returned ${got.length} indices, expected ${k}`);
    return Int32Array.from(got).sort();
  };
  return { positive: choose(pos, numPos, "positive"), negative: choose(neg, numNeg, "negative") };
}
