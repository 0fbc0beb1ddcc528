// Helpers of notebook 05 (stage-v DeepLab): the stage-ii cluster → class mapping as a label lookup table
// (pseudo-labels painted from raw cluster ids become VOC class ids), relabelled copies of label PNGs,
// a normalised training sample drawn back as an image, and the recipe table rows.
import * as fs from "node:fs";
import * as path from "node:path";
import { readCocoDataset } from "../data/coco.js";
import type { RgbImage } from "../data/image.js";
import { readLabelPng, writeLabelPng } from "../data/png.js";
import { IMAGENET_MEAN, IMAGENET_STD } from "../data/preprocess.js";
import { MaskdistillError } from "../errors.js";
import type { SegmentationSample } from "../segmentation/transforms.js";
import type { DeepLabTrainConfig } from "../segmentation/train.js";

/**
 * The label LUT that turns a map painted from `clustersFile` (label 1 + cluster id) into one painted from
 * `matchedFile` (label 1 + matched class id): both files list the same annotations (by id, else in order),
 * so each cluster id maps to one class id. 0 (background) and 255 stay; labels of no cluster stay.
 */
export function clusterLabelLut(clustersFile: string, matchedFile: string): { lut: Uint8Array; pairs: { cluster: number; classId: number }[] } {
  const a = readCocoDataset(clustersFile).annotations, b = readCocoDataset(matchedFile).annotations;
  if (a.length !== b.length) throw new MaskdistillError(`${a.length} annotations, ${matchedFile} has ${b.length}`, clustersFile);
  const byId = new Map(b.map((x) => [x.id, x]));
  const useIds = byId.size === b.length && a.every((x) => byId.has(x.id));
  const map = new Map<number, number>();
  a.forEach((x, i) => {
    const y = useIds ? byId.get(x.id)! : b[i];
    if (y.image_id !== x.image_id) throw new MaskdistillError(`annotation ${i}: image ${x.image_id} here, ${y.image_id} in ${matchedFile}`, clustersFile);
    const prev = map.get(x.category_id);
    if (prev !== undefined && prev !== y.category_id) throw new MaskdistillError(`cluster ${x.category_id} maps to classes ${prev} and ${y.category_id}`, matchedFile);
    map.set(x.category_id, y.category_id);
  });
  const lut = Uint8Array.from({ length: 256 }, (_, v) => v);
  for (const [c, k] of map) if (c + 1 < 255 && k + 1 < 255) lut[c + 1] = k + 1;
  return { lut, pairs: [...map].sort((p, q) => p[0] - q[0]).map(([cluster, classId]) => ({ cluster, classId })) };
}

/** Writes `dstDir/<stem>.png` = `srcDir/<stem>.png` through the LUT (VOC palette); returns the files. */
export function relabelPngs(srcDir: string, stems: string[], dstDir: string, lut: Uint8Array): string[] {
  fs.mkdirSync(dstDir, { recursive: true });
  return stems.map((s) => {
    const m = readLabelPng(path.join(srcDir, `${s}.png`));
    const file = path.join(dstDir, `${s}.png`);
    writeLabelPng(file, { width: m.width, height: m.height, data: m.data.map((v) => lut[v]) });
    return file;
  });
}

/** A normalised HWC training sample drawn back as 8-bit RGB (what the network sees, before normalisation). */
export function sampleImage(s: SegmentationSample): RgbImage {
  const data = new Uint8Array(s.width * s.height * 3);
  for (let i = 0; i < data.length; i++) {
    const c = i % 3;
    data[i] = Math.max(0, Math.min(255, Math.round(255 * (s.image[i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]))));
  }
  return { width: s.width, height: s.height, data };
}

/** One table row per recipe: the settings that differ between the reference, the CPU recipe and a live run. */
export function deepLabRecipeRows(recipes: Record<string, { config: DeepLabTrainConfig; images: string; steps: string }>): Record<string, unknown>[] {
  return Object.entries(recipes).map(([name, { config: c, images, steps }]) => ({
    recipe: name, init: c.init, "input": `${c.inputSize}²`, batch: c.batchSize, epochs: c.epochs,
    "lr (decay)": `${c.lr}${c.decayEpochs.length ? ` (×${c.decayRate} after epoch ${c.decayEpochs.join(", ")})` : ""}`,
    "momentum / wd": `${c.momentum} / ${c.weightDecay}`, OHEM: `top ${100 * c.ohemThreshold} %`, "training images": images, steps,
  }));
}
