// CRF rounds (METHOD.md §5.3, the reference's train_plus_crf.sh, "2 CRF iterations" in its README):
//   round 0: train on the given labels (the stage-iv pseudo-labels);
//   round r ≥ 1: predict the training images with round r−1's model + CRF, write those labels, and
//            train a fresh DeepLab (from the same init, same recipe) on them.
// Every round is evaluated on the val set (when given) at the original resolution, argmax and with
// the CRF; ids are classes (the stage-ii cluster→class mapping is already in the labels), so mIoU is
// the direct one (§6.3), no matching. Layout: OUT/round<r>/ (train-deeplab's files, train_crf/ = the
// next round's labels, val/ and val_crf/ = predictions), OUT/rounds.json = the summary of all rounds.
import * as fs from "node:fs";
import * as path from "node:path";
import { readLabelPng } from "../data/png.js";
import { newConfusion, accumulate, scoreMatched } from "../evaluation/semseg.js";
import { MaskdistillError } from "../errors.js";
import { writeFileAtomic } from "../runner/perImage.js";
import { loadPairs, type SegmentationItem } from "./data.js";
import { segmentFolder } from "./segmentFolder.js";
import { disposeTrainState, stepsPerEpoch, trainDeepLab, MODEL_FILE, type DeepLabTrainConfig, type TrainOptions } from "./train.js";

export interface RoundResult {
  round: number;
  /** Where this round's training labels came from. */
  labels: string;
  steps: number;
  trainSeconds: number;
  /** Loss of the last training step. */
  lastLoss: number | null;
  /** Direct mIoU on val at the original size (argmax; with the CRF), per class too. */
  valMiou: number | null;
  valMiouCrf: number | null;
  valPerClass: (number | null)[] | null;
  valPerClassCrf: (number | null)[] | null;
  /** Share of training pixels whose CRF label (for the next round) differs from this round's labels. */
  labelsChanged: number | null;
}

export interface RoundsOptions {
  outDir: string;
  train: SegmentationItem[];
  /** Val items with GT labels (original resolution). */
  val?: SegmentationItem[];
  config: DeepLabTrainConfig;
  /** CRF rounds after round 0. */
  rounds: number;
  /** Threads predicting images side by side (segmentFolder's workers; the same predictions). */
  workers?: number;
  resume: boolean;
  checkpointSeconds?: number;
  signal?: AbortSignal;
  quiet?: boolean;
  hooks?: Pick<TrainOptions, "onStart" | "onStep" | "onVal"> & { onRound?: (r: RoundResult) => void; onPhase?: (round: number, what: string) => void };
}

export const ROUNDS_FILE = "rounds.json";

/** Direct mIoU of predicted PNGs (OUT/<stem>.png) against the items' labels, ids = classes. */
export function scoreFolder(predDir: string, items: SegmentationItem[], numClasses: number): { miou: number; perClass: (number | null)[]; pixelAcc: number } {
  const conf = newConfusion(256, numClasses);
  const used = new Uint8Array(256);
  for (const it of items) {
    const pred = readLabelPng(path.join(predDir, `${it.name}.png`));
    const gt = readLabelPng(it.label!, { allowedValues: (v) => v < numClasses || v === 255 });
    if (pred.width !== gt.width || pred.height !== gt.height) throw new MaskdistillError(`prediction is ${pred.width}×${pred.height}, its GT ${gt.width}×${gt.height}`, path.join(predDir, `${it.name}.png`));
    for (const v of pred.data) used[v] = 1;
    accumulate(conf, pred.data, gt.data, 255, it.name, it.label);
  }
  const s = scoreMatched(conf, used, { match: "none" });
  return { miou: s.miou, perClass: s.per_class, pixelAcc: s.pixel_acc };
}

function changedShare(items: SegmentationItem[], newDir: string): number {
  let changed = 0, total = 0;
  for (const it of items) {
    const a = readLabelPng(it.label!), b = readLabelPng(path.join(newDir, `${it.name}.png`));
    for (let i = 0; i < a.data.length; i++) { total++; if (a.data[i] !== b.data[i]) changed++; }
  }
  return total ? changed / total : 0;
}

