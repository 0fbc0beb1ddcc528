// Mask R-CNN R50-FPN inference (torchvision preset, full width, 21 classes, seeded weights), batch 1, at
// short side 800 (torchvision's default) and 512, against torchvision 0.14 on PyTorch CPU in the same
// run (bench/maskrcnn_torch.py, which also writes the shared checkpoint under .cache/bench/). Both run
// the whole call — transform, backbone, RPN, heads, 100 detections with pasted masks — on 2 threads.
// Target (issue 13): ≤ 1.5× PyTorch's time on 2 cores; peak memory stated.
import * as fs from "node:fs";
import { spawnSync } from "node:child_process";
import * as tf from "@tensorflow/tfjs";
import { projectPath } from "../src/paths.js";

const IMAGE = projectPath("data", "demo", "images", "000000000009.jpg");
const CKPT = projectPath(".cache", "bench", "maskrcnn_r50fpn.pth");
const SIZES = [800, 512];
const RUNS = 3, THREADS = 2;

export async function benchMaskrcnn(): Promise<Record<string, unknown>[]> {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch, torchvision"], { encoding: "utf8" });
  if (probe.status !== 0) return [{ note: "needs /usr/bin/python3 with torch + torchvision to write the full-width checkpoint and time the peer" }];
  // PyTorch first: it writes the checkpoint both sides load
  const py = spawnSync("/usr/bin/python3", [projectPath("bench", "maskrcnn_torch.py"), CKPT, IMAGE, String(RUNS), String(THREADS), ...SIZES.map(String)], { encoding: "utf8", maxBuffer: 1 << 24 });
  if (py.status !== 0) throw new Error(`maskrcnn_torch.py failed: ${py.stderr.slice(-2000)}`);
  const torch = JSON.parse(py.stdout.trim().split("\n").pop()!);
  if (!fs.existsSync(CKPT)) throw new Error(`no checkpoint at ${CKPT}`);

  const { initEngine } = await import("../src/engine/index.js");
  const { readStateDict } = await import("../src/modeling/checkpoint/index.js");
  const { maskRcnnFromStateDict, maskRcnnVariables } = await import("../src/engine/models/maskrcnn.js");
  const { detectImage, torchvisionInference } = await import("../src/instance/maskrcnn.js");
  const { loadRgb } = await import("../src/data/image.js");
  await initEngine({ backend: "wasm", threads: THREADS });
  const { stateDict } = await readStateDict(CKPT);
  const net = maskRcnnFromStateDict(stateDict, CKPT);
  const img = await loadRgb(IMAGE);
  const out: Record<string, unknown>[] = [];
  for (const size of SIZES) {
    const cfg = torchvisionInference({ minSize: size, scoreThresh: 0 });
    await detectImage(net, img, cfg);   // warm-up (graph caches, kernel setup)
    const times: number[] = [];
    let detections = 0;
    for (let r = 0; r < RUNS; r++) {
      const t = performance.now();
      detections = (await detectImage(net, img, cfg)).scores.length;
      times.push((performance.now() - t) / 1000);
    }
    times.sort((a, b) => a - b);
    const ours = times[Math.floor(times.length / 2)], peer = torch[String(size)].median_s;
    out.push({
      case: `Mask R-CNN R50-FPN inference, short side ${size} (${img.width}×${img.height} image), ${THREADS} threads`,
      seconds: Number(ours.toFixed(2)), pytorchSeconds: Number(peer.toFixed(2)), ratio: Number((ours / peer).toFixed(2)), target: "≤ 1.5× PyTorch",
      detections, pytorchDetections: torch[String(size)].detections,
    });
  }
  out.push({ case: "peak memory", peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024), pytorchPeakRssMB: torch.peak_rss_mb, tensorsLeft: tf.memory().numTensors - maskRcnnVariables(net).length });
  tf.dispose(maskRcnnVariables(net));
  return out;
}
