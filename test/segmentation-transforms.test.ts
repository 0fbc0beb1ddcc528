// The stage-v transforms against the reference's composition run in Python
// (tools/make-opencv-fixtures.py reference_train / reference_val: fblib_transforms + OpenCV 4.6 +
// torchvision ToTensor/Normalize) with the same fixed flip / angle / scale on full VOC images.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { loadRgb } from "../src/data/image.js";
import { readLabelPng } from "../src/data/png.js";
import { mulberry32 } from "../src/random.js";
import {
  alignLabel, augmentPair, collateSamples, drawAugmentParams, fixedResizePair, normalizeImageHwc, trainSample, trainSampleWith,
  valImage, valSample, SEGMENTATION_INPUT_SIZE, type SegmentationPair,
} from "../src/segmentation/transforms.js";
import { md5Hex as md5 } from "./helpers.js";

const index = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "opencv", "index.json"), "utf8"));

async function loadPair(entry: any): Promise<SegmentationPair> {
  const image = await loadRgb(projectPath(...entry.image.split("/")));
  assert.equal(md5(image.data), entry.input_md5, `${entry.image}: decoded input differs from PIL's`);
  return { image, label: readLabelPng(projectPath(...entry.label.split("/"))) };
}

test("train transform with fixed flip/angle/scale: 8-bit image, label and normalised float32 equal the reference's", async () => {
  const cases = index.transforms.filter((t: any) => t.kind === "train");
  assert.ok(cases.length >= 5);
  for (const t of cases) {
    const pair = await loadPair(t);
    const params = { flip: t.flip, angle: t.angle, scale: t.scale };
    const what = `${path.basename(t.image)} flip ${t.flip} angle ${t.angle} scale ${t.scale}`;
    const u8 = augmentPair({ image: pair.image, label: alignLabel(pair.image, pair.label) }, params);
    assert.equal(u8.image.width, 512);
    assert.equal(u8.image.height, 512);
    assert.equal(md5(u8.image.data), t.image_u8_md5, `${what}: 8-bit image`);
    assert.equal(md5(u8.label.data), t.label_md5, `${what}: label`);
    const s = trainSampleWith(pair, params);
    assert.equal(s.image.length, 512 * 512 * 3);
    assert.equal(md5(s.image), t.normalized_md5, `${what}: normalised float32 HWC`);
    assert.deepEqual([...new Set(s.label)].sort((a, b) => a - b), t.label_values, what);
    let sum = 0;
    for (const v of s.image) sum += v;
    assert.ok(Math.abs(sum - t.normalized_sum) <= 1e-9 * Math.abs(t.normalized_sum), `${what}: sum ${sum} vs ${t.normalized_sum}`);
  }
});

test("val transform: 512×512 bicubic image / nearest label, normalised, equal to the reference's", async () => {
  const cases = index.transforms.filter((t: any) => t.kind === "val");
  assert.ok(cases.length >= 2);
  for (const t of cases) {
    const pair = await loadPair(t);
    const u8 = fixedResizePair({ image: pair.image, label: alignLabel(pair.image, pair.label) });
    assert.equal(md5(u8.image.data), t.image_u8_md5, t.image);
    assert.equal(md5(u8.label.data), t.label_md5, t.image);
    const s = valSample(pair);
    assert.equal(md5(s.image), t.normalized_md5, t.image);
    assert.deepEqual(valImage(pair.image), s.image);
  }
});

test("seeded draws: reference formulas and order, reproducible, within ±5° and 0.75–1.25", () => {
  const a = mulberry32(17), b = mulberry32(17);
  let flips = 0, minA = Infinity, maxA = -Infinity, minS = Infinity, maxS = -Infinity;
  for (let i = 0; i < 2000; i++) {
    const p = drawAugmentParams(a);
    const r0 = b(), r1 = b(), r2 = b();
    assert.deepEqual(p, { flip: r0 < 0.5, angle: 10 * r1 - 5, scale: 0.5 * r2 - 0.25 + 1 });
    flips += p.flip ? 1 : 0;
    minA = Math.min(minA, p.angle); maxA = Math.max(maxA, p.angle);
    minS = Math.min(minS, p.scale); maxS = Math.max(maxS, p.scale);
  }
  assert.ok(flips > 900 && flips < 1100, `${flips} flips of 2000`);
  assert.ok(minA >= -5 && minA < -4.9 && maxA < 5 && maxA > 4.9, `${minA} .. ${maxA}`);
  assert.ok(minS >= 0.75 && minS < 0.76 && maxS < 1.25 && maxS > 1.24, `${minS} .. ${maxS}`);
});

test("trainSample = trainSampleWith(drawAugmentParams(rng)); layout and label values", async () => {
  const t = index.transforms[0];
  const pair = await loadPair(t);
  const s = trainSample(pair, mulberry32(5));
  const same = trainSampleWith(pair, drawAugmentParams(mulberry32(5)));
  assert.equal(s.width, SEGMENTATION_INPUT_SIZE);
  assert.equal(s.height, SEGMENTATION_INPUT_SIZE);
  assert.equal(s.label.length, 512 * 512);
  assert.deepEqual(s.image, same.image);
  assert.deepEqual(s.label, same.label);
  const batch = collateSamples([same, s]);
  assert.equal(batch.size, 2);
  assert.deepEqual(batch.images.subarray(512 * 512 * 3), s.image);
  assert.deepEqual(batch.labels.subarray(0, 512 * 512), same.label);
  assert.throws(() => collateSamples([s, valSample(pair, 256)]), /sample 1 is 256×256, sample 0 is 512×512/);
  // labels are never blended: only the input's classes, 255, and 0 where the rotation uncovers
  const allowed = new Set([...pair.label.data, 0]);
  for (const v of new Set(s.label)) assert.ok(allowed.has(v), `label value ${v}`);
});

test("normalisation: torch's float32 (x/255 − mean)/std, channel last", () => {
  const img = { width: 2, height: 1, data: Uint8Array.from([0, 128, 255, 10, 20, 30]) };
  const out = normalizeImageHwc(img);
  const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
  for (let i = 0; i < 6; i++) {
    const c = i % 3, f = Math.fround;
    assert.equal(out[i], f(f(f(img.data[i] / 255) - f(mean[c])) / f(std[c])));
  }
});

test("bad pairs are refused with a message", () => {
  const image = { width: 4, height: 3, data: new Uint8Array(36) };
  const label = { width: 4, height: 2, data: new Uint8Array(8) };
  assert.throws(() => augmentPair({ image, label }, { flip: false, angle: 0, scale: 1 }), /label 4×2 differs from image 4×3; align it first/);
  assert.throws(() => augmentPair({ image, label: alignLabel(image, label) }, { flip: false, angle: 0, scale: 0 }), /scale > 0/);
  assert.equal(alignLabel(image, label).height, 3);
});
