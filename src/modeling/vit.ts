// DINO VisionTransformer (timm layout, as in MaskDistill's models/models_vit.py) as ONNX graphs.
//
//   tokens = [cls_token ; patch_embed(x)] + pos_embed(interpolated to the grid)
//   block:   x = x + proj(MHSA(LN1(x)));  x = x + fc2(GELU(fc1(LN2(x))))      LayerNorm eps 1e-6
//   output:  LN(x)
//
// Shapes are dynamic (batch, height, width); the interpolated position embedding is computed here
// on the CPU (bit-compatible with PyTorch's bicubic kernel, see interpolatePosEmbed) and fed to the
// graph as an input, so one graph serves every input size.
//
// Three graphs, each running only what it needs:
//   "qk"     blocks 1..L-1, then LN1 + the q/k rows of qkv of block L → q, k [B, heads, N, headDim]
//            (before the 1/√d scaling; the v rows and the rest of block L are never computed)
//   "cls"    blocks 1..L-1, block L for the CLS query only, final LN → cls [B, dim]
//   "tokens" all blocks, final LN → tokens [B, N, dim] (CLS first, then patches row-major)
import { mulberry32 } from "../random.js";
import { MaskdistillError } from "../errors.js";
import { toFloat32 } from "./checkpoint/index.js";
import type { StateDict, TensorData } from "./checkpoint/index.js";
import { addWeight, CONTRIB_DOMAIN, createGraph, createWeightFile, DataType, float } from "./onnx/index.js";
import type { GraphBuilder, WeightFile } from "./onnx/index.js";

export type VitArch = "vit_small" | "vit_base";
export type VitGraphKind = "qk" | "cls" | "tokens";

/** Heads per architecture (DINO / timm). */
export const VIT_HEADS: Record<VitArch, number> = { vit_small: 6, vit_base: 12 };

export interface VitConfig {
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  headDim: number;
  mlpHidden: number;
  /** Side of the stored square position-embedding grid (14 for 224/16, 28 for 224/8). */
  posGrid: number;
  eps: number;
  /**
   * Output channels of a convolutional stem (`patch_embed.stem.<i>.weight` [c_i, c_{i−1}, 3, 3], stride 2,
   * padding 1, ReLU), whose last map `patch_embed.proj` [dim, c_last, 1, 1] projects — the shapes world's
   * ViT (`pretrain --conv-stem`). Undefined: DINO's p×p patch embedding.
   */
  convStem?: number[];
}

const LN_EPS = 1e-6;

/** Names of the checkpoint tensors and their expected shapes for `cfg`. */
export function vitExpectedKeys(cfg: VitConfig): Map<string, number[]> {
  const { dim: D, patch: p, mlpHidden: M } = cfg;
  const keys = new Map<string, number[]>([
    ["cls_token", [1, 1, D]],
    ["pos_embed", [1, 1 + cfg.posGrid * cfg.posGrid, D]],
  ]);
  let cin = 3;
  (cfg.convStem ?? []).forEach((c, i) => {
    keys.set(`patch_embed.stem.${i}.weight`, [c, cin, 3, 3]).set(`patch_embed.stem.${i}.bias`, [c]);
    cin = c;
  });
  keys.set("patch_embed.proj.weight", cfg.convStem ? [D, cin, 1, 1] : [D, 3, p, p]).set("patch_embed.proj.bias", [D]);
  for (let i = 0; i < cfg.depth; i++) {
    const b = `blocks.${i}.`;
    keys.set(b + "norm1.weight", [D]).set(b + "norm1.bias", [D]);
    keys.set(b + "attn.qkv.weight", [3 * D, D]).set(b + "attn.qkv.bias", [3 * D]);
    keys.set(b + "attn.proj.weight", [D, D]).set(b + "attn.proj.bias", [D]);
    keys.set(b + "norm2.weight", [D]).set(b + "norm2.bias", [D]);
    keys.set(b + "mlp.fc1.weight", [M, D]).set(b + "mlp.fc1.bias", [M]);
    keys.set(b + "mlp.fc2.weight", [D, M]).set(b + "mlp.fc2.bias", [D]);
  }
  keys.set("norm.weight", [D]).set("norm.bias", [D]);
  return keys;
}

