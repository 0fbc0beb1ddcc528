// Drawing for notebook 04 (stage iv pseudo-labels): label maps in the VOC palette, an image's
// detections coloured by what the threshold / overlap rules did to them, and the rows that explain it.
import * as fs from "node:fs";
import { loadRgb, type RgbImage } from "../data/image.js";
import { resizeImage } from "../data/resize.js";
import { MaskdistillError } from "../errors.js";
import { vocColormap } from "../data/png.js";
import type { Outcome } from "../pseudolabels/paint.js";
import type { LabelledDetection } from "../pseudolabels/genSegmentation.js";
import { overlayLabels } from "./overlay.js";
import { drawBox } from "./draw.js";

const VOC = vocColormap();

/** Colours of the outcomes: painted green, overlap-dropped red, top-rows-dropped magenta, threshold-dropped grey. */
export const OUTCOME_COLORS: Record<Outcome, [number, number, number]> = {
  painted: [40, 200, 60],
  overlap: [230, 40, 40],
  "top-rows": [220, 40, 220],
  "below-threshold": [150, 150, 150],
  "not-top": [110, 110, 110],
};

/** Why a detection was kept or dropped, in words. */
export function outcomeText(o: Outcome): string {
  switch (o) {
    case "painted": return "kept, painted";
    case "overlap": return "kept by the threshold, dropped: overlaps painted pixels (intended rule)";
    case "top-rows": return "kept by the threshold, dropped: painted rows 0/1 hold a label (released rule)";
    case "below-threshold": return "dropped: score below the threshold";
    case "not-top": return "dropped: top score < threshold, only the top detection is kept";
  }
}

/** A label map drawn in the VOC palette (0 black, 255 void cream). */
export function renderLabels(map: Uint8Array, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < map.length; i++) {
    const c = VOC[map[i]];
    data[3 * i] = c[0]; data[3 * i + 1] = c[1]; data[3 * i + 2] = c[2];
  }
  return { width, height, data };
}

/**
 * The image with every detection: its mask tinted and its box outlined in the colour of its outcome
 * (painted detections on top). `pixels[k]` (row-major indices of its mask) belongs to `dets[k]`.
 */
export function detectionsOverlay(img: RgbImage, dets: LabelledDetection[], pixels: Int32Array[]): RgbImage {
  const tint = new Uint8Array(img.width * img.height);
  const codes: Outcome[] = ["not-top", "below-threshold", "top-rows", "overlap", "painted"];
  // draw dropped ones first so painted detections stay visible
  const order = dets.map((_, k) => k).sort((a, b) => codes.indexOf(dets[a].outcome) - codes.indexOf(dets[b].outcome));
  for (const k of order) {
    const code = 1 + codes.indexOf(dets[k].outcome), px = pixels[k];
    for (let i = 0; i < px.length; i++) tint[px[i]] = code;
  }
  const out = overlayLabels(img, tint, { alpha: 0.45, colors: (l) => OUTCOME_COLORS[codes[l - 1]] });
  let boxed = out;
  for (const k of order) {
    const b = dets[k].bbox;
    boxed = drawBox(boxed, [b[0], b[1], b[2], b[3]], OUTCOME_COLORS[dets[k].outcome], Math.max(1, Math.round(img.width / 250)));
  }
  return boxed;
}

/** An image at a given size: the first of `files` that exists, resized (bilinear) when its size differs. */
export async function loadImageAt(files: string[], width: number, height: number): Promise<RgbImage> {
  const file = files.find((f) => fs.existsSync(f));
  if (!file) throw new MaskdistillError(`none of ${files.join(", ")} exists`);
  const img = await loadRgb(file);
  return img.width === width && img.height === height ? img : resizeImage(img, width, height, "bilinear");
}

/**
 * One row of panels for an image, each `height` px high: its detections by outcome, each painted map
 * over the image (`maps` in the order given) and the GT map over the image.
 */
export function labelPanels(img: RgbImage, dets: LabelledDetection[], pixels: Int32Array[], maps: Uint8Array[], gt?: Uint8Array, height = 200): RgbImage[] {
  const panels = [detectionsOverlay(img, dets, pixels), ...maps.map((m) => overlayLabels(img, m, { alpha: 0.7 }))];
  if (gt) panels.push(overlayLabels(img, gt, { alpha: 0.7 }));
  const W = Math.max(1, Math.round((img.width * height) / img.height));
  return panels.map((p) => (p.height === height ? p : resizeImage(p, W, height, "bilinear")));
}

/** Table rows: one per detection, in visiting order, with the reason it was kept or dropped. */
export function outcomeRows(image: string, dets: LabelledDetection[], className: (categoryId: number) => string = String): Record<string, unknown>[] {
  return dets.map((d, rank) => ({
    image, rank: rank + 1, score: d.score, class: className(d.category_id), label: 1 + d.category_id, what: outcomeText(d.outcome),
  }));
}
