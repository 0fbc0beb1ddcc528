// Stage iv over a data set (the reference's gen_segmentation.py, METHOD.md §4.2): one semantic
// pseudo-label PNG per image of the GT file from a COCO results list, through the shared per-image
// runner (journal, --resume, --shard, errors file, progress).
//
// Files in OUTPUT_DIR:
//   <stem>.png            single-channel palette PNG, values 0 (background) and 1 + category_id, at the
//                         image's size; every image of the GT file gets one (all 0 when it has no detection)
//   summary.json          counts (kept / dropped per rule), the images without detections, the scores
//                         (`summary.shard-i-of-n.json` for a shard, no mIoU then, plus its kept journal
//                         summary.shard-i-of-n.json.entries.jsonl; `merge` writes summary.json from those,
//                         the bytes one run over all images writes)
//   summary.json.errors.jsonl  {file, image_id, reason} per image that could not be painted
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError } from "../errors.js";
import { cocoSubsetByIds, readCocoDataset, validateCocoResults, type CocoDataset, type CocoImage, type CocoResult } from "../data/coco.js";
import { writeLabelPng } from "../data/png.js";
import { maskFromRle, rleFromCoco, rlePixels } from "../mask/rle.js";
import { loadResults, evaluateResults, type CocoDetection } from "../evaluation/cocoeval.js";
import { evaluateSemsegDirs, type MatchMode, type SemsegScore } from "../evaluation/semseg.js";
import { runPerImage, finishRun, mergeShardRuns, writeFileAtomic, shardImages, shardOutputPath, errorsPath, type Shard } from "../runner/perImage.js";
import { paintDetections, scoreOrder, selectConfident, type MaskType, type Outcome, type OverlapRule } from "./paint.js";

export const DEFAULT_THRESHOLD = 0.9;

/** The detections of a data set, grouped per GT image in file order. */
export interface DetectionSet {
  gt: CocoDataset;
  /** loadRes-style detections (ids 1..n in file order; a missing segmentation is the box polygon). */
  byImage: Map<number, CocoDetection[]>;
  detections: number;
  /** GT images whose detections were not in descending score order (they get sorted, stably). */
  unsortedImages: number[];
  /** The input's own category names, when it is an {annotations, categories} file (e.g. cluster names). */
  categoryNames?: Map<number, string>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Reads a COCO results list (or an `{annotations: [...]}` file such as a stage-ii output) against the GT
 * images: every image id must be a GT image, RLE sizes the image size, `1 + category_id` a label in
 * 1..254. Category ids need not be GT categories (pseudo-classes, cluster ids).
 */
export function readDetections(inputFile: string, gt: CocoDataset): DetectionSet {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(inputFile, "utf8"));
  } catch (e) {
    throw new MaskdistillError(`cannot read the detections (${(e as Error).message})`, inputFile);
  }
  let categoryNames: Map<number, string> | undefined;
  if (isObject(raw)) {
    if (!Array.isArray(raw.annotations)) throw new MaskdistillError("expected a COCO results list, or an object with an 'annotations' list", inputFile);
    if (Array.isArray(raw.categories)) {
      categoryNames = new Map(raw.categories.filter(isObject).map((c) => [c.id as number, String(c.name)]));
    }
    raw = raw.annotations;
  }
  // validate against the GT images, with the results' own categories (pseudo-classes are allowed)
  const cats = Array.isArray(raw) ? [...new Set(raw.map((r) => (isObject(r) ? r.category_id : undefined)))] : [];
  const results: CocoResult[] = validateCocoResults(raw, inputFile, { ...gt, categories: cats.map((id) => ({ id: id as number, name: String(id) })) });
  results.forEach((r, i) => {
    if (!Number.isInteger(r.category_id) || r.category_id < 0 || r.category_id > 253) {
      throw new MaskdistillError(`result #${i} (image ${r.image_id}): category_id ${r.category_id} gives no label 1 + category_id in 1..254`, inputFile);
    }
  });
  let dets: CocoDetection[];
  try {
    dets = loadResults(gt, results);
  } catch (e) {
    throw new MaskdistillError((e as Error).message, inputFile);
  }
  const byImage = new Map<number, CocoDetection[]>();
  for (const d of dets) {
    if (!byImage.has(d.image_id)) byImage.set(d.image_id, []);
    byImage.get(d.image_id)!.push(d);
  }
  const unsortedImages: number[] = [];
  for (const [id, list] of byImage) if (!scoreOrder(list.map((d) => d.score)).sorted) unsortedImages.push(id);
  unsortedImages.sort((a, b) => a - b);
  return { gt, byImage, detections: dets.length, unsortedImages, categoryNames };
}

