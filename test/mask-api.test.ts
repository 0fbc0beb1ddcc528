// The pycocotools mask API: every entry of test/fixtures/pycocotools/mask_api.json (encode,
// polygon rasterisation, merge: exact; iou, box iou: 1e-12).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { projectPath } from "../src/paths.js";
import {
  bboxIou, maskFromRle, rleArea, rleFromBbox, rleFromCoco, rleFromMask, rleFromPolygon, rleFromPolygons,
  rleFromString, rleIou, rleMerge, rleToBbox, rleToCoco, rleToString, type Rle,
} from "../src/mask/rle.js";
import { MaskdistillError } from "../src/errors.js";

interface MaskApiFixture {
  encode: { h: number; w: number; kind: string; runs: [number, number][]; counts: string; area: number; bbox: number[] }[];
  polygon: { h: number; w: number; polygons: number[][]; counts: string; area: number; bbox: number[]; per_polygon_counts: string[] }[];
  iou: {
    h: number; w: number; dt: string[]; gt: string[]; iscrowd: number[]; iou: number[][];
    dt_boxes: number[][]; gt_boxes: number[][]; box_iscrowd: number[]; box_iou: number[][];
  }[];
  merge: { h: number; w: number; rles: string[]; union: string; intersection: string }[];
}
const fx: MaskApiFixture = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "pycocotools", "mask_api.json"), "utf8"));

function maskFromRuns(h: number, w: number, runs: [number, number][]): Uint8Array {
  const m = new Uint8Array(h * w);
  for (const [s, l] of runs) m.fill(1, s, s + l);
  return m;
}

function assertMatrixClose(actual: Float64Array, expected: number[][], tol: number, what: string) {
  const n = expected[0]?.length ?? 0;
  assert.equal(actual.length, expected.length * n, `${what}: shape`);
  expected.forEach((row, i) => row.forEach((v, j) => {
    assert.ok(Math.abs(actual[i * n + j] - v) <= tol, `${what}[${i}][${j}] = ${actual[i * n + j]}, pycocotools ${v}`);
  }));
}

test("encode: counts string, area, bbox and decode round trip for every fixture mask", () => {
  assert.equal(fx.encode.length, 84);
  for (const [i, e] of fx.encode.entries()) {
    const mask = maskFromRuns(e.h, e.w, e.runs);
    const rle = rleFromMask(mask, e.h, e.w);
    const where = `encode[${i}] ${e.kind} ${e.h}x${e.w}`;
    assert.equal(rleToString(rle), e.counts, where);
    assert.equal(rleArea(rle), e.area, where);
    assert.deepEqual(rleToBbox(rle), e.bbox, where);
    const decoded = rleFromString(e.counts, e.h, e.w);
    assert.deepEqual(decoded.counts, rle.counts, where);
    assert.deepEqual(maskFromRle(decoded), mask, where);
  }
});

test("encode treats any nonzero value as foreground", () => {
  const a = rleFromMask(Uint8Array.from([0, 7, 255, 0, 1, 0]), 2, 3);
  const b = rleFromMask(Uint8Array.from([0, 1, 1, 0, 1, 0]), 2, 3);
  assert.deepEqual(a.counts, b.counts);
  // Column-major runs: column 0 = (0,0),(1,0) -> 0,0 ; column 1 = 1,1 ; column 2 = 1,0
  assert.deepEqual(Array.from(b.counts), [2, 3, 1]);
});

test("polygons: per-polygon rasterisation and merged result, area and bbox exactly as frPyObjects + merge", () => {
  assert.equal(fx.polygon.length, 59);
  for (const [i, e] of fx.polygon.entries()) {
    const per = rleFromPolygons(e.polygons, e.h, e.w);
    assert.deepEqual(per.map(rleToString), e.per_polygon_counts, `polygon[${i}] per polygon`);
    const merged = rleMerge(per);
    assert.equal(rleToString(merged), e.counts, `polygon[${i}] merged`);
    assert.equal(rleArea(merged), e.area, `polygon[${i}] area`);
    assert.deepEqual(rleToBbox(merged), e.bbox, `polygon[${i}] bbox`);
    // annToRLE semantics: rleFromCoco rasterises at the image size and merges.
    assert.equal(rleToString(rleFromCoco(e.polygons, e.h, e.w)), e.counts);
  }
});

test("mask IoU (with crowd semantics) and box IoU within 1e-12", () => {
  assert.equal(fx.iou.length, 12);
  for (const [i, e] of fx.iou.entries()) {
    const dt = e.dt.map((c) => rleFromString(c, e.h, e.w));
    const gt = e.gt.map((c) => rleFromString(c, e.h, e.w));
    assertMatrixClose(rleIou(dt, gt, e.iscrowd), e.iou, 1e-12, `iou[${i}]`);
    assertMatrixClose(bboxIou(e.dt_boxes, e.gt_boxes, e.box_iscrowd), e.box_iou, 1e-12, `box_iou[${i}]`);
  }
});

