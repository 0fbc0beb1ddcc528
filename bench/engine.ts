// Training-engine speed: one SGD training step of
//   (a) resnet50_layer1_2_64:  ResNet-50 layer1+layer2 (7 bottlenecks) on a [1, 64, 64, 64] input,
//   (b) deeplabv3_r50_os8_256: DeepLab-v3 R50 output stride 8 at 256², conv1..layer2 frozen, batch 1,
//   (c) vit_s16_224:           ViT-S/16 (12 blocks) at 224², batch 2, class-token head,
// on tfjs-wasm with each GEMM provider (onnxruntime's MLAS, the default, and XNNPACK-wasm) at 1 and
// 2 threads, each in its own child process (the wasm build is fixed per process and its heap never
// shrinks). When Debian's python3 imports torch, the same steps are
// timed in PyTorch (bench/engine_torch.py) and the ratio is reported.
// Targets (issue 8, 2 cores): (a) ≤ 0.7 s, (b) ≤ 7.5 s per image and ≤ 4× PyTorch.
// Records carry the memory estimate (src/engine/memory.ts) and the wasm heap size after the steps.
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { spawnSync } from "node:child_process";
import { projectPath } from "../src/paths.js";
import { initEngine, engineInfo, wasmHeapBytes } from "../src/engine/init.js";
import { assertFitsInHeap, StepMemoryModel } from "../src/engine/memory.js";
import { sgdStep } from "../src/engine/train.js";
import { softmaxCrossEntropy } from "../src/engine/ops.js";
import { seededRng, collectVariables, normalArray } from "../src/engine/models/params.js";
import { makeStage, stage, stagesMemoryModel } from "../src/engine/models/resnet.js";
import { makeDeepLabV3, deepLabFrozenFeatures, deepLabTrainableForward, deepLabMemoryModel } from "../src/engine/models/deeplab.js";
import { makeVit, vitLogits, vitMemoryModel, VIT_S16 } from "../src/engine/models/vit.js";
import { median } from "./stats.js";

const CASES = ["resnet50_layer1_2_64", "deeplabv3_r50_os8_256", "vit_s16_224"] as const;
type CaseName = (typeof CASES)[number];
const THREADS = [1, 2];
const GEMMS = ["onnxruntime", "xnnpack"] as const;
type Gemm = (typeof GEMMS)[number];
/** Timed steps after one warm-up step (the first step grows the heap and is 2–3× slower). */
const STEPS: Record<CaseName, number> = { resnet50_layer1_2_64: 5, deeplabv3_r50_os8_256: 3, vit_s16_224: 3 };
const TARGET_SECONDS_PER_IMAGE: Partial<Record<CaseName, number>> = { resnet50_layer1_2_64: 0.7, deeplabv3_r50_os8_256: 7.5 };
const TARGET_RATIO_TO_TORCH: Partial<Record<CaseName, number>> = { deeplabv3_r50_os8_256: 4 };
const LR = 0.01;

interface CaseSetup {
  batch: number;
  input: [number, number];
  memory: StepMemoryModel;
  vars: tf.Variable[];
  loss: () => tf.Scalar;
}

function setupCase(name: CaseName): CaseSetup {
  const rng = seededRng(8);
  if (name === "resnet50_layer1_2_64") {
    const layer1 = makeStage(rng, 64, 64, 3, { stride: 1 });
    const layer2 = makeStage(rng, 256, 128, 4, { stride: 2 });
    const x = tf.tensor4d(normalArray(rng, 64 * 64 * 64, 1), [1, 64, 64, 64]);
    return {
      batch: 1, input: [64, 64],
      memory: stagesMemoryModel("ResNet-50 layer1+layer2", [layer1, layer2], 64),
      vars: collectVariables([layer1, layer2], true),
      loss: () => tf.mean(tf.square(stage(layer2, stage(layer1, x, true), true))) as tf.Scalar,
    };
  }
  if (name === "deeplabv3_r50_os8_256") {
    const model = makeDeepLabV3(rng, { numClasses: 21, trainableFrom: "layer3" });
    const images = tf.tensor4d(normalArray(rng, 256 * 256 * 3, 1), [1, 256, 256, 3]);
    const labels = tf.tensor3d(Int32Array.from({ length: 256 * 256 }, () => Math.floor(rng() * 21)), [1, 256, 256], "int32");
    return {
      batch: 1, input: [256, 256],
      memory: deepLabMemoryModel(model),
      vars: collectVariables(model, true),
      loss: () => {
        // The frozen front runs inside the step (forward only, no tape needed for it).
        const features = deepLabFrozenFeatures(model, images);
        const logits = deepLabTrainableForward(model, features, [256, 256], true);
        features.dispose();
        return softmaxCrossEntropy(logits, labels);
      },
    };
  }
  const model = makeVit(rng, VIT_S16);
  const images = tf.tensor4d(normalArray(rng, 2 * 224 * 224 * 3, 1), [2, 224, 224, 3]);
  const labels = tf.tensor1d([3, 7], "int32");
  return {
    batch: 2, input: [224, 224],
    memory: vitMemoryModel(model),
    vars: collectVariables(model, true),
    loss: () => softmaxCrossEntropy(vitLogits(model, images), labels),
  };
}


