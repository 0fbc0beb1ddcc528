// RoIAlign against torchvision.ops.roi_align (forward and gradient; test/fixtures/roialign, made by
// tools/make-roialign-fixtures.py with Debian's python3-torchvision 0.14): both `aligned` modes, fixed
// and adaptive sampling, boxes outside the map, sub-cell and degenerate boxes. Tolerance: 1e-5 of the
// largest magnitude (float32 sums in another order). Then the tfjs op on the cpu and wasm backends.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { projectPath } from "../src/paths.js";
import { roiAlignBackward, roiAlignForward, type MapShape, type RoiAlignParams } from "../src/instance/roiAlign.js";
import { roiAlign } from "../src/engine/roiAlign.js";
import { initEngine } from "../src/engine/index.js";
import { relError } from "./helpers.js";

interface Case {
  name: string; input_shape: [number, number, number, number]; output_size: [number, number]; spatial_scale: number;
  sampling_ratio: number; aligned: boolean; input: number[]; rois: number[][]; output: number[]; grad_output: number[]; grad_input: number[];
}
const cases: Case[] = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "roialign", "roialign.json"), "utf8")).cases;
const TOL = 1e-5;

/** NCHW (PyTorch) → NHWC (our layout), for a [A, C, B1, B2] array. */
function toNhwc(v: ArrayLike<number>, [a, c, h, w]: number[]): Float32Array {
  const out = new Float32Array(a * c * h * w);
  for (let n = 0; n < a; n++) for (let ch = 0; ch < c; ch++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    out[((n * h + y) * w + x) * c + ch] = v[((n * c + ch) * h + y) * w + x];
  }
  return out;
}

function caseArgs(c: Case) {
  const [N, C, H, W] = c.input_shape;
  const K = c.rois.length, [ph, pw] = c.output_size;
  const params: RoiAlignParams = { outputSize: [ph, pw], spatialScale: c.spatial_scale, samplingRatio: c.sampling_ratio, aligned: c.aligned };
  return {
    shape: [N, H, W, C] as MapShape, params, K,
    input: toNhwc(c.input, c.input_shape),
    boxes: Float32Array.from(c.rois.flatMap((r) => r.slice(1))),
    boxIndex: Int32Array.from(c.rois.map((r) => r[0])),
    output: toNhwc(c.output, [K, C, ph, pw]),
    dy: toNhwc(c.grad_output, [K, C, ph, pw]),
    dx: toNhwc(c.grad_input, c.input_shape),
  };
}

test("fixture covers both aligned modes, fixed and adaptive sampling, and boxes outside the map", () => {
  assert.equal(cases.length, 8);
  assert.ok(cases.some((c) => c.aligned && c.sampling_ratio === 0) && cases.some((c) => !c.aligned && c.sampling_ratio === 2));
  // the wholly-outside box (second last of each case) pools to exactly 0 in torchvision
  const c = caseArgs(cases[0]);
  const k = c.K - 2, n = cases[0].output_size[0] * cases[0].output_size[1] * cases[0].input_shape[1];
  assert.ok(c.output.subarray(k * n, (k + 1) * n).every((v) => v === 0));
});

for (const c of cases) {
  test(`roiAlign forward and gradient = torchvision (${c.name})`, (t) => {
    const a = caseArgs(c);
    const out = roiAlignForward(a.input, a.shape, a.boxes, a.boxIndex, a.params);
    t.diagnostic(`forward ${relError(out, a.output).toExponential(2)}, gradient ${relError(roiAlignBackward(a.dy, a.shape, a.boxes, a.boxIndex, a.params), a.dx).toExponential(2)}`);
    assert.ok(relError(out, a.output) <= TOL, `forward: relative error ${relError(out, a.output)}`);
    const dx = roiAlignBackward(a.dy, a.shape, a.boxes, a.boxIndex, a.params);
    assert.ok(relError(dx, a.dx) <= TOL, `gradient: relative error ${relError(dx, a.dx)}`);
  });
}

