// Backbones for notebooks and the pipeline: a DINO ViT (stage i: last-layer q/k; stage ii: CLS
// embeddings) and a ResNet-50 (stage iv features), run with onnxruntime-node.
//
//   const vit = await loadBackbone("dino_vits16");            // or a path to a .pth file
//   const { q, k, heads, tokens } = await vit.lastSelfAttention(img);   // img: {data CHW, width, height}
//   const emb = await vit.cls(crop);
//   const r50 = await loadResNet50("moco_v2_r50", { dilated: true });
//   const { layer4 } = await r50.features(img);
//
// The checkpoint is read once: its weights go to an external-data file in cacheHome("graphs") keyed by
// the checkpoint's sha256, the small graphs next to it are built on first use, and later loads of the
// same checkpoint skip the checkpoint reader entirely.
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError, inputError } from "../errors.js";
import { checkKeys, readStateDict } from "./checkpoint/index.js";
import type { StateDict } from "./checkpoint/index.js";
import { openWeightFile, saveWeightFile } from "./onnx/index.js";
import type { WeightFile } from "./onnx/index.js";
import { buildResNetGraph, resnetConfigFromStateDict, resnetExpectedKeys, resnetWeightFile, RESNET_STAGES } from "./resnet.js";
import type { ResNetConfig, ResNetStage } from "./resnet.js";
import { createSession, fileSha256, graphCachePath, runFloat, writeFileAtomic } from "./session.js";
import type { Device, Session } from "./session.js";
import { buildVitGraph, interpolatePosEmbed, VIT_HEADS, VIT_PRECISIONS, vitConfigFromStateDict, vitExpectedKeys, vitWeightFile } from "./vit.js";
import type { VitArch, VitConfig, VitGraphKind, VitPrecision } from "./vit.js";
import { requireWeights } from "./weights.js";

/** Bump when the generated graphs or weight files change meaning: old cache entries are then ignored. */
const CACHE_VERSION = 1;
/** Interpolated position-embedding tables kept per backbone (one per grid size). */
const POS_CACHE_SIZE = 64;

/** A normalised CHW float32 image (3 × height × width), e.g. a PreprocessedImage. */
export interface ImageTensor {
  data: Float32Array;
  width: number;
  height: number;
}

export interface LastSelfAttention {
  /** [1, heads, tokens, headDim] row-major, before the 1/√headDim scaling. */
  q: Float32Array;
  k: Float32Array;
  heads: number;
  /** 1 + rows·cols (CLS first, then patches row-major). */
  tokens: number;
  rows: number;
  cols: number;
  headDim: number;
}

export interface PatchTokens {
  /** [rows·cols, dim] row-major: last-layer patch tokens after the final LayerNorm. */
  data: Float32Array;
  rows: number;
  cols: number;
  dim: number;
}

export interface VitBackbone {
  kind: "vit";
  arch?: VitArch;
  patch: number;
  heads: number;
  dim: number;
  depth: number;
  file: string;
  device: Device;
  /** Numeric precision of the graphs ("fp32" unless asked; see VitPrecision). */
  precision: VitPrecision;
  lastSelfAttention(img: ImageTensor): Promise<LastSelfAttention>;
  /** CLS token after the final LayerNorm, [dim]. */
  cls(img: ImageTensor): Promise<Float32Array>;
  /** CLS tokens of several images of one size, run as one batch. */
  clsBatch(imgs: ImageTensor[]): Promise<Float32Array[]>;
  patchTokens(img: ImageTensor): Promise<PatchTokens>;
  dispose(): Promise<void>;
}

export interface VitOptions {
  arch?: VitArch;
  /** Checked against the checkpoint's patch embedding when given. */
  patch?: 8 | 16;
  heads?: number;
  device?: Device;
  /** "int8": dynamically quantised Linear layers (faster on the CPU, close to but not equal to fp32). */
  precision?: VitPrecision;
}

interface VitMeta {
  format: 1;
  config: Omit<VitConfig, "heads" | "headDim">;
  weights: string;
  weightsSize: number;
  /** sha256 of the weights file: a cache entry changed in place (same size) is rebuilt, not used. */
  weightsSha256: string;
  entries: Record<string, { dims: number[]; offset: number; length: number }>;
  layout: string;
}

