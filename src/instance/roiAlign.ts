// RoIAlign (He et al. 2017) forward and gradient, as torchvision.ops.roi_align computes them, on
// channels-last (NHWC) float32 maps — the layout of the tfjs engine. detectron2's ROIAlignV2 is the
// same kernel with aligned = true and adaptive sampling (samplingRatio 0); torchvision's Mask R-CNN
// uses aligned = false, samplingRatio 2.
//
// Per box, per output bin, the bin is sampled on a gridH × gridW lattice of points (adaptive:
// ceil(box size / bins)); each point is a bilinear interpolation of the four surrounding cells, and the
// bin's value is the mean over the points. Points more than one cell outside the map count as 0 (and
// still count in the mean); points in the outer half cell clamp to the border. The sample geometry is
// computed in float32 step by step, as torchvision's kernel does, so the integer cells chosen and the
// border decisions are the same as PyTorch's. The sums run in another order (each cell once per bin, its
// weights merged; see samplePlan), so values agree with PyTorch's to float32 rounding, not bit for bit.
import { MaskdistillError } from "../errors.js";

export interface RoiAlignParams {
  /** Output bins [height, width] (7×7 for box heads, 14×14 for mask heads). */
  outputSize: readonly [number, number];
  /** Map cells per image pixel (1/stride of the feature level). */
  spatialScale: number;
  /** Sample points per bin side; 0 = adaptive, ceil(box side / bins). */
  samplingRatio: number;
  /** Shift boxes by −0.5 cell so that box corners fall on pixel corners (detectron2); false = torchvision v1. */
  aligned: boolean;
}

/** A channels-last map batch [N, H, W, C]. */
export type MapShape = readonly [number, number, number, number];

const f = Math.fround;

/** One axis of a box's sampling lattice: per (bin, sample) the two cells and their weights; valid = inside. */
interface AxisSamples {
  low: Int32Array;
  high: Int32Array;
  wLow: Float32Array;
  wHigh: Float32Array;
  valid: Uint8Array;
  grid: number;
}

/**
 * The sample positions of one box along one axis, as torchvision: start/size in float32, the point
 * start + bin·binSize + (i + .5)·binSize/grid, dropped beyond [−1, size], clamped at 0 and at size − 1.
 */
function axisSamples(start: number, end: number, bins: number, size: number, p: RoiAlignParams): AxisSamples {
  let extent = f(end - start);
  if (!p.aligned) extent = Math.max(extent, 1);
  const binSize = f(extent / bins);
  const grid = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(f(extent / bins));
  const n = bins * grid;
  const s: AxisSamples = {
    low: new Int32Array(n), high: new Int32Array(n), wLow: new Float32Array(n), wHigh: new Float32Array(n), valid: new Uint8Array(n), grid,
  };
  for (let b = 0; b < bins; b++) {
    for (let i = 0; i < grid; i++) {
      const k = b * grid + i;
      let v = f(f(start + f(b * binSize)) + f(f(f(i + 0.5) * binSize) / grid));
      if (v < -1 || v > size) continue;
      if (v <= 0) v = 0;
      let low = Math.trunc(v), high: number;
      if (low >= size - 1) {
        high = low = size - 1;
        v = low;
      } else high = low + 1;
      const l = f(v - low);
      s.low[k] = low;
      s.high[k] = high;
      s.wHigh[k] = l;
      s.wLow[k] = f(1 - l);
      s.valid[k] = 1;
    }
  }
  return s;
}

/** Box k's lattice in map coordinates. Boxes are [x1, y1, x2, y2] in image pixels. */
function boxSamples(boxes: ArrayLike<number>, k: number, H: number, W: number, p: RoiAlignParams): { ys: AxisSamples; xs: AxisSamples; count: number } {
  const offset = p.aligned ? 0.5 : 0;
  const scale = f(p.spatialScale);
  const x1 = f(f(f(boxes[4 * k]) * scale) - offset), y1 = f(f(f(boxes[4 * k + 1]) * scale) - offset);
  const x2 = f(f(f(boxes[4 * k + 2]) * scale) - offset), y2 = f(f(f(boxes[4 * k + 3]) * scale) - offset);
  const ys = axisSamples(y1, y2, p.outputSize[0], H, p);
  const xs = axisSamples(x1, x2, p.outputSize[1], W, p);
  return { ys, xs, count: Math.max(ys.grid * xs.grid, 1) };
}