for (const backend of ["cpu", "wasm"] as const) {
  test(`tfjs op on the ${backend} backend: forward and tf.grad equal torchvision`, async () => {
    if (backend === "cpu") await tf.setBackend("cpu"); else await initEngine({ backend: "wasm", threads: 1 });
    assert.equal(tf.getBackend(), backend);
    for (const c of [cases[0], cases[1], cases[4]]) {
      const a = caseArgs(c);
      const before = tf.memory().numTensors;
      const x = tf.tensor4d(a.input, [...a.shape]);
      const boxes = tf.tensor2d(a.boxes, [a.K, 4]);
      const boxIndex = tf.tensor1d(a.boxIndex, "int32");
      const dyT = tf.tensor4d(a.dy, [a.K, c.output_size[0], c.output_size[1], a.shape[3]]);
      const y = roiAlign(x, boxes, boxIndex, a.params);
      // d/dx Σ y·dy is the vector-Jacobian product torchvision's backward computes for grad_output dy
      const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(roiAlign(xi as tf.Tensor4D, boxes, boxIndex, a.params), dyT)))(x);
      assert.ok(relError(await y.data(), a.output) <= TOL, `${c.name} forward`);
      assert.ok(relError(await dx.data(), a.dx) <= TOL, `${c.name} gradient`);
      tf.dispose([x, boxes, boxIndex, dyT, y, dx]);
      assert.equal(tf.memory().numTensors, before, "no tensor leaks");
    }
  });
}

test("bad arguments name the problem", () => {
  const shape: MapShape = [1, 4, 4, 1], p: RoiAlignParams = { outputSize: [2, 2], spatialScale: 1, samplingRatio: 0, aligned: true };
  assert.throws(() => roiAlignForward(new Float32Array(16), shape, [0, 0, 2, 2], [1], p), /box 0 refers to image 1; the batch has 1/);
  assert.throws(() => roiAlignForward(new Float32Array(16), shape, [0, 0, 2], [0], p), /boxes but 1 box indices/);
  assert.throws(() => roiAlignForward(new Float32Array(16), shape, [0, 0, 2, 2], [0], { ...p, samplingRatio: -1 }), /sampling ratio/);
});

test("roiAlignLevels (MultiScaleRoIAlign's pooling in one pass) = per-level roiAlign in box order; its gradient reaches every level", async () => {
  const { roiAlignLevels } = await import("../src/engine/roiAlign.js");
  await initEngine({ backend: "wasm", threads: 1 });
  const f0 = tf.randomNormal([1, 16, 12, 3], 0, 1, "float32", 1) as tf.Tensor4D, f1 = tf.randomNormal([1, 8, 6, 3], 0, 1, "float32", 2) as tf.Tensor4D;
  const boxes = Float32Array.from([4, 4, 30, 40, 0, 0, 47, 63, 10, 2, 20, 12, 33, 20, 46, 60]);
  const levels = Int32Array.from([1, 1, 0, 0]), bi = new Int32Array(4);
  const p = { outputSize: [3, 3] as [number, number], samplingRatio: 2, aligned: false };
  const scales = [0.25, 0.125];
  // the JS kernel, bit for bit (inference on wasm otherwise takes onnxruntime's RoiAlign: engine_roialign_ort.test.ts)
  const { roiAlignOrtTuning } = await import("../src/engine/wasm/roiAlignOrt.js");
  roiAlignOrtTuning.enabled = false;
  const joint = roiAlignLevels([f0, f1], tf.tensor2d(boxes, [4, 4]), tf.tensor1d(bi, "int32"), tf.tensor1d(levels, "int32"), scales, p);
  roiAlignOrtTuning.enabled = true;
  const jd = await joint.data();
  for (let k = 0; k < 4; k++) {
    const one = roiAlign([f0, f1][levels[k]], tf.tensor2d(boxes.slice(4 * k, 4 * k + 4), [1, 4]), tf.tensor1d([0], "int32"), { ...p, spatialScale: scales[levels[k]] });
    assert.deepEqual(Array.from(jd.slice(k * 27, (k + 1) * 27)), Array.from(await one.data()));
  }
  const [g0, g1] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(roiAlignLevels([a as tf.Tensor4D, b as tf.Tensor4D], tf.tensor2d(boxes, [4, 4]), tf.tensor1d(bi, "int32"), tf.tensor1d(levels, "int32"), scales, p)))([f0, f1]);
  // every pooled value is a mean of bilinear weights summing to 1 (boxes inside the map): Σ dx = 3·3 bins × 3 channels per box
  const s0 = (await tf.sum(g0).data())[0], s1 = (await tf.sum(g1).data())[0];
  assert.ok(Math.abs(s0 - 54) < 1e-3 && Math.abs(s1 - 54) < 1e-3, `gradient sums ${s0}, ${s1}`);
});
