// The COCO mask API (pycocotools `_mask` / maskApi.c) on typed arrays.
//
// An Rle holds uncompressed runs over the mask in COCO's column-major order (index x*h + y),
// alternating zeros and ones and always starting with a (possibly empty) run of zeros. Every
// function here reproduces maskApi.c bit for bit, including its unsigned 32-bit arithmetic and the
// double-precision polygon rasterisation, because COCO numbers (areas, boxes, IoUs, AP) depend on it.
// Masks handed in and out are ROW-major (index y*w + x), like every other mask in this codebase.
import { MaskdistillError } from "../errors.js";

export interface Rle {
  h: number;
  w: number;
  /** Run lengths, column-major, starting with zeros. */
  counts: Uint32Array;
}

/** A COCO JSON RLE: `counts` is the compressed string or the uncompressed run list. */
export type CocoRle = { size: [number, number]; counts: string | number[] };
/** A COCO JSON segmentation: polygons `[[x0, y0, x1, y1, ...], ...]` or an RLE. */
export type CocoSegmentation = number[][] | CocoRle;

/** Encodes a row-major mask (nonzero = foreground) of size h×w. */
export function rleFromMask(mask: ArrayLike<number>, h: number, w: number): Rle {
  if (mask.length !== h * w) {
    throw new MaskdistillError(`rleFromMask: mask has ${mask.length} pixels, expected h*w = ${h}*${w} = ${h * w}`);
  }
  // Two passes over the column-major order: count the runs, then fill them.
  let runs = 1, prev = false;
  for (let x = 0; x < w; x++) {
    for (let p = x; p < h * w; p += w) {
      const v = mask[p] !== 0;
      if (v !== prev) { runs++; prev = v; }
    }
  }
  const counts = new Uint32Array(runs);
  let k = 0, c = 0;
  prev = false;
  for (let x = 0; x < w; x++) {
    for (let p = x; p < h * w; p += w) {
      const v = mask[p] !== 0;
      if (v !== prev) { counts[k++] = c; c = 0; prev = v; }
      c++;
    }
  }
  counts[k] = c;
  return { h, w, counts };
}

/** Decodes to a row-major 0/1 mask. */
export function maskFromRle(rle: Rle): Uint8Array {
  const out = new Uint8Array(rle.h * rle.w);
  const pixels = rlePixels(rle);
  for (let i = 0; i < pixels.length; i++) out[pixels[i]] = 1;
  return out;
}

