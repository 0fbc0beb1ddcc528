// Stage-v data: images paired with label PNGs by file stem (an image folder + a label folder, e.g. the
// stage-iv pseudo-labels, optionally restricted to a split list), or a PASCAL VOC root with a split
// (ImageSets/Segmentation, else the reference's bundled lists; SegmentationClassAug on request). The
// linear probe (linearProbe.ts) lists and loads its data through here too.
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError, inputError } from "../errors.js";
import { loadRgb } from "../data/image.js";
import { readLabelPng } from "../data/png.js";
import { readSplit, vocRoot, vocSplitFile } from "../data/voc.js";
import { projectPath } from "../paths.js";
import type { SegmentationPair } from "./transforms.js";

export interface SegmentationItem {
  /** File stem (the image id). */
  name: string;
  image: string;
  /** Label PNG (class ids, 255 ignored); absent for prediction-only sets. */
  label?: string;
}

const IMAGE_EXTS = [".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG"];

/** The images of a folder by stem (jpg/jpeg/png), sorted. */
export function imagesByStem(dir: string): Map<string, string> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new MaskdistillError("image folder not found", dir);
  const out = new Map<string, string>();
  for (const f of fs.readdirSync(dir).sort()) {
    const ext = path.extname(f);
    if (IMAGE_EXTS.includes(ext) && !out.has(path.basename(f, ext))) out.set(path.basename(f, ext), path.join(dir, f));
  }
  if (out.size === 0) throw new MaskdistillError("no .jpg/.png images in the folder", dir);
  return out;
}

export interface SetSpec {
  /** Image folder (or taken from a VOC root). */
  images?: string;
  /** Label folder of `<stem>.png`; required for training and validation. */
  labels?: string;
  /** Split list (one stem per line); default: every image that has a label. */
  list?: string;
  /** PASCAL VOC root (JPEGImages/, SegmentationClass/, ImageSets/): images, default labels and the split. */
  vocRoot?: string;
  split?: string;
  /** VOC year (default 2012). */
  year?: string;
  /** VOC: labels from SegmentationClassAug/ (SBD's, what trainaug needs) when that folder exists. */
  augLabels?: boolean;
}

/**
 * A VOC segmentation split list: ImageSets/Segmentation/<set>.txt, else the reference's bundled list
 * data/splits/voc/<set>_seg.txt (trainaug, val), else ImageSets/Main/<set>.txt — not Main's detection
 * lists of the same name first (val = 1,449 segmentation images).
 */
export function vocSegmentationList(root: string, set: string): string {
  const own = path.join(root, "ImageSets", "Segmentation", `${set}.txt`);
  if (fs.existsSync(own)) return own;
  const bundled = projectPath("data", "splits", "voc", `${set}_seg.txt`);
  if (fs.existsSync(bundled)) return bundled;
  return vocSplitFile(root, set);
}

/**
 * The items of a set. With a list, every listed stem needs an image (and a label when a label folder
 * is given); without one, the images that have a label (or all images when there is no label folder).
 */
export function segmentationItems(spec: SetSpec, what = "training set"): SegmentationItem[] {
  let imagesDir = spec.images, labelsDir = spec.labels, list = spec.list;
  if (spec.vocRoot) {
    const root = vocRoot(spec.vocRoot, spec.year);
    imagesDir ??= path.join(root, "JPEGImages");
    const aug = path.join(root, "SegmentationClassAug");
    labelsDir ??= spec.augLabels && fs.existsSync(aug) ? aug : path.join(root, "SegmentationClass");
    if (!list && spec.split) list = vocSegmentationList(root, spec.split);
  }
  if (!imagesDir) throw new MaskdistillError(`${what}: give an image folder (--images) or a VOC root (--voc)`);
  const images = imagesByStem(imagesDir);
  const labelOf = (stem: string) => (labelsDir ? path.join(labelsDir, `${stem}.png`) : undefined);
  if (labelsDir && !fs.existsSync(labelsDir)) throw new MaskdistillError(`${what}: label folder not found`, labelsDir);
  let stems: string[];
  if (list) {
    stems = readSplit(list);
    if (stems.length === 0) throw new MaskdistillError(`${what}: the split list is empty`, list);
    const noImage = stems.filter((s) => !images.has(s));
    if (noImage.length) throw new MaskdistillError(`${what}: ${noImage.length} listed id(s) have no image in ${imagesDir} (e.g. ${noImage.slice(0, 3).join(", ")})`, list);
    if (labelsDir) {
      const noLabel = stems.filter((s) => !fs.existsSync(labelOf(s)!));
      if (noLabel.length) throw new MaskdistillError(`${what}: ${noLabel.length} listed id(s) have no label PNG in ${labelsDir} (e.g. ${noLabel.slice(0, 3).map((s) => s + ".png").join(", ")})`, list);
    }
  } else {
    stems = [...images.keys()].filter((s) => !labelsDir || fs.existsSync(labelOf(s)!));
    if (stems.length === 0) throw new MaskdistillError(`${what}: no image in ${imagesDir} has a label PNG in ${labelsDir}`, labelsDir);
  }
  return stems.map((name) => ({ name, image: images.get(name)!, label: labelOf(name) }));
}

/** Decodes an item (image + label); label values ≥ numClasses other than 255 are an error naming the file. */
export async function loadPair(item: SegmentationItem, numClasses: number): Promise<SegmentationPair> {
  if (!item.label) throw new MaskdistillError("no label for this image", item.image);
  const image = await loadRgb(item.image);
  const label = readLabelPng(item.label, { allowedValues: (v) => v < numClasses || v === 255 });
  return { image, label };
}

/** Reads the items' pairs once (training keeps them in memory: the demo set is ~140 MB decoded). */
export async function loadPairs(items: SegmentationItem[], numClasses: number): Promise<SegmentationPair[]> {
  const out: SegmentationPair[] = [];
  for (const it of items) {
    try {
      out.push(await loadPair(it, numClasses));
    } catch (e) {
      throw e instanceof MaskdistillError ? e : inputError(it.image, "cannot be read", e);
    }
  }
  return out;
}
