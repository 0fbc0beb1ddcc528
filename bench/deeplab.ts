// Stage-v speed (issue 17): one DeepLab-v3 R50 OS8 training step as train-deeplab runs it (frozen
// conv1..layer2, dropout, OHEM, SGD with momentum and weight decay) and one 512² inference (eval
// forward + argmax), tfjs-wasm vs PyTorch CPU (bench/deeplab_torch.py: torchvision's
// deeplabv3_resnet50) in the same run, same thread count. Targets (2 cores): step ≤ 1.5× PyTorch,
// inference ≤ 1.2×.
// The training step runs at batch 2 and the largest square input the wasm heap model admits at that
// batch (src/engine/memory.ts): 512² at batch 2 needs about 11 GiB by that estimate, more than wasm32's
// 4 GiB, so the step is timed at 256² (what fits) and PyTorch at the same size.
import { spawnSync } from "node:child_process";
import * as tf from "@tensorflow/tfjs";
import { projectPath } from "../src/paths.js";
import { initEngine, engineInfo, wasmHeapBytes } from "../src/engine/init.js";
import { estimateStepMemory } from "../src/engine/memory.js";
import { sgdMomentumStep, newMomentumBuffers } from "../src/engine/train.js";
import { collectVariables, normalArray, seededRng } from "../src/engine/models/params.js";
import { makeDeepLabV3, deepLabFrozenFeatures, deepLabTrainableForward, deepLabMemoryModel } from "../src/engine/models/deeplab.js";
import { ohemCrossEntropy } from "../src/segmentation/loss.js";
import { logitsOfInput, argmaxPlanes } from "../src/segmentation/predict.js";
import { median } from "./stats.js";

const THREADS = 2;
const BATCH = 2;
const INFER = 512;
const TARGET = { train: 1.5, inference: 1.2 };

const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

export async function benchDeeplab(): Promise<object[]> {
  await initEngine({ backend: "wasm", threads: THREADS });
  const info = engineInfo();
  const rng = seededRng(3);
  const m = makeDeepLabV3(rng, { numClasses: 21, trainableFrom: "layer3" });
  const mem = deepLabMemoryModel(m);
  const est512 = estimateStepMemory(mem, BATCH, [512, 512], { optimizerSlots: 1 });
  let size = 512;
  while (size > 32 && !estimateStepMemory(mem, BATCH, [size, size], { optimizerSlots: 1 }).fits) size -= 32;
  const vars = collectVariables(m, true);
  const buffers = newMomentumBuffers(vars);
  const x = tf.tensor4d(normalArray(rng, BATCH * size * size * 3, 1), [BATCH, size, size, 3]);
  const y = tf.tensor3d(Int32Array.from({ length: BATCH * size * size }, () => Math.floor(rng() * 21)), [BATCH, size, size], "int32");
  const steps: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    const f = deepLabFrozenFeatures(m, x);
    await sgdMomentumStep(() => ohemCrossEntropy(deepLabTrainableForward(m, f, [size, size], true, { dropout: seededRng(i) }), y), vars, buffers, { lr: 0.002, momentum: 0.9, weightDecay: 1e-4 });
    f.dispose();
    if (i > 0) steps.push((performance.now() - t0) / 1000);
  }
  tf.dispose([x, y, ...buffers.values()]);
  const heapAfterTrain = wasmHeapBytes();
  const input = normalArray(rng, INFER * INFER * 3, 1);
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    argmaxPlanes(await logitsOfInput(m, input, INFER), 21, INFER * INFER);
    if (i > 0) runs.push((performance.now() - t0) / 1000);
  }
  tf.dispose(collectVariables(m));

  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch, torchvision"], { encoding: "utf8" });
  let torch: { train: { secondsPerStep: number }; inference: { secondsPerImage: number } } | string;
  if (probe.status !== 0) torch = "not available (/usr/bin/python3 cannot import torch, torchvision)";
  else {
    const run = spawnSync("/usr/bin/python3", [projectPath("bench", "deeplab_torch.py"), String(THREADS), String(size), String(BATCH), String(INFER)], { encoding: "utf8", maxBuffer: 1 << 24 });
    torch = run.status === 0 ? JSON.parse(run.stdout.trim().split("\n").pop()!) : `failed: ${run.stderr.trim().split("\n").pop()}`;
  }
  const train = median(steps), infer = median(runs);
  const common = { engine: "tfjs-wasm", gemm: info.gemm, threads: info.threads };
  const trainRec: Record<string, unknown> = {
    case: `train_step_${size}_b${BATCH}`, ...common, batch: BATCH, input: `${size}x${size}`, secondsPerStep: round(train), steps: steps.map((t) => round(t)),
    note: size < 512 ? `512² at batch ${BATCH} needs ≈ ${(est512.bytes / 2 ** 30).toFixed(1)} GiB by the heap model (wasm32: 4 GiB); timed at the largest square that fits, ${size}²` : undefined,
    heapBytes: heapAfterTrain,
  };
  const inferRec: Record<string, unknown> = { case: `inference_${INFER}`, ...common, batch: 1, input: `${INFER}x${INFER}`, secondsPerImage: round(infer), runs: runs.map((t) => round(t)) };
  if (typeof torch === "object") {
    trainRec.torchSecondsPerStep = round(torch.train.secondsPerStep);
    trainRec.ratioToTorch = round(train / torch.train.secondsPerStep, 2);
    trainRec.targetRatioToTorch = TARGET.train;
    trainRec.meetsRatioTarget = (trainRec.ratioToTorch as number) <= TARGET.train;
    inferRec.torchSecondsPerImage = round(torch.inference.secondsPerImage);
    inferRec.ratioToTorch = round(infer / torch.inference.secondsPerImage, 2);
    inferRec.targetRatioToTorch = TARGET.inference;
    inferRec.meetsRatioTarget = (inferRec.ratioToTorch as number) <= TARGET.inference;
  } else {
    trainRec.torch = inferRec.torch = torch;
  }
  return [trainRec, inferRec];
}