/** The row-major indices (y*w + x) of the mask's ones, in the RLE's column-major order: O(area), no h*w pass. */
export function rlePixels(rle: Rle): Int32Array {
  const { h, w, counts } = rle;
  let area = 0;
  for (let j = 1; j < counts.length; j += 2) area += counts[j];
  const out = new Int32Array(area);
  let pos = 0, k = 0;
  for (let j = 0; j < counts.length; j++) {
    const n = counts[j];
    if (pos + n > h * w) throw new MaskdistillError(`RLE counts sum past h*w = ${h * w} (malformed RLE)`);
    if (j & 1) {
      let x = Math.floor(pos / h), y = pos - x * h;
      for (let i = 0; i < n; i++) {
        out[k++] = y * w + x;
        if (++y === h) { y = 0; x++; }
      }
    }
    pos += n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Compressed strings: LEB128-like, 6 bits per char (ASCII 48..111), counts after the second
// stored as differences to the count two places back.

/** Compresses the counts to COCO's string form (`rleToString`). */
export function rleToString(rle: Rle): string {
  const cnts = rle.counts;
  const out: number[] = [];
  for (let i = 0; i < cnts.length; i++) {
    let x = cnts[i];
    if (i > 2) x -= cnts[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f; // low 5 bits of the (64-bit, signed) value
      x = Math.floor(x / 32); // arithmetic shift right by 5
      more = c & 0x10 ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      out.push(c + 48);
    }
  }
  // Chunked: String.fromCharCode with a huge argument list overflows the stack.
  let s = "";
  for (let i = 0; i < out.length; i += 8192) s += String.fromCharCode(...out.slice(i, i + 8192));
  return s;
}

/** Decompresses a COCO counts string (`rleFrString`). */
export function rleFromString(str: string, h: number, w: number): Rle {
  const m = scanRleString(str, true);
  return { h, w, counts: decodeScratch.slice(0, m) };
}

/**
 * The sum of the run lengths of a COCO counts string, checking its structure exactly as
 * `rleFromString` does (same errors) without allocating the runs: what validation needs.
 */
export function rleStringTotal(str: string): number {
  scanRleString(str, false);
  return scanTotal;
}

/** One buffer the decoder writes into (grown as needed); `rleFromString` copies the runs out. */
let decodeScratch = new Uint32Array(4096);
/** The sum of the counts of the last scan. */
let scanTotal = 0;

/**
 * Decodes `str` (into `decodeScratch` when `write`), returning the number of counts. Integer maths
 * for numbers of up to 6 characters (30 bits, every count of a real mask); longer ones take the
 * double-precision path of maskApi's 64-bit arithmetic. The result is C's (uint) cast.
 */
function scanRleString(str: string, write: boolean): number {
  const n = str.length;
  if (write && decodeScratch.length < n) decodeScratch = new Uint32Array(Math.max(n, 2 * decodeScratch.length));
  const out = decodeScratch;
  let m = 0, p = 0, prev1 = 0, prev2 = 0, total = 0;
  while (p < n) {
    let x = 0, k = 0, c = 0;
    do {
      if (p >= n) throw new MaskdistillError(`RLE counts string ends inside a number (truncated?)`);
      if (k === 12) throw new MaskdistillError(`RLE counts string has a number longer than 12 characters at ${p}`);
      const code = str.charCodeAt(p);
      if (code < 48 || code > 111) {
        throw new MaskdistillError(`RLE counts string has an invalid character '${str[p]}' at ${p} (allowed: ASCII 48..111)`);
      }
      c = code - 48;
      if (k < 6) x |= (c & 0x1f) << (5 * k);
      else x += (c & 0x1f) * POW32[k];
      p++; k++;
    } while (c & 0x20);
    if (c & 0x10) x -= k <= 6 ? 1 << (5 * k) : POW32[k]; // sign-extend
    if (m > 2) x += prev2;
    const v = k <= 6 ? x >>> 0 : toUint32(x);
    if (write) out[m] = v;
    m++;
    total += v;
    prev2 = prev1; prev1 = v;
  }
  scanTotal = total;
  return m;
}

/** 32**k: the weight of the k-th 5-bit group. */
const POW32 = Array.from({ length: 16 }, (_, k) => 2 ** (5 * k));

/** C's (uint) cast of an integer-valued double. */
function toUint32(x: number): number {
  const r = x % 4294967296;
  return r < 0 ? r + 4294967296 : r;
}

// ---------------------------------------------------------------------------------------------

/** Number of foreground pixels (sum of the odd runs). */
export function rleArea(rle: Rle): number {
  const c = rle.counts;
  let a = 0;
  for (let j = 1; j < c.length; j += 2) a += c[j];
  return a;
}

/** Tight box [x, y, w, h] exactly as maskApi's rleToBbox (an object crossing columns spans the full height of those columns). */
export function rleToBbox(rle: Rle): [number, number, number, number] {
  const { h, w } = rle;
  const cnts = rle.counts;
  const m = cnts.length - (cnts.length % 2);
  if (m === 0) return [0, 0, 0, 0];
  let xs = w, ys = h, xe = 0, ye = 0, cc = 0, xp = 0;
  for (let j = 0; j < m; j++) {
    cc = (cc + cnts[j]) >>> 0;
    const t = (cc - (j & 1)) >>> 0; // last pixel of a ones-run, first of a zeros-run... as uint
    const y = t % h;
    const x = (t - y) / h;
    if ((j & 1) === 0) xp = x;
    else if (xp < x) { ys = 0; ye = h - 1; }
    if (x < xs) xs = x;
    if (x > xe) xe = x;
    if (y < ys) ys = y;
    if (y > ye) ye = y;
  }
  return [xs, ys, (xe - xs + 1) >>> 0, (ye - ys + 1) >>> 0];
}

/** maskApi's boundary step from (pu, pv) to (u, v) on the x5 grid: a toggle where it crosses a column centre. */
function pushToggle(toggles: number[], u: number, v: number, pu: number, pv: number, h: number, lastColumn: number): void {
  const xd = ((u < pu ? u : u - 1) + 0.5) / 5 - 0.5;
  if (Math.floor(xd) === xd && xd >= 0 && xd <= lastColumn) {
    let yd = ((v < pv ? v : pv) + 0.5) / 5 - 0.5;
    if (yd < 0) yd = 0;
    else if (yd > h) yd = h;
    toggles.push(xd * h + Math.ceil(yd));
  }
}

function mod5(x: number): number {
  const r = x % 5;
  return r < 0 ? r + 5 : r;
}

/** Rasterises one polygon [x0, y0, x1, y1, ...] exactly as maskApi's rleFrPoly (boundary upsampled ×5). */
export function rleFromPolygon(xy: ArrayLike<number>, h: number, w: number): Rle {
  const k = Math.floor(xy.length / 2);
  if (k < 1) throw new MaskdistillError(`rleFromPolygon: polygon has ${xy.length} numbers, needs at least one point`);
  const scale = 5;
  // Vertices on the ×5 integer grid.
  const x = new Int32Array(k + 1), y = new Int32Array(k + 1);
  for (let j = 0; j < k; j++) x[j] = Math.trunc(scale * xy[2 * j] + 0.5);
  x[k] = x[0];
  for (let j = 0; j < k; j++) y[j] = Math.trunc(scale * xy[2 * j + 1] + 0.5);
  y[k] = y[0];
  // maskApi walks the dense boundary points (u, v) of every edge in order and keeps, at each step
  // where u changes, the point where the boundary crosses a pixel column centre (downsampled). We
  // do the same walk without storing the points: (pu, pv) is the previous point.
  const toggles: number[] = [];
  let pu = 0, pv = 0, started = false;
  const lastColumn = w - 1;
  for (let j = 0; j < k; j++) {
    let xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const dx = Math.abs(xe - xs), dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) { let t = xs; xs = xe; xe = t; t = ys; ys = ye; ye = t; }
    // A zero-length edge gives s = NaN; its single point repeats its neighbours' u, so it is never used.
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    const n = dx >= dy ? dx : dy;
    if (dx >= dy && n > 0) {
      // Along x: u moves by one per step, so a step crosses a column centre exactly when
      // min(u, previous u) = 2 (mod 5); only those steps (and the first point) are evaluated.
      const t0 = flip ? n : 0;
      const u0 = t0 + xs, v0 = Math.trunc(ys + s * t0 + 0.5);
      if (started && u0 !== pu) pushToggle(toggles, u0, v0, pu, pv, h, lastColumn);
      // Step d (1..n) goes from t' = t - dir to t; the column index is min(u) = xs + min(t, t').
      // Not flipped: t = d, min = d - 1. Flipped: t = n - d, min = n - d.
      // Not flipped: need xs + d - 1 = 2 (mod 5) -> d = 3 - xs (mod 5), d >= 1.
      // Flipped: need xs + n - d = 2 (mod 5) -> d = xs + n - 2 (mod 5), d >= 1.
      let d = flip ? mod5(xs + n - 2) : mod5(3 - xs);
      if (d === 0) d = 5;
      for (; d <= n; d += 5) {
        const t = flip ? n - d : d, tp = flip ? t + 1 : t - 1;
        const col = (flip ? t : tp) + xs; // min(u, previous u)
        const xd = (col - 2) / scale;
        if (xd >= 0 && xd <= lastColumn) {
          const v = Math.trunc(ys + s * t + 0.5), vp = Math.trunc(ys + s * tp + 0.5);
          let yd = ((v < vp ? v : vp) + 0.5) / scale - 0.5;
          if (yd < 0) yd = 0;
          else if (yd > h) yd = h;
          toggles.push(xd * h + Math.ceil(yd));
        }
      }
      const tn = flip ? 0 : n;
      pu = tn + xs; pv = Math.trunc(ys + s * tn + 0.5); started = true;
      continue;
    }
    if (dx < dy) {
      // Along y: v moves by one per step and u = trunc(xs + s*t + 0.5) by at most one, monotonically
      // in t; each change of u between columns c and c + 1 with c = 2 (mod 5) is a toggle at
      // min(v) of the two points. Each such change is found by bisection over t.
      const t0 = flip ? n : 0;
      const u0 = Math.trunc(xs + s * t0 + 0.5), v0 = t0 + ys;
      if (started && u0 !== pu) pushToggle(toggles, u0, v0, pu, pv, h, lastColumn);
      const uA = Math.trunc(xs + 0.5), uB = Math.trunc(xs + s * n + 0.5);
      const up = uB > uA;
      const cLo = up ? uA : uB, cHi = up ? uB : uA;
      for (let c = cLo + mod5(2 - cLo); c < cHi; c += 5) {
        const xd = (c - 2) / scale;
        if (xd < 0 || xd > lastColumn) continue;
        // First t in [1, n] with u(t) on the far side of the c | c + 1 boundary.
        let lo = 1, hi = n;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          const um = Math.trunc(xs + s * mid + 0.5);
          if (up ? um >= c + 1 : um <= c) hi = mid; else lo = mid + 1;
        }
        let yd = ((lo - 1 + ys) + 0.5) / scale - 0.5;
        if (yd < 0) yd = 0;
        else if (yd > h) yd = h;
        toggles.push(xd * h + Math.ceil(yd));
      }
      const tn = flip ? 0 : n;
      pu = Math.trunc(xs + s * tn + 0.5); pv = tn + ys; started = true;
      continue;
    }
    for (let d = 0; d <= n; d++) {
      const t = flip ? n - d : d;
      let u: number, v: number;
      if (dx >= dy) { u = t + xs; v = Math.trunc(ys + s * t + 0.5); }
      else { v = t + ys; u = Math.trunc(xs + s * t + 0.5); }
      if (started && u !== pu) pushToggle(toggles, u, v, pu, pv, h, lastColumn);
      pu = u; pv = v; started = true;
    }
  }
  // Column-major toggle positions -> runs.
  const nb = toggles.length;
  const a = new Uint32Array(nb + 1);
  for (let j = 0; j < nb; j++) a[j] = toggles[j];
  a[nb] = h * w;
  a.sort();
  let prev = 0;
  for (let j = 0; j < a.length; j++) { const t = a[j]; a[j] = t - prev; prev = t; }
  // An empty difference means two toggles at one place: fold the following run into the previous one.
  const b = new Uint32Array(a.length);
  let j = 0, nr = 0;
  b[nr++] = a[j++];
  while (j < a.length) {
    if (a[j] > 0) b[nr++] = a[j++];
    else { j++; if (j < a.length) b[nr - 1] += a[j++]; }
  }
  return { h, w, counts: b.slice(0, nr) };
}

