// A train-maskrcnn helper thread (engine/workers.ts, started by instance/train.ts when config.workers > 1):
// it holds a copy of the network and answers each iteration with the gradients of its share of the batch,
// computed at the weights the main thread shares.
import type { RgbImage } from "../data/image.js";
import { serveEngineWorker } from "../engine/workers.js";
import type { MaskRcnnShareAnswer, MaskRcnnShareJob, MaskRcnnWorkerInit, TrainState } from "./train.js";

let helper: { state: TrainState; weights: Float32Array[] } | undefined;
const cache = new Map<string, RgbImage>();

serveEngineWorker<MaskRcnnWorkerInit, MaskRcnnShareJob, MaskRcnnShareAnswer>({
  async init(m) {
    const { workerTrainState } = await import("./train.js");
    helper = workerTrainState(m);
  },
  async job(job) {
    if (!helper) throw new Error("a job before init");
    const { runShareJob } = await import("./train.js");
    return runShareJob(helper, job, cache);
  },
});
