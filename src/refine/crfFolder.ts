// The CRF over a folder (what `maskdistill crf` runs): for every `<stem>.logits.npy` (float32
// [C, h, w]) in the logits folder and its image `<stem>.{png,jpg,jpeg}` in the image folder, MaskDistill's
// dense_crf → `<stem>.png` (uint8 labels, VOC palette) and, with saveQ, `<stem>.q.npy` (float32
// [C, H, W]). Runs through the shared per-image runner: journal + resume, shards, one bad file is
// recorded in OUT.errors.jsonl and never ends the run, progress with ETA. OUT = <outDir>/crf.json
// lists every image (size, classes, labels present, pixels the CRF changed).
// Shards write their PNGs into the same folder and their summary as crf.shard-i-of-n.json (+ its kept
// journal, crf.shard-i-of-n.json.entries.jsonl); `merge` writes crf.json and its errors file from those,
// the bytes of one run over all images.
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError } from "../errors.js";
import { loadRgb } from "../data/image.js";
import { readNpy, writeNpy } from "../data/npy.js";
import { writeLabelPng } from "../data/png.js";
import { finishRun, mergeShardRuns, runPerImage, shardOutputPath, writeFileAtomic, type EntryBase, type RunItem, type Shard } from "../runner/perImage.js";
import { denseCrfFromLogits, MASKDISTILL_CRF, type CrfOptions } from "./crf.js";
import { qToPlanes } from "./densecrf.js";

export interface CrfFolderOptions {
  /** Folder of images `<stem>.png|jpg|jpeg`. */
  images: string;
  /** Folder of `<stem>.logits.npy`. */
  logits: string;
  outDir: string;
  iterations?: number;
  saveQ?: boolean;
  /** CRF parameters besides the iterations (default: the reference's). */
  crf?: Omit<CrfOptions, "iterations" | "onIteration" | "keepProbs">;
  shard?: Shard;
  /** Instead of computing: join the finished shards' outputs in outDir into crf.json (same settings as the shards). */
  merge?: boolean;
  resume?: boolean;
  quiet?: boolean;
  signal?: AbortSignal;
}

export interface CrfFolderSummary {
  outDir: string;
  summaryFile: string;
  errorsFile: string;
  images: number;
  done: number;
  errors: number;
  resumed: number;
  seconds: number;
  secondsPerImage: number;
  /** Share of pixels whose label the CRF changed vs the argmax of the upsampled logits, over all done images. */
  changed: number;
}

interface CrfItem extends RunItem { stem: string; logits: string }

interface CrfEntry extends EntryBase {
  stem: string;
  width?: number;
  height?: number;
  classes?: number;
  labels_present?: number[];
  changed_px?: number;
}

const IMAGE_EXTS = [".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG"];
const SUFFIX = ".logits.npy";

/** The `<stem>.logits.npy` files of a folder, sorted by stem. */
export function logitsItems(dir: string): CrfItem[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    throw new MaskdistillError("logits folder not found or not readable", dir);
  }
  const stems = names.filter((f) => f.endsWith(SUFFIX)).map((f) => f.slice(0, -SUFFIX.length)).sort();
  if (stems.length === 0) throw new MaskdistillError(`no <stem>${SUFFIX} files in the logits folder`, dir);
  return stems.map((stem, id) => ({ id, stem, file: path.join(dir, stem + SUFFIX), logits: path.join(dir, stem + SUFFIX) }));
}

function findImage(dir: string, stem: string, logitsFile: string): string {
  for (const ext of IMAGE_EXTS) {
    const f = path.join(dir, stem + ext);
    if (fs.existsSync(f)) return f;
  }
  throw new MaskdistillError(`no image ${stem}.png or ${stem}.jpg in ${dir}`, logitsFile);
}

