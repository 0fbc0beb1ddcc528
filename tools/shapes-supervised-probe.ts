// How hard are the shapes world's classes for a given ViT? An upper bound for what self-supervised
// pretraining can give stage ii: the same ViT trained WITH the class labels (a linear classifier on
// its CLS token, AdamW, random flips), then its val accuracy and the k-means ACC of its val CLS tokens.
// A diagnostic only — nothing of the method uses labels.
//
//   node --import tsx tools/shapes-supervised-probe.ts [--world .cache/shapes] [--init FILE] [--iterations 300]
//        [--dim 96 --depth 4 --heads 6 --patch 16] [--size 96] [--batch 32] [--lr 5e-4] [--threads 1]
//        [--conv-stem 24,48,96,192]   (a convolutional stem instead of the patch embedding: log2(patch) stride-2 convs)
import * as path from "node:path";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine/index.js";
import { readCocoDataset } from "../src/data/coco.js";
import { loadRgb, type RgbImage } from "../src/data/image.js";
import { resizeImage } from "../src/data/resize.js";
import { IMAGENET_MEAN, IMAGENET_STD } from "../src/data/preprocess.js";
import { makePretrainVit, patchify, vitCls, assignVitStateDict } from "../src/pretrain/vit.js";
import { seededRng } from "../src/engine/models/params.js";
import { readStateDict } from "../src/modeling/checkpoint/index.js";
import { miniBatchKMeans, whitenAndNormalize } from "../src/cluster/kmeans.js";
import { scoreClustering } from "../src/cluster/naming.js";
import { mulberry32 } from "../src/random.js";

const { values } = parseArgs({ options: {
  world: { type: "string", default: ".cache/shapes" }, init: { type: "string" }, iterations: { type: "string", default: "300" },
  dim: { type: "string", default: "96" }, depth: { type: "string", default: "4" }, heads: { type: "string", default: "6" }, patch: { type: "string", default: "16" },
  size: { type: "string", default: "96" }, batch: { type: "string", default: "32" }, lr: { type: "string", default: "5e-4" }, threads: { type: "string", default: "1" },
  "train-limit": { type: "string", default: "3500" }, "conv-stem": { type: "string" }, "val-limit": { type: "string", default: "500" },
} });
await initEngine({ backend: "wasm", threads: Number(values.threads) });
const size = Number(values.size), patch = Number(values.patch);

async function load(split: string, limit: number): Promise<{ x: Float32Array[]; y: number[] }> {
  const gt = readCocoDataset(path.join(values.world!, `instances_${split}.json`));
  const cls = new Map(gt.annotations.map((a) => [a.image_id, a.category_id - 1]));
  const x: Float32Array[] = [], y: number[] = [];
  for (const im of gt.images.slice(0, limit)) {
    let img: RgbImage = await loadRgb(path.join(values.world!, im.file_name));
    if (img.width !== size) img = resizeImage(img, size, size, "bicubic");
    const n = size * size, out = new Float32Array(3 * n);
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = (img.data[i * 3 + c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
    x.push(out);
    y.push(cls.get(im.id)!);
  }
  return { x, y };
}
function flip(img: Float32Array): Float32Array {
  const out = new Float32Array(img.length);
  for (let c = 0; c < 3; c++) for (let r = 0; r < size; r++) for (let q = 0; q < size; q++) out[(c * size + r) * size + q] = img[(c * size + r) * size + size - 1 - q];
  return out;
}

const train = await load("train", Number(values["train-limit"])), val = await load("val", Number(values["val-limit"]));
const vit = makePretrainVit(seededRng(0), { patch, dim: Number(values.dim), depth: Number(values.depth), heads: Number(values.heads), mlpRatio: 4, posGrid: size / patch,
  ...(values["conv-stem"] ? { convStem: values["conv-stem"].split(",").map(Number) } : {}) });
if (values.init) assignVitStateDict(vit, (await readStateDict(values.init, "vit")).stateDict, values.init);
const k = 8, d = Number(values.dim);
const w = tf.variable(tf.randomNormal([d, k], 0, 0.01)), b = tf.variable(tf.zeros([k]));
const opt = tf.train.adam(Number(values.lr));
const rng = mulberry32(1), B = Number(values.batch);
const t0 = Date.now();
let acc: number[] = [];
for (let it = 0; it < Number(values.iterations); it++) {
  const idx = Array.from({ length: B }, () => Math.floor(rng() * train.x.length));
  const xs = idx.map((i) => (rng() < 0.5 ? flip(train.x[i]) : train.x[i]));
  const ys = tf.oneHot(idx.map((i) => train.y[i]), k);
  const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(ys, tf.add(tf.matMul(vitCls(vit, patchify(xs, size, size, patch)), w), b)) as tf.Scalar, true)!;
  acc.push((await loss.data())[0]);
  tf.dispose([loss, ys]);
  if ((it + 1) % 50 === 0) { console.log(`it ${it + 1} loss ${(acc.reduce((a, x) => a + x, 0) / acc.length).toFixed(3)} ${((Date.now() - t0) / 1000).toFixed(0)} s`); acc = []; }
}
// val: accuracy of the classifier, and k-means ACC of the CLS tokens (what stage ii would see)
const feats = new Float32Array(val.x.length * d);
let right = 0;
// 50 images per forward at patch 16; fewer at smaller patches (the attention grows as the token count squared)
const evalBatch = Math.max(4, Math.floor(50 * (patch / 16) ** 4));
for (let s = 0; s < val.x.length; s += evalBatch) {
  const xs = val.x.slice(s, s + evalBatch);
  const cls = vitCls(vit, patchify(xs, size, size, patch));
  feats.set(await cls.data(), s * d);
  const pred = await tf.argMax(tf.add(tf.matMul(cls, w), b), 1).data();
  pred.forEach((p, i) => { if (p === val.y[s + i]) right++; });
  cls.dispose();
}
const z = whitenAndNormalize(feats, val.x.length, d);
const km = miniBatchKMeans(z, val.x.length, d, { nClusters: k, batchSize: 1000, nInit: 3, maxIter: 100 });
const sc = scoreClustering(km.labels, Int32Array.from(val.y), k, k);
console.log(JSON.stringify({ init: values.init ?? "random", iterations: Number(values.iterations), valAccuracy: +(100 * right / val.x.length).toFixed(1), kmeansAcc: +(100 * sc.acc).toFixed(1), seconds: Math.round((Date.now() - t0) / 1000) }));
