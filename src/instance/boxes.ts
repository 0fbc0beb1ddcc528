// Box geometry of Mask R-CNN as torchvision 0.14 computes it on the CPU (and detectron2 where it
// differs): the R-CNN box coder (decode/encode), clipping, small-box removal, area, pairwise IoU,
// NMS, batched NMS and top-k. Boxes are flat Float32Array [N*4] (x1, y1, x2, y2).
//
// Every arithmetic step that torchvision does on float32 tensors is rounded to float32 here
// (Math.fround) so that discrete outcomes (which box survives NMS, which box is "small") are the
// same as PyTorch's; decodeBoxes equals torchvision bit for bit (with SLEEF's expf, as torch.exp),
// encodeBoxes to 1 ulp (torch.log's SLEEF logf is not reproduced).
// Orders of equal scores follow what PyTorch runs on the CPU: `Tensor.sort(descending=True)` (used
// by batched NMS's per-class variant) is libstdc++'s unstable std::sort (introsort), `torch.topk` is
// std::partial_sort or std::nth_element + std::sort — both emulated step by step below — and the
// NMS kernel of the installed torchvision 0.14 visits equal scores in index order (a stable sort;
// established on the fixtures, where the unstable order fails).
import { MaskdistillError } from "../errors.js";
import { fma32 } from "./transform.js";

const f = Math.fround;

/** Box-coder weights (wx, wy, ww, wh). */
export type BoxWeights = readonly [number, number, number, number];
/** The RPN's weights (torchvision `rpn.box_coder`, detectron2 RPN.BBOX_REG_WEIGHTS). */
export const RPN_WEIGHTS: BoxWeights = [1, 1, 1, 1];
/** The box head's weights (torchvision `roi_heads.box_coder`, detectron2 ROI_BOX_HEAD.BBOX_REG_WEIGHTS). */
export const BOX_HEAD_WEIGHTS: BoxWeights = [10, 10, 5, 5];
/** Largest dw/dh before exp: a 16 px box may grow to 1000 px (both libraries). */
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);

// torch.exp on float32 CPU tensors (PyTorch 1.13 without MKL, AVX2 kernels) is SLEEF's
// Sleef_expf8_u10 for every element (vec::map, partial loads for the tail): a Cody–Waite range
// reduction by q = rint(x/ln 2) and a degree-6 polynomial, with fused multiply-adds, then ·2^q.
// Reproduced step by step so that decoded boxes equal torchvision's bit for bit.
const R_LN2F = f(1.442695040888963407359924681001892137426645954152985934135449406931);
const L2UF = f(0.693145751953125);
const L2LF = f(1.428606765330187045e-6);
const EXP_POLY = [0.000198527617612853646278381, 0.00139304355252534151077271, 0.00833336077630519866943359, 0.0416664853692054748535156, 0.166666671633720397949219, 0.5].map(f);

/** Round to nearest, ties to even (cvtps2dq). */
function rintEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** float32 exp as PyTorch computes it on the CPU (SLEEF expf, 1 ulp). */
export function expf32(x: number): number {
  const d = f(x);
  if (d !== d) return NaN;
  if (d < -104) return 0;
  if (d > 100) return Infinity;
  const q = rintEven(f(d * R_LN2F));
  let s = fma32(q, -L2UF, d);
  s = fma32(q, -L2LF, s);
  let u = EXP_POLY[0];
  for (let i = 1; i < EXP_POLY.length; i++) u = fma32(u, s, EXP_POLY[i]);
  u = f(1 + fma32(f(s * s), u, s));
  const h = q >> 1;
  return f(f(u * 2 ** h) * 2 ** (q - h)); // vldexp2: two exact power-of-two steps
}

function checkBoxes(boxes: ArrayLike<number>, what: string): number {
  if (boxes.length % 4 !== 0) throw new MaskdistillError(`${what}: length ${boxes.length} is not a multiple of 4 (x1, y1, x2, y2 per box)`);
  return boxes.length / 4;
}

