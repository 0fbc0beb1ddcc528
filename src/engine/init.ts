// One place that sets TensorFlow.js up for training.
//
//  backend "auto": @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node when installed (native
//     TensorFlow, "tensorflow" backend), else wasm. "wasm" / "cpu" / "tensorflow" force one.
//  wasm: SIMD, and threads in Node. tfjs-backend-wasm 4.22 turns threads off in Node
//     (WASM_HAS_MULTITHREAD_SUPPORT is false there), and forcing them fails because the pthread
//     worker is handed out as a `blob:` URL, which Node's Worker cannot load. We
//     1. write the package's own worker script (wasm-out/…threaded-simd.worker.js exports it as a
//        string) to a real file, preceded by two lines that make the worker load the main script
//        from wasm-out/tfjs-backend-wasm-threaded-simd.js instead of the Blob it is sent, and hand
//        that path out from URL.createObjectURL while the backend starts (it starts its 8 workers then);
//     2. set WASM_HAS_MULTITHREAD_SUPPORT = true;
//     3. report 2× os.cpus() while the backend starts: the C++ side caps its pool at
//        logical_cores / 2, which would be 1 thread on a 2-core machine.
//     Nothing in node_modules is modified.
//  GEMM provider (wasm only; wasm/gemm.ts): "auto" runs the matrix products of our kernels (all
//     convolutions and matMuls) in onnxruntime-node's native MLAS, 4–5× faster than XNNPACK-wasm
//     here. onnxruntime-node cannot read a SharedArrayBuffer heap, so the wasm module is then the
//     single-threaded build and `threads` sizes MLAS's pool instead; "xnnpack" keeps everything in
//     wasm with `threads` XNNPACK threads (the setup above).
//  Our kernels and gradients (register.ts) are registered in every case.
import * as tf from "@tensorflow/tfjs";
import * as tfwasm from "@tensorflow/tfjs-backend-wasm";
import * as fs from "node:fs";
import * as path from "node:path";
import * as os from "node:os";
import { createRequire } from "node:module";
import { MaskdistillError } from "../errors.js";
import { cacheHome, projectRoot } from "../paths.js";
import { availableCpus } from "../cpus.js";
import { registerEngineKernels, engineKernelNames, engineGradientNames } from "./register.js";
import { heapBytes, WasmBackend } from "./wasm/backend.js";
import { setGemmProvider, gemmProvider, GemmProviderName } from "./wasm/gemm.js";

export type EngineBackendChoice = "auto" | "wasm" | "cpu" | "tensorflow";

export interface EngineOptions {
  backend?: EngineBackendChoice;
  /**
   * Threads for the heavy kernels; default: the number of CPU cores (at most 8). With the
   * onnxruntime GEMM provider they are MLAS's; with "xnnpack" the wasm pool's (1 = the
   * single-threaded SIMD build).
   */
  threads?: number;
  /** Who multiplies matrices on wasm: "auto" (onnxruntime when it loads, else xnnpack), or one of them. */
  gemm?: "auto" | GemmProviderName;
}

export interface EngineInfo {
  backend: "wasm" | "cpu" | "tensorflow";
  /** Threads doing the heavy kernels (wasm: MLAS's or XNNPACK's pool; cpu: 1; tensorflow: native, reported as cores). */
  threads: number;
  /** wasm only: the provider of the matrix products (convolutions included) and the wasm module's own threads. */
  gemm?: GemmProviderName;
  wasmThreads?: number;
  simd: boolean;
  /** For "tensorflow": the package that provided it. */
  nativePackage?: string;
  wasmKernels: string[];
  gradients: string[];
  notes: string[];
}

let info: EngineInfo | undefined;
let wasmStarted: { threads: number } | undefined;

const MAX_THREADS = 8;   // the threaded build pre-starts a pool of 8 workers
const THREAD_START_TIMEOUT_S = 60;

function requireFromProject(): NodeRequire {
  return createRequire(path.join(projectRoot(), "package.json"));
}

