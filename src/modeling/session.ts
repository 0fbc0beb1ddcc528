// onnxruntime-node sessions and the on-disk cache of generated graphs.
//
// Devices: "cpu"; "cuda" tries the CUDA execution provider and, when it cannot load (the npm package
// ships without the CUDA libraries unless installed with ONNXRUNTIME_NODE_INSTALL=cuda12), falls back
// to the CPU with one warning per process — the CUDA EP does not fall back by itself, it throws;
// "auto" does the same silently.
//
// Graph cache: cacheHome("graphs")/<first 16 hex of the checkpoint's sha256>-<what>.onnx (+ the
// shared external-weights file). A checkpoint is hashed once; the hash is remembered by
// (path, mtime, size) in memory and in cacheHome("graphs", "hashes.json").
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import * as ort from "onnxruntime-node";
import { cacheHome, projectRoot } from "../paths.js";
import { availableCpus } from "../cpus.js";
import { inputError } from "../errors.js";

export type Device = "cpu" | "cuda" | "auto";

export interface Session {
  session: ort.InferenceSession;
  /** Where it actually runs. */
  device: "cpu" | "cuda";
}

let cudaFailure: string | undefined; // why the CUDA EP could not be used (tried once per process)
let cudaWarned = false;

function cpuOptions(): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ["cpu"],
    intraOpNumThreads: availableCpus(),
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
  };
}

/**
 * Why the CUDA EP cannot load, when its library is visibly absent (checked first: onnxruntime's own
 * failure would also print a native error log). Undefined when present or the layout is unknown.
 */
function cudaLibraryMissing(): string | undefined {
  const dir = path.join(projectRoot(), "node_modules", "onnxruntime-node", "bin", "napi-v6", process.platform, process.arch);
  if (!fs.existsSync(dir)) return undefined;
  const lib = process.platform === "win32" ? "onnxruntime_providers_cuda.dll" : "libonnxruntime_providers_cuda.so";
  if (fs.existsSync(path.join(dir, lib))) return undefined;
  return `${lib} is not installed; reinstall onnxruntime-node with ONNXRUNTIME_NODE_INSTALL=cuda12 to get it`;
}

/** Opens an ONNX model file (external weights next to it are found relative to its folder). */
export async function createSession(modelFile: string, device: Device = "cpu"): Promise<Session> {
  if (device !== "cpu" && cudaFailure === undefined) {
    cudaFailure = cudaLibraryMissing();
    if (cudaFailure === undefined) {
      try {
        const session = await ort.InferenceSession.create(modelFile, { ...cpuOptions(), executionProviders: ["cuda"] });
        return { session, device: "cuda" };
      } catch (err) {
        cudaFailure = err instanceof Error ? err.message.split("\n")[0] : String(err);
      }
    }
  }
  if (device === "cuda" && cudaFailure !== undefined && !cudaWarned) {
    cudaWarned = true;
    console.warn(`maskdistill: the CUDA execution provider is not available (${cudaFailure}); running on the CPU`);
  }
  try {
    return { session: await ort.InferenceSession.create(modelFile, cpuOptions()), device: "cpu" };
  } catch (err) {
    throw inputError(modelFile, "onnxruntime could not load the generated graph (delete it to rebuild)", err);
  }
}

/** Runs a session on float32 inputs and returns float32 outputs by name. */
export async function runFloat(
  s: Session,
  inputs: Record<string, { data: Float32Array; dims: number[] }>,
  outputs: string[],
): Promise<Record<string, { data: Float32Array; dims: number[] }>> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(inputs)) feeds[name] = new ort.Tensor("float32", t.data, t.dims);
  const res = await s.session.run(feeds, outputs);
  const out: Record<string, { data: Float32Array; dims: number[] }> = {};
  for (const name of outputs) {
    const t = res[name];
    out[name] = { data: t.data as Float32Array, dims: [...t.dims] };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checkpoint hashing and the graph cache

interface HashEntry { mtimeMs: number; size: number; sha256: string }
const hashMemo = new Map<string, HashEntry>();

function hashIndexFile(): string {
  return cacheHome("graphs", "hashes.json");
}

function readHashIndex(): Record<string, HashEntry> {
  try {
    return JSON.parse(fs.readFileSync(hashIndexFile(), "utf8")) as Record<string, HashEntry>;
  } catch {
    return {};
  }
}

/** sha256 (hex) of a file, computed once per (path, mtime, size). */
export async function fileSha256(file: string): Promise<string> {
  const abs = path.resolve(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (err) {
    throw inputError(file, "cannot read the checkpoint", err);
  }
  const same = (e: HashEntry | undefined): e is HashEntry => !!e && e.mtimeMs === st.mtimeMs && e.size === st.size;
  const memo = hashMemo.get(abs);
  if (same(memo)) return memo.sha256;
  const index = readHashIndex();
  if (same(index[abs])) {
    hashMemo.set(abs, index[abs]);
    return index[abs].sha256;
  }
  const hash = crypto.createHash("sha256");
  await new Promise<void>((resolve, reject) => {
    fs.createReadStream(abs)
      .on("data", (chunk) => hash.update(chunk))
      .on("end", () => resolve())
      .on("error", (err) => reject(inputError(file, "cannot read the checkpoint", err)));
  });
  const entry: HashEntry = { mtimeMs: st.mtimeMs, size: st.size, sha256: hash.digest("hex") };
  hashMemo.set(abs, entry);
  const fresh = readHashIndex(); // re-read: another process may have added entries meanwhile
  fresh[abs] = entry;
  writeFileAtomic(hashIndexFile(), JSON.stringify(fresh, null, 1));
  return entry.sha256;
}

/** A path in the graph cache. */
export function graphCachePath(name: string): string {
  return cacheHome("graphs", name);
}

/** Writes via a temporary file and rename, so readers never see a half-written file. */
export function writeFileAtomic(file: string, data: string | Uint8Array | ((tmp: string) => void)): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
  try {
    if (typeof data === "function") data(tmp);
    else fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

/** Resets the once-per-process CUDA state (tests). */
export function resetDeviceState(): void {
  cudaFailure = undefined;
  cudaWarned = false;
}