/**
 * Applies regression deltas to reference boxes: torchvision `BoxCoder.decode_single` — identical
 * to detectron2's `Box2BoxTransform.apply_deltas` (both: centre + 0.5·size, no "+1" since
 * detectron2 v0.2; dw, dh clamped at `clip` before exp). `deltas` is [N, K*4] (K boxes per
 * reference box, e.g. one per class), `boxes` [N*4]; the result is [N*K*4].
 */
export function decodeBoxes(deltas: ArrayLike<number>, boxes: ArrayLike<number>, weights: BoxWeights, clip = BBOX_XFORM_CLIP): Float32Array {
  const n = checkBoxes(boxes, "decodeBoxes boxes");
  if (n === 0) {
    if (deltas.length !== 0) throw new MaskdistillError("decodeBoxes: deltas given for no boxes");
    return new Float32Array(0);
  }
  if (deltas.length % (4 * n) !== 0) throw new MaskdistillError(`decodeBoxes: ${deltas.length} deltas for ${n} boxes (need N*K*4)`);
  const k = deltas.length / (4 * n);
  const [wx, wy, ww, wh] = weights.map(f);
  const c = f(clip);
  const out = new Float32Array(deltas.length);
  for (let i = 0; i < n; i++) {
    const x1 = f(boxes[4 * i]), y1 = f(boxes[4 * i + 1]);
    const w = f(f(boxes[4 * i + 2]) - x1), h = f(f(boxes[4 * i + 3]) - y1);
    const cx = f(x1 + f(0.5 * w)), cy = f(y1 + f(0.5 * h));
    for (let j = 0; j < k; j++) {
      const o = (i * k + j) * 4;
      const dx = f(f(deltas[o]) / wx), dy = f(f(deltas[o + 1]) / wy);
      let dw = f(f(deltas[o + 2]) / ww), dh = f(f(deltas[o + 3]) / wh);
      if (dw > c) dw = c;
      if (dh > c) dh = c;
      const pcx = f(f(dx * w) + cx), pcy = f(f(dy * h) + cy);
      const pw = f(expf32(dw) * w), ph = f(expf32(dh) * h);
      const hw = f(0.5 * pw), hh = f(0.5 * ph);
      out[o] = pcx - hw;
      out[o + 1] = pcy - hh;
      out[o + 2] = pcx + hw;
      out[o + 3] = pcy + hh;
    }
  }
  return out;
}

/**
 * The regression targets that turn `proposals` into `gt` (same length): torchvision `encode_boxes`
 * = detectron2 `Box2BoxTransform.get_deltas`: wx·(Δcx)/w, wy·(Δcy)/h, ww·log(w'/w), wh·log(h'/h).
 */
export function encodeBoxes(gt: ArrayLike<number>, proposals: ArrayLike<number>, weights: BoxWeights): Float32Array {
  const n = checkBoxes(proposals, "encodeBoxes proposals");
  if (checkBoxes(gt, "encodeBoxes gt") !== n) throw new MaskdistillError(`encodeBoxes: ${gt.length / 4} targets for ${n} proposals`);
  const [wx, wy, ww, wh] = weights.map(f);
  const out = new Float32Array(4 * n);
  for (let i = 0; i < n; i++) {
    const o = 4 * i;
    const px1 = f(proposals[o]), py1 = f(proposals[o + 1]);
    const pw = f(f(proposals[o + 2]) - px1), ph = f(f(proposals[o + 3]) - py1);
    const pcx = f(px1 + f(0.5 * pw)), pcy = f(py1 + f(0.5 * ph));
    const gx1 = f(gt[o]), gy1 = f(gt[o + 1]);
    const gw = f(f(gt[o + 2]) - gx1), gh = f(f(gt[o + 3]) - gy1);
    const gcx = f(gx1 + f(0.5 * gw)), gcy = f(gy1 + f(0.5 * gh));
    out[o] = f(wx * f(gcx - pcx)) / pw;
    out[o + 1] = f(wy * f(gcy - pcy)) / ph;
    out[o + 2] = ww * f(Math.log(f(gw / pw)));
    out[o + 3] = wh * f(Math.log(f(gh / ph)));
  }
  return out;
}

