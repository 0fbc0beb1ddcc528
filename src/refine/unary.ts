// From network logits to the CRF's unary energies, as MaskDistill's `dense_crf` does it
// (METHOD.md §5.3): `F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)`,
// `F.softmax(dim=0)`, then pydensecrf's `unary_from_softmax`: −log(clip(p, 1e-5, 1)). All float32
// like torch/numpy on CPU (products rounded where torch rounds them).

const fr = Math.fround;

// 2^k for k = −160..160, for expF.
const POW2 = new Float64Array(321);
for (let k = -160; k <= 160; k++) POW2[k + 160] = 2 ** k;

/**
 * e^x for the float32 softmaxes (Math.exp is a call into C in V8): x = k·ln2 + r, |r| <= ln2/2, and
 * e^r by its Taylor series to r^8 in double (relative error < 3e-10, i.e. the float32 result is the
 * correctly rounded one except on near-ties). Valid for x <= 88 (float32 range); e^x < 2^-150 gives 0.
 */
export function expF(x: number): number {
  if (x < -104) return 0;
  const k = Math.round(x * 1.4426950408889634);
  const r = x - k * 0.6931471805599453;
  const p = 1 + r * (1 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320))))))));
  return p * POW2[k + 160];
}

/** Source indices and weights along one axis, torch `align_corners=False` (no antialias). */
function axisWeights(inSize: number, outSize: number): { i0: Int32Array; i1: Int32Array; l0: Float32Array; l1: Float32Array } {
  const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize);
  const l0 = new Float32Array(outSize), l1 = new Float32Array(outSize);
  const scale = fr(inSize / outSize);
  for (let o = 0; o < outSize; o++) {
    let src = fr(fr(scale * fr(o + 0.5)) - 0.5);
    if (src < 0) src = 0;
    const a = Math.min(Math.floor(src), inSize - 1);
    const lambda = Math.min(Math.max(fr(src - a), 0), 1);
    i0[o] = a;
    i1[o] = a < inSize - 1 ? a + 1 : a;
    l1[o] = lambda;
    l0[o] = fr(1 - lambda);
  }
  return { i0, i1, l0, l1 };
}

/**
 * Bilinear resize of `c` planes `[c, h, w]` (float32, C order) to `[c, outH, outW]`, with torch's
 * `F.interpolate(mode="bilinear", align_corners=False)` semantics: per axis
 * src = (dst + 0.5)·(in/out) − 0.5 clamped below at 0, neighbours floor(src) and min(floor(src)+1, in−1).
 */
export function upsampleBilinear(src: Float32Array, c: number, h: number, w: number, outH: number, outW: number): Float32Array {
  if (src.length !== c * h * w) throw new Error(`upsampleBilinear: ${src.length} values for [${c}, ${h}, ${w}]`);
  const out = new Float32Array(c * outH * outW);
  const ys = axisWeights(h, outH), xs = axisWeights(w, outW);
  for (let ch = 0; ch < c; ch++) {
    const sb = ch * h * w, ob = ch * outH * outW;
    for (let y = 0; y < outH; y++) {
      const r0 = sb + ys.i0[y] * w, r1 = sb + ys.i1[y] * w;
      const h0 = ys.l0[y], h1 = ys.l1[y];
      const orow = ob + y * outW;
      for (let x = 0; x < outW; x++) {
        const x0 = xs.i0[x], x1 = xs.i1[x], w0 = xs.l0[x], w1 = xs.l1[x];
        const t0 = fr(fr(src[r0 + x0] * w0) + fr(src[r0 + x1] * w1));
        const t1 = fr(fr(src[r1 + x0] * w0) + fr(src[r1 + x1] * w1));
        out[orow + x] = fr(t0 * h0) + fr(t1 * h1);
      }
    }
  }
  return out;
}

/** Softmax over the channel axis of `[c, n]` (float32, C order), like torch's CPU `softmax(dim=0)`. */
export function softmaxChannels(x: Float32Array, c: number, n: number): Float32Array {
  if (x.length !== c * n) throw new Error(`softmaxChannels: ${x.length} values for [${c}, ${n}]`);
  const out = new Float32Array(c * n);
  const sum = new Float32Array(n);
  const max = new Float32Array(n).fill(-Infinity);
  for (let k = 0; k < c; k++) {
    const b = k * n;
    for (let i = 0; i < n; i++) if (x[b + i] > max[i]) max[i] = x[b + i];
  }
  for (let k = 0; k < c; k++) {
    const b = k * n;
    for (let i = 0; i < n; i++) {
      const e = fr(expF(fr(x[b + i] - max[i])));
      out[b + i] = e;
      sum[i] += e;
    }
  }
  for (let i = 0; i < n; i++) sum[i] = 1 / sum[i];
  for (let k = 0; k < c; k++) {
    const b = k * n;
    for (let i = 0; i < n; i++) out[b + i] *= sum[i];
  }
  return out;
}

/** pydensecrf `unary_from_softmax` (no `scale`): U = −log(clip(p, clip, 1)), float32, same layout. */
export function unaryFromSoftmax(p: Float32Array, clip = 1e-5): Float32Array {
  const lo = fr(clip);
  const out = new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const v = p[i] < lo ? lo : p[i] > 1 ? 1 : p[i];
    out[i] = -Math.log(v);
  }
  return out;
}

/**
 * softmaxChannels + unaryFromSoftmax in one pass over `[c, n]` logits, without a log per entry:
 * U = −log p is taken as log Σ − (x − max) (p = e^(x−max)/Σ), which differs from numpy's
 * −log(float32 p) by about one float32 ulp — below the fixtures' noise floor (U ± 1 ulp moves Q by
 * ≤ 1.3e-5 and no label). Entries with p < clip get −log(clip) exactly as the reference. Returns the
 * probabilities `[c, n]` (null unless keepProbs) and U pixel-major `[n, c]` (the CRF's layout).
 */
export function softmaxUnary(x: Float32Array, c: number, n: number, clip = 1e-5, keepProbs = true): { probs: Float32Array | null; unary: Float32Array } {
  if (x.length !== c * n) throw new Error(`softmaxUnary: ${x.length} values for [${c}, ${n}]`);
  const probs = keepProbs ? new Float32Array(c * n) : null;
  const unary = new Float32Array(n * c);
  const e = new Float32Array(c);
  const lo = fr(clip), uLo = fr(-Math.log(lo));
  // pixel by pixel (U is written sequentially; the c planes are read as c sequential streams)
  for (let i = 0; i < n; i++) {
    let mx = -Infinity;
    for (let k = 0; k < c; k++) { const v = x[k * n + i]; if (v > mx) mx = v; }
    let sum = 0;
    for (let k = 0; k < c; k++) { const v = fr(expF(fr(x[k * n + i] - mx))); e[k] = v; sum = fr(sum + v); }
    const inv = fr(1 / sum), logSum = Math.log(sum), ub = i * c;
    for (let k = 0; k < c; k++) {
      const p = fr(e[k] * inv);
      if (probs) probs[k * n + i] = p;
      unary[ub + k] = p < lo ? uLo : logSum - fr(x[k * n + i] - mx);
    }
  }
  return { probs, unary };
}
