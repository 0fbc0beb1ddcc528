// Semantic segmentation metrics (METHOD.md §6.1): a dataset-level confusion matrix over pixels whose
// GT is not `ignore`, per-class IoU = TP/(TP+FP+FN), mIoU over all classes (empty classes count 0, the
// reference's definition), pixel accuracy; and cluster→class matching for unsupervised predictions.
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError } from "../errors.js";
import { readLabelPng } from "../data/png.js";
import { majorityAssignment, maximumAssignment } from "./hungarian.js";

/** Counts `conf[pred * numClasses + gt]`; pred ids may exceed the class count (clusters). */
export interface Confusion {
  numPred: number;
  numClasses: number;
  counts: Float64Array;
}

export function newConfusion(numPred: number, numClasses: number): Confusion {
  return { numPred, numClasses, counts: new Float64Array(numPred * numClasses) };
}

/**
 * Adds one image. `pred` values ≥ numPred are an error (they would be silently dropped otherwise), named
 * after `name` (the prediction file); a bad GT value is named after `gtName` (the GT file).
 */
export function accumulate(conf: Confusion, pred: Uint8Array, gt: Uint8Array, ignore = 255, name = "prediction", gtName = name === "prediction" ? "GT" : name): void {
  if (pred.length !== gt.length) throw new MaskdistillError(`prediction has ${pred.length} pixels, GT ${gt.length}`, name);
  const { numPred, numClasses, counts } = conf;
  for (let i = 0; i < gt.length; i++) {
    const g = gt[i];
    if (g === ignore) continue;
    if (g >= numClasses) throw new MaskdistillError(`GT value ${g} at pixel ${i} is not a class id (< ${numClasses}) nor the ignore value ${ignore}${gtName === name ? "" : ` (the GT of ${name})`}; check the number of classes and the ignore value against the GT's labels`, gtName);
    const p = pred[i];
    if (p >= numPred) throw new MaskdistillError(`prediction value ${p} at pixel ${i} is ≥ the number of predicted ids ${numPred}`, name);
    counts[p * numClasses + g]++;
  }
}

export type MatchMode = "none" | "hungarian" | "majority";

/**
 * Maps predicted ids to classes from the confusion itself: Hungarian (maximum total agreement; ids
 * left unmatched map to -1 = always wrong) or majority vote. `pinBackground` fixes id 0 → class 0 and
 * matches the rest among classes 1..C-1. "none": identity.
 */
export function matchPredictions(conf: Confusion, mode: MatchMode, pinBackground = false): Int32Array {
  const { numPred: K, numClasses: C, counts } = conf;
  if (mode === "none") return Int32Array.from({ length: K }, (_, k) => (k < C ? k : -1));
  const off = pinBackground ? 1 : 0;
  const k = K - off, c = C - off;
  const sub = new Float64Array(k * c);
  for (let i = 0; i < k; i++) for (let j = 0; j < c; j++) sub[i * c + j] = counts[(i + off) * C + (j + off)];
  const m = mode === "hungarian" ? maximumAssignment(sub, k, c) : majorityAssignment(sub, k, c);
  const out = new Int32Array(K);
  if (pinBackground) out[0] = 0;
  for (let i = 0; i < k; i++) out[i + off] = m[i] < 0 ? -1 : m[i] + off;
  return out;
}

export interface SemsegScore {
  /** IoU per class in [0, 1], null where the class occurs neither in GT nor in the (mapped) prediction */
  per_class: (number | null)[];
  /** mean over all classes, empty classes counted 0 (reference definition) */
  miou: number;
  /** mean over classes that occur in GT or prediction */
  miou_present: number;
  pixel_acc: number;
  /** predicted id → class used (identity for --match none) */
  mapping: number[];
  /** class × class confusion after mapping, rows = prediction, columns = GT */
  confusion: number[][];
}

/** Scores a confusion after mapping predicted ids to classes. */
export function scoreConfusion(conf: Confusion, mapping: Int32Array): SemsegScore {
  const { numPred: K, numClasses: C, counts } = conf;
  const mapped = new Float64Array(C * C);
  let total = 0, correct = 0;
  for (let p = 0; p < K; p++) {
    const c = mapping[p];
    for (let g = 0; g < C; g++) {
      const n = counts[p * C + g];
      total += n;
      if (c < 0) continue; // unmatched cluster: counted in total (wrong), and as FN of g below
      mapped[c * C + g] += n;
      if (c === g) correct += n;
    }
  }
  const gtTotal = new Float64Array(C);
  for (let p = 0; p < K; p++) for (let g = 0; g < C; g++) gtTotal[g] += counts[p * C + g];
  const perClass: (number | null)[] = [];
  let sum = 0, sumPresent = 0, present = 0;
  for (let c = 0; c < C; c++) {
    const tp = mapped[c * C + c];
    let predC = 0;
    for (let g = 0; g < C; g++) predC += mapped[c * C + g];
    const fp = predC - tp, fn = gtTotal[c] - tp;
    const denom = tp + fp + fn;
    if (denom === 0) { perClass.push(null); continue; }
    const iou = tp / denom;
    perClass.push(iou);
    sum += iou; sumPresent += iou; present++;
  }
  return {
    per_class: perClass,
    miou: sum / C,
    miou_present: present ? sumPresent / present : 0,
    pixel_acc: total ? correct / total : 0,
    mapping: [...mapping],
    confusion: Array.from({ length: C }, (_, r) => Array.from(mapped.subarray(r * C, (r + 1) * C))),
  };
}