/** One RLE per polygon (pycocotools `frPyObjects(polygons, h, w)`, before merging). */
export function rleFromPolygons(polygons: number[][], h: number, w: number): Rle[] {
  return polygons.map((p) => rleFromPolygon(p, h, w));
}

/** The box [x, y, w, h] rasterised as a polygon (maskApi's rleFrBbox). */
export function rleFromBbox(bbox: ArrayLike<number>, h: number, w: number): Rle {
  const xs = bbox[0], xe = xs + bbox[2];
  const ys = bbox[1], ye = ys + bbox[3];
  return rleFromPolygon([xs, ys, xs, ye, xe, ye, xe, ys], h, w);
}

/** Union (or intersection) of RLEs of one size, folded left to right as maskApi's rleMerge. */
export function rleMerge(rles: Rle[], intersect = false): Rle {
  if (rles.length === 0) return { h: 0, w: 0, counts: new Uint32Array(0) };
  const { h, w } = rles[0];
  let acc = rles[0].counts;
  if (rles.length === 1) return { h, w, counts: acc.slice() };
  for (let i = 1; i < rles.length; i++) {
    const B = rles[i];
    if (B.h !== h || B.w !== w) {
      throw new MaskdistillError(`rleMerge: RLE ${i} is ${B.h}x${B.w}, RLE 0 is ${h}x${w}; only masks of one size can be merged`);
    }
    acc = mergeTwo(acc, B.counts, intersect);
  }
  return { h, w, counts: acc };
}

