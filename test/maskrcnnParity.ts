// Shared checks of the two Mask R-CNN parity tests (torchvision and detectron2 presets).
import { boxIou } from "../src/instance/boxes.js";
import type { ImageDetections } from "../src/instance/maskrcnn.js";

/** Greedy matching of boxes a → b (x1, y1, x2, y2): box IoU ≥ minIou and, when given, the same label. */
export function matchBoxes(a: Float32Array, b: Float32Array, minIou: number, la?: ArrayLike<number>, lb?: ArrayLike<number>): [number, number][] {
  const iou = boxIou(a, b), nb = b.length / 4, used = new Uint8Array(nb), pairs: [number, number][] = [];
  for (let i = 0; i < a.length / 4; i++) {
    let best = -1, bestIou = minIou;
    for (let j = 0; j < nb; j++) {
      if (used[j] || (la && lb && la[i] !== lb[j])) continue;
      if (iou[i * nb + j] >= bestIou) { bestIou = iou[i * nb + j]; best = j; }
    }
    if (best >= 0) { used[best] = 1; pairs.push([i, best]); }
  }
  return pairs;
}

export interface ReferenceDetections { boxes: number[][]; labels: number[]; scores: number[]; mask_runs: number[][][] }

/**
 * Our detections against the reference's: matched when the label agrees, box IoU ≥ 0.99 and
 * |Δscore| ≤ 1e-3; for the matched pairs the worst mask IoU and how many masks are pixel-identical.
 */
export function compareDetections(r: ImageDetections, ref: ReferenceDetections): { pairs: [number, number][]; worstMaskIou: number; identicalMasks: number } {
  const refBoxes = Float32Array.from(ref.boxes.flat());
  const pairs = matchBoxes(r.boxes, refBoxes, 0.99, r.labels, ref.labels).filter(([a, b]) => Math.abs(r.scores[a] - ref.scores[b]) <= 1e-3);
  let worstMaskIou = 1, identicalMasks = 0;
  for (const [a, b] of pairs) {
    const mask = r.masks[a], refMask = new Uint8Array(mask.length);
    for (const [st, len] of ref.mask_runs[b]) refMask.fill(1, st, st + len);
    let inter = 0, uni = 0, same = true;
    for (let i = 0; i < mask.length; i++) {
      inter += mask[i] & refMask[i];
      uni += mask[i] | refMask[i];
      if (mask[i] !== refMask[i]) same = false;
    }
    worstMaskIou = Math.min(worstMaskIou, uni ? inter / uni : 1);
    if (same) identicalMasks++;
  }
  return { pairs, worstMaskIou, identicalMasks };
}
