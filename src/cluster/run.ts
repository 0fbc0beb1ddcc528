// Stage ii end to end (the reference's utils/cluster.py, METHOD.md §3): read the stage-i masks,
// embed every mask's box crop (cached), whiten + L2-normalise, MiniBatchKMeans into
// numClasses × overcluster clusters, write the masks with their raw cluster ids (the unsupervised
// result), and — where ground truth is given — name the clusters (Hungarian / majority on the GT
// class of the best-overlapping GT box), write the reference's mapped file and score ACC / NMI / ARI.
//
// Outputs:
//   OUT                       {images, annotations (category_id = cluster id), categories: clusters}
//   OUT.matched.json          the reference's output: category_id = matched class (VOC object id 0..19,
//                             or the COCO category id); needs ground truth
//   OUT.errors.jsonl          one line per skipped annotation (bad box, unreadable image, ...)
//   <saveDir>/summary.json    the run's summary (what `--json` prints)
//   <saveDir>/features{1,2}-… the embedding cache
// Scaling out: `embedMasks` with a shard (`cluster --embed-only --shard i/n`) embeds the masks of the
// images at positions j % n == i of each input into its own cache file; `runClustering` takes the rows
// of every shard cache in saveDir into its cache, so after all shards it embeds nothing and writes the
// bytes a single run writes (the embedding of a crop does not depend on its batch).
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError, inputError } from "../errors.js";
import type { CocoCategory, CocoImage } from "../data/coco.js";
import { COCO_TO_VOC } from "../data/cocoToVoc.js";
import { readVocAnnotation, VOC_CLASSES, VOC_OBJECT_CLASSES, vocRoot } from "../data/voc.js";
import { writeCocoJson } from "../data/coco.js";
import { fileSha256 } from "../modeling/session.js";
import { boxProblem, embedCrops, type ClsBackbone, type CropItem, type EmbedResult } from "./embed.js";
import { openFeatureCache, rowKey, type FeatureCache, type OpenCacheOptions } from "./featureCache.js";
import { shardImages, type Shard } from "../runner/perImage.js";
import { miniBatchKMeans, whitenAndNormalize, type KMeansModel } from "./kmeans.js";
import { cocoGtBox, scoreClustering, targetOf, vocGtBox, type ClusteringScores, type GtBox } from "./naming.js";

export type ClusterDataset = "voc" | "coco";

/** One prediction file and where its images (and optionally its ground truth) are. */
export interface ClusterInput {
  /** Stage-i output {images, annotations, categories}; a results list (no `images`) needs gtFile. */
  inputFile: string;
  /** VOC: VOC2012 folder (or VOCdevkit / its parent) with JPEGImages/ and Annotations/; COCO: the image folder (or its parent with images/). */
  datasetRoot: string;
  /** COCO instances JSON: GT boxes (COCO; VOC without Annotations/) and the image list for a results-list input. */
  gtFile?: string;
}

export interface ClusterOptions {
  dataset: ClusterDataset;
  primary: ClusterInput;
  /** A support set: embedded and clustered with the primary, but not written out (reference --input_file2). */
  support?: ClusterInput;
  /** Classes of the dataset (VOC 20; COCO: the GT file's categories, 80). Checked like the reference's assert. */
  numClasses?: number;
  overcluster?: number;
  seed?: number;
  /** The ViT (CLS after the final norm); `file` (its checkpoint) keys the feature cache. */
  backbone: ClsBackbone & { file: string };
  outputFile: string;
  saveDir: string;
  /** Embedding batch size (crops of one padded size). */
  batchSize?: number;
  onProgress?: (stage: "embed1" | "embed2" | "kmeans", done: number, total: number, info?: string) => void;
  signal?: AbortSignal;
}

/** One clustered mask. */
export interface ClusteredMask {
  slot: 1 | 2;
  annotationId: number;
  imageId: number;
  file: string;
  bbox: [number, number, number, number];
  cluster: number;
  /** GT class index (−1: no ground truth for it) and its box IoU. */
  target: number;
  targetIou: number;
}

