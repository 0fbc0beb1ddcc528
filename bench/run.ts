// `npm run bench [-- NAME...]`: runs the benchmark cases and prints one JSON line per case (figures,
// targets and ratios). Cases: resize, cocoeval, backbone, distill, distill-precision, cluster, engine, crf, maskrcnn, maskrcnn-train, deeplab, roialign, maskrcnn-workers. Timings on a shared
// machine move by ±20 %; the targets in each record are those of the issues (2-core machine).
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { projectRoot } from "../src/paths.js";

const CASES: [name: string, file: string, fn: string][] = [
  ["resize", "resize.ts", "benchResize"],
  ["cocoeval", "cocoeval.ts", "benchCocoeval"],
  ["backbone", "backbone.ts", "benchBackbone"],
  ["distill", "distill.ts", "benchDistill"],
  ["distill-precision", "distillPrecision.ts", "benchDistillPrecision"],
  ["cluster", "cluster.ts", "benchCluster"],
  ["engine", "engine.ts", "benchEngine"],
  ["crf", "crf.ts", "benchCrf"],
  ["maskrcnn", "maskrcnn.ts", "benchMaskrcnn"],
  ["maskrcnn-train", "maskrcnn_train.ts", "benchMaskrcnnTrain"],
  ["deeplab", "deeplab.ts", "benchDeeplab"],
  ["roialign", "roialign.ts", "benchRoiAlign"],
  ["maskrcnn-workers", "maskrcnn_workers.ts", "benchMaskrcnnWorkers"],
];

async function main() {
  const only = process.argv.slice(2);
  let failed = 0;
  for (const [name, file, fn] of CASES) {
    if (only.length && !only.includes(name)) continue;
    const full = path.join(projectRoot(), "bench", file);
    if (!fs.existsSync(full)) continue;
    try {
      const mod = await import(pathToFileURL(full).href);
      const res = await mod[fn]();
      for (const rec of Array.isArray(res) ? res : [res]) console.log(JSON.stringify({ bench: name, ...rec }));
    } catch (e) {
      failed++;
      console.log(JSON.stringify({ bench: name, error: e instanceof Error ? e.message : String(e) }));
    }
  }
  process.exit(failed ? 1 : 0);
}

main();
