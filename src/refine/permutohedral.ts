// The permutohedral lattice (Adams, Baek & Davis 2010) as the dense CRF of Krähenbühl & Koltun uses
// it (densecrf `permutohedral.cpp`, the SSE build pydensecrf always gets on x86-64), reproduced in
// float32 arithmetic step by step so that every pixel lands on the same lattice points with the same
// barycentric weights, and splat/blur/slice accumulate in the same order:
//
// - elevation: scale[i] = float(1/sqrt((i+2)(i+1)) · float(sqrt(2/3)·(d+1))); from the last feature
//   down, cf = f[j-1]·scale[j-1], e[j] = sm − j·cf, sm += cf; e[0] = sm (all float32);
// - nearest remainder-0 point: v = float(1/(d+1))·e[i] rounded half-to-even (cvtps2dq), rem0 = v·(d+1);
// - the simplex: rank by comparing e[i]−rem0[i] pairwise (ties go to the later coordinate), then
//   shift by the sum of the rounded values so the point lies on the plane;
// - barycentric weights accumulated in coordinate order, the wrap-around weight added last;
// - lattice keys are 16-bit (C `short`, so they wrap like the reference on huge coordinates);
// - the SSE path processes pixels 4 at a time and pads the last block with all-zero features, which
//   inserts the lattice points of the origin's simplex: they take part in the blur, so we add them too;
// - blur along directions j = 0..d: v ← v + 0.5·(v[n1] + v[n2]), a missing neighbour counts as 0;
// - slice with α = 1/(1 + 2^−d): one value per pixel (the normaliser) uses the scalar routine
//   `out += (w·v)·α`, several values the SSE one `out += (w·α)·v`.
// float32 rounding is reproduced with Math.fround wherever the C code rounds an intermediate; a sum of
// two float32 values computed in double and stored to a Float32Array rounds exactly like float32
// addition, so only products that feed a sum need an explicit fround.
//
// Memory: offsets (int32) + weights (float32), (d+1) per pixel; blur neighbours, 2·(d+1) int32 per
// lattice point; the hash keys (d int16 per point) are dropped after construction.

/** A permutohedral lattice built over per-pixel features. */
export interface Lattice {
  /** Feature dimension. */
  d: number;
  /** Number of pixels (feature vectors). */
  n: number;
  /** Number of lattice points. */
  m: number;
  /** Per pixel and simplex vertex: lattice point index + 1 (slot 0 is the always-zero "missing" point). */
  offset: Int32Array;
  /** Per pixel and simplex vertex: barycentric weight (float32). */
  weight: Float32Array;
  /** Per blur direction j and lattice point i: neighbour indices + 1 at [2(j·m+i)] and [2(j·m+i)+1] (0 = missing). */
  neighbors: Int32Array;
}

const fr = Math.fround;

/** Round half to even, as `_mm_cvtps_epi32` in the default rounding mode. */
function roundHalfEven(v: number): number {
  let r = Math.round(v);
  if (r - v === 0.5 && (r & 1) !== 0) r -= 1;
  return r;
}

/** Open-addressing hash set of int16 keys of length d → dense ids in insertion order. */
interface KeyTable {
  d: number;
  keys: Int16Array;
  table: Int32Array;
  mask: number;
  size: number;
}

function newTable(d: number, expected: number): KeyTable {
  let cap = 16;
  while (cap < 2 * expected) cap *= 2;
  return { d, keys: new Int16Array(Math.max(16, expected) * d), table: new Int32Array(cap).fill(-1), mask: cap - 1, size: 0 };
}

function hashKey(k: Int16Array, ko: number, d: number): number {
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < d; i++) h = Math.imul(h ^ (k[ko + i] & 0xffff), 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return h ^ (h >>> 12); // int32 (a uint32 result would be boxed); callers mask it
}

function growTable(t: KeyTable): void {
  const cap = t.table.length * 2;
  const table = new Int32Array(cap).fill(-1);
  const mask = cap - 1;
  for (let e = 0; e < t.size; e++) {
    let h = hashKey(t.keys, e * t.d, t.d) & mask;
    while (table[h] >= 0) h = (h + 1) & mask;
    table[h] = e;
  }
  t.table = table;
  t.mask = mask;
}

