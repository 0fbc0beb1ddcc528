// `detect` over a dataset: the Mask R-CNN on every image through the shared per-image runner (journal,
// --resume, --shard, errors file, progress), written as {images, annotations, categories} with each
// image's detections in descending score order, as detectron2's COCO evaluator writes them: box
// [x, y, w, h] from the predicted box, segmentation the pasted mask as COCO RLE, area the mask's area.
import type { CocoResult } from "../data/coco.js";
import type { ImageItem } from "../distill/genMasks.js";
import { MaskdistillError } from "../errors.js";
import { rleArea, rleFromMask, rleToCoco } from "../mask/rle.js";
import { finishRun, runPerImage, shardOutputPath, type PerImageRun, type Shard } from "../runner/perImage.js";
import { writePredictionsFromJournal, type PredCategory, type PredEntry } from "../runner/predictions.js";
import type { MaskRcnnLayout, MaskRcnnNet } from "../engine/models/maskrcnn.js";
import { detectImage, type ImageDetections, type MaskRcnnInference } from "./maskrcnn.js";
import type { DetectWorkerAnswer, DetectWorkerInit } from "./detectWorker.js";

export interface DetectOptions {
  images: ImageItem[];
  /** Output JSON; shard i of n writes `shardOutputPath(out, shard)` (OUT.shard-i-of-n.json; `merge-preds` joins them). */
  out: string;
  net: MaskRcnnNet;
  inference: MaskRcnnInference;
  /** category_id written for a label (1…numClasses−1); default label − 1 (pseudo-classes 0…K−1, as stage ii writes). */
  categoryOf?: (label: number) => number;
  categories?: PredCategory[];
  shard?: Shard;
  resume?: boolean;
  quiet?: boolean;
  signal?: AbortSignal;
  /** Extra settings for the journal header (e.g. the weights file). */
  configTag?: Record<string, unknown>;
  /** Keep the finished journal (OUT.entries.jsonl): a rerun with `resume` then recomputes nothing — a pipeline's step. */
  keepEntries?: boolean;
  /**
   * Threads that detect (default 1): this one and workers − 1 helper threads with a copy of the network, the
   * engine's threads divided among them; the images alternate between them and the output is the same.
   */
  workers?: number;
}

export interface DetectSummary {
  /** The file written (this shard's, for a shard). */
  out: string;
  images: number;
  detections: number;
  withoutDetections: number;
  errors: number;
  resumed: number;
  secondsPerImage: number;
}

/** One image's detections as COCO result annotations (mask as compressed RLE, box as [x, y, w, h]). */
export function detectionAnnotations(det: ImageDetections, imageId: number, height: number, width: number, categoryOf: (label: number) => number) {
  const out: NonNullable<PredEntry["annotations"]> = [];
  for (let d = 0; d < det.scores.length; d++) {
    const rle = rleFromMask(det.masks[d], height, width);
    const [x1, y1, x2, y2] = det.boxes.subarray(4 * d, 4 * d + 4);
    out.push({ image_id: imageId, category_id: categoryOf(det.labels[d]), score: det.scores[d], iscrowd: 0, area: rleArea(rle), bbox: [x1, y1, x2 - x1, y2 - y1], segmentation: rleToCoco(rle) });
  }
  return out;
}

/** One image through the network: the image as a COCO file lists it, and its detections (best first) as result annotations. */
export async function detectItem(net: MaskRcnnNet, item: ImageItem, inference: MaskRcnnInference, categoryOf: (label: number) => number) {
  const { loadRgb } = await import("../data/image.js");
  const img = await loadRgb(item.file);
  const det = await detectImage(net, img, inference);
  return { image: { id: item.id, file_name: item.fileName, width: img.width, height: img.height }, annotations: detectionAnnotations(det, item.id, img.height, img.width, categoryOf) };
}

/**
 * `detect` without files (no journal, no resume): the network on every image, the detections as one COCO
 * results list in memory (image order, each image's best first). For a few hundred images in a notebook or
 * a test; `detectDataset` for a data set. The engine must be initialised.
 */
export async function detectImages(opts: { net: MaskRcnnNet; images: ImageItem[]; inference: MaskRcnnInference; categoryOf?: (label: number) => number;
    onImage?: (done: number, total: number) => void }): Promise<CocoResult[]> {
  const categoryOf = opts.categoryOf ?? ((label: number) => label - 1);
  const out: CocoResult[] = [];
  for (const [i, item] of opts.images.entries()) {
    out.push(...(await detectItem(opts.net, item, opts.inference, categoryOf)).annotations);
    opts.onImage?.(i + 1, opts.images.length);
  }
  return out;
}

/** A Mask R-CNN file read for inference: the network, and what the file says about its labels and pixels. */
export interface MaskRcnnModel {
  net: MaskRcnnNet;
  layout: MaskRcnnLayout;
  /** COCO category id of label l (= categoryIds[l − 1]): a train-maskrcnn file's `category_ids` metadata; null when the file has none. */
  categoryIds: number[] | null;
  /** A detectron2 file's PIXEL_MEAN / PIXEL_STD buffers (BGR), when present. */
  pixel: { pixelMean: number[]; pixelStd: number[] } | null;
  /** The preset the network was trained with (a train-maskrcnn file's `preset` metadata); null when the file does not say. */
  preset: "detectron2" | "torchvision" | null;
}

