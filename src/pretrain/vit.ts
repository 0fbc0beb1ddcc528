// The ViT that DINO pretraining trains, in TensorFlow.js, laid out so it exports to (and imports from)
// the official DINO state-dict keys.
//
//   patch embedding: a p×p stride-p convolution is a matmul on flattened patches. The patches are
//     cut in JavaScript (images are data, they need no gradient), flattened in PyTorch's weight order
//     (channel, row, column), so `patch_embed.proj.weight` [D, 3, p, p] is our [3·p·p, D] transposed.
//     No Conv2D, hence no Conv2DBackpropFilter (missing on the wasm backend).
//   blocks: the engine's pre-norm ViT block (src/engine/models/vit.ts), LayerNorm eps 1e-6.
//   position embedding: learned on the global-crop grid; other grids (local crops) get DINO's
//     bicubic interpolation as a fixed matrix applied with a matmul, so it stays differentiable.
//     The matrix is made by running the backbone loader's interpolatePosEmbed (the PyTorch-exact
//     one) on the identity: one implementation of the interpolation.
import * as tf from "@tensorflow/tfjs";
import { layerNorm } from "../engine/ops.js";
import { applyLinear, makeVitBlock, vitBlock, type Linear, type Norm, type VitBlock } from "../engine/models/vit.js";
import { normalVariable, constantVariable, hwioToOihw, oihwToHwio, type Rng } from "../engine/models/params.js";
import { interpolatePosEmbed } from "../modeling/vit.js";
import { MaskdistillError } from "../errors.js";
import { toFloat32, type StateDict, type TensorData } from "../modeling/checkpoint/index.js";

export interface PretrainVitConfig {
  patch: number;
  dim: number;
  depth: number;
  heads: number;
  mlpRatio: number;
  /** Side of the learned position grid (global crop size / patch). */
  posGrid: number;
  /**
   * A convolutional stem instead of the linear patch embedding (Xiao et al. 2021, "Early convolutions help
   * transformers see better"): 3×3 stride-2 convs (padding 1) + ReLU with these output channels, log2(patch)
   * of them, then a 1×1 projection to the width. Undefined: DINO's p×p patch embedding.
   */
  convStem?: number[];
}

/** One 3×3 stride-2 conv of the stem: kernel [3, 3, cin, cout] (HWIO), bias [cout]. */
export interface StemConv { w: tf.Variable; b: tf.Variable }

export interface PretrainVit {
  config: PretrainVitConfig;
  patchW: tf.Variable;     // [3·p·p, D]; with a conv stem [C_last, D] (the 1×1 projection)
  patchB: tf.Variable;     // [D]
  stem?: StemConv[];
  clsToken: tf.Variable;   // [1, 1, D]
  posEmbed: tf.Variable;   // [1, 1 + G², D]
  blocks: VitBlock[];
  norm: Norm;
}

export const LN_EPS = 1e-6;
const INIT_STD = 0.02;   // DINO: trunc_normal_(std=.02) for Linear, cls_token and pos_embed

export function makePretrainVit(rng: Rng, cfg: PretrainVitConfig): PretrainVit {
  const { patch: p, dim: d, posGrid: g } = cfg;
  if (d % cfg.heads !== 0) throw new MaskdistillError(`ViT width ${d} is not divisible by ${cfg.heads} heads`);
  let stem: StemConv[] | undefined, cin = 3;
  if (cfg.convStem) {
    if (2 ** cfg.convStem.length !== p) throw new MaskdistillError(`a conv stem of ${cfg.convStem.length} stride-2 convs gives patch ${2 ** cfg.convStem.length}, not ${p}`);
    stem = cfg.convStem.map((cout) => {
      const conv = { w: normalVariable(rng, [3, 3, cin, cout], Math.sqrt(2 / (9 * cin)), true), b: constantVariable([cout], 0, true) };   // He (fan-in), ReLU follows
      cin = cout;
      return conv;
    });
  }
  return {
    config: cfg,
    ...(stem ? { stem } : {}),
    patchW: normalVariable(rng, [stem ? cin : 3 * p * p, d], INIT_STD, true),
    patchB: constantVariable([d], 0, true),
    clsToken: normalVariable(rng, [1, 1, d], INIT_STD, true),
    posEmbed: normalVariable(rng, [1, 1 + g * g, d], INIT_STD, true),
    blocks: Array.from({ length: cfg.depth }, () => makeVitBlock(rng, d, cfg.heads, cfg.mlpRatio)),
    norm: { gamma: constantVariable([d], 1, true), beta: constantVariable([d], 0, true) },
  };
}