/** Finds key (d values at k[ko..]); inserts it when `create`; returns its id or −1. */
function findKey(t: KeyTable, k: Int16Array, ko: number, create: boolean): number {
  const d = t.d;
  if (create && 2 * (t.size + 1) > t.table.length) growTable(t);
  let h = hashKey(k, ko, d) & t.mask;
  const keys = t.keys, table = t.table;
  for (;;) {
    const e = table[h];
    if (e < 0) {
      if (!create) return -1;
      if ((t.size + 1) * d > t.keys.length) {
        const bigger = new Int16Array(t.keys.length * 2);
        bigger.set(t.keys);
        t.keys = bigger;
      }
      const id = t.size++;
      const dst = t.keys, o = id * d;
      for (let i = 0; i < d; i++) dst[o + i] = k[ko + i];
      table[h] = id;
      return id;
    }
    let same = true;
    const eo = e * d;
    for (let i = 0; i < d; i++) if (keys[eo + i] !== k[ko + i]) { same = false; break; }
    if (same) return e;
    h = (h + 1) & t.mask;
  }
}

/**
 * Builds the lattice for `n` feature vectors of dimension `d`, pixel-major (`features[i*d + j]`, float32).
 * Matches densecrf's SSE `Permutohedral::init` point for point (see the file comment).
 */
export function buildLattice(features: Float32Array, n: number, d: number): Lattice {
  if (features.length < n * d) throw new Error(`buildLattice: ${features.length} feature values for ${n}×${d}`);
  const dp1 = d + 1;
  const invStd = fr(Math.sqrt(2 / 3) * dp1);
  const scale = new Float64Array(d);
  for (let i = 0; i < d; i++) scale[i] = fr((1 / Math.sqrt((i + 2) * (i + 1))) * invStd);
  // canonical simplex: canonical[r*(d+1) + j] = r for j <= d-r, else r-(d+1)
  const canonical = new Int32Array(dp1 * dp1);
  for (let r = 0; r <= d; r++) for (let j = 0; j <= d; j++) canonical[r * dp1 + j] = j <= d - r ? r : r - dp1;

  const table = newTable(d, n);
  const offset = new Int32Array(n * dp1);
  const weight = new Float32Array(n * dp1);
  locatePixels(features, n, d, scale, canonical, table, offset, weight);
  // blur neighbours along each of the d+1 lattice directions
  const neighbors = findNeighbors(table);
  return { d, n, m: table.size, offset, weight, neighbors };
}

/** Per pixel: its simplex's d+1 lattice points (created in the table) and barycentric weights. */
function locatePixels(
  features: Float32Array, n: number, d: number, scale: Float64Array, canonical: Int32Array,
  table: KeyTable, offset: Int32Array, weight: Float32Array,
): void {
  const dp1 = d + 1;
  const invDp1 = fr(1 / dp1);
  const elev = new Float64Array(dp1), rem0 = new Float64Array(dp1), diff = new Float64Array(dp1), bary = new Float64Array(d + 2);
  const rank = new Int32Array(dp1);
  const key = new Int16Array(dp1);
  const zero = new Float32Array(d);
  // the previous pixel's simplex (rem0 and rank of the first d coordinates decide all its points)
  const prevRem0 = new Float64Array(d), prevRank = new Int32Array(d), prevIds = new Int32Array(dp1);
  // The SSE build runs pixels in blocks of 4; the padding of the last block has zero features and
  // its lattice points are created too.
  const nPadded = (n + 3) & ~3;
  for (let p = 0; p < nPadded; p++) {
    const f = p < n ? features : zero, fo = p < n ? p * d : 0;
    // elevate
    let sm = 0;
    for (let j = d; j > 0; j--) {
      const cf = fr(f[fo + j - 1] * scale[j - 1]);
      elev[j] = fr(sm - fr(j * cf));
      sm = fr(sm + cf);
    }
    elev[0] = sm;
    // closest remainder-0 point
    let sum = 0;
    for (let i = 0; i <= d; i++) {
      const v = roundHalfEven(fr(invDp1 * elev[i]));
      rem0[i] = fr(v * dp1);
      diff[i] = fr(elev[i] - rem0[i]);
      rank[i] = 0;
      sum += v;
    }
    // rank of each coordinate's remainder
    for (let i = 0; i < d; i++) {
      const di = diff[i];
      for (let j = i + 1; j <= d; j++) {
        if (di < diff[j]) rank[i]++;
        else rank[j]++;
      }
    }
    // bring the point back onto the plane
    for (let i = 0; i <= d; i++) {
      rank[i] += sum;
      if (rank[i] < 0) { rank[i] += dp1; rem0[i] += dp1; diff[i] = fr(elev[i] - rem0[i]); }
      else if (rank[i] >= dp1) { rank[i] -= dp1; rem0[i] -= dp1; diff[i] = fr(elev[i] - rem0[i]); }
    }
    // barycentric coordinates
    for (let i = 0; i <= d + 1; i++) bary[i] = 0;
    for (let i = 0; i <= d; i++) {
      const v = fr(diff[i] * invDp1);
      const q = d - rank[i];
      bary[q] = fr(bary[q] + v);
      bary[q + 1] = fr(bary[q + 1] - v);
    }
    bary[0] = fr(bary[0] + fr(1 + bary[d + 1]));
    // the d+1 vertices; neighbouring pixels often share the simplex: then reuse its points
    let same = p > 0;
    for (let i = 0; i < d && same; i++) if (rem0[i] !== prevRem0[i] || rank[i] !== prevRank[i]) same = false;
    for (let r = 0; r <= d; r++) {
      let id: number;
      if (same) id = prevIds[r];
      else {
        for (let i = 0; i < d; i++) key[i] = rem0[i] + canonical[r * dp1 + rank[i]];
        id = findKey(table, key, 0, true);
        prevIds[r] = id;
      }
      if (p < n) {
        offset[p * dp1 + r] = id + 1;
        weight[p * dp1 + r] = bary[r];
      }
    }
    for (let i = 0; i < d; i++) { prevRem0[i] = rem0[i]; prevRank[i] = rank[i]; }
  }
}