/**
 * Heads declared by a config sidecar next to the checkpoint (`<stem>.json` with a "heads" field, as
 * `maskdistill pretrain` writes for its small ViTs): the checkpoint's tensors do not say how the width
 * is split into heads.
 */
function sidecarHeads(file: string): number | undefined {
  const sidecar = path.join(path.dirname(file), `${path.basename(file).replace(/\.[^.]+$/, "")}.json`);
  if (!fs.existsSync(sidecar)) return undefined;
  let cfg: unknown;
  try {
    cfg = JSON.parse(fs.readFileSync(sidecar, "utf8"));
  } catch (e) {
    throw inputError(sidecar, "backbone config sidecar is not valid JSON", e);
  }
  const heads = (cfg as { heads?: unknown } | null)?.heads;
  if (heads === undefined) return undefined;
  if (!(Number.isInteger(heads) && (heads as number) > 0)) throw new MaskdistillError(`"heads" must be a positive integer, got ${JSON.stringify(heads)}`, sidecar);
  return heads as number;
}

/** Loads a DINO ViT from a known name (`dino_vits16`, …, see weights.ts) or a checkpoint path. */
export async function loadBackbone(nameOrPath: string, opts: VitOptions = {}): Promise<VitBackbone> {
  const resolved = requireWeights(nameOrPath);
  const file = resolved.path;
  const known = resolved.arch?.family === "vit" ? resolved.arch : undefined;
  const arch = opts.arch ?? known?.model;
  const device = opts.device ?? "cpu";
  const precision = opts.precision ?? "fp32";
  if (!VIT_PRECISIONS.includes(precision)) throw new MaskdistillError(`precision '${precision}' is not one of ${VIT_PRECISIONS.join(", ")}`);
  const sha = (await fileSha256(file)).slice(0, 16);
  // a width that is not a multiple of 64 (our small pretrained ViTs) splits into the sidecar's heads
  const declaredHeads = opts.heads ?? (arch ? VIT_HEADS[arch] : known?.heads ?? sidecarHeads(file));
  const meta = await vitMeta(file, sha, arch, { ...opts, heads: declaredHeads });
  const base = meta.config;
  const heads = declaredHeads ?? (base.dim % 64 === 0 ? base.dim / 64 : 0);
  if (!(heads > 0) || base.dim % heads !== 0) throw new MaskdistillError(`cannot split width ${base.dim} into ${heads} heads; pass heads explicitly`, file);
  const cfg: VitConfig = { ...base, heads, headDim: base.dim / heads };
  const posEmbed = weightFileOf(meta).values("pos_embed");
  const posCache = new Map<string, Float32Array>();
  const sessions = new Map<VitGraphKind, Promise<Session>>();

  const session = (kind: VitGraphKind): Promise<Session> => {
    let s = sessions.get(kind);
    if (!s) {
      const graph = graphCachePath(`${sha}-v${CACHE_VERSION}.vit-h${heads}-${kind}${precision === "fp32" ? "" : "-" + precision}.onnx`);
      s = ensureGraph(graph, () => buildVitGraph(kind, cfg, weightFileOf(meta), { precision })).then(() => createSession(graph, device));
      sessions.set(kind, s);
    }
    return s;
  };

  const grid = (img: ImageTensor): { rows: number; cols: number } => {
    checkImage(img, cfg.patch, file);
    return { rows: img.height / cfg.patch, cols: img.width / cfg.patch };
  };
  const posFor = (rows: number, cols: number): Float32Array => {
    // one table per grid size, least recently used dropped first (stage ii sees many crop sizes)
    const key = `${rows}x${cols}`;
    let p = posCache.get(key);
    if (p) posCache.delete(key);
    else p = interpolatePosEmbed(posEmbed, cfg.dim, rows, cols, rows * cfg.patch, cols * cfg.patch);
    posCache.set(key, p);
    if (posCache.size > POS_CACHE_SIZE) posCache.delete(posCache.keys().next().value!);
    return p;
  };
  const feeds = (imgs: ImageTensor[], rows: number, cols: number) => {
    const { width, height } = imgs[0];
    const n = 3 * width * height;
    const pixels = imgs.length === 1 ? imgs[0].data : new Float32Array(n * imgs.length);
    if (imgs.length > 1) imgs.forEach((im, i) => pixels.set(im.data, i * n));
    return {
      pixels: { data: pixels, dims: [imgs.length, 3, height, width] },
      pos_embed: { data: posFor(rows, cols), dims: [1, 1 + rows * cols, cfg.dim] },
    };
  };

  const vit: VitBackbone = {
    kind: "vit",
    arch,
    patch: cfg.patch,
    heads,
    dim: cfg.dim,
    depth: cfg.depth,
    file,
    device,
    precision,
    async lastSelfAttention(img) {
      const { rows, cols } = grid(img);
      const out = await runFloat(await session("qk"), feeds([img], rows, cols), ["q", "k"]);
      return { q: out.q.data, k: out.k.data, heads, tokens: 1 + rows * cols, rows, cols, headDim: cfg.headDim };
    },
    async cls(img) {
      return (await vit.clsBatch([img]))[0];
    },
    async clsBatch(imgs) {
      if (imgs.length === 0) return [];
      const { rows, cols } = grid(imgs[0]);
      imgs.forEach((im, i) => {
        grid(im);
        if (im.width !== imgs[0].width || im.height !== imgs[0].height) {
          throw new MaskdistillError(`clsBatch needs images of one size: image 0 is ${imgs[0].width}×${imgs[0].height}, image ${i} is ${im.width}×${im.height}`);
        }
      });
      const out = await runFloat(await session("cls"), feeds(imgs, rows, cols), ["cls"]);
      return imgs.map((_, i) => out.cls.data.slice(i * cfg.dim, (i + 1) * cfg.dim));
    },
    async patchTokens(img) {
      const { rows, cols } = grid(img);
      const out = await runFloat(await session("tokens"), feeds([img], rows, cols), ["tokens"]);
      return { data: out.tokens.data.slice(cfg.dim), rows, cols, dim: cfg.dim };
    },
    async dispose() {
      const all = [...sessions.values()];
      sessions.clear();
      for (const s of all) await (await s).session.release();
    },
  };
  return vit;
}

