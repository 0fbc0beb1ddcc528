// Stage (i) over a dataset (the reference's gen_masks.py): per image load -> preprocess -> last-layer
// q/k -> mask -> back-projection -> COCO annotation. Streaming (one image in memory at a time), with a
// resumable journal, shards, and a per-image record of bad images and empty masks.
//
// Files, for `--pred-json OUT` (the journal and errors file come from the shared runner, src/runner/perImage.ts):
//   OUT                     {images, annotations, categories}; written atomically at the end (shard i of
//                           n: OUT.shard-i-of-n.json beside it, `shardOutputPath`; `merge-preds` joins them)
//   OUT.partial.jsonl       journal: a header line (settings), then one line per finished image; removed
//                           once OUT is written
//   OUT.errors.jsonl        {file, image_id, reason} per unreadable image or image without a mask
// OUT is built from the journal alone, images sorted by id, annotation ids 1.. in that order, so a
// resumed run, an uninterrupted run and merged shards (mergePreds, src/runner/predictions.ts) give the same bytes. (The reference
// numbers annotations from 0; COCOeval takes a ground-truth id 0 for "unmatched", so we start at 1.)
import { MaskdistillError } from "../errors.js";
import { shortSideSize } from "../data/resize.js";
import { runPerImage, finishRun, journalPath, errorsPath, shardImages, shardOutputPath } from "../runner/perImage.js";
import { mergePreds, writePredictionsFromJournal, type PredAnnotation, type PredDataset, type PredEntry } from "../runner/predictions.js";
import { rleArea, rleFromMask, rleToBbox, rleToCoco } from "../mask/rle.js";
import { polygonsFromMask } from "../mask/polygon.js";
import { maskFromAttention } from "./maskFromAttention.js";
import { backProject } from "./backProject.js";
import type { VitBackbone } from "../modeling/backbone.js";
import type { VitPrecision } from "../modeling/vit.js";

/** One image to process: `id` goes to the output, `file` is read, `fileName` is written as `file_name`. */
export interface ImageItem {
  id: number;
  file: string;
  fileName: string;
  /** The size a ground-truth file states (COCO images); the decoded file must have it. */
  width?: number;
  height?: number;
}

/** The part of a ViT backbone gen-masks uses (a loaded `VitBackbone`). */
export type QkBackbone = Pick<VitBackbone, "patch" | "heads" | "lastSelfAttention"> & { precision?: VitPrecision };

export interface GenMasksOptions {
  images: ImageItem[];
  /** Output JSON; shard i of n writes `shardOutputPath(predJson, shard)` (OUT.shard-i-of-n.json). */
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
  /** Keep the finished journal (OUT.entries.jsonl): a rerun with `resume` then recomputes nothing — a pipeline's step. */
  keepEntries?: boolean;
  quiet?: boolean;
  /** Stops between images (e.g. on Ctrl-C); the journal keeps what is done, `resume` continues. */
  signal?: AbortSignal;
  /** Called after each image with its index in the (sharded) list and whether it got a mask. */
  onImage?: (index: number, image: ImageItem, masked: boolean) => void;
}



export interface GenMasksSummary {
  /** The file written: `predJson`, or this shard's `shardOutputPath(predJson, shard)`. */
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
interface JournalEntry extends PredEntry {
  problem?: "error" | "empty";
  clsSumNonPositive?: boolean;
}

/** The per-image counts kept in memory (the annotations live in the journal). */
interface EntryInfo {
  hasImage: boolean;
  masked: boolean;
  clsSumNonPositive: boolean;
}

export { journalPath, errorsPath, shardImages, mergePreds };
export type { PredAnnotation, PredDataset };

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
  const predJson = shardOutputPath(opts.predJson, opts.shard);
  const config = { resize, heads: avgHeads, topk, segm, shard: opts.shard ?? { index: 0, count: 1 }, images: list.map((i) => i.id), ...precisionTag(opts.backbone), ...opts.configTag };

  // heavy modules (they pull in sharp / onnxruntime through the backbone)
  const { loadRgb } = await import("../data/image.js");
  const { preprocess } = await import("../data/preprocess.js");
  const steps: ImageSteps = { loadRgb, preprocess, backbone: opts.backbone, resize, avgHeads, topk, segm };

