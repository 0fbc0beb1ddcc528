// One Mask R-CNN R50-FPN training step (torchvision preset, full width, 21 classes; stem + layer1 frozen as
// torchvision's trainable_layers=3), short side 512, batch 1 and 2 (demo images 86 and 321 with their COCO
// instances), against torchvision 0.14 on PyTorch CPU in the same run (bench/maskrcnn_train_torch.py, same
// checkpoint: the one bench/maskrcnn_torch.py writes). Both time forward + losses + backward + SGD update
// on 2 threads. Target (issue 14): ≤ 2× PyTorch's time. Also: the wasm heap after the steps, and the
// largest batch × size the heap model (maskRcnnMemoryModel) lets through the 4 GiB heap.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import * as tf from "@tensorflow/tfjs";
import { projectPath } from "../src/paths.js";

const CKPT = projectPath(".cache", "bench", "maskrcnn_r50fpn.pth");
const IMAGE = projectPath("data", "demo", "images", "000000000009.jpg");
const SIZE = 512, MAX_SIZE = 853, RUNS = 3, THREADS = 2, BATCHES = [1, 2];

export async function benchMaskrcnnTrain(): Promise<Record<string, unknown>[]> {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch, torchvision"], { encoding: "utf8" });
  if (probe.status !== 0) return [{ note: "needs /usr/bin/python3 with torch + torchvision for the peer" }];
  if (!fs.existsSync(CKPT)) {
    const w = spawnSync("/usr/bin/python3", [projectPath("bench", "maskrcnn_torch.py"), CKPT, IMAGE, "1", String(THREADS), "320"], { encoding: "utf8" });
    if (w.status !== 0) throw new Error(`maskrcnn_torch.py failed: ${w.stderr.slice(-2000)}`);
  }
  const demo = JSON.parse(fs.readFileSync(projectPath("data", "demo", "instances.json"), "utf8"));
  const ids = [86, 321];
  const ann = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bench-mrcnn-")), "two.json");
  fs.writeFileSync(ann, JSON.stringify({ images: ids.map((id) => demo.images.find((i: any) => i.id === id)), annotations: demo.annotations.filter((a: any) => ids.includes(a.image_id)), categories: demo.categories }));
  const imagesDir = projectPath("data", "demo", "images");
  const py = spawnSync("/usr/bin/python3", [projectPath("bench", "maskrcnn_train_torch.py"), CKPT, ann, imagesDir, String(RUNS), String(THREADS), String(SIZE), String(MAX_SIZE), ...BATCHES.map(String)], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (py.status !== 0) throw new Error(`maskrcnn_train_torch.py failed: ${py.stderr.slice(-2000)}`);
  const torch = JSON.parse(py.stdout.trim().split("\n").pop()!);

  const { initEngine, wasmHeapBytes, estimateStepMemory } = await import("../src/engine/index.js");
  const { readStateDict } = await import("../src/modeling/checkpoint/index.js");
  const { maskRcnnFromStateDict } = await import("../src/engine/models/maskrcnn.js");
  const train = await import("../src/instance/train.js");
  await initEngine({ backend: "wasm", threads: THREADS });
  const { stateDict } = await readStateDict(CKPT);
  const set = train.loadTrainSet(ann, imagesDir, { agnostic: false });
  // the peer's labels: category_id % 20 + 1
  set.samples.forEach((s, i) => { s.labels = Int32Array.from(demo.annotations.filter((a: any) => a.image_id === set.samples[i].imageId).map((a: any) => (a.category_id % 20) + 1)); });
  const config = { ...train.lostRecipe(), preset: "torchvision" as const, init: "none", minSizes: [SIZE], maxSize: MAX_SIZE, flip: false, lr: 1e-4, warmupIters: 0, freezeAt: 2 };
  const state = train.newTrainState(config, maskRcnnFromStateDict(stateDict, CKPT), { numClasses: 21, categoryIds: [] }, set.samples.map((s) => s.imageId));
  const cache = new Map();
  const out: Record<string, unknown>[] = [];
  const model = train.maskRcnnMemoryModel(state.net, config.freezeAt);
  const fits = [512, 640, 800].map((s) => `${s}×${Math.round(s * 4 / 3)}: batch ≤ ${estimateStepMemory(model, 1, [s, Math.ceil(s * 4 / 3 / 32) * 32], { optimizerSlots: 1 }).maxBatch}`);
  const heapRow = (after: string) => ({ case: `wasm heap after the batch-${after} steps`, heapAfterStepsGiB: Number(((wasmHeapBytes() ?? 0) / 1024 ** 3).toFixed(2)),
    heapModelGiB: Number((estimateStepMemory(model, Number(after), [SIZE, Math.ceil(SIZE * 4 / 3 / 32) * 32], { optimizerSlots: 1 }).bytes / 1024 ** 3).toFixed(2)),
    heapModelLargestFitting: fits.join("; "), peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024), pytorchPeakRssMB: torch.peak_rss_mb });
  for (const b of BATCHES) {
    const samples = set.samples.slice(0, b);
    const times: number[] = [];
    try {
      await train.trainStep(state, samples, cache);   // warm-up
      for (let r = 0; r < RUNS; r++) {
        const t = performance.now();
        await train.trainStep(state, samples, cache);
        times.push((performance.now() - t) / 1000);
      }
    } catch (e) {
      // out of the 4 GiB wasm heap: the module is unusable now, so this is the last case
      out.push({ case: `Mask R-CNN R50-FPN training step, short side ${SIZE}, batch ${b}, ${THREADS} threads`, error: String(e instanceof Error ? e.message : e).slice(0, 160), pytorchSeconds: Number(torch[String(b)].median_s.toFixed(2)) });
      break;
    }
    times.sort((x, y) => x - y);
    const ours = times[Math.floor(times.length / 2)], peer = torch[String(b)].median_s;
    out.push({ case: `Mask R-CNN R50-FPN training step, short side ${SIZE}, batch ${b}, ${THREADS} threads`, seconds: Number(ours.toFixed(2)), pytorchSeconds: Number(peer.toFixed(2)), ratio: Number((ours / peer).toFixed(2)), target: "≤ 2× PyTorch" });
    out.push(heapRow(String(b)));
  }
  try { train.disposeTrainState(state); } catch { /* the wasm module may be gone after running out of heap */ }
  void tf;
  return out;
}