/** Reads the cached description of a checkpoint, or reads the checkpoint and fills the cache. */
async function vitMeta(file: string, sha: string, arch: VitArch | undefined, opts: VitOptions): Promise<VitMeta> {
  const metaFile = graphCachePath(`${sha}-v${CACHE_VERSION}.vit.json`);
  const cached = await readMeta<VitMeta>(metaFile);
  if (cached) {
    if (opts.patch !== undefined && opts.patch !== cached.config.patch) {
      throw new MaskdistillError(`patch size ${opts.patch} was asked for but the checkpoint's patch embedding is ${cached.config.patch}×${cached.config.patch}`, file);
    }
    return cached;
  }
  const { stateDict, layout } = await readStateDict(file, "vit");
  const cfg = checkVitStateDict(stateDict, file, { arch, heads: opts.heads, patch: opts.patch });
  const weightsName = `${sha}-v${CACHE_VERSION}.vit.weights`;
  const wf = vitWeightFile(stateDict, cfg, weightsName);
  const { heads: _h, headDim: _d, ...config } = cfg;
  writeFileAtomic(graphCachePath(weightsName), (tmp) => saveWeightFile(wf, tmp));
  const weightsSha256 = await fileSha256(graphCachePath(weightsName));
  const meta: VitMeta = { format: 1, config, weights: weightsName, weightsSize: wf.size, weightsSha256, entries: Object.fromEntries(wf.entries), layout };
  writeFileAtomic(metaFile, JSON.stringify(meta));
  return meta;
}


// ---------------------------------------------------------------------------------------------
// ResNet-50

export interface FeatureMap {
  data: Float32Array;
  /** [batch, channels, height, width] */
  shape: number[];
}

export interface ResNetBackbone {
  kind: "resnet";
  file: string;
  dilated: boolean;
  device: Device;
  config: ResNetConfig;
  features(img: ImageTensor): Promise<Record<ResNetStage, FeatureMap>>;
  dispose(): Promise<void>;
}

interface ResNetMeta {
  format: 1;
  config: ResNetConfig;
  weights: string;
  weightsSize: number;
  /** sha256 of the weights file: a cache entry changed in place (same size) is rebuilt, not used. */
  weightsSha256: string;
  entries: Record<string, { dims: number[]; offset: number; length: number }>;
  layout: string;
}

