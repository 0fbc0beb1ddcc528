// Where a training step's time and memory go, for the figures quoted in the README's "Training on
// CPU and GPU" section (the step timings themselves come from `npm run bench -- engine`).
//
//   node --import tsx tools/engine-probe.ts gemm [threads] [onnxruntime|xnnpack]
//       GFLOP/s of one [1024,2048]·[2048,512] product through the engine's gemm()
//   node --import tsx tools/engine-probe.ts profile [threads] [onnxruntime|xnnpack]
//       per-kernel milliseconds of one DeepLab-v3 R50 OS8 256² training step (the third of three)
//   node --import tsx tools/engine-probe.ts heap BATCH [threads]
//       wasm heap high-water mark after two DeepLab-v3 256² steps at BATCH images
import * as tf from "@tensorflow/tfjs";
import { initEngine, engineInfo, wasmHeapBytes, sgdStep, softmaxCrossEntropy } from "../src/engine/index.js";
import { seededRng, collectVariables, normalArray } from "../src/engine/models/params.js";
import { makeDeepLabV3, deepLabFrozenFeatures, deepLabTrainableForward } from "../src/engine/models/deeplab.js";
import { gemm } from "../src/engine/wasm/gemm.js";
import { alloc, release, heapF32, elementIndex, type WasmBackend } from "../src/engine/wasm/backend.js";

function deepLabStep(batch: number): { loss: () => tf.Scalar; vars: tf.Variable[] } {
  const rng = seededRng(8), s = 256;
  const model = makeDeepLabV3(rng, { numClasses: 21, trainableFrom: "layer3" });
  const images = tf.tensor4d(normalArray(rng, batch * s * s * 3, 1), [batch, s, s, 3]);
  const labels = tf.tensor3d(Int32Array.from({ length: batch * s * s }, () => Math.floor(rng() * 21)), [batch, s, s], "int32");
  return {
    vars: collectVariables(model, true),
    loss: () => {
      const f = deepLabFrozenFeatures(model, images);
      const logits = deepLabTrainableForward(model, f, [s, s], true);
      f.dispose();
      return softmaxCrossEntropy(logits, labels);
    },
  };
}

async function main() {
  const [what, a1, a2] = process.argv.slice(2);
  const threads = Number((what === "heap" ? a2 : a1) ?? 2);
  const gemmChoice = (what === "heap" ? undefined : a2) as "onnxruntime" | "xnnpack" | undefined;
  await initEngine({ backend: "wasm", threads, gemm: gemmChoice });
  const info = engineInfo();
  console.log(`engine: gemm ${info.gemm}, ${info.threads} thread(s), wasm threads ${info.wasmThreads}`);

  if (what === "gemm") {
    const b = tf.backend() as unknown as WasmBackend;
    const [m, k, n] = [1024, 2048, 512];
    const x = alloc(b, [m, k]), w = alloc(b, [k, n]);
    const h = heapF32(b);
    h.fill(0.5, elementIndex(b, x), elementIndex(b, x) + m * k);
    h.fill(0.25, elementIndex(b, w), elementIndex(b, w) + k * n);
    const times: number[] = [];
    for (let r = 0; r < 8; r++) {
      const t0 = performance.now();
      const y = gemm(b, x, w);
      times.push(performance.now() - t0);
      release(b, y);
    }
    release(b, x, w);
    const ms = times.slice(2).sort((p, q) => p - q)[3];
    console.log(`[${m},${k}]·[${k},${n}]: ${ms.toFixed(1)} ms, ${((2 * m * k * n) / ms / 1e6).toFixed(0)} GFLOP/s`);
  } else if (what === "profile") {
    const { loss, vars } = deepLabStep(1);
    const engine = tf.engine() as unknown as { runKernel: (n: string, i: object, a: object) => unknown };
    const run = engine.runKernel.bind(engine);
    const times = new Map<string, number>();
    let record = false;
    engine.runKernel = (name, inputs, attrs) => {
      const t0 = performance.now();
      const out = run(name, inputs, attrs);
      if (record) times.set(name, (times.get(name) ?? 0) + performance.now() - t0);
      return out;
    };
    for (let i = 0; i < 3; i++) {
      record = i === 2;
      const t0 = performance.now();
      await sgdStep(loss, vars, 0.01);
      if (record) console.log(`step: ${(performance.now() - t0).toFixed(0)} ms`);
    }
    for (const [name, ms] of [...times].sort((p, q) => q[1] - p[1]).slice(0, 12)) console.log(`${name}: ${ms.toFixed(0)} ms`);
  } else if (what === "heap") {
    const batch = Number(a1 ?? 1);
    const { loss, vars } = deepLabStep(batch);
    try {
      for (let i = 0; i < 2; i++) await sgdStep(loss, vars, 0.01);
      console.log(`DeepLab-v3 256², batch ${batch}: heap ${((wasmHeapBytes() ?? 0) / 1e9).toFixed(2)} GB`);
    } catch (e) {
      console.log(`DeepLab-v3 256², batch ${batch}: ${(e as Error).message.split("\n")[0]}`);
    }
  } else {
    throw new Error("usage: engine-probe.ts gemm|profile [threads] [onnxruntime|xnnpack] | heap BATCH [threads]");
  }
}

main().catch((e) => { console.error(e instanceof Error ? e.message : e); process.exit(1); });
