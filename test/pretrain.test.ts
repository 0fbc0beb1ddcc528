// DINO pretraining (src/pretrain/): schedules, multi-crop, the matmul patch embedding and the
// position-embedding interpolation against direct computations, the DINO loss against a naive sum,
// the head's weight norm, one AdamW step and the teacher EMA against their formulas, the frozen last
// layer, bit-identical resume, checkpoint errors, and the exported backbone read by the ONNX loader
// (CLS token, last-layer q and k within 1e-4 of the tfjs forward).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine/index.js";
import { cosineSchedule, teacherTemperature } from "../src/pretrain/schedule.js";
import { multiCrop, randomResizedCropBox } from "../src/pretrain/augment.js";
import { DEMO_RECIPE, type PretrainConfig } from "../src/pretrain/config.js";
import { dinoHead, headEmbedding } from "../src/pretrain/head.js";
import { lastSelfAttention, patchify, posInterpolationMatrix, vitCls, vitParams, toTorchLayout, type PretrainVit } from "../src/pretrain/vit.js";
import {
  contrastiveLoss, dinoLoss, disposeState, epochOrder, exportTeacher, initState, loadCheckpoint, loadTrainImages, networkParams,
  loadPretrainVit, readBackboneSidecar, train, trainStep, viewsOf, vitOf, CHECKPOINT_FILE, TEACHER_FILE, type TrainImage, type BackboneSidecar,
} from "../src/pretrain/trainer.js";
import { interpolatePosEmbed } from "../src/modeling/vit.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { mulberry32 } from "../src/random.js";
import { projectPath } from "../src/paths.js";
import { MaskdistillError } from "../src/errors.js";
import { relError } from "./helpers.js";

/** A tiny recipe: 2 blocks of width 24 (6 heads of 4), patch 8, 32 px global / 16 px local crops. */
const TINY: PretrainConfig = {
  ...DEMO_RECIPE,
  arch: { patch: 8, dim: 24, depth: 2, heads: 6, mlpRatio: 4 },
  head: { hidden: 32, bottleneck: 16, outDim: 64 },
  crops: { ...DEMO_RECIPE.crops, globalSize: 32, localSize: 16, localCrops: 2 },
  cacheShortSide: 64,
  batchSize: 2,
  epochs: 2,
  warmupEpochs: 0,
  lr: 1e-3,
};

let images: TrainImage[];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pretrain-test-"));

before(async () => {
  await initEngine({ backend: "wasm", threads: 1 });
  images = await loadTrainImages([projectPath("data", "demo", "images")], TINY.cacheShortSide, { limit: 4 });
});

function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return num / den;
}

test("cosine schedule: np.linspace warm-up, then half cosine (DINO utils.cosine_scheduler)", () => {
  assert.deepEqual([...cosineSchedule(1, 0, 2, 2, 1)], [0, 1, 1, 0.5]);
  const s = cosineSchedule(0.04, 0.4, 3, 4);
  assert.equal(s.length, 12);
  assert.ok(Math.abs(s[0] - 0.04) < 1e-12);
  assert.ok(Math.abs(s[6] - 0.22) < 1e-12);          // halfway: the mean of the ends
  assert.ok(s[11] < 0.4 && s[11] > 0.39);             // last value before reaching the end
  assert.equal(teacherTemperature(0, 0.04, 0.07, 3), 0.04);
  assert.ok(Math.abs(teacherTemperature(1, 0.04, 0.07, 3) - 0.055) < 1e-12);
  assert.equal(teacherTemperature(5, 0.04, 0.07, 3), 0.07);
});

test("random resized crop: boxes inside the image with area and aspect in range; centre-crop fallback", () => {
  const rng = mulberry32(3);
  for (let i = 0; i < 200; i++) {
    const b = randomResizedCropBox(rng, 200, 120, [0.05, 0.4]);
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.w <= 200 && b.y + b.h <= 120);
    const area = (b.w * b.h) / (200 * 120);
    assert.ok(area > 0.04 && area < 0.42, `area ${area}`);
    assert.ok(b.w / b.h > 0.7 && b.w / b.h < 1.4);
  }
  // a 1000×10 strip never fits a 3/4…4/3 box of ≥ 90 % area: torchvision's fallback crop
  assert.deepEqual(randomResizedCropBox(mulberry32(1), 1000, 10, [0.9, 1]), { x: 493, y: 0, w: 13, h: 10 });
});

