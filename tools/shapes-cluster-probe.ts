// Stage ii on the shapes world, diagnosed: how well does a backbone's embedding of the GT object separate
// the K shape classes, under several ways of presenting the object? For each variant, the reference's
// clustering (whiten + L2, MiniBatchKMeans, K = classes) scored by ACC / NMI, and a leave-one-out
// 10-nearest-neighbour accuracy (cosine) — how much shape information the embedding holds at all.
//
//   node --import tsx tools/shapes-cluster-probe.ts --weights FILE [--world .cache/shapes] [--split val]
//        [--limit 400] [--variants crop,crop@2.33,image] [--out FILE.jsonl] [--tag TEXT]
// A ResNet-50 file (`pretrain --arch resnet50`'s teacher, torchvision layout) is embedded by its average-pooled
// layer4 (running BN statistics), the vector its pretraining trained; a ViT by its CLS token.
// Variants: `crop` — stage ii as the reference runs it (the box at the image's resolution, zero-padded to
// the patch); `crop@S` — the box crop resized by S (bicubic) first, e.g. S = 224 / 96, the scale the
// backbone ran at in stage i and in pretraining; `image@R` — the whole image resized to R (no crop).
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { readCocoDataset } from "../src/data/coco.js";
import { loadRgb, type RgbImage } from "../src/data/image.js";
import { cropNormalized } from "../src/data/preprocess.js";
import { resizeImage } from "../src/data/resize.js";
import { miniBatchKMeans, whitenAndNormalize } from "../src/cluster/kmeans.js";
import { scoreClustering } from "../src/cluster/naming.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { readStateDict } from "../src/modeling/checkpoint/index.js";
import { initEngine } from "../src/engine/index.js";
import { chwToNhwc, pretrainResNetFrom, resnetEmbedDim, resnetPooled } from "../src/pretrain/resnet.js";
import * as tf from "@tensorflow/tfjs";

/** The embedder of a weights file: { dim, patch (input multiple), embed(CHW input) → vector }. */
async function embedderOf(file: string): Promise<{ dim: number; patch: number; embed: (x: { data: Float32Array; width: number; height: number }) => Promise<Float32Array>; dispose: () => Promise<void> }> {
  const { stateDict } = await readStateDict(file);
  if (stateDict.has("conv1.weight") && stateDict.has("layer1.0.conv1.weight")) {   // torchvision ResNet keys
    await initEngine({ backend: "wasm", threads: 2 });
    const m = pretrainResNetFrom(stateDict, file);
    return {
      dim: resnetEmbedDim(m.width), patch: 1,
      embed: async (x) => Float32Array.from(await tf.tidy(() => resnetPooled(m, chwToNhwc([x.data], x.width, x.height), false)).data()),
      dispose: async () => {},
    };
  }
  const vit = await loadBackbone(file);
  return { dim: vit.dim, patch: vit.patch, embed: (x) => vit.cls(x), dispose: () => vit.dispose() };
}
import { projectPath } from "../src/paths.js";

function cropU8(img: RgbImage, x0: number, y0: number, w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(img.data.subarray(((y0 + y) * img.width + x0) * 3, ((y0 + y) * img.width + x0 + w) * 3), y * w * 3);
  return { width: w, height: h, data };
}

/** Leave-one-out k-NN (cosine): the share right overall, and per class (index = label). */
function knnAccuracy(x: Float32Array, n: number, d: number, labels: Int32Array, k = 10): { all: number; perClass: number[] } {
  let right = 0;
  const classes = 1 + Math.max(...labels), rightOf = new Array(classes).fill(0), countOf = new Array(classes).fill(0);
  for (let i = 0; i < n; i++) {
    const sims: [number, number][] = [];
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let s = 0;
      for (let c = 0; c < d; c++) s += x[i * d + c] * x[j * d + c];
      sims.push([s, labels[j]]);
    }
    sims.sort((a, b) => b[0] - a[0]);
    const votes = new Map<number, number>();
    for (const [, l] of sims.slice(0, k)) votes.set(l, (votes.get(l) ?? 0) + 1);
    let best = -1, bestVotes = -1;
    for (const [l, v] of votes) if (v > bestVotes) { best = l; bestVotes = v; }
    countOf[labels[i]]++;
    if (best === labels[i]) { right++; rightOf[labels[i]]++; }
  }
  return { all: right / n, perClass: rightOf.map((r, c) => (countOf[c] ? r / countOf[c] : 0)) };
}