export interface SkippedAnnotation {
  slot: 1 | 2;
  annotationId: number | null;
  imageId: number | null;
  file?: string;
  problem: string;
}

export interface ClusterSummary {
  dataset: ClusterDataset;
  clusters: number;
  numClasses: number;
  overcluster: number;
  seed: number;
  masks: { primary: number; support: number; clustered: number; skipped: number; fromCache: number; embedded: number };
  embedSeconds: number;
  cropsPerSecond: number | null;
  kmeans: { seconds: number; steps: number; iterations: number; inertia: number; initInertias: number[] };
  /** Scores over every clustered mask with a target (primary + support, as the reference). */
  scores: { acc: number; nmi: number; ari: number; evaluated: number; method: string; noOverlap: number } | null;
  /** Scores over the primary masks only (when there is a support set). */
  scoresPrimary: { acc: number; nmi: number; ari: number; evaluated: number } | null;
  outputFile: string;
  matchedFile: string | null;
  errorsFile: string | null;
  notes: string[];
}

export interface ClusterRun {
  summary: ClusterSummary;
  masks: ClusteredMask[];
  /** Raw CLS embeddings of the clustered masks (masks.length × dim) and after whitening + L2. */
  features: Float32Array;
  normalized: Float32Array;
  dim: number;
  model: KMeansModel;
  /** Class names of the evaluation (index = target) and the cluster → class mapping, with GT. */
  classNames: string[];
  scores: ClusteringScores | null;
  skipped: SkippedAnnotation[];
}

interface Prediction {
  id: number;
  image_id: number;
  bbox: unknown;
  score?: number;
  [extra: string]: unknown;
}

interface PredictionFile {
  images: CocoImage[];
  annotations: Prediction[];
  notes: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw inputError(file, "cannot read the prediction file", e);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw inputError(file, "is not valid JSON", e);
  }
}

/**
 * Reads a stage-i prediction file. Without `images` (a results list, or an object with annotations
 * only) the images come from the GT file and — for a results list, as the reference — only the most
 * confident prediction per image is kept. Fails before any work when that is impossible.
 */
export function readPredictions(file: string, gtFile?: string): PredictionFile {
  const raw = readJson(file);
  const notes: string[] = [];
  let annotations: unknown[];
  let images: unknown;
  if (Array.isArray(raw)) {
    annotations = mostConfidentPerImage(raw);
    notes.push(`${file}: a results list without 'images' — kept the most confident of each image's ${raw.length} predictions (${annotations.length} masks), images from ${gtFile ?? "the GT file"}`);
  } else if (isObject(raw)) {
    if (!Array.isArray(raw.annotations)) throw new MaskdistillError("has no 'annotations' list (expected the output of gen-masks: {images, annotations, categories})", file);
    annotations = raw.annotations;
    images = raw.images;
  } else {
    throw new MaskdistillError("must hold a JSON object {images, annotations, categories} or a results list", file);
  }
  if (!Array.isArray(images)) {
    if (!gtFile) {
      throw new MaskdistillError("has no 'images' list, so the image files are unknown: pass the GT file (--gt-file1/2), whose images it then uses, or give the output of gen-masks", file);
    }
    const gt = readJson(gtFile);
    if (!isObject(gt) || !Array.isArray(gt.images)) throw new MaskdistillError("has no 'images' list to take the prediction's images from", gtFile);
    images = gt.images;
    if (!Array.isArray(raw)) notes.push(`${file}: no 'images' list — images taken from ${gtFile}`);
  }
  const goodImages: CocoImage[] = [];
  (images as unknown[]).forEach((im, i) => {
    if (isObject(im) && typeof im.id === "number" && typeof im.file_name === "string") goodImages.push(im as CocoImage);
    else notes.push(`${file}: image #${i} has no numeric 'id' or no 'file_name' — skipped`);
  });
  return { images: goodImages, annotations: annotations as Prediction[], notes };
}

