// The inference conv (wasm/convOrt.ts: an onnxruntime Conv session per filter tensor) against the
// im2col + GEMM conv it replaces outside gradient tapes (wasm/convGemm.ts), and its session cache:
// used only when no tape records, rebuilt when a variable is assigned, dropped with its filter; and
// the inference conv unit (ops.ts inferenceConv: conv + bias or frozen BN + ReLU) against the separate ops.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initEngine, engineInfo, batchNormFrozen } from "../src/engine/index.js";
import { inferenceConv } from "../src/engine/ops.js";
import { seededRng, normalArray } from "../src/engine/models/params.js";
import { relError } from "./helpers.js";
import { convOrtTuning, cachedConvSessions } from "../src/engine/wasm/convOrt.js";

const TOL = 1e-5;
const rng = seededRng(13);
const randn = (shape: number[]) => tf.tensor(normalArray(rng, shape.reduce((a, b) => a * b, 1), 1), shape);

/** conv2d with the onnxruntime session path on or off. */
function conv(on: boolean, x: tf.Tensor4D, w: tf.Tensor4D, s: number, pad: "same" | "valid" | number, d = 1): Float32Array {
  convOrtTuning.enabled = on;
  try {
    return tf.tidy(() => tf.conv2d(x, w, s, pad, "NHWC", d).dataSync() as Float32Array).slice();
  } finally {
    convOrtTuning.enabled = true;
  }
}

test("onnxruntime Conv sessions equal the im2col conv (strides, padding, dilation, 1×1, 7×7, batches)", async () => {
  await initEngine({ backend: "wasm", threads: 2 });
  assert.equal(engineInfo().gemm, "onnxruntime");
  const cases: { n: number; h: number; w: number; ci: number; co: number; k: number; s: number; pad: "same" | "valid" | number; d: number; ort: boolean }[] = [
    { n: 1, h: 20, w: 27, ci: 32, co: 48, k: 3, s: 1, pad: 1, d: 1, ort: true },          // FPN / RPN 3×3
    { n: 5, h: 14, w: 14, ci: 24, co: 16, k: 3, s: 1, pad: 1, d: 1, ort: true },          // mask head: batch of RoIs
    { n: 2, h: 21, w: 18, ci: 16, co: 24, k: 3, s: 2, pad: 1, d: 1, ort: true },          // strided bottleneck 3×3
    { n: 1, h: 33, w: 30, ci: 3, co: 16, k: 7, s: 2, pad: 3, d: 1, ort: true },           // ResNet stem
    { n: 2, h: 15, w: 17, ci: 40, co: 20, k: 1, s: 2, pad: 0, d: 1, ort: true },          // strided 1×1 (downsample)
    { n: 2, h: 19, w: 16, ci: 20, co: 12, k: 3, s: 1, pad: 2, d: 2, ort: true },          // dilated, "same"-sized
    { n: 1, h: 16, w: 13, ci: 12, co: 8, k: 3, s: 2, pad: "same", d: 1, ort: true },      // asymmetric "same" padding
    { n: 3, h: 12, w: 11, ci: 16, co: 8, k: 3, s: 1, pad: "valid", d: 1, ort: true },
    { n: 2, h: 10, w: 10, ci: 64, co: 32, k: 1, s: 1, pad: 0, d: 1, ort: false },         // plain 1×1: one GEMM either way
    { n: 1, h: 8, w: 8, ci: 16, co: 8, k: 3, s: 1, pad: 6, d: 6, ort: false },            // mostly padding: per-tap GEMMs
  ];
  for (const c of cases) {
    const label = `n${c.n} ${c.h}×${c.w} ${c.ci}→${c.co} k${c.k} s${c.s} p${c.pad} d${c.d}`;
    const x = randn([c.n, c.h, c.w, c.ci]) as tf.Tensor4D, w = randn([c.k, c.k, c.ci, c.co]) as tf.Tensor4D;
    const before = cachedConvSessions();
    const ort = conv(true, x, w, c.s, c.pad, c.d);
    assert.equal(cachedConvSessions() - before, c.ort ? 1 : 0, `${label}: session made`);
    const again = conv(true, x, w, c.s, c.pad, c.d);
    assert.equal(cachedConvSessions() - before, c.ort ? 1 : 0, `${label}: session reused`);
    assert.deepEqual(again, ort, label);
    const e = relError(ort, conv(false, x, w, c.s, c.pad, c.d));
    assert.ok(e <= TOL, `${label}: relative error ${e.toExponential(2)}`);
    tf.dispose([x, w]);
  }
});