/**
 * Reads patch size, width, depth and MLP width from the state dict; heads come from `heads`, else
 * the arch, else dim/64 (DINO's head width).
 */
export function vitConfigFromStateDict(sd: StateDict, file: string, opts: { arch?: VitArch; heads?: number; patch?: number } = {}): VitConfig {
  const get = (k: string): TensorData => {
    const t = sd.get(k);
    if (!t) throw new MaskdistillError(`not a ViT checkpoint: no "${k}" (keys: ${[...sd.keys()].slice(0, 6).join(", ")}…)`, file);
    return t;
  };
  const pe = get("patch_embed.proj.weight").shape;
  const convStem: number[] = [];
  while (sd.has(`patch_embed.stem.${convStem.length}.weight`)) convStem.push(get(`patch_embed.stem.${convStem.length}.weight`).shape[0]);
  if (convStem.length === 0 && (pe.length !== 4 || pe[1] !== 3 || pe[2] !== pe[3])) throw new MaskdistillError(`patch_embed.proj.weight has shape [${pe}], expected [dim, 3, p, p]`, file);
  const dim = pe[0], patch = convStem.length ? 2 ** convStem.length : pe[2];
  if (opts.patch !== undefined && opts.patch !== patch) {
    throw new MaskdistillError(`patch size ${opts.patch} was asked for but the checkpoint's patch embedding is ${patch}×${patch}`, file);
  }
  let depth = 0;
  while (sd.has(`blocks.${depth}.norm1.weight`)) depth++;
  if (depth === 0) throw new MaskdistillError("not a ViT checkpoint: no blocks.0.*", file);
  const mlpHidden = get("blocks.0.mlp.fc1.weight").shape[0];
  const tokens = get("pos_embed").shape[1] - 1;
  const posGrid = Math.round(Math.sqrt(tokens));
  if (posGrid * posGrid !== tokens) throw new MaskdistillError(`pos_embed has ${tokens} patch positions, not a square grid`, file);
  const heads = opts.heads ?? (opts.arch ? VIT_HEADS[opts.arch] : dim % 64 === 0 ? dim / 64 : 0);
  if (!(heads > 0) || dim % heads !== 0) throw new MaskdistillError(`cannot split width ${dim} into ${heads} heads; pass heads explicitly`, file);
  return { patch, dim, depth, heads, headDim: dim / heads, mlpHidden, posGrid, eps: LN_EPS, ...(convStem.length ? { convStem } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Position embedding interpolation, bit-compatible with PyTorch's CPU upsample_bicubic2d on float32.
//
// DINO's interpolate_pos_encoding calls F.interpolate(scale_factor=((rows+0.1)/√N, (cols+0.1)/√N),
// mode="bicubic", align_corners=False). With a scale factor PyTorch keeps the scale (not the size
// ratio) for the coordinate map: src = (dst + 0.5) · (1/scale) − 0.5. The arithmetic below is what
// PyTorch's separable kernel (aten/src/ATen/native/cpu/UpSampleKernel.cpp, AVX2 build, where the
// compiler contracts a·b + c into fused multiply-adds) computes — verified bit for bit against
// torch 1.13 by test/vit-posembed.test.ts:
//   1/scale is computed in double and rounded to float; src is evaluated in double from that float;
//   index = floor(src), t = float(src − index); taps index−1..index+2 clamped to the border;
//   weights (A = −0.75), one float rounding per step, "fma" = fused (single rounding):
//     near(x) = ((fma(A+2, x, −(A+3)) · x) · x) + 1
//     far(x)  = (fma(fma(A, x, −5A), x, 8A) · x) − 4A
//   each 4-tap sum w0·v0 + w1·v1 + w2·v2 + w3·v3 = fma(v3, w3, fma(v2, w2, fma(v0, w0, v1·w1)));
//   width is interpolated within each of the four source rows, then the rows are combined.

const f32 = Math.fround;
const A = -0.75;

/** Float32 fused multiply-add, correctly rounded (a, b, c float32 values). */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b; // exact in double: 24 + 24 significant bits
  const s = p + c;
  const r = f32(s);
  const d = s - r; // exact
  // Rounding s (not the exact p + c) to float can only go wrong when s lies exactly halfway
  // between two floats; then the sign of the lost low part of p + c decides.
  if (d === 0 || f32(r + 2 * d) !== r + 2 * d) return r;
  const v = s - c;
  const e = (c - (s - v)) + (p - v); // p + c = s + e exactly (TwoSum)
  if (e === 0) return r; // a true tie: fround's ties-to-even is right
  const other = r + 2 * d;
  return e > 0 ? Math.max(r, other) : Math.min(r, other);
}

function cubicNear(x: number): number {
  // ((A + 2) x − (A + 3)) x x + 1, for |x| ≤ 1
  return f32(f32(f32(fma32(A + 2, x, -(A + 3)) * x) * x) + 1);
}

function cubicFar(x: number): number {
  // ((A x − 5A) x + 8A) x − 4A, for 1 < |x| < 2
  return f32(f32(fma32(fma32(A, x, -5 * A), x, 8 * A) * x) - 4 * A);
}

/** w0·v0 + w1·v1 + w2·v2 + w3·v3 with the kernel's contraction order. */
function dot4(v0: number, v1: number, v2: number, v3: number, w: Float32Array, k: number): number {
  return fma32(v3, w[k + 3], fma32(v2, w[k + 2], fma32(v0, w[k], f32(v1 * w[k + 1]))));
}

interface AxisTaps {
  index: Int32Array; // 4 clamped source indices per output position
  weight: Float32Array; // 4 weights per output position
}

function bicubicTaps(inSize: number, outSize: number, scaleFactor: number): AxisTaps {
  const scale = f32(1 / scaleFactor);
  const index = new Int32Array(outSize * 4);
  const weight = new Float32Array(outSize * 4);
  for (let o = 0; o < outSize; o++) {
    const src = scale * (o + 0.5) - 0.5;
    const i0 = Math.floor(src);
    const t = f32(src - i0);
    const u = f32(1 - t);
    weight[o * 4] = cubicFar(f32(t + 1));
    weight[o * 4 + 1] = cubicNear(t);
    weight[o * 4 + 2] = cubicNear(u);
    weight[o * 4 + 3] = cubicFar(f32(u + 1));
    for (let k = 0; k < 4; k++) index[o * 4 + k] = Math.max(0, Math.min(inSize - 1, i0 - 1 + k));
  }
  return { index, weight };
}

/**
 * Position embedding `[1 + rows·cols, dim]` for an input of `height × width` pixels (padded,
 * a multiple of the patch). `posEmbed` is the checkpoint's `[1 + G², dim]` table (CLS first).
 * Returns the table itself when DINO does (same number of patches and a square image).
 */
export function interpolatePosEmbed(posEmbed: Float32Array, dim: number, rows: number, cols: number, height: number, width: number): Float32Array {
  const n = posEmbed.length / dim - 1;
  const grid = Math.floor(Math.sqrt(n));
  if (grid * grid !== n) throw new Error(`pos_embed with ${n} positions is not a square grid`);
  if (rows * cols === n && height === width) return posEmbed;
  const scaleH = (rows + 0.1) / Math.sqrt(n);
  const scaleW = (cols + 0.1) / Math.sqrt(n);
  // PyTorch's output size is floor(in · scale); DINO asserts it equals rows/cols.
  if (Math.floor(grid * scaleH) !== rows || Math.floor(grid * scaleW) !== cols) {
    throw new Error(`pos_embed interpolation: ${grid}×${grid} grid does not scale to ${rows}×${cols}`);
  }
  const ty = bicubicTaps(grid, rows, scaleH);
  const tx = bicubicTaps(grid, cols, scaleW);
  const out = new Float32Array((1 + rows * cols) * dim);
  out.set(posEmbed.subarray(0, dim)); // CLS position kept as is
  const src = posEmbed.subarray(dim); // [grid, grid, dim]
  const g = grid * dim; // row stride of the source table
  for (let y = 0; y < rows; y++) {
    const r0 = ty.index[y * 4] * g, r1 = ty.index[y * 4 + 1] * g, r2 = ty.index[y * 4 + 2] * g, r3 = ty.index[y * 4 + 3] * g;
    for (let x = 0; x < cols; x++) {
      const c0 = tx.index[x * 4] * dim, c1 = tx.index[x * 4 + 1] * dim, c2 = tx.index[x * 4 + 2] * dim, c3 = tx.index[x * 4 + 3] * dim;
      const dst = (1 + y * cols + x) * dim;
      const wx = tx.weight, k = x * 4;
      for (let c = 0; c < dim; c++) {
        const v0 = dot4(src[r0 + c0 + c], src[r0 + c1 + c], src[r0 + c2 + c], src[r0 + c3 + c], wx, k);
        const v1 = dot4(src[r1 + c0 + c], src[r1 + c1 + c], src[r1 + c2 + c], src[r1 + c3 + c], wx, k);
        const v2 = dot4(src[r2 + c0 + c], src[r2 + c1 + c], src[r2 + c2 + c], src[r2 + c3 + c], wx, k);
        const v3 = dot4(src[r3 + c0 + c], src[r3 + c1 + c], src[r3 + c2 + c], src[r3 + c3 + c], wx, k);
        out[dst + c] = dot4(v0, v1, v2, v3, ty.weight, y * 4);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Weights and graphs

/** Puts every tensor of the checkpoint into one external-data weight file (float32, as stored). */
export function vitWeightFile(sd: StateDict, cfg: VitConfig, location: string): WeightFile {
  const wf = createWeightFile(location);
  for (const [name, shape] of vitExpectedKeys(cfg)) {
    const t = sd.get(name)!;
    addWeight(wf, name, shape, toFloat32(t));
  }
  return wf;
}

/**
 * Numeric precision of a ViT graph.
 *   "fp32": float32 throughout (the reference's arithmetic; the default).
 *   "int8": every Linear layer is onnxruntime's DynamicQuantizeMatMul — activations quantised to uint8
 *           per call (one scale per tensor), weights to 7-bit int8 here (one scale per output channel) —
 *           run by MLAS's integer GEMM; self-attention is onnxruntime's MultiHeadAttention (float32,
 *           flash-attention tiling: the tokens² score matrix is never stored). LayerNorm, GELU, softmax
 *           and the residual stream stay float32, and so does the last block's q/k projection, whose
 *           output is what the mask generator reads.
 * (No bf16/fp16: onnxruntime's CPU EP has no bfloat16 MatMul kernel, and its float16 MatMul runs no
 * faster than float32 on x86 without AVX-512 FP16; see README "Reduced precision".)
 */
export type VitPrecision = "fp32" | "int8";
export const VIT_PRECISIONS: readonly VitPrecision[] = ["fp32", "int8"];

export interface VitGraphOptions {
  precision?: VitPrecision;
}

/**
 * Largest int8 weight magnitude. x86 CPUs without VNNI multiply uint8 × int8 pairs with vpmaddubsw,
 * whose int16 pair sums saturate above 32767: 255·64·2 fits, 255·127·2 does not (onnxruntime's
 * "reduce_range"), so weights use 7 bits.
 */
export const INT8_WEIGHT_MAX = 64;

/**
 * Symmetric per-row int8 quantisation of a [rows, cols] float matrix (PyTorch's Linear weight [out, in]),
 * returned transposed as [cols, rows] (MatMul's B [in, out]) with one scale per row: w ≈ q · scale.
 */
export function quantizeRowsInt8(w: Float32Array, rows: number, cols: number, qmax = INT8_WEIGHT_MAX): { data: Int8Array; scale: Float32Array } {
  if (w.length !== rows * cols) throw new Error(`quantizeRowsInt8: ${w.length} values for ${rows}×${cols}`);
  const data = new Int8Array(rows * cols);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let maxAbs = 0;
    for (let c = 0; c < cols; c++) maxAbs = Math.max(maxAbs, Math.abs(w[r * cols + c]));
    const s = maxAbs > 0 ? Math.fround(maxAbs / qmax) : 1;
    scale[r] = s;
    for (let c = 0; c < cols; c++) {
      const q = Math.round(w[r * cols + c] / s);
      data[c * rows + r] = Math.max(-qmax, Math.min(qmax, q));
    }
  }
  return { data, scale };
}

/** Builds one of the three graphs. Inputs: `pixels` [B, 3, H, W], `pos_embed` [1, N, dim]. */
export function buildVitGraph(kind: VitGraphKind, cfg: VitConfig, weights: WeightFile, opts: VitGraphOptions = {}): Uint8Array {
  const g = createGraph(`vit_${kind}`, weights);
  const precision = opts.precision ?? "fp32";
  const { dim: D, heads: H, headDim: hd, patch: p, depth } = cfg;
  const pixels = g.input("pixels", DataType.FLOAT, ["batch", 3, "height", "width"]);
  const pos = g.input("pos_embed", DataType.FLOAT, [1, "tokens", D]);

  // patch embedding + CLS + position
  let conv: string;
  if (cfg.convStem) {
    let x = pixels;
    cfg.convStem.forEach((_, i) => {
      x = g.op("Relu", [g.op("Conv", [x, g.weight(`patch_embed.stem.${i}.weight`), g.weight(`patch_embed.stem.${i}.bias`)], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] })]);
    });
    conv = g.op("Conv", [x, g.weight("patch_embed.proj.weight"), g.weight("patch_embed.proj.bias")], { kernel_shape: [1, 1] });
  } else {
    conv = g.op("Conv", [pixels, g.weight("patch_embed.proj.weight"), g.weight("patch_embed.proj.bias")], { kernel_shape: [p, p], strides: [p, p] });
  }
  const patches = g.op("Transpose", [g.op("Reshape", [conv, g.constInt64([0, 0, -1])])], { perm: [0, 2, 1] });
  const batch = g.op("Shape", [pixels], { start: 0, end: 1 });
  const cls = g.op("Expand", [g.weight("cls_token"), g.op("Concat", [batch, g.constInt64([1, 1])], { axis: 0 })]);
  const tokens3 = g.op("Add", [g.op("Concat", [cls, patches], { axis: 1 }), pos]);
  const bn = g.op("Shape", [tokens3], { start: 0, end: 2 }); // [B, N]
  // (int8 graphs attend through MultiHeadAttention, except the CLS-only block: no unused constant for onnxruntime to warn about)
  const scale = precision === "fp32" || kind === "cls" ? g.constFloat([], [Math.pow(hd, -0.5)]) : "";
  const ctx: Ctx = { g, cfg, bn, scale, weights, precision };
  let x = g.op("Reshape", [tokens3, g.constInt64([-1, D])]); // tokens as rows: [B·N, D]

  for (let i = 0; i < depth - 1; i++) x = fullBlock(ctx, x, i);
  const last = depth - 1;
  if (kind === "qk") {
    const h = layerNorm(ctx, x, `blocks.${last}.norm1`);
    // float32 even in int8 graphs: q and k are the output, and this projection is 1/(6·depth) of the GEMM work
    const [q, k] = headsOf(ctx, linearRows({ ...ctx, precision: "fp32" }, h, `blocks.${last}.attn.qkv`, 0, 2 * D), 2);
    g.rename(q, "q");
    g.rename(k, "k");
    g.output("q", DataType.FLOAT, ["batch", H, "tokens", hd]);
    g.output("k", DataType.FLOAT, ["batch", H, "tokens", hd]);
  } else if (kind === "cls") {
    const out = layerNorm(ctx, clsOnlyBlock(ctx, x, last), "norm");
    g.rename(out, "cls");
    g.output("cls", DataType.FLOAT, ["batch", D]);
  } else {
    x = layerNorm(ctx, fullBlock(ctx, x, last), "norm");
    const out = g.op("Reshape", [x, g.op("Concat", [bn, g.constInt64([D])], { axis: 0 })]);
    g.rename(out, "tokens");
    g.output("tokens", DataType.FLOAT, ["batch", "tokens", D]);
  }
  return g.encode(`DINO ViT (${cfg.depth} blocks, dim ${D}, ${H} heads, patch ${p}): ${kind}${precision === "fp32" ? "" : `, ${precision}`}`);
}

interface Ctx {
  g: GraphBuilder;
  cfg: VitConfig;
  bn: string; // shape tensor [B, N]
  scale: string; // head_dim^-0.5
  weights: WeightFile;
  precision: VitPrecision;
}

function layerNorm(ctx: Ctx, x: string, prefix: string): string {
  return ctx.g.op("LayerNormalization", [x, ctx.g.weight(`${prefix}.weight`), ctx.g.weight(`${prefix}.bias`)], { axis: -1, epsilon: float(ctx.cfg.eps) });
}

/** Linear layer on rows ([M, in] → [M, out]), weight in PyTorch's [out, in] layout. */
function linear(ctx: Ctx, x: string, prefix: string): string {
  if (ctx.precision === "int8") return int8Linear(ctx, x, prefix, 0, ctx.weights.entries.get(`${prefix}.weight`)!.dims[0]);
  return ctx.g.op("Gemm", [x, ctx.g.weight(`${prefix}.weight`), ctx.g.weight(`${prefix}.bias`)], { transB: 1 });
}

/** Output rows [from, from+count) of a Linear layer: a byte range of the same stored weight. */
function linearRows(ctx: Ctx, x: string, prefix: string, from: number, count: number): string {
  if (ctx.precision === "int8") return int8Linear(ctx, x, prefix, from, count);
  const D = ctx.cfg.dim;
  const w = ctx.g.weight(`${prefix}.weight`, { dims: [count, D], byteOffset: from * D * 4 });
  const b = ctx.g.weight(`${prefix}.bias`, { dims: [count], byteOffset: from * 4 });
  return ctx.g.op("Gemm", [x, w, b], { transB: 1 });
}

/**
 * Output rows [from, from+count) of a Linear layer as DynamicQuantizeMatMul: int8 weights (inline in
 * the graph, per-output-channel scales), float32 bias from the weight file.
 */
function int8Linear(ctx: Ctx, x: string, prefix: string, from: number, count: number): string {
  const { g } = ctx;
  const [rows, cols] = ctx.weights.entries.get(`${prefix}.weight`)!.dims;
  const w = ctx.weights.values(`${prefix}.weight`).subarray(from * cols, (from + count) * cols);
  const q = quantizeRowsInt8(w, count, cols);
  const b = count === rows ? g.weight(`${prefix}.bias`) : g.weight(`${prefix}.bias`, { dims: [count], byteOffset: from * 4 });
  return g.op("DynamicQuantizeMatMul", [x, g.constInt8([cols, count], q.data), g.constFloat([count], q.scale), "", b], {}, CONTRIB_DOMAIN);
}

/** [B·N, parts·D] rows → `parts` tensors [B, heads, N, headDim] (timm's reshape/permute). */
function headsOf(ctx: Ctx, rows: string, parts: number): string[] {
  const { g, cfg } = ctx;
  const shape = g.op("Concat", [ctx.bn, g.constInt64([parts, cfg.heads, cfg.headDim])], { axis: 0 });
  const t = g.op("Transpose", [g.op("Reshape", [rows, shape])], { perm: [2, 0, 3, 1, 4] });
  const split = g.node("Split", [t], { axis: 0 }, parts);
  const axis0 = g.constInt64([0]);
  return split.map((s) => g.op("Squeeze", [s, axis0]));
}

/** softmax(q kᵀ · scale) v, merged back to rows [B·Nq, D]. */
function attend(ctx: Ctx, q: string, k: string, v: string): string {
  const { g, cfg } = ctx;
  const logits = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], { perm: [0, 1, 3, 2] })]), ctx.scale]);
  const out = g.op("MatMul", [g.op("Softmax", [logits], { axis: -1 }), v]);
  return g.op("Reshape", [g.op("Transpose", [out], { perm: [0, 2, 1, 3] }), g.constInt64([-1, cfg.dim])]);
}

