// A segment helper thread (engine/workers.ts, started by segmentFolder with workers > 1): holds a copy of the
// DeepLab and answers each image file with its predicted labels (± the CRF), which the main thread writes.
import type { StateDict } from "../modeling/checkpoint/index.js";
import { serveEngineWorker, type WorkerEngine } from "../engine/workers.js";
import type { DeepLabV3 } from "../engine/models/deeplab.js";

export interface SegmentWorkerInit {
  engine: WorkerEngine;
  weights: StateDict;
  numClasses: number;
  asppRates: number[];
  crf: boolean;
  size: number;
}

/** One image's prediction (what travels back; the labels' buffer is transferred). */
export interface SegmentWorkerAnswer { width: number; height: number; labels: Uint8Array }

let model: DeepLabV3 | undefined;
let settings: { crf: boolean; size: number } | undefined;

serveEngineWorker<SegmentWorkerInit, { file: string }, SegmentWorkerAnswer>({
  async init(m) {
    const { makeDeepLabV3 } = await import("../engine/models/deeplab.js");
    const { seededRng } = await import("../engine/models/params.js");
    const { deepLabWidthsOf, loadDeepLabStateDict } = await import("./model.js");
    model = makeDeepLabV3(seededRng(0), { numClasses: m.numClasses, trainableFrom: "layer3", widths: deepLabWidthsOf(m.weights, "segment worker"), asppRates: m.asppRates });
    loadDeepLabStateDict(model, m.weights, "segment worker");
    settings = { crf: m.crf, size: m.size };
  },
  async job({ file }) {
    if (!model || !settings) throw new Error("a job before init");
    const { loadRgb } = await import("../data/image.js");
    const { predictImage } = await import("./predict.js");
    const p = await predictImage(model, await loadRgb(file), settings);
    return { width: p.width, height: p.height, labels: p.labels.slice() };
  },
});
