// Mask R-CNN training losses (torchvision preset) against torchvision 0.14's maskrcnn_resnet50_fpn in
// train mode: the narrow seeded model of test/fixtures/maskrcnn, two demo images at short side 160 with
// three GT instances each, torch's random sampling replaced by the indices it chose (recorded by
// tools/make-maskrcnn-train-fixtures.py into test/fixtures/maskrcnn-train). The five losses within 1e-4
// relative, the gradients of a dozen parameters within 1e-3 (max |Δ| / max |g|).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { projectPath } from "../src/paths.js";
import { initEngine } from "../src/engine/index.js";
import { readStateDict } from "../src/modeling/checkpoint/index.js";
import { maskRcnnFromStateDict, maskRcnnParams, maskRcnnVariables, setTrainable, type MaskRcnnNet } from "../src/engine/models/maskrcnn.js";
import { rcnnTransform } from "../src/instance/transform.js";
import { LOSS_NAMES, maskRcnnLosses, resizeTargets, torchvisionTraining, type InstanceTargets } from "../src/instance/losses.js";
import { matchPredictions, sampleBalanced, seededPicker, type IndexPicker } from "../src/instance/sampling.js";
import { maskFromRle, rleFromCoco } from "../src/mask/rle.js";
import { loadRgb } from "../src/data/image.js";
import { readF32, relError } from "./helpers.js";

const DIR = projectPath("test", "fixtures", "maskrcnn-train");
const manifest = JSON.parse(fs.readFileSync(`${DIR}/manifest.json`, "utf8"));

let net: MaskRcnnNet;
before(async () => {
  await initEngine({ backend: "wasm", threads: 1 });
  const { stateDict } = await readStateDict(projectPath(manifest.weights));
  net = maskRcnnFromStateDict(stateDict, manifest.weights);
});
after(() => tf.dispose(maskRcnnVariables(net)));

/** Replays the indices torch's sampler chose; checks they are candidates of the right kind. */
function recordedPicker(): IndexPicker {
  return (candidates, k, ctx) => {
    const call = (manifest.sampler_calls as any[]).find((c) => c.batch_size_per_image === (ctx.stage === "rpn" ? 256 : 512));
    const got: number[] = call.images[ctx.image][ctx.kind];
    const set = new Set(candidates);
    assert.equal(got.length, k, `${ctx.stage} image ${ctx.image}: ${k} ${ctx.kind} wanted, torch chose ${got.length}`);
    for (const i of got) assert.ok(set.has(i), `${ctx.stage} image ${ctx.image}: torch's ${ctx.kind} ${i} is not one of ours`);
    return Int32Array.from(got);
  };
}

test("sampling: Matcher thresholds and low-quality matches; balanced sampler counts", () => {
  // 2 GT × 4 predictions
  const iou = Float32Array.from([0.8, 0.5, 0.1, 0.2, 0.1, 0.6, 0.65, 0.2]);
  assert.deepEqual([...matchPredictions(iou, 2, 4, { high: 0.7, low: 0.3, allowLowQualityMatches: false })], [0, -2, -2, -1]);
  // GT 1's best is 0.65 (prediction 2): restored to its argmax (GT 1)
  assert.deepEqual([...matchPredictions(iou, 2, 4, { high: 0.7, low: 0.3, allowLowQualityMatches: true })], [0, -2, 1, -1]);
  const labels = Int8Array.from([1, 1, 1, 0, 0, -1, 0, 1]);
  const s = sampleBalanced(labels, 4, 0.5, seededPicker(1), { stage: "rpn", image: 0 });
  assert.equal(s.positive.length, 2);
  assert.equal(s.negative.length, 2);
  for (const i of s.positive) assert.equal(labels[i], 1);
  for (const i of s.negative) assert.equal(labels[i], 0);
});

test("five losses and parameter gradients equal torchvision's (train mode, recorded sampling)", async (t) => {
  const images = await Promise.all(manifest.images.map((im: any) => loadRgb(projectPath(im.file))));
  const batch = rcnnTransform(images, { minSize: manifest.min_size, maxSize: manifest.max_size, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], sizeDivisible: 32 });
  const [N, , Hp, Wp] = batch.shape;
  const nhwc = new Float32Array(N * Hp * Wp * 3);
  for (let n = 0; n < N; n++) for (let c = 0; c < 3; c++) for (let i = 0; i < Hp * Wp; i++) nhwc[(n * Hp * Wp + i) * 3 + c] = batch.data[(n * 3 + c) * Hp * Wp + i];
  const targets: InstanceTargets[] = manifest.images.map((im: any, n: number) => {
    const [h, w] = im.size;
    const orig: InstanceTargets = {
      boxes: Float32Array.from(im.instances.flatMap((a: any) => a.bbox_xyxy)),
      labels: Int32Array.from(im.instances.map((a: any) => a.label)),
      masks: im.instances.map((a: any) => maskFromRle(rleFromCoco(a.mask, h, w))),
      height: h, width: w,
    };
    return resizeTargets("torchvision", orig, batch.imageSizes[n][0], batch.imageSizes[n][1]);
  });
  const trained = setTrainable(net, 2);
  const input = tf.tensor4d(nhwc, [N, Hp, Wp, 3]);
  const values: Record<string, number> = {};
  let stats: any;
  const { grads } = tf.variableGrads(() => {
    const r = maskRcnnLosses(net, { images: input, imageSizes: batch.imageSizes, targets }, torchvisionTraining(), recordedPicker());
    for (const k of LOSS_NAMES) values[k] = r.losses[k].dataSync()[0];
    stats = r.stats;
    return r.total;
  }, trained.map((p) => p.variable));
  input.dispose();
  // our training proposals are torchvision's (same boxes, same order)
  manifest.proposals.forEach((p: any, n: number) => {
    assert.equal(stats.proposals[n], p.shape[0], `image ${n}: ${stats.proposals[n]} proposals, torchvision ${p.shape[0]}`);
  });
  const lossErr: string[] = [];
  for (const k of LOSS_NAMES) {
    const want = manifest.losses[k], e = Math.abs(values[k] - want) / Math.abs(want);
    lossErr.push(`${k} ${values[k].toFixed(6)} (${e.toExponential(1)})`);
    assert.ok(e <= 1e-4, `${k}: ${values[k]} vs torchvision ${want} (relative ${e})`);
  }
  const gradErr: string[] = [];
  const byKey = new Map(maskRcnnParams(net).map((p) => [p.key, p]));
  for (const [key, g] of Object.entries(manifest.gradients as Record<string, any>)) {
    const p = byKey.get(key)!;
    const ours = grads[p.variable.name];
    assert.ok(ours, `no gradient for ${key}`);
    const e = relError(p.toTorch((await ours.data()) as Float32Array), readF32(`${DIR}/${g.file}`));
    gradErr.push(`${key.replace(/^(backbone|roi_heads)\./, "")} ${e.toExponential(1)}`);
    assert.ok(e <= 1e-3, `gradient of ${key}: relative error ${e}`);
  }
  tf.dispose(Object.values(grads));
  t.diagnostic(`losses: ${lossErr.join(", ")}`);
  t.diagnostic(`gradients: ${gradErr.join(", ")}`);
});
