// Data-parallel training on one machine: helper threads that each compute the gradients of their share of a
// batch while the main thread computes its own (detectron2's DDP, with threads for GPUs).
//
// Why: most of a small network's step is single-threaded JavaScript and wasm dispatch, not the matrix products
// MLAS can spread over cores, so a second MLAS thread buys little (a shapes-recipe Mask R-CNN iteration: 0.60 s
// on 2 threads). Each worker thread has its own engine (wasm module, onnxruntime's MLAS). Threads, not processes:
// a child process's IPC pipe is only drained while the busy parent yields, which cost more than the share saved;
// a thread's messages arrive at once, and typed arrays move without a copy (transferred, or shared).
//
// Protocol: the main thread posts { kind: "init", payload } once, then { kind: "job", payload } per step; the
// worker answers { kind: "ready" } / { kind: "result", payload } or { kind: "error", message, file? }. The
// ArrayBuffers of a result's typed arrays are transferred, not copied.
import { Worker, parentPort } from "node:worker_threads";
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { MaskdistillError } from "../errors.js";
import { projectRoot } from "../paths.js";

type ToWorker = { kind: "init"; payload: unknown } | { kind: "job"; payload: unknown };
type FromWorker = { kind: "ready" } | { kind: "result"; payload: unknown } | { kind: "error"; message: string; file?: string; bug?: boolean };

/** N helper threads running one worker module; `run` gives each one job and waits for every answer, `runOn` one worker one job. */
export interface WorkerPool<Job, Result> {
  readonly size: number;
  run(jobs: Job[]): Promise<Result[]>;
  runOn(k: number, job: Job): Promise<Result>;
  close(): Promise<void>;
}

/**
 * The engine's threads divided among `parts` threads of work (this one and its helpers; at least one each):
 * this thread's MLAS pool shrinks to its part until `restore`. The helpers' engines get `threads` too.
 */
async function divideEngineThreads(parts: number): Promise<{ backend: "wasm" | "cpu" | "tensorflow"; threads: number; restore(): Promise<void> }> {
  const { engineInfo, initEngine } = await import("./init.js");
  const info = engineInfo();
  const threads = Math.max(1, Math.floor(info.threads / parts));
  const resize = info.backend === "wasm" && threads !== info.threads;
  if (resize) await initEngine({ backend: "wasm", threads });
  return { backend: info.backend, threads, restore: async () => { if (resize) await initEngine({ backend: "wasm", threads: info.threads }); } };
}

/**
 * How to start worker module `rel` (e.g. "instance/maskRcnnWorker"): the compiled file when the CLI runs from
 * dist/, else the TypeScript source behind workerBoot.mjs, which registers tsx in the thread (tests, notebooks).
 */
function workerEntry(rel: string): { file: string; workerData: unknown } {
  const root = projectRoot();
  if (process.env.MASKDISTILL_CLI === "dist") {
    const file = path.join(root, "dist", `${rel}.js`);
    if (fs.existsSync(file)) return { file, workerData: {} };
  }
  return { file: path.join(root, "src", "engine", "workerBoot.mjs"), workerData: { entry: pathToFileURL(path.join(root, "src", `${rel}.ts`)).href } };
}

/** Starts `count` threads of worker module `rel` and sends each `init`; resolves once all are ready. */
export async function startWorkers<Init, Job, Result>(rel: string, count: number, init: Init, what: string): Promise<WorkerPool<Job, Result>> {
  const entry = workerEntry(rel);
  const workers: Worker[] = [];
  // per worker: the pending answer, settled by a message, an error report, or the thread's end
  const pending: ({ resolve: (v: unknown) => void; reject: (e: Error) => void } | undefined)[] = [];
  let closing = false;
  const fail = (k: number, e: Error) => { const p = pending[k]; pending[k] = undefined; p?.reject(e); };
  const expect = (k: number) => new Promise<unknown>((resolve, reject) => { pending[k] = { resolve, reject }; });
  for (let k = 0; k < count; k++) {
    const w = new Worker(entry.file, { workerData: entry.workerData });
    w.on("message", (m: FromWorker) => {
      const p = pending[k];
      pending[k] = undefined;
      // an input's fault names its file, as it would in this thread; anything else says which worker
      if (m.kind === "error") p?.reject(m.file ? new MaskdistillError(m.message, m.file) : m.bug ? new Error(`${what} worker ${k + 1}: ${m.message}`) : new MaskdistillError(`${what} worker ${k + 1}: ${m.message}`));
      else p?.resolve(m.kind === "result" ? m.payload : undefined);
    });
    w.on("error", (e) => fail(k, new MaskdistillError(`${what} worker ${k + 1} failed: ${e.message}`)));
    w.on("exit", (code) => { if (!closing) fail(k, new MaskdistillError(`${what} worker ${k + 1} stopped (exit code ${code}); out of memory? rerun with fewer --workers`)); });
    workers.push(w);
  }
  const close = async () => {
    closing = true;
    await Promise.all(workers.map((w) => w.terminate()));
  };
  try {
    await Promise.all(workers.map((w, k) => { const p = expect(k); w.postMessage({ kind: "init", payload: init } satisfies ToWorker); return p; }));
  } catch (e) {
    await close();
    throw e;
  }
  const runOn = (k: number, job: Job): Promise<Result> => {
    if (pending[k]) throw new Error(`${what}: worker ${k + 1} is busy`);
    const p = expect(k);
    workers[k].postMessage({ kind: "job", payload: job } satisfies ToWorker);
    return p as Promise<Result>;
  };
  return {
    size: count,
    runOn,
    async run(jobs: Job[]): Promise<Result[]> {
      if (jobs.length !== count) throw new Error(`${what}: ${jobs.length} jobs for ${count} workers`);
      return Promise.all(jobs.map((job, k) => runOn(k, job)));
    },
    close,
  };
}

