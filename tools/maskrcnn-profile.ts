// Where a Mask R-CNN training iteration goes: wraps every kernel of the active tfjs backend with a timer
// (wasm kernels run synchronously, so wall time per call is the kernel's), runs N iterations of a recipe on
// a COCO-format training set, and prints the wall time per iteration, the share spent in kernels, and the
// kernels by total time (the rest is JS outside kernels: NMS, RoIAlign's gradient, sampling, batching).
// BY_SHAPE=1 splits each kernel's row by input shapes (TOP=N rows). CPU_PROFILE=FILE also writes a V8 CPU profile of
// the timed iterations (the main thread: JS kernels, NMS, RoIAlign, im2col; open it in Chrome's DevTools or sum it
// by function).
//   node --import tsx tools/maskrcnn-profile.ts --annotations A.json --images DIR [--recipe shapes] [--steps 6] [--threads 2] [--roi-batch N] [--min-sizes 160,176,192] [--checkpoint CKPT]
// e.g. on a shapes run's stage-ii pseudo-masks: --annotations results/shapes/stage3/clusters_train.matched.json --images .cache/shapes
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine/index.js";
import * as inspector from "node:inspector/promises";
import * as fs from "node:fs";

const { values: a } = parseArgs({ options: { annotations: { type: "string" }, images: { type: "string" }, recipe: { type: "string", default: "shapes" },
  steps: { type: "string", default: "6" }, "roi-batch": { type: "string" }, "min-sizes": { type: "string" }, checkpoint: { type: "string" }, threads: { type: "string", default: "2" }, agnostic: { type: "boolean", default: false } } });
await initEngine({ backend: "wasm", threads: Number(a.threads) });
const train = await import("../src/instance/train.js");
const set = train.loadTrainSet(a.annotations!, a.images!, { agnostic: a.agnostic! });
const config = { ...train.maskRcnnRecipe(a.recipe!), ...(a["roi-batch"] ? { roiBatchPerImage: Number(a["roi-batch"]) } : {}), ...(a["min-sizes"] ? { minSizes: a["min-sizes"].split(",").map(Number) } : {}) };
// --checkpoint: a trained network (a train-maskrcnn checkpoint.safetensors), whose proposals find the objects —
// the cost of the ROI heads grows with the foreground samples, which a network at its initialisation has few of
const state = a.checkpoint ? await train.loadCheckpoint(a.checkpoint) : train.newTrainState(config, await train.buildTrainNet(config, set.numClasses), set, set.samples.map((s) => s.imageId));
if (a.checkpoint) state.config = config;

const total = new Map<string, { ms: number; calls: number }>();
let on = false;
for (const k of tf.getKernelsForBackend(tf.getBackend())) {
  const f = k.kernelFunc;
  tf.unregisterKernel(k.kernelName, k.backendName);
  tf.registerKernel({ ...k, kernelFunc: (args) => {
    if (!on) return f(args);
    const t = performance.now();
    const r = f(args);
    // BY_SHAPE=1: one row per kernel and input shapes (which convs of the body and heads cost most)
    const key = process.env.BY_SHAPE ? `${k.kernelName} ${Object.values(args.inputs).map((x) => (x as tf.TensorInfo).shape.join("x")).join(" ")}` : k.kernelName;
    const e = total.get(key) ?? { ms: 0, calls: 0 };
    e.ms += performance.now() - t; e.calls++;
    total.set(key, e);
    return r;
  } });
}
const cache = new Map();
const steps = Number(a.steps);
const batchOf = (i: number) => Array.from({ length: config.batchSize }, (_, k) => set.samples[(i * config.batchSize + k) % set.samples.length]);
await train.trainStep(state, batchOf(0), cache);   // warm-up (compiles, caches images)
const session = process.env.CPU_PROFILE ? new inspector.Session() : undefined;
if (session) { session.connect(); await session.post("Profiler.enable"); await session.post("Profiler.start"); }
on = true;
const t0 = performance.now();
for (let i = 1; i <= steps; i++) await train.trainStep(state, batchOf(i), cache);
const wall = (performance.now() - t0) / steps;
on = false;
if (session) { const { profile } = await session.post("Profiler.stop"); fs.writeFileSync(process.env.CPU_PROFILE!, JSON.stringify(profile)); }
const rows = [...total.entries()].sort((x, y) => y[1].ms - x[1].ms);
const inKernels = rows.reduce((s, [, v]) => s + v.ms, 0) / steps;
console.log(`per iteration: wall ${wall.toFixed(0)} ms, in kernels ${inKernels.toFixed(0)} ms (${(100 * inKernels / wall).toFixed(0)} %)`);
for (const [name, v] of rows.slice(0, Number(process.env.TOP ?? 30))) console.log(`${name.padEnd(process.env.BY_SHAPE ? 60 : 28)} ${(v.ms / steps).toFixed(1).padStart(8)} ms  ${(v.calls / steps).toFixed(0).padStart(6)} calls`);