test("conv sessions: none under a gradient tape, a new one after assign, dropped with their filter", async () => {
  await initEngine({ backend: "wasm", threads: 2 });
  const x = randn([2, 9, 11, 8]) as tf.Tensor4D;
  const v = tf.tidy(() => tf.variable(randn([3, 3, 8, 6])));
  const n0 = cachedConvSessions();
  tf.tidy(() => tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 1, "same"))))([x, v]));
  assert.equal(cachedConvSessions(), n0, "training forward stays on the im2col path");

  const y1 = conv(true, x, v as unknown as tf.Tensor4D, 1, "same");
  assert.equal(cachedConvSessions(), n0 + 1);
  tf.tidy(() => v.assign(tf.mul(v, -2)));
  const y2 = conv(true, x, v as unknown as tf.Tensor4D, 1, "same");
  assert.ok(relError(y2, y1.map((t) => -2 * t)) <= TOL, "assigned weights are used");
  assert.ok(relError(y2, conv(false, x, v as unknown as tf.Tensor4D, 1, "same")) <= TOL);

  // The next session made drops those of filters that are gone (the old value of v included).
  v.dispose();
  const w = randn([3, 3, 8, 6]) as tf.Tensor4D;
  conv(true, x, w, 1, "same");
  assert.equal(cachedConvSessions(), n0 + 1, "only the live filter keeps its session");
  tf.dispose([x, w]);
});

test("inferenceConv (conv + bias or frozen batch norm + ReLU in one session) equals the separate ops", async () => {
  await initEngine({ backend: "wasm", threads: 2 });
  const cases = [
    { n: 1, h: 17, w: 20, ci: 24, co: 32, k: 3, s: 1, pad: 1, d: 1 },
    { n: 2, h: 15, w: 13, ci: 16, co: 24, k: 3, s: 2, pad: 1, d: 1 },
    { n: 2, h: 11, w: 9, ci: 32, co: 48, k: 1, s: 2, pad: 0, d: 1 },
    { n: 1, h: 13, w: 12, ci: 16, co: 8, k: 3, s: 1, pad: 2, d: 2 },
  ];
  for (const c of cases) {
    const x = randn([c.n, c.h, c.w, c.ci]) as tf.Tensor4D, w = randn([c.k, c.k, c.ci, c.co]) as tf.Tensor4D;
    const bias = randn([c.co]) as tf.Tensor1D;
    const bn = {
      gamma: randn([c.co]) as tf.Tensor1D, beta: randn([c.co]) as tf.Tensor1D, mean: randn([c.co]) as tf.Tensor1D,
      variance: tf.tidy(() => tf.add(tf.abs(randn([c.co])), 0.5)) as tf.Tensor1D, eps: 1e-5,
    };
    for (const relu of [false, true]) {
      const label = `n${c.n} ${c.h}×${c.w} ${c.ci}→${c.co} k${c.k} s${c.s} d${c.d} relu ${relu}`;
      const geometry = { stride: c.s, pad: c.pad, dilation: c.d };
      const act = (t: tf.Tensor) => (relu ? tf.relu(t) : t);
      const fusedBias = tf.tidy(() => inferenceConv(x, w, geometry, { bias }, relu)?.dataSync().slice());
      const fusedBn = tf.tidy(() => inferenceConv(x, w, geometry, bn, relu)?.dataSync().slice());
      assert.ok(fusedBias && fusedBn, `${label}: the fused kernel applies`);
      assert.equal(tf.tidy(() => inferenceConv(x, randn([1, 1, c.ci, c.co]) as tf.Tensor4D, { stride: 1, pad: 0 }, { bias }, relu)), undefined, "1×1 stride 1 stays separate");
      assert.equal(tf.tidy(() => tf.grad((a: tf.Tensor) => { assert.equal(inferenceConv(a as tf.Tensor4D, w, geometry, { bias }, relu), undefined); return tf.sum(a); })(x)).size, x.size);
      const refBias = tf.tidy(() => act(tf.add(tf.conv2d(x, w, c.s, c.pad, "NHWC", c.d), bias)).dataSync().slice());
      const refBn = tf.tidy(() => act(batchNormFrozen(tf.conv2d(x, w, c.s, c.pad, "NHWC", c.d), bn.gamma, bn.beta, bn.mean, bn.variance, bn.eps)).dataSync().slice());
      for (const [got, want, what] of [[fusedBias, refBias, "bias"], [fusedBn, refBn, "frozen BN"]] as const) {
        const e = relError(got, want);
        assert.ok(e <= TOL, `${label} ${what}: relative error ${e.toExponential(2)}`);
      }
    }
    tf.dispose([x, w, bias, bn.gamma, bn.beta, bn.mean, bn.variance]);
  }
});
