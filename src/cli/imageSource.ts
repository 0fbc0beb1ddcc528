// The image list of a per-image command, from the flags gen-masks and detect share:
// --dataset voc|coco|folder, --dataset-root, --year, --set, --gt-file, --images.
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError } from "../errors.js";
import type { ImageItem } from "../distill/genMasks.js";

export const IMAGE_SOURCE_FLAGS = {
  dataset: { type: "string" },
  "dataset-root": { type: "string" },
  year: { type: "string" },
  set: { type: "string" },
  "gt-file": { type: "string" },
  images: { type: "string" },
} as const;

export const IMAGE_SOURCE_USAGE = `  --dataset voc|coco|folder  image list: VOC split (ids = positions), COCO instances file (COCO ids), or a
                           folder (--images; ids = positions in the sorted file list)
  --dataset-root DIR       VOC: VOC<year>, VOCdevkit or its parent; COCO: folder with the images
                           (or images/) and, by default, instances.json
  --year 2012              VOC year          --set trainval    VOC split (ImageSets/Main or Segmentation)
  --gt-file FILE           COCO instances JSON (default <dataset-root>/instances.json)
  --images DIR             folder of images (implies --dataset folder)`;

type SourceValues = { dataset?: string; "dataset-root"?: string; year?: string; set?: string; "gt-file"?: string; images?: string };

/** The images the flags name, in the order the command processes them. */
export async function imagesFromFlags(values: SourceValues): Promise<ImageItem[]> {
  const dataset = values.dataset ?? (values.images ? "folder" : undefined);
  if (dataset !== "voc" && dataset !== "coco" && dataset !== "folder") {
    throw new MaskdistillError(`--dataset expects voc, coco or folder (or give --images DIR), got '${dataset ?? ""}'`);
  }
  const { vocImages, cocoImages, folderImages } = await import("../distill/imageList.js");
  if (dataset === "folder") {
    if (!values.images) throw new MaskdistillError("--dataset folder needs --images DIR");
    return folderImages(values.images);
  }
  const root = values["dataset-root"];
  if (!root) throw new MaskdistillError(`--dataset ${dataset} needs --dataset-root DIR`);
  if (dataset === "voc") return vocImages(root, values.year ?? "2012", values.set ?? "trainval");
  const gtFile = values["gt-file"] ?? path.join(root, "instances.json");
  const imageDir = values.images ?? (fs.existsSync(path.join(root, "images")) ? path.join(root, "images") : root);
  return cocoImages(gtFile, imageDir);
}