/** A batch of images cut into flattened patches, ready for the patch embedding. */
export interface PatchBatch {
  /** [batch·rows·cols, 3·p·p]: per patch, channel-major then row then column (PyTorch's weight order). */
  data: Float32Array;
  batch: number;
  rows: number;
  cols: number;
  patch: number;
}

/**
 * Cuts normalised CHW float images (all of one size, a multiple of `patch`) into patches.
 * `images[i]` is [3, height, width] row-major.
 */
export function patchify(images: Float32Array[], width: number, height: number, patch: number): PatchBatch {
  if (width % patch !== 0 || height % patch !== 0) {
    throw new MaskdistillError(`patchify: ${width}×${height} is not a multiple of the patch size ${patch}`);
  }
  const rows = height / patch, cols = width / patch, pp = patch * patch, len = 3 * pp;
  const out = new Float32Array(images.length * rows * cols * len);
  let o = 0;
  for (const img of images) {
    if (img.length !== 3 * width * height) throw new MaskdistillError(`patchify: expected 3×${height}×${width} values, got ${img.length}`);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        for (let ch = 0; ch < 3; ch++) {
          const plane = ch * width * height;
          for (let y = 0; y < patch; y++) {
            const src = plane + (r * patch + y) * width + c * patch;
            for (let x = 0; x < patch; x++) out[o++] = img[src + x];
          }
        }
      }
    }
  }
  return { data: out, batch: images.length, rows, cols, patch };
}

/** The images of a patch batch back in NHWC order (a conv stem's input). */
export function unpatchifyNhwc(x: PatchBatch): Float32Array {
  const p = x.patch, w = x.cols * p, h = x.rows * p, out = new Float32Array(x.batch * h * w * 3);
  let o = 0;
  for (let b = 0; b < x.batch; b++) {
    for (let r = 0; r < x.rows; r++) {
      for (let c = 0; c < x.cols; c++) {
        for (let ch = 0; ch < 3; ch++) {
          for (let y = 0; y < p; y++) {
            const row = ((b * h + r * p + y) * w + c * p) * 3 + ch;
            for (let xx = 0; xx < p; xx++) out[row + xx * 3] = x.data[o++];
          }
        }
      }
    }
  }
  return out;
}

/**
 * DINO's bicubic position-embedding interpolation from a G×G grid to rows×cols as a matrix
 * [rows·cols, G²] (target × source): out_patches = M · pos_patches.
 */
export function posInterpolationMatrix(grid: number, rows: number, cols: number, patch: number): Float32Array {
  const n = grid * grid;
  // A "position table" whose n patch embeddings are the unit vectors: the result holds the weights.
  const identity = new Float32Array((1 + n) * n);
  for (let i = 0; i < n; i++) identity[(1 + i) * n + i] = 1;
  const out = interpolatePosEmbed(identity, n, rows, cols, rows * patch, cols * patch);
  return out.slice(n);
}

const posMatrixCache = new Map<string, Float32Array>();

/** The position embedding [1, 1 + rows·cols, D] for a grid, differentiable w.r.t. the table. */
function positionsFor(m: PretrainVit, rows: number, cols: number): tf.Tensor {
  const g = m.config.posGrid, d = m.config.dim;
  if (rows === g && cols === g) return m.posEmbed;
  const key = `${g}:${rows}x${cols}:${m.config.patch}`;
  let mat = posMatrixCache.get(key);
  if (!mat) posMatrixCache.set(key, mat = posInterpolationMatrix(g, rows, cols, m.config.patch));
  const table = tf.reshape(m.posEmbed, [1 + g * g, d]);
  const cls = tf.slice(table, [0, 0], [1, d]);
  const patches = tf.slice(table, [1, 0], [g * g, d]);
  const moved = tf.matMul(tf.tensor2d(mat, [rows * cols, g * g]), patches);
  return tf.reshape(tf.concat([cls, moved], 0), [1, 1 + rows * cols, d]);
}

/** Tokens before the blocks: [B, 1 + rows·cols, D]. */
function embed(m: PretrainVit, x: PatchBatch): tf.Tensor3D {
  const { dim: d, patch } = m.config;
  if (x.patch !== patch) throw new MaskdistillError(`patch batch cut at ${x.patch} px, the model's patch is ${patch}`);
  const t = x.rows * x.cols;
  if (m.stem) {
    let h: tf.Tensor4D = tf.tensor4d(unpatchifyNhwc(x), [x.batch, x.rows * patch, x.cols * patch, 3]);
    for (const c of m.stem) {
      h = tf.relu(tf.add(tf.conv2d(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), c.w as tf.Tensor4D, 2, "valid"), c.b)) as tf.Tensor4D;   // PyTorch's padding 1
    }
    const tokens = tf.reshape(tf.add(tf.matMul(tf.reshape(h, [x.batch * t, h.shape[3]]), m.patchW as tf.Tensor2D), m.patchB), [x.batch, t, d]);
    return tf.add(tf.concat([tf.tile(m.clsToken, [x.batch, 1, 1]), tokens], 1), positionsFor(m, x.rows, x.cols)) as tf.Tensor3D;
  }
  const flat = tf.tensor2d(x.data, [x.batch * t, 3 * patch * patch]);
  const tokens = tf.reshape(tf.add(tf.matMul(flat, m.patchW as tf.Tensor2D), m.patchB), [x.batch, t, d]);
  const cls = tf.tile(m.clsToken, [x.batch, 1, 1]);
  return tf.add(tf.concat([cls, tokens], 1), positionsFor(m, x.rows, x.cols)) as tf.Tensor3D;
}