/** Writes the pthread worker file (once per content) and returns its path. */
function writeWasmWorker(): string {
  const req = requireFromProject();
  const pkgDir = path.dirname(req.resolve("@tensorflow/tfjs-backend-wasm/package.json"));
  const outDir = path.join(pkgDir, "wasm-out");
  const mainScript = path.join(outDir, "tfjs-backend-wasm-threaded-simd.js");
  const { wasmWorkerContents } = req(path.join(outDir, "tfjs-backend-wasm-threaded-simd.worker.js")) as { wasmWorkerContents: string };
  if (typeof wasmWorkerContents !== "string" || !fs.existsSync(mainScript)) {
    throw new Error(`unexpected layout of ${outDir}: no worker script or no threaded main script`);
  }
  const text =
    "// Written by maskdistill's engine (src/engine/init.ts): tfjs-backend-wasm's pthread worker,\n" +
    "// loading the main script from a file because Node workers cannot load blob: URLs.\n" +
    `URL.createObjectURL = () => ${JSON.stringify(mainScript)};\n` +
    "URL.revokeObjectURL = () => {};\n" +
    // The script is kept as a template string in the package; its "\n" escapes became newlines.
    wasmWorkerContents.replace(/\n/g, "\\n") + "\n";
  const candidates = [cacheHome("tfjs-wasm"), path.join(os.tmpdir(), "maskdistill-tfjs-wasm")];
  let lastError: unknown;
  for (const dir of candidates) {
    try {
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `worker-${tfwasm.version_wasm}-${hash(mainScript)}.cjs`);
      if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) {
        const tmp = `${file}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, text);
        fs.renameSync(tmp, file);   // atomic: a concurrent process never sees half a file
      }
      return file;
    } catch (e) {
      lastError = e;
    }
  }
  throw new Error(`cannot write the wasm worker file (${String(lastError)})`);
}

function hash(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16);
}

/**
 * The XNNPACK pool's pthreads run for the life of the backend and emscripten `ref()`s their workers,
 * so Node would never exit. They hold no work of their own between kernels: let the process exit.
 */
function unrefWasmWorkers(): void {
  const backend = tf.backend() as unknown as { wasm?: { PThread?: { runningWorkers: Array<{ unref?: () => void }>; unusedWorkers: Array<{ unref?: () => void }> } } };
  const pt = backend.wasm?.PThread;
  if (!pt) return;
  for (const w of [...pt.runningWorkers, ...pt.unusedWorkers]) w.unref?.();
}

async function startWasm(threads: number, notes: string[]): Promise<boolean> {
  if (threads > 1) {
    let workerFile: string | undefined;
    try {
      workerFile = writeWasmWorker();
    } catch (e) {
      notes.push(`wasm threads unavailable, running 1 thread: ${(e as Error).message}`);
    }
    if (workerFile) {
      const file = workerFile;
      // The module object itself (an ESM namespace or a CommonJS interop copy would not do): the
      // wasm glue calls require("os").cpus().
      const mutableOs = requireFromProject()("node:os") as { cpus: () => os.CpuInfo[] };
      const osCpus = mutableOs.cpus;
      const createObjectURL = URL.createObjectURL;
      tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
      tfwasm.setThreadsCount(threads);
      URL.createObjectURL = (obj: Blob) =>
        obj instanceof Blob && obj.type === "application/javascript" ? file : createObjectURL(obj);
      mutableOs.cpus = () => {
        const real = osCpus();
        const want = Math.max(real.length, 2 * threads);
        return Array.from({ length: want }, (_, i) => real[i % real.length]);
      };
      let ok = false;
      let timer: NodeJS.Timeout | undefined;
      try {
        // A worker that cannot load leaves the module waiting forever: bound the wait.
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new MaskdistillError(
            `the threaded wasm backend did not start within ${THREAD_START_TIMEOUT_S} s ` +
            `(worker script ${file}); use initEngine({ threads: 1 })`)), THREAD_START_TIMEOUT_S * 1000);
          timer.unref();
        });
        ok = await Promise.race([tf.setBackend("wasm").then(async (started) => { if (started) await tf.ready(); return started; }), timeout]);
      } catch (e) {
        if (e instanceof MaskdistillError) throw e;
        notes.push(`threaded wasm failed (${(e as Error).message}); falling back to 1 thread`);
        ok = false;
      } finally {
        clearTimeout(timer);
        URL.createObjectURL = createObjectURL;
        mutableOs.cpus = osCpus;
      }
      if (ok) {
        unrefWasmWorkers();
        return true;
      }
      tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
    }
  }
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  tfwasm.setThreadsCount(1);
  const ok = await tf.setBackend("wasm");
  if (ok) await tf.ready();
  return ok;
}

async function tryNative(notes: string[]): Promise<string | undefined> {
  for (const name of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    try {
      await import(name);   // variable specifier: optional, never resolved by tsc
    } catch {
      continue;             // absent, or libtensorflow could not load
    }
    if (tf.findBackendFactory("tensorflow")) {
      if (await tf.setBackend("tensorflow")) { await tf.ready(); return name; }
      notes.push(`${name} is installed but its backend failed to start`);
    } else {
      notes.push(`${name} is installed but registered its backend on another copy of @tensorflow/tfjs-core ` +
        `(install the same version as @tensorflow/tfjs, ${tf.version.tfjs})`);
    }
  }
  return undefined;
}

/**
 * Initialises TensorFlow.js for training and returns it. Idempotent: a second call with the same or
 * no options returns at once; a call naming another backend switches to it. The wasm thread count is
 * fixed for the life of the process (the pool is started once).
 */
export async function initEngine(opts: EngineOptions = {}): Promise<typeof tf> {
  const choice = opts.backend ?? "auto";
  if (!["auto", "wasm", "cpu", "tensorflow"].includes(choice)) {
    throw new MaskdistillError(`unknown engine backend "${choice}" (use auto, wasm, cpu or tensorflow)`);
  }
  const wantThreads = Math.max(1, Math.min(MAX_THREADS, Math.floor(opts.threads ?? Math.min(availableCpus(), MAX_THREADS))));
  if (opts.threads !== undefined && !(opts.threads >= 1)) {
    throw new MaskdistillError(`engine threads must be ≥ 1, got ${opts.threads}`);
  }
  const gemmChoice = opts.gemm ?? "auto";
  if (!["auto", "onnxruntime", "xnnpack"].includes(gemmChoice)) {
    throw new MaskdistillError(`unknown GEMM provider "${gemmChoice}" (use auto, onnxruntime or xnnpack)`);
  }
  registerEngineKernels();
  if (info && (choice === "auto" || choice === info.backend)) {
    const sameGemm = gemmChoice === "auto" || info.backend !== "wasm" || gemmChoice === info.gemm;
    const sameThreads = opts.threads === undefined || info.backend !== "wasm" || info.threads === wantThreads;
    if (sameGemm && sameThreads) {
      if (tf.getBackend() !== info.backend) await tf.setBackend(info.backend);
      return tf;
    }
    if (info.backend === "wasm" && info.wasmThreads === 1 && gemmChoice !== "xnnpack") {
      // MLAS's pool can be resized at any time (the wasm module stays single-threaded).
      if (tf.getBackend() !== "wasm") await tf.setBackend("wasm");
      const set = setGemmProvider("onnxruntime", wantThreads, tf.backend() as unknown as WasmBackend);
      if (set.provider !== "onnxruntime") throw new MaskdistillError(`GEMM provider onnxruntime: ${set.why}`);
      info = { ...info, gemm: "onnxruntime", threads: wantThreads };
      return tf;
    }
  }
  const notes: string[] = [];
  let backend: EngineInfo["backend"] | undefined;
  let nativePackage: string | undefined;

  if (choice === "auto" || choice === "tensorflow") {
    nativePackage = await tryNative(notes);
    if (nativePackage) backend = "tensorflow";
    else if (choice === "tensorflow") {
      throw new MaskdistillError("backend \"tensorflow\" requested but neither @tensorflow/tfjs-node-gpu nor " +
        `@tensorflow/tfjs-node could be loaded${notes.length ? ` (${notes.join("; ")})` : ""}. ` +
        "Install one with: npm i --no-save @tensorflow/tfjs-node-gpu@" + tf.version.tfjs);
    }
  }
  let gemm: GemmProviderName | undefined;
  if (!backend && (choice === "auto" || choice === "wasm")) {
    // onnxruntime needs the single-threaded wasm build; xnnpack gets the threads.
    const wasmThreads = gemmChoice === "xnnpack" ? wantThreads : 1;
    if (wasmStarted) {
      if (wasmStarted.threads !== wasmThreads && (opts.threads !== undefined || opts.gemm !== undefined)) {
        throw new MaskdistillError(`the wasm backend already runs ${wasmStarted.threads} thread(s) in this process; ` +
          `its thread count (asked: ${wasmThreads}, GEMM provider ${gemmChoice}) can only be chosen before the first initEngine()`);
      }
      await tf.setBackend("wasm");
      backend = "wasm";
    } else if (await startWasm(wasmThreads, notes)) {
      wasmStarted = { threads: tfwasm.getThreadsCount() };
      backend = "wasm";
      if (wasmStarted.threads !== wasmThreads) notes.push(`asked for ${wasmThreads} wasm threads, got ${wasmStarted.threads}`);
    } else if (choice === "wasm") {
      throw new MaskdistillError(`the wasm backend failed to start${notes.length ? ` (${notes.join("; ")})` : ""}`);
    }
    if (backend === "wasm") {
      const set = setGemmProvider(gemmChoice === "xnnpack" ? "xnnpack" : "onnxruntime", wantThreads, tf.backend() as unknown as WasmBackend);
      if (gemmChoice === "onnxruntime" && set.provider !== "onnxruntime") {
        throw new MaskdistillError(`GEMM provider onnxruntime: ${set.why}`);
      }
      if (set.why && gemmChoice === "auto") notes.push(`GEMM provider xnnpack: ${set.why}`);
      gemm = set.provider;
    }
  }
  if (!backend) {
    if (!(await tf.setBackend("cpu"))) throw new MaskdistillError("the cpu backend failed to start");
    await tf.ready();
    backend = "cpu";
  }
  const simd = backend === "wasm" ? Boolean(await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")) : false;
  info = {
    backend,
    threads: backend === "wasm" ? (gemm === "onnxruntime" ? gemmProvider().threads : wasmStarted!.threads) : backend === "cpu" ? 1 : os.cpus().length,
    gemm,
    wasmThreads: backend === "wasm" ? wasmStarted!.threads : undefined,
    simd,
    nativePackage,
    wasmKernels: engineKernelNames(),
    gradients: engineGradientNames(),
    notes,
  };
  return tf;
}

/** The active backend and thread count; throws before initEngine(). */
export function engineInfo(): EngineInfo {
  if (!info) throw new MaskdistillError("the training engine is not initialised: call initEngine() first");
  return { ...info, backend: tf.getBackend() as EngineInfo["backend"], notes: [...info.notes] };
}

/** The wasm heap's current size in bytes (its high-water mark: it never shrinks), or undefined off wasm. */
export function wasmHeapBytes(): number | undefined {
  if (tf.getBackend() !== "wasm") return undefined;
  return heapBytes(tf.backend() as unknown as WasmBackend);
}
