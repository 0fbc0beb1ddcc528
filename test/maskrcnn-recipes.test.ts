// train-maskrcnn --recipe NAME: what each name resolves to (no training).
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpuRecipe, lostRecipe, maskRcnnRecipe } from "../src/instance/train.js";
import { MaskdistillError } from "../src/errors.js";

test("--recipe lost|cpu|shapes resolve to their configs; other names are refused", () => {
  assert.deepEqual(maskRcnnRecipe("lost"), lostRecipe());
  assert.deepEqual(maskRcnnRecipe("cpu"), cpuRecipe());
  const s = maskRcnnRecipe("shapes");
  assert.deepEqual(s.widths, { stem: 16, fpn: 64, boxHead: 256, maskHead: 64 });
  assert.deepEqual({ init: s.init, freezeAt: s.freezeAt, minSizes: s.minSizes, maxSize: s.maxSize, batchSize: s.batchSize, iterations: s.iterations, workers: s.workers },
    { init: "none", freezeAt: 0, minSizes: [128, 144, 160], maxSize: 267, batchSize: 4, iterations: 1080, workers: 2 });
  assert.deepEqual({ lr: s.lr, warmupIters: s.warmupIters, steps: s.steps, clipGradNorm: s.clipGradNorm, roiBatchPerImage: s.roiBatchPerImage, preset: s.preset, agnostic: s.agnostic },
    { lr: 0.04, warmupIters: 50, steps: [900], clipGradNorm: 5, roiBatchPerImage: 128, preset: "detectron2", agnostic: false });
  for (const bad of ["gpu", "toString", "constructor"]) assert.throws(() => maskRcnnRecipe(bad), (e: unknown) => e instanceof MaskdistillError && /--recipe expects lost, cpu, shapes/.test(e.message));
});
