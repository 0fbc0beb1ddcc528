// The engine's wasm kernels and gradients against the tfjs cpu backend (stock kernels, stock
// gradients), on random inputs over strides, paddings, dilations, odd sizes and batch sizes.
// Error measure: max |wasm − ref| / max |ref| ≤ 1e-5 (layout kernels: exact).
// Defined once, run by two test files (one process each, because the wasm build is fixed per
// process): engine_kernels.test.ts with the onnxruntime GEMM provider (single-threaded wasm, MLAS
// with 2 threads; every way gemm.ts can treat transposed operands, and chunked im2col), and
// engine_kernels_xnnpack.test.ts with XNNPACK on the threaded wasm build (2 threads).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initEngine, engineInfo } from "../src/engine/index.js";
import { MaskdistillError } from "../src/errors.js";
import { seededRng, normalArray } from "../src/engine/models/params.js";
import { batchNormTrain, layerNorm, gelu } from "../src/engine/ops.js";
import { gemmTuning } from "../src/engine/wasm/gemm.js";
import { convGemmTuning } from "../src/engine/wasm/convGemm.js";

const TOL = 1e-5;
const rng = seededRng(2024);
const randInt = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
const worst: Record<string, number> = {};

function relErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length, "lengths differ");
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]));
    den = Math.max(den, Math.abs(want[i]));
  }
  return den === 0 ? num : num / den;
}

/** Runs f on the cpu backend and on wasm (fresh tensors from the same arrays); returns each output's data. */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<{ cpu: Float32Array[]; wasm: Float32Array[] }> {
  const out: Record<string, Float32Array[]> = {};
  for (const backend of ["cpu", "wasm"]) {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const res = tf.tidy(f);
    const list = Array.isArray(res) ? res : [res];
    out[backend] = await Promise.all(list.map(async (t) => Float32Array.from(await t.data() as ArrayLike<number>)));
    tf.dispose(list);
    assert.equal(tf.memory().numTensors, before, `tensors leaked on ${backend}`);
  }
  return { cpu: out.cpu, wasm: out.wasm };
}

async function check(name: string, f: () => tf.Tensor | tf.Tensor[], tol = TOL): Promise<void> {
  const { cpu, wasm } = await onBoth(f);
  cpu.forEach((ref, i) => {
    const e = relErr(wasm[i], ref);
    const key = name.split(" ")[0];
    worst[key] = Math.max(worst[key] ?? 0, e);
    assert.ok(e <= tol, `${name} [output ${i}]: relative error ${e.toExponential(2)} > ${tol}`);
  });
}

const randn = (shape: number[]) => normalArray(rng, shape.reduce((a, b) => a * b, 1), 1);

export type GemmChoice = "onnxruntime" | "xnnpack";

/** The ways gemm.ts may treat a product with transposed operands (the provider picks one by size). */
const FLAG_STRATEGIES = ["auto", "flags", "transpose", "transposeResult"] as const;

/** Runs `f` once per flag strategy (onnxruntime) or once (xnnpack), restoring the defaults after. */
async function eachStrategy(gemm: GemmChoice, f: (label: string) => Promise<void>): Promise<void> {
  const strategies = gemm === "onnxruntime" ? FLAG_STRATEGIES : (["auto"] as const);
  try {
    for (const st of strategies) {
      gemmTuning.flagStrategy = st;
      await f(gemm === "onnxruntime" ? ` [${st}]` : "");
    }
  } finally {
    gemmTuning.flagStrategy = "auto";
  }
}

