// Stage i on the shapes world at several short sides, for choosing the size a backbone runs at (on
// train images, so the val split stays unseen by the choice) and for comparing checkpoints of a run:
// CorLoc and mean best-GT mask IoU per size, one JSON line each (appended to --out when given).
//
//   node --import tsx tools/shapes-eval.ts --weights FILE [--world .cache/shapes] [--split train]
//        [--limit 300] [--resize 96,128,160,192] [--tag TEXT] [--out FILE.jsonl]
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { readCocoDataset } from "../src/data/coco.js";
import { cocoImages } from "../src/distill/imageList.js";
import { genMasks } from "../src/distill/genMasks.js";
import { scoreDiscovery } from "../src/evaluation/discovery.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { projectPath } from "../src/paths.js";

async function main() {
  const { values } = parseArgs({ options: {
    weights: { type: "string" },
    world: { type: "string", default: projectPath(".cache", "shapes") },
    split: { type: "string", default: "train" },
    limit: { type: "string", default: "300" },
    resize: { type: "string", default: "96,128,160,192" },
    tag: { type: "string", default: "" },
    out: { type: "string" },
  } });
  if (!values.weights) throw new Error("--weights FILE is required");
  const gtFile = path.join(values.world!, `instances_${values.split}.json`);
  const gt = readCocoDataset(gtFile);
  const images = cocoImages(gtFile, values.world!).slice(0, Number(values.limit));
  const ids = images.map((im) => im.id);
  const backbone = await loadBackbone(values.weights);
  const tmp = fs.mkdtempSync(path.join(projectPath(".cache"), "shapes-eval-"));
  try {
    for (const resize of values.resize!.split(",").map(Number)) {
      const predJson = path.join(tmp, `r${resize}.json`);
      const t0 = Date.now();
      await genMasks({ images, predJson, backbone, resize, quiet: true });
      const s = scoreDiscovery(gt, readCocoDataset(predJson).annotations, ids);
      const row = { weights: values.weights, tag: values.tag, split: values.split, images: s.images, resize, corloc: +s.corloc.toFixed(1), meanBestIou: +s.meanBestIou.toFixed(1), seconds: Math.round((Date.now() - t0) / 1000) };
      console.log(JSON.stringify(row));
      if (values.out) fs.appendFileSync(values.out, JSON.stringify(row) + "\n");
    }
  } finally {
    await backbone.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
