// End to end on a tiny shapes world of scenes the bundled shapes backbone never saw (seed 7; it was pretrained
// on seed 0's train split): stage i with that backbone must find the objects better than the same ViT at its
// random initialisation and than a centred box, by a margin; the world's stage-ii backbone must cluster those masks
// into the 8 shapes far above chance and above the random ViT; a Mask R-CNN trained from scratch on those
// stage-i masks must lower its loss and find held-out objects far better than untrained; a DeepLab trained from
// scratch on those masks painted as semantic labels (stage iv's gen-segmentation) likewise (issue 19 item 6).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { makeShapesWorld, SHAPES_DEFAULT_WORLD } from "../src/shapes/world.js";
import { cocoImages } from "../src/distill/imageList.js";
import { genMasks } from "../src/distill/genMasks.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { readCocoDataset } from "../src/data/coco.js";
import { scoreDiscovery, centredBoxPrediction } from "../src/evaluation/discovery.js";
import { defaultBackbone } from "../src/distill/backboneChoice.js";
import { readBackboneSidecar, exportInitialisation } from "../src/pretrain/trainer.js";
import { initEngine } from "../src/engine/index.js";

test("shapes world, unseen scenes: stage i with the shapes backbone beats its random initialisation and the centred box", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "md-shapes-e2e-"));
  process.env.MASKDISTILL_HOME = path.join(tmp, "home");
  const world = path.join(tmp, "world");
  // the world the bundled backbone was pretrained on (SHAPES_DEFAULT_WORLD: materials), another seed
  await makeShapesWorld({ out: world, n: 120, size: 96, seed: 7, distractors: false, difficulty: SHAPES_DEFAULT_WORLD.difficulty });
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
  randomInit = randomFile;
});

let stageIMasks: string | undefined, worldDir: string | undefined, randomInit: string | undefined;

test("shapes world, stage ii: the stage-i masks cluster into the 8 shapes far above chance, and above the same ViT at random init", async () => {
  assert.ok(stageIMasks && worldDir && randomInit, "needs the stage-i test's masks");
  const { runClustering } = await import("../src/cluster/run.js");
  const gtFile = path.join(worldDir, "instances.json");
  const acc = async (weights: string, name: string) => {
    const backbone = await loadBackbone(weights);
    try {
      const run = await runClustering({ dataset: "coco", numClasses: 8, primary: { inputFile: stageIMasks!, datasetRoot: worldDir!, gtFile },
        backbone, outputFile: path.join(path.dirname(stageIMasks!), `clusters_${name}.json`), saveDir: path.join(path.dirname(stageIMasks!), `cache_${name}`) });
      return run.summary.scores!.acc;
    } finally {
      await backbone.dispose();
    }
  };
  const choice = defaultBackbone("cluster", { world: "shapes", env: {} });
  assert.equal(choice.source, "bundled");
  const trained = await acc(choice.path, "trained"), random = await acc(randomInit, "random");
  const report = `cluster ACC of 120 unseen scenes' stage-i masks: stage-ii backbone ${trained.toFixed(1)} %, random init ${random.toFixed(1)} % (chance 12.5 %)`;
  console.log(report);
  assert.ok(trained >= 30, report);
  assert.ok(trained >= random + 10, report);
});

test("shapes world, stage iii: Mask R-CNN from scratch on the stage-i masks learns (loss falls, held-out mask AP50 far above untrained)", async () => {
  assert.ok(stageIMasks && worldDir, "needs the stage-i test's masks");
  const { shapesRecipe, loadTrainSet, trainMaskRcnn, disposeTrainState, buildTrainNet, evaluateOnSamples } = await import("../src/instance/train.js");
  const { shapesInference } = await import("../src/shapes/maskRcnn.js");
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
  // short side 160–192 (the recipe's before session 13): in 60 iterations the recipe's 128–160 learns less
  // (held-out AP50 2.5 vs 0.0 untrained on these 20 scenes, the same with 1,000 proposals), though at 720 both
  // score the same on the 500 val images (instance/train.ts shapesRecipe)
  const config = { ...shapesRecipe(), minSizes: [160, 176, 192], maxSize: 320, iterations: 60, warmupIters: 10, steps: [50], seed: 1 };
  const losses: number[] = [];
  const state = await trainMaskRcnn({ outDir: path.join(path.dirname(stageIMasks), "maskrcnn"), set, config, resume: false, onStep: (l) => losses.push(l.loss) });
  // the recipe's test settings (300 proposals), at the short side it trained at
  const inference = await shapesInference(20, { minSize: 192, maxSize: 320 });
  const ap = await evaluateOnSamples(state.net, gt, heldOut, inference);
  disposeTrainState(state);
  const untrained = await buildTrainNet(config, set.numClasses);
  const ap0 = await evaluateOnSamples(untrained, gt, heldOut, inference);
  tf.dispose(maskRcnnVariables(untrained));
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  const report = `loss ${mean(losses.slice(0, 10)).toFixed(3)} → ${mean(losses.slice(-10)).toFixed(3)}; held-out mask AP50 trained ${(100 * ap.ap50).toFixed(1)} vs untrained ${(100 * Math.max(0, ap0.ap50)).toFixed(1)}`;
  console.log(report);
  assert.equal(losses.length, 60);
  // measured: loss 2.262 → 1.624, held-out AP50 15.1 vs 0.0 (session 13's stage-i masks, 300 test proposals);
  // before: 2.258 → 1.602 (the residual branches start at zero, so the first loss is ~ln 2 + ln 2 + …,
  // not the ~8 of He-initialised branches), held-out AP50 12.8 vs 0.1 on session 11's stage-i masks (session 10's
  // backbone: 2.245 → 1.499, 12.0 vs 0.1; session 9, He init: 10.2 vs 0.3)
  assert.ok(mean(losses.slice(-10)) < 0.75 * mean(losses.slice(0, 10)), report);
  assert.ok(100 * ap.ap50 >= 100 * Math.max(0, ap0.ap50) + 8, report);
});