export function defineEngineKernelTests(gemm: GemmChoice): void {
  test(`initEngine starts wasm with SIMD and the ${gemm} GEMM provider, and is idempotent`, async () => {
    const t = await initEngine({ backend: "wasm", threads: 2, gemm });
    assert.equal(t, tf);
    const info = engineInfo();
    assert.equal(info.backend, "wasm");
    assert.equal(info.threads, 2);
    assert.equal(info.gemm, gemm);
    // onnxruntime-node needs a plain ArrayBuffer heap: the single-threaded wasm build.
    assert.equal(info.wasmThreads, gemm === "onnxruntime" ? 1 : 2);
    assert.equal(info.simd, true);
    for (const k of ["Conv2D", "Conv2DBackpropFilter", "Conv2DBackpropInput", "UnsortedSegmentSum", "Transpose", "Slice", "Reverse", "BatchMatMul", "Sum", "Mean"]) {
      assert.ok(info.wasmKernels.includes(k), k);
      assert.ok(tf.getKernel(k, "wasm"), `${k} registered`);
    }
    assert.deepEqual(info.gradients, ["Conv2D", "BatchMatMul", "FusedBatchNorm"]);
    assert.equal(await initEngine(), tf);
    assert.equal(engineInfo().threads, 2);
    if (gemm === "onnxruntime") {
      // MLAS's pool can be resized; the wasm build cannot change to the threaded one.
      await initEngine({ backend: "wasm", threads: 1 });
      assert.equal(engineInfo().threads, 1);
      await initEngine({ backend: "wasm", threads: 2 });
      assert.equal(engineInfo().threads, 2);
      await assert.rejects(initEngine({ backend: "wasm", threads: 2, gemm: "xnnpack" }), MaskdistillError);
    } else {
      await assert.rejects(initEngine({ backend: "wasm", threads: 1, gemm }), MaskdistillError);
    }
    await assert.rejects(initEngine({ backend: "gpu" as never }), /unknown engine backend "gpu"/);
    await assert.rejects(initEngine({ gemm: "blas" as never }), /unknown GEMM provider "blas"/);
  });

  test("Transpose, Slice, Reverse, Identity match cpu exactly (random shapes, ranks 1–6, three dtypes)", async () => {
    await initEngine({ backend: "wasm", threads: 2, gemm });
    for (let it = 0; it < 60; it++) {
      const rank = randInt(1, 6);
      const shape = Array.from({ length: rank }, () => randInt(1, 6));
      const n = shape.reduce((a, b) => a * b, 1);
      const vals = Array.from({ length: n }, () => randInt(-50, 50));
      const perm = [...Array(rank).keys()].sort(() => rng() - 0.5);
      const begin = shape.map((d) => randInt(0, d - 1));
      const size = shape.map((d, i) => randInt(1, d - begin[i]));
      const axes = [...Array(rank).keys()].filter(() => rng() < 0.5);
      for (const dtype of ["float32", "int32", "bool"] as const) {
        const data = dtype === "bool" ? vals.map((v) => v > 0) : vals;
        const { cpu, wasm } = await onBoth(() => {
          const x = tf.tensor(data, shape, dtype);
          return [tf.transpose(x, perm), tf.slice(x, begin, size), tf.reverse(x, axes), tf.clone(x)];
        });
        cpu.forEach((ref, i) => assert.deepEqual(wasm[i], ref, `${["transpose", "slice", "reverse", "clone"][i]} ${dtype} [${shape}]`));
      }
    }
    // Large enough for the tiled paths.
    const big = randn([37, 70, 45]);
    await check("Transpose large", () => tf.transpose(tf.tensor(big, [37, 70, 45]), [2, 0, 1]), 0);
  });

  test("Sum and Mean over leading axes (channel reductions)", async () => {
    for (const shape of [[2, 7, 5, 3], [1, 33, 17, 64], [9, 4], [3, 1, 5]]) {
      const x = randn(shape);
      for (let k = 1; k < shape.length; k++) {
        const axes = [...Array(k).keys()];
        await check(`Sum [${shape}] ${axes}`, () => tf.sum(tf.tensor(x, shape), axes));
        await check(`Mean [${shape}] ${axes}`, () => tf.mean(tf.tensor(x, shape), axes, true));
      }
      await check(`Sum other axes [${shape}]`, () => tf.sum(tf.tensor(x, shape), shape.length - 1));
    }
  });

  test("BatchMatMul with transpose flags, batches and broadcasting", async () => {
    const cases: [number[], number[], boolean, boolean][] = [
      [[7, 5], [5, 3], false, false], [[5, 7], [5, 3], true, false], [[7, 5], [3, 5], false, true], [[5, 7], [3, 5], true, true],
      [[4, 9, 5], [4, 5, 6], false, false], [[2, 3, 5, 9], [2, 3, 6, 5], true, true], [[1, 9, 5], [4, 5, 6], false, false],
      [[4, 9, 5], [5, 6], false, false], [[4, 9, 5], [1, 6, 5], false, true],
    ];
    await eachStrategy(gemm, async (st) => { for (const [sa, sb, ta, tb] of cases) {
      const a = randn(sa), b = randn(sb);
      await check(`BatchMatMul [${sa}]·[${sb}] ${ta} ${tb}${st}`, () => tf.matMul(tf.tensor(a, sa), tf.tensor(b, sb), ta, tb));
      const loss = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y, ta, tb), tf.sin(tf.matMul(x, y, ta, tb))));
      const { wasm } = await onBoth(() => tf.grads(loss)([tf.tensor(a, sa), tf.tensor(b, sb)]));
      // Reference: the cpu backend's stock gradient, with any batch broadcast written out explicitly
      // (the stock gradient cannot reduce it).
      await tf.setBackend("cpu");
      const ref = tf.tidy(() => {
        const batch = tf.broadcast_util.assertAndGetBroadcastShape(sa.slice(0, -2), sb.slice(0, -2));
        const full = (t: tf.Tensor) => tf.broadcastTo(t, [...batch, ...t.shape.slice(-2)]);
        const g = tf.grads((x: tf.Tensor, y: tf.Tensor) => loss(full(x), full(y)))([tf.tensor(a, sa), tf.tensor(b, sb)]);
        return g.map((t) => t.dataSync().slice());
      });
      for (let i = 0; i < 2; i++) {
        const e = relErr(wasm[i], ref[i]);
        worst.BatchMatMulGrad = Math.max(worst.BatchMatMulGrad ?? 0, e);
        assert.ok(e <= TOL, `BatchMatMul gradient ${i} [${sa}]·[${sb}] ${ta} ${tb}${st}: ${e.toExponential(2)}`);
      }
    } });
    const fa = randn([6, 4]), fb = randn([5, 6]), fbias = randn([5]);
    await check("FusedMatMul flags", () => tf.fused.matMul({ a: tf.tensor(fa, [6, 4]), b: tf.tensor(fb, [5, 6]),
      transposeA: true, transposeB: true, bias: tf.tensor1d(fbias), activation: "relu" }));
  });

  test("UnsortedSegmentSum and the gather gradient", async () => {
    const x = randn([7, 3, 4]);
    const ids = [0, 4, 4, -1, 2, 9, 0];                   // -1 and 9 (≥ numSegments) are dropped
    await check("UnsortedSegmentSum 1-D ids", () => tf.unsortedSegmentSum(tf.tensor(x, [7, 3, 4]), tf.tensor1d(ids, "int32"), 5));
    await check("UnsortedSegmentSum int32", () => tf.unsortedSegmentSum(tf.tensor(ids.map((v) => v * 3), [7], "int32"), tf.tensor1d(ids, "int32"), 5));
    const table = randn([10, 6]);
    const idx = [3, 3, 9, 0, 3, 7, 1, 1];
    await check("GatherGrad", () => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, tf.tensor1d(idx, "int32")), tf.range(0, 48).reshape([8, 6]))))(tf.tensor(table, [10, 6])));
    await check("GatherGrad axis 1", () => tf.grad((t: tf.Tensor) => tf.sum(tf.square(tf.gather(t, tf.tensor1d([5, 0, 5], "int32"), 1))))(tf.tensor(table, [10, 6])));
  });

  type Pad = "same" | "valid" | number | [[number, number], [number, number], [number, number], [number, number]];
  interface ConvCase { n: number; h: number; w: number; ci: number; co: number; kh: number; kw: number; s: number | [number, number]; pad: Pad; d: number }

  const convCases: ConvCase[] = [
    { n: 1, h: 9, w: 9, ci: 5, co: 4, kh: 3, kw: 3, s: 1, pad: "same", d: 1 },
    { n: 2, h: 11, w: 7, ci: 40, co: 6, kh: 3, kw: 3, s: 1, pad: "same", d: 1 },
    { n: 3, h: 10, w: 9, ci: 40, co: 8, kh: 3, kw: 3, s: 2, pad: "same", d: 1 },
    { n: 2, h: 11, w: 11, ci: 5, co: 4, kh: 3, kw: 3, s: 2, pad: "valid", d: 1 },
    { n: 1, h: 13, w: 12, ci: 3, co: 8, kh: 7, kw: 7, s: 2, pad: 3, d: 1 },          // a ResNet stem
    { n: 2, h: 12, w: 15, ci: 33, co: 5, kh: 5, kw: 3, s: 3, pad: "same", d: 1 },
    { n: 1, h: 9, w: 10, ci: 36, co: 7, kh: 3, kw: 3, s: [2, 1], pad: "valid", d: 1 },
    { n: 2, h: 8, w: 8, ci: 64, co: 16, kh: 1, kw: 1, s: 1, pad: 0, d: 1 },
    { n: 2, h: 9, w: 9, ci: 64, co: 16, kh: 1, kw: 1, s: 2, pad: 0, d: 1 },
    { n: 1, h: 9, w: 8, ci: 6, co: 5, kh: 3, kw: 2, s: 1, pad: [[0, 0], [2, 0], [1, 3], [0, 0]], d: 1 },
    { n: 1, h: 16, w: 16, ci: 3, co: 12, kh: 4, kw: 4, s: 4, pad: "valid", d: 1 },   // a patch embedding
    { n: 2, h: 5, w: 6, ci: 8, co: 3, kh: 3, kw: 3, s: 2, pad: [[0, 0], [0, 4], [3, 0], [0, 0]], d: 1 },  // pads beyond the kernel
    { n: 2, h: 12, w: 11, ci: 40, co: 6, kh: 3, kw: 3, s: 1, pad: 2, d: 2 },          // dilated, "same"-sized
    { n: 1, h: 13, w: 13, ci: 5, co: 4, kh: 3, kw: 3, s: 1, pad: "same", d: 3 },
    { n: 3, h: 10, w: 14, ci: 34, co: 4, kh: 3, kw: 3, s: 1, pad: "valid", d: 2 },
    { n: 1, h: 16, w: 16, ci: 48, co: 8, kh: 3, kw: 3, s: 1, pad: 6, d: 6 },          // ASPP-like
    { n: 2, h: 7, w: 9, ci: 20, co: 5, kh: 3, kw: 3, s: 1, pad: 8, d: 8 },           // outer rows read only padding
    { n: 1, h: 6, w: 6, ci: 40, co: 6, kh: 3, kw: 3, s: 1, pad: 7, d: 7 },           // only the centre tap reads data
    { n: 1, h: 9, w: 9, ci: 12, co: 4, kh: 5, kw: 5, s: 2, pad: 6, d: 1 },           // strided, padding wider than the filter
    { n: 2, h: 12, w: 10, ci: 36, co: 6, kh: 3, kw: 3, s: 1, pad: 5, d: 5 },         // banded: taps read padding over part of the map
    { n: 1, h: 11, w: 9, ci: 33, co: 5, kh: 3, kw: 5, s: 1, pad: [[0, 0], [4, 1], [0, 6], [0, 0]], d: 3 },  // banded, uneven padding
  ];

  /** A dilated filter written out with zeros between taps: conv(x, w, d) = conv(x, expand(w), 1). */
  function expandFilter(w: tf.Tensor4D, d: number): tf.Tensor4D {
    const [kh, kw, ci, co] = w.shape;
    const eh = (kh - 1) * d + 1, ew = (kw - 1) * d + 1;
    const src = w.arraySync();
    const out = tf.buffer([eh, ew, ci, co]);
    for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) for (let c = 0; c < ci; c++) for (let o = 0; o < co; o++) out.set(src[i][j][c][o], i * d, j * d, c, o);
    return out.toTensor() as tf.Tensor4D;
  }

  test("conv kernels Conv2DBackpropInput/Filter over strides, paddings, dilations, sizes, batches", async () => {
    // onnxruntime: the default tuning, then a tiny im2col budget (many chunks) with each flag strategy.
    const settings = gemm === "onnxruntime"
      ? [{ budget: convGemmTuning.colsBudget, flags: "auto" as const }, ...FLAG_STRATEGIES.slice(1).map((flags) => ({ budget: 500, flags }))]
      : [{ budget: convGemmTuning.colsBudget, flags: "auto" as const }];
    const defaultBudget = convGemmTuning.colsBudget;
    try { for (const setting of settings) {
    convGemmTuning.colsBudget = setting.budget;
    gemmTuning.flagStrategy = setting.flags;
    const tuning = gemm === "onnxruntime" ? ` [im2col ${setting.budget}, ${setting.flags}]` : "";
    for (const c of convCases) {
      const xs: [number, number, number, number] = [c.n, c.h, c.w, c.ci];
      const ws: [number, number, number, number] = [c.kh, c.kw, c.ci, c.co];
      const x = randn(xs), w = randn(ws);
      const yShape = tf.tidy(() => tf.conv2d(tf.zeros(xs) as tf.Tensor4D, tf.zeros(ws) as tf.Tensor4D, c.s, c.pad as never, "NHWC", c.d).shape);
      const dy = randn(yShape);
      const label = `conv n${c.n} ${c.h}x${c.w} ${c.ci}→${c.co} k${c.kh}x${c.kw} s${c.s} p${JSON.stringify(c.pad)} d${c.d}${tuning}`;
      const attrs = { strides: c.s, pad: c.pad, dataFormat: "NHWC", dimRoundingMode: undefined };
      await check(`Conv2D ${label}`, () => tf.conv2d(tf.tensor(x, xs) as tf.Tensor4D, tf.tensor(w, ws) as tf.Tensor4D, c.s, c.pad as never, "NHWC", c.d));
      if (c.d === 1) {
        // Kernel level: our wasm kernels against the cpu backend's own kernels.
        await check(`ConvKernels ${label}`, () => [
          tf.engine().runKernel("Conv2DBackpropInput", { dy: tf.tensor(dy, yShape), filter: tf.tensor(w, ws) },
            { ...attrs, inputShape: xs } as never) as tf.Tensor,
          tf.engine().runKernel("Conv2DBackpropFilter", { x: tf.tensor(x, xs), dy: tf.tensor(dy, yShape) },
            { ...attrs, filterShape: ws } as never) as tf.Tensor,
        ]);
      }
      // Gradient level (tf.grads through tf.conv2d), with an independent reference for dilation:
      // the stock dilation-1 gradient of the same conv written with an expanded filter.
      const { cpu, wasm } = await onBoth(() => {
        const loss = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad as never, "NHWC", c.d), tf.tensor(dy, yShape)));
        return tf.grads(loss)([tf.tensor(x, xs), tf.tensor(w, ws)]);
      });
      let refDx = cpu[0], refDw = cpu[1];
      if (c.d > 1) {
        await tf.setBackend("cpu");
        [refDx, refDw] = tf.tidy(() => {
          const wt = tf.tensor(w, ws) as tf.Tensor4D;
          const [gx, gwe] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
            tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.s, c.pad as never, "NHWC", 1), tf.tensor(dy, yShape))))(
            [tf.tensor(x, xs), expandFilter(wt, c.d)]);
          const gw = tf.stridedSlice(gwe, [0, 0, 0, 0], gwe.shape, [c.d, c.d, 1, 1]);
          return [gx.dataSync().slice(), gw.dataSync().slice()] as Float32Array[];
        });
        // The cpu path for dilated gradients (space-to-batch) agrees with the expanded-filter reference too.
        assert.ok(relErr(cpu[0], refDx) <= TOL && relErr(cpu[1], refDw) <= TOL, `cpu space-to-batch path ${label}`);
      }
      for (const [got, want, what] of [[wasm[0], refDx, "dx"], [wasm[1], refDw, "dW"]] as const) {
        const e = relErr(got, want);
        worst[`Conv2DGrad.${what}`] = Math.max(worst[`Conv2DGrad.${what}`] ?? 0, e);
        assert.ok(e <= TOL, `Conv2D gradient ${what} ${label}: relative error ${e.toExponential(2)}`);
      }
    }
    } } finally {
      convGemmTuning.colsBudget = defaultBudget;
      gemmTuning.flagStrategy = "auto";
    }
  });

  test("FusedBatchNorm gradient (through batch moments) and the engine's BN / LayerNorm ops", async () => {
    for (const shape of [[2, 5, 3, 7], [1, 9, 9, 16], [3, 4, 1, 5]]) {
      const x = randn(shape), c = shape[3];
      const scale = randn([c]), offset = randn([c]), r = randn(shape);
      const bnLoss = (a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.sum(tf.mul(tf.batchNorm(a, mean, variance, o as tf.Tensor1D, s as tf.Tensor1D, 1e-3), tf.tensor(r, shape)));
      };
      await check(`FusedBatchNormGrad [${shape}]`, () => tf.grads(bnLoss)([tf.tensor(x, shape), tf.tensor1d(scale), tf.tensor1d(offset)]));
      // batchNormTrain (closed-form gradient) against the autodiff of the same formula, both backends.
      const mine = await onBoth(() => tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) =>
        tf.sum(tf.mul(batchNormTrain(a, s as tf.Tensor1D, o as tf.Tensor1D, 1e-3), tf.tensor(r, shape))))(
        [tf.tensor(x, shape), tf.tensor1d(scale), tf.tensor1d(offset)]));
      const ref = await onBoth(() => tf.grads(bnLoss)([tf.tensor(x, shape), tf.tensor1d(scale), tf.tensor1d(offset)]));
      for (let i = 0; i < 3; i++) {
        for (const be of ["cpu", "wasm"] as const) {
          const e = relErr(mine[be][i], ref.cpu[i]);
          worst.batchNormTrain = Math.max(worst.batchNormTrain ?? 0, e);
          assert.ok(e <= TOL, `batchNormTrain grad ${i} on ${be} [${shape}]: ${e.toExponential(2)}`);
        }
      }
      // With ReLU fused, on data far from zero (the statistics must not lose precision), outputs,
      // batch statistics and gradients against relu(batchNorm(moments)) autodiff on cpu.
      const xo = x.map((v) => 50 + 3 * v);
      const withStats = (a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => {
        const stats: tf.Tensor[] = [];
        const y = batchNormTrain(a, s as tf.Tensor1D, o as tf.Tensor1D, 1e-3, ({ mean, variance }) => { stats.push(tf.keep(tf.clone(mean)), tf.keep(tf.clone(variance))); }, { relu: true });
        return [y, ...stats];
      };
      const reluLoss = (a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.sum(tf.mul(tf.relu(tf.batchNorm(a, mean, variance, o as tf.Tensor1D, s as tf.Tensor1D, 1e-3)), tf.tensor(r, shape)));
      };
      await check(`batchNormTrainRelu forward [${shape}]`, () => withStats(tf.tensor(xo, shape), tf.tensor1d(scale), tf.tensor1d(offset)));
      const mineRelu = await onBoth(() => tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) =>
        tf.sum(tf.mul(batchNormTrain(a, s as tf.Tensor1D, o as tf.Tensor1D, 1e-3, undefined, { relu: true }), tf.tensor(r, shape))))(
        [tf.tensor(xo, shape), tf.tensor1d(scale), tf.tensor1d(offset)]));
      const refRelu = await onBoth(() => tf.grads(reluLoss)([tf.tensor(xo, shape), tf.tensor1d(scale), tf.tensor1d(offset)]));
      for (let i = 0; i < 3; i++) {
        for (const be of ["cpu", "wasm"] as const) {
          const e = relErr(mineRelu[be][i], refRelu.cpu[i]);
          worst.batchNormTrainRelu = Math.max(worst.batchNormTrainRelu ?? 0, e);
          assert.ok(e <= 1e-4, `batchNormTrain+ReLU grad ${i} on ${be} [${shape}]: ${e.toExponential(2)}`);
        }
      }
      const lnRef = await onBoth(() => tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, -1, true);
        return tf.sum(tf.mul(tf.add(tf.mul(tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, 1e-6))), s), o), tf.tensor(r, shape)));
      })([tf.tensor(x, shape), tf.tensor(randn([shape[3]]).map(() => 1.5), [shape[3]]), tf.tensor1d(offset)]));
      const ln = await onBoth(() => tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) =>
        tf.sum(tf.mul(layerNorm(a, s as tf.Tensor1D, o as tf.Tensor1D, 1e-6), tf.tensor(r, shape))))(
        [tf.tensor(x, shape), tf.tensor(randn([shape[3]]).map(() => 1.5), [shape[3]]), tf.tensor1d(offset)]));
      for (let i = 0; i < 3; i++) {
        const e = Math.max(relErr(ln.wasm[i], lnRef.cpu[i]), relErr(ln.cpu[i], lnRef.cpu[i]));
        worst.layerNorm = Math.max(worst.layerNorm ?? 0, e);
        assert.ok(e <= TOL, `layerNorm grad ${i} [${shape}]: ${e.toExponential(2)}`);
      }
      // GELU (exact erf form) and its gradient against autodiff of x·Φ(x) on cpu.
      const geluRef = (a: tf.Tensor) => tf.mul(tf.mul(a, 0.5), tf.add(tf.erf(tf.mul(a, Math.SQRT1_2)), 1));
      const gx = x.map((v) => 3 * v);
      const mineGelu = await onBoth(() => [gelu(tf.tensor(gx, shape)), tf.grad((a: tf.Tensor) => tf.sum(tf.mul(gelu(a), tf.tensor(r, shape))))(tf.tensor(gx, shape))]);
      const refGelu = await onBoth(() => [geluRef(tf.tensor(gx, shape)), tf.grad((a: tf.Tensor) => tf.sum(tf.mul(geluRef(a), tf.tensor(r, shape))))(tf.tensor(gx, shape))]);
      for (let i = 0; i < 2; i++) {
        const e = relErr(mineGelu.wasm[i], refGelu.cpu[i]);
        worst.gelu = Math.max(worst.gelu ?? 0, e);
        assert.ok(e <= TOL, `gelu ${i ? "grad" : "value"} [${shape}]: ${e.toExponential(2)}`);
      }
    }
  });

  test("no wasm memory is leaked by the kernels (heap buffers and aliases freed)", async () => {
    await tf.setBackend("wasm");
    const backend = tf.backend() as unknown as { numDataIds(): number };
    const before = backend.numDataIds();
    tf.tidy(() => {
      const x = tf.tensor(randn([2, 10, 10, 40]), [2, 10, 10, 40]) as tf.Tensor4D;
      const w = tf.tensor(randn([3, 3, 40, 8]), [3, 3, 40, 8]) as tf.Tensor4D;
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, "same"))))([x, w]);
      tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, "same", "NHWC", 2))))([x, w]);
      tf.matMul(tf.ones([3, 4, 5]), tf.ones([3, 6, 5]), false, true);
      tf.sum(x, [0, 1, 2]);
      tf.clone(x); tf.slice(x, [0, 1, 2, 3], [1, 5, 5, 20]); tf.reverse(x, [1, 3]); tf.transpose(x, [3, 1, 0, 2]);
      tf.unsortedSegmentSum(x, tf.tensor1d([1, 0], "int32"), 3);
    });
    assert.equal(backend.numDataIds(), before);
  });

  test("worst relative errors (reported)", () => {
    console.log("engine kernels, worst relative error vs cpu:", Object.fromEntries(Object.entries(worst).map(([k, v]) => [k, Number(v.toExponential(2))])));
    assert.ok(Object.keys(worst).length > 0);
  });
}
