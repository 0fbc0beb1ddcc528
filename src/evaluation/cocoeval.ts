// COCOeval (pycocotools/cocoeval.py) for iouType 'segm' and 'bbox', reproducing its numbers:
// per (image, category) IoUs of the top-100 detections, greedy matching per IoU threshold with crowd
// and ignore handling, accumulation over images with stable score sorting, 101-point interpolated
// precision, and the 12 summary stats (means taken with numpy's pairwise summation).
//
// Layouts follow pycocotools: precision/scores [T, R, K, A, M] and recall [T, K, A, M], row-major
// in Float64Arrays, -1 where a (category, area, maxDets) cell has no non-ignored GT.
import { MaskdistillError } from "../errors.js";
import type { CocoDataset, CocoImage, CocoResult } from "../data/coco.js";
import {
  bboxIou, rleArea, rleFromCoco, rleIou, rleToBbox, type CocoSegmentation, type Rle,
} from "../mask/rle.js";

export type IouType = "segm" | "bbox";

export interface CocoEvalParams {
  iouType: IouType;
  /** Sorted, unique. */
  imgIds: number[];
  /** Sorted, unique (all GT categories). */
  catIds: number[];
  iouThrs: Float64Array;
  recThrs: Float64Array;
  /** Sorted ascending; the last one caps the detections per image and category. */
  maxDets: number[];
  areaRng: [number, number][];
  areaRngLbl: string[];
  /** false: class-agnostic (pycocotools useCats = 0). */
  useCats: boolean;
}

/** A detection as COCOeval sees it (after `loadRes`, or built by hand as in eval_instances.py). */
export interface CocoDetection {
  id: number;
  image_id: number;
  category_id: number;
  score: number;
  area: number;
  bbox: ArrayLike<number>;
  segmentation?: CocoSegmentation;
}

/** Result of matching one (image, category) at one area range, as pycocotools' evalImgs entries. */
export interface EvalImage {
  imageId: number;
  /** -1 when useCats is off. */
  categoryId: number;
  aRng: [number, number];
  maxDet: number;
  dtIds: number[];
  gtIds: number[];
  /** [T, D]: id of the matched GT, 0 when unmatched (as in pycocotools, a GT with id 0 then reads as unmatched). */
  dtMatches: Float64Array;
  /** [T, G]: id of the matched detection, 0 when unmatched. */
  gtMatches: Float64Array;
  dtScores: Float64Array;
  /** [G], GT in evaluation order (non-ignored first). */
  gtIgnore: Uint8Array;
  /** [T, D] */
  dtIgnore: Uint8Array;
}

export interface CocoEvalResult {
  params: CocoEvalParams;
  /** Indexed [k][a][i] flattened (k over categories, or one entry when useCats is off); null where an image has neither GT nor detections. */
  evalImgs: (EvalImage | null)[];
  /** [T, R, K, A, M] */
  precision: Float64Array;
  /** [T, K, A, M] */
  recall: Float64Array;
  /** [T, R, K, A, M]: score at each recall threshold. */
  scores: Float64Array;
  /** The 12 COCO summary numbers (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl). */
  stats: number[];
  /** AP at IoU 0.5, area all, the largest maxDets, per category in `params.catIds` order (one entry when useCats is off); -1 where no GT. */
  ap50PerCategory: number[];
}

/** numpy.linspace(start, stop, num) with endpoint: start + i*step, the last value exactly `stop`. */
export function linspace(start: number, stop: number, num: number): Float64Array {
  const y = new Float64Array(num);
  const div = num - 1;
  const step = (stop - start) / div;
  for (let i = 0; i < num; i++) y[i] = div > 0 ? i * step + start : start;
  if (num > 1) y[num - 1] = stop;
  return y;
}

/** pycocotools Params for 'segm'/'bbox' on this GT. */
export function defaultParams(gt: CocoDataset, iouType: IouType = "segm", useCats = true): CocoEvalParams {
  return {
    iouType,
    imgIds: sortedUnique(gt.images.map((i) => i.id)),
    catIds: sortedUnique(gt.categories.map((c) => c.id)),
    iouThrs: linspace(0.5, 0.95, Math.round((0.95 - 0.5) / 0.05) + 1),
    recThrs: linspace(0.0, 1.0, Math.round((1.0 - 0.0) / 0.01) + 1),
    maxDets: [1, 10, 100],
    areaRng: [[0, 1e5 ** 2], [0, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]],
    areaRngLbl: ["all", "small", "medium", "large"],
    useCats,
  };
}