/** softmax(q kᵀ · scale) v from the qkv rows [B·N, 3D] with onnxruntime's MultiHeadAttention, → rows [B·N, D]. */
function fusedAttend(ctx: Ctx, qkv: string): string {
  const { g, cfg } = ctx;
  const D = cfg.dim;
  const [q, k, v] = g.node("Split", [g.op("Reshape", [qkv, g.op("Concat", [ctx.bn, g.constInt64([3 * D])], { axis: 0 })])], { axis: 2 }, 3);
  const out = g.op("MultiHeadAttention", [q, k, v], { num_heads: cfg.heads, scale: float(Math.pow(cfg.headDim, -0.5)) }, CONTRIB_DOMAIN);
  return g.op("Reshape", [out, g.constInt64([-1, D])]);
}

/** x + fc2(GELU(fc1(LN2(x)))), GELU exact: x · ½ · (1 + erf(x / √2)). */
function mlpResidual(ctx: Ctx, x: string, prefix: string): string {
  const { g } = ctx;
  const h = linear(ctx, layerNorm(ctx, x, `${prefix}.norm2`), `${prefix}.mlp.fc1`);
  const erf = g.op("Erf", [g.op("Div", [h, g.constFloat([], [Math.SQRT2])])]);
  const gelu = g.op("Mul", [g.op("Mul", [h, g.op("Add", [erf, g.constFloat([], [1])])]), g.constFloat([], [0.5])]);
  return g.op("Add", [x, linear(ctx, gelu, `${prefix}.mlp.fc2`)]);
}

