// Mask R-CNN (torchvision preset) against torchvision 0.14's maskrcnn_resnet50_fpn in eval mode, on a
// narrow model with the real structure and seeded weights (test/fixtures/maskrcnn, made by
// tools/make-maskrcnn-fixtures.py; BN statistics perturbed so they matter). Every stage is compared so
// that a difference can be located: the transformed input, the FPN levels, the RPN outputs, the
// proposals, the box head's logits, and the final detections with their pasted masks.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { projectPath } from "../src/paths.js";
import { initEngine } from "../src/engine/index.js";
import { readStateDict } from "../src/modeling/checkpoint/index.js";
import { backboneFeatures, maskRcnnFromStateDict, maskRcnnVariables, rpnHeadOutputs, type MaskRcnnNet } from "../src/engine/models/maskrcnn.js";
import { detectImage, torchvisionInference, type ImageDetections } from "../src/instance/maskrcnn.js";
import { rcnnTransform } from "../src/instance/transform.js";
import { loadRgb } from "../src/data/image.js";
import { readF32, relError } from "./helpers.js";
import { compareDetections, matchBoxes } from "./maskrcnnParity.js";

const DIR = projectPath("test", "fixtures", "maskrcnn");
const manifest = JSON.parse(fs.readFileSync(`${DIR}/manifest.json`, "utf8"));
const fx = (name: string) => readF32(`${DIR}/${name}`);
const cfg = torchvisionInference({ minSize: 320, maxSize: 512, scoreThresh: 0 });

let net: MaskRcnnNet;
const results = new Map<string, ImageDetections>();

before(async () => {
  await initEngine({ backend: "wasm", threads: 1 });
  const { stateDict } = await readStateDict(`${DIR}/narrow_maskrcnn.pth`);
  net = maskRcnnFromStateDict(stateDict, "narrow_maskrcnn.pth");
  for (const im of manifest.images) results.set(im.stem, await detectImage(net, await loadRgb(projectPath(im.file)), cfg, { keepSteps: true }));
});
after(() => tf.dispose(maskRcnnVariables(net)));

/** CHW → HWC. */
function hwc(chw: Float32Array, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(chw.length);
  for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) out[i * c + k] = chw[k * h * w + i];
  return out;
}

test("checkpoint: every tensor of torchvision's maskrcnn_resnet50_fpn layout loads (narrow widths read from the tensors)", () => {
  assert.equal(net.numClasses, 21);
  assert.equal(net.fpnChannels, 16);
  assert.equal(net.anchorsPerLocation, 3);
  assert.deepEqual([net.body.layer1.length, net.body.layer2.length, net.body.layer3.length, net.body.layer4.length], [3, 4, 6, 3]);
  assert.equal(net.maskConvs.length, 4);
});

test("transform, FPN and RPN head outputs equal torchvision's (image 1)", async (t) => {
  const im = manifest.images[0];
  const img = await loadRgb(projectPath(im.file));
  const batch = rcnnTransform([img], cfg.transform);
  assert.deepEqual(batch.imageSizes[0], im.image_size);
  assert.deepEqual(batch.shape, im.batched_shape);
  const [, , Hp, Wp] = batch.shape, [h, w] = im.image_size;
  const ref = fx(im.input.file);
  let maxDiff = 0;
  for (let c = 0; c < 3; c++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    maxDiff = Math.max(maxDiff, Math.abs(batch.data[(c * Hp + y) * Wp + x] - ref[(c * h + y) * w + x]));
  }
  assert.ok(maxDiff <= 1e-6, `input max abs diff ${maxDiff}`);
  const nhwc = tf.tensor4d(hwc(batch.data, 3, Hp, Wp), [1, Hp, Wp, 3]);
  const feats = backboneFeatures(net, nhwc);
  const names = ["0", "1", "2", "3", "pool"];
  const errs: string[] = [];
  for (let l = 0; l < 5; l++) {
    const { shape, file } = im.fpn[names[l]];
    assert.deepEqual(feats[l].shape.slice(1), [shape[1], shape[2], shape[0]], `level ${names[l]} shape`);
    const e = relError(await feats[l].data(), hwc(fx(file), shape[0], shape[1], shape[2]));
    errs.push(`${names[l]} ${e.toExponential(1)}`);
    assert.ok(e <= 1e-4, `FPN level ${names[l]}: relative error ${e}`);
  }
  const rpn = rpnHeadOutputs(net, feats);
  const obj = Float32Array.from((await Promise.all(rpn.objectness.map((x) => x.data()))).flatMap((d) => Array.from(d as Float32Array)));
  const del = Float32Array.from((await Promise.all(rpn.deltas.map((x) => x.data()))).flatMap((d) => Array.from(d as Float32Array)));
  const eo = relError(obj, fx(im.rpn_objectness.file)), ed = relError(del, fx(im.rpn_deltas.file));
  t.diagnostic(`relative errors: FPN ${errs.join(", ")}; RPN objectness ${eo.toExponential(1)}, deltas ${ed.toExponential(1)}`);
  assert.ok(eo <= 1e-4 && ed <= 1e-4, `RPN objectness ${eo}, deltas ${ed}`);
  tf.dispose([nhwc, ...feats, ...rpn.objectness, ...rpn.deltas]);
});

for (const [k, im] of (manifest.images as any[]).entries()) {
  test(`image ${k + 1} (${im.stem}): proposals, box-head logits, detections and masks match torchvision`, (t) => {
    const r = results.get(im.stem)!, s = r.steps!;
    // proposals: the same 1000 boxes (a few near-tied scores may trade places at the cut)
    const refProps = fx(im.proposals.file);
    const pp = matchBoxes(s.proposals, refProps, 0.99);
    const propShare = pp.length / (refProps.length / 4);
    const inOrder = pp.filter(([a, b]) => a === b).length;
    assert.ok(propShare >= 0.95, `proposals matched ${propShare}`);
    // box-head logits of the proposals that are the same box
    const refLogits = fx(im.class_logits.file);
    let logitErr = 0, mag = 0;
    for (const [a, b] of pp) for (let c = 0; c < 21; c++) {
      logitErr = Math.max(logitErr, Math.abs(s.classLogits[a * 21 + c] - refLogits[b * 21 + c]));
      mag = Math.max(mag, Math.abs(refLogits[b * 21 + c]));
    }
    assert.ok(logitErr / mag <= 1e-4, `class logits relative error ${logitErr / mag}`);
    // detections: same label, box IoU ≥ 0.99, |Δscore| ≤ 1e-3; masks IoU ≥ 0.98
    const ref = im.detections;
    const { pairs, worstMaskIou: worstMask, identicalMasks: exact } = compareDetections(r, ref);
    const detShare = pairs.length / ref.scores.length;
    t.diagnostic(`proposals ${pp.length}/1000 matched (${inOrder} at the same rank); class logits ${(logitErr / mag).toExponential(1)}; ` +
      `detections ${pairs.length}/${ref.scores.length} matched; worst mask IoU ${worstMask.toFixed(4)}; ${exact} masks pixel-identical`);
    assert.equal(r.scores.length, ref.scores.length);
    assert.ok(detShare >= 0.95, `detections matched ${detShare}`);
    assert.ok(worstMask >= 0.98, `worst mask IoU ${worstMask}`);
  });
}
