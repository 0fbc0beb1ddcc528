// Stage (i) mask algorithm against the reference: bit-exact intermediates on the reference q/k fixtures
// (tools/distill-intermediates.py ran the reference mask_generator with torch, float32 CPU) and the
// reference-vit manifest masks (patch masks, seed, kept count, k, full-size back-projected masks).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { maskFromAttention } from "../src/distill/maskFromAttention.js";
import { backProject } from "../src/distill/backProject.js";
import { componentContaining, label4 } from "../src/distill/components.js";
import { cascadeSum, innerSum, rowSum } from "../src/distill/torchFloat32.js";
import { projectPath } from "../src/paths.js";
import { rowRuns, readF32 } from "./helpers.js";

const REF = projectPath("test", "fixtures", "reference-vit");
const manifest = JSON.parse(fs.readFileSync(`${REF}/manifest.json`, "utf8"));
const intermediates = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "distill", "intermediates.json"), "utf8"));

const f32 = (file: string): Float32Array => readF32(`${REF}/${file}`);
function runsOf(v: unknown): number[][] {
  return (typeof v === "string" ? JSON.parse(v) : v) as number[][];
}
function bitsDiffer(got: Float32Array, want: number[]): number {
  let n = 0;
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], Math.fround(want[i]))) n++;
  return n;
}

const qkCases = Object.entries<{ q: string; k: string; shape: number[] }>(manifest.qk);

test("reference q/k: every intermediate bit-exact with torch (exact expansion)", () => {
  assert.equal(qkCases.length, 3);
  for (const [key, spec] of qkCases) {
    const want = intermediates.cases[key];
    const [rows, cols] = want.grid;
    const r = maskFromAttention(f32(spec.q), f32(spec.k), { heads: 6, tokens: spec.shape[2], rows, cols, headDim: 64 }, { exactExpansion: true });
    assert.equal(bitsDiffer(r.clsScore, want.cls_score), 0, `${key}: CLS score`);
    assert.equal(r.clsSum, Math.fround(want.threshold_total), `${key}: threshold sum`);
    assert.equal(bitsDiffer(r.thresholded, want.thresholded), 0, `${key}: thresholded`);
    assert.equal(r.keptAfterThreshold, want.kept, `${key}: kept`);
    assert.deepEqual(Array.from(r.topkPatches), want.topk, `${key}: top-k order`);
    assert.deepEqual(Array.from(r.sourcePatches), want.source_nodes, `${key}: S`);
    assert.equal(bitsDiffer(r.expansion, want.expansion), 0, `${key}: expansion d`);
    assert.deepEqual(rowRuns(r.patchMask), want.patch_mask_runs, `${key}: patch mask`);
  }
});

test("reference q/k: fast path gives the reference masks, seeds, kept counts, k and full-size masks", () => {
  for (const [key, spec] of qkCases) {
    const ref = manifest.masks[key];
    const [rows, cols] = ref.grid;
    const want = intermediates.cases[key];
    const r = maskFromAttention(f32(spec.q), f32(spec.k), { heads: 6, tokens: spec.shape[2], rows, cols, headDim: 64 });
    assert.equal(r.seedPatch, ref.seed_patch, key);
    assert.equal(r.keptAfterThreshold, ref.kept_after_threshold, key);
    assert.equal(r.k, ref.k, key);
    assert.deepEqual(rowRuns(r.patchMask), runsOf(ref.patch_mask_runs), `${key}: patch mask`);
    // d has the reference's sign everywhere (float64 off the rounding band, float32 emulation on it)
    for (let i = 0; i < rows * cols; i++) assert.equal(r.expansion[i] > 0, want.expansion[i] > 0, `${key}: sign of d[${i}]`);
    assert.equal(r.clsSumNonPositive, want.threshold_total <= 0, key);
    const [vh, vw] = ref.resized_hw, [fh, fw] = ref.full_hw;
    const full = backProject(r.patchMask, rows, cols, 16, vw, vh, fw, fh);
    assert.deepEqual(rowRuns(full), runsOf(ref.full_mask_runs), `${key}: full-size mask`);
    assert.equal(full.reduce((a, b) => a + b, 0), ref.full_area, key);
  }
});

