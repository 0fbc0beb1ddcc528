// Fully connected CRF with Gaussian edge potentials (Krähenbühl & Koltun 2011), mean-field inference
// over permutohedral-lattice filtering, reproducing pydensecrf (densecrf C++) in float32:
//
//   Q₀ = softmax(−U);  N times:  Q ← softmax(−U − Σ_k compat_k(K̃_k Q))
//
// with Potts compatibility (compat(x) = −w·x, so the message is added with weight w) and, for the
// default NORMALIZE_SYMMETRIC, K̃ = diag(n)·K·diag(n), n = 1/sqrt(K·1 + 1e-20), K the lattice
// approximation of exp(−|f_i − f_j|²/2) including the self term. MaskDistill's parameters
// (METHOD.md §5.3): Gaussian sxy = 1, compat 3; bilateral sxy = 67, srgb = 3, compat 4 on the
// BGR image; 10 iterations.
//
// Layout: everything inside is pixel-major (`[N, C]`, value (i, c) at i*C + c) like densecrf's
// column-major `MatrixXf(C, N)`; setUnaryEnergy takes pydensecrf's `[C, N]` and `qToPlanes` turns Q
// back into `[C, H, W]` planes.
//
// Two backends with the same float32 lattice arithmetic: TypeScript loops (permutohedral.ts) and, for
// C > 2 where WebAssembly SIMD exists (Node 16.4+), the wasm kernels of latticeWasm.ts, which process
// rows of Cp = C rounded up to 4 floats like densecrf's SSE code. Memory of the wasm path: −U, Q and
// the message sum (3 × N·Cp float32), two lattice value buffers ((M+1)·Cp float32 each, M = lattice
// points of the larger lattice), per kernel the lattice (3 × (d+1)·N offsets/weights, 2(d+1)·M
// neighbour ids, N norms), plus U and the returned Q in JS (2 × N·C). 500×375, 21 classes: 152 MB,
// ≈ 10 float32 per pixel and class (pydensecrf holds U, Q, two temporaries and its lattice buffers,
// about as much).
import { buildLattice, latticeFilterAccumulate, latticeOnes, type Lattice, type LatticeScratch } from "./permutohedral.js";
import { latticeKernels, wasmAvailable, type LatticeKernels } from "./latticeWasm.js";
import { expF } from "./unary.js";

const fr = Math.fround;

/** densecrf's NormalizationType: SYMMETRIC (pydensecrf's default), BEFORE, AFTER, NO_NORMALIZATION. */
export type Normalization = "symmetric" | "before" | "after" | "none";

export interface CrfKernel {
  lattice: Lattice;
  /** Per-pixel normaliser (meaning depends on `normalization`). */
  norm: Float32Array;
  normalization: Normalization;
  /** Potts weight w (the message is −w·K̃Q, which inference subtracts). */
  compat: number;
}

export interface DenseCrf {
  width: number;
  height: number;
  /** Number of labels C. */
  labels: number;
  /** Pixels N = width·height. */
  n: number;
  /** Unary energies, pixel-major [N, C]; zeros until setUnaryEnergy. */
  unary: Float32Array;
  kernels: CrfKernel[];
}

export function createDenseCrf(width: number, height: number, labels: number): DenseCrf {
  if (!(width > 0 && height > 0 && labels > 0)) throw new Error(`createDenseCrf: bad size ${width}×${height}×${labels}`);
  const n = width * height;
  return { width, height, labels, n, unary: new Float32Array(n * labels), kernels: [] };
}

/** Sets the unary energies from pydensecrf's layout `[C, N]` (label-major, pixel index y·W + x). */
export function setUnaryEnergy(crf: DenseCrf, u: Float32Array): void {
  const { n, labels: c } = crf;
  if (u.length !== n * c) throw new Error(`setUnaryEnergy: ${u.length} values, expected ${c}×${n}`);
  for (let k = 0; k < c; k++) {
    const b = k * n;
    for (let i = 0; i < n; i++) crf.unary[i * c + k] = u[b + i];
  }
}

/**
 * Adds a pairwise term over arbitrary features, pixel-major (`features[i*d + j]`, float32), with Potts
 * weight `compat` (densecrf `addPairwiseEnergy`).
 */
export function addPairwiseEnergy(crf: DenseCrf, features: Float32Array, d: number, compat: number, normalization: Normalization = "symmetric"): CrfKernel {
  const { n } = crf;
  const lattice = buildLattice(features, n, d);
  const norm = latticeOnes(lattice);
  if (normalization === "none") {
    let total = 0;
    for (let i = 0; i < n; i++) total = fr(total + norm[i]);
    norm.fill(fr(n / total));
  } else if (normalization === "symmetric") {
    for (let i = 0; i < n; i++) norm[i] = 1 / Math.sqrt(norm[i] + 1e-20);
  } else {
    for (let i = 0; i < n; i++) norm[i] = 1 / (norm[i] + 1e-20);
  }
  const kernel: CrfKernel = { lattice, norm, normalization, compat };
  crf.kernels.push(kernel);
  return kernel;
}