/** For each lattice direction j and point i: the ids + 1 of key ∓ (1, …, −d at j, …, 1) (0 = absent). */
function findNeighbors(table: KeyTable): Int32Array {
  const d = table.d, dp1 = d + 1;
  const m = table.size;
  const neighbors = new Int32Array(2 * dp1 * m);
  const n1 = new Int16Array(dp1);
  const keys = table.keys;
  // n2 is the inverse step of n1 (also modulo 2^16), so n1(i) = a  <=>  n2(a) = i: one lookup per pair
  for (let j = 0; j <= d; j++) {
    const base = 2 * j * m;
    for (let i = 0; i < m; i++) {
      const ko = i * d;
      for (let k = 0; k < d; k++) n1[k] = keys[ko + k] - 1;
      if (j < d) n1[j] = keys[ko + j] + d;
      const a = findKey(table, n1, 0, false);
      if (a >= 0) {
        neighbors[base + 2 * i] = a + 1;
        neighbors[base + 2 * a + 1] = i + 1;
      }
    }
  }
  return neighbors;
}

/** Scratch buffers for filtering `channels` values per pixel: two lattice value arrays. */
export interface LatticeScratch {
  channels: number;
  a: Float32Array;
  b: Float32Array;
}

export function latticeScratch(lat: Lattice, channels: number): LatticeScratch {
  const size = (lat.m + 1) * channels;
  return { channels, a: new Float32Array(size), b: new Float32Array(size) };
}

/** Splat `input` (pixel-major, `c` values per pixel) and blur; returns the blurred lattice values. */
function splatBlur(lat: Lattice, input: Float32Array, c: number, scratch: LatticeScratch, reverse: boolean): Float32Array {
  const { n, m, d, offset, weight, neighbors } = lat;
  const dp1 = d + 1;
  let values = scratch.a, next = scratch.b;
  values.fill(0);
  // splat: values[o] += w·in, pixel by pixel, vertex by vertex
  for (let i = 0; i < n; i++) {
    const ib = i * c, vb = i * dp1;
    for (let j = 0; j < dp1; j++) {
      const o = offset[vb + j] * c, w = weight[vb + j];
      for (let k = 0; k < c; k++) values[o + k] += fr(w * input[ib + k]);
    }
  }
  // blur: one pass per lattice direction; slot 0 stays zero in both buffers
  next.fill(0, 0, c);
  for (let s = 0; s <= d; s++) {
    const j = reverse ? d - s : s;
    const nb = 2 * j * m;
    for (let i = 0; i < m; i++) {
      const o = (i + 1) * c;
      const a = neighbors[nb + 2 * i] * c, b = neighbors[nb + 2 * i + 1] * c;
      for (let k = 0; k < c; k++) next[o + k] = values[o + k] + 0.5 * fr(values[a + k] + values[b + k]);
    }
    const t = values; values = next; next = t;
  }
  return values;
}