const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** Child process: one case at one thread count. */
async function runCase(name: CaseName, threads: number, gemm: Gemm): Promise<Record<string, unknown>> {
  await initEngine({ backend: "wasm", threads, gemm });
  const info = engineInfo();
  const c = setupCase(name);
  const estimate = assertFitsInHeap(c.memory, c.batch, c.input);
  const times: number[] = [];
  const losses: number[] = [];
  let tensorsAfterWarmup = 0;
  for (let i = 0; i <= STEPS[name]; i++) {
    const t0 = performance.now();
    losses.push(await sgdStep(c.loss, c.vars, LR));
    const dt = (performance.now() - t0) / 1000;
    if (i === 0) tensorsAfterWarmup = tf.memory().numTensors;
    else times.push(dt);
  }
  const perStep = median(times);
  return {
    case: name, engine: "tfjs-wasm", gemm: info.gemm, threads: info.threads, wasmThreads: info.wasmThreads, simd: info.simd, batch: c.batch, input: c.input.join("x"),
    secondsPerStep: round(perStep), secondsPerImage: round(perStep / c.batch), steps: times.map((t) => round(t)),
    lossFirst: round(losses[0], 4), lossLast: round(losses[losses.length - 1], 4),
    tensorLeakPerStep: (tf.memory().numTensors - tensorsAfterWarmup) / STEPS[name],
    heapBytes: wasmHeapBytes(), estimatedStepBytes: Math.round(estimate.bytes), estimatedMaxBatch: estimate.maxBatch,
  };
}

/** PyTorch timings of the same steps, or why there are none. */
function torchTimes(): Record<string, Record<string, number>> | string {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch, torchvision"], { encoding: "utf8" });
  if (probe.status !== 0) return "not available (/usr/bin/python3 cannot import torch, torchvision)";
  const run = spawnSync("/usr/bin/python3", [projectPath("bench", "engine_torch.py"), ...CASES], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (run.status !== 0) return `failed: ${run.stderr.trim().split("\n").pop()}`;
  return JSON.parse(run.stdout.trim().split("\n").pop()!);
}

export async function benchEngine(): Promise<object[]> {
  const records: Record<string, unknown>[] = [];
  for (const name of CASES) {
    for (const gemm of GEMMS) for (const threads of THREADS) {
      const child = spawnSync(process.execPath, ["--import", "tsx", projectPath("bench", "engine.ts"), name, String(threads), gemm], {
        encoding: "utf8", maxBuffer: 1 << 24, timeout: 15 * 60 * 1000,
      });
      const last = (child.stdout ?? "").trim().split("\n").pop() ?? "";
      if (child.status !== 0 || !last.startsWith("{")) {
        // Keep the error short: the wasm glue prints its whole source line with an uncaught error.
        const why = `${child.stderr ?? ""}\n${child.stdout ?? ""}`.split("\n").filter((l) => l && l.length < 300).slice(-3).join(" | ");
        records.push({ case: name, engine: "tfjs-wasm", gemm, threads, error: why || `exit ${child.status ?? child.signal}` });
        continue;
      }
      records.push(JSON.parse(last));
    }
  }
  const torch = torchTimes();
  for (const r of [...records]) {
    if (r.error) continue;
    const key = `${r.case}/${r.threads}`;
    const t = typeof torch === "object" ? torch[key] : undefined;
    const target = TARGET_SECONDS_PER_IMAGE[r.case as CaseName];
    if (target !== undefined) { r.targetSecondsPerImage = target; r.meetsTarget = (r.secondsPerImage as number) <= target; }
    if (t) {
      r.torchSecondsPerImage = t.secondsPerImage;
      r.ratioToTorch = round((r.secondsPerImage as number) / t.secondsPerImage, 2);
      const rt = TARGET_RATIO_TO_TORCH[r.case as CaseName];
      if (rt !== undefined) { r.targetRatioToTorch = rt; r.meetsRatioTarget = r.ratioToTorch as number <= rt; }
    } else {
      r.torch = typeof torch === "string" ? torch : "no torch record";
    }
  }
  if (typeof torch === "object") {
    for (const [key, t] of Object.entries(torch)) records.push({ case: key.split("/")[0], engine: "pytorch", ...t });
  }
  return records;
}

// child-process entry: node --import tsx bench/engine.ts <case> <threads> [onnxruntime|xnnpack]
const [, script, caseName, threadArg, gemmArg] = process.argv;
if (script && path.basename(script) === "engine.ts" && caseName && threadArg) {
  if (!(CASES as readonly string[]).includes(caseName)) throw new Error(`unknown case ${caseName}: ${CASES.join(", ")}`);
  runCase(caseName as CaseName, Number(threadArg), (gemmArg ?? "onnxruntime") as Gemm).then(
    (r) => console.log(JSON.stringify(r)),
    (e) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exit(1);
    },
  );
}