/** The engine a helper thread starts (its init message's `engine`). */
export interface WorkerEngine { backend: "wasm" | "cpu" | "tensorflow"; threads: number }

/**
 * `parts` − 1 helper threads of worker module `rel`, each told to start the engine (`init.engine`) with its part
 * of this thread's engine threads (divideEngineThreads); close() ends them and gives this thread its threads back.
 */
export async function startEngineWorkers<Init, Job, Result>(rel: string, parts: number, init: Init, what: string): Promise<WorkerPool<Job, Result>> {
  const engine = await divideEngineThreads(parts);
  try {
    const pool = await startWorkers<Init & { engine: WorkerEngine }, Job, Result>(rel, parts - 1, { ...init, engine: { backend: engine.backend, threads: engine.threads } }, what);
    return { ...pool, close: async () => { await pool.close(); await engine.restore(); } };
  } catch (e) {
    await engine.restore();
    throw e;
  }
}

/** The ArrayBuffers behind the typed arrays of a plain value (arrays and objects, a few levels deep); shared ones stay. */
function transferables(x: unknown, depth = 0, out: ArrayBuffer[] = []): ArrayBuffer[] {
  if (ArrayBuffer.isView(x)) { if (x.buffer instanceof ArrayBuffer && !out.includes(x.buffer)) out.push(x.buffer); }
  else if (x && typeof x === "object" && depth < 4) for (const v of Object.values(x)) transferables(v, depth + 1, out);
  return out;
}

/**
 * The side of a thread started by startEngineWorkers: starts the engine its init names, then serves as serveWorker.
 */
export function serveEngineWorker<Init extends { engine: WorkerEngine }, Job, Result>(handlers: { init(init: Init): Promise<void>; job(job: Job): Promise<Result> }): void {
  serveWorker<Init, Job, Result>({
    async init(m) {
      const { initEngine } = await import("./init.js");
      await initEngine({ backend: m.engine.backend, threads: m.engine.threads });
      await handlers.init(m);
    },
    job: (job) => handlers.job(job),
  });
}

/**
 * The worker thread's side: answers init and jobs with `handlers`, one message at a time. A thrown
 * MaskdistillError travels back with its file (a bad input); anything else as a bug, which stops the run.
 */
export function serveWorker<Init, Job, Result>(handlers: { init(init: Init): Promise<void>; job(job: Job): Promise<Result> }): void {
  if (!parentPort) throw new Error("serveWorker: not in a worker thread started by startWorkers");
  const port = parentPort;
  let queue = Promise.resolve();
  port.on("message", (m: ToWorker) => {
    queue = queue.then(async () => {
      try {
        if (m.kind === "init") { await handlers.init(m.payload as Init); port.postMessage({ kind: "ready" } satisfies FromWorker); }
        else { const payload = await handlers.job(m.payload as Job); port.postMessage({ kind: "result", payload } satisfies FromWorker, transferables(payload)); }
      } catch (e) {
        const err = e as Error & { file?: string };
        const message = err instanceof MaskdistillError && err.file ? err.message.slice(err.file.length + 2) : String(err?.message ?? err);
        port.postMessage({ kind: "error", message, file: err?.file, bug: !(err instanceof MaskdistillError) } satisfies FromWorker);
      }
    });
  });
}
