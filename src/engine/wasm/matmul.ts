// Matrix products on the fast path.
//
// tfjs-wasm 4.22's BatchMatMul uses XNNPACK only for a single matrix product without transpose
// flags; with transposeA/transposeB or a batch dimension it runs a naive triple loop (10–40× slower:
// [4096,256]ᵀ·[4096,64] takes 74 ms against 4 ms). We run every product through gemm.ts: with the
// onnxruntime provider a batched product is one batched MatMul call (attention makes hundreds of
// tiny products per layer), a single one a Gemm; with XNNPACK, a batched product is split into
// products over zero-copy views of each matrix, or, when b is shared by the batch and a is not
// transposed, a's matrices are stacked into one product.
// _FusedMatMul (tf.layers Dense) keeps the stock kernel on flag-free operands.
import * as tf from "@tensorflow/tfjs";
import { WasmBackend, KernelArgs, aliasAt, alloc, release, reshaped, runStock, size } from "./backend.js";
import { transposeHeap } from "./layout.js";
import { gemm, gemmBatched, gemmProvider } from "./gemm.js";

function swapLastTwo(rank: number): number[] {
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return perm;
}

/** op(a) [..., m, k] · op(b) [..., k, n] for float32 operands with broadcastable batch dimensions. */
function batchedProduct(b: WasmBackend, a: tf.TensorInfo, bm: tf.TensorInfo, transA: boolean, transB: boolean): tf.TensorInfo | undefined {
  const batchA = size(a.shape.slice(0, -2)), batchB = size(bm.shape.slice(0, -2));
  const [ar, ac] = a.shape.slice(-2), [br, bc] = bm.shape.slice(-2);
  const m = transA ? ac : ar, k = transA ? ar : ac, n = transB ? br : bc;
  if ((transB ? bc : br) !== k) return undefined;                     // let the stock kernel report it
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return undefined;
  const outShape = [...tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), bm.shape.slice(0, -2)), m, n];
  if (batchB === 1 && !transA) {
    const a2 = reshaped(b, a, [batchA * m, k]), b2 = reshaped(b, bm, [br, bc]);
    const out = gemm(b, a2, b2, { transB });
    release(b, a2, b2);
    out.shape = outShape;
    return out;
  }
  const batch = Math.max(batchA, batchB);
  const out = alloc(b, outShape);
  if (gemmProvider().provider === "onnxruntime" && batch > 1) {
    // As [batch, rows, cols], transposed in their last two axes where flagged.
    const as3 = (t: tf.TensorInfo, batchT: number, rows: number, cols: number, trans: boolean) => {
      const r = reshaped(b, t, [batchT, rows, cols]);
      if (!trans) return r;
      const tt = transposeHeap(b, r, [0, 2, 1]);
      release(b, r);
      return tt;
    };
    const a3 = as3(a, batchA, ar, ac, transA), b3 = as3(bm, batchB, br, bc, transB);
    const o3 = reshaped(b, out, [batch, m, n]);
    gemmBatched(b, a3, b3, o3);
    release(b, o3, a3, b3);
    return out;
  }
  for (let i = 0; i < batch; i++) {
    const av = aliasAt(b, a, (batchA === 1 ? 0 : i) * ar * ac, [ar, ac]);
    const bv = aliasAt(b, bm, (batchB === 1 ? 0 : i) * br * bc, [br, bc]);
    const ov = aliasAt(b, out, i * m * n, [m, n]);
    gemm(b, av, bv, { transA, transB, out: ov });
    release(b, ov, bv, av);
  }
  return out;
}

function batchMatMulKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const b = backend as WasmBackend;
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const a = inputs.a!, bm = inputs.b!;
  const out = a.dtype === "float32" && bm.dtype === "float32" ? batchedProduct(b, a, bm, transposeA, transposeB) : undefined;
  return out ?? runStock(b, "BatchMatMul", inputs, attrs);
}

function fusedMatMulKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const b = backend as WasmBackend;
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  const temps: tf.TensorInfo[] = [];
  let a = inputs.a!, bm = inputs.b!;
  if (transposeA) temps.push(a = transposeHeap(b, a, swapLastTwo(a.shape.length)));
  if (transposeB) temps.push(bm = transposeHeap(b, bm, swapLastTwo(bm.shape.length)));
  const out = runStock(b, "_FusedMatMul", { ...inputs, a, b: bm }, { ...attrs, transposeA: false, transposeB: false });
  release(b, ...temps);
  return out;
}

export const matMulKernels: Array<{ name: string; kernelFunc: (a: KernelArgs) => tf.TensorInfo }> = [
  { name: "BatchMatMul", kernelFunc: batchMatMulKernel },
  { name: "_FusedMatMul", kernelFunc: fusedMatMulKernel },
];
