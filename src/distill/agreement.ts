// How close stage-i masks of a reduced-precision backbone (`--precision int8`) are to the fp32 ones:
// one image's mask with what it was made from, and the agreement statistics the bench and tests report.
import type { RgbImage } from "../data/image.js";
import { preprocess } from "../data/preprocess.js";
import { maskFromAttention } from "./maskFromAttention.js";
import { backProject } from "./backProject.js";
import type { QkBackbone } from "./genMasks.js";

export interface StageOneMask {
  /** The back-projected mask at the image's size, row-major 0/1. */
  full: Uint8Array;
  /** Head-averaged CLS attention logits on the patch grid (the map the proposals come from). */
  clsScore: Float32Array;
  q: Float32Array;
  k: Float32Array;
  /** The seed patch (row-major on the rows × cols grid). */
  seedPatch: number;
  rows: number;
  cols: number;
  /** Back-projects a rows × cols patch mask to the image, as `full` was (e.g. the seed's footprint). */
  toImage(patchMask: Uint8Array): Uint8Array;
}

/** Stage i on one decoded image: preprocess → q/k → mask → back-projection (as gen-masks does). */
export async function stageOneMask(backbone: QkBackbone, img: RgbImage, opts: { resize: number; heads?: number; topk?: number }): Promise<StageOneMask> {
  const pre = preprocess(img, { resize: opts.resize > 0 ? opts.resize : undefined, multiple: backbone.patch });
  const qk = await backbone.lastSelfAttention(pre);
  const m = maskFromAttention(qk.q, qk.k, qk, { avgHeads: opts.heads ?? 5, topk: opts.topk ?? 0.4 });
  const toImage = (patchMask: Uint8Array) => backProject(patchMask, qk.rows, qk.cols, backbone.patch, pre.validWidth, pre.validHeight, img.width, img.height);
  return { full: toImage(m.patchMask), clsScore: m.clsScore, q: qk.q, k: qk.k, seedPatch: m.seedPatch, rows: qk.rows, cols: qk.cols, toImage };
}

/** Intersection over union of two 0/1 masks of one size (two empty masks: 1). */
export function maskIou(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`maskIou: masks of ${a.length} and ${b.length} pixels`);
  let inter = 0, union = 0;
  for (let i = 0; i < a.length; i++) {
    inter += a[i] & b[i];
    union += a[i] | b[i];
  }
  return union ? inter / union : 1;
}

/** ‖a − b‖ / ‖a‖ (Euclidean). */
export function relativeError(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += a[i] ** 2;
  }
  return den ? Math.sqrt(num / den) : Math.sqrt(num);
}

export interface MaskAgreement {
  images: number;
  meanIou: number;
  /** 5th percentile of the per-image IoU (nearest rank). */
  p5Iou: number;
  minIou: number;
  /** Share of images whose masks are identical pixel for pixel. */
  identicalShare: number;
}

/** Agreement of per-image mask IoUs (1 = identical masks). */
export function maskAgreement(ious: number[]): MaskAgreement {
  const n = ious.length;
  if (n === 0) return { images: 0, meanIou: NaN, p5Iou: NaN, minIou: NaN, identicalShare: NaN };
  const sorted = [...ious].sort((x, y) => x - y);
  return {
    images: n,
    meanIou: ious.reduce((a, b) => a + b, 0) / n,
    p5Iou: sorted[Math.max(0, Math.ceil(0.05 * n) - 1)],
    minIou: sorted[0],
    identicalShare: ious.filter((v) => v === 1).length / n,
  };
}
