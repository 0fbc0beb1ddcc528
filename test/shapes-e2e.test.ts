// End to end on a tiny shapes world of scenes the bundled shapes backbone never saw (seed 7; it was pretrained
// on seed 0's train split): stage i with that backbone must find the objects better than the same ViT at its
// random initialisation and than a centred box, by a margin (issue 19 item 6, the stage-i part).
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
});
