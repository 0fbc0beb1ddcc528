// Naming clusters by classes — an evaluation step that uses ground truth (METHOD.md §3.5, Decision 5).
// Each mask gets a "target": the class of the GT box with the largest box IoU with the mask's box
// (first one on ties, and the first GT box when none overlaps, as the reference's argmax). Clusters
// are then mapped to classes: one-to-one by Hungarian matching of the cluster × class counts when
// there are as many clusters as classes (or fewer), many-to-one by majority when over-clustering.
// Where several mappings are equally good, the choice is the reference's (utils/cluster.py), see
// `matchClusters`.
import { maximumAssignment } from "../evaluation/hungarian.js";
import { bboxIou } from "../mask/rle.js";
import { roundHalfEven } from "../data/preprocess.js";
import { accuracy, adjustedRandIndex, normalizedMutualInfo } from "./metrics.js";

/** A ground-truth object: box [x, y, w, h] and class index (0-based, in the evaluation's class list). */
export interface GtBox {
  box: [number, number, number, number];
  classId: number;
}

export interface Target {
  classId: number;
  /** Box IoU with the chosen GT box (0 when no GT box overlaps the mask's box). */
  iou: number;
}

/** The target of a mask box, or undefined when the image has no GT box. */
export function targetOf(maskBox: readonly number[], gt: readonly GtBox[]): Target | undefined {
  if (gt.length === 0) return undefined;
  const ious = bboxIou([maskBox], gt.map((g) => g.box), new Uint8Array(gt.length));
  let best = 0;
  for (let g = 1; g < gt.length; g++) if (ious[g] > ious[best]) best = g;
  return { classId: gt[best].classId, iou: ious[best] };
}

/** A COCO GT box as the reference reads it: corners rounded to integers (Python round), back to [x, y, w, h]. */
export function cocoGtBox(bbox: readonly number[]): [number, number, number, number] {
  const x1 = roundHalfEven(bbox[0]), y1 = roundHalfEven(bbox[1]);
  const x2 = roundHalfEven(bbox[0] + bbox[2]), y2 = roundHalfEven(bbox[1] + bbox[3]);
  return [x1, y1, x2 - x1, y2 - y1];
}

/** A VOC XML box as the reference reads it: [xmin − 1, ymin − 1, xmax, ymax], as [x, y, w, h]. */
export function vocGtBox(b: { xmin: number; ymin: number; xmax: number; ymax: number }): [number, number, number, number] {
  return [b.xmin - 1, b.ymin - 1, b.xmax - b.xmin + 1, b.ymax - b.ymin + 1];
}

export type MatchMethod = "hungarian" | "majority";

export interface ClusterMatch {
  method: MatchMethod;
  /** cluster → class index (−1: a cluster left without a class: empty under majority, or more clusters than classes under Hungarian). */
  clusterToClass: Int32Array;
  /** nClusters × nClasses counts of (cluster, target class), row-major. */
  confusion: Float64Array;
}

/** Cluster × class counts over the samples that have a target (target ≥ 0). */
export function clusterClassCounts(clusters: ArrayLike<number>, targets: ArrayLike<number>, nClusters: number, nClasses: number): Float64Array {
  const counts = new Float64Array(nClusters * nClasses);
  for (let i = 0; i < clusters.length; i++) {
    const t = targets[i];
    if (t < 0) continue;
    const c = clusters[i];
    if (c < 0 || c >= nClusters || t >= nClasses) throw new RangeError(`sample ${i}: cluster ${c} / class ${t} outside ${nClusters} clusters × ${nClasses} classes`);
    counts[c * nClasses + t]++;
  }
  return counts;
}

