// Instance-segmentation mask AP as the reference `eval_instances.py` (METHOD.md §6.4 (c)):
//  - "multi": all predictions against all GT, COCOeval (loadRes semantics);
//  - "single" (--eval_most_confident): the top-scoring prediction per image, each evaluated against
//    the one GT object of its image whose box (corners rounded to integers) has the largest IoU with
//    the prediction's box, computed in float32 as the reference's torch `iou_box`.
import type { CocoAnnotation, CocoDataset, CocoResult } from "../data/coco.js";
import { MaskdistillError } from "../errors.js";
import { rleFromCoco, rleToBbox } from "../mask/rle.js";
import {
  cocoEval, defaultParams, formatSummary, loadResults, type CocoDetection, type CocoEvalResult, type EvalProgress, type IouType,
} from "./cocoeval.js";

export type InstanceProtocol = "multi" | "single";

export interface InstanceEvalOptions {
  /** Default 'segm' (the reference evaluates masks only). */
  iouType?: IouType;
  /** Class-agnostic matching (COCOeval useCats = 0). */
  agnostic?: boolean;
  /** The "single" protocol (reference flag --eval_most_confident). */
  mostConfident?: boolean;
  /** Progress of the matching step (groups of one image and category). */
  onProgress?: EvalProgress;
}

export interface InstanceEvalReport {
  protocol: InstanceProtocol;
  iouType: IouType;
  useCats: boolean;
  /** The 12 COCO stats. */
  stats: number[];
  /** stats[1]: AP at IoU 0.5, the number the paper reports. */
  ap50: number;
  /** AP50 per GT category in id order (one entry named "all" when agnostic); -1 where the category has no GT. */
  perCategory: { id: number; name: string; ap50: number }[];
  /** pycocotools' 12-line summary. */
  summary: string;
  /** Detections and GT objects that entered COCOeval. */
  numDetections: number;
  numGtObjects: number;
  /** single protocol: images whose chosen prediction had no GT object to pair with (the reference asserts there is one). */
  imagesWithoutGt: number[];
  eval: CocoEvalResult;
}

/** Python's round() on a float: half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f; // exact for doubles
  if (diff < 0.5) return f;
  if (diff > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The reference `iou_box(b1, b2s)` in float32: b1 and each b2 are [x1, y1, x2, y2]; the widths and
 * heights carry +1e-8 (in float32) exactly as written there.
 */
export function iouBoxFloat32(b1: ArrayLike<number>, b2s: ArrayLike<number>[]): Float32Array {
  const f = Math.fround;
  const EPS = f(1e-8);
  const [ax1, ay1, ax2, ay2] = [f(b1[0]), f(b1[1]), f(b1[2]), f(b1[3])];
  const w1 = f(ax2 - ax1), h1 = f(f(ay2 - ay1) + EPS);
  const area1 = f(w1 * h1);
  const out = new Float32Array(b2s.length);
  b2s.forEach((b2, i) => {
    const [bx1, by1, bx2, by2] = [f(b2[0]), f(b2[1]), f(b2[2]), f(b2[3])];
    const iw = Math.max(f(Math.min(ax2, bx2) - Math.max(ax1, bx1)), 0);
    const ih = Math.max(f(Math.min(ay2, by2) - Math.max(ay1, by1)), 0);
    const inter = f(iw * ih);
    const w2 = f(bx2 - bx1), h2 = f(f(by2 - by1) + EPS);
    const union = f(f(f(area1 + f(w2 * h2)) - inter) + EPS);
    out[i] = f(inter / union);
  });
  return out;
}

/** A result's box: its bbox, or the tight box of its mask when it has none. */
function resultBox(r: CocoResult, gt: CocoDataset, index: number): ArrayLike<number> {
  if (r.bbox) return r.bbox;
  const img = gt.images.find((im) => im.id === r.image_id);
  if (!img || r.segmentation === undefined) throw new MaskdistillError(`result #${index} (image ${r.image_id}) has no bbox`);
  return rleToBbox(rleFromCoco(r.segmentation, img.height, img.width));
}

/**
 * The "single" protocol's selection: per image the first prediction with the highest score
 * (id = its index in the results list, area = int(w*h) of its box), and per such prediction the GT
 * object of that image (any category, crowd included, in file order) with the largest box IoU;
 * ties go to the first.
 */
export function selectMostConfident(
  gt: CocoDataset,
  results: CocoResult[],
): { detections: CocoDetection[]; gt: CocoDataset; imagesWithoutGt: number[] } {
  const best = new Map<number, CocoDetection>();
  results.forEach((r, i) => {
    const prev = best.get(r.image_id);
    if (prev && !(prev.score < r.score)) return;
    const box = resultBox(r, gt, i);
    best.set(r.image_id, {
      id: i, image_id: r.image_id, category_id: r.category_id, score: r.score,
      area: Math.trunc(box[2] * box[3]), bbox: box, segmentation: r.segmentation,
    });
  });
  const annsByImage = new Map<number, CocoAnnotation[]>();
  for (const ann of gt.annotations) {
    let list = annsByImage.get(ann.image_id);
    if (!list) annsByImage.set(ann.image_id, (list = []));
    list.push(ann);
  }
  const selected: CocoAnnotation[] = [];
  const imagesWithoutGt: number[] = [];
  for (const det of best.values()) {
    const anns = annsByImage.get(det.image_id) ?? [];
    if (anns.length === 0) { imagesWithoutGt.push(det.image_id); continue; }
    const b = det.bbox;
    const predBox = [b[0], b[1], b[0] + b[2], b[1] + b[3]];
    const gtBoxes = anns.map((a) => {
      const [x, y, w, h] = a.bbox;
      return [x, y, x + w, y + h].map(roundHalfEven);
    });
    const ious = iouBoxFloat32(predBox, gtBoxes);
    let arg = 0;
    for (let j = 1; j < ious.length; j++) if (ious[j] > ious[arg]) arg = j;
    selected.push(anns[arg]);
  }
  return {
    detections: Array.from(best.values()),
    gt: { images: gt.images, annotations: selected, categories: gt.categories },
    imagesWithoutGt,
  };
}

/** eval_instances.py: COCOeval of instance predictions under the multi or single protocol. */
export function evaluateInstances(gt: CocoDataset, results: CocoResult[], opts: InstanceEvalOptions = {}): InstanceEvalReport {
  const iouType = opts.iouType ?? "segm";
  const useCats = !opts.agnostic;
  const protocol: InstanceProtocol = opts.mostConfident ? "single" : "multi";
  let evalGt = gt, detections: CocoDetection[], imagesWithoutGt: number[] = [];
  if (protocol === "single") {
    const sel = selectMostConfident(gt, results);
    evalGt = sel.gt;
    detections = sel.detections;
    imagesWithoutGt = sel.imagesWithoutGt;
  } else {
    detections = loadResults(gt, results);
  }
  const params = defaultParams(evalGt, iouType, useCats);
  const ev = cocoEval(evalGt, detections, params, opts.onProgress);
  const perCategory = useCats
    ? params.catIds.map((id, k) => ({ id, name: gt.categories.find((c) => c.id === id)!.name, ap50: ev.ap50PerCategory[k] }))
    : [{ id: -1, name: "all", ap50: ev.ap50PerCategory[0] }];
  return {
    protocol, iouType, useCats,
    stats: ev.stats, ap50: ev.stats[1], perCategory,
    summary: formatSummary(ev.stats, iouType, params),
    numDetections: detections.length, numGtObjects: evalGt.annotations.length,
    imagesWithoutGt, eval: ev,
  };
}
