// Mask R-CNN training loop: skipped inputs are counted, a run interrupted and resumed ends with the same
// weights as a straight run (bit for bit), the checkpoint loads into `detect`'s loader, and a reduced
// model learns (2 one-object coco-mini images: mask AP50 far above the untrained model's).
import { test, before } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine/index.js";
import { projectPath } from "../src/paths.js";
import { readStateDict } from "../src/modeling/checkpoint/index.js";
import { maskRcnnFromAnyStateDict, maskRcnnVariables } from "../src/engine/models/maskrcnn.js";
import { disposeTrainState, loadTrainSet, trainMaskRcnn, MODEL_FILE, CHECKPOINT_FILE, type MaskRcnnTrainConfig } from "../src/instance/train.js";
import { overfitCheck, overfitRecipe } from "../src/instance/overfit.js";
import { readSafetensorsFile } from "../src/pretrain/safetensorsIo.js";
import { loadMaskRcnnModel } from "../src/instance/detect.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "maskrcnn-train-"));
const DEMO = projectPath("data", "demo");

before(async () => {
  await initEngine({ backend: "wasm", threads: 1 });
});

/** A small COCO file: 2 demo images with instances, 1 without, one <1 px box, one empty mask, one crowd. */
function smallCoco(): string {
  const demo = JSON.parse(fs.readFileSync(path.join(DEMO, "instances.json"), "utf8"));
  const ids = [86, 321];
  const images = demo.images.filter((i: any) => ids.includes(i.id) || i.id === 9);
  const anns = demo.annotations.filter((a: any) => ids.includes(a.image_id)).map((a: any) => ({ ...a, iscrowd: 0 }));
  const extra = [
    { id: 1, image_id: 86, category_id: 1, iscrowd: 0, area: 0.5, bbox: [10, 10, 0.5, 20], segmentation: [[10, 10, 10.5, 10, 10.5, 30, 10, 30]] },
    { id: 2, image_id: 86, category_id: 1, iscrowd: 0, area: 0, bbox: [10, 10, 20, 20], segmentation: { size: [500, 400], counts: [200000] } },
    { id: 3, image_id: 321, category_id: 1, iscrowd: 1, area: 100, bbox: [10, 10, 20, 20], segmentation: { size: [375, 500], counts: [187500] } },
  ];
  const file = path.join(tmp, "small.json");
  fs.writeFileSync(file, JSON.stringify({ images, annotations: [...anns, ...extra], categories: demo.categories }));
  return file;
}

test("loadTrainSet: images without instances, boxes < 1 px, empty masks and crowd are skipped and counted", () => {
  const set = loadTrainSet(smallCoco(), path.join(DEMO, "images"), { agnostic: false });
  assert.equal(set.samples.length, 2);
  assert.deepEqual(set.skipped, { imagesWithoutAnnotations: 1, crowd: 1, boxesUnder1px: 1, emptyMasks: 1, missingImages: 0 });
  assert.equal(set.numClasses, 81);
  const agnostic = loadTrainSet(smallCoco(), path.join(DEMO, "images"), { agnostic: true });
  assert.equal(agnostic.numClasses, 2);
  assert.ok(agnostic.samples.every((s) => s.labels.every((l) => l === 1)));
});

