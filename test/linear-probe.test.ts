// The linear probe (src/segmentation/linearProbe.ts) on a seeded full DeepLab-v3 R50 at 32×32 inputs:
// only head[4] moves (every other weight and BN statistic bit-identical), the loss falls, gradients
// reach only head[4], the probe's logits are the network's own, resume is bit for bit, loading is
// strict (a float16 quarter-width file widens exactly), and the evaluation agrees with eval-semseg on the PNGs it writes.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine/index.js";
import { deepLabLogits, type DeepLabV3 } from "../src/engine/models/deeplab.js";
import { collectVariables } from "../src/engine/models/params.js";
import { writeLabelPng } from "../src/data/png.js";
import { saveRgb } from "../src/data/image.js";
import { writeSafetensors, toFloat32, type StateDict } from "../src/modeling/checkpoint/index.js";
import { toFloat16Bits } from "../src/pretrain/vit.js";
import { deepLabStateDict } from "../src/segmentation/model.js";
import { evaluateSemsegDirs } from "../src/evaluation/semseg.js";
import { MaskdistillError } from "../src/errors.js";
import linearProbeCommand from "../src/cli/commands/linearProbe.js";
import { runCommand, lastJson } from "./helpers.js";
import {
  LINEAR_PROBE_RECIPES, probeLearningRate, probeDataFromFolders, seededFrozenDeepLab, loadFrozenDeepLab, trainLinearProbe,
  withProbeHead, probeVariables, frozenVariables, headFeatures, probeLogits, probeImageLoss, evaluateLinearProbe, readProbeLog,
  disposeProbeHead, deepLabFeatureSide, type ProbeConfig, type ProbeData,
} from "../src/segmentation/linearProbe.js";

const SIZE = 32;
let dir: string;
let data: ProbeData;
let frozen: DeepLabV3;
let fingerprint: string;

/** Tiny scenes: a bright square (class 1) or a dark disc (class 2) on noise, a void border. */
async function makeData(root: string): Promise<ProbeData> {
  const imgDir = path.join(root, "images"), labDir = path.join(root, "labels");
  fs.mkdirSync(imgDir, { recursive: true });
  fs.mkdirSync(labDir, { recursive: true });
  const ids: string[] = [];
  let s = 7;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let n = 0; n < 6; n++) {
    const w = 40 + 4 * n, h = 36;
    const img = new Uint8Array(w * h * 3), lab = new Uint8Array(w * h);
    const cls = 1 + (n % 2), cx = w / 2 + (n - 3), cy = h / 2, r = 9;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const inside = cls === 1 ? Math.abs(x - cx) < r && Math.abs(y - cy) < r : (x - cx) ** 2 + (y - cy) ** 2 < r * r;
      const i = y * w + x;
      lab[i] = y === 0 ? 255 : inside ? cls : 0;
      for (let c = 0; c < 3; c++) img[3 * i + c] = inside ? (cls === 1 ? 230 : 20) : 100 + Math.floor(60 * rnd());
    }
    const id = `img${n}`;
    ids.push(id);
    // PNG keeps the pixels exact
    await saveRgb({ width: w, height: h, data: img }, path.join(imgDir, `${id}.png`));
    writeLabelPng(path.join(labDir, `${id}.png`), { width: w, height: h, data: lab });
    if (n >= 4) {
      fs.mkdirSync(path.join(root, "labels-val"), { recursive: true });
      writeLabelPng(path.join(root, "labels-val", `${id}.png`), { width: w, height: h, data: lab });
    }
  }
  fs.writeFileSync(path.join(root, "train.txt"), ids.slice(0, 4).join("\n") + "\n");
  fs.writeFileSync(path.join(root, "val.txt"), ids.slice(4).join("\n") + "\n");
  return probeDataFromFolders(imgDir, labDir, path.join(root, "train.txt"), path.join(root, "val.txt"));
}

function config(epochs = 3): ProbeConfig {
  const recipe = { ...LINEAR_PROBE_RECIPES.cpu, name: "test", batchSize: 2, epochs, lrDecayEpochs: [1], inputSize: SIZE };
  return { recipe, classes: 3, seed: 11, weights: "seeded", fingerprint };
}

async function snapshot(vars: tf.Variable[]): Promise<Float32Array[]> {
  return Promise.all(vars.map(async (v) => Float32Array.from((await v.data()) as Float32Array)));
}

before(async () => {
  await initEngine({ backend: "wasm" });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "linear-probe-"));
  data = await makeData(dir);
  ({ model: frozen, fingerprint } = await seededFrozenDeepLab(5, 21));
});

after(() => {
  tf.dispose(collectVariables(frozen));
  fs.rmSync(dir, { recursive: true, force: true });
});