function fullBlock(ctx: Ctx, x: string, i: number): string {
  const prefix = `blocks.${i}`;
  const h = layerNorm(ctx, x, `${prefix}.norm1`);
  const qkv = linear(ctx, h, `${prefix}.attn.qkv`);
  const merged = ctx.precision === "int8" ? fusedAttend(ctx, qkv) : attend(ctx, ...(headsOf(ctx, qkv, 3) as [string, string, string]));
  const attn = linear(ctx, merged, `${prefix}.attn.proj`);
  return mlpResidual(ctx, ctx.g.op("Add", [x, attn]), prefix);
}

/** The last block evaluated for the CLS row only (keys and values still come from every token). */
function clsOnlyBlock(ctx: Ctx, x: string, i: number): string {
  const { g, cfg } = ctx;
  const prefix = `blocks.${i}`;
  const D = cfg.dim;
  const h = layerNorm(ctx, x, `${prefix}.norm1`);
  const [k, v] = headsOf(ctx, linearRows(ctx, h, `${prefix}.attn.qkv`, D, 2 * D), 2);
  const firstRow = (rows: string): string => {
    // [B·N, D] → [B, N, D] → CLS row of each image → [B, D]
    const t = g.op("Reshape", [rows, g.op("Concat", [ctx.bn, g.constInt64([D])], { axis: 0 })]);
    const s = g.op("Slice", [t, g.constInt64([0]), g.constInt64([1]), g.constInt64([1])]);
    return g.op("Reshape", [s, g.constInt64([-1, D])]);
  };
  const xCls = firstRow(x);
  const qCls = linearRows(ctx, firstRow(h), `${prefix}.attn.qkv`, 0, D); // [B, D]
  const q = g.op("Transpose", [g.op("Reshape", [qCls, g.constInt64([-1, 1, cfg.heads, cfg.headDim])])], { perm: [0, 2, 1, 3] });
  const attn = linear(ctx, attend(ctx, q, k, v), `${prefix}.attn.proj`);
  return mlpResidual(ctx, g.op("Add", [xCls, attn]), prefix);
}

// ---------------------------------------------------------------------------------------------
// Synthetic weights (tests and benchmarks)

/** Deterministic pseudo-random ViT state dict in the DINO layout (weights ~ N(0, 0.02²)-like). */
export function syntheticVitStateDict(cfg: Pick<VitConfig, "patch" | "dim" | "depth" | "mlpHidden" | "posGrid">, seed = 0): StateDict {
  const full: VitConfig = { ...cfg, heads: 1, headDim: cfg.dim, eps: LN_EPS };
  const rand = mulberry32(seed);
  const sd: StateDict = new Map();
  for (const [name, shape] of vitExpectedKeys(full)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNormWeight = /norm\d?\.weight$/.test(name);
    const std = name.endsWith(".bias") ? 0.02 : name.includes("norm") ? 0.1 : name === "pos_embed" || name === "cls_token" ? 0.5 : 0.05;
    for (let i = 0; i < n; i++) {
      const u = rand() + rand() + rand() - 1.5; // Irwin–Hall, variance 1/4
      data[i] = (isNormWeight ? 1 : 0) + 2 * std * u;
    }
    sd.set(name, { dtype: "float32", shape, data });
  }
  return sd;
}

export { mulberry32 };