/**
 * Loads a torchvision-layout Bottleneck ResNet (MoCo v2 `module.encoder_q.*` files included; the fc
 * head is dropped) from a known name (`moco_v2_r50`) or a path. `dilated`: output stride 8 (DeepLab).
 */
export async function loadResNet50(nameOrPath: string, opts: { dilated: boolean; device?: Device }): Promise<ResNetBackbone> {
  const resolved = requireWeights(nameOrPath);
  const file = resolved.path;
  const device = opts.device ?? "cpu";
  const sha = (await fileSha256(file)).slice(0, 16);
  const metaFile = graphCachePath(`${sha}-v${CACHE_VERSION}.resnet.json`);
  let meta = await readMeta<ResNetMeta>(metaFile);
  if (!meta) {
    const { stateDict, layout } = await readStateDict(file, "resnet");
    const cfg = checkResNetStateDict(stateDict, file);
    const weightsName = `${sha}-v${CACHE_VERSION}.resnet.weights`;
    const wf = resnetWeightFile(stateDict, cfg, weightsName);
    writeFileAtomic(graphCachePath(weightsName), (tmp) => saveWeightFile(wf, tmp));
    const weightsSha256 = await fileSha256(graphCachePath(weightsName));
    meta = { format: 1, config: cfg, weights: weightsName, weightsSize: wf.size, weightsSha256, entries: Object.fromEntries(wf.entries), layout };
    writeFileAtomic(metaFile, JSON.stringify(meta));
  }
  const m = meta;
  const graph = graphCachePath(`${sha}-v${CACHE_VERSION}.resnet-${opts.dilated ? "os8" : "os32"}.onnx`);
  await ensureGraph(graph, () => buildResNetGraph(m.config, weightFileOf(m), { dilated: opts.dilated }));
  let session: Promise<Session> | undefined;

  return {
    kind: "resnet",
    file,
    dilated: opts.dilated,
    device,
    config: m.config,
    async features(img) {
      checkImage(img, 1, file);
      session ??= createSession(graph, device);
      const out = await runFloat(await session, { pixels: { data: img.data, dims: [1, 3, img.height, img.width] } }, [...RESNET_STAGES]);
      const res = {} as Record<ResNetStage, FeatureMap>;
      for (const stage of RESNET_STAGES) res[stage] = { data: out[stage].data, shape: out[stage].dims };
      return res;
    },
    async dispose() {
      const s = session;
      session = undefined;
      if (s) await (await s).session.release();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// helpers

function checkImage(img: ImageTensor, patch: number, file: string): void {
  const { width, height, data } = img;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new MaskdistillError(`image size ${width}×${height} is not a positive integer size`);
  }
  if (data.length !== 3 * width * height) {
    throw new MaskdistillError(`image data has ${data.length} values; a 3×${height}×${width} (CHW) image needs ${3 * width * height}`);
  }
  if (width < patch || height < patch) {
    throw new MaskdistillError(`image ${width}×${height} is smaller than one ${patch}×${patch} patch of ${path.basename(file)}`);
  }
  if (width % patch !== 0 || height % patch !== 0) {
    throw new MaskdistillError(`image ${width}×${height} is not a multiple of the patch size ${patch} of ${path.basename(file)}: pad it (preprocess with multiple: ${patch})`);
  }
}

/**
 * The checks a ViT checkpoint passes before it is used (and `weights inspect` reports): its config
 * follows from the tensors, every tensor the model needs is there with the right shape, no others, and
 * every value is finite. Runs once per checkpoint (later loads read the graph cache).
 */
export function checkVitStateDict(sd: StateDict, file: string, opts: { arch?: VitArch; heads?: number; patch?: 8 | 16 } = {}): VitConfig {
  const cfg = vitConfigFromStateDict(sd, file, opts);
  requireExactKeys(sd, vitExpectedKeys(cfg), file);
  requireFinite(sd, file);
  return cfg;
}

/** The ResNet counterpart of checkVitStateDict. */
export function checkResNetStateDict(sd: StateDict, file: string): ResNetConfig {
  const cfg = resnetConfigFromStateDict(sd, file);
  requireExactKeys(sd, resnetExpectedKeys(cfg), file);
  requireFinite(sd, file);
  return cfg;
}

/**
 * NaN or ±Inf in any float tensor is an error naming the tensor: such weights run without complaint
 * and give garbage (e.g. whole-image masks). float16/bfloat16 are checked on their bit patterns.
 */
export function requireFinite(sd: StateDict, file: string): void {
  for (const [key, t] of sd) {
    let bad = -1;
    if (t.dtype === "float32" || t.dtype === "float64") {
      const a = t.data as Float32Array | Float64Array;
      for (let i = 0; i < a.length; i++) {
        // x - x is 0 for finite x and NaN for NaN and ±Inf
        if (a[i] - a[i] !== 0) { bad = i; break; }
      }
    } else if (t.dtype === "float16" || t.dtype === "bfloat16") {
      const a = t.data as Uint16Array;
      const mask = t.dtype === "float16" ? 0x7c00 : 0x7f80; // all exponent bits set: Inf or NaN
      for (let i = 0; i < a.length; i++) {
        if ((a[i] & mask) === mask) { bad = i; break; }
      }
    }
    if (bad >= 0) {
      let count = 0;
      const v = Number(t.data[bad]);
      if (t.dtype === "float32" || t.dtype === "float64") for (const x of t.data as Float32Array) if (x - x !== 0) count++;
      const what = t.dtype === "float32" || t.dtype === "float64" ? `${count} non-finite value(s), the first ${v} at element ${bad}` : `a non-finite value at element ${bad}`;
      throw new MaskdistillError(`tensor ${key} [${t.shape.join(", ")}] holds ${what}: the checkpoint is corrupt or diverged in training; use another checkpoint`, file);
    }
  }
}

/** Missing or unexpected backbone keys are an error naming them. */
function requireExactKeys(sd: StateDict, expected: Map<string, number[]>, file: string): void {
  const { missing, unexpected } = checkKeys(sd, expected, file);
  const list = (ks: string[]): string => ks.slice(0, 8).join(", ") + (ks.length > 8 ? `, … (${ks.length} in all)` : "");
  if (missing.length) throw new MaskdistillError(`the checkpoint lacks ${missing.length} tensor(s) the model needs: ${list(missing)}`, file);
  if (unexpected.length) throw new MaskdistillError(`the checkpoint has ${unexpected.length} tensor(s) the model does not use: ${list(unexpected)}`, file);
}

/**
 * A cached checkpoint description, or undefined when it is missing, of another format, or its weights
 * file is not the one written (size or sha256 differ: the entry is rebuilt from the checkpoint).
 */
async function readMeta<T extends { format: number; weights: string; weightsSize: number; weightsSha256: string }>(metaFile: string): Promise<T | undefined> {
  try {
    const meta = JSON.parse(fs.readFileSync(metaFile, "utf8")) as T;
    if (meta.format !== 1 || typeof meta.weightsSha256 !== "string") return undefined;
    const weights = graphCachePath(meta.weights);
    if (fs.statSync(weights).size !== meta.weightsSize) return undefined;
    if ((await fileSha256(weights)) !== meta.weightsSha256) return undefined;
    return meta;
  } catch {
    return undefined;
  }
}

/**
 * Builds a cached graph unless it is there with the sha256 recorded next to it (`<graph>.sha256`):
 * a graph changed in place is rebuilt. The hash of an unchanged file is memoised (path, mtime, size).
 */
async function ensureGraph(graph: string, build: () => Uint8Array): Promise<void> {
  const sumFile = `${graph}.sha256`;
  if (fs.existsSync(graph) && fs.existsSync(sumFile)) {
    try {
      if ((await fileSha256(graph)) === fs.readFileSync(sumFile, "utf8").trim()) return;
    } catch { /* rebuild */ }
  }
  writeFileAtomic(graph, build());
  writeFileAtomic(sumFile, (await fileSha256(graph)) + "\n");
}

/** The entries of a saved weight file (enough to build graphs that refer to it or derive tensors from it). */
function weightFileOf(meta: { weights: string; weightsSize: number; entries: VitMeta["entries"] }): WeightFile {
  return openWeightFile(graphCachePath(meta.weights), meta.weights, new Map(Object.entries(meta.entries)), meta.weightsSize);
}