async function main() {
  const { values } = parseArgs({ options: {
    weights: { type: "string" },
    world: { type: "string", default: projectPath(".cache", "shapes") },
    split: { type: "string", default: "val" },
    limit: { type: "string", default: "400" },
    variants: { type: "string", default: "crop,crop@2.333,image@224" },
    out: { type: "string" },
    tag: { type: "string", default: "" },
  } });
  if (!values.weights) throw new Error("--weights FILE is required");
  const gt = readCocoDataset(path.join(values.world!, `instances_${values.split}.json`));
  const categories = gt.categories.map((c) => c.id);
  const byImage = new Map(gt.images.map((im) => [im.id, im]));
  const anns = gt.annotations.slice(0, Number(values.limit));
  const labels = Int32Array.from(anns, (a) => categories.indexOf(a.category_id));
  const backbone = await embedderOf(values.weights);
  const images = new Map<number, RgbImage>();
  for (const a of anns) if (!images.has(a.image_id)) images.set(a.image_id, await loadRgb(path.join(values.world!, byImage.get(a.image_id)!.file_name)));
  for (const variant of values.variants!.split(",")) {
    const [kind, arg] = variant.split("@");
    const scale = arg ? Number(arg) : 1;
    const feats = new Float32Array(anns.length * backbone.dim);
    for (let i = 0; i < anns.length; i++) {
      const img = images.get(anns[i].image_id)!;
      let input;
      if (kind === "image") {
        const r = resizeImage(img, scale, scale, "bicubic");
        input = cropNormalized(r, [0, 0, r.width, r.height], backbone.patch);
      } else if (kind === "crop") {
        const [bx, by, bw, bh] = anns[i].bbox;
        const x0 = Math.max(0, Math.round(bx)), y0 = Math.max(0, Math.round(by));
        const w = Math.min(img.width, Math.round(bx + bw)) - x0, h = Math.min(img.height, Math.round(by + bh)) - y0;
        const c = cropU8(img, x0, y0, w, h);
        const r = scale === 1 ? c : resizeImage(c, Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(h * scale)), "bicubic");
        input = cropNormalized(r, [0, 0, r.width, r.height], backbone.patch);
      } else throw new Error(`unknown variant ${variant}`);
      feats.set(await backbone.embed(input), i * backbone.dim);
    }
    const n = anns.length, d = backbone.dim;
    const z = whitenAndNormalize(feats, n, d);
    const model = miniBatchKMeans(z, n, d, { nClusters: categories.length, batchSize: 1000, nInit: 3, maxIter: 100 });
    const s = scoreClustering(model.labels, labels, categories.length, categories.length);
    const knn = knnAccuracy(z, n, d, labels);
    const row = { tag: values.tag, weights: values.weights, variant, n, acc: +(100 * s.acc).toFixed(1), nmi: +(100 * s.nmi).toFixed(1), knn10: +(100 * knn.all).toFixed(1),
      // which shapes the embedding confuses (the 10-NN recall of each class)
      knn10PerClass: Object.fromEntries(gt.categories.map((c, i) => [c.name, +(100 * knn.perClass[i]).toFixed(1)])) };
    console.log(JSON.stringify(row));
    if (values.out) fs.appendFileSync(values.out, JSON.stringify(row) + "\n");
  }
  await backbone.dispose();
}

main().catch((e) => { console.error(e); process.exit(1); });
