// Stage (i) over a dataset (the reference's gen_masks.py): per image load -> preprocess -> last-layer
// q/k -> mask -> back-projection -> COCO annotation. Streaming (one image in memory at a time), with a
// resumable journal, shards, and a per-image record of bad images and empty masks.
//
// Files, for `--pred-json OUT` (the journal and errors file come from the shared runner, src/runner/perImage.ts):
//   OUT                     {images, annotations, categories}; written atomically at the end
//   OUT.partial.jsonl       journal: a header line (settings), then one line per finished image; removed
//                           once OUT is written
//   OUT.errors.jsonl        {file, image_id, reason} per unreadable image or image without a mask
// OUT is built from the journal alone, images sorted by id, annotation ids 1.. in that order, so a
// resumed run, an uninterrupted run and merged shards (mergePreds) give the same bytes. (The reference
// numbers annotations from 0; COCOeval takes a ground-truth id 0 for "unmatched", so we start at 1.)
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError, inputError } from "../errors.js";
import { runPerImage, finishRun, journalPath, errorsPath, shardImages, writeLinesAtomic, type PerImageRun } from "../runner/perImage.js";
import { writeCocoJson, type CocoImage } from "../data/coco.js";
import { rleArea, rleFromMask, rleToBbox, rleToCoco, type CocoRle } from "../mask/rle.js";
import { polygonsFromMask } from "../mask/polygon.js";
import { maskFromAttention } from "./maskFromAttention.js";
import { backProject } from "./backProject.js";
import type { VitBackbone } from "../modeling/backbone.js";

/** One image to process: `id` goes to the output, `file` is read, `fileName` is written as `file_name`. */
export interface ImageItem {
  id: number;
  file: string;
  fileName: string;
}

/** The part of a ViT backbone gen-masks uses (a loaded `VitBackbone`). */
export type QkBackbone = Pick<VitBackbone, "patch" | "heads" | "lastSelfAttention">;

export interface GenMasksOptions {
  images: ImageItem[];
  /** Output JSON (shards: this shard's output). */
  predJson: string;
  /** Loaded backbone (the CLI loads it from --weights). */
  backbone: QkBackbone;
  /** Short side after resizing (default 640); 0 = no resize. */
  resize?: number;
  /** Heads averaged for the CLS map (default 5). */
  heads?: number;
  /** Proposal share (default 0.4). */
  topk?: number;
  /** Segmentation format of the annotations (default "rle"). */
  segm?: "rle" | "polygon";
  shard?: { index: number; count: number };
  resume?: boolean;
  /** Anything else that makes outputs differ (weights, arch): stored in the journal header and checked on resume. */
  configTag?: Record<string, unknown>;
  quiet?: boolean;
  /** Stops between images (e.g. on Ctrl-C); the journal keeps what is done, `resume` continues. */
  signal?: AbortSignal;
  /** Called after each image with its index in the (sharded) list and whether it got a mask. */
  onImage?: (index: number, image: ImageItem, masked: boolean) => void;
}

export interface PredAnnotation {
  id: number;
  image_id: number;
  category_id: 0;
  score: 1;
  iscrowd: 0;
  area: number;
  bbox: [number, number, number, number];
  segmentation: CocoRle | number[][];
}

export interface PredDataset {
  images: CocoImage[];
  annotations: PredAnnotation[];
  categories: { id: number; name: string }[];
}

export interface GenMasksSummary {
  predJson: string;
  /** Images in this run's list (after sharding). */
  images: number;
  /** Annotations written (one per image with a mask). */
  masks: number;
  /** Images whose mask was empty (or gave no polygon): no annotation. */
  empty: number;
  /** Images that could not be read or processed. */
  errors: number;
  /** Images where the threshold's CLS score sum was <= 0 (METHOD.md Decision 2). */
  clsSumNonPositive: number;
  /** Images taken from the journal instead of recomputed. */
  resumed: number;
  /** Mean wall time per image computed in this run. */
  secondsPerImage: number;
}

export const PRED_CATEGORIES = [{ id: 0, name: "object" }];

/** One journal line: the result for one image. */
interface JournalEntry {
  index: number;
  image_id: number;
  file: string;
  image?: CocoImage;
  annotation?: Omit<PredAnnotation, "id">;
  problem?: "error" | "empty";
  reason?: string;
  clsSumNonPositive?: boolean;
}

