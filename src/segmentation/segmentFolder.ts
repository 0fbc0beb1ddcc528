// `segment`: a trained DeepLab-v3 over a folder of images through the shared per-image runner
// (journal + --resume, --shard, errors file, progress): OUT_DIR/<stem>.png (class ids, VOC palette)
// at each image's original size (predict.ts: nearest argmax, or the CRF), and OUT_DIR/segment.json.
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError } from "../errors.js";
import { loadRgb } from "../data/image.js";
import { writeLabelPng } from "../data/png.js";
import { finishRun, runPerImage, writeFileAtomic, type EntryBase, type RunItem } from "../runner/perImage.js";
import { makeDeepLabV3, type DeepLabV3 } from "../engine/models/deeplab.js";
import { seededRng } from "../engine/models/params.js";
import { loadDeepLabStateDict, readDeepLabStateDict } from "./model.js";
import { predictImage } from "./predict.js";
import { SEGMENTATION_INPUT_SIZE } from "./transforms.js";
import type { SegmentationItem } from "./data.js";

/** A DeepLab-v3 from a checkpoint (ours, the reference's or torchvision's); the class count from its classifier. */
export async function loadDeepLab(file: string): Promise<{ model: DeepLabV3; layout: string }> {
  const { stateDict, numClasses } = await readDeepLabStateDict(file);
  const model = makeDeepLabV3(seededRng(0), { numClasses, trainableFrom: "layer3" });
  const layout = loadDeepLabStateDict(model, stateDict, file);
  return { model, layout };
}

export interface SegmentFolderOptions {
  model: DeepLabV3;
  items: SegmentationItem[];
  outDir: string;
  crf?: boolean;
  /** Network input side (default 512). */
  size?: number;
  shard?: { index: number; count: number };
  resume?: boolean;
  quiet?: boolean;
  signal?: AbortSignal;
  /** Recorded in the journal header (e.g. the weights file), so a resume with other weights is refused. */
  weightsId?: string;
}

interface SegItem extends RunItem { name: string }
interface SegEntry extends EntryBase { name: string; width?: number; height?: number; labels_present?: number[]; seconds?: number }

export interface SegmentFolderSummary { outDir: string; summaryFile: string; errorsFile: string; images: number; done: number; errors: number; resumed: number; seconds: number; secondsPerImage: number }

export async function segmentFolder(o: SegmentFolderOptions): Promise<SegmentFolderSummary> {
  if (o.items.length === 0) throw new MaskdistillError("segment: no images to predict");
  fs.mkdirSync(o.outDir, { recursive: true });
  const out = path.join(o.outDir, "segment.json");
  const size = o.size ?? SEGMENTATION_INPUT_SIZE;
  const items: SegItem[] = o.items.map((it, id) => ({ id, file: it.image, name: it.name }));
  const config = { crf: !!o.crf, size, weights: o.weightsId ?? null, classes: o.model.numClasses, shard: o.shard ?? { index: 0, count: 1 }, names: items.map((i) => i.name) };
  const run = await runPerImage<SegItem, SegEntry, Record<string, never>>({
    label: "segment", items, out, config, settingsHint: "weights, images, --crf, --size or shard",
    shard: o.shard, resume: o.resume, quiet: o.quiet, signal: o.signal,
    async process(item, index) {
      const t0 = Date.now();
      const image = await loadRgb(item.file);
      const p = await predictImage(o.model, image, { crf: o.crf, size });
      writeLabelPng(path.join(o.outDir, `${item.name}.png`), { width: p.width, height: p.height, data: p.labels });
      const seen = new Uint8Array(256);
      for (const v of p.labels) seen[v] = 1;
      const present: number[] = [];
      seen.forEach((v, k) => { if (v) present.push(k); });
      return { index, image_id: item.id, file: item.file, name: item.name, width: p.width, height: p.height, labels_present: present, seconds: (Date.now() - t0) / 1000 };
    },
    summarize: () => ({}),
  });
  const entries = run.records.map((r) => run.readEntry(r));
  const { names: _names, ...shown } = config;
  writeFileAtomic(out, `{"config": ${JSON.stringify(shown)},\n "images": [\n${entries.map((e) => "  " + JSON.stringify(e)).join(",\n")}\n]}\n`);
  const errors = finishRun(out, run);
  return {
    outDir: o.outDir, summaryFile: out, errorsFile: `${out}.errors.jsonl`, images: run.records.length, done: run.records.length - errors,
    errors, resumed: run.resumed, seconds: run.seconds, secondsPerImage: run.computed ? run.seconds / run.computed : 0,
  };
}
