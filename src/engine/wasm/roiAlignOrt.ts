// RoIAlign over a feature pyramid for inference, on onnxruntime's RoiAlign (C++, boxes spread over the
// MLAS threads), where the JS kernel (src/instance/roiAlign.ts) runs on one thread: 1.0 s of a 9 s
// Mask R-CNN call at short side 800. Same arithmetic: onnxruntime's kernel is Caffe2's RoIAlign, as
// torchvision's — boxes scaled in float32, extents at least 1 cell unless aligned ("output_half_pixel" =
// torchvision aligned=False, "half_pixel" = aligned=True), sampling_ratio 0 = adaptive, points beyond one
// cell outside the map count as 0, the mean over the bin's samples. Per level, the boxes of that level
// run through one session (NHWC in and out, transposed inside the graph) and are scattered back into
// box order. Under a gradient tape too (training): the gradient kernel stays in JS and rebuilds the
// samples itself, so it never reads the forward pass's values (the two agree to 1e-5, tested).
import * as tf from "@tensorflow/tfjs";
import { alloc, f32, release, type WasmBackend } from "./backend.js";
import { gemmProvider, ortRun, ortSession } from "./gemm.js";
import { createGraph, DataType, float } from "../../modeling/onnx/graph.js";
import type { RoiAlignParams } from "../../instance/roiAlign.js";

/** For the tests: `enabled: false` keeps every RoIAlign on the JS kernel; `calls` counts the onnxruntime ones. */
export const roiAlignOrtTuning = { enabled: true, calls: 0 };

/** Whether a forward RoIAlign on wasm runs through onnxruntime. */
export function useOrtRoiAlign(): boolean {
  return roiAlignOrtTuning.enabled && gemmProvider().provider === "onnxruntime";
}

/** X [n, h, w, C] (NHWC), R [k, 4] boxes in image pixels, I [k] image index (float) → Y [k, ph, pw, C]. */
function roiAlignModel(p: Omit<RoiAlignParams, "spatialScale">, scale: number, channels: number): Uint8Array {
  const [ph, pw] = p.outputSize;
  const g = createGraph("roi_align_nhwc");
  g.input("X", DataType.FLOAT, ["n", "h", "w", channels]);
  g.input("R", DataType.FLOAT, ["k", 4]);
  g.input("I", DataType.FLOAT, ["k"]);
  const y = g.op("RoiAlign", [g.op("Transpose", ["X"], { perm: [0, 3, 1, 2] }), "R", g.op("Cast", ["I"], { to: DataType.INT64 })], {
    mode: "avg", output_height: ph, output_width: pw, sampling_ratio: p.samplingRatio, spatial_scale: float(scale),
    coordinate_transformation_mode: p.aligned ? "half_pixel" : "output_half_pixel",
  });
  g.node("Transpose", [y], { perm: [0, 2, 3, 1] }, ["Y"]);
  g.output("Y", DataType.FLOAT, ["k", ph, pw, channels]);
  return g.encode();
}

/** roiAlignForwardLevels through onnxruntime: box k from `xs[levels[k]]` at `scales[levels[k]]` → [K, ph, pw, C] in box order. */
export function roiAlignLevelsOrt(b: WasmBackend, xs: tf.TensorInfo[], scales: number[], boxes: ArrayLike<number>,
    boxIndex: ArrayLike<number>, levels: ArrayLike<number>, p: Omit<RoiAlignParams, "spatialScale">): tf.TensorInfo {
  roiAlignOrtTuning.calls++;
  // plain copies: heap views would detach when the allocations below grow the heap
  const box = Float32Array.from(boxes), image = Float32Array.from(boxIndex), level = Int32Array.from(levels);
  const K = image.length, C = xs[0].shape[3], [ph, pw] = p.outputSize, per = ph * pw * C;
  const out = alloc(b, [K, ph, pw, C]);
  for (let l = 0; l < xs.length; l++) {
    const members: number[] = [];
    for (let k = 0; k < K; k++) if (level[k] === l) members.push(k);
    if (members.length === 0) continue;
    const m = members.length;
    const r = alloc(b, [m, 4]), ii = alloc(b, [m]), y = alloc(b, [m, ph, pw, C]);
    const rv = f32(b, r), iv = f32(b, ii);
    members.forEach((k, j) => { rv.set(box.subarray(4 * k, 4 * k + 4), 4 * j); iv[j] = image[k]; });
    const key = `roialign_${ph}x${pw}_s${p.samplingRatio}_a${p.aligned ? 1 : 0}_x${scales[l]}_c${C}`;
    ortRun(b, ortSession(key, () => roiAlignModel(p, scales[l], C), { memArena: false }), { X: xs[l], R: r, I: ii }, { Y: y });
    const yv = f32(b, y), ov = f32(b, out);
    members.forEach((k, j) => ov.set(yv.subarray(j * per, (j + 1) * per), k * per));
    release(b, r, ii, y);
  }
  return out;
}