/** Clamps x to [0, width] and y to [0, height] (torchvision `clip_boxes_to_image` = detectron2 `Boxes.clip`). New array. */
export function clipBoxes(boxes: ArrayLike<number>, height: number, width: number): Float32Array {
  checkBoxes(boxes, "clipBoxes");
  const out = new Float32Array(boxes.length);
  const H = f(height), W = f(width);
  for (let i = 0; i < boxes.length; i++) {
    const lim = i % 2 === 0 ? W : H;
    const v = f(boxes[i]);
    out[i] = v < 0 ? 0 : v > lim ? lim : v; // clamp(min=0, max=lim); NaN stays NaN
  }
  return out;
}

/**
 * Indices (ascending) of the boxes whose width and height are both ≥ minSize — torchvision
 * `remove_small_boxes` (≥, not >; minSize compared as float32, e.g. 1e-3 → 0.0010000000474974513).
 */
export function removeSmallBoxes(boxes: ArrayLike<number>, minSize: number): Int32Array {
  const n = checkBoxes(boxes, "removeSmallBoxes");
  const m = f(minSize);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    const w = f(f(boxes[4 * i + 2]) - f(boxes[4 * i])), h = f(f(boxes[4 * i + 3]) - f(boxes[4 * i + 1]));
    if (w >= m && h >= m) keep.push(i);
  }
  return Int32Array.from(keep);
}

/**
 * Indices (ascending) of the boxes whose width and height are both > threshold — detectron2
 * `Boxes.nonempty(threshold)` (structures/boxes.py: `keep = (widths > threshold) & (heights > threshold)`),
 * which its RPN (`find_top_rpn_proposals`, MIN_SIZE 0) uses instead of remove_small_boxes.
 */
export function nonEmptyBoxes(boxes: ArrayLike<number>, threshold = 0): Int32Array {
  const n = checkBoxes(boxes, "nonEmptyBoxes");
  const t = f(threshold);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    const w = f(f(boxes[4 * i + 2]) - f(boxes[4 * i])), h = f(f(boxes[4 * i + 3]) - f(boxes[4 * i + 1]));
    if (w > t && h > t) keep.push(i);
  }
  return Int32Array.from(keep);
}

/** (x2 − x1)·(y2 − y1) per box, in float32 (torchvision `box_area` = detectron2 `Boxes.area`). */
export function boxArea(boxes: ArrayLike<number>): Float32Array {
  const n = checkBoxes(boxes, "boxArea");
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f(f(boxes[4 * i + 2]) - f(boxes[4 * i])) * f(f(boxes[4 * i + 3]) - f(boxes[4 * i + 1]));
  return out;
}

/**
 * Pairwise IoU [N*M] (row i = box i of `a`): torchvision `box_iou` — inter / (area1 + area2 − inter),
 * float32, 0/0 = NaN as in torchvision. detectron2's `pairwise_iou` writes 0 where inter = 0
 * (`zeroWhereDisjoint`).
 */
