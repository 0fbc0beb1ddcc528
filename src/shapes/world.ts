// The shapes world on disk (`maskdistill make-shapes`): N scenes of one main object each, in the layouts
// every command already reads.
//
//   DIR/JPEGImages/<stem>.jpg            the images (JPEG quality 95, 4:4:4)
//   DIR/SegmentationClass/<stem>.png     VOC palette PNG: 0 background, 1..K the object's class
//   DIR/SegmentationObject/<stem>.png    VOC palette PNG: 0 background, 1 the object
//   DIR/ImageSets/{Main,Segmentation}/{train,val,trainval}.txt
//   DIR/instances.json                   COCO instances (all images); instances_{train,val}.json per split;
//                                        categories 1..K = the shapes; file_name "JPEGImages/<stem>.jpg";
//                                        image id = the scene index (= the VOC trainval position)
//   DIR/train-images/                    the train split's images (hard links) for `pretrain --images`
//   DIR/train-views/                     with pairedViews: a second view of each train image's object (same
//                                        file name; new pose and background) for `pretrain --paired-views`
//   DIR/scenes.jsonl                     one line per scene: class, pose, area share, background, fill
//   DIR/world.json                       how the world was made (seed, size, counts per class)
// Same options and photos → byte-identical files.
import * as fs from "node:fs";
import * as path from "node:path";
import { loadRgb, saveRgb } from "../data/image.js";
import { resizeImage, shortSideSize } from "../data/resize.js";
import { writeLabelPng } from "../data/png.js";
import { writeCocoJson, type CocoAnnotation, type CocoDataset, type CocoImage } from "../data/coco.js";
import { rleArea, rleFromMask, rleToBbox, rleToCoco } from "../mask/rle.js";
import { MaskdistillError } from "../errors.js";
import { projectPath } from "../paths.js";
import { SHAPE_CLASSES } from "./geometry.js";
import { renderSceneViews, type Scene, type ShapesDifficulty } from "./scene.js";
import type { PhotoBank } from "./textures.js";

export interface ShapesWorldOptions {
  out: string;
  n: number;
  size: number;
  seed: number;
  distractors: boolean;
  /** Also write DIR/train-views/: view 1 of every train scene (see renderSceneViews). */
  pairedViews?: boolean;
  /** The paired views re-colour the object (new colour and fill, same shape; SceneOptions.recolourViews). */
  recolourViews?: boolean;
  /** "easy": smooth backgrounds and flat fills only; "materials": smooth backgrounds, a material per class (SceneOptions.difficulty); default "full". */
  difficulty?: ShapesDifficulty;
  /** Share of the scenes in val (the last ones; default 1/8). */
  valFraction?: number;
  /** Photo files for backgrounds (sorted by the caller); none: procedural backgrounds only. */
  photos?: string[];
  onProgress?: (done: number, total: number) => void;
}

export interface ShapesWorldSummary {
  out: string;
  images: number;
  train: number;
  val: number;
  size: number;
  seed: number;
  distractors: boolean;
  pairedViews: boolean;
  recolourViews?: boolean;
  difficulty?: ShapesDifficulty;
  photos: number;
  perClass: Record<string, number>;
  meanAreaFraction: number;
}

/** Photos shrunk to a short side of at most 192 px (bilinear), the background bank. */
export async function loadPhotoBank(files: string[]): Promise<PhotoBank> {
  const images = [];
  for (const f of files) {
    let img = await loadRgb(f);
    if (Math.min(img.width, img.height) > 192) {
      const [w, h] = shortSideSize(img.width, img.height, 192);
      img = resizeImage(img, w, h, "bilinear");
    }
    images.push(img);
  }
  return { images };
}

export const shapesStem = (index: number) => String(index).padStart(6, "0");

/** COCO categories of the world: id = class index + 1 (the SegmentationClass value). */
/** Each image's object: its largest annotation (the world's distractors, when there are any, are small). */
export function shapesObjects(gt: CocoDataset): Map<number, CocoAnnotation> {
  const object = new Map<number, CocoAnnotation>();
  for (const a of gt.annotations) if ((object.get(a.image_id)?.area ?? -1) < (a.area ?? 0)) object.set(a.image_id, a);
  return object;
}

export function shapesCategories(): { id: number; name: string; supercategory: string }[] {
  return SHAPE_CLASSES.map((name, i) => ({ id: i + 1, name, supercategory: "shape" }));
}

