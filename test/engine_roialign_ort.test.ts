// The inference RoIAlign (wasm/roiAlignOrt.ts: onnxruntime's RoiAlign per pyramid level) against the JS
// kernel it replaces outside gradient tapes (src/instance/roiAlign.ts, itself checked against torchvision
// in roialign.test.ts): both aligned modes, fixed and adaptive sampling, boxes partly or wholly outside
// the map, degenerate boxes, several images, a level with no boxes; and under a tape (the gradient in JS).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initEngine, engineInfo } from "../src/engine/index.js";
import { roiAlignLevels } from "../src/engine/roiAlign.js";
import { roiAlignOrtTuning } from "../src/engine/wasm/roiAlignOrt.js";
import { seededRng, normalArray } from "../src/engine/models/params.js";
import { relError } from "./helpers.js";

const TOL = 1e-5;

function pooled(on: boolean, features: tf.Tensor4D[], boxes: tf.Tensor2D, boxIndex: tf.Tensor1D, levels: tf.Tensor1D, scales: number[],
    params: { outputSize: [number, number]; samplingRatio: number; aligned: boolean }): Float32Array {
  roiAlignOrtTuning.enabled = on;
  try {
    return tf.tidy(() => roiAlignLevels(features, boxes, boxIndex, levels, scales, params).dataSync() as Float32Array).slice();
  } finally {
    roiAlignOrtTuning.enabled = true;
  }
}

test("onnxruntime RoiAlign equals the JS RoIAlign over a pyramid (aligned or not, fixed or adaptive sampling, odd boxes)", async () => {
  await initEngine({ backend: "wasm", threads: 2 });
  assert.equal(engineInfo().gemm, "onnxruntime");
  const rng = seededRng(31);
  const C = 6, N = 2, sizes = [[40, 56], [20, 28], [10, 14]], scales = [1 / 4, 1 / 8, 1 / 16];
  const features = sizes.map(([h, w]) => tf.tensor4d(normalArray(rng, N * h * w * C, 1), [N, h, w, C]));
  const raw: number[] = [], image: number[] = [], level: number[] = [];
  for (let k = 0; k < 40; k++) {
    const x1 = rng() * 260 - 20, y1 = rng() * 190 - 20;
    const wide = k % 10 === 0 ? 0.3 : rng() * 120;   // some boxes under one cell
    raw.push(x1, y1, x1 + wide, y1 + (k % 7 === 0 ? 0 : rng() * 90));
    image.push(k % N);
    level.push(k % 2 === 0 ? 0 : 2);   // level 1 gets no box
  }
  raw.push(-80, -80, -60, -60); image.push(0); level.push(0);   // wholly outside the map: zeros
  const boxes = tf.tensor2d(raw, [raw.length / 4, 4]), boxIndex = tf.tensor1d(image, "int32"), levels = tf.tensor1d(level, "int32");
  for (const aligned of [false, true]) {
    for (const samplingRatio of [2, 0]) {
      for (const outputSize of [[7, 7], [14, 14]] as [number, number][]) {
        const params = { outputSize, samplingRatio, aligned };
        const calls = roiAlignOrtTuning.calls;
        const ort = pooled(true, features, boxes, boxIndex, levels, scales, params);
        assert.equal(roiAlignOrtTuning.calls, calls + 1, "the onnxruntime path ran");
        const js = pooled(false, features, boxes, boxIndex, levels, scales, params);
        assert.equal(roiAlignOrtTuning.calls, calls + 1, "the JS kernel ran");
        const e = relError(ort, js);
        assert.ok(e <= TOL, `aligned ${aligned}, sampling ${samplingRatio}, ${outputSize}: rel. error ${e}`);
        const last = ort.subarray(ort.length - outputSize[0] * outputSize[1] * C);
        assert.ok(last.every((v) => v === 0), "a box outside the map pools zeros");
      }
    }
  }
  // under a gradient tape (training) the forward pass takes onnxruntime too; the gradient, in JS, is the same either way
  const params = { outputSize: [7, 7] as [number, number], samplingRatio: 2, aligned: false };
  const gradient = (on: boolean): [number, Float32Array] => {
    roiAlignOrtTuning.enabled = on;
    try {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(roiAlignLevels([v, features[1], features[2]], boxes, boxIndex, levels, scales, params), weights)) as tf.Scalar, [v]);
      const out: [number, Float32Array] = [value.dataSync()[0], (grads[v.name].dataSync() as Float32Array).slice()];
      tf.dispose([value, ...Object.values(grads)]);
      return out;
    } finally {
      roiAlignOrtTuning.enabled = true;
    }
  };
  const v = tf.variable(features[0]);
  const weights = tf.randomNormal([raw.length / 4, 7, 7, C], 0, 1, "float32", 5);
  const before = roiAlignOrtTuning.calls;
  const [lossOrt, gOrt] = gradient(true);
  assert.equal(roiAlignOrtTuning.calls, before + 1, "onnxruntime's RoiAlign ran under the tape");
  const [lossJs, gJs] = gradient(false);
  assert.ok(Math.abs(lossOrt - lossJs) <= 1e-4 * Math.abs(lossJs), `loss ${lossOrt} vs ${lossJs}`);
  assert.deepEqual(Array.from(gOrt), Array.from(gJs), "the same gradient, bit for bit");
  assert.ok(gJs.some((x) => x !== 0));
  tf.dispose([...features, boxes, boxIndex, levels, v, weights]);
});