/** All tokens after the final LayerNorm, [B, 1 + rows·cols, D]. */
export function vitTokens(m: PretrainVit, x: PatchBatch): tf.Tensor3D {
  let h = embed(m, x);
  for (const blk of m.blocks) h = vitBlock(blk, h);
  return layerNorm(h, m.norm.gamma as tf.Tensor1D, m.norm.beta as tf.Tensor1D, LN_EPS) as tf.Tensor3D;
}

/** The CLS token after the final LayerNorm, [B, D] (what DINO's head sees). */
export function vitCls(m: PretrainVit, x: PatchBatch): tf.Tensor2D {
  const t = vitTokens(m, x);
  return tf.reshape(tf.slice(t, [0, 0, 0], [-1, 1, -1]), [x.batch, m.config.dim]);
}

/**
 * The last block's queries and keys, [B, heads, tokens, headDim] each, before the 1/√headDim
 * scaling (what stage i reads), and the CLS row of its self-attention, [B, heads, rows·cols].
 */
export function lastSelfAttention(m: PretrainVit, x: PatchBatch): { q: tf.Tensor4D; k: tf.Tensor4D; clsAttention: tf.Tensor3D } {
  return tf.tidy(() => {
    let h = embed(m, x);
    for (const blk of m.blocks.slice(0, -1)) h = vitBlock(blk, h);
    const last = m.blocks[m.blocks.length - 1];
    const [b, t, d] = h.shape;
    const heads = last.heads, dh = d / heads;
    const z = layerNorm(h, last.norm1.gamma as tf.Tensor1D, last.norm1.beta as tf.Tensor1D, LN_EPS);
    const qkv = tf.reshape(applyLinear(last.qkv, z), [b, t, 3, heads, dh]);
    const [q, k] = tf.unstack(tf.transpose(qkv, [2, 0, 3, 1, 4])) as tf.Tensor4D[];
    const attn = tf.softmax(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(dh)));   // [B, h, T, T]
    const clsAttention = tf.reshape(tf.slice(attn, [0, 0, 0, 1], [-1, -1, 1, -1]), [b, heads, t - 1]) as tf.Tensor3D;
    return { q, k, clsAttention };
  });
}

// ---------------------------------------------------------------------------------------------
// DINO layout

/** One exported tensor: its DINO key, the variable, and how our layout maps to PyTorch's. */
export interface NamedParam {
  key: string;
  variable: tf.Variable;
  /** PyTorch shape of the tensor. */
  torchShape: number[];
  /** Our [in, out] matrices are PyTorch's [out, in] transposed. */
  transposed: boolean;
  /** A conv kernel: ours HWIO, PyTorch's OIHW. */
  hwio?: boolean;
}

function linearParams(prefix: string, l: Linear): NamedParam[] {
  const [cin, cout] = l.w.shape as number[];
  return [
    { key: `${prefix}.weight`, variable: l.w, torchShape: [cout, cin], transposed: true },
    { key: `${prefix}.bias`, variable: l.b, torchShape: [cout], transposed: false },
  ];
}
function normParams(prefix: string, n: Norm): NamedParam[] {
  const d = n.gamma.shape[0];
  return [
    { key: `${prefix}.weight`, variable: n.gamma, torchShape: [d], transposed: false },
    { key: `${prefix}.bias`, variable: n.beta, torchShape: [d], transposed: false },
  ];
}

