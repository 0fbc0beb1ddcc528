// Stage ii embeddings (METHOD.md §3.1): for each mask annotation, the original-resolution image,
// normalised, cropped to the mask's box with the reference's rounding, zero-padded bottom/right to a
// multiple of the patch size, through the ViT; the embedding is the CLS token after the final norm.
// Crops of equal padded size are run as one batch; each image is decoded once (the next one is
// decoded while the backbone runs); cached rows (featureCache.ts) skip the backbone. Bad input — an
// unreadable image, a box that is not finite, narrower or lower than 1 px, or selects no pixel — is
// recorded per annotation and skipped; the run goes on.
import { loadRgb, type RgbImage } from "../data/image.js";
import { cropNormalized, type PreprocessedImage } from "../data/preprocess.js";
import type { FeatureCache } from "./featureCache.js";

/** What embedding needs from a backbone (a VitBackbone from src/modeling/backbone.ts fits). */
export interface ClsBackbone {
  patch: number;
  dim: number;
  /** Attention heads (for the memory budget; default dim / 64). */
  heads?: number;
  clsBatch(imgs: { data: Float32Array; width: number; height: number }[]): Promise<Float32Array[]>;
}

/** One crop to embed: the image file and the box [x, y, w, h]; `key` looks it up in / stores it to the cache. */
export interface CropItem {
  file: string;
  bbox: readonly number[];
  key?: string;
}

export interface EmbedProblem {
  index: number;
  file: string;
  problem: string;
}

export interface EmbedOptions {
  backbone: ClsBackbone;
  /** Crops of one padded size run together up to this many (default 8). */
  batchSize?: number;
  /**
   * Memory budget of one backbone call's self-attention, heads × tokens² float32 per crop summed over
   * the batch (default 4 GiB): large crops run in smaller batches, and a crop over it alone is skipped.
   */
  attentionBudgetBytes?: number;
  /** Crops waiting for a batch are run early when they hold more than this many bytes (default 256 MiB). */
  maxPendingBytes?: number;
  cache?: FeatureCache;
  /** Save new cache rows at this interval (default 60 s), so an interrupted run resumes. */
  saveEverySeconds?: number;
  onProgress?: (done: number, total: number, file: string) => void;
  signal?: AbortSignal;
}

export interface EmbedResult {
  dim: number;
  /** items.length × dim, row-major; rows of failed items are zero. */
  features: Float32Array;
  /** 1 where the item has an embedding. */
  ok: Uint8Array;
  problems: EmbedProblem[];
  fromCache: number;
  embedded: number;
  /** Wall time of the backbone calls and of the whole run (s). */
  backboneSeconds: number;
  seconds: number;
}

/** Why a box cannot be embedded, or undefined: it must be 4 finite numbers with w ≥ 1 and h ≥ 1. */
export function boxProblem(bbox: unknown): string | undefined {
  if (!Array.isArray(bbox) || bbox.length !== 4 || !bbox.every((v) => typeof v === "number" && Number.isFinite(v))) {
    return "bbox is not [x, y, w, h] (4 finite numbers)";
  }
  if (bbox[2] < 1 || bbox[3] < 1) return `degenerate bbox [${bbox.join(", ")}]: width and height must be at least 1 px`;
  return undefined;
}

