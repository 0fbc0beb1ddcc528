// Prediction files of the per-image stages (gen-masks, detect): {images, annotations, categories},
// built from the runner's journal so that a resumed run, an uninterrupted run and merged shards give
// the same bytes — images sorted by id, annotation ids 1, 2, … in image order (COCOeval takes a
// ground-truth id 0 for "unmatched", so ids start at 1), the annotations of an image in the order the
// stage produced them (detect: descending score).
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError, inputError } from "../errors.js";
import { writeCocoJson, type CocoImage } from "../data/coco.js";
import type { CocoRle } from "../mask/rle.js";
import { errorsPath, findShardOutputs, writeLinesAtomic, type EntryBase, type PerImageRun } from "./perImage.js";

/** One predicted object. */
export interface PredAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  score: number;
  iscrowd: 0;
  area: number;
  bbox: [number, number, number, number];
  segmentation: CocoRle | number[][];
}

export interface PredCategory { id: number; name: string }

export interface PredDataset {
  images: CocoImage[];
  annotations: PredAnnotation[];
  categories: PredCategory[];
}

/** A journal entry of a stage that writes predictions: the image (when it could be read) and its objects. */
export interface PredEntry extends EntryBase {
  image?: CocoImage;
  annotations?: Omit<PredAnnotation, "id">[];
}

/** Writes OUT from the journal, reading each image's line back (only small records stay in memory). */
export function writePredictionsFromJournal<I, E extends PredEntry, S>(out: string, run: PerImageRun<I, E, S>, categories: PredCategory[],
    hasImage: (info: S) => boolean): void {
  const withImage = run.records.filter((r) => hasImage(r.info)).sort((a, b) => a.image_id - b.image_id || a.index - b.index);
  const tmp = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.${process.pid}.tmp`);
  let fd = -1;
  try {
    fd = fs.openSync(tmp, "w");
    fs.writeSync(fd, '{"images":[');
    withImage.forEach((r, i) => fs.writeSync(fd, (i ? "," : "") + JSON.stringify(run.readEntry(r).image)));
    fs.writeSync(fd, '],"annotations":[');
    let id = 0;
    for (const r of withImage) {
      for (const a of run.readEntry(r).annotations ?? []) {
        const annotation: PredAnnotation = { id: ++id, ...a };
        fs.writeSync(fd, (id > 1 ? "," : "") + JSON.stringify(annotation));
      }
    }
    fs.writeSync(fd, `],"categories":${JSON.stringify(categories)}}`);
    fs.closeSync(fd);
    fs.renameSync(tmp, out);
  } catch (e) {
    if (fd >= 0) try { fs.closeSync(fd); } catch { /* already closed */ }
    fs.rmSync(tmp, { force: true });
    throw inputError(out, "could not be written", e);
  }
}

function readPredJson(file: string): PredDataset {
  let raw: any;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw inputError(file, "cannot read predictions JSON", e);
  }
  if (!raw || !Array.isArray(raw.images) || !Array.isArray(raw.annotations)) {
    throw new MaskdistillError("not a gen-masks or detect output (expected {images: [...], annotations: [...]})", file);
  }
  return raw as PredDataset;
}

/** What is wrong with one annotation of a predictions file, or undefined when it is fine. */
function predAnnotationProblem(a: unknown): string | undefined {
  if (!a || typeof a !== "object" || Array.isArray(a)) return "not an object";
  const r = a as Record<string, unknown>;
  const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
  if (!finite(r.id)) return "missing or non-numeric 'id'";
  if (!finite(r.image_id)) return "missing or non-numeric 'image_id'";
  if (!finite(r.category_id)) return "missing or non-numeric 'category_id'";
  if (!finite(r.score)) return "missing or non-finite 'score'";
  const b = r.bbox;
  if (!Array.isArray(b) || b.length !== 4 || !b.every(finite)) return "'bbox' must be [x, y, width, height] (4 finite numbers)";
  if (b[2] < 0 || b[3] < 0) return `'bbox' [${b.join(", ")}] has a negative width or height`;
  const seg = r.segmentation;
  if (seg === undefined || seg === null) return "has no 'segmentation'";
  if (typeof seg !== "object") return "'segmentation' is neither a polygon list nor an RLE object";
  return undefined;
}

/**
 * Joins the outputs of `--shard i/n` runs into the JSON one run over all images gives: images sorted by
 * id, annotations in image order with ids 1, 2, ...; the shards' errors files are joined the same way.
 * All inputs must have the same categories.
 */
export function mergePreds(out: string, inputs: string[]): { images: number; annotations: number; errors: number } {
  if (inputs.length === 0) throw new MaskdistillError("merge-preds needs at least one input JSON");
  const parts: { image: CocoImage; anns: PredAnnotation[]; order: number }[] = [];
  const seen = new Map<number, string>();
  const problems: { image_id: number; line: string }[] = [];
  let categories: PredCategory[] | undefined;
  let order = 0;
  for (const file of inputs) {
    const ds = readPredJson(file);
    const cats = ds.categories ?? [];
    if (!categories) categories = cats;
    else if (JSON.stringify(cats) !== JSON.stringify(categories)) {
      throw new MaskdistillError(`its categories differ from those of ${inputs[0]}; shards of one run have the same categories`, file);
    }
    ds.annotations.forEach((a, i) => {
      const problem = predAnnotationProblem(a);
      if (problem) throw new MaskdistillError(`annotation #${i}${a && typeof a === "object" && "id" in a ? ` (id ${JSON.stringify(a.id)})` : ""}: ${problem}; not a gen-masks or detect output, or damaged`, file);
    });
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
  writeCocoJson(out, { images: parts.map((p) => p.image), annotations, categories: categories ?? [] });
  problems.sort((a, b) => a.image_id - b.image_id);
  writeLinesAtomic(errorsPath(out), problems.map((p) => p.line));
  return { images: parts.length, annotations: annotations.length, errors: problems.length };
}

/**
 * Merges the shards of OUT that `--shard i/n` runs wrote beside it (OUT.shard-i-of-n.json, i = 0..n-1:
 * `shardOutputPath`) into OUT; refuses when a shard is missing or shards of several counts are there.
 */
export function mergePredShards(out: string): { images: number; annotations: number; errors: number; inputs: string[] } {
  const inputs = findShardOutputs(out).files;
  return { ...mergePreds(out, inputs), inputs };
}