/**
 * Pairs prediction and GT PNGs by file stem; every GT needs a prediction. `stems` (a split list, e.g. VOC's
 * ImageSets/Segmentation/val.txt) restricts the pairs to those images, each of which then needs both files.
 */
export function pairByStem(predDir: string, gtDir: string, stems?: readonly string[]): { stem: string; pred: string; gt: string }[] {
  const list = (dir: string) => {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new MaskdistillError("not a directory of PNG label maps", dir);
    return new Map(fs.readdirSync(dir).filter((f) => f.toLowerCase().endsWith(".png")).map((f) => [path.parse(f).name, path.join(dir, f)]));
  };
  const preds = list(predDir), gts = list(gtDir);
  if (gts.size === 0) throw new MaskdistillError("no .png files", gtDir);
  if (stems) {
    const noGt = stems.filter((s) => !gts.has(s));
    if (noGt.length) throw new MaskdistillError(`${noGt.length} listed image(s) have no GT PNG (e.g. ${noGt.slice(0, 5).map((s) => s + ".png").join(", ")}); check the list against the GT folder`, gtDir);
    if (stems.length === 0) throw new MaskdistillError("the image list is empty", gtDir);
  }
  const wanted = stems ? [...new Set(stems)] : [...gts.keys()];
  const missing = wanted.filter((s) => !preds.has(s)).sort();
  if (missing.length) {
    throw new MaskdistillError(`${missing.length} GT image(s) have no prediction PNG (e.g. ${missing.slice(0, 5).map((s) => s + ".png").join(", ")})`, predDir);
  }
  return wanted.sort().map((stem) => ({ stem, pred: preds.get(stem)!, gt: gts.get(stem)! }));
}

/** Evaluates a folder of predicted PNGs against GT PNGs (values are class / cluster ids), streaming. */
export function evaluateSemsegDirs(
  predDir: string,
  gtDir: string,
  opts: { numClasses?: number; ignore?: number; match?: MatchMode; pinBackground?: boolean; stems?: readonly string[]; onImage?: (stem: string) => void } = {},
): SemsegScore & { images: number } {
  const C = opts.numClasses ?? 21, ignore = opts.ignore ?? 255, mode = opts.match ?? "none";
  const pairs = pairByStem(predDir, gtDir, opts.stems);
  // PNG values are 8-bit: a 256-row confusion holds any cluster ids without a first pass
  const conf = newConfusion(256, C);
  const used = new Uint8Array(256);
  for (const { pred, gt, stem } of pairs) {
    const p = readLabelPng(pred), g = readLabelPng(gt);
    if (p.width !== g.width || p.height !== g.height) {
      throw new MaskdistillError(`prediction is ${p.width}×${p.height} but its GT ${gt} is ${g.width}×${g.height}`, pred);
    }
    for (const v of p.data) used[v] = 1;
    if (mode === "none") {
      const bad = p.data.findIndex((v) => v >= C && v !== ignore);
      if (bad >= 0) throw new MaskdistillError(`prediction value ${p.data[bad]} is not a class id (< ${C}); use --match hungarian|majority for cluster ids`, pred);
    }
    accumulate(conf, p.data, g.data, ignore, pred, gt);
    opts.onImage?.(stem);
  }
  return { ...scoreMatched(conf, used, { match: mode, pinBackground: opts.pinBackground, ignore }), images: pairs.length };
}

/**
 * Matches and scores a 256-row confusion of 8-bit predicted ids (what `evaluateSemsegDirs` does after
 * reading the PNGs); `used[v]` = 1 for every predicted value that occurred.
 */
export function scoreMatched(conf: Confusion, used: Uint8Array, opts: { match?: MatchMode; pinBackground?: boolean; ignore?: number } = {}): SemsegScore {
  const ignore = opts.ignore ?? 255;
  // a predicted `ignore` value is never right; ids that never occur are not matched
  const forMatching = { ...conf, counts: Float64Array.from(conf.counts) };
  if (ignore < conf.numPred) forMatching.counts.fill(0, ignore * conf.numClasses, (ignore + 1) * conf.numClasses);
  const mapping = matchPredictions(forMatching, opts.match ?? "none", opts.pinBackground ?? false);
  if (ignore < conf.numPred) mapping[ignore] = -1;
  return { ...scoreConfusion(conf, mapping), mapping: [...mapping].slice(0, 1 + used.lastIndexOf(1)) };
}