/** `addPairwiseGaussian(sxy, compat)`: features (x/sx, y/sy). Defaults: MaskDistill's sxy = 1, compat = 3. */
export function addPairwiseGaussian(crf: DenseCrf, opts: { sxy?: number | [number, number]; compat?: number; normalization?: Normalization } = {}): CrfKernel {
  const [sx, sy] = pair(opts.sxy ?? 1);
  const { width: W, height: H } = crf;
  const f = new Float32Array(W * H * 2);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      f[2 * i] = x / sx;
      f[2 * i + 1] = y / sy;
    }
  }
  return addPairwiseEnergy(crf, f, 2, opts.compat ?? 3, opts.normalization);
}

/**
 * `addPairwiseBilateral(sxy, srgb, rgbim, compat)`: features (x/sx, y/sy, c0/s0, c1/s1, c2/s2) with
 * c0..c2 the image's channels in the order given (`image[(y*W + x)*3 + ch]`). MaskDistill passes the
 * cv2 (BGR) image; the order changes the lattice, so pass BGR for parity (see `denseCrfFromLogits`).
 * Defaults: MaskDistill's sxy = 67, srgb = 3, compat = 4 (pydensecrf's own are 80, 13, 10).
 */
export function addPairwiseBilateral(
  crf: DenseCrf, image: Uint8Array,
  opts: { sxy?: number | [number, number]; srgb?: number | [number, number, number]; compat?: number; normalization?: Normalization } = {},
): CrfKernel {
  const [sx, sy] = pair(opts.sxy ?? 67);
  const s = opts.srgb ?? 3;
  const [s0, s1, s2] = typeof s === "number" ? [s, s, s] : s;
  const { width: W, height: H } = crf;
  if (image.length !== W * H * 3) throw new Error(`addPairwiseBilateral: image has ${image.length} bytes, expected ${W}×${H}×3`);
  const sxf = fr(sx), syf = fr(sy), a = fr(s0), b = fr(s1), c = fr(s2);
  const f = new Float32Array(W * H * 5);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x, o = 5 * i;
      f[o] = x / sxf;
      f[o + 1] = y / syf;
      f[o + 2] = image[3 * i] / a;
      f[o + 3] = image[3 * i + 1] / b;
      f[o + 4] = image[3 * i + 2] / c;
    }
  }
  return addPairwiseEnergy(crf, f, 5, opts.compat ?? 4, opts.normalization);
}

function pair(v: number | [number, number]): [number, number] {
  const [a, b] = typeof v === "number" ? [v, v] : v;
  return [fr(a), fr(b)];
}

/**
 * Per pixel: subtract the max, exp, divide by the sum (densecrf `expAndNormalize`). `out` is pixel-major
 * [N, C]; `input` has rows of `stride` values (≥ C), negated first when `negate`.
 */
export function expAndNormalize(out: Float32Array, input: Float32Array, n: number, c: number, negate = false, stride = c): void {
  const sgn = negate ? -1 : 1;
  for (let i = 0; i < n; i++) {
    const b = i * c, ib = i * stride;
    let mx = -Infinity;
    for (let k = 0; k < c; k++) { const v = sgn * input[ib + k]; if (v > mx) mx = v; }
    let sum = 0;
    for (let k = 0; k < c; k++) {
      const e = fr(expF(fr(sgn * input[ib + k] - mx)));
      out[b + k] = e;
      sum = fr(sum + e);
    }
    for (let k = 0; k < c; k++) out[b + k] /= sum;
  }
}

/** Where one kernel's lattice lives in the wasm memory (byte offsets). */
interface WasmKernel { off: number; w: number; wa: number; nb: number; norm: number }

/** The wasm SIMD path: lattices, a one-row scratch (`pre`), message sum (`acc`), −U, Q and two value buffers. */
interface WasmPlan {
  k: LatticeKernels;
  cp: number;
  rowBytes: number;
  pre: number;
  acc: number;
  /** −U and Q, rows of Cp. */
  negU: number;
  q: number;
  mask: number;
  valA: number;
  valB: number;
  kernels: WasmKernel[];
  preView: Float32Array;
  accView: Float32Array;
  heap: Float32Array;
}

/** Mean-field state: Q plus the buffers one step needs (allocated once). */
export interface CrfState {
  /** Q, pixel-major [N, C] (on the wasm path only up to date after currentQ). */
  q: Float32Array;
  acc: Float32Array;
  pre: Float32Array;
  scratch: LatticeScratch;
  wasm: WasmPlan | null;
}