/** The per-image counts kept in memory (the annotations live in the journal). */
interface EntryInfo {
  hasImage: boolean;
  masked: boolean;
  clsSumNonPositive: boolean;
}

export { journalPath, errorsPath, shardImages };

/**
 * Runs the mask generator over `opts.images` (or its shard) and writes `opts.predJson` with one
 * class-agnostic annotation per image that has a mask, plus the errors file. Returns the counts.
 */
export async function genMasks(opts: GenMasksOptions): Promise<GenMasksSummary> {
  const resize = opts.resize ?? 640;
  const avgHeads = opts.heads ?? 5;
  const topk = opts.topk ?? 0.4;
  const segm = opts.segm ?? "rle";
  const list = shardImages(opts.images, opts.shard);
  const config = { resize, heads: avgHeads, topk, segm, shard: opts.shard ?? { index: 0, count: 1 }, images: list.map((i) => i.id), ...opts.configTag };

  // heavy modules (they pull in sharp / onnxruntime through the backbone)
  const { loadRgb } = await import("../data/image.js");
  const { preprocess } = await import("../data/preprocess.js");
  const steps: ImageSteps = { loadRgb, preprocess, backbone: opts.backbone, resize, avgHeads, topk, segm };

  const run = await runPerImage<ImageItem, JournalEntry, EntryInfo>({
    label: "gen-masks",
    items: opts.images,
    shard: opts.shard,
    out: opts.predJson,
    config,
    settingsHint: "images, resize, heads, topk, segm, shard or weights",
    resume: opts.resume,
    quiet: opts.quiet,
    signal: opts.signal,
    process: (item, index) => processImage(item, index, steps),
    summarize: (e) => ({ hasImage: !!e.image, masked: !!e.annotation, clsSumNonPositive: !!e.clsSumNonPositive }),
    onItem: (index, item, e) => opts.onImage?.(index, item, !!e.annotation),
  });
  writeDatasetFromJournal(opts.predJson, run);
  finishRun(opts.predJson, run);

  const records = run.records;
  return {
    predJson: opts.predJson,
    images: records.length,
    masks: records.filter((r) => r.info.masked).length,
    empty: records.filter((r) => r.problem === "empty").length,
    errors: records.filter((r) => r.problem === "error").length,
    clsSumNonPositive: records.filter((r) => r.info.clsSumNonPositive).length,
    resumed: run.resumed,
    secondsPerImage: run.computed ? run.seconds / run.computed : 0,
  };
}

interface ImageSteps {
  loadRgb: typeof import("../data/image.js").loadRgb;
  preprocess: typeof import("../data/preprocess.js").preprocess;
  backbone: QkBackbone;
  resize: number;
  avgHeads: number;
  topk: number;
  segm: "rle" | "polygon";
}

/**
 * One image: load -> preprocess -> q/k -> mask -> back-projection -> annotation (or the reason there is
 * none). Bad input throws a MaskdistillError, which the runner records.
 */
async function processImage(item: ImageItem, index: number, s: ImageSteps): Promise<JournalEntry> {
  const entry: JournalEntry = { index, image_id: item.id, file: item.file };
  const img = await s.loadRgb(item.file);
  entry.image = { id: item.id, file_name: item.fileName, width: img.width, height: img.height };
  const pre = s.preprocess(img, { resize: s.resize > 0 ? s.resize : undefined, multiple: s.backbone.patch });
  const qk = await s.backbone.lastSelfAttention(pre);
  const mask = maskFromAttention(qk.q, qk.k, qk, { avgHeads: s.avgHeads, topk: s.topk });
  entry.clsSumNonPositive = mask.clsSumNonPositive;
  const full = backProject(mask.patchMask, qk.rows, qk.cols, s.backbone.patch, pre.validWidth, pre.validHeight, img.width, img.height);
  const rle = rleFromMask(full, img.height, img.width);
  const area = rleArea(rle);
  if (area < 1) {
    entry.problem = "empty";
    entry.reason = "empty mask after back-projection";
    return entry;
  }
  const segmentation = s.segm === "polygon" ? polygonsFromMask(full, img.height, img.width, 2) : rleToCoco(rle);
  if (Array.isArray(segmentation) && segmentation.length === 0) {
    entry.problem = "empty";
    entry.reason = "mask gives no polygon with 3 or more points";
    return entry;
  }
  entry.annotation = { image_id: item.id, category_id: 0, score: 1, iscrowd: 0, area, bbox: rleToBbox(rle), segmentation };
  return entry;
}