/** The reference's get_most_confident_predictions: ids = positions, area = int(w·h), best score per image. */
function mostConfidentPerImage(results: unknown[]): Prediction[] {
  const best = new Map<unknown, Prediction>();
  results.forEach((r, i) => {
    if (!isObject(r)) return;
    const p = { ...r, id: i } as Prediction;
    if (Array.isArray(p.bbox) && p.bbox.length === 4) p.area = Math.trunc(Number(p.bbox[2]) * Number(p.bbox[3]));
    const cur = best.get(p.image_id);
    if (!cur || Number(cur.score) < Number(p.score)) best.set(p.image_id, p);
  });
  return [...best.values()];
}

/** The folder holding a dataset's image files. */
export function imageDirectory(dataset: ClusterDataset, root: string): string {
  if (dataset === "voc") {
    try {
      return path.join(vocRoot(root), "JPEGImages");
    } catch { /* not a VOC tree: a plain image folder (e.g. the demo data) */ }
  }
  if (fs.existsSync(path.join(root, "images"))) return path.join(root, "images");
  if (!fs.existsSync(root)) throw new MaskdistillError("dataset root does not exist", root);
  return root;
}

/** The evaluation's classes and, per image, its GT boxes (undefined: no ground truth at all). */
interface GroundTruth {
  classNames: string[];
  /** COCO category record of each class (COCO) — the mapped file's categories. */
  categories?: CocoCategory[];
  boxesOf(image: CocoImage): GtBox[] | undefined;
  source: string;
}

/** VOC object id (0..19) of a category name: a VOC name, or a COCO name of a VOC class. */
function vocIdOfName(name: string): number {
  const v = (VOC_OBJECT_CLASSES as readonly string[]).indexOf(name);
  if (v >= 0) return v;
  const c = COCO_TO_VOC[name];
  return c === undefined ? -1 : c - 1;
}

function cocoGroundTruth(gtFile: string, classOf: (cat: CocoCategory) => number, classNames: string[], categories?: CocoCategory[]): GroundTruth {
  const gt = readJson(gtFile);
  if (!isObject(gt) || !Array.isArray(gt.images) || !Array.isArray(gt.annotations) || !Array.isArray(gt.categories)) {
    throw new MaskdistillError("is not a COCO instances file (needs images, annotations, categories)", gtFile);
  }
  const catClass = new Map<number, number>();
  for (const c of gt.categories as CocoCategory[]) catClass.set(c.id, classOf(c));
  const byImage = new Map<number, GtBox[]>();
  const idOfFile = new Map<string, number>();
  for (const im of gt.images as CocoImage[]) {
    byImage.set(im.id, []);
    idOfFile.set(path.basename(String(im.file_name)), im.id);
  }
  for (const a of gt.annotations as { image_id: number; category_id: number; bbox: number[] }[]) {
    const cls = catClass.get(a.category_id) ?? -1;
    if (cls < 0 || !Array.isArray(a.bbox) || a.bbox.length !== 4) continue;
    byImage.get(a.image_id)?.push({ box: cocoGtBox(a.bbox), classId: cls });
  }
  return {
    classNames,
    categories,
    source: gtFile,
    // match by file name first (the reference derives the COCO id from it), then by id
    boxesOf: (im) => byImage.get(idOfFile.get(path.basename(im.file_name)) ?? im.id),
  };
}