test("back-projection of all 20 reference patch masks gives the reference full-size masks", () => {
  const entries = Object.entries<any>(manifest.masks);
  assert.equal(entries.length, 20);
  for (const [key, ref] of entries) {
    const [rows, cols] = ref.grid, [vh, vw] = ref.resized_hw, [fh, fw] = ref.full_hw;
    const patchMask = new Uint8Array(rows * cols);
    for (const [s, n] of runsOf(ref.patch_mask_runs)) patchMask.fill(1, s, s + n);
    const full = backProject(patchMask, rows, cols, 16, vw, vh, fw, fh);
    assert.deepEqual(rowRuns(full), runsOf(ref.full_mask_runs), `${key}: full-size mask`);
  }
});

test("4-connected components: diagonal neighbours are separate, raster-order labels", () => {
  // 1 1 0 0
  // 0 0 1 0      three components: {0,1}, {6}, {11,15,14}
  // 0 0 0 1
  // 0 0 1 1
  const grid = Uint8Array.from([1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 1]);
  const { labels, count } = label4(grid, 4, 4);
  assert.equal(count, 3);
  assert.deepEqual(Array.from(labels), [1, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0, 0, 3, 3]);
  assert.deepEqual(Array.from(componentContaining(grid, 4, 4, 15)), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 1]);
  assert.deepEqual(Array.from(componentContaining(grid, 4, 4, 2)), new Array(16).fill(0));
});

test("torch summation orders: cascade blocks, row_sum interleaving, 8-lane inner sum", () => {
  const big = 16777216; // 2^24: adding 1 to it in float32 is lost
  // cascade: rows 0..15 form one block (2^24 + fifteen lost ones), rows 16..31 another (16), then 2^24 + 16
  const xs = [big, ...new Array(31).fill(1)];
  assert.equal(cascadeSum((i) => xs[i], 32), big + 16);
  // row_sum: partials x0..x3 = 1, the leftover x4 = 2^24 goes into partial 0 and swallows it
  const ys = [1, 1, 1, 1, big];
  assert.equal(rowSum((i) => ys[i], 5), big);
  // inner sum: lane 1 collects three ones (3) before meeting 2^24 -> 2^24 + 3 rounds to 2^24 + 4
  const v = new Float32Array(24);
  v[0] = big;
  v[1] = v[9] = v[17] = 1;
  assert.equal(innerSum(v), big + 4);
});

test("bad input is refused with the problem named", () => {
  const q = new Float32Array(6 * 5 * 4), k = new Float32Array(6 * 5 * 4);
  assert.throws(() => maskFromAttention(q, k, { heads: 6, tokens: 5, rows: 2, cols: 3, headDim: 4 }), /5 tokens but a 2x3 grid needs 7/);
  assert.throws(() => maskFromAttention(q, k.subarray(1), { heads: 6, tokens: 5, rows: 2, cols: 2, headDim: 4 }), /expected 6x5x4=120/);
  assert.throws(() => maskFromAttention(q, k, { heads: 6, tokens: 5, rows: 2, cols: 2, headDim: 4 }, { avgHeads: 7 }), /avgHeads/);
  assert.throws(() => maskFromAttention(q, k, { heads: 6, tokens: 5, rows: 2, cols: 2, headDim: 4 }, { topk: 0.1 }), /selects no patch/);
  assert.throws(() => backProject(new Uint8Array(5), 2, 3, 16, 40, 30, 80, 60), /expected 2x3=6/);
  assert.throws(() => backProject(new Uint8Array(6), 2, 3, 16, 49, 30, 80, 60), /does not fit/);
});