/**
 * Moves the lattices into one wasm memory (their arrays become views of it, so the JS copies are
 * freed) and lays out the buffers of the SIMD path. Null when wasm SIMD is unavailable or C <= 2
 * (densecrf filters 1–2 values per pixel with its scalar routine, which the TypeScript path mirrors).
 */
function planWasm(crf: DenseCrf): WasmPlan | null {
  const { n, labels: c } = crf;
  if (c <= 2 || crf.kernels.length === 0 || !wasmAvailable()) return null;
  const cp = (c + 3) & ~3, rowBytes = cp * 4;
  let bytes = 0;
  const take = (b: number) => { const at = bytes; bytes += (b + 15) & ~15; return at; };
  const kernels: WasmKernel[] = crf.kernels.map((kern) => {
    const e = n * (kern.lattice.d + 1);
    return { off: take(4 * e), w: take(4 * e), wa: take(4 * e), nb: take(4 * kern.lattice.neighbors.length), norm: take(4 * n) };
  });
  const maxM = Math.max(...crf.kernels.map((k) => k.lattice.m));
  const pre = take(rowBytes), acc = take(n * rowBytes), negU = take(n * rowBytes), q = take(n * rowBytes), mask = take(16);
  const valA = take((maxM + 1) * rowBytes), valB = take((maxM + 1) * rowBytes);
  const k = latticeKernels(bytes);
  if (!k) return null;
  const buf = k.memory.buffer;
  crf.kernels.forEach((kern, i) => {
    const p = kernels[i], lat = kern.lattice;
    const off = new Int32Array(buf, p.off, lat.offset.length); off.set(lat.offset);
    const w = new Float32Array(buf, p.w, lat.weight.length); w.set(lat.weight);
    const wa = new Float32Array(buf, p.wa, lat.weight.length);
    const alpha = fr(1 / fr(1 + 2 ** -lat.d));
    for (let j = 0; j < wa.length; j++) wa[j] = w[j] * alpha;
    const nb = new Int32Array(buf, p.nb, lat.neighbors.length); nb.set(lat.neighbors);
    const norm = new Float32Array(buf, p.norm, n); norm.set(kern.norm);
    lat.offset = off; lat.weight = w; lat.neighbors = nb; kern.norm = norm;
  });
  const lanes = new Int32Array(buf, mask, 4);
  for (let l = 0; l < 4; l++) lanes[l] = 4 * (cp / 4 - 1) + l < c ? -1 : 0;
  const nu = new Float32Array(buf, negU, n * cp);
  for (let i = 0; i < n; i++) for (let j = 0; j < c; j++) nu[i * cp + j] = -crf.unary[i * c + j];
  return {
    k, cp, rowBytes, pre, acc, negU, q, mask, valA, valB, kernels,
    preView: new Float32Array(buf, pre, cp),
    accView: new Float32Array(buf, acc, n * cp),
    heap: new Float32Array(buf),
  };
}

/** How to run the lattice: "auto" (wasm SIMD where available, default) or "js" (the TypeScript loops; same bits). */
export type CrfBackend = "auto" | "js";

/** Q₀ = softmax(−U) (densecrf `startInference`). */
export function startInference(crf: DenseCrf, backend: CrfBackend = "auto"): CrfState {
  const { n, labels: c } = crf;
  const q = new Float32Array(n * c);
  const wasm = backend === "auto" ? planWasm(crf) : null;
  if (wasm) {
    wasm.k.softmax(wasm.negU, wasm.q, n, wasm.rowBytes, wasm.mask);
    return { q, acc: wasm.accView, pre: wasm.preView, scratch: { channels: c, a: new Float32Array(0), b: new Float32Array(0) }, wasm };
  }
  expAndNormalize(q, crf.unary, n, c, true);
  const maxM = Math.max(0, ...crf.kernels.map((k) => k.lattice.m));
  return {
    q,
    acc: new Float32Array(n * c),
    pre: new Float32Array(n * c),
    scratch: { channels: c, a: new Float32Array((maxM + 1) * c), b: new Float32Array((maxM + 1) * c) },
    wasm: null,
  };
}

/** One mean-field iteration in place (densecrf `stepInference`). */
export function stepInference(crf: DenseCrf, st: CrfState): void {
  if (st.wasm) { stepWasm(crf, st.wasm); return; }
  const { n, labels: c } = crf;
  const { q, acc, pre } = st;
  for (let i = 0; i < acc.length; i++) acc[i] = -crf.unary[i];
  for (const kern of crf.kernels) {
    const size = (kern.lattice.m + 1) * c;
    const scratch: LatticeScratch = { channels: c, a: st.scratch.a.subarray(0, size), b: st.scratch.b.subarray(0, size) };
    const pre1 = kern.normalization === "symmetric" || kern.normalization === "before";
    const post = kern.normalization === "symmetric" || kern.normalization === "after" ? kern.norm : null;
    let input = q;
    if (pre1) {
      const nrm = kern.norm;
      for (let i = 0; i < n; i++) {
        const s = nrm[i], b = i * c;
        for (let k = 0; k < c; k++) pre[b + k] = q[b + k] * s;
      }
      input = pre;
    }
    latticeFilterAccumulate(kern.lattice, input, c, scratch, post, kern.compat, acc);
  }
  expAndNormalize(q, acc, n, c);
}