test("shapes world, stages iv–v: DeepLab from scratch on the painted stage-i masks learns (loss falls, held-out mIoU far above untrained)", async () => {
  assert.ok(stageIMasks && worldDir, "needs the stage-i test's masks");
  const { genSegmentation } = await import("../src/pseudolabels/genSegmentation.js");
  const { shapesRecipe, trainDeepLab, initTrainState, disposeTrainState } = await import("../src/segmentation/train.js");
  const { loadPairs } = await import("../src/segmentation/data.js");
  const { validate } = await import("../src/segmentation/predict.js");
  await initEngine({ backend: "wasm", threads: 2 });
  // stage iv: the first 100 scenes' stage-i masks painted as one class (label 1) over background (0)
  const tmp = path.dirname(stageIMasks);
  const masks = JSON.parse(fs.readFileSync(stageIMasks, "utf8"));
  const ids = masks.images.slice(0, 100).map((im: { id: number }) => im.id) as number[];
  const idSet = new Set(ids);
  const detFile = path.join(tmp, "masks_as_detections.json");
  fs.writeFileSync(detFile, JSON.stringify(masks.annotations.filter((a: { image_id: number }) => idSet.has(a.image_id))
    .map((a: { image_id: number; segmentation: unknown; bbox: number[] }) => ({ image_id: a.image_id, category_id: 0, segmentation: a.segmentation, bbox: a.bbox, score: 1 }))));
  const gtTrain = path.join(tmp, "gt_train100.json");
  fs.writeFileSync(gtTrain, JSON.stringify({ ...masks, images: masks.images.slice(0, 100), annotations: [] }));
  const labels = path.join(tmp, "pseudo-labels");
  const gen = await genSegmentation({ inputFile: detFile, gtFile: gtTrain, outputDir: labels, quiet: true });
  assert.equal(gen.images, 100);
  const stem = (id: number) => String(id).padStart(6, "0");
  const item = (id: number, dir: string) => ({ name: stem(id), image: path.join(worldDir!, "JPEGImages", `${stem(id)}.jpg`), label: path.join(dir, `${stem(id)}.png`) });
  const pairs = await loadPairs(ids.map((id) => item(id, labels)), 2);
  // held out: the last 20 scenes, scored against their GT object masks (SegmentationObject: 0 / 1)
  const heldIds = masks.images.slice(100).map((im: { id: number }) => im.id) as number[];
  const valPairs = await loadPairs(heldIds.map((id) => item(id, path.join(worldDir!, "SegmentationObject"))), 2);
  const config = { ...shapesRecipe(), numClasses: 2, epochs: 10, decayEpochs: [8], seed: 1 };
  const losses: number[] = [];
  const state = await trainDeepLab({ outDir: path.join(tmp, "deeplab"), pairs, names: ids.map(stem), config, resume: false, onStep: (l) => losses.push(l.loss) });
  const trained = await validate(state.model, valPairs, config.inputSize);
  disposeTrainState(state);
  const untrainedState = await initTrainState(config, []);
  const untrained = await validate(untrainedState.model, valPairs, config.inputSize);
  disposeTrainState(untrainedState);
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  const report = `pseudo-labels of ${gen.imagesWithDetections}/100 images; loss ${mean(losses.slice(0, 6)).toFixed(3)} → ${mean(losses.slice(-6)).toFixed(3)}; ` +
    `held-out mIoU (background, object) trained ${(100 * trained.miou).toFixed(1)} vs untrained ${(100 * untrained.miou).toFixed(1)}`;
  console.log(report);
  assert.equal(losses.length, 120);
  // measured: loss 0.683 → 0.435 (the labels are stage-i masks, IoU ~72 with the objects: a noisy target),
  // held-out mIoU 60.8 vs 15.7 (session 10's backbone: 0.703 → 0.539, 56.9 vs 15.7)
  assert.ok(mean(losses.slice(-6)) < 0.93 * mean(losses.slice(0, 6)), report);
  assert.ok(trained.miou >= untrained.miou + 0.2, report);
});