function groundTruth(dataset: ClusterDataset, input: ClusterInput): GroundTruth | undefined {
  if (dataset === "voc") {
    let annotationsDir: string | undefined;
    try {
      annotationsDir = path.join(vocRoot(input.datasetRoot), "Annotations");
      if (!fs.existsSync(annotationsDir)) annotationsDir = undefined;
    } catch { /* not a VOC tree */ }
    const classNames = [...VOC_OBJECT_CLASSES];
    if (annotationsDir) {
      const dir = annotationsDir;
      return {
        classNames,
        source: dir,
        boxesOf(im) {
          const xml = path.join(dir, `${path.parse(im.file_name).name}.xml`);
          if (!fs.existsSync(xml)) return undefined;
          return readVocAnnotation(xml).objects.filter((o) => o.classId >= 0).map((o) => ({ box: vocGtBox(o.bbox), classId: o.classId }));
        },
      };
    }
    if (input.gtFile) return cocoGroundTruth(input.gtFile, (c) => vocIdOfName(c.name), classNames);
    return undefined;
  }
  if (!input.gtFile) return undefined;
  const gt = readJson(input.gtFile);
  const cats = isObject(gt) && Array.isArray(gt.categories) ? (gt.categories as CocoCategory[]).slice().sort((a, b) => a.id - b.id) : [];
  const index = new Map(cats.map((c, i) => [c.id, i]));
  return cocoGroundTruth(input.gtFile, (c) => index.get(c.id) ?? -1, cats.map((c) => c.name), cats);
}

interface Prepared {
  slot: 1 | 2;
  file: PredictionFile;
  items: CropItem[];
  meta: { ann: Prediction; image: CocoImage; target: number; iou: number }[];
  skipped: SkippedAnnotation[];
  gt?: GroundTruth;
}

/**
 * Reads an input and lists its crops. With a shard (embedding only, no ground truth read): only the
 * annotations of the images at positions j % count == index of the file's `images` list.
 */
function prepare(slot: 1 | 2, dataset: ClusterDataset, input: ClusterInput, shard?: Shard): Prepared {
  const file = readPredictions(input.inputFile, input.gtFile);
  const imageDir = imageDirectory(dataset, input.datasetRoot);
  const gt = shard ? undefined : groundTruth(dataset, input);
  const imageById = new Map(file.images.map((im) => [im.id, im]));
  const inShard = shard ? new Set(shardImages(file.images, shard).map((im) => im.id)) : undefined;
  const items: CropItem[] = [];
  const meta: Prepared["meta"] = [];
  const skipped: SkippedAnnotation[] = [];
  const gtCache = new Map<number, GtBox[] | undefined>();
  file.annotations.forEach((ann, i) => {
    if (!isObject(ann)) return skipped.push({ slot, annotationId: null, imageId: null, problem: `annotation #${i} is not an object` });
    const id = typeof ann.id === "number" ? ann.id : i;
    if (inShard && !inShard.has(ann.image_id)) return; // another shard's (or no image's: the clustering run reports it)
    const image = imageById.get(ann.image_id);
    if (!image) return skipped.push({ slot, annotationId: id, imageId: ann.image_id ?? null, problem: `image_id ${JSON.stringify(ann.image_id)} is not in 'images'` });
    const imagePath = path.join(imageDir, image.file_name);
    let target = -1, iou = 0;
    if (gt) {
      if (!gtCache.has(image.id)) {
        try {
          gtCache.set(image.id, gt.boxesOf(image));
        } catch (e) {
          gtCache.set(image.id, undefined);
          file.notes.push(`ground truth of image ${image.id} unreadable (${(e as Error).message}): its masks are clustered but not scored`);
        }
      }
      const boxes = gtCache.get(image.id);
      const t = boxes && Array.isArray(ann.bbox) ? targetOf(ann.bbox as number[], boxes) : undefined;
      if (t) ({ classId: target, iou } = t);
    }
    const bbox = ann.bbox as readonly number[];
    items.push({ file: imagePath, bbox, key: Array.isArray(bbox) ? rowKey(id, imagePath, bbox) : undefined });
    meta.push({ ann: { ...ann, id }, image, target, iou });
  });
  return { slot, file, items, meta, skipped, gt };
}