/** One detection of an image after stage iv: its place in the input list, and what happened to it. */
export interface LabelledDetection {
  /** 1-based position in the input list (the loadRes id). */
  id: number;
  score: number;
  category_id: number;
  bbox: number[];
  /** Passed the threshold rule. */
  kept: boolean;
  outcome: Outcome;
}

export interface ImageLabels {
  width: number;
  height: number;
  map: Uint8Array;
  /** In visiting order (descending score, stable). */
  detections: LabelledDetection[];
}

export interface LabelOptions {
  threshold?: number;
  overlapRule?: OverlapRule;
  maskType?: MaskType;
}

/** Decodes a detection's mask at the image size (pycocotools annToMask). */
export function detectionMask(d: CocoDetection, img: CocoImage): Uint8Array {
  return maskFromRle(rleFromCoco(d.segmentation!, img.height, img.width));
}

/** The row-major indices of a detection's mask pixels (its annToMask ones). */
export function detectionPixels(d: CocoDetection, img: CocoImage): Int32Array {
  return rlePixels(rleFromCoco(d.segmentation!, img.height, img.width));
}

/**
 * Stage iv for one image: sort (stable, descending score), keep by the threshold rule, paint the kept
 * detections by the overlap rule. `pixels` (per detection of `dets`, the row-major indices of its mask's
 * ones, `rlePixels`) can be given to reuse decoded masks across settings.
 */
export function labelImage(img: CocoImage, dets: CocoDetection[], opts: LabelOptions = {}, pixels?: Int32Array[]): ImageLabels {
  const threshold = opts.threshold ?? DEFAULT_THRESHOLD;
  const { order } = scoreOrder(dets.map((d) => d.score));
  const sorted = order.map((i) => dets[i]);
  const keep = selectConfident(sorted.map((d) => d.score), threshold);
  const top = sorted.length ? sorted[0].score : 0;
  const kept = order.filter((_, j) => keep[j]);
  const painted = paintDetections(
    kept.map((i) => ({ score: dets[i].score, category_id: dets[i].category_id, bbox: dets[i].bbox, pixels: pixels ? pixels[i] : detectionPixels(dets[i], img) })),
    img.height, img.width, opts,
  );
  let k = 0;
  const detections = sorted.map((d, j): LabelledDetection => ({
    id: d.id, score: d.score, category_id: d.category_id, bbox: Array.from(d.bbox), kept: keep[j],
    outcome: keep[j] ? painted.outcomes[k++] : top < threshold ? "not-top" : "below-threshold",
  }));
  return { width: img.width, height: img.height, map: painted.map, detections };
}

/** The detections the threshold rule keeps (what the reference scores with box AP50), in input order. */
export function keptDetections(set: DetectionSet, threshold = DEFAULT_THRESHOLD, imageIds?: Set<number>): CocoDetection[] {
  const out: CocoDetection[] = [];
  for (const [id, dets] of set.byImage) {
    if (imageIds && !imageIds.has(id)) continue;
    const { order } = scoreOrder(dets.map((d) => d.score));
    const keep = selectConfident(order.map((i) => dets[i].score), threshold);
    order.forEach((i, j) => { if (keep[j]) out.push(dets[i]); });
  }
  return out.sort((a, b) => a.id - b.id);
}

/**
 * Box AP50 (COCOeval bbox, stats[1]) of detections against the GT annotations of `imageIds`, class-agnostic
 * and class-aware. Class-aware only where the detections' categories are GT categories: every id is a GT
 * category id and, when the detections name their categories (`names`, e.g. a stage-ii file's clusters),
 * the names are the GT's; else `ap50` is null and `ap50Note` says why. null where there is no GT object.
 */
export function boxAp50(
  gt: CocoDataset, dets: CocoDetection[], imageIds?: Set<number>, names?: Map<number, string>,
): { ap50: number | null; ap50Agnostic: number | null; ap50Note?: string } {
  const sub: CocoDataset = imageIds
    ? cocoSubsetByIds(gt, imageIds)
    : gt;
  if (sub.annotations.length === 0 || sub.images.length === 0) return { ap50: null, ap50Agnostic: null, ap50Note: "no GT objects" };
  const results = dets.map((d) => ({ image_id: d.image_id, category_id: d.category_id, score: d.score, bbox: Array.from(d.bbox) as [number, number, number, number] }));
  const gtNames = new Map(gt.categories.map((c) => [c.id, c.name]));
  const foreign = results.find((r) => !gtNames.has(r.category_id) || (names?.has(r.category_id) && names.get(r.category_id) !== gtNames.get(r.category_id)));
  const score = (useCats: boolean): number | null => {
    if (results.length === 0) return 0;
    const s = evaluateResults(sub, results, { iouType: "bbox", useCats }).stats[1];
    return s < 0 ? null : s;
  };
  if (foreign) {
    const why = gtNames.has(foreign.category_id)
      ? `category ${foreign.category_id} is '${names!.get(foreign.category_id)}' in the detections but '${gtNames.get(foreign.category_id)}' in the GT`
      : `category ${foreign.category_id} is not a GT category`;
    return { ap50: null, ap50Agnostic: score(false), ap50Note: `class-aware AP50 not scored: ${why} (pseudo-classes?)` };
  }
  return { ap50: score(true), ap50Agnostic: score(false) };
}

