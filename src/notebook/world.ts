// The one switch at the top of the stage notebooks: which data world a notebook shows.
//   "shapes" (default) — the procedural shapes world (src/shapes/, made in .cache/shapes when missing, about a
//            minute): its val split with the bundled shapes backbone, where the method's steps can be seen
//            working;
//   "demo"   — the bundled COCO images of data/demo/ (val split) with the demo backbone (or real DINO weights);
//   a path   — a COCO-style folder of your own: DIR/instances.json (or instances_val.json) and the images
//            under DIR or DIR/images, every image of the file, with real weights when downloaded.
// MASKDISTILL_WORLD sets it without editing the notebook.
import * as fs from "node:fs";
import * as path from "node:path";
import { readCocoDataset, type CocoDataset } from "../data/coco.js";
import { readSplit } from "../data/voc.js";
import { cocoImages } from "../distill/imageList.js";
import type { ImageItem } from "../distill/genMasks.js";
import { defaultBackbone, type BackboneChoice, type BackboneUse } from "../distill/backboneChoice.js";
import { ensureShapesWorld, shapesDefaultDir } from "../shapes/world.js";
import { MaskdistillError } from "../errors.js";
import { projectPath } from "../paths.js";

export interface NotebookWorld {
  /** "shapes", "demo" or "folder". */
  kind: "shapes" | "demo" | "folder";
  /** One line for the reader: what the images are and which split is shown. */
  label: string;
  /** Short name for titles ("shapes val", "demo val", the folder's name). */
  short: string;
  /** The ground truth of the shown images (scoring only). */
  gtFile: string;
  gt: CocoDataset;
  /** Folder the ground truth's file names are relative to. */
  imageDir: string;
  /** The images the notebook runs on, with the ids of the ground truth. */
  images: ImageItem[];
}

/**
 * The world named by `which` (default: $MASKDISTILL_WORLD, else "shapes"); `split` "all" takes train and val
 * of the shapes and demo worlds (a folder is always every image of its file).
 */
export async function notebookWorld(which: string = process.env.MASKDISTILL_WORLD ?? "shapes", opts: { split?: "val" | "all" } = {}): Promise<NotebookWorld> {
  const all = opts.split === "all";
  if (which === "shapes") {
    const dir = shapesDefaultDir();
    const info = await ensureShapesWorld(dir, { photoDir: projectPath("data", "demo", "images") });
    const gtFile = path.join(dir, all ? "instances.json" : "instances_val.json"), gt = readCocoDataset(gtFile);
    return {
      kind: "shapes", short: all ? "shapes" : "shapes val", gtFile, gt, imageDir: dir, images: cocoImages(gtFile, dir, gt),
      label: `the shapes world (${info.images} procedural images of ${info.size} px, seed ${info.seed}; \`npx maskdistill make-shapes\`), ` +
        (all ? "all of them (the train split is what the backbone was pretrained on)" : `its val split of ${info.val} images — never seen by the backbone's pretraining`),
    };
  }
  if (which === "demo") {
    const gtFile = projectPath("data", "demo", "instances.json"), imageDir = projectPath("data", "demo", "images");
    const val = new Set(readSplit(projectPath("data", "demo", "sets", "val.txt")));
    const gt = readCocoDataset(gtFile);
    const images = cocoImages(gtFile, imageDir, gt).filter((im) => all || val.has(path.parse(im.fileName).name));
    return {
      kind: "demo", short: all ? "demo" : "demo val", gtFile, gt, imageDir, images,
      label: `the bundled COCO demo images (data/demo/), ${all ? "all" : "the val split of"} ${images.length} real photos`,
    };
  }
  const dir = path.resolve(which);
  const gtFile = ["instances.json", "instances_val.json"].map((f) => path.join(dir, f)).find((f) => fs.existsSync(f));
  if (!gtFile) throw new MaskdistillError("MASKDISTILL_WORLD is shapes, demo or a folder with instances.json (COCO style); this folder has none", dir);
  const imageDir = fs.existsSync(path.join(dir, "images")) ? path.join(dir, "images") : dir;
  const gt = readCocoDataset(gtFile);
  const images = cocoImages(gtFile, imageDir, gt);
  return { kind: "folder", short: path.basename(dir), gtFile, gt, imageDir, images, label: `${images.length} images of ${dir}` };
}

/** The backbone a notebook uses on `world` for `use` (the shapes backbone only on the shapes world). */
export function worldBackbone(world: NotebookWorld, use: BackboneUse): BackboneChoice {
  return defaultBackbone(use, world.kind === "shapes" ? { world: "shapes" } : {});
}