function stepWasm(crf: DenseCrf, w: WasmPlan): void {
  const { n } = crf;
  const { cp, rowBytes, heap, k } = w;
  heap.copyWithin(w.acc >> 2, w.negU >> 2, (w.negU >> 2) + n * cp);
  for (let ki = 0; ki < crf.kernels.length; ki++) {
    const kern = crf.kernels[ki], p = w.kernels[ki], lat = kern.lattice;
    const pre1 = kern.normalization === "symmetric" || kern.normalization === "before" ? 1 : 0;
    const post = kern.normalization === "symmetric" || kern.normalization === "after" ? 1 : 0;
    heap.fill(0, w.valA >> 2, (w.valA >> 2) + (lat.m + 1) * cp);
    heap.fill(0, w.valB >> 2, (w.valB >> 2) + cp);
    if (pre1) k.splatNorm(p.off, p.w, w.q, w.valA, n, lat.d + 1, rowBytes, p.norm, w.pre);
    else k.splat(p.off, p.w, w.q, w.valA, n, lat.d + 1, rowBytes);
    let cur = w.valA, nxt = w.valB;
    for (let j = 0; j <= lat.d; j++) {
      k.blur(p.nb + 8 * j * lat.m, cur, nxt, lat.m, rowBytes);
      const t = cur; cur = nxt; nxt = t;
    }
    k.slice(p.off, p.wa, cur, p.norm, w.acc, n, lat.d + 1, rowBytes, kern.compat, post);
  }
  k.softmax(w.acc, w.q, n, rowBytes, w.mask);
}

/** Q of the current state, pixel-major [N, C] (the live buffer on the TypeScript path, a copy on the wasm path). */
export function currentQ(crf: DenseCrf, st: CrfState): Float32Array {
  const w = st.wasm;
  if (!w) return st.q;
  const { n, labels: c } = crf;
  const qp = new Float32Array(w.k.memory.buffer, w.q, n * w.cp);
  for (let i = 0; i < n; i++) for (let j = 0; j < c; j++) st.q[i * c + j] = qp[i * w.cp + j];
  return st.q;
}

/**
 * Runs `iterations` mean-field steps and returns Q, pixel-major [N, C] (densecrf `inference`).
 * `onIteration(it, q)` sees Q after each step (it = 1..iterations; q is reused, copy it to keep it).
 */
export function inference(crf: DenseCrf, iterations: number, onIteration?: (it: number, q: Float32Array) => void, backend: CrfBackend = "auto"): Float32Array {
  const st = startInference(crf, backend);
  for (let it = 1; it <= iterations; it++) {
    stepInference(crf, st);
    if (onIteration) onIteration(it, currentQ(crf, st));
  }
  return currentQ(crf, st);
}

/** argmax over labels per pixel (first index on ties) of pixel-major Q. */
export function labelsFromQ(q: Float32Array, n: number, c: number): Uint8Array {
  if (c > 256) throw new Error(`labelsFromQ: ${c} labels do not fit in uint8`);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const b = i * c;
    let best = 0, bv = q[b];
    for (let k = 1; k < c; k++) if (q[b + k] > bv) { bv = q[b + k]; best = k; }
    out[i] = best;
  }
  return out;
}

/** Pixel-major [N, C] → planes [C, N] (i.e. [C, H, W]). */
export function qToPlanes(q: Float32Array, n: number, c: number): Float32Array {
  const out = new Float32Array(n * c);
  for (let i = 0; i < n; i++) {
    const b = i * c;
    for (let k = 0; k < c; k++) out[k * n + i] = q[b + k];
  }
  return out;
}


/** Bytes held by a CRF and its inference state (typed arrays and the wasm memory). */
export function crfMemoryBytes(crf: DenseCrf, st: CrfState): number {
  let b = crf.unary.byteLength + st.q.byteLength;
  if (st.wasm) return b + st.wasm.k.memory.buffer.byteLength; // lattices, −U, Q, buffers live there
  for (const k of crf.kernels) b += k.norm.byteLength + k.lattice.offset.byteLength + k.lattice.weight.byteLength + k.lattice.neighbors.byteLength;
  return b + st.acc.byteLength + st.pre.byteLength + st.scratch.a.byteLength + st.scratch.b.byteLength;
}