/** File stem of an image's pseudo-label PNG. */
export const labelStem = (img: CocoImage): string => path.parse(path.basename(img.file_name)).name;

export interface GenSegmentationOptions extends LabelOptions {
  /** COCO results list (or {annotations}) of the detector. */
  inputFile: string;
  /** COCO JSON with the images (and, for AP50, the GT annotations). */
  gtFile: string;
  outputDir: string;
  /** Semantic GT PNGs (e.g. VOC SegmentationClass): then the mIoU of the pseudo-labels is scored. */
  gtDir?: string;
  /** Matching of pseudo-classes to GT classes for the mIoU (default hungarian). */
  match?: MatchMode;
  pinBackground?: boolean;
  shard?: Shard;
  /** Instead of painting: join the finished shards in outputDir into summary.json (same settings as the shards). */
  merge?: boolean;
  resume?: boolean;
  quiet?: boolean;
  signal?: AbortSignal;
  /** Called after each image computed in this run (index in this shard's list). */
  onImage?: (index: number, imageId: number) => void;
  /** Warnings (unsorted results, ...); default: none are printed. */
  onWarning?: (message: string) => void;
}

export interface GenSegmentationSummary {
  inputFile: string;
  gtFile: string;
  outputDir: string;
  threshold: number;
  overlapRule: OverlapRule;
  maskType: MaskType;
  shard: { index: number; count: number };
  /** PNGs written (images of this shard). */
  images: number;
  detections: number;
  imagesWithDetections: number;
  /** Images whose results were not in descending score order (sorted, with a warning). */
  unsortedImages: number;
  /** Threshold rule: kept, and dropped as below threshold / not the top one of a low-confidence image. */
  thresholdRule: { kept: number; droppedBelowThreshold: number; droppedNotTop: number };
  /** Overlap rule among the kept detections: painted, and dropped. */
  overlapRuleCounts: { painted: number; droppedOverlap: number; droppedTopRows: number };
  /** Images without any detection: an all-background map. */
  emptyImages: { count: number; images: { image_id: number; stem: string }[] };
  /** Maps with no foreground pixel (no detection, or only empty masks). */
  backgroundOnly: number;
  errors: number;
  /** Box AP50 of the kept detections (class-aware when their categories are GT categories, else null). */
  ap50: number | null;
  ap50Agnostic: number | null;
  /** Why `ap50` is null, when it is. */
  ap50Note: string | null;
  /** mIoU of the pseudo-labels against --gt-dir (unsharded runs). */
  semseg: (Omit<SemsegScore, "confusion"> & { images: number; match: MatchMode; pinBackground: boolean }) | null;
  warnings: string[];
}

/** Journal entry of one image. */
interface Entry {
  index: number;
  image_id: number;
  file: string;
  problem?: "error";
  reason?: string;
  stem?: string;
  detections?: number;
  unsorted?: boolean;
  counts?: Record<Outcome, number>;
  foreground?: boolean;
}

const zeroCounts = (): Record<Outcome, number> => ({ painted: 0, "below-threshold": 0, "not-top": 0, overlap: 0, "top-rows": 0 });

export const summaryPath = (outputDir: string, shard?: Shard): string => shardOutputPath(path.join(outputDir, "summary.json"), shard);

