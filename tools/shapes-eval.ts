// Stage i on the shapes world at several short sides, for choosing the size a backbone runs at (on
// train images, so the val split stays unseen by the choice) and for comparing checkpoints of a run:
// CorLoc and mean best-GT mask IoU per size, one JSON line each (appended to --out when given).
//
//   node --import tsx tools/shapes-eval.ts --weights FILE [--world .cache/shapes] [--split train]
//        [--limit 300] [--resize 96,128,160,192] [--tag TEXT] [--out FILE.jsonl] [--seeds]
// --seeds adds where stage i's seed lands: the share of images whose seed patch is mostly object, and the
// mean mask IoU with the GT object when it is and when it is not (is the CLS query or the key affinity
// what fails?), and the median mask area / object area (too large: the expansion spills over).
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { readCocoDataset } from "../src/data/coco.js";
import { cocoImages } from "../src/distill/imageList.js";
import { genMasks } from "../src/distill/genMasks.js";
import { scoreDiscovery } from "../src/evaluation/discovery.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { projectPath } from "../src/paths.js";
import { loadRgb } from "../src/data/image.js";
import { readVocSegmentationObject } from "../src/data/voc.js";
import { maskIou, stageOneMask } from "../src/distill/agreement.js";

async function main() {
  const { values } = parseArgs({ options: {
    weights: { type: "string" },
    world: { type: "string", default: projectPath(".cache", "shapes") },
    split: { type: "string", default: "train" },
    limit: { type: "string", default: "300" },
    resize: { type: "string", default: "96,128,160,192" },
    tag: { type: "string", default: "" },
    out: { type: "string" },
    seeds: { type: "boolean", default: false },
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
      const row: Record<string, unknown> = { weights: values.weights, tag: values.tag, split: values.split, images: s.images, resize, corloc: +s.corloc.toFixed(1), meanBestIou: +s.meanBestIou.toFixed(1), seconds: Math.round((Date.now() - t0) / 1000) };
      if (values.seeds) Object.assign(row, await seedDiagnostic(backbone, images, values.world!, resize));
      console.log(JSON.stringify(row));
      if (values.out) fs.appendFileSync(values.out, JSON.stringify(row) + "\n");
    }
  } finally {
    await backbone.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
/**
 * Where the seed lands (on the object: ≥ half of its patch is object), the mask IoU in each case, and the
 * median mask area over the object's area (above 1: the seed expansion spills into the background).
 */
async function seedDiagnostic(backbone: Awaited<ReturnType<typeof loadBackbone>>, images: ReturnType<typeof cocoImages>, world: string, resize: number) {
  const iou = { on: [] as number[], off: [] as number[] };
  const areaRatios: number[] = [];
  for (const item of images) {
    const stem = path.basename(item.file).replace(/\.[^.]+$/, "");
    const gt = readVocSegmentationObject(path.join(world, "SegmentationObject", `${stem}.png`)).data.map((v) => (v > 0 && v !== 255 ? 1 : 0));
    const s = await stageOneMask(backbone, await loadRgb(item.file), { resize });
    const seed = new Uint8Array(s.rows * s.cols);
    seed[s.seedPatch] = 1;
    const foot = s.toImage(seed);   // the seed patch's footprint in the image
    let inFoot = 0, onObject = 0;
    for (let p = 0; p < gt.length; p++) if (foot[p]) { inFoot++; onObject += gt[p]; }
    (onObject * 2 >= inFoot ? iou.on : iou.off).push(maskIou(s.full, gt));
    areaRatios.push(s.full.reduce((a: number, b: number) => a + b, 0) / Math.max(1, gt.reduce((a: number, b: number) => a + b, 0)));
  }
  areaRatios.sort((a, b) => a - b);
  const mean = (v: number[]) => (v.length ? +(100 * v.reduce((a, b) => a + b, 0) / v.length).toFixed(1) : null);
  return { seedOnObject: +(100 * iou.on.length / images.length).toFixed(1), meanIouSeedOn: mean(iou.on), meanIouSeedOff: mean(iou.off), medianAreaRatio: +areaRatios[areaRatios.length >> 1].toFixed(2) };
}

main().catch((e) => { console.error(e); process.exit(1); });
