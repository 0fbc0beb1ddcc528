// COCOeval speed: coco-mini GT (313 images, 2753 objects) against the pycocotools "noisy" predictions
// replicated to ~11k detections (each copy with deterministically jittered scores, so images hold
// up to 5x the detections and the 100-per-image cap is exercised). Times evaluate (incl. RLE decoding
// and polygon rasterisation of the GT) and accumulate for segm and bbox; pycocotools too when
// Debian's python3 has it.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { projectPath } from "../src/paths.js";
import { readCocoDataset, readCocoResults, type CocoResult } from "../src/data/coco.js";
import { accumulate, defaultParams, evaluateImages, loadResults, summarize, type IouType } from "../src/evaluation/cocoeval.js";

const COPIES = 5;
const REPEATS = 3;

function replicate(results: CocoResult[], copies: number): CocoResult[] {
  const out: CocoResult[] = [];
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let c = 0; c < copies; c++) {
    for (const r of results) out.push({ ...r, score: c === 0 ? r.score : Math.max(0, r.score * (0.6 + 0.4 * rnd())) });
  }
  return out;
}

export async function benchCocoeval(): Promise<object> {
  const gtFile = projectPath("data", "coco-mini", "instances.json");
  const gt = readCocoDataset(gtFile);
  const base = readCocoResults(projectPath("test", "fixtures", "pycocotools", "preds_noisy.json"), gt);
  const results = replicate(base, COPIES);
  const report: Record<string, unknown> = {
    images: gt.images.length, gtObjects: gt.annotations.length, detections: results.length, repeats: REPEATS,
  };
  for (const iouType of ["segm", "bbox"] as IouType[]) {
    let best = { evaluate: Infinity, accumulate: Infinity, total: Infinity };
    let stats: number[] = [];
    for (let rep = 0; rep < REPEATS; rep++) {
      const params = defaultParams(gt, iouType, true);
      const t0 = performance.now();
      const dts = loadResults(gt, results);
      const evalImgs = evaluateImages(gt, dts, params);
      const t1 = performance.now();
      const acc = accumulate(evalImgs, params);
      const t2 = performance.now();
      stats = summarize(acc.precision, acc.recall, params);
      best = {
        evaluate: Math.min(best.evaluate, t1 - t0),
        accumulate: Math.min(best.accumulate, t2 - t1),
        total: Math.min(best.total, t2 - t0),
      };
    }
    report[iouType] = {
      evaluateMs: round(best.evaluate), accumulateMs: round(best.accumulate), evaluatePlusAccumulateMs: round(best.total),
      detectionsPerSecond: Math.round(results.length / (best.total / 1000)), AP: stats[0], AP50: stats[1],
    };
  }
  report.pycocotools = pycocotoolsTimes(gtFile, results);
  return report;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** Same timing with pycocotools through Debian's python3, when it has pycocotools. */
function pycocotoolsTimes(gtFile: string, results: CocoResult[]): unknown {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import pycocotools"], { encoding: "utf8" });
  if (probe.status !== 0) return "not installed (/usr/bin/python3 cannot import pycocotools)";
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cocoeval-bench-"));
  try {
    const predFile = path.join(tmp, "preds.json");
    fs.writeFileSync(predFile, JSON.stringify(results));
    const run = spawnSync("/usr/bin/python3", [projectPath("tools", "cocoeval-bench-pycocotools.py"), gtFile, predFile, String(REPEATS)], { encoding: "utf8" });
    if (run.status !== 0) return `failed: ${run.stderr.trim().split("\n").pop()}`;
    return JSON.parse(run.stdout.trim().split("\n").pop()!);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