test("merge: union and intersection exactly", () => {
  assert.equal(fx.merge.length, 12);
  for (const [i, e] of fx.merge.entries()) {
    const rles = e.rles.map((c) => rleFromString(c, e.h, e.w));
    assert.equal(rleToString(rleMerge(rles, false)), e.union, `merge[${i}] union`);
    assert.equal(rleToString(rleMerge(rles, true)), e.intersection, `merge[${i}] intersection`);
    // Cross-check against pixel-wise logic on the decoded masks.
    const masks = rles.map(maskFromRle);
    const or = masks[0].map((_, p) => (masks.some((m) => m[p]) ? 1 : 0));
    const and = masks[0].map((_, p) => (masks.every((m) => m[p]) ? 1 : 0));
    assert.deepEqual(maskFromRle(rleMerge(rles, false)), or);
    assert.deepEqual(maskFromRle(rleMerge(rles, true)), and);
  }
});

test("COCO JSON forms: uncompressed counts, compressed string, rleToCoco round trip", () => {
  const e = fx.encode.find((x) => x.kind === "blob" && x.h * x.w > 100)!;
  const rle = rleFromMask(maskFromRuns(e.h, e.w, e.runs), e.h, e.w);
  const fromList = rleFromCoco({ size: [e.h, e.w], counts: Array.from(rle.counts) }, 1, 1);
  assert.deepEqual(fromList, rle, "uncompressed RLE keeps its own size");
  const coco = rleToCoco(rle);
  assert.deepEqual(coco, { size: [e.h, e.w], counts: e.counts });
  assert.deepEqual(rleFromCoco(coco, e.h, e.w), rle);
});

test("rleFromBbox is the box rasterised as a 4-point polygon", () => {
  const box = [2, 1, 5, 3];
  const r = rleFromBbox(box, 10, 12);
  const [x, y, w, h] = box;
  const p = rleFromPolygon([x, y, x, y + h, x + w, y + h, x + w, y], 10, 12);
  assert.deepEqual(r, p);
  // An integer box covers exactly its pixels (pixel x spans [x, x+1)): columns 2..6, rows 1..3.
  assert.equal(rleArea(r), 15);
  assert.deepEqual(rleToBbox(r), [2, 1, 5, 3]);
  const mask = maskFromRle(r);
  for (let yy = 0; yy < 10; yy++) for (let xx = 0; xx < 12; xx++) {
    assert.equal(mask[yy * 12 + xx], xx >= 2 && xx <= 6 && yy >= 1 && yy <= 3 ? 1 : 0);
  }
});

test("IoU edge cases: no detections or no GT gives an empty matrix; size mismatch gives -1", () => {
  const a: Rle = rleFromMask(Uint8Array.from([1, 1, 0, 0]), 2, 2);
  const b: Rle = rleFromMask(Uint8Array.from([1, 1, 0, 0, 0, 0]), 2, 3);
  assert.equal(rleIou([], [a], [0]).length, 0);
  assert.equal(rleIou([a], [], []).length, 0);
  assert.deepEqual(Array.from(rleIou([a], [b], [0])), [-1]);
  assert.deepEqual(Array.from(rleIou([a], [a], [0])), [1]);
});

test("bad input: invalid or truncated counts strings, short polygons, mismatched merge sizes", () => {
  assert.throws(() => rleFromString("ab~", 2, 2), (e: unknown) => e instanceof MaskdistillError && /invalid character/.test(e.message));
  assert.throws(() => rleFromString("0o", 2, 2), (e: unknown) => e instanceof MaskdistillError && /truncated/.test(e.message));
  assert.throws(() => rleFromCoco([[1, 2, 3, 4]], 5, 5), /polygon 0 has 4 numbers/);
  assert.throws(() => rleFromCoco([[1, 2, 3, 4, 5, 6, 7]], 5, 5), /polygon 0 has 7 numbers/);
  assert.throws(() => rleFromCoco([], 5, 5), /empty polygon list/);
  const a = rleFromMask(new Uint8Array(4), 2, 2), b = rleFromMask(new Uint8Array(6), 2, 3);
  assert.throws(() => rleMerge([a, b]), /only masks of one size/);
  assert.throws(() => rleFromMask(new Uint8Array(5), 2, 2), /expected h\*w/);
  assert.throws(() => maskFromRle({ h: 2, w: 2, counts: Uint32Array.from([3, 3]) }), /malformed/);
});
