// PIL-exact resampling: every case made by tools/make-resize-fixtures.py with Pillow 9.4's
// Image.resize (NEAREST / BILINEAR / BICUBIC, modes RGB and L) must match bit for bit.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { resizeImage, resizeU8, shortSideSize, type Filter } from "../src/data/resize.js";
import { loadRgb } from "../src/data/image.js";
import { diffCount, md5Hex as md5, readPngPixels, type PngPixels } from "./helpers.js";

const dir = projectPath("test", "fixtures", "resize");
const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));

const readPng = (rel: string) => readPngPixels(path.join(dir, rel));

test("resize: every PIL case (crops, L and RGB, up/down/1-pixel/one-axis) is bit-identical", () => {
  const inputs: Record<string, PngPixels> = {};
  for (const [name, meta] of Object.entries<any>(index.inputs)) {
    const px = readPng(meta.file);
    assert.equal(px.channels, meta.channels, name);
    inputs[name] = px;
  }
  const failures: string[] = [];
  let checked = 0;
  for (const c of index.cases) {
    const src = inputs[c.input];
    const out = resizeU8(src.data, src.width, src.height, src.channels, c.width, c.height, c.filter as Filter);
    assert.equal(out.length, c.width * c.height * src.channels);
    checked++;
    if (md5(out) === c.md5) continue;
    let detail = "md5 differs";
    if (c.file) {
      const d = diffCount(out, readPng(c.file).data);
      detail = `${d.count} values differ, max |Δ| ${d.max}`;
    }
    failures.push(`${c.input} ${c.filter} ${src.width}x${src.height}->${c.width}x${c.height}: ${detail}`);
  }
  assert.equal(checked, index.cases.length);
  assert.ok(checked >= 130);
  assert.deepEqual(failures, []);
});

test("resize: full COCO/VOC images at the pipeline's short sides (256, 640) and back, bit-identical", async () => {
  const images = new Map<string, Awaited<ReturnType<typeof loadRgb>>>();
  for (const c of index.full) {
    if (!images.has(c.image)) images.set(c.image, await loadRgb(projectPath("data", c.image)));
    const img = images.get(c.image)!;
    const [w, h] = shortSideSize(img.width, img.height, c.shortSide);
    let out;
    if (c.filter === "bilinear+bicubic-back") {
      out = resizeImage(resizeImage(img, w, h, "bilinear"), img.width, img.height, "bicubic");
    } else {
      assert.deepEqual([w, h], [c.width, c.height]);
      out = resizeImage(img, w, h, c.filter);
    }
    assert.equal(out.width, c.width);
    assert.equal(out.height, c.height);
    assert.equal(md5(out.data), c.md5, `${c.image} ${c.filter} -> ${c.width}x${c.height}`);
  }
});

test("resize: stage-i mask back-projection (x16 nearest patch mask, bicubic to the original size, mode L)", () => {
  for (const b of index.backproj) {
    const [rw, rh] = b.resized as [number, number];
    const [ow, oh] = b.original as [number, number];
    const { rows, cols, bits } = b.grid;
    // the patch grid upsampled by 16 (nearest) and cropped to the resized image size
    const patch = new Uint8Array(rows * cols);
    for (let i = 0; i < patch.length; i++) patch[i] = bits[i] === "1" ? 255 : 0;
    const up = resizeU8(patch, cols, rows, 1, cols * 16, rows * 16, "nearest");
    const cropped = new Uint8Array(rw * rh);
    for (let y = 0; y < rh; y++) cropped.set(up.subarray(y * cols * 16, y * cols * 16 + rw), y * rw);
    const out = resizeU8(cropped, rw, rh, 1, ow, oh, "bicubic");
    const expected = readPng(b.file).data;
    const d = diffCount(out, expected);
    assert.equal(d.count, 0, `${rw}x${rh}->${ow}x${oh}: ${d.count} values differ, max ${d.max}`);
    let positive = 0, full = 0;
    for (const v of out) { if (v > 0) positive++; if (v === 255) full++; }
    assert.equal(positive, b.positive);
    assert.equal(full, b.full255);
  }
});

test("shortSideSize follows torchvision Resize(int)", () => {
  assert.deepEqual(shortSideSize(500, 375, 640), [853, 640]);
  assert.deepEqual(shortSideSize(640, 480, 256), [341, 256]);
  assert.deepEqual(shortSideSize(375, 500, 640), [640, 853]);
  assert.deepEqual(shortSideSize(500, 338, 640), [946, 640]); // 640*500/338 = 946.7
  assert.deepEqual(shortSideSize(300, 300, 256), [256, 256]);
  assert.deepEqual(shortSideSize(640, 256, 256), [640, 256]); // already that size
  assert.deepEqual(shortSideSize(256, 999, 256), [256, 999]);
});

test("resize: same size is a copy; bad arguments are refused with a clear message", () => {
  const src = Uint8Array.from([1, 2, 3, 4, 5, 6]);
  const same = resizeU8(src, 2, 1, 3, 2, 1, "bicubic");
  assert.deepEqual([...same], [...src]);
  assert.notEqual(same, src);
  assert.throws(() => resizeU8(src, 2, 1, 3, 0, 1, "bilinear"), /output width must be a positive integer/);
  assert.throws(() => resizeU8(src, 3, 1, 3, 1, 1, "bilinear"), /expected 3×1×3 = 9 values, got 6/);
  assert.throws(() => resizeU8(src, 2, 1, 3, 1, 1, "lanczos" as Filter), /unknown filter "lanczos"/);
});