/** Runs stage ii; see the file comment for the outputs. */
export async function runClustering(opts: ClusterOptions): Promise<ClusterRun> {
  const overcluster = opts.overcluster ?? 1;
  const seed = opts.seed ?? 1234;
  if (!Number.isInteger(overcluster) || overcluster < 1) throw new MaskdistillError(`overcluster must be a positive integer, got ${overcluster}`);
  if (opts.backbone.patch !== 8 && opts.backbone.patch !== 16) throw new MaskdistillError(`unexpected backbone patch size ${opts.backbone.patch}`);

  // everything that can fail on bad input is read before the first crop is embedded
  const parts = [prepare(1, opts.dataset, opts.primary)];
  if (opts.support) parts.push(prepare(2, opts.dataset, opts.support));
  const gt = parts[0].gt;
  const defaultClasses = opts.dataset === "voc" ? 20 : gt?.classNames.length ?? 80;
  const numClasses = opts.numClasses ?? defaultClasses;
  if (gt && numClasses !== gt.classNames.length) {
    throw new MaskdistillError(`--num-classes ${numClasses} but the ${opts.dataset.toUpperCase()} ground truth has ${gt.classNames.length} classes (the reference asserts they are equal)`);
  }
  if (opts.dataset === "voc" && numClasses !== 20) throw new MaskdistillError(`--num-classes must be 20 for VOC, got ${numClasses}`);
  const k = numClasses * overcluster;
  const notes = parts.flatMap((p) => p.file.notes);
  if (!gt) notes.push("no ground truth for the primary input: clusters are written with raw ids only (no naming, no scores)");

  const candidates = parts.reduce((sum, p) => sum + p.items.filter((it) => boxProblem(it.bbox) === undefined).length, 0);
  if (candidates < k) {
    throw new MaskdistillError(`${candidates} annotations with a usable box — too few for ${k} clusters`, opts.primary.inputFile);
  }

  const { embeddings, caches } = await embedParts(parts, opts, { mergeShards: true });
  const dim = opts.backbone.dim;
  const merged = caches.filter((c) => c.mergedRows > 0);
  if (merged.length) notes.push(`took ${merged.reduce((s, c) => s + c.mergedRows, 0)} embeddings from the shard caches of 'cluster --embed-only --shard' in ${opts.saveDir}`);

  // the rows that have an embedding, primary first (the reference concatenates in this order)
  const masks: ClusteredMask[] = [];
  const rowsOf: { part: Prepared; index: number }[] = []; // parallel to masks
  parts.forEach((part, pi) => {
    const res = embeddings[pi];
    part.meta.forEach((m, i) => {
      if (!res.ok[i]) return;
      rowsOf.push({ part, index: i });
      masks.push({
        slot: part.slot, annotationId: m.ann.id, imageId: m.image.id, file: part.items[i].file,
        bbox: m.ann.bbox as [number, number, number, number], cluster: -1, target: m.target, targetIou: m.iou,
      });
    });
  });
  const n = masks.length;
  const skipped = parts.flatMap((p) => p.skipped);
  const errorsFile = skipped.length ? siblingFile(opts.outputFile, ".errors.jsonl") : null;
  if (errorsFile) {
    fs.mkdirSync(path.dirname(path.resolve(errorsFile)), { recursive: true });
    fs.writeFileSync(errorsFile, skipped.map((e) => JSON.stringify(e)).join("\n") + "\n");
  } else fs.rmSync(siblingFile(opts.outputFile, ".errors.jsonl"), { force: true });
  if (n < k) {
    throw new MaskdistillError(`${n} masks could be embedded (${skipped.length} skipped, see ${errorsFile}) — too few for ${k} clusters`, opts.primary.inputFile);
  }
  const features = new Float32Array(n * dim);
  rowsOf.forEach((r, row) => {
    const res = embeddings[r.part.slot - 1];
    features.set(res.features.subarray(r.index * dim, (r.index + 1) * dim), row * dim);
  });

  const tk = performance.now();
  const normalized = whitenAndNormalize(features, n, dim);
  const model = miniBatchKMeans(normalized, n, dim, {
    nClusters: k, batchSize: 1000, nInit: 3, maxIter: 100, seed,
    onStep: (s, total) => opts.onProgress?.("kmeans", s, total),
  });
  const kmeansSeconds = (performance.now() - tk) / 1000;
  masks.forEach((m, i) => (m.cluster = model.labels[i]));

  // the unsupervised result: raw cluster ids
  const annotationsOut = (categoryOf: (m: ClusteredMask) => number) =>
    masks.flatMap((m, i) => {
      if (m.slot !== 1) return [];
      const { ann } = rowsOf[i].part.meta[rowsOf[i].index];
      return [{ ...ann, category_id: categoryOf(m), score: typeof ann.score === "number" ? ann.score : 1.0 }];
    });
  writeCocoJson(opts.outputFile, {
    images: parts[0].file.images,
    annotations: annotationsOut((m) => m.cluster),
    categories: Array.from({ length: k }, (_, c) => ({ supercategory: "", id: c, name: `cluster ${c}` })),
  });

  let scores: ClusteringScores | null = null;
  let scoresPrimary: ClusterSummary["scoresPrimary"] = null;
  let matchedFile: string | null = null;
  if (gt) {
    const clusters = Int32Array.from(masks, (m) => m.cluster);
    const targets = Int32Array.from(masks, (m) => m.target);
    scores = scoreClustering(clusters, targets, k, numClasses);
    if (opts.support) {
      const p = masks.map((m, i) => i).filter((i) => masks[i].slot === 1);
      const s = scoreClustering(p.map((i) => clusters[i]), p.map((i) => targets[i]), k, numClasses);
      scoresPrimary = { acc: 100 * s.acc, nmi: 100 * s.nmi, ari: 100 * s.ari, evaluated: s.evaluated };
    }
    const mapping = scores.clusterToClass;
    const categoryOfClass = (c: number) => (gt.categories ? gt.categories[c].id : c);
    matchedFile = siblingFile(opts.outputFile, ".matched.json");
    writeCocoJson(matchedFile, {
      images: parts[0].file.images,
      annotations: annotationsOut((m) => (mapping[m.cluster] >= 0 ? categoryOfClass(mapping[m.cluster]) : -1)),
      // the reference names VOC classes by object id 0..19 and 20 = background
      categories: gt.categories ?? VOC_CLASSES.slice(1).concat("background").map((name, id) => ({ supercategory: "", id, name })),
    });
  }


  const embedded = embeddings.reduce((s, e) => s + e.embedded, 0);
  const embedSeconds = embeddings.reduce((s, e) => s + e.seconds, 0);
  const withTarget = masks.filter((m) => m.target >= 0);
  const summary: ClusterSummary = {
    dataset: opts.dataset, clusters: k, numClasses, overcluster, seed,
    masks: {
      primary: parts[0].file.annotations.length,
      support: parts[1] ? parts[1].file.annotations.length : 0,
      clustered: n, skipped: skipped.length,
      fromCache: embeddings.reduce((s, e) => s + e.fromCache, 0), embedded,
    },
    embedSeconds,
    cropsPerSecond: embedded > 0 && embedSeconds > 0 ? embedded / embedSeconds : null,
    kmeans: { seconds: kmeansSeconds, steps: model.nSteps, iterations: model.nIter, inertia: model.inertia, initInertias: model.initInertias },
    scores: scores && {
      acc: 100 * scores.acc, nmi: 100 * scores.nmi, ari: 100 * scores.ari, evaluated: scores.evaluated, method: scores.method,
      noOverlap: withTarget.filter((m) => m.targetIou === 0).length,
    },
    scoresPrimary,
    outputFile: opts.outputFile, matchedFile, errorsFile, notes,
  };
  fs.mkdirSync(opts.saveDir, { recursive: true });
  fs.writeFileSync(path.join(opts.saveDir, "summary.json"), JSON.stringify(summary, null, 1) + "\n");
  return { summary, masks, features, normalized, dim, model, classNames: gt?.classNames ?? [], scores, skipped };
}

