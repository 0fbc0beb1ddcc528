// The trade-off the paper's 0.9 threshold chooses: pseudo-label mIoU (and box AP50 of the kept
// detections) as a function of the threshold, computed in memory with the eval-semseg code.
import type { CocoImage } from "../data/coco.js";
import type { LabelMap } from "../data/png.js";
import { MaskdistillError } from "../errors.js";
import { newConfusion, accumulate, scoreMatched, type MatchMode } from "../evaluation/semseg.js";
import { boxAp50, detectionMask, keptDetections, labelImage, type DetectionSet, type LabelOptions } from "./genSegmentation.js";

export interface CurvePoint {
  threshold: number;
  /** mIoU over the 21 classes after matching pseudo-classes to classes (eval-semseg's definition). */
  miou: number;
  pixelAcc: number;
  /** Kept detections (threshold rule) and painted ones (after the overlap rule). */
  kept: number;
  painted: number;
  ap50: number | null;
  ap50Agnostic: number | null;
}

/**
 * For each threshold: paint every image (each image's masks decoded once) and score the maps against
 * `gtMap(image)` (null: image not scored) with one 256 × 21 confusion per threshold.
 */
export function thresholdCurve(
  set: DetectionSet,
  thresholds: number[],
  gtMap: (img: CocoImage) => LabelMap | null,
  opts: Omit<LabelOptions, "threshold"> & { match?: MatchMode; pinBackground?: boolean; images?: CocoImage[] } = {},
): CurvePoint[] {
  const confs = thresholds.map(() => newConfusion(256, 21));
  const used = thresholds.map(() => new Uint8Array(256));
  const kept = thresholds.map(() => 0), painted = thresholds.map(() => 0);
  const ids = new Set<number>();
  for (const img of opts.images ?? set.gt.images) {
    const gt = gtMap(img);
    if (!gt) continue;
    if (gt.width !== img.width || gt.height !== img.height) {
      throw new MaskdistillError(`GT map is ${gt.width}×${gt.height}, the image ${img.width}×${img.height}`, img.file_name);
    }
    ids.add(img.id);
    const dets = set.byImage.get(img.id) ?? [];
    const masks = dets.map((d) => detectionMask(d, img));
    thresholds.forEach((threshold, t) => {
      const labels = labelImage(img, dets, { ...opts, threshold }, masks);
      for (const d of labels.detections) {
        if (d.kept) kept[t]++;
        if (d.outcome === "painted") painted[t]++;
      }
      for (let i = 0; i < labels.map.length; i++) used[t][labels.map[i]] = 1;
      accumulate(confs[t], labels.map, gt.data, 255, img.file_name);
    });
  }
  return thresholds.map((threshold, t) => {
    const s = scoreMatched(confs[t], used[t], { match: opts.match ?? "hungarian", pinBackground: opts.pinBackground });
    const ap = boxAp50(set.gt, keptDetections(set, threshold, ids), ids);
    return { threshold, miou: s.miou, pixelAcc: s.pixel_acc, kept: kept[t], painted: painted[t], ...ap };
  });
}
