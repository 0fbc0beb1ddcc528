// ViT preprocessing against the reference: the reference-vit `input` fixture (Resize(256) with PIL
// bilinear, ToTensor, Normalize, zero pad to 16) and torchvision crops of normalised originals made by
// tools/make-resize-fixtures.py (stage ii, Python round-half-even box limits).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { loadRgb } from "../src/data/image.js";
import { cropNormalized, padSize, preprocess, roundHalfEven, IMAGENET_MEAN, IMAGENET_STD } from "../src/data/preprocess.js";
import { readF32 } from "./helpers.js";

const dir = projectPath("test", "fixtures", "resize");
const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test("preprocess matches reference-vit `input` (000000000009.jpg, short side 256, pad 16) within 1e-5", async () => {
  const manifest = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "reference-vit", "manifest.json"), "utf8"));
  const ref = manifest.input;
  const img = await loadRgb(projectPath("data", "coco-mini", "images", ref.image));
  const p = preprocess(img, { resize: ref.resize, multiple: 16 });
  assert.deepEqual([3, p.height, p.width], ref.shape);
  assert.deepEqual([p.validWidth, p.validHeight, p.originalWidth, p.originalHeight], [341, 256, 640, 480]);
  const expected = readF32(projectPath("test", "fixtures", "reference-vit", ref.file));
  const d = maxAbsDiff(p.data, expected);
  assert.ok(d <= 1e-5, `max |Δ| ${d}`);
  // padding columns 341..351 are exactly zero in every channel
  for (let c = 0; c < 3; c++) for (let y = 0; y < p.height; y++) for (let x = p.validWidth; x < p.width; x++) {
    assert.equal(p.data[(c * p.height + y) * p.width + x], 0);
  }
});

test("preprocess without resize keeps the size; multiple 1 adds no padding; values are torch's float32", () => {
  const img = { width: 3, height: 2, data: Uint8Array.from([0, 0, 0, 255, 255, 255, 124, 116, 104, 1, 2, 3, 10, 20, 30, 200, 100, 50]) };
  const p = preprocess(img, { multiple: 1 });
  assert.deepEqual([p.width, p.height, p.validWidth, p.validHeight], [3, 2, 3, 2]);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) for (let i = 0; i < 6; i++) {
    const v = img.data[i * 3 + c];
    const want = f(f(f(v / 255) - f(IMAGENET_MEAN[c])) / f(IMAGENET_STD[c]));
    assert.equal(p.data[c * 6 + i], want);
  }
  assert.ok(Math.abs(p.data[0] - -0.485 / 0.229) < 1e-6);
  const q = preprocess(img, { multiple: 16 });
  assert.deepEqual([q.width, q.height], [16, 16]);
  assert.throws(() => preprocess(img, { multiple: 0 }), /multiple must be a positive integer/);
});

test("cropNormalized matches torchvision crops t[:, round(y):round(y+h), round(x):round(x+w)] padded", async () => {
  assert.ok(index.crops.length >= 4);
  for (const c of index.crops) {
    const img = await loadRgb(projectPath("data", c.image));
    const p = cropNormalized(img, c.box, c.multiple);
    assert.deepEqual([3, p.height, p.width], c.shape, c.file);
    assert.deepEqual([p.validHeight, p.validWidth], c.valid, c.file);
    const d = maxAbsDiff(p.data, readF32(path.join(dir, c.file)));
    assert.ok(d <= 1e-6, `${c.file}: max |Δ| ${d}`);
  }
});

test("roundHalfEven is Python's round; padSize; empty crops are refused", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 2.5001, 47.5, 3].map(roundHalfEven), [0, 2, 2, 0, -2, 2, 3, 48, 3]);
  assert.deepEqual([padSize(853, 16), padSize(640, 16), padSize(1, 8)], [864, 640, 8]);
  const img = { width: 4, height: 4, data: new Uint8Array(48) };
  assert.throws(() => cropNormalized(img, [1, 1, 0.4, 2], 8), /selects no pixels of the 4×4 image/);
  assert.throws(() => cropNormalized(img, [5, 0, 2, 2], 8), /selects no pixels/);
  const edge = cropNormalized(img, [2.6, 2.6, 10, 10], 8); // clipped like a Python slice
  assert.deepEqual([edge.validWidth, edge.validHeight, edge.width, edge.height], [1, 1, 8, 8]);
});