/** CLS embeddings of the crops, in item order. */
export async function embedCrops(items: readonly CropItem[], opts: EmbedOptions): Promise<EmbedResult> {
  const t0 = performance.now();
  const { backbone } = opts;
  const dim = backbone.dim, patch = backbone.patch;
  const batchSize = Math.max(1, opts.batchSize ?? 8);
  const maxPending = opts.maxPendingBytes ?? 256 * 1024 * 1024;
  const budget = opts.attentionBudgetBytes ?? 4 * 2 ** 30;
  const heads = backbone.heads ?? Math.max(1, Math.round(dim / 64));
  const attentionBytes = (crop: PreprocessedImage) => {
    const tokens = 1 + (crop.width / patch) * (crop.height / patch);
    return heads * tokens * tokens * 4;
  };
  const saveEvery = (opts.saveEverySeconds ?? 60) * 1000;
  const features = new Float32Array(items.length * dim);
  const ok = new Uint8Array(items.length);
  const problems: EmbedProblem[] = [];
  let fromCache = 0, embedded = 0, done = 0, backboneMs = 0, lastSave = performance.now();

  const report = (i: number) => opts.onProgress?.(++done, items.length, items[i].file);
  const fail = (i: number, problem: string) => {
    problems.push({ index: i, file: items[i].file, problem });
    report(i);
  };

  // crops waiting for a batch, by padded size
  const pending = new Map<string, { index: number; crop: PreprocessedImage }[]>();
  let pendingBytes = 0;

  const runBatch = async (batch: { index: number; crop: PreprocessedImage }[]) => {
    let vectors: Float32Array[] | undefined;
    const tb = performance.now();
    try {
      vectors = await backbone.clsBatch(batch.map((b) => b.crop));
    } catch (e) {
      // isolate the item the backbone cannot take (e.g. a crop too large for memory)
      if (batch.length > 1) {
        for (const b of batch) await runBatch([b]);
        return;
      }
      fail(batch[0].index, `backbone failed on this ${batch[0].crop.validWidth}×${batch[0].crop.validHeight} crop: ${(e as Error).message}`);
      return;
    } finally {
      backboneMs += performance.now() - tb;
    }
    batch.forEach((b, j) => {
      features.set(vectors![j], b.index * dim);
      ok[b.index] = 1;
      embedded++;
      const key = items[b.index].key;
      if (opts.cache && key) opts.cache.set(key, vectors![j]);
      report(b.index);
    });
    if (opts.cache && performance.now() - lastSave > saveEvery) {
      opts.cache.save();
      lastSave = performance.now();
    }
  };

  const flush = async (size: string) => {
    const batch = pending.get(size);
    if (!batch) return;
    pending.delete(size);
    for (const b of batch) pendingBytes -= b.crop.data.byteLength;
    await runBatch(batch);
  };

  // items per image file, in order of first appearance; cached and bad-box items settle right away
  const byFile = new Map<string, number[]>();
  items.forEach((item, i) => {
    const cached = item.key !== undefined ? opts.cache?.get(item.key) : undefined;
    if (cached) {
      features.set(cached, i * dim);
      ok[i] = 1;
      fromCache++;
      report(i);
      return;
    }
    const bad = boxProblem(item.bbox);
    if (bad) return fail(i, bad);
    const list = byFile.get(item.file);
    if (list) list.push(i);
    else byFile.set(item.file, [i]);
  });

  const files = [...byFile.keys()];
  const decode = (file: string): Promise<RgbImage | Error> => loadRgb(file).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  let next = files.length ? decode(files[0]) : undefined;
  for (let f = 0; f < files.length; f++) {
    if (opts.signal?.aborted) break;
    const img = await next!;
    next = f + 1 < files.length ? decode(files[f + 1]) : undefined; // decode ahead while the backbone runs
    const indices = byFile.get(files[f])!;
    if (img instanceof Error) {
      for (const i of indices) fail(i, `image cannot be read: ${img.message}`);
      continue;
    }
    for (const i of indices) {
      let crop: PreprocessedImage;
      try {
        crop = cropNormalized(img, items[i].bbox as [number, number, number, number], patch);
      } catch (e) {
        fail(i, (e as Error).message);
        continue;
      }
      const size = `${crop.width}x${crop.height}`;
      const bytes = attentionBytes(crop);
      if (bytes > budget) {
        const human = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`);
        fail(i, `crop ${crop.width}×${crop.height} needs ${human(bytes)} for its self-attention, over the ${human(budget)} budget; skipped`);
        continue;
      }
      // batching by memory, not only by count: a batch's attention stays within the budget
      if ((pending.get(size)?.length ?? 0) * bytes + bytes > budget) await flush(size);
      const list = pending.get(size) ?? [];
      list.push({ index: i, crop });
      pending.set(size, list);
      pendingBytes += crop.data.byteLength;
      if (list.length >= batchSize) await flush(size);
    }
    // too much waiting for partners: run the largest groups now
    while (pendingBytes > maxPending && pending.size) {
      let biggest = "", bytes = -1;
      for (const [size, list] of pending) {
        const b = list.reduce((s, x) => s + x.crop.data.byteLength, 0);
        if (b > bytes) { bytes = b; biggest = size; }
      }
      await flush(biggest);
    }
  }
  if (next) await next; // an abort leaves one decode in flight
  for (const size of [...pending.keys()]) await flush(size);
  if (opts.cache && embedded > 0) opts.cache.save();
  return { dim, features, ok, problems, fromCache, embedded, backboneSeconds: backboneMs / 1000, seconds: (performance.now() - t0) / 1000 };
}