function annotationOf(scene: Scene, imageId: number): CocoAnnotation {
  const rle = rleFromMask(scene.mask, scene.image.height, scene.image.width);
  return {
    id: imageId + 1, image_id: imageId, category_id: scene.classIndex + 1,
    segmentation: rleToCoco(rle), area: rleArea(rle), bbox: rleToBbox(rle), iscrowd: 0,
  };
}

/** Writes the world; see the file comment for the layout. */
export async function makeShapesWorld(opts: ShapesWorldOptions): Promise<ShapesWorldSummary> {
  const { out, n, size, seed } = opts;
  if (!Number.isInteger(n) || n < 2) throw new MaskdistillError(`make-shapes: --n must be an integer ≥ 2, got ${n}`);
  if (!Number.isInteger(size) || size < 16) throw new MaskdistillError(`make-shapes: --size must be an integer ≥ 16, got ${size}`);
  if (!Number.isInteger(seed) || seed < 0) throw new MaskdistillError(`make-shapes: --seed must be a non-negative integer, got ${seed}`);
  const nVal = Math.max(1, Math.round(n * (opts.valFraction ?? 1 / 8)));
  if (nVal >= n) throw new MaskdistillError(`make-shapes: --n ${n} leaves no training images`);
  const difficulty = opts.difficulty ?? "full", easy = difficulty !== "full";
  const photos = easy ? [] : opts.photos ?? []; // the easy and materials worlds draw no photo backgrounds
  const bank = await loadPhotoBank(photos);
  const dirs = ["JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Main", "ImageSets/Segmentation", "train-images",
    ...(opts.pairedViews ? ["train-views"] : [])].map((d) => path.join(out, d));
  for (const d of dirs) fs.mkdirSync(d, { recursive: true });

  const images: CocoImage[] = [], annotations: CocoAnnotation[] = [], sceneLines: string[] = [];
  const perClass: Record<string, number> = Object.fromEntries(SHAPE_CLASSES.map((c) => [c, 0]));
  let areaSum = 0;
  for (let i = 0; i < n; i++) {
    // a train scene with paired views is rendered once with its second view (train-views/)
    const [scene, secondView] = renderSceneViews(seed, i, { size, distractors: opts.distractors, photos: bank, recolourViews: opts.recolourViews, difficulty: opts.difficulty }, opts.pairedViews && i < n - nVal ? 2 : 1);
    const stem = shapesStem(i);
    const jpg = path.join(out, "JPEGImages", `${stem}.jpg`);
    await saveRgb(scene.image, jpg);
    const cls = new Uint8Array(scene.mask.length);
    for (let p = 0; p < cls.length; p++) cls[p] = scene.mask[p] ? scene.classIndex + 1 : 0;
    writeLabelPng(path.join(out, "SegmentationClass", `${stem}.png`), { width: size, height: size, data: cls });
    writeLabelPng(path.join(out, "SegmentationObject", `${stem}.png`), { width: size, height: size, data: scene.mask });
    if (i < n - nVal) {
      const link = path.join(out, "train-images", `${stem}.jpg`);
      fs.rmSync(link, { force: true });
      try {
        fs.linkSync(jpg, link);
      } catch {
        fs.copyFileSync(jpg, link); // a file system without hard links
      }
      if (secondView) await saveRgb(secondView.image, path.join(out, "train-views", `${stem}.jpg`));
    }
    images.push({ id: i, file_name: `JPEGImages/${stem}.jpg`, width: size, height: size });
    annotations.push(annotationOf(scene, i));
    const { pose } = scene;
    sceneLines.push(JSON.stringify({
      stem, class: scene.shape, category_id: scene.classIndex + 1, split: i < n - nVal ? "train" : "val",
      area_fraction: +scene.areaFraction.toFixed(4), cx: +pose.cx.toFixed(2), cy: +pose.cy.toFixed(2), scale: +pose.scale.toFixed(3),
      angle: +pose.angle.toFixed(4), background: scene.background, fill: scene.fill, distractors: scene.distractors,
    }));
    perClass[scene.shape]++;
    areaSum += scene.areaFraction;
    opts.onProgress?.(i + 1, n);
  }

  const stems = images.map((_, i) => shapesStem(i));
  const lists = { train: stems.slice(0, n - nVal), val: stems.slice(n - nVal), trainval: stems };
  for (const sub of ["Main", "Segmentation"]) {
    for (const [name, list] of Object.entries(lists)) fs.writeFileSync(path.join(out, "ImageSets", sub, `${name}.txt`), list.join("\n") + "\n");
  }
  const categories = shapesCategories();
  const info = { description: `maskdistill shapes world (seed ${seed}, ${size} px)`, version: "1" };
  const dataset = (lo: number, hi: number): CocoDataset => ({
    info, images: images.slice(lo, hi), annotations: annotations.slice(lo, hi), categories,
  });
  writeCocoJson(path.join(out, "instances.json"), dataset(0, n));
  writeCocoJson(path.join(out, "instances_train.json"), dataset(0, n - nVal));
  writeCocoJson(path.join(out, "instances_val.json"), dataset(n - nVal, n));
  fs.writeFileSync(path.join(out, "scenes.jsonl"), sceneLines.join("\n") + "\n");
  const summary: ShapesWorldSummary = {
    out, images: n, train: n - nVal, val: nVal, size, seed, distractors: opts.distractors, pairedViews: Boolean(opts.pairedViews),
    ...(opts.recolourViews ? { recolourViews: true } : {}), ...(easy ? { difficulty } : {}),
    photos: photos.length,
    perClass, meanAreaFraction: +(areaSum / n).toFixed(4),
  };
  fs.writeFileSync(path.join(out, "world.json"), JSON.stringify({
    world: "shapes", classes: [...SHAPE_CLASSES], ...summary, out: undefined,
    photoFiles: photos.map((p) => path.basename(p)),
    command: `npx maskdistill make-shapes --out DIR --n ${n} --size ${size} --seed ${seed}${easy ? ` --difficulty ${difficulty}` : ""}${opts.distractors ? " --distractors" : ""}${opts.pairedViews ? " --paired-views" : ""}${opts.recolourViews ? " --recolour-views" : ""}`,
  }, null, 1) + "\n");
  return summary;
}

