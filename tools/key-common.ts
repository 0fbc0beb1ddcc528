// How much of a ViT's last-layer key energy is shared by every patch of an image, and what share of the
// key affinities G[p, q] = k_p · k_q (stage i's seed expansion) is positive — on the first N val images of
// the shapes world. A component common to all keys is invisible to softmax attention, so only weight decay
// removes it: --log also prints Σ lr·wd over a pretraining log, next to DINO's ViT-S/16 schedule (lr 5e-4 ×
// 1024/256 after 10 warm-up epochs, cosine to 1e-6; wd 0.04 → 0.4; 300 epochs of 1,251 iterations).
//   node --import tsx tools/key-common.ts --weights FILE [--resize 224] [--limit 40] [--world .cache/shapes] [--log train_log.jsonl]
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { loadBackbone } from "../src/modeling/backbone.js";
import { loadRgb } from "../src/data/image.js";
import { preprocess } from "../src/data/preprocess.js";
import { cocoImages } from "../src/distill/imageList.js";
import { cosineSchedule } from "../src/pretrain/schedule.js";
import { projectPath } from "../src/paths.js";

async function main() {
  const { values } = parseArgs({ options: {
    weights: { type: "string" }, resize: { type: "string", default: "224" }, limit: { type: "string", default: "40" },
    world: { type: "string", default: projectPath(".cache", "shapes") }, log: { type: "string" },
  } });
  if (!values.weights) throw new Error("--weights FILE is required");
  const vit = await loadBackbone(values.weights);
  const images = cocoImages(path.join(values.world!, "instances_val.json"), values.world!).slice(0, Number(values.limit));
  let commonShare = 0, positive = 0;
  for (const im of images) {
    const qk = await vit.lastSelfAttention(preprocess(await loadRgb(im.file), { resize: Number(values.resize), multiple: vit.patch }));
    const { heads, tokens, headDim } = qk, P = tokens - 1, D = heads * headDim;
    // the concatenated keys of the patches (k is [heads, tokens, headDim]; token 0 is CLS)
    const keys = new Float64Array(P * D);
    for (let h = 0; h < heads; h++) for (let t = 1; t < tokens; t++) for (let d = 0; d < headDim; d++) keys[(t - 1) * D + h * headDim + d] = qk.k[(h * tokens + t) * headDim + d];
    const mean = new Float64Array(D);
    for (let p = 0; p < P; p++) for (let d = 0; d < D; d++) mean[d] += keys[p * D + d] / P;
    let meanSq = 0, keySq = 0, pos = 0;
    for (let d = 0; d < D; d++) meanSq += mean[d] ** 2;
    for (let p = 0; p < P; p++) for (let d = 0; d < D; d++) keySq += keys[p * D + d] ** 2 / P;
    for (let a = 0; a < P; a++) {
      for (let b = 0; b < P; b++) {
        let g = 0;
        for (let d = 0; d < D; d++) g += keys[a * D + d] * keys[b * D + d];
        if (g > 0) pos++;
      }
    }
    commonShare += meanSq / keySq;
    positive += pos / (P * P);
  }
  await vit.dispose();
  const row: Record<string, unknown> = { weights: values.weights, images: images.length, resize: Number(values.resize),
    commonKeyShare: +(commonShare / images.length).toFixed(3), positiveAffinityPercent: +(100 * positive / images.length).toFixed(1) };
  if (values.log) {
    const steps = fs.readFileSync(values.log, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as { lr: number; wd: number });
    row.sumLrWd = +steps.reduce((s, r) => s + r.lr * r.wd, 0).toFixed(3);
    const lr = cosineSchedule(5e-4 * 1024 / 256, 1e-6, 300, 1251, 10), wd = cosineSchedule(0.04, 0.4, 300, 1251);
    row.sumLrWdDinoVitS16 = Math.round(lr.reduce((s, v, i) => s + v * wd[i], 0));
  }
  console.log(JSON.stringify(row));
}
main().catch((e) => { console.error(e); process.exit(1); });