export function boxIou(a: ArrayLike<number>, b: ArrayLike<number>, zeroWhereDisjoint = false): Float32Array {
  const n = checkBoxes(a, "boxIou a"), m = checkBoxes(b, "boxIou b");
  const areaA = boxArea(a), areaB = boxArea(b);
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    const ax1 = f(a[4 * i]), ay1 = f(a[4 * i + 1]), ax2 = f(a[4 * i + 2]), ay2 = f(a[4 * i + 3]);
    for (let j = 0; j < m; j++) {
      const w = f(Math.min(ax2, f(b[4 * j + 2])) - Math.max(ax1, f(b[4 * j])));
      const h = f(Math.min(ay2, f(b[4 * j + 3])) - Math.max(ay1, f(b[4 * j + 1])));
      const inter = f((w > 0 ? w : 0) * (h > 0 ? h : 0));
      out[i * m + j] = zeroWhereDisjoint && !(inter > 0) ? 0 : f(inter / f(f(areaA[i] + areaB[j]) - inter));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// libstdc++'s sorting algorithms on (value, index) pairs, as PyTorch 1.13 runs them on the CPU.

type Less = (a: number, b: number) => boolean;
/** PyTorch's descending comparator: NaN first, then larger values. */
const DESC: Less = (a, b) => (a !== a && b === b) || a > b;

/** Parallel arrays of a sequence of (value, index) pairs. */
interface Pairs {
  v: Float64Array;
  ix: Int32Array;
}

function swapPairs(s: Pairs, i: number, j: number): void {
  const v = s.v[i], x = s.ix[i];
  s.v[i] = s.v[j];
  s.ix[i] = s.ix[j];
  s.v[j] = v;
  s.ix[j] = x;
}

function unguardedLinearInsert(s: Pairs, last: number, less: Less): void {
  const val = s.v[last], vi = s.ix[last];
  let next = last - 1;
  while (less(val, s.v[next])) {
    s.v[last] = s.v[next];
    s.ix[last] = s.ix[next];
    last = next;
    next--;
  }
  s.v[last] = val;
  s.ix[last] = vi;
}

function insertionSort(s: Pairs, first: number, last: number, less: Less): void {
  if (first === last) return;
  for (let i = first + 1; i < last; i++) {
    if (less(s.v[i], s.v[first])) {
      const val = s.v[i], vi = s.ix[i];
      for (let k = i; k > first; k--) {
        s.v[k] = s.v[k - 1];
        s.ix[k] = s.ix[k - 1];
      }
      s.v[first] = val;
      s.ix[first] = vi;
    } else {
      unguardedLinearInsert(s, i, less);
    }
  }
}

const THRESHOLD = 16; // libstdc++ _S_threshold

function finalInsertionSort(s: Pairs, first: number, last: number, less: Less): void {
  if (last - first > THRESHOLD) {
    insertionSort(s, first, first + THRESHOLD, less);
    for (let i = first + THRESHOLD; i < last; i++) unguardedLinearInsert(s, i, less);
  } else {
    insertionSort(s, first, last, less);
  }
}

function moveMedianToFirst(s: Pairs, result: number, a: number, b: number, c: number, less: Less): void {
  const va = s.v[a], vb = s.v[b], vc = s.v[c];
  if (less(va, vb)) {
    if (less(vb, vc)) swapPairs(s, result, b);
    else if (less(va, vc)) swapPairs(s, result, c);
    else swapPairs(s, result, a);
  } else if (less(va, vc)) swapPairs(s, result, a);
  else if (less(vb, vc)) swapPairs(s, result, c);
  else swapPairs(s, result, b);
}

function unguardedPartition(s: Pairs, first: number, last: number, pivot: number, less: Less): number {
  for (;;) {
    while (less(s.v[first], s.v[pivot])) first++;
    last--;
    while (less(s.v[pivot], s.v[last])) last--;
    if (!(first < last)) return first;
    swapPairs(s, first, last);
    first++;
  }
}

function unguardedPartitionPivot(s: Pairs, first: number, last: number, less: Less): number {
  const mid = first + Math.trunc((last - first) / 2);
  moveMedianToFirst(s, first, first + 1, mid, last - 1, less);
  return unguardedPartition(s, first + 1, last, first, less);
}

function pushHeap(s: Pairs, first: number, hole: number, top: number, val: number, vi: number, less: Less): void {
  let parent = Math.trunc((hole - 1) / 2);
  while (hole > top && less(s.v[first + parent], val)) {
    s.v[first + hole] = s.v[first + parent];
    s.ix[first + hole] = s.ix[first + parent];
    hole = parent;
    parent = Math.trunc((hole - 1) / 2);
  }
  s.v[first + hole] = val;
  s.ix[first + hole] = vi;
}

function adjustHeap(s: Pairs, first: number, hole: number, len: number, val: number, vi: number, less: Less): void {
  const top = hole;
  let second = hole;
  while (second < Math.trunc((len - 1) / 2)) {
    second = 2 * (second + 1);
    if (less(s.v[first + second], s.v[first + second - 1])) second--;
    s.v[first + hole] = s.v[first + second];
    s.ix[first + hole] = s.ix[first + second];
    hole = second;
  }
  if ((len & 1) === 0 && second === Math.trunc((len - 2) / 2)) {
    second = 2 * (second + 1);
    s.v[first + hole] = s.v[first + second - 1];
    s.ix[first + hole] = s.ix[first + second - 1];
    hole = second - 1;
  }
  pushHeap(s, first, hole, top, val, vi, less);
}

function makeHeap(s: Pairs, first: number, last: number, less: Less): void {
  const len = last - first;
  if (len < 2) return;
  for (let parent = Math.trunc((len - 2) / 2); ; parent--) {
    adjustHeap(s, first, parent, len, s.v[first + parent], s.ix[first + parent], less);
    if (parent === 0) return;
  }
}

function popHeap(s: Pairs, first: number, last: number, result: number, less: Less): void {
  const val = s.v[result], vi = s.ix[result];
  s.v[result] = s.v[first];
  s.ix[result] = s.ix[first];
  adjustHeap(s, first, 0, last - first, val, vi, less);
}

function heapSelect(s: Pairs, first: number, middle: number, last: number, less: Less): void {
  makeHeap(s, first, middle, less);
  for (let i = middle; i < last; i++) if (less(s.v[i], s.v[first])) popHeap(s, first, middle, i, less);
}

function sortHeap(s: Pairs, first: number, last: number, less: Less): void {
  while (last - first > 1) {
    last--;
    popHeap(s, first, last, last, less);
  }
}

/** std::partial_sort(first, middle, last). */
function partialSort(s: Pairs, first: number, middle: number, last: number, less: Less): void {
  heapSelect(s, first, middle, last, less);
  sortHeap(s, first, middle, less);
}

const lg = (n: number): number => 31 - Math.clz32(n);

function introsortLoop(s: Pairs, first: number, last: number, depth: number, less: Less): void {
  while (last - first > THRESHOLD) {
    if (depth === 0) {
      partialSort(s, first, last, last, less);
      return;
    }
    depth--;
    const cut = unguardedPartitionPivot(s, first, last, less);
    introsortLoop(s, cut, last, depth, less);
    last = cut;
  }
}

/** std::sort(first, last). */
function stdSort(s: Pairs, first: number, last: number, less: Less): void {
  if (first === last) return;
  introsortLoop(s, first, last, 2 * lg(last - first), less);
  finalInsertionSort(s, first, last, less);
}

/** std::nth_element(first, nth, last). */
function nthElement(s: Pairs, first: number, nth: number, last: number, less: Less): void {
  if (first === last || nth === last) return;
  let depth = 2 * lg(last - first);
  while (last - first > 3) {
    if (depth === 0) {
      heapSelect(s, first, nth + 1, last, less);
      swapPairs(s, first, nth);
      return;
    }
    depth--;
    const cut = unguardedPartitionPivot(s, first, last, less);
    if (cut <= nth) first = cut;
    else last = cut;
  }
  insertionSort(s, first, last, less);
}

function pairsOf(values: ArrayLike<number>): Pairs {
  const n = values.length;
  const s: Pairs = { v: new Float64Array(n), ix: new Int32Array(n) };
  for (let i = 0; i < n; i++) {
    s.v[i] = values[i];
    s.ix[i] = i;
  }
  return s;
}

/**
 * The permutation `values.sort(descending=True)[1]` of PyTorch 1.13 on the CPU: libstdc++'s
 * (unstable) introsort with PyTorch's comparator, so equal values come out in PyTorch's order.
 */
export function argsortDescending(values: ArrayLike<number>): Int32Array {
  const s = pairsOf(values);
  stdSort(s, 0, s.v.length, DESC);
  return s.ix;
}

/**
 * Indices of the k largest values, largest first — `torch.topk(values, k)[1]` (sorted, largest) on
 * the CPU: std::partial_sort when k·64 ≤ n, else std::nth_element then std::sort of the first k − 1.
 */
export function topK(values: ArrayLike<number>, k: number): Int32Array {
  const n = values.length;
  if (!Number.isInteger(k) || k < 0 || k > n) throw new MaskdistillError(`topK: k = ${k} is out of range for ${n} values`);
  if (k === 0) return new Int32Array(0);
  const s = pairsOf(values);
  if (k * 64 <= n) {
    partialSort(s, 0, k, n, DESC);
  } else {
    nthElement(s, 0, k - 1, n, DESC);
    stdSort(s, 0, k - 1, DESC);
  }
  return s.ix.slice(0, k);
}

// ---------------------------------------------------------------------------------------------
// NMS

/**
 * The order of `scores.sort(stable=True, descending=True)`: larger first, equal values by index
 * (NaN first, as PyTorch's comparator).
 */
export function stableArgsortDescending(values: ArrayLike<number>): Int32Array {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => {
    const va = values[a], vb = values[b];
    if (DESC(va, vb)) return -1;
    if (DESC(vb, va)) return 1;
    return a - b;
  });
  return Int32Array.from(idx);
}

/**
 * Non-maximum suppression as torchvision's CPU kernel (`torchvision::nms`): boxes visited in the
 * order of a stable descending sort of the scores (the 0.14 kernel sorts with stable = true: equal
 * scores by index — checked against the fixtures), a box is dropped when its IoU
 * (float32: inter / (area_i + area_j − inter)) with a kept box is > iouThreshold. Returns the kept
 * indices in that visiting order (descending score).
 */
export function nms(boxes: ArrayLike<number>, scores: ArrayLike<number>, iouThreshold: number): Int32Array {
  const n = checkBoxes(boxes, "nms");
  if (scores.length !== n) throw new MaskdistillError(`nms: ${scores.length} scores for ${n} boxes`);
  if (n === 0) return new Int32Array(0);
  // coordinates in visiting order, and the not-yet-suppressed positions compacted after each kept box:
  // the inner loop reads memory in sequence and shrinks as boxes fall (the RPN's 2,000 boxes a level)
  const order = stableArgsortDescending(f32(scores));
  const x1 = new Float32Array(n), y1 = new Float32Array(n), x2 = new Float32Array(n), y2 = new Float32Array(n), area = new Float32Array(n);
  for (let a = 0; a < n; a++) {
    const i = order[a];
    x1[a] = boxes[4 * i];
    y1[a] = boxes[4 * i + 1];
    x2[a] = boxes[4 * i + 2];
    y2[a] = boxes[4 * i + 3];
    area[a] = f(x2[a] - x1[a]) * f(y2[a] - y1[a]);
  }
  // a pair that does not overlap has IoU 0 (or NaN), which is never > a threshold ≥ 0: such pairs need no test,
  // and from a few dozen boxes on a grid finds the kept boxes a box can overlap (the RPN's 2,000 a level)
  if (iouThreshold >= 0 && n >= 64) {
    const grid = nmsOnGrid(x1, y1, x2, y2, area, order, iouThreshold);
    if (grid) return grid;
  }
  const skipDisjoint = iouThreshold >= 0;
  const alive = new Int32Array(n);
  for (let a = 0; a < n; a++) alive[a] = a;
  let nAlive = n;
  const keep = new Int32Array(n);
  let kept = 0;
  while (nAlive > 0) {
    const a = alive[0];
    keep[kept++] = order[a];
    const ix1 = x1[a], iy1 = y1[a], ix2 = x2[a], iy2 = y2[a], iarea = area[a];
    let m = 0;
    for (let q = 1; q < nAlive; q++) {
      const b = alive[q];
      if (!(iouAbove(ix1, iy1, ix2, iy2, iarea, x1[b], y1[b], x2[b], y2[b], area[b], iouThreshold, skipDisjoint))) alive[m++] = b;
    }
    nAlive = m;
  }
  return keep.slice(0, kept);
}

/**
 * torchvision's test: IoU of kept box i with box j (float32: inter / (area_i + area_j − inter)) > threshold.
 * With `skipDisjoint` (threshold ≥ 0) a pair that does not overlap returns false before the division.
 */
function iouAbove(ix1: number, iy1: number, ix2: number, iy2: number, iarea: number,
    jx1: number, jy1: number, jx2: number, jy2: number, jarea: number, iouThreshold: number, skipDisjoint: boolean): boolean {
  // std::max(a, b) returns a unless a < b: the same value for non-NaN floats
  const w = f(Math.min(ix2, jx2) - Math.max(ix1, jx1));
  if (skipDisjoint && !(w > 0)) return false;
  const h = f(Math.min(iy2, jy2) - Math.max(iy1, jy1));
  if (skipDisjoint && !(h > 0)) return false;
  const inter = f((w > 0 ? w : 0) * (h > 0 ? h : 0));
  return f(inter / f(f(iarea + jarea) - inter)) > iouThreshold;
}

/**
 * Greedy NMS for a threshold ≥ 0 with the kept boxes binned on a grid: box b (visiting order) is tested only
 * against kept boxes sharing a cell with it. Two boxes whose overlap has positive width and height share the
 * cell of a point inside it (cells are a monotone function of the coordinate), and every other pair has
 * IoU 0, so the kept set is the one the all-pairs loop finds. A box of zero or negative extent (or NaN) never
 * overlaps anything: it is kept, and binned nowhere. Returns undefined (use the plain loop) when a coordinate
 * is not finite. Coordinates are in visiting order; `order` maps them back to input indices.
 */
function nmsOnGrid(x1: Float32Array, y1: Float32Array, x2: Float32Array, y2: Float32Array, area: Float32Array,
    order: ArrayLike<number>, iouThreshold: number): Int32Array | undefined {
  const n = x1.length;
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  const sides: number[] = [];
  for (let a = 0; a < n; a++) {
    if (!(x2[a] - x1[a] > 0 && y2[a] - y1[a] > 0)) continue;
    if (!(Number.isFinite(x1[a]) && Number.isFinite(y1[a]) && Number.isFinite(x2[a]) && Number.isFinite(y2[a]))) return undefined;
    minX = Math.min(minX, x1[a]); minY = Math.min(minY, y1[a]); maxX = Math.max(maxX, x2[a]); maxY = Math.max(maxY, y2[a]);
    if (sides.length < 256) sides.push(x2[a] - x1[a], y2[a] - y1[a]);
  }
  const keep = new Int32Array(n);
  let kept = 0;
  if (sides.length === 0) {
    for (let a = 0; a < n; a++) keep[a] = order[a];
    return keep;
  }
  // cells about the size of a typical box, at most 64 a side
  sides.sort((p, q) => p - q);
  const cell = Math.max(sides[sides.length >> 1], (maxX - minX) / 64, (maxY - minY) / 64, 1e-6);
  const gx = Math.min(64, Math.floor((maxX - minX) / cell) + 1), gy = Math.min(64, Math.floor((maxY - minY) / cell) + 1);
  const cx = (v: number) => Math.min(gx - 1, Math.floor((v - minX) / cell)), cy = (v: number) => Math.min(gy - 1, Math.floor((v - minY) / cell));
  const cells: number[][] = Array.from({ length: gx * gy }, () => []);
  const seen = new Int32Array(n).fill(-1);
  for (let b = 0; b < n; b++) {
    const bx1 = x1[b], by1 = y1[b], bx2 = x2[b], by2 = y2[b];
    if (!(bx2 - bx1 > 0 && by2 - by1 > 0)) { keep[kept++] = order[b]; continue; }
    const c0 = cx(bx1), c1 = cx(bx2), r0 = cy(by1), r1 = cy(by2);
    let suppressed = false;
    for (let r = r0; r <= r1 && !suppressed; r++) {
      for (let c = c0; c <= c1 && !suppressed; c++) {
        for (const i of cells[r * gx + c]) {
          if (seen[i] === b) continue;
          seen[i] = b;
          if (iouAbove(x1[i], y1[i], x2[i], y2[i], area[i], bx1, by1, bx2, by2, area[b], iouThreshold, true)) { suppressed = true; break; }
        }
      }
    }
    if (suppressed) continue;
    keep[kept++] = order[b];
    for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) cells[r * gx + c].push(b);
  }
  return keep.slice(0, kept);
}

