// Sum and Mean over leading axes (the channel reductions of batch norm and of bias gradients).
//
// The stock wasm kernels reduce only innermost axes, so for axes [0, 1, 2] of an NHWC tensor they
// first run the slow C++ Transpose. A reduction over leading axes of x viewed as [M, C] is a column
// sum, done here in one streaming pass with float64 accumulators. (A matrix-vector product
// ones[1, M]·x[M, C] through XNNPACK looks cheaper but makes it repack — transpose — x as weights.)
// With the onnxruntime provider the column sum is an onnxruntime ReduceSum/ReduceMean over a view of
// the heap (vectorised, on MLAS's threads). Any other reduction goes to the stock kernel.
import * as tf from "@tensorflow/tfjs";
import { WasmBackend, KernelArgs, alloc, runStock, heapF32, elementIndex, size } from "./backend.js";
import { createGraph, DataType } from "../../modeling/onnx/graph.js";
import { gemmProvider, ortSession, ortRun } from "./gemm.js";

/** X [m, c] → Y [c]: the sum or mean over rows. */
function columnModel(name: "Sum" | "Mean"): Uint8Array {
  const g = createGraph(`column_${name}`);
  g.input("X", DataType.FLOAT, ["m", "c"]);
  if (name === "Sum") g.node("ReduceSum", ["X", g.constInt64([0])], { keepdims: 0 }, ["Y"]);
  else g.node("ReduceMean", ["X"], { axes: [0], keepdims: 0 }, ["Y"]);
  g.output("Y", DataType.FLOAT, ["c"]);
  return g.encode();
}

function leadingCount(axes: number[], rank: number): number {
  const sorted = [...new Set(axes)].sort((a, b) => a - b);
  for (let i = 0; i < sorted.length; i++) if (sorted[i] !== i) return 0;
  return sorted.length < rank ? sorted.length : 0;   // all axes: the stock kernel needs no transpose
}

function channelReduction(name: "Sum" | "Mean") {
  return ({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo => {
    const b = backend as WasmBackend;
    const x = inputs.x!;
    const axes = tf.util.parseAxisParam(attrs!.axis as number | number[], x.shape);
    const k = leadingCount(axes, x.shape.length);
    if (x.dtype !== "float32" || k === 0) return runStock(b, name, inputs, attrs);
    const m = size(x.shape.slice(0, k)), rest = x.shape.slice(k), c = size(rest);
    if (m === 0 || c === 0) return runStock(b, name, inputs, attrs);
    const out = alloc(b, attrs!.keepDims ? [...x.shape.slice(0, k).map(() => 1), ...rest] : rest);
    if (gemmProvider().provider === "onnxruntime") {
      ortRun(b, ortSession(`column_${name}`, () => columnModel(name)), { X: [x, [m, c]] }, { Y: [out, [c]] });
      return out;
    }
    const heap = heapF32(b);
    const acc = new Float64Array(c);
    let src = elementIndex(b, x);
    for (let r = 0; r < m; r++, src += c) {
      for (let j = 0; j < c; j++) acc[j] += heap[src + j];
    }
    const scale = name === "Mean" ? 1 / m : 1;
    const dst = elementIndex(b, out);
    for (let j = 0; j < c; j++) heap[dst + j] = acc[j] * scale;
    return out;
  };
}

export const reduceKernels: Array<{ name: string; kernelFunc: (a: KernelArgs) => tf.TensorInfo }> = [
  { name: "Sum", kernelFunc: channelReduction("Sum") },
  { name: "Mean", kernelFunc: channelReduction("Mean") },
];