/** OUT.json → OUT<suffix> (e.g. OUT.matched.json). */
function siblingFile(file: string, suffix: string): string {
  return file.replace(/\.json$/i, "") + suffix;
}

/** What embedding needs of the cluster options. */
type EmbedSettings = Pick<ClusterOptions, "backbone" | "saveDir" | "batchSize" | "signal" | "onProgress">;

/** Embeds every part's crops through its cache (`features<slot>`), saving each cache with the part's rows in item order. */
async function embedParts(parts: Prepared[], opts: EmbedSettings, cacheOpts: OpenCacheOptions): Promise<{ embeddings: EmbedResult[]; caches: FeatureCache[] }> {
  const identity = { backboneSha256: await fileSha256(opts.backbone.file), patch: opts.backbone.patch, dim: opts.backbone.dim };
  const embeddings: EmbedResult[] = [];
  const caches: FeatureCache[] = [];
  for (const part of parts) {
    const cache = openFeatureCache(opts.saveDir, `features${part.slot}`, identity, cacheOpts);
    const stage = part.slot === 1 ? "embed1" : "embed2";
    const res = await embedCrops(part.items, {
      backbone: opts.backbone,
      batchSize: opts.batchSize,
      cache,
      signal: opts.signal,
      onProgress: (done, total, file) => opts.onProgress?.(stage, done, total, path.basename(file)),
    });
    if (opts.signal?.aborted) throw new MaskdistillError(`interrupted; ${res.embedded} new embeddings are cached in ${opts.saveDir} and the next run continues from them`);
    cache.save(part.items.map((it) => it.key).filter((key): key is string => key !== undefined));
    for (const p of res.problems) {
      const m = part.meta[p.index];
      part.skipped.push({ slot: part.slot, annotationId: m.ann.id, imageId: m.image.id, file: p.file, problem: p.problem });
    }
    embeddings.push(res);
    caches.push(cache);
  }
  return { embeddings, caches };
}