function sortedUnique(ids: number[]): number[] {
  return Array.from(new Set(ids)).sort((a, b) => a - b);
}

/**
 * pycocotools `COCO.loadRes` on a results list: ids 1..n in list order, iscrowd 0. As there, the
 * first result decides: if it has a box, every result's area is its box w*h and a missing
 * segmentation becomes the box polygon; otherwise area is the mask area and a missing box is the
 * mask's tight box.
 */
export function loadResults(gt: CocoDataset, results: CocoResult[]): CocoDetection[] {
  if (results.length === 0) return [];
  const imageById = new Map(gt.images.map((img) => [img.id, img]));
  const image = (r: CocoResult, i: number): CocoImage => {
    const img = imageById.get(r.image_id);
    if (!img) throw new MaskdistillError(`result #${i}: image_id ${r.image_id} is not an image of the ground truth (results do not correspond to this GT)`);
    return img;
  };
  const first = results[0];
  if (first.bbox !== undefined && first.bbox.length > 0) {
    return results.map((r, i) => {
      image(r, i);
      const bb = r.bbox;
      if (!bb || bb.length !== 4) throw new MaskdistillError(`result #${i} (image ${r.image_id}) has no bbox, but result #0 has one (COCO loadRes reads every result like the first)`);
      const [x1, y1] = bb, x2 = bb[0] + bb[2], y2 = bb[1] + bb[3];
      return {
        id: i + 1, image_id: r.image_id, category_id: r.category_id, score: r.score,
        area: bb[2] * bb[3], bbox: bb,
        segmentation: r.segmentation ?? [[x1, y1, x1, y2, x2, y2, x2, y1]],
      };
    });
  }
  return results.map((r, i) => {
    const img = image(r, i);
    if (r.segmentation === undefined) throw new MaskdistillError(`result #${i} (image ${r.image_id}) has neither bbox nor segmentation`);
    const rle = rleFromCoco(r.segmentation, img.height, img.width);
    return {
      id: i + 1, image_id: r.image_id, category_id: r.category_id, score: r.score,
      area: rleArea(rle), bbox: r.bbox ?? rleToBbox(rle), segmentation: r.segmentation,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// evaluate() keeps its results flat: one group per (category, image) with GT or detections, the
// groups in pycocotools' [k][i] order, each group's (top maxDet, score-sorted) detections and GT in
// shared typed arrays. Accumulation reads one state byte per (detection, area range, IoU threshold);
// the pycocotools-style evalImgs entries are built only when asked for (`evalImageAt`).

/** Flat result of `evaluateImages` (pycocotools `evaluate()`). */
export interface EvalStore {
  I: number;
  /** Categories evaluated (1 when useCats is off). */
  K: number;
  A: number;
  T: number;
  maxDet: number;
  /** [K * I]: the group of (k, i), -1 where the image has neither GT nor detections of k. */
  groupOf: Int32Array;
  /** [groups + 1]: each group's range in the flat detection arrays. */
  groupDtStart: Int32Array;
  /** [groups + 1]: each group's range in the flat GT arrays. */
  groupGtStart: Int32Array;
  /** [groups]: where the group's matches start in dtMatch / gtMatch, -1 when it has no GT or no detection. */
  groupDtMatchStart: Int32Array;
  groupGtMatchStart: Int32Array;
  /** [K + 1]: the range of category k's detections (its groups are contiguous, in image order). */
  catDtStart: Int32Array;
  /** Flat detections: id, score, area, rank within their group (score order). */
  dtId: Float64Array;
  dtScore: Float64Array;
  dtRank: Int32Array;
  /** [nDt, A, T]: 0 false positive, 1 true positive, 2 ignored. */
  dtState: Uint8Array;
  /** Flat GT in each group's file order: id, area, crowd. */
  gtId: Float64Array;
  gtArea: Float64Array;
  gtCrowd: Uint8Array;
  /** Per matched group: [A, T, D] the matched GT id (0 none) and [A, T, G] the matched detection id, G in evaluation order. */
  dtMatch: Float64Array;
  gtMatch: Float64Array;
  /** [K, A]: non-ignored GT count. */
  npig: Float64Array;
}

function segmentationRle(seg: CocoSegmentation | undefined, img: CocoImage, what: string): Rle {
  if (seg === undefined) throw new MaskdistillError(`${what} has no segmentation; iouType 'segm' needs masks`);
  try {
    return rleFromCoco(seg, img.height, img.width);
  } catch (e) {
    throw new MaskdistillError(`${what}: ${(e as Error).message}`);
  }
}

/**
 * evaluate() + accumulate() + summarize() of pycocotools COCOeval on detections that already carry
 * ids, areas and boxes (see `loadResults`). Use `evaluateResults` for a plain results list.
 */
export function cocoEval(gt: CocoDataset, dts: CocoDetection[], params: CocoEvalParams, onProgress?: EvalProgress): CocoEvalResult {
  const store = evaluateImages(gt, dts, params, onProgress);
  const { precision, recall, scores } = accumulate(store, params);
  let list: (EvalImage | null)[] | undefined;
  return {
    params, precision, recall, scores,
    get evalImgs() { return (list ??= evalImagesList(store, params)); },
    stats: summarize(precision, recall, params),
    ap50PerCategory: apPerCategory(precision, params, 0.5),
  };
}

/** COCOeval on a results list with `loadRes` semantics. */
export function evaluateResults(
  gt: CocoDataset,
  results: CocoResult[],
  opts: { iouType?: IouType; useCats?: boolean } = {},
): CocoEvalResult {
  const params = defaultParams(gt, opts.iouType ?? "segm", opts.useCats ?? true);
  return cocoEval(gt, loadResults(gt, results), params);
}

/** Stable counting sort of items into (image, category) pairs: offsets [I*Kc + 1] and the item indices. */
function groupByPair(n: number, pairOf: (j: number) => number, pairs: number): { off: Int32Array; idx: Int32Array; pair: Int32Array } {
  const pair = new Int32Array(n);
  const off = new Int32Array(pairs + 1);
  for (let j = 0; j < n; j++) {
    const q = pairOf(j);
    pair[j] = q;
    if (q >= 0) off[q + 1]++;
  }
  for (let q = 0; q < pairs; q++) off[q + 1] += off[q];
  const fill = off.slice(0, pairs);
  const idx = new Int32Array(off[pairs]);
  for (let j = 0; j < n; j++) if (pair[j] >= 0) idx[fill[pair[j]]++] = j;
  return { off, idx, pair };
}

/**
 * pycocotools `evaluate()`, kept flat (see `EvalStore`). Segmentations are decoded (and polygons
 * rasterised) only for groups that have both GT and detections, each once, right before their IoUs.
 */
/** Called with (groups done, groups in all) every few thousand (image, category) groups and at the end. */
export type EvalProgress = (done: number, total: number) => void;

export function evaluateImages(gt: CocoDataset, dts: CocoDetection[], p: CocoEvalParams, onProgress?: EvalProgress): EvalStore {
  const imgIndex = new Map(p.imgIds.map((id, i) => [id, i]));
  const catIndex = new Map(p.catIds.map((id, k) => [id, k]));
  const imageById = new Map(gt.images.map((img) => [img.id, img]));
  const I = p.imgIds.length, Kc = p.catIds.length;
  const segm = p.iouType === "segm";
  const anns = gt.annotations;

  // _prepare: GT and detections grouped per (image, category), in file order.
  const pairOf = (imageId: number, categoryId: number): number => {
    const i = imgIndex.get(imageId), k = catIndex.get(categoryId);
    return i === undefined || k === undefined ? -1 : i * Kc + k;
  };
  const G0 = groupByPair(anns.length, (j) => pairOf(anns[j].image_id, anns[j].category_id), I * Kc);
  const D0 = groupByPair(dts.length, (j) => pairOf(dts[j].image_id, dts[j].category_id), I * Kc);
  if (segm) {
    for (let j = 0; j < anns.length; j++) {
      if (G0.pair[j] >= 0 && anns[j].segmentation === undefined) segmentationRle(undefined, imageById.get(anns[j].image_id)!, `GT annotation id ${anns[j].id}`);
    }
    for (let j = 0; j < dts.length; j++) {
      if (D0.pair[j] >= 0 && dts[j].segmentation === undefined) segmentationRle(undefined, imageById.get(dts[j].image_id)!, `detection id ${dts[j].id} (image ${dts[j].image_id})`);
    }
  }

  const K = p.useCats ? Kc : 1, A = p.areaRng.length, T = p.iouThrs.length;
  const maxDet = p.maxDets[p.maxDets.length - 1];
  // A group's ranges in the pair-sorted index arrays: one pair, or all pairs of the image.
  const useCats = p.useCats, gOff = G0.off, dOff = D0.off;

  // Sizes first, so that every array is allocated once.
  const groupOf = new Int32Array(K * I).fill(-1);
  let nGroups = 0, nDt = 0, nGt = 0, nDtMatch = 0, nGtMatch = 0;
  for (let k = 0; k < K; k++) {
    for (let i = 0; i < I; i++) {
      const q0 = i * Kc + (useCats ? k : 0), q1 = i * Kc + (useCats ? k + 1 : Kc);
      const G = gOff[q1] - gOff[q0];
      const D = Math.min(dOff[q1] - dOff[q0], maxDet);
      if (G === 0 && dOff[q1] === dOff[q0]) continue;
      groupOf[k * I + i] = nGroups++;
      nDt += D; nGt += G;
      if (G > 0 && D > 0) { nDtMatch += A * T * D; nGtMatch += A * T * G; }
    }
  }
  const s: EvalStore = {
    I, K, A, T, maxDet, groupOf,
    groupDtStart: new Int32Array(nGroups + 1), groupGtStart: new Int32Array(nGroups + 1),
    groupDtMatchStart: new Int32Array(nGroups), groupGtMatchStart: new Int32Array(nGroups),
    catDtStart: new Int32Array(K + 1),
    dtId: new Float64Array(nDt), dtScore: new Float64Array(nDt), dtRank: new Int32Array(nDt),
    dtState: new Uint8Array(nDt * A * T),
    gtId: new Float64Array(nGt), gtArea: new Float64Array(nGt), gtCrowd: new Uint8Array(nGt),
    dtMatch: new Float64Array(nDtMatch), gtMatch: new Float64Array(nGtMatch),
    npig: new Float64Array(K * A),
  };
  const dtArea = new Float64Array(nDt);
  const iouThrs = p.iouThrs;
  // Per-group scratch.
  let order = new Int32Array(64), gtind = new Int32Array(64), gIg = new Uint8Array(64), dtm = new Float64Array(64), dtIg = new Uint8Array(64);
  let g = 0, dPos = 0, gPos = 0, dmPos = 0, gmPos = 0;
  for (let k = 0; k < K; k++) {
    s.catDtStart[k] = dPos;
    for (let i = 0; i < I; i++) {
      if (groupOf[k * I + i] < 0) continue;
      const q0 = i * Kc + (useCats ? k : 0), q1 = i * Kc + (useCats ? k + 1 : Kc);
      const gLo = gOff[q0], G = gOff[q1] - gLo;
      const dLo = dOff[q0], Dall = dOff[q1] - dLo;
      const D = Math.min(Dall, maxDet);
      s.groupDtStart[g] = dPos; s.groupGtStart[g] = gPos;
      // Detections by descending score, stable (numpy argsort(-score, kind='mergesort')), top maxDet.
      if (order.length < Dall) order = new Int32Array(2 * Dall);
      for (let d = 0; d < Dall; d++) order[d] = D0.idx[dLo + d];
      const ord = order.subarray(0, Dall);
      // Ties keep the order of the concatenation: by pair (category, when class-agnostic), then file order.
      const dPair = D0.pair;
      if (Dall > 64) ord.sort((a, b) => dts[b].score - dts[a].score || dPair[a] - dPair[b] || a - b);
      else {
        // Stable insertion sort: ord starts in that order.
        for (let q = 1; q < Dall; q++) {
          const o = ord[q], sq = dts[o].score;
          let r = q - 1;
          while (r >= 0 && dts[ord[r]].score < sq) { ord[r + 1] = ord[r]; r--; }
          ord[r + 1] = o;
        }
      }
      for (let d = 0; d < D; d++) {
        const o = dts[ord[d]];
        s.dtId[dPos + d] = o.id; s.dtScore[dPos + d] = o.score; s.dtRank[dPos + d] = d; dtArea[dPos + d] = o.area;
      }
      for (let j = 0; j < G; j++) {
        const a = anns[G0.idx[gLo + j]];
        s.gtId[gPos + j] = a.id; s.gtArea[gPos + j] = a.area; s.gtCrowd[gPos + j] = a.iscrowd ? 1 : 0;
      }
      const imageId = p.imgIds[i];
      let ious: Float64Array | undefined;
      if (G > 0 && D > 0) {
        const crowd = s.gtCrowd.subarray(gPos, gPos + G);
        if (segm) {
          const img = imageById.get(imageId)!;
          const dR: Rle[] = [], gR: Rle[] = [];
          for (let d = 0; d < D; d++) {
            const o = dts[ord[d]];
            dR.push(segmentationRle(o.segmentation, img, `detection id ${o.id} (image ${o.image_id})`));
          }
          for (let j = 0; j < G; j++) {
            const a = anns[G0.idx[gLo + j]];
            gR.push(segmentationRle(a.segmentation, img, `GT annotation id ${a.id}`));
          }
          ious = rleIou(dR, gR, crowd);
        } else {
          const dB: ArrayLike<number>[] = [], gB: ArrayLike<number>[] = [];
          for (let d = 0; d < D; d++) dB.push(dts[ord[d]].bbox);
          for (let j = 0; j < G; j++) gB.push(anns[G0.idx[gLo + j]].bbox);
          ious = bboxIou(dB, gB, crowd);
        }
        s.groupDtMatchStart[g] = dmPos; s.groupGtMatchStart[g] = gmPos;
      } else {
        s.groupDtMatchStart[g] = -1; s.groupGtMatchStart[g] = -1;
      }
      if (gtind.length < G) { gtind = new Int32Array(2 * G); gIg = new Uint8Array(2 * G); }
      if (dtm.length < T * D) { dtm = new Float64Array(2 * T * D); dtIg = new Uint8Array(2 * T * D); }
      for (let a = 0; a < A; a++) {
        const aLo = p.areaRng[a][0], aHi = p.areaRng[a][1];
        // GT order: non-ignored first, stable; ignore = crowd or outside the area range.
        let nOk = 0;
        for (let j = 0; j < G; j++) {
          const ar = s.gtArea[gPos + j];
          if (!(s.gtCrowd[gPos + j] || ar < aLo || ar > aHi)) gtind[nOk++] = j;
        }
        s.npig[k * A + a] += nOk;
        let q = nOk;
        for (let j = 0; j < G; j++) {
          const ar = s.gtArea[gPos + j];
          if (s.gtCrowd[gPos + j] || ar < aLo || ar > aHi) gtind[q++] = j;
        }
        for (let j = 0; j < G; j++) gIg[j] = j < nOk ? 0 : 1;
        if (ious) {
          dtm.fill(0, 0, T * D); dtIg.fill(0, 0, T * D);
          const gtm = s.gtMatch, g0 = gmPos + a * T * G;
          for (let t = 0; t < T; t++) {
            for (let d = 0; d < D; d++) {
              let best = Math.min(iouThrs[t], 1 - 1e-10);
              let m = -1;
              const row = d * G;
              for (let j = 0; j < G; j++) {
                // Already matched and not a crowd: skip.
                if (gtm[g0 + t * G + j] > 0 && !s.gtCrowd[gPos + gtind[j]]) continue;
                // Matched to a regular GT and only ignored GT remain: stop.
                if (m > -1 && gIg[m] === 0 && gIg[j] === 1) break;
                const iou = ious[row + gtind[j]];
                if (iou < best) continue;
                best = iou;
                m = j;
              }
              if (m === -1) continue;
              dtIg[t * D + d] = gIg[m];
              dtm[t * D + d] = s.gtId[gPos + gtind[m]];
              gtm[g0 + t * G + m] = s.dtId[dPos + d];
            }
          }
          for (let q = 0, o = dmPos + a * T * D; q < T * D; q++) s.dtMatch[o + q] = dtm[q];
        }
        // Unmatched detections outside the area range are ignored; then one state byte each.
        const state = s.dtState;
        for (let d = 0; d < D; d++) {
          const outside = dtArea[dPos + d] < aLo || dtArea[dPos + d] > aHi;
          const base = ((dPos + d) * A + a) * T;
          if (!ious) { // no GT: nothing matched (state 0, already there) or ignored
            if (outside) for (let t = 0; t < T; t++) state[base + t] = 2;
            continue;
          }
          for (let t = 0; t < T; t++) {
            const mt = dtm[t * D + d];
            const ignored = dtIg[t * D + d] === 1 || (outside && mt === 0);
            state[base + t] = ignored ? 2 : mt !== 0 ? 1 : 0;
          }
        }
      }
      if (ious) { dmPos += A * T * D; gmPos += A * T * G; }
      dPos += D; gPos += G; g++;
      if (onProgress && (g & 4095) === 0) onProgress(g, nGroups);
    }
  }
  onProgress?.(nGroups, nGroups);
  s.catDtStart[K] = dPos;
  s.groupDtStart[nGroups] = dPos; s.groupGtStart[nGroups] = gPos;
  return s;
}

/** The pycocotools evalImgs entry of (category index k, area index a, image index i), or null. */
export function evalImageAt(s: EvalStore, p: CocoEvalParams, k: number, a: number, i: number): EvalImage | null {
  const g = s.groupOf[k * s.I + i];
  if (g < 0) return null;
  const T = s.T, A = s.A;
  const d0 = s.groupDtStart[g], D = s.groupDtStart[g + 1] - d0;
  const g0 = s.groupGtStart[g], G = s.groupGtStart[g + 1] - g0;
  const aRng = p.areaRng[a];
  const ign = (j: number) => (s.gtCrowd[g0 + j] || s.gtArea[g0 + j] < aRng[0] || s.gtArea[g0 + j] > aRng[1] ? 1 : 0);
  const gtind: number[] = [];
  for (let j = 0; j < G; j++) if (!ign(j)) gtind.push(j);
  for (let j = 0; j < G; j++) if (ign(j)) gtind.push(j);
  const dtMatches = new Float64Array(T * D), gtMatches = new Float64Array(T * G), dtIgnore = new Uint8Array(T * D);
  if (s.groupDtMatchStart[g] >= 0) {
    dtMatches.set(s.dtMatch.subarray(s.groupDtMatchStart[g] + a * T * D, s.groupDtMatchStart[g] + (a + 1) * T * D));
    gtMatches.set(s.gtMatch.subarray(s.groupGtMatchStart[g] + a * T * G, s.groupGtMatchStart[g] + (a + 1) * T * G));
  }
  for (let d = 0; d < D; d++) for (let t = 0; t < T; t++) dtIgnore[t * D + d] = s.dtState[((d0 + d) * A + a) * T + t] === 2 ? 1 : 0;
  return {
    imageId: p.imgIds[i], categoryId: p.useCats ? p.catIds[k] : -1, aRng, maxDet: s.maxDet,
    dtIds: Array.from(s.dtId.subarray(d0, d0 + D)), gtIds: gtind.map((j) => s.gtId[g0 + j]),
    dtMatches, gtMatches, dtScores: s.dtScore.slice(d0, d0 + D),
    gtIgnore: Uint8Array.from(gtind, (j) => ign(j)), dtIgnore,
  };
}

/** pycocotools' evalImgs list, [k][a][i] flattened. */
export function evalImagesList(s: EvalStore, p: CocoEvalParams): (EvalImage | null)[] {
  const out: (EvalImage | null)[] = [];
  for (let k = 0; k < s.K; k++) for (let a = 0; a < s.A; a++) for (let i = 0; i < s.I; i++) out.push(evalImageAt(s, p, k, a, i));
  return out;
}

const EPS = 2.220446049250313e-16; // np.spacing(1)

/**
 * The indices start..start+n-1 stably sorted by descending score (ties keep index order), as numpy's
 * argsort(-score, kind='mergesort'): a bottom-up merge sort without a comparator callback.
 */
function sortByScoreDesc(score: Float64Array, start: number, n: number): Uint32Array {
  let src = new Uint32Array(n), dst = new Uint32Array(n);
  for (let j = 0; j < n; j++) src[j] = start + j;
  for (let width = 1; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = Math.min(lo + width, n), hi = Math.min(lo + 2 * width, n);
      let i = lo, j = mid, o = lo;
      while (i < mid && j < hi) dst[o++] = score[src[i]] >= score[src[j]] ? src[i++] : src[j++];
      while (i < mid) dst[o++] = src[i++];
      while (j < hi) dst[o++] = src[j++];
    }
    const t = src; src = dst; dst = t;
  }
  return src;
}

/** pycocotools `accumulate()`. */
export function accumulate(s: EvalStore, p: CocoEvalParams) {
  const T = p.iouThrs.length, R = p.recThrs.length, K = p.useCats ? p.catIds.length : 1;
  const A = p.areaRng.length, M = p.maxDets.length;
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  const scores = new Float64Array(T * R * K * A * M).fill(-1);
  const maxDetAll = Math.max(...p.maxDets);
  const recThrs = p.recThrs;
  const AT = A * T;
  const state = s.dtState, rank = s.dtRank, npigAll = s.npig, catDtStart = s.catDtStart, sc = s.dtScore;
  for (let k = 0; k < K; k++) {
    let anyGt = false;
    for (let a = 0; a < A; a++) if (npigAll[k * A + a] > 0) anyGt = true;
    if (!anyGt) continue;
    // pycocotools concatenates each image's score-sorted detections (top maxDet) in image order and
    // sorts stably by score: category k's detections are already laid out that way. One sort serves
    // every maxDet: truncating each image's list keeps the relative order of what remains.
    const c0 = catDtStart[k], nAll = catDtStart[k + 1] - c0;
    const orderAll = sortByScoreDesc(sc, c0, nAll);
    // Recall only rises at a true positive and precision only rises there too, so the precision
    // envelope and the searchsorted of the recall thresholds need the running values at the first
    // detection and at each true positive only ("events"): the same numbers, far fewer of them.
    const E = nAll + 1;
    const evRc = new Float64Array(T * E), evPr = new Float64Array(T * E), evJ = new Int32Array(T * E);
    const nEv = new Int32Array(T);
    const tp = new Float64Array(T), fp = new Float64Array(T);
    for (let m = 0; m < M; m++) {
      const maxDet = p.maxDets[m];
      const order = maxDet >= maxDetAll ? orderAll : orderAll.filter((o) => rank[o] < maxDet);
      const nd = order.length;
      for (let a = 0; a < A; a++) {
        const npig = npigAll[k * A + a];
        if (npig === 0) continue;
        if (nd === 0) {
          for (let t = 0; t < T; t++) {
            recall[((t * K + k) * A + a) * M + m] = 0;
            for (let r = 0; r < R; r++) {
              const at = (((t * R + r) * K + k) * A + a) * M + m;
              precision[at] = 0; scores[at] = 0;
            }
          }
          continue;
        }
        tp.fill(0); fp.fill(0); nEv.fill(0);
        for (let j = 0; j < nd; j++) {
          const base = order[j] * AT + a * T;
          for (let t = 0; t < T; t++) {
            const st = state[base + t];
            if (st === 1) tp[t]++;
            else { if (st === 0) fp[t]++; if (j > 0) continue; }
            const e = t * E + nEv[t]++;
            evRc[e] = tp[t] / npig;
            evPr[e] = tp[t] / (fp[t] + tp[t] + EPS);
            evJ[e] = j;
          }
        }
        for (let t = 0; t < T; t++) {
          const e0 = t * E, ne = nEv[t];
          recall[((t * K + k) * A + a) * M + m] = tp[t] / npig;
          // Precision envelope: non-increasing from the right.
          for (let e = e0 + ne - 1; e > e0; e--) if (evPr[e] > evPr[e - 1]) evPr[e - 1] = evPr[e];
          // First index with recall >= each threshold (searchsorted left); 0 beyond the last.
          let e = e0;
          for (let r = 0; r < R; r++) {
            while (e < e0 + ne && evRc[e] < recThrs[r]) e++;
            const at = (((t * R + r) * K + k) * A + a) * M + m;
            if (e < e0 + ne) { precision[at] = evPr[e]; scores[at] = sc[order[evJ[e]]]; }
            else { precision[at] = 0; scores[at] = 0; }
          }
        }
      }
    }
  }
  return { precision, recall, scores };
}

/** numpy's float64 add.reduce (pairwise summation, 8-way unrolled blocks of <= 128). */
function pairwiseSum(a: ArrayLike<number>, start: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i];
    return res;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = a[start + j];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/**
 * np.mean(s[s > -1]), or -1 when nothing is left. numpy's reduction starts from 0 and feeds the
 * inner loop in buffers of 8192 elements, each summed pairwise; reproducing that makes the stats
 * bit-identical to pycocotools.
 */
function meanValid(values: number[]): number {
  const kept = values.filter((v) => v > -1);
  if (kept.length === 0) return -1;
  let sum = 0;
  for (let s = 0; s < kept.length; s += 8192) sum += pairwiseSum(kept, s, Math.min(8192, kept.length - s));
  return sum / kept.length;
}

/** pycocotools `_summarize` for one line. */
function summarizeOne(
  precision: Float64Array, recall: Float64Array, p: CocoEvalParams,
  ap: boolean, iouThr: number | undefined, areaLbl: string, maxDets: number,
): number {
  const R = p.recThrs.length, K = p.useCats ? p.catIds.length : 1;
  const A = p.areaRng.length, M = p.maxDets.length;
  const tIdx = [...p.iouThrs.keys()].filter((t) => iouThr === undefined || p.iouThrs[t] === iouThr);
  const aIdx = p.areaRngLbl.map((l, i) => (l === areaLbl ? i : -1)).filter((i) => i >= 0);
  const mIdx = p.maxDets.map((d, i) => (d === maxDets ? i : -1)).filter((i) => i >= 0);
  // s[:, :, :, aind, mind]: the two index lists broadcast together.
  const pairs: [number, number][] = [];
  if (aIdx.length > 0 && mIdx.length > 0) {
    const n = Math.max(aIdx.length, mIdx.length);
    for (let j = 0; j < n; j++) pairs.push([aIdx[aIdx.length === 1 ? 0 : j], mIdx[mIdx.length === 1 ? 0 : j]]);
  }
  const values: number[] = [];
  if (ap) {
    for (const t of tIdx) for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) for (const [a, m] of pairs) {
      values.push(precision[(((t * R + r) * K + k) * A + a) * M + m]);
    }
  } else {
    for (const t of tIdx) for (let k = 0; k < K; k++) for (const [a, m] of pairs) {
      values.push(recall[((t * K + k) * A + a) * M + m]);
    }
  }
  return meanValid(values);
}

/** The 12 stats of pycocotools `summarize()` for segm/bbox. */
export function summarize(precision: Float64Array, recall: Float64Array, p: CocoEvalParams): number[] {
  return SUMMARY_LINES.map((l) => summarizeOne(precision, recall, p, l.ap, l.iouThr, l.area, p.maxDets[l.maxDetIndex]));
}

/** AP (mean over recall thresholds of precision > -1) per category at one IoU threshold, area 'all', the largest maxDets. */
export function apPerCategory(precision: Float64Array, p: CocoEvalParams, iouThr: number): number[] {
  const R = p.recThrs.length, K = p.useCats ? p.catIds.length : 1;
  const A = p.areaRng.length, M = p.maxDets.length;
  const t = [...p.iouThrs].indexOf(iouThr), a = p.areaRngLbl.indexOf("all"), m = M - 1;
  const out: number[] = [];
  for (let k = 0; k < K; k++) {
    if (t < 0 || a < 0) { out.push(-1); continue; }
    const values: number[] = [];
    for (let r = 0; r < R; r++) values.push(precision[(((t * R + r) * K + k) * A + a) * M + m]);
    out.push(meanValid(values));
  }
  return out;
}

const SUMMARY_LINES: { ap: boolean; iouThr?: number; area: string; maxDetIndex: number }[] = [
  { ap: true, area: "all", maxDetIndex: 2 },
  { ap: true, iouThr: 0.5, area: "all", maxDetIndex: 2 },
  { ap: true, iouThr: 0.75, area: "all", maxDetIndex: 2 },
  { ap: true, area: "small", maxDetIndex: 2 },
  { ap: true, area: "medium", maxDetIndex: 2 },
  { ap: true, area: "large", maxDetIndex: 2 },
  { ap: false, area: "all", maxDetIndex: 0 },
  { ap: false, area: "all", maxDetIndex: 1 },
  { ap: false, area: "all", maxDetIndex: 2 },
  { ap: false, area: "small", maxDetIndex: 2 },
  { ap: false, area: "medium", maxDetIndex: 2 },
  { ap: false, area: "large", maxDetIndex: 2 },
];

/** Python's '{:.Nf}'.format(x): like toFixed, but exact binary ties round half to even. */
export function pyFixed(x: number, digits: number): string {
  const s = x * 2 ** (digits + 1); // exact; an odd integer iff x lies exactly halfway
  if (Number.isInteger(s) && Math.abs(s) % 2 === 1) {
    const scaled = Math.abs(x) * 10 ** digits; // k + 0.5, exact for the magnitudes printed here
    let n = Math.floor(scaled);
    if (n % 2 === 1) n += 1;
    const str = (n / 10 ** digits).toFixed(digits);
    return x < 0 ? `-${str}` : str;
  }
  const str = x.toFixed(digits);
  return Object.is(x, -0) ? `-${str}` : str;
}

/** The 12-line summary exactly as pycocotools `summarize()` prints it. */
export function formatSummary(stats: ArrayLike<number>, iouType: IouType = "segm", params?: Pick<CocoEvalParams, "iouThrs" | "maxDets">): string {
  void iouType; // segm and bbox print the same table
  const iouThrs = params?.iouThrs ?? linspace(0.5, 0.95, 10);
  const maxDets = params?.maxDets ?? [1, 10, 100];
  return SUMMARY_LINES.map((l, i) => {
    const title = (l.ap ? "Average Precision" : "Average Recall").padEnd(18);
    const type = l.ap ? "(AP)" : "(AR)";
    const iouStr = (l.iouThr === undefined
      ? `${pyFixed(iouThrs[0], 2)}:${pyFixed(iouThrs[iouThrs.length - 1], 2)}`
      : pyFixed(l.iouThr, 2)).padEnd(9);
    const area = l.area.padStart(6);
    const md = String(maxDets[l.maxDetIndex]).padStart(3);
    return ` ${title} ${type} @[ IoU=${iouStr} | area=${area} | maxDets=${md} ] = ${pyFixed(stats[i], 3)}`;
  }).join("\n");
}
