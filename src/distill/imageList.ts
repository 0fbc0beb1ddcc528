// The image lists gen-masks runs over, with the ids the reference gives them:
// VOC: the split file's order, id = position (enumerate), file_name = "<name>.jpg";
// COCO: the instances file's images sorted by id (torchvision CocoDetection order), COCO ids kept;
// folder: image files sorted by name, id = position, file_name = the file's name.
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError, inputError } from "../errors.js";
import { readCocoDataset, type CocoDataset } from "../data/coco.js";
import { readSplit, vocImagePath, vocRoot, vocSplitFile } from "../data/voc.js";
import type { ImageItem } from "./genMasks.js";

const IMAGE_EXT = /\.(jpe?g|png|bmp|webp|tiff?|gif)$/i;

/** VOC `<root>` (VOC<year>, VOCdevkit or its parent): ImageSets/Main/<set>.txt, else ImageSets/Segmentation/<set>.txt. */
export function vocImages(root: string, year = "2012", set = "trainval"): ImageItem[] {
  const voc = vocRoot(root, year);
  return readSplit(vocSplitFile(voc, set)).map((name, j) => ({ id: j, file: vocImagePath(voc, name), fileName: `${name}.jpg` }));
}

/**
 * COCO: images of the instances file `gtFile`, sorted by id, read from `imageDir`. A caller that has already
 * parsed the file passes it as `ds` (gtFile then only names the file in errors).
 */
export function cocoImages(gtFile: string, imageDir: string, ds: CocoDataset = readCocoDataset(gtFile)): ImageItem[] {
  for (const img of ds.images) {
    // file names are relative to the image folder: nothing outside it is read
    const name = img.file_name;
    if (name === "" || path.isAbsolute(name) || path.win32.isAbsolute(name) || name.split(/[\\/]/).includes("..")) {
      throw new MaskdistillError(`image id ${img.id}: file_name ${JSON.stringify(name)} must be a path inside the image folder (no absolute path, no '..')`, gtFile);
    }
  }
  return ds.images
    .slice()
    .sort((a, b) => a.id - b.id)
    .map((img) => ({ id: img.id, file: path.join(imageDir, img.file_name), fileName: img.file_name, width: img.width, height: img.height }));
}

/** Every image file directly in `dir`, sorted by name; ids are positions. */
export function folderImages(dir: string): ImageItem[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw inputError(dir, "cannot list the image folder", e);
  }
  const files = names.filter((n) => IMAGE_EXT.test(n)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (files.length === 0) throw new MaskdistillError("no image files (jpg, png, bmp, webp, tif, gif) in the folder", dir);
  return files.map((name, j) => ({ id: j, file: path.join(dir, name), fileName: name }));
}
