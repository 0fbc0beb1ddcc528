// `maskdistill make-shapes`: the procedural shapes world (src/shapes/), a data set on which every stage
// of the method can be seen working in minutes.
import * as fs from "node:fs";
import * as path from "node:path";
import type { Command } from "../command.js";
import { numberFlag, parseFlags, printJson, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";
import { projectPath } from "../../paths.js";

const usage = `usage: maskdistill make-shapes --out DIR [--n 4000] [--size 96] [--seed 0] [--distractors] [--paired-views [--recolour-views]]
                             [--difficulty full|easy|materials] [--photos DIR|none] [--val-fraction 0.125] [--json]

Generates a synthetic object-discovery data set: one main object per image, of K = 8 shape classes
(disc, square, triangle, star, cross, ring, heart, crescent) with random colour, fill texture, scale
(10–50 % of the image area), rotation and position, over crops of real photos or procedural textures.
Deterministic: the same flags give byte-identical files.

Layout (readable by gen-masks, cluster, eval-instances and eval-semseg unchanged):
  DIR/JPEGImages/<stem>.jpg, DIR/SegmentationClass/<stem>.png (0 background, 1..8 the class),
  DIR/SegmentationObject/<stem>.png (0 background, 1 the object), DIR/ImageSets/{Main,Segmentation}/
  {train,val,trainval}.txt, DIR/instances.json + instances_{train,val}.json (COCO, categories 1..8),
  DIR/train-images/ (the train split's images, for pretrain --images), DIR/scenes.jsonl, DIR/world.json

  --out DIR            output folder
  --n N                number of images (default 4000); the last --val-fraction of them are val
  --size S             image side in pixels (default 96)
  --seed N             world seed (default 0)
  --distractors        add 1–3 small clutter blobs per image (background in the ground truth)
  --paired-views       also write DIR/train-views/: a second view of each train image's object (same shape,
                       colour and fill; new pose and background), for pretrain --paired-views
  --recolour-views     the second view gives the object a new colour and fill (same shape): the pairs then
                       share only the shape, so pretraining on them learns shape rather than colour
  --difficulty D       full (default): photo, stripe, checker, noise, gradient and blob backgrounds, flat and
                       patterned fills; easy: smooth backgrounds (gradient, value noise) and flat fills only,
                       so that the silhouette is the only cue of the class; materials: smooth backgrounds,
                       and each class in its own material (flat, coarse/fine stripes, coarse/fine checker,
                       noise, gradient, dots; colour still random), as real categories differ in surface
  --photos DIR|none    photos for background crops (default data/demo/images); none: textures only
  --val-fraction F     share of val images (default 0.125)
  --json               last stdout line: the summary

Then, for example:
  npx maskdistill gen-masks --dataset coco --dataset-root DIR --gt-file DIR/instances_val.json --pred-json masks.json
  npx maskdistill cluster --dataset coco --input-file1 masks.json --dataset-root1 DIR --gt-file1 DIR/instances_val.json --output-file clusters.json`;

const command: Command = {
  name: "make-shapes",
  summary: "generate the procedural shapes world (one object per image, 8 classes, VOC + COCO ground truth)",
  usage,
  async run(argv) {
    const { values } = parseFlags("make-shapes", argv, {
      out: { type: "string" }, n: { type: "string" }, size: { type: "string" }, seed: { type: "string" },
      distractors: { type: "boolean" }, "paired-views": { type: "boolean" }, "recolour-views": { type: "boolean" }, difficulty: { type: "string" }, photos: { type: "string" }, "val-fraction": { type: "string" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("make-shapes", values, ["out"]);
    if (values["recolour-views"] && !values["paired-views"]) throw new MaskdistillError("--recolour-views re-colours the paired views: add --paired-views");
    const { SHAPES_DIFFICULTIES } = await import("../../shapes/scene.js");
    const difficulty = (values.difficulty ?? "full") as (typeof SHAPES_DIFFICULTIES)[number];
    if (!SHAPES_DIFFICULTIES.includes(difficulty)) throw new MaskdistillError(`--difficulty expects ${SHAPES_DIFFICULTIES.slice(0, -1).join(", ")} or ${SHAPES_DIFFICULTIES.at(-1)}, got '${difficulty}'`);
    const valFraction = numberFlag("val-fraction", values["val-fraction"], 0.125);
    if (!(valFraction > 0 && valFraction < 1)) throw new MaskdistillError(`--val-fraction expects a share in (0, 1), got '${values["val-fraction"]}'`);
    const photoDir = values.photos ?? projectPath("data", "demo", "images");
    let photos: string[] = [];
    if (photoDir !== "none") {
      if (!fs.existsSync(photoDir) || !fs.statSync(photoDir).isDirectory()) {
        throw new MaskdistillError("--photos: not a folder of images (pass a folder, or 'none' for procedural backgrounds only)", photoDir);
      }
      photos = (await import("../../shapes/world.js")).backgroundPhotos(photoDir);
      if (photos.length === 0) throw new MaskdistillError("--photos: no .jpg/.png files in the folder", photoDir);
    }
    const { makeShapesWorld } = await import("../../shapes/world.js");
    const { progress } = await import("../progress.js");
    const n = numberFlag("n", values.n, 4000);
    const bar = progress("make-shapes", n);
    let ticked = 0;
    let summary;
    try {
      summary = await makeShapesWorld({
        out: path.resolve(values.out), n, size: numberFlag("size", values.size, 96), seed: numberFlag("seed", values.seed, 0),
        distractors: !!values.distractors, pairedViews: !!values["paired-views"], recolourViews: !!values["recolour-views"], difficulty, valFraction, photos,
        onProgress: (done) => { bar.tick(done - ticked); ticked = done; },
      });
    } finally {
      bar.stop();
    }
    console.log(`make-shapes: ${summary.images} images (${summary.train} train, ${summary.val} val), ${summary.size} px, seed ${summary.seed}, ` +
      `mean object area ${(100 * summary.meanAreaFraction).toFixed(1)} % -> ${values.out}`);
    if (values.json) printJson(summary);
    return 0;
  },
};
export default command;
