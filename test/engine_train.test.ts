// Training with the engine: a small conv net (strided and dilated convs, batch norm) and a small ViT
// train for a few SGD steps with the same results on the wasm backend (single-threaded build) and
// the cpu backend, the loss falls, and no tensor leaks. Plus the heap-size estimate and its errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initEngine, engineInfo, sgdStep, estimateStepMemory, assertFitsInHeap, withHeapGuard, WASM_HEAP_USABLE_BYTES } from "../src/engine/index.js";
import type { StepMemoryModel } from "../src/engine/index.js";
import { MaskdistillError } from "../src/errors.js";
import { seededRng, normalArray, collectVariables } from "../src/engine/models/params.js";
import { makeConvBn, convBn, makeStage, stagesMemoryModel } from "../src/engine/models/resnet.js";
import { makeDeepLabV3, deepLabMemoryModel } from "../src/engine/models/deeplab.js";
import { makeVit, vitLogits } from "../src/engine/models/vit.js";
import { softmaxCrossEntropy } from "../src/engine/ops.js";

const STEPS = 5;
const TOL = 1e-4;   // per-step losses and final weights, relative (float32 drift over 5 steps)

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return den === 0 ? num : num / den;
}

interface Run { losses: number[]; weights: Float32Array[]; tensorsPerStep: number[] }

/** Builds a model from a fixed seed on `backend`, trains it, and returns losses and final weights. */
async function train(backend: string, build: () => { vars: tf.Variable[]; loss: () => tf.Scalar; all: unknown }, lr: number): Promise<Run> {
  await tf.setBackend(backend);
  const { vars, loss, all } = build();
  const losses: number[] = [], tensorsPerStep: number[] = [];
  for (let i = 0; i < STEPS; i++) {
    losses.push(await sgdStep(loss, vars, lr));
    tensorsPerStep.push(tf.memory().numTensors);
  }
  const weights = await Promise.all(collectVariables(all).map(async (v) => Float32Array.from(await v.data() as Float32Array)));
  tf.dispose(collectVariables(all));
  return { losses, weights, tensorsPerStep };
}

function smallConvNet() {
  const rng = seededRng(11);
  const net = {
    c1: makeConvBn(rng, 3, 3, 8),
    c2: makeConvBn(rng, 3, 8, 16, { stride: 2 }),
    c3: makeConvBn(rng, 3, 16, 16, { dilation: 2 }),
    c4: makeConvBn(rng, 1, 16, 16),
    fc: tf.variable(tf.tensor2d(normalArray(rng, 16 * 5, 0.3), [16, 5])),
  };
  const x = tf.tensor4d(normalArray(rng, 3 * 15 * 15 * 3, 1), [3, 15, 15, 3]);   // odd size, batch 3
  const labels = tf.tensor1d([1, 4, 2], "int32");
  const loss = () => {
    const h = convBn(net.c2, convBn(net.c1, x, true, true), true, true);
    const y = tf.relu(tf.add(convBn(net.c4, convBn(net.c3, h, true, true), true, false), h)) as tf.Tensor4D;
    return softmaxCrossEntropy(tf.matMul(tf.mean(y, [1, 2]) as tf.Tensor2D, net.fc as tf.Tensor2D), labels);
  };
  return { vars: collectVariables(net, true), loss, all: net };
}

function smallVit() {
  const rng = seededRng(12);
  const m = makeVit(rng, { imageSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 2, numClasses: 5 });
  const x = tf.tensor4d(normalArray(rng, 2 * 16 * 16 * 3, 1), [2, 16, 16, 3]);
  const labels = tf.tensor1d([3, 0], "int32");
  return { vars: collectVariables(m, true), loss: () => softmaxCrossEntropy(vitLogits(m, x), labels), all: m };
}

test("initEngine errors name the problem", async () => {
  await assert.rejects(initEngine({ backend: "tensorflow" }), (e: Error) =>
    e instanceof MaskdistillError && /npm i --no-save @tensorflow\/tfjs-node-gpu/.test(e.message));
  await assert.rejects(initEngine({ threads: 0 }), /threads must be ≥ 1/);
});

test("single-threaded wasm build", async () => {
  await initEngine({ backend: "wasm", threads: 1 });
  assert.equal(engineInfo().backend, "wasm");
  assert.equal(engineInfo().threads, 1);
});

for (const [name, build, lr] of [["small conv net (stride 2, dilation 2, BN, batch 3, 15×15)", smallConvNet, 0.2],
  ["small ViT (2 blocks, 2 heads, 17 tokens)", smallVit, 0.1]] as const) {
  test(`${name}: same training on wasm and cpu, loss falls, no leaks`, async () => {
    await initEngine({ backend: "wasm", threads: 1 });
    const cpu = await train("cpu", build, lr);
    const wasm = await train("wasm", build, lr);
    for (const run of [cpu, wasm]) {
      assert.ok(run.losses.every((l, i) => i === 0 || l < run.losses[i - 1]) && run.losses[STEPS - 1] < 0.8 * run.losses[0],
        `loss falls at every step: ${run.losses.map((l) => l.toFixed(4))}`);
      assert.ok(run.tensorsPerStep.every((n) => n === run.tensorsPerStep[0]), `tensor count flat: ${run.tensorsPerStep}`);
    }
    const lossErr = relErr(wasm.losses, cpu.losses);
    assert.ok(lossErr <= TOL, `losses wasm ${wasm.losses} vs cpu ${cpu.losses}`);
    const wErr = Math.max(...cpu.weights.map((w, i) => relErr(wasm.weights[i], w)));
    assert.ok(wErr <= TOL, `weights after ${STEPS} steps differ by ${wErr.toExponential(2)}`);
    console.log(`${name}: losses ${wasm.losses.map((l) => l.toFixed(4)).join(" → ")}; max rel diff wasm/cpu: loss ${lossErr.toExponential(1)}, weights ${wErr.toExponential(1)}`);
  });
}