function checkArgs(shape: MapShape, boxes: ArrayLike<number>, boxIndex: ArrayLike<number>, p: RoiAlignParams): number {
  const [N] = shape;
  const K = boxIndex.length;
  if (boxes.length !== 4 * K) throw new MaskdistillError(`roiAlign: ${boxes.length / 4} boxes but ${K} box indices`);
  for (let k = 0; k < K; k++) {
    const b = boxIndex[k];
    if (!(Number.isInteger(b) && b >= 0 && b < N)) throw new MaskdistillError(`roiAlign: box ${k} refers to image ${b}; the batch has ${N}`);
  }
  const [ph, pw] = p.outputSize;
  if (!(ph > 0 && pw > 0 && Number.isInteger(ph) && Number.isInteger(pw))) throw new MaskdistillError(`roiAlign: output size must be positive integers, got ${ph}×${pw}`);
  if (!(p.samplingRatio >= 0 && Number.isInteger(p.samplingRatio))) throw new MaskdistillError(`roiAlign: sampling ratio must be an integer ≥ 0, got ${p.samplingRatio}`);
  return K;
}

function checkLevels(shapes: MapShape[], boxes: ArrayLike<number>, boxIndex: ArrayLike<number>, levels: ArrayLike<number>, p: RoiAlignParams): number {
  const K = checkArgs(shapes[0], boxes, boxIndex, p);
  if (levels.length !== K) throw new MaskdistillError(`roiAlign: ${K} boxes but ${levels.length} levels`);
  for (let k = 0; k < K; k++) {
    if (!(levels[k] >= 0 && levels[k] < shapes.length)) throw new MaskdistillError(`roiAlign: box ${k} is assigned to level ${levels[k]}; there are ${shapes.length}`);
  }
  for (const s of shapes) {
    if (s[0] !== shapes[0][0] || s[3] !== shapes[0][3]) throw new MaskdistillError("roiAlign: the levels differ in batch size or channels");
  }
  return K;
}

/**
 * RoIAlign forward: `input` [N, H, W, C], `boxes` [K, 4] (x1, y1, x2, y2, image pixels), `boxIndex` [K]
 * (which image of the batch) → [K, ph, pw, C].
 */
export function roiAlignForward(input: Float32Array, shape: MapShape, boxes: ArrayLike<number>, boxIndex: ArrayLike<number>, p: RoiAlignParams): Float32Array {
  return roiAlignForwardLevels([input], [shape], [p.spatialScale], boxes, boxIndex, new Int32Array(boxIndex.length), p);
}

/**
 * One axis's samples merged per bin: bin b covers cells first[b] … first[b] + span[b] − 1, and
 * weight[b·stride + i] is the sum of the weights its samples give cell first[b] + i (0 where none).
 * The samples of a bin rise monotonically, so its cells are one contiguous run.
 */
interface AxisBins { first: Int32Array; span: Int32Array; weight: Float64Array; stride: number }

function axisBins(s: AxisSamples, bins: number): AxisBins {
  const first = new Int32Array(bins), span = new Int32Array(bins);
  let stride = 1;
  for (let b = 0; b < bins; b++) {
    let lo = -1;
    for (let i = 0; i < s.grid; i++) {
      const k = b * s.grid + i;
      if (!s.valid[k]) continue;
      if (lo < 0) lo = first[b] = s.low[k];
      span[b] = s.high[k] - lo + 1;
    }
    stride = Math.max(stride, span[b]);
  }
  const weight = new Float64Array(bins * stride);
  for (let b = 0; b < bins; b++) {
    for (let i = 0; i < s.grid; i++) {
      const k = b * s.grid + i;
      if (!s.valid[k]) continue;
      weight[b * stride + s.low[k] - first[b]] += s.wLow[k];
      weight[b * stride + s.high[k] - first[b]] += s.wHigh[k];
    }
  }
  return { first, span, weight, stride };
}

/**
 * Box k's bilinear samples, bin by bin, merged by cell: for entry j of bin t (binStart[t] ≤ j <
 * binStart[t + 1]) a cell (element offset of channel 0 in the [N, H, W, C] map) and the weight all the
 * bin's samples give it, over the bin's sample count. Bilinear weights are products of a row weight and a
 * column weight, so a cell's total is (its row's summed weight) × (its column's): a bin's 4 × grid² corner
 * terms fall to (rows × columns it touches) cells, and the channel loops of both passes run over those,
 * with no division. One plan serves the forward pass and the gradient.
 */
interface SamplePlan { offsets: Int32Array; weights: Float64Array; binStart: Int32Array }

