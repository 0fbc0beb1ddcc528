// A detect helper thread (engine/workers.ts, started by detectDataset with workers > 1): holds a copy of the
// network and answers each image file with its detections, which the main thread writes in image order.
import type { StateDict } from "../modeling/checkpoint/index.js";
import { serveEngineWorker, type WorkerEngine } from "../engine/workers.js";
import type { MaskRcnnNet } from "../engine/models/maskrcnn.js";
import type { ImageDetections, MaskRcnnInference } from "./maskrcnn.js";

export interface DetectWorkerInit {
  engine: WorkerEngine;
  weights: StateDict;
  canonicalBoxSize?: number;
  inference: MaskRcnnInference;
}

/** One image's detections without the intermediate steps (what travels back). */
export type DetectWorkerAnswer = Omit<ImageDetections, "steps">;

let net: MaskRcnnNet | undefined;
let inference: MaskRcnnInference | undefined;

serveEngineWorker<DetectWorkerInit, { file: string }, DetectWorkerAnswer>({
  async init(m) {
    const { maskRcnnFromStateDict } = await import("../engine/models/maskrcnn.js");
    net = maskRcnnFromStateDict(m.weights, "detect worker");
    if (m.canonicalBoxSize !== undefined) net.canonicalBoxSize = m.canonicalBoxSize;
    inference = m.inference;
  },
  async job({ file }) {
    if (!net || !inference) throw new Error("a job before init");
    const { loadRgb } = await import("../data/image.js");
    const { detectImage } = await import("./maskrcnn.js");
    const det = await detectImage(net, await loadRgb(file), inference);
    // copies that own their buffers, which travel without a copy
    return { width: det.width, height: det.height, boxes: det.boxes.slice(), scores: det.scores.slice(), labels: det.labels.slice(), masks: det.masks.map((m) => m.slice()) };
  },
});