async function processItem(item: CrfItem, index: number, o: CrfFolderOptions, iterations: number): Promise<CrfEntry> {
  const lg = readNpy(item.logits);
  if (lg.dtype === "uint8" || lg.shape.length !== 3) {
    throw new MaskdistillError(`expected float logits [C, h, w], got ${lg.dtype} (${lg.shape.join(", ")})`, item.logits);
  }
  const [c, h, w] = lg.shape;
  if (c < 1 || c > 256 || h < 1 || w < 1) throw new MaskdistillError(`logits shape (${lg.shape.join(", ")}): need 1..256 classes and a non-empty grid`, item.logits);
  const imageFile = findImage(o.images, item.stem, item.logits);
  const img = await loadRgb(imageFile);
  const r = denseCrfFromLogits(lg.data as Float32Array, c, h, w, img, { ...o.crf, iterations, keepProbs: true });
  const n = r.width * r.height;
  // how many labels the CRF changed vs the plain argmax of the upsampled softmax
  const probs = r.probs!;
  let changed = 0;
  const present = new Uint8Array(256);
  for (let i = 0; i < n; i++) {
    let best = 0, bv = probs[i];
    for (let k = 1; k < c; k++) if (probs[k * n + i] > bv) { bv = probs[k * n + i]; best = k; }
    if (best !== r.labels[i]) changed++;
    present[r.labels[i]] = 1;
  }
  writeLabelPng(path.join(o.outDir, `${item.stem}.png`), { width: r.width, height: r.height, data: r.labels });
  if (o.saveQ) writeNpy(path.join(o.outDir, `${item.stem}.q.npy`), qToPlanes(r.q, n, c), [c, r.height, r.width]);
  const labelsPresent: number[] = [];
  present.forEach((v, k) => { if (v) labelsPresent.push(k); });
  return {
    index, image_id: item.id, file: item.file, stem: item.stem,
    width: r.width, height: r.height, classes: c, labels_present: labelsPresent, changed_px: changed,
  };
}

/** Runs the CRF over the folder (or its shard); see the file comment for inputs and outputs. */
export async function crfFolder(o: CrfFolderOptions): Promise<CrfFolderSummary> {
  const iterations = o.iterations ?? MASKDISTILL_CRF.iterations;
  if (!Number.isInteger(iterations) || iterations < 0) throw new MaskdistillError(`iterations must be a non-negative integer, got ${iterations}`);
  if (!fs.existsSync(o.images) || !fs.statSync(o.images).isDirectory()) throw new MaskdistillError("image folder not found", o.images);
  const items = logitsItems(o.logits);
  fs.mkdirSync(o.outDir, { recursive: true });
  const shard = o.merge ? { index: 0, count: 1 } : o.shard ?? { index: 0, count: 1 };
  if (o.merge && o.shard && o.shard.count > 1) throw new MaskdistillError("merge joins all shards: give it without a shard");
  const single = path.join(o.outDir, "crf.json");
  const out = shardOutputPath(single, shard);
  const configFor = (s: Shard) => ({ iterations, saveQ: !!o.saveQ, crf: o.crf ?? {}, shard: s, stems: items.map((i) => i.stem) });
  const config = configFor(shard);
  const settingsHint = "logits, iterations, --save-q or shard";
  const summarize = (e: CrfEntry) => ({ pixels: (e.width ?? 0) * (e.height ?? 0), changed: e.changed_px ?? 0 });
  const run = o.merge
    ? mergeShardRuns<CrfItem, CrfEntry, { pixels: number; changed: number }>({ label: "crf", items, out, configFor, settingsHint, summarize })
    : await runPerImage<CrfItem, CrfEntry, { pixels: number; changed: number }>({
      label: "crf", items, out, config, settingsHint, shard, resume: o.resume, quiet: o.quiet, signal: o.signal, summarize,
      process: (item, index) => processItem(item, index, o, iterations),
    });
  const entries = run.records.map((r) => run.readEntry(r));
  const { stems: _stems, ...shown } = config;
  writeFileAtomic(out, `{"config": ${JSON.stringify(shown)},\n "images": [\n${entries.map((e) => "  " + JSON.stringify(e)).join(",\n")}\n]}\n`);
  const errors = finishRun(out, run, { keepEntries: shard.count > 1 });
  const pixels = run.records.reduce((s, r) => s + r.info.pixels, 0);
  const changed = run.records.reduce((s, r) => s + r.info.changed, 0);
  return {
    outDir: o.outDir,
    summaryFile: out,
    errorsFile: `${out}.errors.jsonl`,
    images: run.records.length,
    done: run.records.length - errors,
    errors,
    resumed: run.resumed,
    seconds: run.seconds,
    secondsPerImage: run.computed ? run.seconds / run.computed : 0,
    changed: pixels ? changed / pixels : 0,
  };
}
