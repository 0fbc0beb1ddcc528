// The official pretrained weights MaskDistill builds on, where they live in the cache, and how to fetch
// them (resumable, verified by loading before they are put in place).
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as path from "node:path";
import { cacheHome } from "../paths.js";
import { MaskdistillError, inputError } from "../errors.js";
import { progress } from "../runner/progress.js";
import { readStateDict } from "./checkpoint/index.js";

export type WeightsArch =
  | { family: "vit"; model: "vit_small" | "vit_base"; patch: 8 | 16; dim: number; heads: number; depth: number }
  | { family: "resnet"; model: "resnet50"; depth: 50 };

export interface KnownWeights {
  name: string;
  url: string;
  /** File name in the cache (the release's own name). */
  file: string;
  arch: WeightsArch;
  description: string;
}

const DINO = "https://dl.fbaipublicfiles.com/dino";
const vitSmall = (patch: 8 | 16): WeightsArch => ({ family: "vit", model: "vit_small", patch, dim: 384, heads: 6, depth: 12 });
const vitBase = (patch: 8 | 16): WeightsArch => ({ family: "vit", model: "vit_base", patch, dim: 768, heads: 12, depth: 12 });

export const KNOWN_WEIGHTS: readonly KnownWeights[] = [
  { name: "dino_vits16", url: `${DINO}/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth`, file: "dino_deitsmall16_pretrain.pth", arch: vitSmall(16), description: "DINO ViT-S/16 backbone (stage i masks)" },
  { name: "dino_vits8", url: `${DINO}/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth`, file: "dino_deitsmall8_pretrain.pth", arch: vitSmall(8), description: "DINO ViT-S/8 backbone (stage ii embeddings)" },
  { name: "dino_vitb16", url: `${DINO}/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth`, file: "dino_vitbase16_pretrain.pth", arch: vitBase(16), description: "DINO ViT-B/16 backbone" },
  { name: "dino_vitb8", url: `${DINO}/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth`, file: "dino_vitbase8_pretrain.pth", arch: vitBase(8), description: "DINO ViT-B/8 backbone" },
  { name: "dino_resnet50", url: `${DINO}/dino_resnet50_pretrain/dino_resnet50_pretrain.pth`, file: "dino_resnet50_pretrain.pth", arch: { family: "resnet", model: "resnet50", depth: 50 }, description: "DINO ResNet-50 (Mask R-CNN init, LOST's recipe)" },
  {
    name: "moco_v2_r50",
    url: "https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/moco_v2_800ep_pretrain.pth.tar",
    file: "moco_v2_800ep_pretrain.pth.tar",
    arch: { family: "resnet", model: "resnet50", depth: 50 },
    description: "MoCo v2 ResNet-50, 800 epochs (DeepLab init, stage iv)",
  },
];

export function knownWeights(name: string): KnownWeights | undefined {
  return KNOWN_WEIGHTS.find((w) => w.name === name);
}

/** Where a known weights file lives: `cacheHome("weights", <release file name>)`. */
export function weightsPath(w: KnownWeights): string {
  return cacheHome("weights", w.file);
}

export interface ResolvedWeights {
  path: string;
  name?: string;
  arch?: WeightsArch;
  url?: string;
  /** Whether the file is there now. */
  exists: boolean;
}

const CHECKPOINT_EXT = /\.(pth|pt|tar|bin|ckpt|safetensors)$/i;

/**
 * A known name (`dino_vits16`, …) maps to its cache path; anything that looks like a path (has a
 * directory separator or a checkpoint extension, or exists) is used as is; any other word is an error
 * listing the known names.
 */
export function resolveWeights(nameOrPath: string): ResolvedWeights {
  const known = knownWeights(nameOrPath);
  if (known) {
    const p = weightsPath(known);
    return { path: p, name: known.name, arch: known.arch, url: known.url, exists: fs.existsSync(p) };
  }
  if (/[/\\]/.test(nameOrPath) || CHECKPOINT_EXT.test(nameOrPath) || fs.existsSync(nameOrPath)) {
    return { path: nameOrPath, exists: fs.existsSync(nameOrPath) };
  }
  throw new MaskdistillError(
    `unknown weights '${nameOrPath}': not a file and not a known name (known: ${KNOWN_WEIGHTS.map((w) => w.name).join(", ")})`,
  );
}

/** Like resolveWeights, but a missing file is an error that says how to get it. */
export function requireWeights(nameOrPath: string): ResolvedWeights {
  const r = resolveWeights(nameOrPath);
  if (r.exists) return r;
  if (r.name) {
    throw new MaskdistillError(`weights '${r.name}' are not downloaded: run 'maskdistill weights get ${r.name}', or download ${r.url} by hand and put it at ${r.path}`);
  }
  throw inputError(r.path, "no such checkpoint file");
}

export interface DownloadResult {
  path: string;
  bytes: number;
  /** Bytes that were already in the `.part` file (resumed download), 0 for a fresh one. */
  resumedFrom: number;
  /** Layout found when verifying (see readStateDict). */
  layout: string;
  alreadyPresent: boolean;
}