/** Writes one pseudo-label PNG per GT image and summary.json; returns the summary (plus timing). */
export async function genSegmentation(opts: GenSegmentationOptions): Promise<GenSegmentationSummary & { secondsPerImage: number; resumed: number }> {
  const threshold = opts.threshold ?? DEFAULT_THRESHOLD;
  const overlapRule = opts.overlapRule ?? "intended", maskType = opts.maskType ?? "mask";
  if (!Number.isFinite(threshold)) throw new MaskdistillError(`threshold must be a number, got ${threshold}`);
  if (opts.merge && opts.shard && opts.shard.count > 1) throw new MaskdistillError("merge joins all shards: give it without a shard");
  const shard = opts.merge ? { index: 0, count: 1 } : opts.shard ?? { index: 0, count: 1 };
  const gt = readCocoDataset(opts.gtFile);
  const set = readDetections(opts.inputFile, gt);
  const warnings: string[] = [];
  const warn = (m: string) => { warnings.push(m); opts.onWarning?.(m); };
  if (set.unsortedImages.length) {
    warn(`${opts.inputFile}: the detections of ${set.unsortedImages.length} image(s) are not in descending score order ` +
      `(e.g. image ${set.unsortedImages.slice(0, 3).join(", ")}); sorted by score (stable) — the reference assumes sorted results`);
  }
  const images = gt.images.slice().sort((a, b) => a.id - b.id);
  const stems = new Map<string, number>();
  for (const im of images) {
    const s = labelStem(im);
    if (stems.has(s)) throw new MaskdistillError(`images ${stems.get(s)} and ${im.id} have the same file stem '${s}'; their pseudo-label PNGs would collide`, opts.gtFile);
    stems.set(s, im.id);
  }
  fs.mkdirSync(opts.outputDir, { recursive: true });
  const out = summaryPath(opts.outputDir, shard);
  const items = images.map((im) => ({ id: im.id, file: im.file_name, image: im }));
  const unsorted = new Set(set.unsortedImages);
  const configFor = (s: Shard) => ({
    inputFile: path.resolve(opts.inputFile), gtFile: path.resolve(opts.gtFile), threshold, overlapRule, maskType, shard: s,
    images: shardImages(items, s).map((i) => i.id),
  });
  const settingsHint = "input, GT, threshold, overlap rule, mask type, shard or images";
  const run = opts.merge ? mergeShardRuns<typeof items[number], Entry, Entry>({ label: "gen-segmentation", items, out, configFor, settingsHint, summarize: (e) => e }) : await runPerImage({
    label: "gen-segmentation",
    items,
    shard,
    out,
    config: configFor(shard),
    settingsHint,
    resume: opts.resume,
    quiet: opts.quiet,
    signal: opts.signal,
    process: (item, index): Entry => {
      const img = item.image;
      const dets = set.byImage.get(img.id) ?? [];
      const labels = labelImage(img, dets, { threshold, overlapRule, maskType });
      const stem = labelStem(img);
      writeLabelPng(path.join(opts.outputDir, `${stem}.png`), { width: img.width, height: img.height, data: labels.map });
      const counts = zeroCounts();
      for (const d of labels.detections) counts[d.outcome]++;
      return {
        index, image_id: img.id, file: img.file_name, stem, detections: dets.length, unsorted: unsorted.has(img.id), counts,
        foreground: labels.map.some((v) => v !== 0),
      };
    },
    summarize: (e) => e,
    onItem: (index, item) => opts.onImage?.(index, item.id),
  });

  const entries = run.records.map((r) => r.info);
  const sum = (k: Outcome) => entries.reduce((s, e) => s + (e.counts?.[k] ?? 0), 0);
  const ok = entries.filter((e) => !e.problem);
  const empty = ok.filter((e) => e.detections === 0).map((e) => ({ image_id: e.image_id, stem: e.stem! }));
  const shardIds = new Set(run.items.map((i) => i.id));
  const { ap50, ap50Agnostic, ap50Note } = boxAp50(gt, keptDetections(set, threshold, shardIds), shardIds, set.categoryNames);
  let semseg: GenSegmentationSummary["semseg"] = null;
  const match = opts.match ?? "hungarian", pinBackground = opts.pinBackground ?? false;
  if (opts.gtDir) {
    if (shard.count > 1) {
      warn(`mIoU is not scored for a shard; score the joined output with 'maskdistill eval-semseg --pred-dir ${opts.outputDir} --gt-dir ${opts.gtDir} --match ${match}'`);
    } else {
      const { confusion: _c, ...score } = evaluateSemsegDirs(opts.outputDir, opts.gtDir, { numClasses: 21, match, pinBackground });
      semseg = { ...score, match, pinBackground };
    }
  }
  const errors = finishRun(out, run, { keepEntries: shard.count > 1 });
  const summary: GenSegmentationSummary = {
    inputFile: opts.inputFile, gtFile: opts.gtFile, outputDir: opts.outputDir, threshold, overlapRule, maskType, shard,
    images: entries.length,
    detections: ok.reduce((s, e) => s + (e.detections ?? 0), 0),
    imagesWithDetections: ok.filter((e) => (e.detections ?? 0) > 0).length,
    unsortedImages: ok.filter((e) => e.unsorted).length,
    thresholdRule: { kept: sum("painted") + sum("overlap") + sum("top-rows"), droppedBelowThreshold: sum("below-threshold"), droppedNotTop: sum("not-top") },
    overlapRuleCounts: { painted: sum("painted"), droppedOverlap: sum("overlap"), droppedTopRows: sum("top-rows") },
    emptyImages: { count: empty.length, images: empty },
    backgroundOnly: ok.filter((e) => !e.foreground).length,
    errors,
    ap50, ap50Agnostic, ap50Note: ap50Note ?? null, semseg, warnings,
  };
  writeFileAtomic(out, JSON.stringify(summary, null, 1) + "\n");
  return { ...summary, secondsPerImage: run.computed ? run.seconds / run.computed : 0, resumed: run.resumed };
}

export { errorsPath };