test("recipes: the reference's schedules (lr ×0.1 once the epoch index exceeds 25)", () => {
  assert.deepEqual([LINEAR_PROBE_RECIPES.multi_obj.batchSize, LINEAR_PROBE_RECIPES.multi_obj.epochs], [16, 60]);
  assert.deepEqual([LINEAR_PROBE_RECIPES.multi_obj_avg.batchSize, LINEAR_PROBE_RECIPES.multi_obj_avg.epochs], [24, 45]);
  const r = LINEAR_PROBE_RECIPES.multi_obj;
  assert.equal(probeLearningRate(r, 0), 0.1);
  assert.equal(probeLearningRate(r, 25), 0.1);
  assert.ok(Math.abs(probeLearningRate(r, 26) - 0.01) < 1e-15);
  assert.equal(deepLabFeatureSide(512), 64);
  assert.equal(deepLabFeatureSide(33), 5);
});

test("the probe's logits are the network's own: head[4] on headFeatures, upsampled = deepLabLogits", async () => {
  const x = tf.randomNormal([1, SIZE, SIZE, 3], 0, 1, "float32", 3) as tf.Tensor4D;
  const f = headFeatures(frozen, x);
  assert.deepEqual(f.shape, [1, 4, 4, 256]);
  const a = (await probeLogits(frozen, f, [SIZE, SIZE]).data()) as Float32Array;
  const b = (await deepLabLogits(frozen, x).data()) as Float32Array;
  let err = 0, scale = 0;
  for (let i = 0; i < a.length; i++) { err = Math.max(err, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
  assert.ok(err <= 1e-5 * scale, `max |probe − network| = ${err} (scale ${scale})`);
  tf.dispose([x, f]);
});

test("gradients reach only head[4]; training moves only head[4] and the loss falls", async () => {
  const before = await snapshot(frozenVariables(frozen));
  const m = withProbeHead(frozen, 3, 1);
  // gradient of the probe's loss with respect to every variable of the model: only head[4]'s come back
  const x = tf.randomNormal([1, SIZE, SIZE, 3], 0, 1, "float32", 4) as tf.Tensor4D;
  const f = headFeatures(m, x);
  const labels = tf.tensor3d(Int32Array.from({ length: SIZE * SIZE }, (_, i) => (i % 7 === 0 ? 255 : i % 3)), [1, SIZE, SIZE], "int32");
  const all = collectVariables(m);
  const { value, grads } = tf.variableGrads(() => probeImageLoss(m, f, labels), all);
  // (tfjs lists the non-trainable variables it was given with null gradients)
  const withGradient = Object.keys(grads).filter((k) => grads[k] !== null);
  assert.deepEqual(withGradient.sort(), probeVariables(m).map((v) => v.name).sort());
  assert.ok(all.filter((v) => v.trainable).length > 2, "the check must offer trainable variables besides head[4]");
  assert.equal(all.length, 2 + frozenVariables(m).length);
  tf.dispose([x, f, labels, value, ...Object.values(grads).filter((g): g is tf.Tensor => g !== null), ...probeVariables(m)]);

  const out = path.join(dir, "run-a");
  const state = await trainLinearProbe({ outDir: out, data, config: config(), frozen, resume: false });
  const log = readProbeLog(path.join(out, "train_log.jsonl"));
  assert.equal(log.length, 6);   // 4 images, batch 2, 3 epochs
  assert.deepEqual(log.map((l) => l.lr), [0.1, 0.1, 0.1, 0.1, 0.010000000000000002, 0.010000000000000002]);
  const first = log[0].loss, last = (log[4].loss + log[5].loss) / 2;
  assert.ok(Math.abs(first - Math.log(3)) < 0.05, `first loss ${first} ≈ ln 3 (head[4] starts at N(0, 0.01) on O(1) features)`);
  assert.ok(last < 0.7 * first, `loss fell from ${first.toFixed(3)} to ${last.toFixed(3)}`);
  const afterTrain = await snapshot(frozenVariables(state.model));
  assert.equal(afterTrain.length, before.length);
  for (let i = 0; i < before.length; i++) assert.ok(Buffer.from(before[i].buffer).equals(Buffer.from(afterTrain[i].buffer)), `frozen variable ${i} changed`);
  assert.ok(fs.existsSync(path.join(out, "checkpoint.safetensors")));

  // resume: 2 steps, stop, continue → the same head[4], bit for bit
  const out2 = path.join(dir, "run-b");
  const partial = await trainLinearProbe({ outDir: out2, data, config: config(), frozen, resume: false, maxSteps: 2 });
  assert.equal(partial.step, 2);
  disposeProbeHead(partial);
  await assert.rejects(trainLinearProbe({ outDir: out2, data, config: config(), frozen, resume: false }), /--resume/);
  const resumed = await trainLinearProbe({ outDir: out2, data, config: config(), frozen, resume: true });
  assert.equal(resumed.step, 6);
  const [wa, wb] = [await snapshot(probeVariables(state.model)), await snapshot(probeVariables(resumed.model))];
  for (let i = 0; i < 2; i++) assert.ok(Buffer.from(wa[i].buffer).equals(Buffer.from(wb[i].buffer)), "resumed head[4] differs");
  assert.equal(readProbeLog(path.join(out2, "train_log.jsonl")).length, 6);
  // another frozen network is refused on resume
  await assert.rejects(trainLinearProbe({ outDir: out2, data, config: { ...config(), fingerprint: "00000000" }, frozen, resume: true }), /another frozen DeepLab/);
  disposeProbeHead(resumed);

  // evaluation with and without CRF; the PNGs it writes score the same through eval-semseg
  const ev = await evaluateLinearProbe(state.model, data.val, { size: SIZE, crf: true, classes: 3, predictionsDir: path.join(out, "val") });
  assert.equal(ev.images, 2);
  assert.ok(ev.plain.miou >= 0 && ev.plain.miou <= 1 && ev.crf!.miou >= 0 && ev.crf!.miou <= 1);
  assert.ok((ev.plain.per_class[0] ?? 0) > 0.5, `background IoU ${ev.plain.per_class[0]}`);
  const again = evaluateSemsegDirs(path.join(out, "val", "plain"), path.join(dir, "labels-val"), { numClasses: 3 });
  assert.ok(Math.abs(again.miou - ev.plain.miou) < 1e-12);
  disposeProbeHead(state);
});

test("loading a DeepLab checkpoint is strict: missing and unexpected keys are named", async () => {
  const sd = await deepLabStateDict(frozen);
  sd.delete("head.1.weight");
  sd.set("head.9.weight", { dtype: "float32", shape: [1], data: new Float32Array(1) });
  const file = path.join(dir, "bad.safetensors");
  writeSafetensors(file, sd);
  await assert.rejects(loadFrozenDeepLab(file), (e: Error) => e instanceof MaskdistillError && /missing 1 tensor\(s\): head\.1\.weight/.test(e.message) && /unexpected 1 tensor\(s\): head\.9\.weight/.test(e.message));
  fs.rmSync(file);
});

test("a float16 quarter-width DeepLab file (as the shapes run commits) loads: its widths, every value widened exactly", async () => {
  const widths = { backbone: 16, aspp: 64 };
  const { model } = await seededFrozenDeepLab(3, 9, widths);
  const sd = await deepLabStateDict(model);
  tf.dispose(collectVariables(model));
  const half: StateDict = new Map([...sd].map(([k, t]) => [k, { dtype: "float16" as const, shape: t.shape, data: toFloat16Bits(t.data as Float32Array) }]));
  const file = path.join(dir, "half.safetensors");
  writeSafetensors(file, half);
  const loaded = await loadFrozenDeepLab(file);
  try {
    assert.deepEqual(loaded.model.widths, widths);
    assert.equal(loaded.sourceClasses, 9);
    assert.equal(loaded.layout, "reference");
    const back = await deepLabStateDict(loaded.model);
    assert.equal(back.size, half.size);
    for (const [k, t] of half) assert.deepEqual(back.get(k)!.data, toFloat32(t), k);
  } finally {
    tf.dispose(collectVariables(loaded.model));
    fs.rmSync(file);
  }
});

test("CLI: --epochs, --lr and --widths override the recipe and size the seeded baseline; bad values are refused", async () => {
  process.env.MASKDISTILL_QUIET = "1";
  const out = path.join(dir, "cli");
  // one batch of 8 (the recipe's): the 4 training images twice
  const train8 = path.join(dir, "train8.txt");
  fs.writeFileSync(train8, fs.readFileSync(path.join(dir, "train.txt"), "utf8").repeat(2));
  const common = ["--images", path.join(dir, "images"), "--labels", path.join(dir, "labels"), "--train-split", train8,
    "--val-split", path.join(dir, "val.txt"), "--classes", "3", "--recipe", "shapes", "--out", out];
  const r = await runCommand(linearProbeCommand, ["--weights", "seeded:3", "--widths", "16,64", "--epochs", "1", "--lr", "0.01", "--json", ...common]);
  assert.equal(r.code, 0, r.stderr.join("\n"));
  const summary = lastJson(r.stdout);
  assert.equal(summary.recipe.name, "shapes");
  assert.equal(summary.recipe.epochs, 1);
  assert.equal(summary.recipe.lr, 0.01);
  assert.equal(summary.recipe.inputSize, 96);
  // 8 training items, batch 8: one step in the one epoch
  assert.equal(readProbeLog(path.join(out, "train_log.jsonl")).length, 1);
  const saved = await loadFrozenDeepLab(path.join(out, "model.safetensors"));
  assert.deepEqual(saved.model.widths, { backbone: 16, aspp: 64 });
  tf.dispose(collectVariables(saved.model));
  for (const [flags, message] of [
    [["--weights", "seeded:3", "--widths", "16"], /--widths expects two integers/],
    [["--weights", path.join(out, "model.safetensors"), "--widths", "16,64"], /--widths is for --weights seeded:N only/],
    [["--weights", "seeded:3", "--epochs", "0"], /--epochs expects an integer ≥ 1/],
    [["--weights", "seeded:3", "--lr=0"], /--lr expects a positive number/],
  ] as const) await assert.rejects(runCommand(linearProbeCommand, [...flags, ...common]), message);
});