/** The backbone's parameters under the official DINO keys, in the official order. */
export function vitParams(m: PretrainVit): NamedParam[] {
  const { dim: d, patch: p, posGrid: g } = m.config;
  const out: NamedParam[] = [
    { key: "cls_token", variable: m.clsToken, torchShape: [1, 1, d], transposed: false },
    { key: "pos_embed", variable: m.posEmbed, torchShape: [1, 1 + g * g, d], transposed: false },
  ];
  // a conv stem: patch_embed.stem.<i> (3×3 stride 2) and a 1×1 patch_embed.proj (src/modeling/vit.ts reads both)
  (m.stem ?? []).forEach((c, i) => {
    const [kh, kw, cin, cout] = c.w.shape as number[];
    out.push({ key: `patch_embed.stem.${i}.weight`, variable: c.w, torchShape: [cout, cin, kh, kw], transposed: false, hwio: true },
      { key: `patch_embed.stem.${i}.bias`, variable: c.b, torchShape: [cout], transposed: false });
  });
  const cLast = m.stem ? (m.patchW.shape as number[])[0] : 0;
  out.push({ key: "patch_embed.proj.weight", variable: m.patchW, torchShape: m.stem ? [d, cLast, 1, 1] : [d, 3, p, p], transposed: true },
    { key: "patch_embed.proj.bias", variable: m.patchB, torchShape: [d], transposed: false });
  m.blocks.forEach((b, i) => {
    out.push(...normParams(`blocks.${i}.norm1`, b.norm1), ...linearParams(`blocks.${i}.attn.qkv`, b.qkv),
      ...linearParams(`blocks.${i}.attn.proj`, b.proj), ...normParams(`blocks.${i}.norm2`, b.norm2),
      ...linearParams(`blocks.${i}.mlp.fc1`, b.fc1), ...linearParams(`blocks.${i}.mlp.fc2`, b.fc2));
  });
  out.push(...normParams("norm", m.norm));
  return out;
}

/** Transposes a row-major [rows, cols] matrix. */
function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/** Values of a tensor in PyTorch layout (our [in, out] matrices transposed). */
export function toTorchLayout(values: Float32Array, param: NamedParam): Float32Array {
  if (param.hwio) return hwioToOihw(values, param.variable.shape as number[]);
  if (!param.transposed) return values;
  const [rows, cols] = param.variable.shape as number[];
  return transpose2d(values, rows, cols);
}

/** Values of a PyTorch-layout tensor in our layout. */
export function fromTorchLayout(values: Float32Array, param: NamedParam): Float32Array {
  if (param.hwio) return oihwToHwio(values, param.torchShape);
  if (!param.transposed) return values;
  const [rows, cols] = param.variable.shape as number[];
  return transpose2d(values, cols, rows);
}

/** Float32 → IEEE half (round to nearest even), for compact exports. */
export function toFloat16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < values.length; i++) {
    f[0] = values[i];
    const x = u[0], sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff, mant = x & 0x7fffff;
    let h: number;
    if (exp === 0xff) h = sign | 0x7c00 | (mant ? 0x200 : 0);
    else {
      const e = exp - 127 + 15;
      if (e >= 0x1f) h = sign | 0x7c00;
      else if (e <= 0) {
        if (e < -10) h = sign;
        else {
          const m = mant | 0x800000, shift = 14 - e;
          let v = m >>> shift;
          const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
          if (rem > half || (rem === half && (v & 1))) v++;
          h = sign | v;
        }
      } else {
        let v = (e << 10) | (mant >>> 13);
        const rem = mant & 0x1fff;
        if (rem > 0x1000 || (rem === 0x1000 && (v & 1))) v++;
        h = sign | v;
      }
    }
    out[i] = h;
  }
  return out;
}

/** The backbone as a DINO-layout state dict (float32, or float16 to halve the file). */
export async function vitStateDict(m: PretrainVit, dtype: "float32" | "float16" = "float32"): Promise<StateDict> {
  const sd: StateDict = new Map();
  for (const p of vitParams(m)) {
    const torch = toTorchLayout((await p.variable.data()) as Float32Array, p);
    const t: TensorData = dtype === "float16"
      ? { dtype: "float16", shape: p.torchShape, data: toFloat16Bits(torch) }
      : { dtype: "float32", shape: p.torchShape, data: Float32Array.from(torch) };
    sd.set(p.key, t);
  }
  return sd;
}

/**
 * Sets the backbone's variables from a DINO-layout state dict (float32 / float16 / bfloat16); every
 * key of vitParams must be there with its PyTorch shape. `file` names the source in errors.
 */
export function assignVitStateDict(m: PretrainVit, sd: StateDict, file: string): void {
  for (const p of vitParams(m)) {
    const t = sd.get(p.key);
    if (!t) throw new MaskdistillError(`missing tensor "${p.key}"`, file);
    if (t.shape.join(",") !== p.torchShape.join(",")) throw new MaskdistillError(`"${p.key}" has shape [${t.shape}], expected [${p.torchShape}]`, file);
    p.variable.assign(tf.tensor(fromTorchLayout(toFloat32(t), p), p.variable.shape));
  }
}