/** A synthetic model: 1 M parameters, 1 M floats kept per image at 100×100 (scaling with pixels). */
const synthetic: StepMemoryModel = {
  name: "synthetic", paramFloats: 1e6, trainableFloats: 1e6,
  activations: (h, w) => ({ savedFloats: 100 * h * w, largestFloats: 10 * h * w }),
};

test("estimateStepMemory: formula, monotone, maxBatch at the limit", () => {
  const one = estimateStepMemory(synthetic, 1, [100, 100]);
  // 4·(2·1e6 + 2·1e6) + 4·3·1e6 + 4·3·1e5 + 64 MiB
  assert.equal(one.bytes, 16e6 + 12e6 + 1.2e6 + 64 * 1024 * 1024);
  assert.ok(estimateStepMemory(synthetic, 2, [100, 100]).bytes > one.bytes);
  assert.ok(estimateStepMemory(synthetic, 1, [200, 200]).bytes > one.bytes);
  const est = estimateStepMemory(synthetic, 1, [1000, 1000]);
  assert.ok(est.maxBatch >= 1);
  assert.ok(estimateStepMemory(synthetic, est.maxBatch, [1000, 1000]).fits);
  assert.ok(!estimateStepMemory(synthetic, est.maxBatch + 1, [1000, 1000]).fits);
  assert.equal(est.limitBytes, WASM_HEAP_USABLE_BYTES);
  assert.throws(() => estimateStepMemory(synthetic, 0, [10, 10]), MaskdistillError);
});

test("assertFitsInHeap refuses with batch, size and what fits", () => {
  assert.equal(assertFitsInHeap(synthetic, 1, [256, 256]).fits, true);
  assert.throws(() => assertFitsInHeap(synthetic, 16, [1024, 1024]), (e: Error) => {
    assert.ok(e instanceof MaskdistillError);
    assert.match(e.message, /at batch 16, input 1024×1024 needs about \d+\.\d\d GiB/);
    assert.match(e.message, /What fits: batch \d+ at 1024×1024; batch 16 at ≤ \d+×\d+/);
    return true;
  });
});

test("memory estimates against measured wasm heaps (DeepLab-v3 R50 OS8, ResNet layer1+2)", async () => {
  await tf.setBackend("cpu");   // the shape walk only needs the parameter shapes
  const rng = seededRng(1);
  const deeplab = makeDeepLabV3(rng, { numClasses: 21, trainableFrom: "layer3" });
  const mem = deepLabMemoryModel(deeplab);
  tf.dispose(collectVariables(deeplab));
  // Heap high-water marks measured with this engine (1 thread, see memory.ts).
  for (const [batch, size, measuredGB] of [[1, 128, 1.06], [1, 256, 2.13], [2, 256, 3.49]] as const) {
    const est = estimateStepMemory(mem, batch, [size, size]).bytes / 1e9;
    assert.ok(Math.abs(est - measuredGB) / measuredGB < 0.1, `DeepLab batch ${batch} @${size}: estimate ${est.toFixed(2)} GB vs measured ${measuredGB}`);
  }
  assert.equal(estimateStepMemory(mem, 1, [256, 256]).maxBatch, 2);   // batch 3 would pass 4 GiB
  const stages = [makeStage(rng, 64, 64, 3, { stride: 1 }), makeStage(rng, 256, 128, 4, { stride: 2 })];
  const est = estimateStepMemory(stagesMemoryModel("layer1+2", stages, 64), 1, [64, 64]).bytes / 1e9;
  tf.dispose(collectVariables(stages));
  assert.ok(est >= 0.54 && est < 0.54 * 1.3, `ResNet layer1+2 @64: estimate ${est.toFixed(2)} GB vs measured 0.54 (never below)`);
});

test("a step that runs out of wasm heap ends in a MaskdistillError saying what to do; other errors pass through", async () => {
  await assert.rejects(withHeapGuard("a training step", async () => { throw Object.assign(new Error("memory access out of bounds"), { name: "RuntimeError" }); }),
    (e: Error) => e instanceof MaskdistillError && /ran out of the wasm heap/.test(e.message) && /smaller batch/.test(e.message) && /start the process again/.test(e.message));
  await assert.rejects(withHeapGuard("a training step", async () => { throw new Error("Aborted(Cannot enlarge memory arrays)"); }), MaskdistillError);
  await assert.rejects(withHeapGuard("a training step", async () => { throw new TypeError("x is not a function"); }), TypeError);
  assert.equal(await withHeapGuard("a training step", async () => 3), 3);
});