export interface EmbedMasksOptions extends EmbedSettings {
  dataset: ClusterDataset;
  primary: ClusterInput;
  support?: ClusterInput;
  /** Embed only the images at positions j % count == index of each input, into this shard's cache. */
  shard?: Shard;
}

export interface EmbedMasksSummary {
  shard: Shard;
  /** Annotations of this shard's images, per input; crops embedded now, taken from the cache, skipped. */
  masks: { primary: number; support: number; embedded: number; fromCache: number; skipped: number };
  embedSeconds: number;
  cropsPerSecond: number | null;
  /** The cache index files written. */
  cacheFiles: string[];
  notes: string[];
}

/**
 * Stage ii's embedding step alone (`cluster --embed-only`): fills the feature cache of saveDir (a
 * shard's own cache file with `shard`); a later `runClustering` on the same inputs and saveDir takes
 * every shard cache in and embeds only what no shard did. A rerun shard takes its done rows from its cache.
 */
export async function embedMasks(opts: EmbedMasksOptions): Promise<EmbedMasksSummary> {
  if (opts.backbone.patch !== 8 && opts.backbone.patch !== 16) throw new MaskdistillError(`unexpected backbone patch size ${opts.backbone.patch}`);
  const shard = opts.shard ?? { index: 0, count: 1 };
  const sharded = shard.count > 1 ? shard : undefined;
  const parts = [prepare(1, opts.dataset, opts.primary, sharded)];
  if (opts.support) parts.push(prepare(2, opts.dataset, opts.support, sharded));
  const { embeddings, caches } = await embedParts(parts, opts, { shard: sharded });
  const embedded = embeddings.reduce((s, e) => s + e.embedded, 0);
  const embedSeconds = embeddings.reduce((s, e) => s + e.seconds, 0);
  return {
    shard,
    masks: {
      primary: parts[0].items.length + parts[0].skipped.length,
      support: parts[1] ? parts[1].items.length + parts[1].skipped.length : 0,
      embedded,
      fromCache: embeddings.reduce((s, e) => s + e.fromCache, 0),
      skipped: parts.reduce((s, p) => s + p.skipped.length, 0),
    },
    embedSeconds,
    cropsPerSecond: embedded > 0 && embedSeconds > 0 ? embedded / embedSeconds : null,
    cacheFiles: caches.map((c) => c.indexFile),
    notes: parts.flatMap((p) => p.file.notes),
  };
}
