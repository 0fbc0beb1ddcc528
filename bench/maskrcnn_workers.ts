// The shapes recipe's Mask R-CNN iteration (batch 4, the world's ResNet-50 body as the demo trains it) on 2
// threads: one process-thread computing the whole batch (--workers 1) against two data-parallel shares in two
// threads (--workers 2, the recipe's), measured in the same run on a small make-shapes world's GT instances.
// Figures: median seconds per iteration over the timed iterations (after a warm-up), and the ratio.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { median } from "./stats.js";

const THREADS = 2, WARMUP = 5, TIMED = 25;

export async function benchMaskrcnnWorkers(): Promise<Record<string, unknown>[]> {
  const { makeShapesWorld, SHAPES_DEFAULT_WORLD } = await import("../src/shapes/world.js");
  const { SHAPES_PRETRAINED_BODY } = await import("../src/shapes/stageThree.js");
  const { initEngine } = await import("../src/engine/index.js");
  const train = await import("../src/instance/train.js");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-workers-"));
  const world = path.join(tmp, "world");
  await makeShapesWorld({ out: world, n: 200, size: 96, seed: 3, distractors: false, difficulty: SHAPES_DEFAULT_WORLD.difficulty });
  await initEngine({ backend: "wasm", threads: THREADS });
  const set = train.loadTrainSet(path.join(world, "instances_train.json"), world, { agnostic: false });
  const body = projectPath("data", "backbones", "shapes_resnet50.safetensors");
  const seconds: Record<number, number> = {};
  for (const workers of [1, 2]) {
    const out = path.join(tmp, `w${workers}`);
    const config = { ...train.shapesRecipe(), init: body, ...SHAPES_PRETRAINED_BODY, workers, iterations: WARMUP + TIMED };
    train.disposeTrainState(await train.trainMaskRcnn({ outDir: out, set, config, resume: false, checkpointSeconds: 1e9 }));
    const log = fs.readFileSync(path.join(out, train.LOG_FILE), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { trainSeconds: number });
    seconds[workers] = median(log.slice(WARMUP).map((l, i) => l.trainSeconds - log[WARMUP - 1 + i].trainSeconds));
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  return [{
    case: `shapes-recipe Mask R-CNN iteration (batch 4, ${set.samples.length} GT instances of a 200-image world, body shapes_resnet50), ${THREADS} threads, median of ${TIMED}`,
    seconds: Number(seconds[2].toFixed(3)), oneShareSeconds: Number(seconds[1].toFixed(3)), ratio: Number((seconds[2] / seconds[1]).toFixed(2)),
    note: "--workers 2 (two shares of 2 images, one thread each) against --workers 1 (one batch of 4, MLAS on 2 threads)",
  }];
}