  const run = await runPerImage<ImageItem, JournalEntry, EntryInfo>({
    label: "gen-masks",
    items: opts.images,
    shard: opts.shard,
    out: predJson,
    config,
    settingsHint: "images, resize, heads, topk, segm, shard, weights or --precision",
    resume: opts.resume,
    quiet: opts.quiet,
    signal: opts.signal,
    process: (item, index) => processImage(item, index, steps),
    summarize: (e) => ({ hasImage: !!e.image, masked: !!e.annotations?.length, clsSumNonPositive: !!e.clsSumNonPositive }),
    onItem: (index, item, e) => opts.onImage?.(index, item, !!e.annotations?.length),
  });
  writePredictionsFromJournal(predJson, run, PRED_CATEGORIES, (info) => info.hasImage);
  finishRun(predJson, run, { keepEntries: opts.keepEntries });

  const records = run.records;
  return {
    predJson,
    images: records.length,
    masks: records.filter((r) => r.info.masked).length,
    empty: records.filter((r) => r.problem === "empty").length,
    errors: records.filter((r) => r.problem === "error").length,
    clsSumNonPositive: records.filter((r) => r.info.clsSumNonPositive).length,
    resumed: run.resumed,
    secondsPerImage: run.computed ? run.seconds / run.computed : 0,
  };
}

/**
 * The backbone's precision in the journal settings, so --resume cannot mix fp32 and int8 masks in one
 * output. fp32 adds nothing: its journals keep the settings they had before precisions existed.
 */
function precisionTag(backbone: QkBackbone): { precision?: VitPrecision } {
  return backbone.precision && backbone.precision !== "fp32" ? { precision: backbone.precision } : {};
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
 * Memory budget of one image's self-attention: heads × tokens² float32 scores per layer. A pathological
 * image (e.g. 4000×3, whose short side is resized to 640) would ask for terabytes and kill the run.
 */
export const ATTENTION_BUDGET_BYTES = 4 * 2 ** 30;

/** Refuses (for this image only) a size whose attention exceeds ATTENTION_BUDGET_BYTES, before resizing. */
function checkAttentionBudget(width: number, height: number, s: ImageSteps): void {
  const [w, h] = s.resize > 0 ? shortSideSize(width, height, s.resize) : [width, height];
  const p = s.backbone.patch;
  const tokens = 1 + Math.ceil(w / p) * Math.ceil(h / p);
  const bytes = s.backbone.heads * tokens * tokens * 4;
  if (bytes > ATTENTION_BUDGET_BYTES) {
    const gib = (b: number) => (b / 2 ** 30).toFixed(b < 10 * 2 ** 30 ? 1 : 0);
    throw new MaskdistillError(
      `image ${width}×${height} is ${w}×${h} after resizing: ${tokens} tokens, whose self-attention needs ${gib(bytes)} GiB, ` +
        `over the ${gib(ATTENTION_BUDGET_BYTES)} GiB budget (an extreme size or aspect ratio); skipped — a smaller --resize fits more`,
    );
  }
}

/**
 * One image: load -> preprocess -> q/k -> mask -> back-projection -> annotation (or the reason there is
 * none). Bad input throws a MaskdistillError, which the runner records.
 */
async function processImage(item: ImageItem, index: number, s: ImageSteps): Promise<JournalEntry> {
  const entry: JournalEntry = { index, image_id: item.id, file: item.file };
  const img = await s.loadRgb(item.file);
  if (item.width !== undefined && item.height !== undefined && (img.width !== item.width || img.height !== item.height)) {
    // the GT's masks and boxes are in its stated size: a mask of another size cannot be scored against them
    throw new MaskdistillError(`the ground truth gives image ${item.id} the size ${item.width}×${item.height}, but the file decodes to ${img.width}×${img.height}; fix the GT entry or the file (skipped)`, item.file);
  }
  entry.image = { id: item.id, file_name: item.fileName, width: img.width, height: img.height };
  checkAttentionBudget(img.width, img.height, s);
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
  entry.annotations = [{ image_id: item.id, category_id: 0, score: 1, iscrowd: 0, area, bbox: rleToBbox(rle), segmentation }];
  return entry;
}
