// The reference's OHEM cross-entropy (segmentation/losses.py CrossEntropyOHEM, threshold 0.2): per-pixel
// cross-entropy with 255 ignored, then the mean of the k largest losses among the valid pixels, where
//   k = min(int(threshold · #pixels of the batch, ignored ones included), #valid pixels).
// "threshold" is a fraction of pixels, not a probability. The selection is a constant of the
// gradient (as torch.topk's backward): the loss is Σ w·ℓ with w = 1/k on the selected pixels.
import * as tf from "@tensorflow/tfjs";
import { crossEntropyPerRow } from "../engine/ops.js";

export const OHEM_THRESHOLD = 0.2;

/** k of the reference: min(int(threshold · total), valid). */
export function ohemCount(total: number, valid: number, threshold = OHEM_THRESHOLD): number {
  return Math.min(Math.trunc(threshold * total), valid);
}

/**
 * Indices of the k largest values of `values` among those where `valid` is 1. Ties at the cut are
 * taken in index order (torch.topk leaves their order unspecified; the loss value is the same).
 */
export function topKIndices(values: Float32Array, valid: Uint8Array, k: number): Int32Array {
  const cand: number[] = [];
  for (let i = 0; i < values.length; i++) if (valid[i]) cand.push(i);
  if (k >= cand.length) return Int32Array.from(cand);
  if (k <= 0) return new Int32Array(0);
  // the k-th largest value by selection on a copy, then everything above it and enough equal ones
  const v = Float32Array.from(cand, (i) => values[i]);
  const kth = selectKthLargest(v, k);
  const out = new Int32Array(k);
  let n = 0;
  for (const i of cand) if (values[i] > kth) out[n++] = i;
  for (const i of cand) { if (n >= k) break; if (values[i] === kth) out[n++] = i; }
  return out;
}

/** The k-th largest (1-based) value of `a` (reorders `a`): iterative quickselect, median-of-three pivots. */
function selectKthLargest(a: Float32Array, k: number): number {
  let lo = 0, hi = a.length - 1;
  const target = k - 1;   // position in descending order
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const x = a[lo], y = a[mid], z = a[hi];
    const pivot = x > y ? (y > z ? y : x > z ? z : x) : (x > z ? x : y > z ? z : y);
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) { const t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target];
  }
  return a[target];
}

/** Per-pixel cross-entropy [P] and the valid mask (src/engine/ops.ts crossEntropyPerRow). */
export const pixelCrossEntropy = crossEntropyPerRow;

/**
 * OHEM cross-entropy of logits [N, H, W, K] against labels [N, H, W] (int32; 255 ignored). Synchronous
 * (reads the losses back to choose the hard pixels), so it can run inside tf.variableGrads. With no
 * valid pixel the loss is 0 (torch would give the NaN of an empty mean; a batch of void is skipped).
 */
export function ohemCrossEntropy(logits: tf.Tensor4D, labels: tf.Tensor, threshold = OHEM_THRESHOLD): tf.Scalar {
  const { losses, valid } = crossEntropyPerRow(logits, labels);
  const values = losses.dataSync() as Float32Array;
  const validMask = Uint8Array.from(valid.dataSync() as Float32Array);
  valid.dispose();
  let nValid = 0;
  for (let i = 0; i < validMask.length; i++) nValid += validMask[i];
  const k = ohemCount(values.length, nValid, threshold);
  const weights = new Float32Array(values.length);
  for (const i of topKIndices(values, validMask, k)) weights[i] = 1 / k;
  return tf.tidy(() => tf.sum(tf.mul(losses, tf.tensor1d(weights))) as tf.Scalar);
}
