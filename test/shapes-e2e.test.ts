// End to end on a tiny shapes world of scenes the bundled shapes backbone never saw (seed 7; it was pretrained
// on seed 0's train split): stage i with that backbone must find the objects better than the same ViT at its
// random initialisation and than a centred box, by a margin; a Mask R-CNN trained from scratch on those
// stage-i masks must lower its loss and find held-out objects far better than untrained (issue 19 item 6).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { backgroundPhotos, makeShapesWorld } from "../src/shapes/world.js";
import { cocoImages } from "../src/distill/imageList.js";
import { genMasks } from "../src/distill/genMasks.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { readCocoDataset } from "../src/data/coco.js";
import { scoreDiscovery, centredBoxPrediction } from "../src/evaluation/discovery.js";
import { defaultBackbone } from "../src/distill/backboneChoice.js";
import { readBackboneSidecar, exportInitialisation } from "../src/pretrain/trainer.js";
import { initEngine } from "../src/engine/index.js";
import { projectPath } from "../src/paths.js";

test("shapes world, unseen scenes: stage i with the shapes backbone beats its random initialisation and the centred box", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "md-shapes-e2e-"));
  process.env.MASKDISTILL_HOME = path.join(tmp, "home");
  const photoDir = projectPath("data", "demo", "images");
  const photos = backgroundPhotos(photoDir).slice(0, 40);
  const world = path.join(tmp, "world");
  await makeShapesWorld({ out: world, n: 120, size: 96, seed: 7, distractors: false, photos });
  const gtFile = path.join(world, "instances.json");
  const gt = readCocoDataset(gtFile);
  const images = cocoImages(gtFile, world);

  const choice = defaultBackbone("masks", { world: "shapes", env: {} });
  assert.equal(choice.source, "bundled");
  const resize = choice.resize!;
  const score = async (weights: string, name: string) => {
    const backbone = await loadBackbone(weights);
    const predJson = path.join(tmp, `masks_${name}.json`);
    try {
      await genMasks({ images, predJson, backbone, resize, quiet: true });
    } finally {
      await backbone.dispose();
    }
    return scoreDiscovery(gt, readCocoDataset(predJson).annotations);
  };
  const trained = await score(choice.path, "trained");
  await initEngine({ backend: "wasm", threads: 1 });
  const randomFile = path.join(tmp, "random_init.safetensors");
  await exportInitialisation(readBackboneSidecar(choice.path).training!.config as never, randomFile);
  const random = await score(randomFile, "random");
  const box = scoreDiscovery(gt, gt.images.map((im) => centredBoxPrediction(im, 0.5)));
  const line = (s: typeof box) => `${s.corloc.toFixed(1)} / ${s.meanBestIou.toFixed(1)}`;
  const report = `CorLoc / mean IoU: trained ${line(trained)}, random init ${line(random)}, centred box ${line(box)}`;
  console.log(report);
  assert.equal(trained.images, 120);
  assert.ok(trained.meanBestIou >= random.meanBestIou + 12, report);
  assert.ok(trained.corloc >= random.corloc + 10, report);
  assert.ok(trained.meanBestIou >= box.meanBestIou + 2, report);
  stageIMasks = path.join(tmp, "masks_trained.json");
  worldDir = world;
});

let stageIMasks: string | undefined, worldDir: string | undefined;

test("shapes world, stage iii: Mask R-CNN from scratch on the stage-i masks learns (loss falls, held-out mask AP50 far above untrained)", async () => {
  assert.ok(stageIMasks && worldDir, "needs the stage-i test's masks");
  const { shapesRecipe, loadTrainSet, trainMaskRcnn, disposeTrainState, buildTrainNet, evaluateOnSamples, BGR_PIXEL_MEAN, BGR_PIXEL_STD } = await import("../src/instance/train.js");
  const { detectron2Inference } = await import("../src/instance/maskrcnn.js");
  const { maskRcnnVariables } = await import("../src/engine/models/maskrcnn.js");
  const tf = await import("@tensorflow/tfjs");
  await initEngine({ backend: "wasm", threads: 2 });
  // the first 100 scenes' stage-i masks are the pseudo-labels (one class); the last 20 scenes' GT scores
  const masks = JSON.parse(fs.readFileSync(stageIMasks, "utf8"));
  const held = new Set<number>(masks.images.slice(100).map((im: { id: number }) => im.id));
  const trainFile = path.join(path.dirname(stageIMasks), "pseudo_train.json");
  fs.writeFileSync(trainFile, JSON.stringify({ ...masks, images: masks.images.filter((im: { id: number }) => !held.has(im.id)),
    annotations: masks.annotations.filter((a: { image_id: number }) => !held.has(a.image_id)) }));
  const set = loadTrainSet(trainFile, worldDir, { agnostic: true });
  const gt = loadTrainSet(path.join(worldDir, "instances.json"), worldDir, { agnostic: true });
  const heldOut = gt.samples.filter((s) => held.has(s.imageId));
  assert.equal(heldOut.length, 20);
  const config = { ...shapesRecipe(), iterations: 60, warmupIters: 10, steps: [50], seed: 1 };
  const losses: number[] = [];
  const state = await trainMaskRcnn({ outDir: path.join(path.dirname(stageIMasks), "maskrcnn"), set, config, resume: false, onStep: (l) => losses.push(l.loss) });
  const inference = detectron2Inference({ minSize: 192, maxSize: 320, detectionsPerImage: 20, transform: { pixelMean: BGR_PIXEL_MEAN, pixelStd: BGR_PIXEL_STD } });
  const ap = await evaluateOnSamples(state.net, gt, heldOut, inference);
  disposeTrainState(state);
  const untrained = await buildTrainNet(config, set.numClasses);
  const ap0 = await evaluateOnSamples(untrained, gt, heldOut, inference);
  tf.dispose(maskRcnnVariables(untrained));
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  const report = `loss ${mean(losses.slice(0, 10)).toFixed(3)} → ${mean(losses.slice(-10)).toFixed(3)}; held-out mask AP50 trained ${(100 * ap.ap50).toFixed(1)} vs untrained ${(100 * Math.max(0, ap0.ap50)).toFixed(1)}`;
  console.log(report);
  assert.equal(losses.length, 60);
  assert.ok(mean(losses.slice(-10)) < 0.5 * mean(losses.slice(0, 10)), report);
  assert.ok(100 * ap.ap50 >= 100 * Math.max(0, ap0.ap50) + 8, report);   // measured: 14.0 vs 1.1
});