function samplePlan(boxes: ArrayLike<number>, k: number, imageIndex: number, shape: MapShape, p: RoiAlignParams, scale: number): SamplePlan {
  const [, H, W, C] = shape;
  const { ys, xs, count } = boxSamples(boxes, k, H, W, { ...p, spatialScale: scale });
  const [ph, pw] = p.outputSize;
  const rows = axisBins(ys, ph), cols = axisBins(xs, pw);
  const most = ph * pw * rows.stride * cols.stride;
  const offsets = new Int32Array(most), weights = new Float64Array(most), binStart = new Int32Array(ph * pw + 1);
  const base = imageIndex * H * W;
  let j = 0;
  for (let by = 0; by < ph; by++) {
    for (let bx = 0; bx < pw; bx++) {
      binStart[by * pw + bx] = j;
      for (let i = 0; i < rows.span[by]; i++) {
        const wy = rows.weight[by * rows.stride + i];
        if (wy === 0) continue;
        const rowOffset = (base + (rows.first[by] + i) * W) * C;
        for (let q = 0; q < cols.span[bx]; q++) {
          const wx = cols.weight[bx * cols.stride + q];
          if (wx === 0) continue;
          offsets[j] = rowOffset + (cols.first[bx] + q) * C;
          weights[j++] = (wy * wx) / count;
        }
      }
    }
  }
  binStart[ph * pw] = j;
  return { offsets, weights, binStart };
}

/**
 * RoIAlign over a feature pyramid, as MultiScaleRoIAlign: box k is pooled from level `levels[k]`
 * (`inputs[l]` [N, H_l, W_l, C] at `scales[l]`; p.spatialScale is ignored) → [K, ph, pw, C] in box order.
 */
export function roiAlignForwardLevels(inputs: Float32Array[], shapes: MapShape[], scales: number[], boxes: ArrayLike<number>,
    boxIndex: ArrayLike<number>, levels: ArrayLike<number>, p: RoiAlignParams): Float32Array {
  const C = shapes[0][3];
  const K = checkLevels(shapes, boxes, boxIndex, levels, p);
  const bins = p.outputSize[0] * p.outputSize[1];
  const out = new Float32Array(K * bins * C);
  for (let k = 0; k < K; k++) {
    const input = inputs[levels[k]];
    const { offsets, weights, binStart } = samplePlan(boxes, k, boxIndex[k], shapes[levels[k]], p, scales[levels[k]]);
    for (let t = 0; t < bins; t++) {
      const g = (k * bins + t) * C;
      for (let e = binStart[t]; e < binStart[t + 1]; e++) {
        const o = offsets[e], w = weights[e];
        for (let c = 0; c < C; c++) out[g + c] += w * input[o + c];
      }
    }
  }
  return out;
}

/**
 * Gradient of roiAlignForward with respect to `input`: `dy` [K, ph, pw, C] → [N, H, W, C]. (The boxes
 * get no gradient, as in torchvision and detectron2: proposals are treated as constants.)
 */
export function roiAlignBackward(dy: Float32Array, shape: MapShape, boxes: ArrayLike<number>, boxIndex: ArrayLike<number>, p: RoiAlignParams): Float32Array {
  return roiAlignBackwardLevels(dy, [shape], [p.spatialScale], boxes, boxIndex, new Int32Array(boxIndex.length), p)[0];
}

/** Gradient of roiAlignForwardLevels: one [N, H_l, W_l, C] gradient per level. */
export function roiAlignBackwardLevels(dy: Float32Array, shapes: MapShape[], scales: number[], boxes: ArrayLike<number>,
    boxIndex: ArrayLike<number>, levels: ArrayLike<number>, p: RoiAlignParams): Float32Array[] {
  const C = shapes[0][3];
  const K = checkLevels(shapes, boxes, boxIndex, levels, p);
  const [ph, pw] = p.outputSize, bins = ph * pw;
  if (dy.length !== K * bins * C) throw new MaskdistillError(`roiAlign gradient: dy has ${dy.length} values, expected ${K}×${ph}×${pw}×${C}`);
  const dxs = shapes.map(([N, H, W]) => new Float32Array(N * H * W * C));
  for (let k = 0; k < K; k++) {
    const dx = dxs[levels[k]];
    const { offsets, weights, binStart } = samplePlan(boxes, k, boxIndex[k], shapes[levels[k]], p, scales[levels[k]]);
    for (let t = 0; t < bins; t++) {
      const g = (k * bins + t) * C;
      for (let e = binStart[t]; e < binStart[t + 1]; e++) {
        const o = offsets[e], w = weights[e];
        for (let c = 0; c < C; c++) dx[o + c] += w * dy[g + c];
      }
    }
  }
  return dxs;
}
