// Polygon export parity with the reference (skimage find_contours + approximate_polygon), on fixtures
// made by tools/make-polygon-fixtures.py (reference-vit masks and synthetic shapes).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { polygonsFromMask, findContoursPadded, approximatePolygon, atan2CR, sinCR, cosCR } from "../src/mask/polygon.js";
import { projectPath } from "../src/paths.js";

interface PolygonCase { name: string; h: number; w: number; runs?: number[][]; manifest_key?: string; contours: number; polygons: number[][] }
const fixture = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "polygon", "polygons.json"), "utf8")) as { cases: PolygonCase[] };
const manifest = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "reference-vit", "manifest.json"), "utf8"));

function maskFromRuns(h: number, w: number, runs: number[][]): Uint8Array {
  const m = new Uint8Array(h * w);
  for (const [s, n] of runs) m.fill(1, s, s + n);
  return m;
}
function caseMask(c: PolygonCase): Uint8Array {
  if (c.runs) return maskFromRuns(c.h, c.w, c.runs);
  const ref = manifest.masks[c.manifest_key!];
  const runs = typeof ref.full_mask_runs === "string" ? JSON.parse(ref.full_mask_runs) : ref.full_mask_runs;
  return maskFromRuns(c.h, c.w, runs);
}

test("polygonsFromMask matches the reference export on every fixture mask (1e-9)", () => {
  assert.ok(fixture.cases.length >= 40);
  for (const c of fixture.cases) {
    const mask = caseMask(c);
    const got = polygonsFromMask(mask, c.h, c.w, 2);
    assert.equal(got.length, c.polygons.length, `${c.name}: polygon count`);
    got.forEach((poly, i) => {
      const want = c.polygons[i];
      assert.equal(poly.length, want.length, `${c.name}: polygon ${i} length`);
      for (let j = 0; j < poly.length; j++) assert.ok(Math.abs(poly[j] - want[j]) <= 1e-9, `${c.name}: polygon ${i} value ${j}: ${poly[j]} vs ${want[j]}`);
    });
    assert.equal(findContoursPadded(mask, c.h, c.w).length, c.contours, `${c.name}: contour count`);
  }
});

test("hand-checked cases: a 2x2 square, an empty mask, clamping at the border", () => {
  const sq = new Uint8Array(16);
  sq[5] = sq[6] = sq[9] = sq[10] = 1; // rows 1-2, cols 1-2 of 4x4
  // the contour runs through edge midpoints (padded coordinates), in skimage's order
  const [contour] = findContoursPadded(sq, 4, 4);
  assert.deepEqual(Array.from(contour), [3.5, 3, 3.5, 2, 3, 1.5, 2, 1.5, 1.5, 2, 1.5, 3, 2, 3.5, 3, 3.5, 3.5, 3]);
  assert.deepEqual(polygonsFromMask(new Uint8Array(12), 3, 4), []);
  const corner = new Uint8Array(9);
  corner[0] = 1;
  for (const v of polygonsFromMask(corner, 3, 3, 0)[0]) assert.ok(v >= 0);
});

test("approximatePolygon: points within tolerance are dropped, far points kept", () => {
  const line = Float64Array.from([0, 0, 0.5, 5, 0, 10, 6, 10]);
  assert.deepEqual(Array.from(approximatePolygon(line, 2)), [0, 0, 0, 10, 6, 10]);
  assert.deepEqual(Array.from(approximatePolygon(line, 0.1)), Array.from(line));
});

test("correctly rounded atan2/sin/cos agree with known values", () => {
  assert.equal(sinCR(-Math.PI), -1.2246467991473532e-16);
  assert.equal(cosCR(-Math.PI / 2), 6.123233995736766e-17);
  assert.equal(atan2CR(1, 1), Math.PI / 4);
  // a case where V8's fdlibm atan2 is one ulp off the correctly rounded value (checked with mpmath)
  assert.equal(-atan2CR(1711, 899), -1.0870172096636879);
});

test("bad input: mask size mismatch names the problem", () => {
  assert.throws(() => polygonsFromMask(new Uint8Array(5), 2, 3), /expected 2x3=6/);
});