/**
 * Maps clusters to classes from the co-occurrence counts: Hungarian (maximum total agreement,
 * one-to-one) when nClusters ≤ nClasses, majority (each cluster → its most frequent class) when
 * over-clustering. Clusters without any sample get −1 under majority.
 *
 * Ties are broken as the reference does, so that the pseudo-class names are the reference's:
 * - Hungarian: the reference first renumbers the classes that occur among the targets 0..U−1 in
 *   increasing order (`np.unique`), so the count matrix it matches has the occurring classes' columns
 *   first and zero columns after them, and it takes SciPy's `linear_sum_assignment(N − counts)`
 *   (`maximumAssignment` is exactly that). The same matrix is matched here; a cluster that lands on
 *   one of the trailing zero columns gets the classes that do not occur, in increasing order (the
 *   reference has no name for such a cluster: an empty cluster is never written, a non-empty one
 *   makes it fail).
 * - Majority: the reference takes `Counter(targets of the cluster).most_common()[0]`, so among equal
 *   counts the class met first in sample order wins.
 */
export function matchClusters(clusters: ArrayLike<number>, targets: ArrayLike<number>, nClusters: number, nClasses: number): ClusterMatch {
  const confusion = clusterClassCounts(clusters, targets, nClusters, nClasses);
  if (nClusters <= nClasses) {
    const occurs = new Uint8Array(nClasses);
    for (let c = 0; c < nClusters; c++) for (let j = 0; j < nClasses; j++) if (confusion[c * nClasses + j] > 0) occurs[j] = 1;
    // column t of the renumbered matrix is class order[t]: occurring classes, then the others
    const order: number[] = [];
    for (let j = 0; j < nClasses; j++) if (occurs[j]) order.push(j);
    for (let j = 0; j < nClasses; j++) if (!occurs[j]) order.push(j);
    const renumbered = new Float64Array(nClusters * nClasses);
    for (let c = 0; c < nClusters; c++) for (let t = 0; t < nClasses; t++) renumbered[c * nClasses + t] = confusion[c * nClasses + order[t]];
    const byColumn = maximumAssignment(renumbered, nClusters, nClasses);
    const clusterToClass = Int32Array.from(byColumn, (t) => (t < 0 ? -1 : order[t]));
    return { method: "hungarian", clusterToClass, confusion };
  }
  // majority, ties to the class whose first sample in the cluster comes first
  const first = new Int32Array(nClusters * nClasses).fill(-1);
  for (let i = 0; i < clusters.length; i++) {
    const t = targets[i];
    if (t < 0) continue;
    const at = clusters[i] * nClasses + t;
    if (first[at] < 0) first[at] = i;
  }
  const clusterToClass = new Int32Array(nClusters).fill(-1);
  for (let c = 0; c < nClusters; c++) {
    let best = -1;
    for (let j = 0; j < nClasses; j++) {
      const n = confusion[c * nClasses + j];
      if (n === 0) continue;
      if (best < 0) { best = j; continue; }
      const nb = confusion[c * nClasses + best];
      if (n > nb || (n === nb && first[c * nClasses + j] < first[c * nClasses + best])) best = j;
    }
    clusterToClass[c] = best;
  }
  return { method: "majority", clusterToClass, confusion };
}

export interface ClusteringScores extends ClusterMatch {
  /** Samples with a target (the others are left out of every score). */
  evaluated: number;
  /** Accuracy after mapping, NMI and ARI of raw clusters vs targets; all in [0, 1] (ARI can be < 0). */
  acc: number;
  nmi: number;
  ari: number;
}

/** The reference's clustering evaluation: mapping, then ACC / NMI / ARI over the samples with a target. */
export function scoreClustering(clusters: ArrayLike<number>, targets: ArrayLike<number>, nClusters: number, nClasses: number): ClusteringScores {
  if (clusters.length !== targets.length) throw new RangeError(`${clusters.length} cluster labels but ${targets.length} targets`);
  const match = matchClusters(clusters, targets, nClusters, nClasses);
  const kept: number[] = [], keptTargets: number[] = [], mapped: number[] = [];
  for (let i = 0; i < clusters.length; i++) {
    if (targets[i] < 0) continue;
    kept.push(clusters[i]);
    keptTargets.push(targets[i]);
    mapped.push(match.clusterToClass[clusters[i]]);
  }
  return {
    ...match,
    evaluated: kept.length,
    acc: accuracy(keptTargets, mapped),
    nmi: kept.length ? normalizedMutualInfo(keptTargets, kept) : 0,
    ari: kept.length ? adjustedRandIndex(keptTargets, kept) : 0,
  };
}