function f32(v: ArrayLike<number>): Float32Array {
  return v instanceof Float32Array ? v : Float32Array.from(v);
}

/** Above this many box coordinates (N*4), torchvision 0.14 runs NMS per class (CPU threshold). */
export const BATCHED_NMS_LOOP_ABOVE = 4000;

/**
 * NMS within each group (class or FPN level): torchvision 0.14 `batched_nms` on the CPU. Up to
 * 4000 coordinates (1000 boxes) the coordinate trick — every box shifted by
 * group·(max coordinate + 1), all in float32, then one `nms`; above that, `nms` per group
 * (groups ascending, each on its boxes in index order), the kept indices then ordered by
 * `scores.sort(descending)` of the kept subset (ties as PyTorch). detectron2 calls the same function.
 */
export function batchedNms(boxes: ArrayLike<number>, scores: ArrayLike<number>, groups: ArrayLike<number>, iouThreshold: number): Int32Array {
  const n = checkBoxes(boxes, "batchedNms");
  if (scores.length !== n || groups.length !== n) throw new MaskdistillError(`batchedNms: ${n} boxes, ${scores.length} scores, ${groups.length} group ids`);
  if (n === 0) return new Int32Array(0);
  return boxes.length > BATCHED_NMS_LOOP_ABOVE
    ? batchedNmsLoop(boxes, scores, groups, iouThreshold)
    : batchedNmsOffset(boxes, scores, groups, iouThreshold);
}