test("multi-crop: 2 global + N local normalised views, identical for the same seed", () => {
  const a = multiCrop(mulberry32(7), images[0].image!, TINY.crops);
  const b = multiCrop(mulberry32(7), images[0].image!, TINY.crops);
  const c = multiCrop(mulberry32(8), images[0].image!, TINY.crops);
  assert.equal(a.globals[0].data.length, 3 * 32 * 32);
  assert.equal(a.locals.length, 2);
  assert.equal(a.locals[1].data.length, 3 * 16 * 16);
  assert.deepEqual(a.globals[1].data, b.globals[1].data);
  assert.notDeepEqual(a.globals[0].data, c.globals[0].data);
  const v = a.globals[0].data;
  assert.ok(Math.min(...v) >= -2.2 && Math.max(...v) <= 2.7);   // (0 − 0.485)/0.229 … (1 − 0.406)/0.225
  assert.deepEqual(epochOrder(0, 3, 10), epochOrder(0, 3, 10));
  assert.deepEqual([...epochOrder(0, 3, 10)].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test("paired views: the second global view and every other local view are cut from the paired picture", async () => {
  const flat = (v: number): import("../src/data/image.js").RgbImage => ({ width: 40, height: 40, data: new Uint8Array(40 * 40 * 3).fill(v) });
  // no colour jitter: a flat picture stays flat through crop, flip, blur (and 0.4 is below the solarisation threshold)
  const cfg = { ...TINY.crops, localCrops: 4, colorJitter: { brightness: 0, contrast: 0, saturation: 0, hue: 0, p: 0, grayscale: 0 } };
  const m = multiCrop(mulberry32(3), flat(0), cfg, flat(102));
  const level = (c: { data: Float32Array }) => c.data[0] * 0.229 + 0.485;   // red channel, un-normalised
  assert.deepEqual([m.globals[0], m.globals[1], ...m.locals].map((c) => Math.round(level(c) * 255) + 0), [0, 102, 0, 102, 0, 102]);
  // DINO's second global view is solarised 1 time in 5 (a bright flat picture turns dark); --symmetric-globals never
  const g2Levels = (sym: boolean) => Array.from({ length: 20 }, (_, s) => Math.round(level(multiCrop(mulberry32(s), flat(0), { ...cfg, symmetricGlobals: sym }, flat(200)).globals[1]) * 255));
  assert.ok(g2Levels(false).some((v) => v === 55));
  assert.deepEqual(new Set(g2Levels(true)), new Set([200]));
  // without a pair: exactly the single-image views (same PRNG draws)
  const img = images[0].image!;
  assert.deepEqual(multiCrop(mulberry32(5), img, TINY.crops, undefined), multiCrop(mulberry32(5), img, TINY.crops));
  // the loader pairs files by name, one paired folder per image folder, and names a missing one
  const dirA = fs.mkdtempSync(path.join(tmp, "a-")), dirB = fs.mkdtempSync(path.join(tmp, "b-"));
  for (const f of ["000000000009.jpg", "000000000025.jpg"]) {
    fs.copyFileSync(projectPath("data", "demo", "images", f), path.join(dirA, f));
    fs.copyFileSync(projectPath("data", "demo", "images", "000000000009.jpg"), path.join(dirB, f));
  }
  const paired = await loadTrainImages([dirA], 32, { pairedDirs: [dirB] });
  assert.equal(paired[1].pairFile, path.join(dirB, "000000000025.jpg"));
  assert.deepEqual(paired[1].pair!.data, paired[0].image!.data);
  const viewed = viewsOf({ ...TINY, pairedViews: true }, paired, 0, 1);
  assert.equal(viewed.globals[1].size, TINY.crops.globalSize);
  fs.rmSync(path.join(dirB, "000000000025.jpg"));
  await assert.rejects(loadTrainImages([dirA], 32, { pairedDirs: [dirB] }), (e: Error) => e instanceof MaskdistillError && /000000000025\.jpg/.test(e.message) && /paired-views/.test(e.message));
  await assert.rejects(loadTrainImages([dirA], 32, { pairedDirs: [dirB, dirB] }), /one per --images folder/);
});

test("patch embedding as matmul equals the stride-p convolution with PyTorch's [D, 3, p, p] weight", async () => {
  const state = initState(TINY, ["x"]);
  const vit = vitOf(state.student);
  const p = 8, d = 24, w = 24, h = 16;
  const rng = mulberry32(11);
  const img = Float32Array.from({ length: 3 * w * h }, () => rng() * 2 - 1);
  const pb = patchify([img], w, h, p);
  const got = await tf.tidy(() => tf.add(tf.matMul(tf.tensor2d(pb.data, [6, 3 * p * p]), vit.patchW as tf.Tensor2D), vit.patchB)).data();
  const param = vitParams(vit).find((q) => q.key === "patch_embed.proj.weight")!;
  const weight = toTorchLayout((await vit.patchW.data()) as Float32Array, param);   // [D, 3, p, p]
  for (let r = 0; r < 2; r++) for (let c = 0; c < 3; c++) for (let o = 0; o < d; o++) {
    let acc = 0;
    for (let ch = 0; ch < 3; ch++) for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) {
      acc += weight[((o * 3 + ch) * p + y) * p + x] * img[ch * w * h + (r * p + y) * w + c * p + x];
    }
    assert.ok(Math.abs(got[(r * 3 + c) * d + o] - acc) < 1e-5);
  }
  disposeState(state);
});

test("conv stem: unpatchifyNhwc inverts patchify; the stem's tokens equal a direct NHWC conv stack; gradients reach every stem conv", async () => {
  const { makePretrainVit, unpatchifyNhwc, vitTokens, LN_EPS } = await import("../src/pretrain/vit.js");
  const { seededRng } = await import("../src/engine/models/params.js");
  const { layerNorm } = await import("../src/engine/ops.js");
  const rng = mulberry32(12), w = 32, h = 16;
  const imgs = [0, 1].map(() => Float32Array.from({ length: 3 * w * h }, () => rng() * 2 - 1));
  const pb = patchify(imgs, w, h, 8);
  const nhwc = unpatchifyNhwc(pb);
  for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    assert.equal(nhwc[((b * h + y) * w + x) * 3 + c], imgs[b][(c * h + y) * w + x]);
  }
  assert.throws(() => makePretrainVit(seededRng(0), { patch: 8, dim: 12, depth: 1, heads: 2, mlpRatio: 2, posGrid: 2, convStem: [4, 8] }), /gives patch 4, not 8/);
  // depth 0: the tokens are LayerNorm(embedding), which a direct pad-1 stride-2 NHWC conv stack must reproduce
  const vit = makePretrainVit(seededRng(0), { patch: 8, dim: 12, depth: 0, heads: 2, mlpRatio: 2, posGrid: 2, convStem: [4, 6, 8] });
  assert.deepEqual(vit.patchW.shape, [8, 12]);
  const square = patchify(imgs.map((im) => im.slice(0, 3 * 16 * 16)), 16, 16, 8);   // 2×2 grid = the position table's
  const got = vitTokens(vit, square);
  let x = tf.tensor4d(unpatchifyNhwc(square), [2, 16, 16, 3]);
  for (const c of vit.stem!) x = tf.relu(tf.add(tf.conv2d(x, c.w as tf.Tensor4D, 2, [[0, 0], [1, 1], [1, 1], [0, 0]]), c.b)) as tf.Tensor4D;
  assert.deepEqual(x.shape, [2, 2, 2, 8]);
  const patches = tf.reshape(tf.add(tf.matMul(tf.reshape(x, [8, 8]), vit.patchW as tf.Tensor2D), vit.patchB), [2, 4, 12]);
  const emb = tf.add(tf.concat([tf.tile(vit.clsToken, [2, 1, 1]), patches], 1), vit.posEmbed);
  const want = layerNorm(emb, vit.norm.gamma as tf.Tensor1D, vit.norm.beta as tf.Tensor1D, LN_EPS);
  assert.ok(relError((await got.data()) as Float32Array, (await want.data()) as Float32Array) < 1e-6);
  const grads = tf.variableGrads(() => tf.sum(tf.square(vitTokens(vit, pb))) as tf.Scalar, vit.stem!.flatMap((c) => [c.w, c.b]));
  for (const g of Object.values(grads.grads)) assert.ok((await tf.norm(g).data())[0] > 0);
  assert.deepEqual(vitParams(vit).slice(2, 5).map((q) => [q.key, q.torchShape.join("×")]),
    [["patch_embed.stem.0.weight", "4×3×3×3"], ["patch_embed.stem.0.bias", "4"], ["patch_embed.stem.1.weight", "6×4×3×3"]]);
  tf.dispose([got, x, patches, emb, want, grads.value, ...Object.values(grads.grads)]);
});

test("position-embedding matrix reproduces DINO's bicubic interpolation (the loader's)", () => {
  const g = 4, d = 5, rng = mulberry32(2);
  const table = Float32Array.from({ length: (1 + g * g) * d }, () => rng() - 0.5);
  const want = interpolatePosEmbed(table, d, 2, 3, 16, 24);
  const m = posInterpolationMatrix(g, 2, 3, 8);
  for (let t = 0; t < 6; t++) for (let j = 0; j < d; j++) {
    let acc = 0;
    for (let s = 0; s < g * g; s++) acc += m[t * g * g + s] * table[(1 + s) * d + j];
    assert.ok(Math.abs(acc - want[(1 + t) * d + j]) < 1e-6);
  }
});

test("DINO loss equals the naive sum over (teacher global, other student view) pairs", async () => {
  const rng = mulberry32(5);
  const B = 3, K = 7, V = 4;
  const t = Array.from({ length: 2 * B * K }, () => rng());
  const s = Array.from({ length: V * B * K }, () => rng() * 4 - 2);
  const q = tf.softmax(tf.tensor2d(t, [2 * B, K])) as tf.Tensor2D;
  const got = (await dinoLoss(q, tf.tensor2d(s, [V * B, K]), B, 0.1).data())[0];
  const qv = await q.data();
  let total = 0, terms = 0;
  for (let iq = 0; iq < 2; iq++) for (let v = 0; v < V; v++) {
    if (v === iq) continue;
    let sum = 0;
    for (let b = 0; b < B; b++) {
      const row = s.slice((v * B + b) * K, (v * B + b + 1) * K).map((x) => x / 0.1);
      const mx = Math.max(...row), lse = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
      for (let k = 0; k < K; k++) sum -= qv[(iq * B + b) * K + k] * (row[k] - lse);
    }
    total += sum / B;
    terms++;
  }
  assert.ok(Math.abs(got - total / terms) < 1e-4 * Math.abs(total / terms), `${got} vs ${total / terms}`);
});

test("contrastive loss equals the naive InfoNCE; one contrastive iteration trains everything but the prototypes", async () => {
  const rng = mulberry32(9);
  const B = 3, E = 5, V = 4, temp = 0.2;
  const unit = (n: number) => { const v = Array.from({ length: E }, () => rng() * 2 - 1); const l = Math.hypot(...v); return v.map((x) => x / l); };
  const keys = Array.from({ length: 2 * B }, () => unit(E)), queries = Array.from({ length: V * B }, () => unit(E));
  const got = (await contrastiveLoss(tf.tensor2d(keys.flat(), [2 * B, E]), tf.tensor2d(queries.flat(), [V * B, E]), B, temp).data())[0];
  let total = 0;
  for (let v = 0; v < V; v++) for (let b = 0; b < B; b++) {
    const logits = keys.map((k) => k.reduce((a, x, i) => a + x * queries[v * B + b][i], 0) / temp);
    const lse = Math.log(logits.reduce((a, x) => a + Math.exp(x), 0));
    const positives = v < 2 ? [(1 - v) * B + b] : [b, B + b];
    total += positives.reduce((a, p) => a - (logits[p] - lse), 0) / positives.length;
  }
  const want = (2 * temp * total) / (V * B);
  assert.ok(Math.abs(got - want) < 1e-5 * Math.abs(want), `${got} vs ${want}`);

  const cfg: PretrainConfig = { ...TINY, objective: "contrastive", freezeLastLayer: 0 };
  const state = initState(cfg, images.map((im) => im.name));
  const before = new Map(await Promise.all(networkParams(state.student, "student").map(async (p) => [p.key, Float32Array.from(await p.variable.data())] as const)));
  const centre = Float32Array.from(await state.center.data());
  const r = await trainStep(state, [0, 1].map((i) => viewsOf(cfg, images, 0, i)), images.length);
  assert.ok(Number.isFinite(r.loss) && r.loss > 0);
  // DINO's centre and teacher entropy are not part of this objective: untouched, not reported
  assert.equal(r.teacherEntropy, undefined);
  assert.deepEqual(Array.from(await state.center.data()), Array.from(centre));
  for (const p of networkParams(state.student, "student")) {
    const changed = !(await p.variable.data()).every((x, i) => x === before.get(p.key)![i]);
    assert.equal(changed, !p.key.endsWith("last_layer.weight_v"), p.key);
  }
  disposeState(state);
});

test("centred embeddings: a component shared by the whole batch is removed before normalising (no collapse to one direction)", async () => {
  const state = initState(TINY, ["x"]);
  // five inputs that differ by little around one large common input: their plain embeddings nearly coincide
  const common = tf.randomNormal([1, 24], 0, 10, "float32", 3);
  const x = tf.add(common, tf.randomNormal([5, 24], 0, 0.05, "float32", 4)) as tf.Tensor2D;
  const minCos = async (e: tf.Tensor2D) => {
    const g = await tf.matMul(e, e, false, true).data();
    return Math.min(...Array.from(g).filter((_, i) => i % 6 !== 0));
  };
  const plain = headEmbedding(state.student.head, x), centred = headEmbedding(state.student.head, x, true);
  assert.ok(await minCos(plain) > 0.99, "plain embeddings should nearly coincide");
  assert.ok(await minCos(centred) < 0, "centred embeddings should spread out");
  const norms = await tf.norm(centred, 2, 1).data();
  for (const n of norms) assert.ok(Math.abs(n - 1) < 1e-5);
  // and the config refuses it for the DINO objective
  assert.throws(() => initState({ ...TINY, centreEmbeddings: true }, ["x"]), /centreEmbeddings applies to the contrastive objective only/);
  disposeState(state);
});

test("head: L2-normalised bottleneck and unit prototypes bound every logit by 1", async () => {
  const state = initState(TINY, ["x"]);
  const x = tf.randomNormal([5, 24], 0, 10, "float32", 1) as tf.Tensor2D;
  const logits = await dinoHead(state.student.head, x).data();
  assert.equal(logits.length, 5 * 64);
  assert.ok(Math.max(...logits.map(Math.abs)) <= 1 + 1e-5);
  disposeState(state);
});

test("one iteration: AdamW step on biases, frozen last layer, teacher EMA, centre update", async () => {
  const state = initState(TINY, images.map((i) => i.name));
  const before = new Map<string, Float32Array>();
  for (const p of networkParams(state.student, "student")) before.set(p.key, Float32Array.from((await p.variable.data()) as Float32Array));
  const crops = epochOrder(TINY.seed, 0, 4).slice(0, 2).map((i) => viewsOf(TINY, images, 0, i));
  const r = await trainStep(state, crops, 4);
  assert.ok(r.loss > 0 && Number.isFinite(r.loss));
  assert.equal(r.lr, TINY.lr);
  assert.equal(r.momentum, TINY.momentumTeacher);
  const sp = networkParams(state.student, "student"), tp = networkParams(state.teacher, "teacher");
  const biasSteps: number[] = [];
  for (let i = 0; i < sp.length; i++) {
    const s1 = (await sp[i].variable.data()) as Float32Array, t1 = (await tp[i].variable.data()) as Float32Array;
    const s0 = before.get(sp[i].key)!;
    if (sp[i].key.endsWith("last_layer.weight_v")) assert.deepEqual(s1, s0, "last layer frozen in epoch 0");
    // first Adam step: Δ = −lr·g/(|g| + ε) (bias-corrected moments are g and g²): |Δ| ≤ lr, and
    // = lr up to ε/|g| wherever the gradient is not tiny; biases get no weight decay
    if (sp[i].key.endsWith(".bias")) {
      const steps = Array.from(s1, (v, j) => Math.abs(v - s0[j]));
      assert.ok(Math.max(...steps) <= TINY.lr * (1 + 1e-4), `${sp[i].key} moved more than lr`);
      biasSteps.push(...steps);
    }
    // teacher ← m·teacher₀ + (1 − m)·student₁, teacher₀ = student₀
    for (let j = 0; j < t1.length; j += 7) {
      const want = r.momentum * s0[j] + (1 - r.momentum) * s1[j];
      assert.ok(Math.abs(t1[j] - want) < 1e-6 + 1e-5 * Math.abs(want));
    }
  }
  const full = biasSteps.filter((d) => Math.abs(d - TINY.lr) < 1e-4 * TINY.lr).length;
  assert.ok(full > 0.8 * biasSteps.length, `${full} of ${biasSteps.length} bias entries moved by lr`);
  const center = await state.center.data();
  assert.ok(center.some((v) => v !== 0), "centre moved towards the teacher's mean");
  disposeState(state);
});

test("training resumes bit-identically: 2 + 2 iterations through a checkpoint = 4 iterations", async () => {
  const dirA = path.join(tmp, "a"), dirB = path.join(tmp, "b");
  const a = await train({ outDir: dirA, images, config: TINY, resume: false, maxSteps: 4 });
  const b1 = await train({ outDir: dirB, images, config: TINY, resume: false, maxSteps: 2 });
  disposeState(b1);
  const b = await train({ outDir: dirB, images, config: { ...TINY, seed: 99 }, resume: true, maxSteps: 2 });   // the saved config wins
  assert.equal(a.step, 4);
  assert.equal(b.step, 4);
  const pa = networkParams(a.teacher, "t"), pb = networkParams(b.teacher, "t");
  for (let i = 0; i < pa.length; i++) assert.deepEqual(await pa[i].variable.data(), await pb[i].variable.data(), pa[i].key);
  assert.deepEqual(await a.expAvgSq.get("student.head.mlp.0.weight")!.data(), await b.expAvgSq.get("student.head.mlp.0.weight")!.data());
  const losses = (dir: string) => fs.readFileSync(path.join(dir, "train_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).loss);
  assert.deepEqual(losses(dirA), losses(dirB));
  assert.equal(losses(dirA).length, 4);
  // the loaded checkpoint holds exactly the trained state
  const c = await loadCheckpoint(path.join(dirA, CHECKPOINT_FILE));
  assert.equal(c.step, 4);
  assert.deepEqual(await c.center.data(), await a.center.data());
  for (const s of [a, b, c]) disposeState(s);
});

test("memory stays bounded: images past the resident budget are decoded per batch, and training is bit-identical", async () => {
  const lean = await loadTrainImages([projectPath("data", "demo", "images")], TINY.cacheShortSide, { limit: 4, residentBytes: images[0].image!.data.byteLength });
  assert.deepEqual(lean.map((im) => im.image !== undefined), [true, false, false, false]);
  const dirA = path.join(tmp, "resident"), dirB = path.join(tmp, "lean");
  const a = await train({ outDir: dirA, images, config: TINY, resume: false, maxSteps: 2 });
  const b = await train({ outDir: dirB, images: lean, config: TINY, resume: false, maxSteps: 2 });
  const pa = networkParams(a.teacher, "t"), pb = networkParams(b.teacher, "t");
  for (let i = 0; i < pa.length; i++) assert.deepEqual(await pa[i].variable.data(), await pb[i].variable.data(), pa[i].key);
  assert.deepEqual(lean.map((im) => im.image !== undefined), [true, false, false, false], "decoded pixels are dropped after their batch");
  for (const s of [a, b]) disposeState(s);
});

test("checkpoint errors name the file and the problem", async () => {
  const notCkpt = path.join(tmp, "a", TEACHER_FILE);   // a backbone export, not a training state
  await assert.rejects(loadCheckpoint(notCkpt), (e: Error) => e instanceof MaskdistillError && e.message.includes(notCkpt) && /not a maskdistill pretraining checkpoint/.test(e.message));
  const garbage = path.join(tmp, "garbage.safetensors");
  fs.writeFileSync(garbage, "not a checkpoint at all");
  await assert.rejects(loadCheckpoint(garbage), /garbage\.safetensors.*header/);
  await assert.rejects(train({ outDir: path.join(tmp, "a"), images, config: TINY, resume: false, maxSteps: 1 }), /already there: pass --resume/);
  await assert.rejects(train({ outDir: path.join(tmp, "a"), images: images.slice(0, 3), config: TINY, resume: true, maxSteps: 1 }), /other images/);
});

/**
 * The exported backbone loaded by loadBackbone (and, when given, by loadPretrainVit) against the tfjs
 * forward it came from: CLS, last-layer q and k ≤ 1e-4 on random images at the training grid (32×32,
 * patch 8) and an interpolated one (48×32).
 */
async function assertLoadedMatchesTfjs(vit: Awaited<ReturnType<typeof loadBackbone>>, tfjsVit: PretrainVit, rng: () => number, reloaded?: PretrainVit): Promise<void> {
  for (const [w, h] of [[32, 32], [48, 32]]) {
    const img = Float32Array.from({ length: 3 * w * h }, () => rng() * 4 - 2);
    const ours = patchify([img], w, h, 8);
    const want = await vitCls(tfjsVit, ours).data();
    const cls = await vit.cls({ data: img, width: w, height: h });
    assert.ok(maxRelErr(cls, want) <= 1e-4, `cls ${w}×${h}: ${maxRelErr(cls, want)}`);
    if (reloaded) assert.ok(maxRelErr(await vitCls(reloaded, ours).data(), want) <= 1e-6, `loadPretrainVit ${w}×${h}`);
    const att = await vit.lastSelfAttention({ data: img, width: w, height: h });
    const mine = lastSelfAttention(tfjsVit, ours);
    assert.ok(maxRelErr(att.q, await mine.q.data()) <= 1e-4, `q ${w}×${h}`);
    assert.ok(maxRelErr(att.k, await mine.k.data()) <= 1e-4, `k ${w}×${h}`);
    tf.dispose([mine.q, mine.k, mine.clsAttention]);
  }
}

test("exported teacher through loadBackbone: CLS token and last-layer q, k match the tfjs forward (≤ 1e-4)", async () => {
  const state = await loadCheckpoint(path.join(tmp, "a", CHECKPOINT_FILE));
  const file = path.join(tmp, "export", "tiny_vit.safetensors");
  const sidecar = await exportTeacher(state, file) as BackboneSidecar;
  assert.equal(sidecar.heads, 6);
  assert.equal(sidecar.pos_grid, 4);
  assert.equal(sidecar.training?.method, "DINO (maskdistill pretrain)");
  // the sidecar names the objective the weights came from
  const asContrastive = { ...state, config: { ...state.config, objective: "contrastive" as const, pairedViews: true } };
  const other = await exportTeacher(asContrastive, path.join(tmp, "export", "tiny_ctr.safetensors"));
  assert.match(other.training?.method ?? "", /^contrastive \(InfoNCE against the momentum teacher, paired views/);
  assert.match(other.label, /contrastive-pretrained/);
  assert.deepEqual(JSON.parse(fs.readFileSync(file.replace(/safetensors$/, "json"), "utf8")).patch, 8);
  const vit = await loadBackbone(file, { heads: 6 });
  assert.equal(vit.depth, 2);
  assert.equal(vit.dim, 24);
  const rng = mulberry32(4);
  await assertLoadedMatchesTfjs(vit, vitOf(state.teacher), rng);
  await vit.dispose();
  disposeState(state);
});

test("conv-stem ViT (pretrain --conv-stem): exported as patch_embed.stem.<i> + a 1×1 proj; loadBackbone's CLS, q, k and loadPretrainVit match the tfjs forward", async () => {
  const config: PretrainConfig = { ...TINY, arch: { ...TINY.arch, convStem: [4, 6, 8] } };
  const state = initState(config, ["a", "b"]);
  const file = path.join(tmp, "export", "stem_vit.safetensors");
  const sidecar = await exportTeacher(state, file) as BackboneSidecar;
  assert.deepEqual(sidecar.conv_stem, [4, 6, 8]);
  const { readStateDict } = await import("../src/modeling/checkpoint/index.js");
  const { stateDict } = await readStateDict(file, "vit");
  assert.deepEqual(stateDict.get("patch_embed.stem.0.weight")!.shape, [4, 3, 3, 3]);
  assert.deepEqual(stateDict.get("patch_embed.stem.2.weight")!.shape, [8, 6, 3, 3]);
  assert.deepEqual(stateDict.get("patch_embed.proj.weight")!.shape, [24, 8, 1, 1]);
  const vit = await loadBackbone(file, { heads: 6 });
  assert.equal(vit.patch, 8);
  const back = await loadPretrainVit(file);
  await assertLoadedMatchesTfjs(vit, vitOf(state.teacher), mulberry32(5), back);
  await vit.dispose();
  disposeState(state);
});

test("float16 export: loadPretrainVit and loadBackbone read the same weights (CLS, q, k ≤ 1e-4); sidecar errors", async () => {
  const state = await loadCheckpoint(path.join(tmp, "a", CHECKPOINT_FILE));
  const f32 = path.join(tmp, "export", "tiny_vit.safetensors"), f16 = path.join(tmp, "export16", "tiny_vit16.safetensors");
  await exportTeacher(state, f16, { dtype: "float16" });
  const size16 = fs.statSync(f16).size, size32 = fs.statSync(f32).size;
  assert.ok(size16 < 0.55 * size32, `${size16} vs ${size32}`);
  const tfjsVit = await loadPretrainVit(f16);
  const vit = await loadBackbone(f16, { heads: readBackboneSidecar(f16).heads });
  const rng = mulberry32(9);
  const img = Float32Array.from({ length: 3 * 40 * 32 }, () => rng() * 4 - 2);
  const ours = patchify([img], 40, 32, 8);
  const cls = await vit.cls({ data: img, width: 40, height: 32 });
  assert.ok(maxRelErr(cls, await vitCls(tfjsVit, ours).data()) <= 1e-4);
  const att = await vit.lastSelfAttention({ data: img, width: 40, height: 32 });
  const mine = lastSelfAttention(tfjsVit, ours);
  assert.ok(maxRelErr(att.q, await mine.q.data()) <= 1e-4);
  assert.ok(maxRelErr(att.k, await mine.k.data()) <= 1e-4);
  // float16 rounding moves the CLS token only a little from the float32 teacher
  const full = await vitCls(vitOf(state.teacher), ours).data();
  assert.ok(maxRelErr(cls, full) < 2e-2, `fp16 vs fp32 ${maxRelErr(cls, full)}`);
  await vit.dispose();
  tf.dispose([mine.q, mine.k, mine.clsAttention]);
  disposeState(state);
  const noSidecar = path.join(tmp, "lonely.safetensors");
  fs.copyFileSync(f16, noSidecar);
  assert.throws(() => readBackboneSidecar(noSidecar), (e: Error) => e.message.includes("lonely.json") && /sidecar/.test(e.message));
});

test("--init: both backbones start from the given checkpoint, the heads from the seed; a wrong architecture is named", async () => {
  const source = initState({ ...TINY, seed: 5 }, ["x"]);
  const file = path.join(tmp, "init", "from.safetensors");
  await exportTeacher(source, file);
  const cfg: PretrainConfig = { ...TINY, initFrom: { file, sha256: "(test)" } };
  const state = await train({ outDir: path.join(tmp, "init", "run"), images, config: cfg, resume: false, maxSteps: 0 });
  const want = networkParams(source.student, "s"), fresh = initState(TINY, ["x"]);
  for (const net of [state.student, state.teacher]) {
    networkParams(net, "n").forEach((p, i) => {
      const from = p.key.includes("head.") ? networkParams(fresh.student, "f")[i] : want[i];
      assert.deepEqual(Array.from(p.variable.dataSync()), Array.from(from.variable.dataSync()), p.key);
    });
  }
  assert.deepEqual((await loadCheckpoint(path.join(tmp, "init", "run", CHECKPOINT_FILE))).config.initFrom, { file, sha256: "(test)" });
  disposeState(state);
  disposeState(fresh);
  disposeState(source);
  const wide: PretrainConfig = { ...TINY, arch: { ...TINY.arch, dim: 48 }, initFrom: { file, sha256: "(test)" } };
  await assert.rejects(train({ outDir: path.join(tmp, "init", "wide"), images, config: wide, resume: false, maxSteps: 0 }),
    (e: Error) => e.message.includes(file) && /has shape/.test(e.message));
});

test("CLI: a short run, resume, and bad input named in the errors", async () => {
  const { default: cmd } = await import("../src/cli/commands/pretrain.js");
  const imgDir = path.join(tmp, "imgs");
  fs.mkdirSync(imgDir, { recursive: true });
  for (const f of fs.readdirSync(projectPath("data", "demo", "images")).sort().slice(0, 4)) fs.copyFileSync(projectPath("data", "demo", "images", f), path.join(imgDir, f));
  const out = path.join(tmp, "cli");
  const tiny = ["--epochs", "2", "--batch", "2", "--dim", "24", "--depth", "1", "--heads", "6", "--patch", "8", "--global-size", "32", "--local-size", "16", "--local-crops", "2", "--out-dim", "32"];
  const quiet = process.env.MASKDISTILL_QUIET;
  process.env.MASKDISTILL_QUIET = "1";
  const log = console.log;
  const printed: string[] = [];
  console.log = (s: string) => printed.push(String(s));
  try {
    assert.equal(await cmd.run(["--images", imgDir, "--out", out, ...tiny, "--max-steps", "1", "--json"]), 0);
    assert.equal(JSON.parse(printed[printed.length - 1]).step, 1);
    assert.equal(await cmd.run(["--resume", "--out", out, "--max-steps", "1", "--json"]), 0);   // folders from the checkpoint
    const summary = JSON.parse(printed[printed.length - 1]);
    assert.equal(summary.step, 2);
    assert.equal(summary.totalSteps, 4);
  } finally {
    console.log = log;
    if (quiet === undefined) delete process.env.MASKDISTILL_QUIET; else process.env.MASKDISTILL_QUIET = quiet;
  }
  await assert.rejects(cmd.run(["--images", imgDir]), /--out is required/);
  await assert.rejects(cmd.run(["--resume", "--out", out, "--epochs", "5"]), (e: Error) => /plans 2 epochs/.test(e.message) && e.message.includes(out));
  const missing = path.join(tmp, "no-such-folder");
  await assert.rejects(cmd.run(["--images", missing, "--out", path.join(tmp, "cli2")]), (e: Error) => e.message.includes(missing) && /not a folder of images/.test(e.message));
  await assert.rejects(cmd.run(["--images", imgDir, "--out", path.join(tmp, "cli3"), "--dim", "25"]), /not divisible by heads/);
  await assert.rejects(cmd.run(["--out", out, "--epochs", "x"]), /--epochs expects a number/);
  await assert.rejects(cmd.run(["--images", imgDir, "--out", path.join(tmp, "cli5"), "--weight-decay", "0.1,x"]), /--weight-decay expects A or A,B/);
  const noInit = path.join(tmp, "no-such.safetensors");
  await assert.rejects(cmd.run(["--images", imgDir, "--out", path.join(tmp, "cli4"), "--init", noInit]), (e: Error) => e.message.includes(noInit) && /--init: no such checkpoint/.test(e.message));
});