function mergeTwo(A: Uint32Array, B: Uint32Array, intersect: boolean): Uint32Array {
  const out = new Uint32Array(A.length + B.length + 1);
  let ca = A[0], cb = B[0];
  let v = false, va = false, vb = false;
  let m = 0, a = 1, b = 1, cc = 0, ct = 1;
  while (ct > 0) {
    const c = ca < cb ? ca : cb;
    cc += c;
    ct = 0;
    let advanced = false;
    ca -= c;
    if (!ca && a < A.length) { ca = A[a++]; va = !va; advanced = true; }
    ct += ca;
    cb -= c;
    if (!cb && b < B.length) { cb = B[b++]; vb = !vb; advanced = true; }
    ct += cb;
    const vp: boolean = v;
    v = intersect ? va && vb : va || vb;
    if (v !== vp || ct === 0) { out[m++] = cc; cc = 0; }
    if (c === 0 && !advanced && ct > 0) throw new MaskdistillError("rleMerge: RLE counts of equal-size masks sum to different totals (malformed RLE)");
  }
  return out.slice(0, m);
}

/**
 * Box IoU as maskApi's bbIou: dt×gt, row-major (out[d*nGt + g]). Boxes are [x, y, w, h]; for a crowd
 * GT the union is the detection's area.
 */