const NETWORK_CODES = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH", "EHOSTUNREACH", "UND_ERR_CONNECT_TIMEOUT", "UND_ERR_SOCKET"]);

function networkCode(e: unknown): string | undefined {
  for (let c: unknown = e, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return undefined;
}

/**
 * Downloads a known weights file into the cache: into `<file>.part` (resuming it with an HTTP Range
 * request when it exists), then verifies it loads as a state dict of the right architecture, then
 * renames it into place. `url` overrides the release URL (a mirror).
 */
export async function downloadWeights(
  name: string,
  opts: { url?: string; force?: boolean; quiet?: boolean } = {},
): Promise<DownloadResult> {
  const known = knownWeights(name);
  if (!known) throw new MaskdistillError(`unknown weights '${name}' (known: ${KNOWN_WEIGHTS.map((w) => w.name).join(", ")})`);
  const dest = weightsPath(known);
  const url = opts.url ?? known.url;
  const byHand = `download ${url} by hand (browser, curl, wget) and put it at ${dest}`;
  if (fs.existsSync(dest) && !opts.force) {
    const { layout } = await readStateDict(dest, known.arch.family);
    return { path: dest, bytes: fs.statSync(dest).size, resumedFrom: 0, layout, alreadyPresent: true };
  }
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  let start = fs.existsSync(part) ? fs.statSync(part).size : 0;

  let res: Response;
  try {
    res = await fetch(url, { headers: start > 0 ? { Range: `bytes=${start}-` } : {}, redirect: "follow" });
  } catch (e) {
    const code = networkCode(e);
    const why = code && NETWORK_CODES.has(code) ? `${code}: no network or the server is unreachable` : (e as Error).message;
    throw new MaskdistillError(`cannot download ${name} from ${url} (${why}). Offline? ${byHand}`);
  }
  let append = false;
  if (res.status === 416 && start > 0) {
    // Nothing left to fetch: the .part file is already complete.
    await res.body?.cancel();
  } else if (res.status === 206 && start > 0) {
    const m = /^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "");
    if (!m || Number(m[1]) !== start) {
      await res.body?.cancel();
      throw new MaskdistillError(`cannot resume ${name} from ${url}: the server answered with range '${res.headers.get("content-range")}' for a request from byte ${start}; delete ${part} and retry`);
    }
    append = true;
  } else if (res.ok) {
    start = 0; // the server ignored the Range header: start over
  } else {
    await res.body?.cancel();
    throw new MaskdistillError(`cannot download ${name}: ${url} answered HTTP ${res.status} ${res.statusText}. ${byHand}`);
  }

  if (res.status !== 416) {
    const length = Number(res.headers.get("content-length") ?? NaN);
    const total = Number.isFinite(length) ? start + length : 0;
    const bar = progress(`download ${name}`, total, { quiet: opts.quiet });
    if (start > 0) bar.tick(start, "resumed");
    const handle = await fsp.open(part, append ? "a" : "w");
    let received = 0;
    try {
      if (res.body) {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          await handle.write(chunk);
          received += chunk.length;
          bar.tick(chunk.length);
        }
      }
    } catch (e) {
      throw new MaskdistillError(`download of ${name} from ${url} was interrupted after ${start + received} bytes (${(e as Error).message}); run the same command again to resume, or ${byHand}`);
    } finally {
      bar.stop();
      await handle.close();
    }
    if (total && start + received !== total) {
      throw new MaskdistillError(`download of ${name} from ${url} ended after ${start + received} of ${total} bytes; run the same command again to resume`);
    }
  }

  let layout: string;
  try {
    ({ layout } = await readStateDict(part, known.arch.family));
  } catch (e) {
    await fsp.rm(part, { force: true }); // a complete but unreadable file cannot be resumed
    const why = e instanceof Error ? e.message : String(e);
    throw new MaskdistillError(`the file downloaded from ${url} for ${name} is not a valid ${known.arch.family} checkpoint and was deleted: ${why}`);
  }
  await fsp.rename(part, dest);
  return { path: dest, bytes: fs.statSync(dest).size, resumedFrom: start, layout, alreadyPresent: false };
}

export interface WeightsStatus {
  name: string;
  description: string;
  arch: WeightsArch;
  url: string;
  path: string;
  present: boolean;
  bytes: number | null;
  /** Size of an unfinished `.part` download, if any. */
  partialBytes: number | null;
}

/** Every known weights file with whether it is in the cache. */
export function listWeights(): WeightsStatus[] {
  return KNOWN_WEIGHTS.map((w) => {
    const p = weightsPath(w);
    const size = (f: string) => (fs.existsSync(f) ? fs.statSync(f).size : null);
    const bytes = size(p);
    return { name: w.name, description: w.description, arch: w.arch, url: w.url, path: p, present: bytes !== null, bytes, partialBytes: size(`${p}.part`) };
  });
}