/** The .jpg/.png files of a folder, sorted by name: the background photos make-shapes draws from. */
export function backgroundPhotos(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort().map((f) => path.join(dir, f));
}

/** The world the bundled shapes backbone was trained and scored on (make-shapes defaults). */
export const SHAPES_DEFAULT_WORLD: { n: number; size: number; seed: number; distractors: boolean; difficulty: ShapesDifficulty } = { n: 4000, size: 96, seed: 0, distractors: false, difficulty: "materials" };

/**
 * Where `demo --world shapes` and the notebooks make and read the default world: .cache/shapes, or
 * .cache/shapes-<difficulty> for another difficulty (so a world made under another default is never reused).
 */
export function shapesDefaultDir(): string {
  const d = SHAPES_DEFAULT_WORLD.difficulty;
  return projectPath(".cache", d === "full" ? "shapes" : `shapes-${d}`);
}

/** world.json of a shapes world folder (the fields readers use). */
export interface ShapesWorldInfo { world: "shapes"; images: number; train: number; val: number; size: number; seed: number }

/**
 * The shapes world in `dir`: made there with the defaults (and the bundled photos as backgrounds) when the
 * folder has none — deterministic, about a minute — then its world.json. A folder holding something else
 * is an error that names it.
 */
export async function ensureShapesWorld(dir: string, opts: { photoDir: string; onStart?: () => void; onProgress?: (done: number, total: number) => void }): Promise<ShapesWorldInfo> {
  const infoFile = path.join(dir, "world.json");
  if (!fs.existsSync(infoFile)) {
    opts.onStart?.();
    await makeShapesWorld({ out: dir, ...SHAPES_DEFAULT_WORLD, photos: backgroundPhotos(opts.photoDir), onProgress: opts.onProgress });
  }
  let info: Partial<ShapesWorldInfo>;
  try {
    info = JSON.parse(fs.readFileSync(infoFile, "utf8"));
  } catch (e) {
    throw new MaskdistillError(`cannot be read as JSON (${(e as Error).message}); remove the folder to make the world again`, infoFile);
  }
  if (info.world !== "shapes") throw new MaskdistillError("not a shapes world (world.json has no \"world\": \"shapes\"); make one with 'npx maskdistill make-shapes'", infoFile);
  return info as ShapesWorldInfo;
}