/** Runs round 0 and `rounds` CRF rounds (resumable); returns every round's result (also in OUT/rounds.json). */
export async function trainWithCrfRounds(o: RoundsOptions): Promise<{ results: RoundResult[]; complete: boolean }> {
  const c = o.config;
  const results: RoundResult[] = [];
  let labelsOf = o.train;
  let labelSource = "given labels";
  const valPairs = o.val ? await loadPairs(o.val, c.numClasses) : undefined;
  const writeSummary = () => writeFileAtomic(path.join(o.outDir, ROUNDS_FILE), JSON.stringify({ config: c, rounds: results }, null, 1) + "\n");
  for (let r = 0; r <= o.rounds; r++) {
    const dir = path.join(o.outDir, `round${r}`);
    o.hooks?.onPhase?.(r, `training on ${labelSource}`);
    const pairs = await loadPairs(labelsOf, c.numClasses);
    let lastLoss: number | null = null;
    const state = await trainDeepLab({
      outDir: dir, pairs, names: labelsOf.map((i) => i.name), valPairs: c.select === "best-val" ? valPairs : undefined,
      config: c, resume: o.resume, checkpointSeconds: o.checkpointSeconds, signal: o.signal,
      onStart: o.hooks?.onStart, onVal: o.hooks?.onVal,
      onStep: (log, s) => { lastLoss = log.loss; o.hooks?.onStep?.(log, s); },
    });
    const done = state.step >= stepsPerEpoch(state.config, pairs.length) * state.config.epochs;
    const res: RoundResult = {
      round: r, labels: labelSource, steps: state.step, trainSeconds: Math.round(state.trainSeconds), lastLoss,
      valMiou: null, valMiouCrf: null, valPerClass: null, valPerClassCrf: null, labelsChanged: null,
    };
    if (!done || o.signal?.aborted) {
      disposeTrainState(state);
      results.push(res);
      writeSummary();
      return { results, complete: false };
    }
    try {
      if (o.val) {
        for (const crf of [false, true]) {
          o.hooks?.onPhase?.(r, `predicting val${crf ? " with the CRF" : ""}`);
          const predDir = path.join(dir, crf ? "val_crf" : "val");
          await segmentFolder({ model: state.model, items: o.val, outDir: predDir, crf, size: c.inputSize, resume: o.resume, quiet: o.quiet, signal: o.signal, weightsId: path.join(dir, MODEL_FILE), workers: o.workers });
          const s = scoreFolder(predDir, o.val, c.numClasses);
          if (crf) { res.valMiouCrf = s.miou; res.valPerClassCrf = s.perClass; } else { res.valMiou = s.miou; res.valPerClass = s.perClass; }
        }
      }
      if (r < o.rounds) {
        o.hooks?.onPhase?.(r, "predicting the training images with the CRF (next round's labels)");
        const next = path.join(dir, "train_crf");
        await segmentFolder({ model: state.model, items: labelsOf, outDir: next, crf: true, size: c.inputSize, resume: o.resume, quiet: o.quiet, signal: o.signal, weightsId: path.join(dir, MODEL_FILE), workers: o.workers });
        res.labelsChanged = changedShare(labelsOf, next);
        labelsOf = labelsOf.map((it) => ({ ...it, label: path.join(next, `${it.name}.png`) }));
        labelSource = `round ${r} + CRF (${path.relative(o.outDir, next)})`;
      }
    } finally {
      disposeTrainState(state);
    }
    results.push(res);
    writeSummary();
    o.hooks?.onRound?.(res);
    if (!fs.existsSync(path.join(dir, MODEL_FILE))) throw new MaskdistillError(`round ${r} finished without ${MODEL_FILE}`, dir);
  }
  return { results, complete: true };
}

/** The summary table of all rounds, as printed. */
export function roundsTable(results: RoundResult[]): string {
  const pct = (v: number | null) => (v === null ? "—" : (100 * v).toFixed(2));
  const rows = [["round", "trained on", "steps", "train s", "val mIoU", "val mIoU + CRF", "labels changed by CRF"]];
  for (const r of results) rows.push([String(r.round), r.labels, String(r.steps), String(r.trainSeconds), pct(r.valMiou), pct(r.valMiouCrf), r.labelsChanged === null ? "—" : `${pct(r.labelsChanged)} %`]);
  const w = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(w[i])).join("  ")).join("\n");
}