/** K·1, one value per pixel (the normaliser's input), with densecrf's scalar routine; = latticeFilter(ones, c = 1). */
export function latticeOnes(lat: Lattice): Float32Array {
  const { n, m, d, offset, weight, neighbors } = lat;
  const dp1 = d + 1;
  let values = new Float32Array(m + 1), next = new Float32Array(m + 1);
  for (let e = 0; e < n * dp1; e++) values[offset[e]] += weight[e]; // w·1 = w
  for (let j = 0; j <= d; j++) {
    const nb = 2 * j * m;
    for (let i = 0; i < m; i++) next[i + 1] = values[i + 1] + 0.5 * fr(values[neighbors[nb + 2 * i]] + values[neighbors[nb + 2 * i + 1]]);
    const t = values; values = next; next = t;
  }
  const alpha = fr(1 / fr(1 + 2 ** -d));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let j = 0, e = i * dp1; j < dp1; j++, e++) acc = fr(acc + fr(fr(weight[e] * values[offset[e]]) * alpha));
    out[i] = acc;
  }
  return out;
}

/**
 * K·input for `c` values per pixel (pixel-major), writing `out` (may be `input`): splat, blur, slice.
 * `c <= 2` slices like densecrf's scalar routine, `c > 2` like its SSE routine (they round differently).
 */
export function latticeFilter(lat: Lattice, input: Float32Array, out: Float32Array, c: number, scratch?: LatticeScratch, reverse = false): void {
  const s = scratch && scratch.channels === c ? scratch : latticeScratch(lat, c);
  const values = splatBlur(lat, input, c, s, reverse);
  const { n, d, offset, weight } = lat;
  const dp1 = d + 1;
  const alpha = fr(1 / fr(1 + 2 ** -d));
  if (c <= 2) {
    // densecrf's scalar routine (used for 1 or 2 values per pixel): out += (w·v)·α
    for (let i = 0; i < n; i++) {
      const ob = i * c, vb = i * dp1;
      for (let k = 0; k < c; k++) out[ob + k] = 0;
      for (let j = 0; j < dp1; j++) {
        const o = offset[vb + j] * c, w = weight[vb + j];
        for (let k = 0; k < c; k++) out[ob + k] += fr(fr(w * values[o + k]) * alpha);
      }
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    const ob = i * c, vb = i * dp1;
    for (let k = 0; k < c; k++) out[ob + k] = 0;
    for (let j = 0; j < dp1; j++) {
      const o = offset[vb + j] * c, wa = fr(weight[vb + j] * alpha);
      for (let k = 0; k < c; k++) out[ob + k] += fr(wa * values[o + k]);
    }
  }
}

/**
 * Like latticeFilter, but fused with what mean field does next: for each pixel i and
 * channel k, `acc[i*c+k] += w · float(norm[i] · (K·input)[i*c+k])` (the symmetric normalisation's
 * second multiply and the Potts weight), all in float32 as densecrf rounds them.
 */
export function latticeFilterAccumulate(
  lat: Lattice, input: Float32Array, c: number, scratch: LatticeScratch,
  post: Float32Array | null, w: number, acc: Float32Array,
): void {
  const values = splatBlur(lat, input, c, scratch, false);
  const { n, d, offset, weight } = lat;
  const dp1 = d + 1;
  const alpha = fr(1 / fr(1 + 2 ** -d));
  const px = new Float32Array(c);
  const wf = fr(w);
  const scalar = c <= 2;
  for (let i = 0; i < n; i++) {
    const vb = i * dp1;
    for (let k = 0; k < c; k++) px[k] = 0;
    for (let j = 0; j < dp1; j++) {
      const o = offset[vb + j] * c;
      if (scalar) {
        const wj = weight[vb + j];
        for (let k = 0; k < c; k++) px[k] += fr(fr(wj * values[o + k]) * alpha);
      } else {
        const wa = fr(weight[vb + j] * alpha);
        for (let k = 0; k < c; k++) px[k] += fr(wa * values[o + k]);
      }
    }
    const ob = i * c;
    if (post) {
      const nrm = post[i];
      for (let k = 0; k < c; k++) acc[ob + k] += fr(wf * fr(px[k] * nrm));
    } else {
      for (let k = 0; k < c; k++) acc[ob + k] += fr(wf * px[k]);
    }
  }
}