/** torchvision `_batched_nms_coordinate_trick`. */
export function batchedNmsOffset(boxes: ArrayLike<number>, scores: ArrayLike<number>, groups: ArrayLike<number>, iouThreshold: number): Int32Array {
  const n = checkBoxes(boxes, "batchedNmsOffset");
  if (n === 0) return new Int32Array(0);
  let max = -Infinity;
  for (let i = 0; i < boxes.length; i++) {
    const v = f(boxes[i]);
    if (v > max || v !== v) max = v; // torch.max propagates NaN
  }
  const step = f(max + 1);
  const shifted = new Float32Array(4 * n);
  for (let i = 0; i < n; i++) {
    const off = f(f(groups[i]) * step);
    for (let c = 0; c < 4; c++) shifted[4 * i + c] = f(boxes[4 * i + c]) + off;
  }
  return nms(shifted, scores, iouThreshold);
}

/** torchvision `_batched_nms_vanilla`. */
export function batchedNmsLoop(boxes: ArrayLike<number>, scores: ArrayLike<number>, groups: ArrayLike<number>, iouThreshold: number): Int32Array {
  const n = checkBoxes(boxes, "batchedNmsLoop");
  const members = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const g = groups[i];
    let list = members.get(g);
    if (!list) members.set(g, (list = []));
    list.push(i);
  }
  const keepMask = new Uint8Array(n);
  for (const g of [...members.keys()].sort((a, b) => a - b)) {
    const idx = members.get(g)!;
    const sub = new Float32Array(4 * idx.length), subScores = new Float32Array(idx.length);
    idx.forEach((i, k) => {
      for (let c = 0; c < 4; c++) sub[4 * k + c] = boxes[4 * i + c];
      subScores[k] = scores[i];
    });
    for (const k of nms(sub, subScores, iouThreshold)) keepMask[idx[k]] = 1;
  }
  const kept: number[] = [];
  for (let i = 0; i < n; i++) if (keepMask[i]) kept.push(i);
  const order = argsortDescending(Float32Array.from(kept, (i) => scores[i]));
  return Int32Array.from(order, (k) => kept[k]);
}