test("resume: 2 + 1 iterations (stopped, resumed) give the weights and momentum of 3 straight, bit for bit; model.safetensors loads for detect", async () => {
  const set = loadTrainSet(smallCoco(), path.join(DEMO, "images"), { agnostic: true });
  const config: MaskRcnnTrainConfig = { ...overfitRecipe(3), widths: { stem: 4, fpn: 8, boxHead: 16, maskHead: 8 }, minSizes: [128, 160], maxSize: 224, flip: true, warmupIters: 2, steps: [2], clipGradNorm: 1, batchSize: 2 };
  const straight = path.join(tmp, "straight"), resumed = path.join(tmp, "resumed");
  disposeTrainState(await trainMaskRcnn({ outDir: straight, set, config, resume: false }));
  disposeTrainState(await trainMaskRcnn({ outDir: resumed, set, config, resume: false, maxSteps: 2 }));
  const mid = await readSafetensorsFile(path.join(resumed, CHECKPOINT_FILE));
  assert.equal(JSON.parse(mid.metadata.maskdistill_maskrcnn_train).step, 2);
  const s = await trainMaskRcnn({ outDir: resumed, set, config, resume: true });
  assert.equal(s.step, 3);
  disposeTrainState(s);
  const a = await readSafetensorsFile(path.join(straight, CHECKPOINT_FILE)), b = await readSafetensorsFile(path.join(resumed, CHECKPOINT_FILE));
  assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
  let differing = 0, moved = 0;
  const init = mid.tensors;
  for (const [k, t] of a.tensors) {
    const u = b.tensors.get(k)!;
    if (Buffer.compare(Buffer.from(t.data.buffer), Buffer.from(u.data.buffer)) !== 0) differing++;
    if (!k.startsWith("optimizer.") && Buffer.compare(Buffer.from(t.data.buffer), Buffer.from(init.get(k)!.data.buffer)) !== 0) moved++;
  }
  assert.equal(differing, 0, `${differing} tensors differ between the straight and the resumed run`);
  assert.ok(moved > 10, `only ${moved} tensors changed in the last iteration`);
  const logLines = fs.readFileSync(path.join(resumed, "train_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(logLines.map((l) => l.step), [1, 2, 3]);
  for (const k of ["loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"]) assert.ok(Number.isFinite(logLines[2].losses[k]));
  // what `detect --weights OUT/model.safetensors` does
  const { stateDict } = await readStateDict(path.join(resumed, MODEL_FILE));
  const { net, layout } = maskRcnnFromAnyStateDict(stateDict, MODEL_FILE);
  assert.equal(layout, "torchvision");
  assert.equal(net.numClasses, 2);
  assert.ok(stateDict.has("pixel_mean") && stateDict.has("pixel_std"));
  tf.dispose(maskRcnnVariables(net));
  assert.equal((await loadMaskRcnnModel(path.join(resumed, MODEL_FILE))).net.canonicalBoxSize, undefined);   // 224, both libraries'
});

test("workers 2: the shares' gradients averaged — helper threads give the weights of the same shares run here, bit for bit; one share is the plain batch", async () => {
  const set = loadTrainSet(smallCoco(), path.join(DEMO, "images"), { agnostic: true });
  const base: MaskRcnnTrainConfig = { ...overfitRecipe(3), widths: { stem: 4, fpn: 8, boxHead: 16, maskHead: 8 }, minSizes: [128, 160], maxSize: 224, flip: true, warmupIters: 2, steps: [2], clipGradNorm: 1, batchSize: 2 };
  const run = async (name: string, config: MaskRcnnTrainConfig, workerThreads = true) => {
    const out = path.join(tmp, `workers-${name}`);
    disposeTrainState(await trainMaskRcnn({ outDir: out, set, config, resume: false, workerThreads }));
    const ckpt = await readSafetensorsFile(path.join(out, CHECKPOINT_FILE));
    const log = fs.readFileSync(path.join(out, "train_log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    return { ckpt, log };
  };
  const away = await run("processes", { ...base, workers: 2 });
  const here = await run("here", { ...base, workers: 2 }, false);
  const plain = await run("plain", base);
  let differing = 0, fromPlain = 0;
  for (const [k, t] of here.ckpt.tensors) {
    if (Buffer.compare(Buffer.from(t.data.buffer), Buffer.from(away.ckpt.tensors.get(k)!.data.buffer)) !== 0) differing++;
    if (Buffer.compare(Buffer.from(t.data.buffer), Buffer.from(plain.ckpt.tensors.get(k)!.data.buffer)) !== 0) fromPlain++;
  }
  assert.equal(differing, 0, `${differing} tensors differ between helper threads and shares run here`);
  assert.deepEqual(away.log.map((l) => l.loss), here.log.map((l) => l.loss));
  // two shares of one image each are another computation than one batch of two (own normalisation, padding, sampler)
  assert.ok(fromPlain > 10, `only ${fromPlain} tensors differ from the one-share run`);
  for (const l of away.log) assert.ok(Number.isFinite(l.loss) && l.gradNorm > 0);
  // the loss of the averaged step is the shares' mean: same order of magnitude as the plain batch's
  assert.ok(Math.abs(away.log[0].loss - plain.log[0].loss) < 0.5 * plain.log[0].loss, `${away.log[0].loss} vs ${plain.log[0].loss}`);
  await assert.rejects(trainMaskRcnn({ outDir: path.join(tmp, "workers-3"), set, config: { ...base, workers: 3 }, resume: false }), /workers must be an integer from 1 to the batch size \(2\), got 3/);
});

test("canonicalBoxSize: the model file keeps the ROI poolers' canonical box side, and detect's loader sets it on the net", async () => {
  const set = loadTrainSet(smallCoco(), path.join(DEMO, "images"), { agnostic: true });
  const config: MaskRcnnTrainConfig = { ...overfitRecipe(1), widths: { stem: 4, fpn: 8, boxHead: 16, maskHead: 8 }, minSizes: [128], maxSize: 224, batchSize: 1, canonicalBoxSize: 56 };
  const out = path.join(tmp, "canonical");
  const s = await trainMaskRcnn({ outDir: out, set, config, resume: false });
  assert.equal(s.net.canonicalBoxSize, 56);
  disposeTrainState(s);
  assert.equal((await readSafetensorsFile(path.join(out, MODEL_FILE))).metadata.canonical_box_size, "56");
  const model = await loadMaskRcnnModel(path.join(out, MODEL_FILE));
  assert.equal(model.net.canonicalBoxSize, 56);
  tf.dispose(maskRcnnVariables(model.net));
});

test("norm BN: the body's batch norms train (weight and bias by gradient, running statistics from the batches) and resume bit for bit; FrozenBN leaves them", async () => {
  const set = loadTrainSet(smallCoco(), path.join(DEMO, "images"), { agnostic: true });
  const base: MaskRcnnTrainConfig = { ...overfitRecipe(3), widths: { stem: 4, fpn: 8, boxHead: 16, maskHead: 8 }, minSizes: [128], maxSize: 192, warmupIters: 1, steps: [], batchSize: 2 };
  const bnKeys = (t: Map<string, unknown>) => [...t.keys()].filter((k) => /^backbone\.body\..*bn\d\.(weight|bias|running_mean|running_var)$/.test(k) || /^backbone\.body\..*downsample\.1\.(weight|bias|running_mean|running_var)$/.test(k));
  const runs: Record<string, Awaited<ReturnType<typeof readSafetensorsFile>>> = {};
  for (const norm of ["FrozenBN", "BN"] as const) {
    const out = path.join(tmp, `norm-${norm}`);
    disposeTrainState(await trainMaskRcnn({ outDir: out, set, config: { ...base, norm }, resume: false, maxSteps: 2 }));
    disposeTrainState(await trainMaskRcnn({ outDir: out, set, config: { ...base, norm }, resume: true }));
    runs[norm] = await readSafetensorsFile(path.join(out, CHECKPOINT_FILE));
  }
  const frozen = runs.FrozenBN.tensors, bn = runs.BN.tensors;
  const keys = bnKeys(bn);
  assert.ok(keys.length >= 4 * 53, `${keys.length} BN tensors`);   // 53 conv-BN units in a ResNet-50 body
  const at = (t: typeof bn, k: string) => Array.from(t.get(k)!.data as Float32Array);
  const stats = (name: string, t: typeof bn) => keys.filter((k) => k.endsWith(name)).map((k) => at(t, k));
  // FrozenBN: identity statistics and affine, untouched; BN: all four kinds moved, and momentum buffers for weight/bias
  for (const k of keys) {
    const v = at(frozen, k), fill = /running_var|weight$/.test(k) ? 1 : 0;
    assert.ok(v.every((x) => x === fill), `${k} changed under FrozenBN`);
  }
  const movedShare = (name: string, fill: number) => stats(name, bn).filter((v) => v.some((x) => x !== fill)).length / stats(name, bn).length;
  assert.equal(movedShare("running_mean", 0), 1);
  assert.equal(movedShare("running_var", 1), 1);
  assert.ok(movedShare("weight", 1) > 0.9, `weights moved in ${movedShare("weight", 1)}`);
  assert.ok(keys.filter((k) => /(weight|bias)$/.test(k)).every((k) => bn.has(`optimizer.momentum_buffer.${k}`)));
  assert.ok(!keys.some((k) => frozen.has(`optimizer.momentum_buffer.${k}`)));
  // resumed (2 + 1) equals straight (3), bit for bit, running statistics included
  const straight = path.join(tmp, "norm-BN-straight");
  disposeTrainState(await trainMaskRcnn({ outDir: straight, set, config: { ...base, norm: "BN" }, resume: false }));
  const s = (await readSafetensorsFile(path.join(straight, CHECKPOINT_FILE))).tensors;
  for (const [k, t] of s) assert.equal(Buffer.compare(Buffer.from(t.data.buffer), Buffer.from(bn.get(k)!.data.buffer)), 0, `${k} differs after resume`);
});

test("it learns: a reduced model overfits 2 one-object coco-mini images (mask AP50 far above the untrained model's)", async (t) => {
  const r = await overfitCheck({
    annotations: projectPath("data", "coco-mini", "instances.json"), imagesDir: projectPath("data", "coco-mini", "images"),
    images: 2, iterations: 40, outDir: path.join(tmp, "overfit"),
  });
  t.diagnostic(JSON.stringify(r));
  assert.equal(r.images, 2);
  assert.ok(r.ap50Before <= 0.05, `untrained AP50 ${r.ap50Before}`);
  // two objects: AP50 ≈ 0.5 once one of them is masked at IoU ≥ 0.5 (40 iterations: 0.5, AP 0.30, loss 2.48 → 0.83)
  assert.ok(r.ap50After >= 0.45, `AP50 after ${r.iterations} iterations: ${r.ap50After}`);
  assert.ok(r.apAfter >= 0.15, `AP after ${r.iterations} iterations: ${r.apAfter}`);
  assert.ok(r.lastLoss < r.firstLoss / 2.5, `loss ${r.firstLoss} → ${r.lastLoss}`);
});
