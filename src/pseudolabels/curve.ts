// The trade-off the paper's 0.9 threshold chooses: pseudo-label mIoU (and box AP50 of the kept
// detections) as a function of the threshold, computed in memory with the eval-semseg code.
import type { CocoImage } from "../data/coco.js";
import type { LabelMap } from "../data/png.js";
import { MaskdistillError } from "../errors.js";
import { newConfusion, accumulate, scoreMatched, type MatchMode } from "../evaluation/semseg.js";
import type { OverlapRule } from "./paint.js";
import { boxAp50, detectionPixels, keptDetections, labelImage, type DetectionSet, type LabelOptions } from "./genSegmentation.js";

export interface CurvePoint {
  threshold: number;
  overlapRule: OverlapRule;
  /** mIoU over the classes (21 unless `numClasses` says otherwise) after matching pseudo-classes to classes (eval-semseg's definition). */
  miou: number;
  pixelAcc: number;
  /** Kept detections (threshold rule) and painted ones (after the overlap rule). */
  kept: number;
  painted: number;
  ap50: number | null;
  ap50Agnostic: number | null;
}

/**
 * For each overlap rule and threshold: paint every image and score the maps against `gtMap(image)`
 * (null: image not scored), one 256 × C confusion each (C = `numClasses`, default 21: VOC's background + 20). Each image's masks are decoded once, and only
 * painted pixels are visited per setting: a map's confusion is that of an all-background map (computed
 * once per image) plus the painted pixels' rows minus their background rows — all with `accumulate`.
 */
export function thresholdCurve(
  set: DetectionSet,
  thresholds: number[],
  gtMap: (img: CocoImage) => LabelMap | null,
  opts: Omit<LabelOptions, "threshold" | "overlapRule"> & { overlapRules?: OverlapRule[]; match?: MatchMode; pinBackground?: boolean; images?: CocoImage[]; numClasses?: number } = {},
): CurvePoint[] {
  const rules = opts.overlapRules ?? ["intended"];
  const C = opts.numClasses ?? 21;
  const cells = rules.flatMap((overlapRule) => thresholds.map((threshold) => ({
    overlapRule, threshold, painted: newConfusion(256, C), paintedAsBackground: newConfusion(256, C), used: new Uint8Array(256), kept: 0, nPainted: 0,
  })));
  const background = newConfusion(256, C);
  const ids = new Set<number>();
  for (const img of opts.images ?? set.gt.images) {
    const gt = gtMap(img);
    if (!gt) continue;
    if (gt.width !== img.width || gt.height !== img.height) {
      throw new MaskdistillError(`GT map is ${gt.width}×${gt.height}, the image ${img.width}×${img.height}`, img.file_name);
    }
    ids.add(img.id);
    accumulate(background, new Uint8Array(gt.data.length), gt.data, 255, img.file_name);
    const dets = set.byImage.get(img.id) ?? [];
    const pixels = dets.map((d) => detectionPixels(d, img));
    const stamp = new Int32Array(gt.data.length);
    cells.forEach((c, ci) => {
      const labels = labelImage(img, dets, { ...opts, overlapRule: c.overlapRule, threshold: c.threshold }, pixels);
      // the painted pixels (union of the painted detections, each once) with their label and GT
      let n = 0;
      const idx: number[] = [];
      labels.detections.forEach((d) => {
        if (d.kept) c.kept++;
        if (d.outcome !== "painted") return;
        c.nPainted++;
        c.used[1 + d.category_id] = 1;
        const px = pixels[dets.findIndex((x) => x.id === d.id)];
        for (let k = 0; k < px.length; k++) if (stamp[px[k]] !== ci + 1) { stamp[px[k]] = ci + 1; idx.push(px[k]); n++; }
      });
      const pred = new Uint8Array(n), g = new Uint8Array(n);
      for (let k = 0; k < n; k++) { pred[k] = labels.map[idx[k]]; g[k] = gt.data[idx[k]]; }
      accumulate(c.painted, pred, g, 255, img.file_name);
      accumulate(c.paintedAsBackground, new Uint8Array(n), g, 255, img.file_name);
    });
  }
  const apAt = new Map<number, { ap50: number | null; ap50Agnostic: number | null }>();
  return cells.map((c) => {
    const conf = newConfusion(256, C);
    for (let i = 0; i < conf.counts.length; i++) conf.counts[i] = background.counts[i] + c.painted.counts[i] - c.paintedAsBackground.counts[i];
    c.used[0] = 1;
    const s = scoreMatched(conf, c.used, { match: opts.match ?? "hungarian", pinBackground: opts.pinBackground });
    if (!apAt.has(c.threshold)) apAt.set(c.threshold, boxAp50(set.gt, keptDetections(set, c.threshold, ids), ids, set.categoryNames));
    return { threshold: c.threshold, overlapRule: c.overlapRule, miou: s.miou, pixelAcc: s.pixel_acc, kept: c.kept, painted: c.nPainted, ...apAt.get(c.threshold)! };
  });
}