/**
 * Writes `{images, annotations, categories}` (the bytes JSON.stringify gives) atomically, reading each
 * image's line back from the journal: images sorted by id, annotation ids 1, 2, ... in that order.
 */
function writeDatasetFromJournal(out: string, run: PerImageRun<ImageItem, JournalEntry, EntryInfo>): void {
  const withImage = run.records.filter((r) => r.info.hasImage).sort((a, b) => a.image_id - b.image_id || a.index - b.index);
  const tmp = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, "w");
  try {
    fs.writeSync(fd, '{"images":[');
    withImage.forEach((r, i) => fs.writeSync(fd, (i ? "," : "") + JSON.stringify(run.readEntry(r).image)));
    fs.writeSync(fd, '],"annotations":[');
    let id = 0;
    for (const r of withImage) {
      if (!r.info.masked) continue;
      const annotation: PredAnnotation = { id: ++id, ...run.readEntry(r).annotation! };
      fs.writeSync(fd, (id > 1 ? "," : "") + JSON.stringify(annotation));
    }
    fs.writeSync(fd, `],"categories":${JSON.stringify(PRED_CATEGORIES)}}`);
    fs.closeSync(fd);
    fs.renameSync(tmp, out);
  } catch (e) {
    try { fs.closeSync(fd); } catch { /* already closed */ }
    fs.rmSync(tmp, { force: true });
    throw inputError(out, "could not be written", e);
  }
}

// ---- merging shard outputs ----

/**
 * Joins the outputs of `--shard i/n` runs into the JSON one run over all images gives: images sorted by
 * id, annotations in image order with ids 1, 2, ...; the shards' errors files are joined the same way.
 */
export function mergePreds(out: string, inputs: string[]): { images: number; annotations: number; errors: number } {
  if (inputs.length === 0) throw new MaskdistillError("merge-preds needs at least one input JSON");
  const parts: { image: CocoImage; anns: PredAnnotation[]; order: number }[] = [];
  const seen = new Map<number, string>();
  const problems: { image_id: number; line: string }[] = [];
  let order = 0;
  for (const file of inputs) {
    const ds = readPredJson(file);
    const byImage = new Map<number, PredAnnotation[]>();
    for (const a of ds.annotations) {
      if (!byImage.has(a.image_id)) byImage.set(a.image_id, []);
      byImage.get(a.image_id)!.push(a);
    }
    for (const img of ds.images) {
      if (seen.has(img.id)) throw new MaskdistillError(`image id ${img.id} also occurs in ${seen.get(img.id)}; shards must not overlap`, file);
      seen.set(img.id, file);
      parts.push({ image: img, anns: (byImage.get(img.id) ?? []).sort((a, b) => a.id - b.id), order: order++ });
    }
    for (const a of ds.annotations) if (!seen.has(a.image_id) || seen.get(a.image_id) !== file) throw new MaskdistillError(`annotation ${a.id} refers to image ${a.image_id}, which is not in its images list`, file);
    const errFile = errorsPath(file);
    if (fs.existsSync(errFile)) {
      for (const line of fs.readFileSync(errFile, "utf8").split("\n")) {
        if (!line.trim()) continue;
        let rec: { image_id?: unknown };
        try {
          rec = JSON.parse(line);
        } catch (e) {
          throw inputError(errFile, "errors file has a line that is not JSON", e);
        }
        problems.push({ image_id: Number(rec.image_id), line });
      }
    }
  }
  parts.sort((a, b) => a.image.id - b.image.id || a.order - b.order);
  const annotations: PredAnnotation[] = [];
  for (const p of parts) for (const a of p.anns) annotations.push({ ...a, id: annotations.length + 1 });
  writeCocoJson(out, { images: parts.map((p) => p.image), annotations, categories: PRED_CATEGORIES });
  problems.sort((a, b) => a.image_id - b.image_id);
  writeLinesAtomic(errorsPath(out), problems.map((p) => p.line));
  return { images: parts.length, annotations: annotations.length, errors: problems.length };
}

function readPredJson(file: string): PredDataset {
  let raw: any;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw inputError(file, "cannot read predictions JSON", e);
  }
  if (!raw || !Array.isArray(raw.images) || !Array.isArray(raw.annotations)) {
    throw new MaskdistillError("not a gen-masks output (expected {images: [...], annotations: [...]})", file);
  }
  return raw as PredDataset;
}
