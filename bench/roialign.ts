// RoIAlign forward + gradient on a stage-iii-sized batch (the shapes recipe: 4 images at 160×208, FPN p2–p5 at 64
// channels, detectron2's ROIAlignV2 — aligned, adaptive sampling; 512 box ROIs at 7×7 and 128 mask ROIs at 14×14,
// each on its level by the canonical rule), one thread, against torchvision 0.14's roi_align on PyTorch CPU in the
// same run (bench/roialign_torch.py: the same maps, boxes and levels, one roi_align call per level as
// MultiScaleRoIAlign makes them, NCHW). Ours is the pure-JS kernel the training engine calls on the main thread
// (src/instance/roiAlign.ts). Medians of RUNS after a warm-up; the boxes are seeded.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { mulberry32 } from "../src/random.js";
import { roiAlignBackwardLevels, roiAlignForwardLevels, type MapShape, type RoiAlignParams } from "../src/instance/roiAlign.js";
import { poolerLevels } from "../src/instance/levels.js";
import { median } from "./stats.js";

const RUNS = 7, N = 4, H = 160, W = 208, C = 64;
const SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32];


/** K boxes of 10–130 px sides inside the images, their image and their pyramid level. */
function boxesOf(K: number, seed: number) {
  const rnd = mulberry32(seed);
  const boxes = new Float32Array(4 * K), boxIndex = new Int32Array(K);
  for (let k = 0; k < K; k++) {
    const w = 10 + 120 * rnd(), h = 10 + 120 * rnd(), x = (W - w) * rnd(), y = (H - h) * rnd();
    boxes.set([x, y, x + w, y + h], 4 * k);
    boxIndex[k] = k % N;
  }
  return { boxes, boxIndex, levels: poolerLevels("detectron2", [], []).levelsOf(boxes) };
}

export async function benchRoiAlign(): Promise<object> {
  const shapes = SCALES.map((s) => [N, Math.ceil(H * s), Math.ceil(W * s), C] as MapShape);
  const rnd = mulberry32(7);
  const maps = shapes.map(([n, h, w, c]) => Float32Array.from({ length: n * h * w * c }, () => rnd() - 0.5));
  const cases = [
    { name: "box head, 512 ROIs at 7×7", rois: boxesOf(512, 1), size: 7 },
    { name: "mask head, 128 ROIs at 14×14", rois: boxesOf(128, 2), size: 14 },
  ];
  const params = (size: number): RoiAlignParams => ({ outputSize: [size, size], spatialScale: 0, samplingRatio: 0, aligned: true });

  // the peer, on the same inputs (written to a scratch folder as raw float32 / int32)
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "roialign-bench-"));
  let torch: Record<string, { forward_s: number; backward_s: number }> | undefined;
  try {
    maps.forEach((m, l) => fs.writeFileSync(path.join(dir, `map${l}.f32`), m));
    cases.forEach((c, i) => {
      fs.writeFileSync(path.join(dir, `boxes${i}.f32`), c.rois.boxes);
      fs.writeFileSync(path.join(dir, `index${i}.i32`), c.rois.boxIndex);
      fs.writeFileSync(path.join(dir, `levels${i}.i32`), c.rois.levels);
    });
    fs.writeFileSync(path.join(dir, "spec.json"), JSON.stringify({ shapes, scales: SCALES, runs: RUNS, cases: cases.map((c) => ({ size: c.size, k: c.rois.boxIndex.length })) }));
    const py = spawnSync("/usr/bin/python3", [projectPath("bench", "roialign_torch.py"), dir], { encoding: "utf8" });
    if (py.status === 0) torch = JSON.parse(py.stdout.trim().split("\n").pop()!);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  return cases.map((c, i) => {
    const p = params(c.size);
    const fwd: number[] = [], bwd: number[] = [];
    for (let r = 0; r <= RUNS; r++) {
      let t0 = performance.now();
      const y = roiAlignForwardLevels(maps, shapes, SCALES, c.rois.boxes, c.rois.boxIndex, c.rois.levels, p);
      const tf = performance.now() - t0;
      t0 = performance.now();
      roiAlignBackwardLevels(y, shapes, SCALES, c.rois.boxes, c.rois.boxIndex, c.rois.levels, p);
      if (r > 0) { fwd.push(tf / 1000); bwd.push((performance.now() - t0) / 1000); }
    }
    const rec: Record<string, unknown> = { case: `RoIAlign ${c.name}, ${C} channels, 4 images at ${H}×${W}, one thread`, forwardMs: Number((1000 * median(fwd)).toFixed(1)), gradientMs: Number((1000 * median(bwd)).toFixed(1)) };
    const peer = torch?.[String(i)];
    if (peer) {
      Object.assign(rec, { pytorchForwardMs: Number((1000 * peer.forward_s).toFixed(1)), pytorchGradientMs: Number((1000 * peer.backward_s).toFixed(1)),
        ratio: Number(((median(fwd) + median(bwd)) / (peer.forward_s + peer.backward_s)).toFixed(2)) });
    } else rec.note = "the peer needs /usr/bin/python3 with torch + torchvision";
    return rec;
  });
}