export function bboxIou(dt: ArrayLike<number>[], gt: ArrayLike<number>[], iscrowd: ArrayLike<number | boolean>): Float64Array {
  const m = dt.length, n = gt.length;
  const o = new Float64Array(m * n);
  for (let g = 0; g < n; g++) {
    const G = gt[g];
    const ga = G[2] * G[3];
    const crowd = !!iscrowd[g];
    for (let d = 0; d < m; d++) {
      const D = dt[d];
      const da = D[2] * D[3];
      const iw = Math.min(D[2] + D[0], G[2] + G[0]) - Math.max(D[0], G[0]);
      if (iw <= 0) continue;
      const ih = Math.min(D[3] + D[1], G[3] + G[1]) - Math.max(D[1], G[1]);
      if (ih <= 0) continue;
      const i = iw * ih;
      const u = crowd ? da : da + ga - i;
      o[d * n + g] = i / u;
    }
  }
  return o;
}

/**
 * Mask IoU as maskApi's rleIou: dt×gt, row-major (out[d*nGt + g]). Pairs whose tight boxes do not
 * overlap are 0 without scanning the runs; for a crowd GT the union is the detection's area;
 * a size mismatch gives -1 (as pycocotools).
 */
export function rleIou(dt: Rle[], gt: Rle[], iscrowd: ArrayLike<number | boolean>): Float64Array {
  const m = dt.length, n = gt.length;
  const o = bboxIou(dt.map(rleToBbox), gt.map(rleToBbox), iscrowd);
  for (let g = 0; g < n; g++) {
    const G = gt[g];
    const crowd = !!iscrowd[g];
    for (let d = 0; d < m; d++) {
      if (!(o[d * n + g] > 0)) continue;
      const D = dt[d];
      if (D.h !== G.h || D.w !== G.w) { o[d * n + g] = -1; continue; }
      o[d * n + g] = runIou(D.counts, G.counts, crowd);
    }
  }
  return o;
}

/** Walks two run lists in step, counting intersection and union. */
function runIou(A: Uint32Array, B: Uint32Array, crowd: boolean): number {
  const ka = A.length, kb = B.length;
  let ca = A[0], cb = B[0], va = false, vb = false;
  let a = 1, b = 1, inter = 0, union = 0, ct = 1;
  while (ct > 0) {
    const c = ca < cb ? ca : cb;
    if (va || vb) { union += c; if (va && vb) inter += c; }
    ct = 0;
    let advanced = false;
    ca -= c;
    if (!ca && a < ka) { ca = A[a++]; va = !va; advanced = true; }
    ct += ca;
    cb -= c;
    if (!cb && b < kb) { cb = B[b++]; vb = !vb; advanced = true; }
    ct += cb;
    if (c === 0 && !advanced && ct > 0) throw new MaskdistillError("rleIou: RLE counts of equal-size masks sum to different totals (malformed RLE)");
  }
  if (inter === 0) union = 1;
  else if (crowd) { union = 0; for (let j = 1; j < ka; j += 2) union += A[j]; }
  return inter / union;
}

// ---------------------------------------------------------------------------------------------
// COCO JSON segmentations.

/**
 * A COCO segmentation as one RLE, with pycocotools `annToRLE` semantics: polygons are rasterised at
 * the image size h×w and merged; an RLE (uncompressed or compressed) keeps its own `size`.
 */
export function rleFromCoco(seg: CocoSegmentation, h: number, w: number): Rle {
  if (Array.isArray(seg)) {
    if (seg.length === 0) throw new MaskdistillError("segmentation is an empty polygon list");
    seg.forEach((p, i) => {
      if (!Array.isArray(p) || p.length < 6 || p.length % 2 !== 0) {
        throw new MaskdistillError(`polygon ${i} has ${Array.isArray(p) ? p.length : "no"} numbers; a polygon needs an even count of at least 6 (3 points)`);
      }
    });
    return rleMerge(rleFromPolygons(seg, h, w));
  }
  const [rh, rw] = seg.size;
  if (typeof seg.counts === "string") return rleFromString(seg.counts, rh, rw);
  return { h: rh, w: rw, counts: Uint32Array.from(seg.counts) };
}

/** The compressed COCO JSON form `{size: [h, w], counts: string}`. */
export function rleToCoco(rle: Rle): { size: [number, number]; counts: string } {
  return { size: [rle.h, rle.w], counts: rleToString(rle) };
}