/** Reads a Mask R-CNN R50-FPN file of either layout (any class count, width and float dtype) for inference. */
export async function loadMaskRcnnModel(file: string): Promise<MaskRcnnModel> {
  const { readStateDict, toFloat32 } = await import("../modeling/checkpoint/index.js");
  const { maskRcnnFromAnyStateDict } = await import("../engine/models/maskrcnn.js");
  const { stateDict } = await readStateDict(file);
  const { net, layout } = maskRcnnFromAnyStateDict(stateDict, file);
  const pm = stateDict.get("pixel_mean"), ps = stateDict.get("pixel_std");
  const pixel = pm && ps && pm.data.length === 3 && ps.data.length === 3 ? { pixelMean: Array.from(toFloat32(pm)), pixelStd: Array.from(toFloat32(ps)) } : null;
  let categoryIds: number[] | null = null, preset: MaskRcnnModel["preset"] = null;
  const { safetensorsMetadataOf } = await import("../pretrain/safetensorsIo.js");
  const metadata = await safetensorsMetadataOf(file);
  if (metadata) {
    if (metadata.preset === "detectron2" || metadata.preset === "torchvision") preset = metadata.preset;
    const ids = metadata.category_ids;
    if (ids) {
      const parsed = JSON.parse(ids) as unknown;
      if (!Array.isArray(parsed) || parsed.length !== net.numClasses - 1 || !parsed.every((v) => Number.isInteger(v))) {
        throw new MaskdistillError(`category_ids metadata ${ids} does not name the network's ${net.numClasses - 1} classes`, file);
      }
      categoryIds = parsed as number[];
    }
    if (metadata.canonical_box_size !== undefined) {
      const size = Number(metadata.canonical_box_size);
      if (!(size > 0)) throw new MaskdistillError(`canonical_box_size metadata '${metadata.canonical_box_size}' is not a positive number`, file);
      net.canonicalBoxSize = size;
    }
  }
  return { net, layout, categoryIds, pixel, preset };
}

/** The categories of a net whose labels are pseudo-classes: ids 0…numClasses−2. */
export function pseudoClassCategories(net: MaskRcnnNet): PredCategory[] {
  return Array.from({ length: net.numClasses - 1 }, (_, i) => ({ id: i, name: `class ${i}` }));
}

export async function detectDataset(opts: DetectOptions): Promise<DetectSummary> {
  const categoryOf = opts.categoryOf ?? ((label: number) => label - 1);
  const categories = opts.categories ?? pseudoClassCategories(opts.net);
  const inf = opts.inference;
  const out = shardOutputPath(opts.out, opts.shard);
  const config = {
    preset: inf.preset, minSize: inf.transform.minSize, maxSize: inf.transform.maxSize, scoreThresh: inf.box.scoreThresh,
    detectionsPerImage: inf.box.detectionsPerImage, proposals: inf.rpn.postNmsTopN, numClasses: opts.net.numClasses, shard: opts.shard ?? { index: 0, count: 1 },
    images: opts.images.map((i) => i.id), ...opts.configTag,
  };
  const workers = Math.max(1, opts.workers ?? 1);
  const helpers = workers > 1 && opts.images.length > 1 ? await startDetectHelpers(opts.net, inf, workers) : undefined;
  let run: PerImageRun<ImageItem, PredEntry, { hasImage: boolean; detections: number }>;
  try {
    run = await runPerImage<ImageItem, PredEntry, { hasImage: boolean; detections: number }>({
      label: "detect",
      items: opts.images,
      shard: opts.shard,
      out,
      config,
      settingsHint: "images, weights, sizes, score threshold, max detections, proposals or shard",
      resume: opts.resume,
      quiet: opts.quiet,
      signal: opts.signal,
      concurrency: helpers ? workers : 1,
      async process(item, index, slot) {
        if (!helpers || slot === 0) {
          const { image, annotations } = await detectItem(opts.net, item, inf, categoryOf);
          return { index, image_id: item.id, file: item.file, image, annotations };
        }
        const det = await helpers.runOn(slot - 1, { file: item.file });
        const image = { id: item.id, file_name: item.fileName, width: det.width, height: det.height };
        return { index, image_id: item.id, file: item.file, image, annotations: detectionAnnotations(det, item.id, det.height, det.width, categoryOf) };
      },
      summarize: (e) => ({ hasImage: !!e.image, detections: e.annotations?.length ?? 0 }),
    });
  } finally {
    await helpers?.close();
  }
  writePredictionsFromJournal(out, run, categories, (info) => info.hasImage);
  finishRun(out, run, { keepEntries: opts.keepEntries });
  const records = run.records;
  return {
    out,
    images: records.length,
    detections: records.reduce((s, r) => s + (r.info?.detections ?? 0), 0),
    withoutDetections: records.filter((r) => r.info?.hasImage && r.info.detections === 0).length,
    errors: records.filter((r) => r.problem).length,
    resumed: run.resumed,
    secondsPerImage: run.computed ? run.seconds / run.computed : 0,
  };
}

/** workers − 1 detect helper threads holding `net`'s weights, the engine's threads divided among all; close() restores them. */
async function startDetectHelpers(net: MaskRcnnNet, inference: MaskRcnnInference, workers: number) {
  const { startEngineWorkers } = await import("../engine/workers.js");
  const { maskRcnnStateDict } = await import("../engine/models/maskrcnn.js");
  return startEngineWorkers<Omit<DetectWorkerInit, "engine">, { file: string }, DetectWorkerAnswer>("instance/detectWorker", workers,
    { weights: await maskRcnnStateDict(net), canonicalBoxSize: net.canonicalBoxSize, inference }, "detect");
}
