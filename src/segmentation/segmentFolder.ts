// `segment`: a trained DeepLab-v3 over a folder of images through the shared per-image runner
// (journal + --resume, --shard, errors file, progress): OUT_DIR/<stem>.png (class ids, VOC palette)
// at each image's original size (predict.ts: nearest argmax, or the CRF), and OUT_DIR/segment.json.
// Shards write their PNGs into the same folder and their summary as segment.shard-i-of-n.json (+ its kept
// journal, segment.shard-i-of-n.json.entries.jsonl); `merge` writes segment.json and its errors file from
// those, the bytes of one run over all images (crfFolder.ts's pattern).
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError } from "../errors.js";
import { loadRgb } from "../data/image.js";
import { writeLabelPng } from "../data/png.js";
import { finishRun, mergeShardRuns, runPerImage, shardOutputPath, writeFileAtomic, type EntryBase, type PerImageRun, type RunItem, type Shard } from "../runner/perImage.js";
import { makeDeepLabV3, type DeepLabV3 } from "../engine/models/deeplab.js";
import { seededRng } from "../engine/models/params.js";
import { deepLabStateDict, loadDeepLabStateDict, readDeepLabStateDict } from "./model.js";
import type { SegmentWorkerAnswer, SegmentWorkerInit } from "./segmentWorker.js";
import { predictImage } from "./predict.js";
import { SEGMENTATION_INPUT_SIZE } from "./transforms.js";
import type { SegmentationItem } from "./data.js";

/** A DeepLab-v3 from a checkpoint (ours, the reference's or torchvision's); the class count from its classifier. */
export async function loadDeepLab(file: string): Promise<{ model: DeepLabV3; layout: string }> {
  const { stateDict, numClasses, widths, asppRates } = await readDeepLabStateDict(file);
  const model = makeDeepLabV3(seededRng(0), { numClasses, trainableFrom: "layer3", widths, asppRates });
  const layout = loadDeepLabStateDict(model, stateDict, file);
  return { model, layout };
}

export interface SegmentFolderOptions {
  /** Needed unless merging. */
  model?: DeepLabV3;
  /** The model's class count (default model.numClasses): a merge without a model gives it. */
  classes?: number;
  items: SegmentationItem[];
  outDir: string;
  crf?: boolean;
  /** Network input side (default 512). */
  size?: number;
  shard?: Shard;
  /** Instead of predicting: join the finished shards' outputs in outDir into segment.json (same settings as the shards). */
  merge?: boolean;
  resume?: boolean;
  quiet?: boolean;
  signal?: AbortSignal;
  /** Called after each predicted image (its index in this shard). */
  onImage?: (index: number) => void;
  /** Recorded in the journal header (e.g. the weights file), so a resume with other weights is refused. */
  weightsId?: string;
  /**
   * Threads that predict (default 1): this one and workers − 1 helper threads with a copy of the model, the
   * engine's threads divided among them; the images alternate between them and the output is the same.
   */
  workers?: number;
}

interface SegItem extends RunItem { name: string }
interface SegEntry extends EntryBase { name: string; width?: number; height?: number; labels_present?: number[] }

export interface SegmentFolderSummary { outDir: string; summaryFile: string; errorsFile: string; images: number; done: number; errors: number; resumed: number; seconds: number; secondsPerImage: number }

export async function segmentFolder(o: SegmentFolderOptions): Promise<SegmentFolderSummary> {
  if (o.items.length === 0) throw new MaskdistillError("segment: no images to predict");
  const classes = o.classes ?? o.model?.numClasses;
  if (classes === undefined) throw new MaskdistillError("segment: give the model (or, to merge, its class count)");
  if (o.merge && o.shard && o.shard.count > 1) throw new MaskdistillError("merge joins all shards: give it without a shard");
  fs.mkdirSync(o.outDir, { recursive: true });
  const shard = o.merge ? { index: 0, count: 1 } : o.shard ?? { index: 0, count: 1 };
  const out = shardOutputPath(path.join(o.outDir, "segment.json"), shard);
  const size = o.size ?? SEGMENTATION_INPUT_SIZE;
  const items: SegItem[] = o.items.map((it, id) => ({ id, file: it.image, name: it.name }));
  const configFor = (s: Shard) => ({ crf: !!o.crf, size, weights: o.weightsId ?? null, classes, shard: s, names: items.map((i) => i.name) });
  const config = configFor(shard);
  const settingsHint = "weights, images, --crf, --size or shard";
  const summarize = () => ({});
  let run: PerImageRun<SegItem, SegEntry, Record<string, never>>;
  if (o.merge) {
    run = mergeShardRuns<SegItem, SegEntry, Record<string, never>>({ label: "segment", items, out, configFor, settingsHint, summarize });
  } else {
    const model = o.model;
    if (!model) throw new MaskdistillError("segment: no model to predict with");
    const workers = Math.max(1, o.workers ?? 1);
    const helpers = workers > 1 && items.length > 1 ? await startSegmentHelpers(model, !!o.crf, size, workers) : undefined;
    try {
      run = await runPerImage<SegItem, SegEntry, Record<string, never>>({
        label: "segment", items, out, config, settingsHint, shard, resume: o.resume, quiet: o.quiet, signal: o.signal, summarize,
        onItem: (index) => o.onImage?.(index),
        concurrency: helpers ? workers : 1,
        async process(item, index, slot) {
          const p = helpers && slot > 0 ? await helpers.runOn(slot - 1, { file: item.file }) : await predictImage(model, await loadRgb(item.file), { crf: o.crf, size });
          writeLabelPng(path.join(o.outDir, `${item.name}.png`), { width: p.width, height: p.height, data: p.labels });
          const seen = new Uint8Array(256);
          for (const v of p.labels) seen[v] = 1;
          const present: number[] = [];
          seen.forEach((v, k) => { if (v) present.push(k); });
          return { index, image_id: item.id, file: item.file, name: item.name, width: p.width, height: p.height, labels_present: present };
        },
      });
    } finally {
      await helpers?.close();
    }
  }
  const entries = run.records.map((r) => run.readEntry(r));
  const { names: _names, ...shown } = config;
  writeFileAtomic(out, `{"config": ${JSON.stringify(shown)},\n "images": [\n${entries.map((e) => "  " + JSON.stringify(e)).join(",\n")}\n]}\n`);
  const errors = finishRun(out, run, { keepEntries: shard.count > 1 });
  return {
    outDir: o.outDir, summaryFile: out, errorsFile: `${out}.errors.jsonl`, images: run.records.length, done: run.records.length - errors,
    errors, resumed: run.resumed, seconds: run.seconds, secondsPerImage: run.computed ? run.seconds / run.computed : 0,
  };
}

/** workers − 1 segment helper threads holding `model`'s weights, the engine's threads divided among all; close() restores them. */
async function startSegmentHelpers(model: DeepLabV3, crf: boolean, size: number, workers: number) {
  const { startEngineWorkers } = await import("../engine/workers.js");
  return startEngineWorkers<Omit<SegmentWorkerInit, "engine">, { file: string }, SegmentWorkerAnswer>("segmentation/segmentWorker", workers,
    { weights: await deepLabStateDict(model), numClasses: model.numClasses, asppRates: model.asppRates, crf, size }, "segment");
}
