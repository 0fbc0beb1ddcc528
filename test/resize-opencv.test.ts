// OpenCV-exact resampling: every case made by tools/make-opencv-fixtures.py with OpenCV 4.6
// (Debian python3-opencv) — cv2.resize (nearest / linear / cubic, 1 and 3 channels, labels),
// cv2.getRotationMatrix2D and cv2.warpAffine — must match bit for bit.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import type { Filter } from "../src/data/resize.js";
import {
  cvFlipHorizontalU8, cvResizeU8, cvRotationMatrix2D, cvWarpAffineU8, type AffineMatrix,
} from "../src/data/resizeOpenCv.js";
import { diffCount, md5Hex as md5, readPngPixels, type PngPixels } from "./helpers.js";

const dir = projectPath("test", "fixtures", "opencv");
const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));

const readPng = (rel: string) => readPngPixels(path.join(dir, rel));

const inputs: Record<string, PngPixels> = {};
for (const [name, meta] of Object.entries<any>(index.inputs)) {
  const px = readPng(meta.file);
  assert.equal(px.channels, meta.channels, name);
  inputs[name] = px;
}

function mismatch(out: Uint8Array, c: any): string {
  if (!c.file) return "md5 differs";
  const d = diffCount(out, readPng(c.file).data);
  return `${d.count} values differ, max |Δ| ${d.max}`;
}

for (const filter of ["nearest", "bilinear", "bicubic"] as Filter[]) {
  test(`cv resize ${filter}: every OpenCV case (crops, 1 and 3 channels, up/down/odd/1-pixel) is bit-identical`, () => {
    const cases = index.resize.filter((c: any) => c.filter === filter);
    assert.ok(cases.length >= (filter === "nearest" ? 90 : 75), `${cases.length} cases`);
    const failures: string[] = [];
    for (const c of cases) {
      const src = inputs[c.input];
      const out = cvResizeU8(src.data, src.width, src.height, src.channels, c.width, c.height, filter);
      assert.equal(out.length, c.width * c.height * src.channels);
      if (md5(out) !== c.md5) failures.push(`${c.input} ${src.width}x${src.height}->${c.width}x${c.height}: ${mismatch(out, c)}`);
    }
    assert.deepEqual(failures, []);
  });
}

test("cv getRotationMatrix2D: equal to OpenCV's doubles", () => {
  let exact = 0;
  const off: string[] = [];
  for (const c of index.matrices) {
    const m = cvRotationMatrix2D(c.cx, c.cy, c.angle, c.scale);
    if (m.every((v, i) => v === c.m[i])) { exact++; continue; }
    const rel = Math.max(...m.map((v, i) => Math.abs(v - c.m[i]) / Math.max(Math.abs(c.m[i]), 1e-300)));
    off.push(`angle ${c.angle} scale ${c.scale}: max rel ${rel.toExponential(2)}`);
  }
  assert.ok(index.matrices.length >= 300);
  assert.deepEqual(off, [], `${exact}/${index.matrices.length} exact`);
});

for (const filter of ["nearest", "bilinear", "bicubic"] as Filter[]) {
  test(`cv warpAffine ${filter}: every OpenCV case (±5° and beyond, scales 0.6–1.7, constant border) is bit-identical`, () => {
    const cases = index.warp.filter((c: any) => c.filter === filter);
    assert.ok(cases.length >= 50, `${cases.length} cases`);
    const failures: string[] = [];
    for (const c of cases) {
      const src = inputs[c.input];
      // OpenCV's own matrix, so this checks the warp alone (the matrix has its own test)
      const out = cvWarpAffineU8(src.data, src.width, src.height, src.channels, c.m as AffineMatrix, c.width, c.height, filter, c.border ?? 0);
      if (md5(out) !== c.md5) failures.push(`${c.input} angle ${c.angle} scale ${c.scale} ${c.width}x${c.height}: ${mismatch(out, c)}`);
    }
    assert.deepEqual(failures, []);
  });
}

test("cv flip: mirrors columns, keeps channel order", () => {
  const src = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  assert.deepEqual([...cvFlipHorizontalU8(src, 2, 2, 3)], [4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9]);
  assert.deepEqual([...cvFlipHorizontalU8(src, 4, 3, 1)], [4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9]);
});

test("cv resize / warp: bad input is refused with a message", () => {
  assert.throws(() => cvResizeU8(new Uint8Array(5), 2, 2, 1, 4, 4, "bicubic"), /expected 2×2×1 = 4 values, got 5/);
  assert.throws(() => cvResizeU8(new Uint8Array(4), 2, 2, 1, 0, 4, "bicubic"), /output width must be a positive integer/);
  assert.throws(() => cvResizeU8(new Uint8Array(4), 2, 2, 1, 3, 3, "lanczos" as Filter), /unknown filter/);
  assert.throws(() => cvWarpAffineU8(new Uint8Array(4), 2, 2, 1, [1, 0, NaN, 0, 1, 0], 2, 2, "bilinear"), /6 finite numbers/);
});
