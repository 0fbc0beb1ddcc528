// Figures and pages of object-discovery results, shared by the notebooks and `maskdistill demo`:
// the vega-lite specs of the mask-area and per-image IoU histograms, the best/worst-case overview grid,
// and a self-contained HTML report (tables inline, images as base64 PNG data URIs, no scripts or links).
import * as path from "node:path";
import type { CocoAnnotation, CocoDataset, CocoResult } from "../data/coco.js";
import { loadRgb, type RgbImage } from "../data/image.js";
import { maskFromRle, rleFromCoco } from "../mask/rle.js";
import { captionedGrid, maskPanel, type Box, type Rgb } from "./draw.js";
import type { VegaLiteSpec } from "./plot.js";
import { tableHtml, type Row } from "./table.js";

/** Colours of discovery figures: predicted mask, its box, the GT boxes. */
export const DISCOVERY_COLORS: { mask: Rgb; box: Rgb; gt: Rgb } = { mask: [0, 110, 255], box: [255, 230, 0], gt: [255, 255, 255] };

type Prediction = CocoAnnotation | CocoResult;

/** The highest-scoring prediction of each image (score 1 when absent; the first wins ties). */
export function topPredictions(predictions: Prediction[]): Map<number, Prediction> {
  const best = new Map<number, Prediction>();
  for (const p of predictions) {
    const cur = best.get(p.image_id);
    if (!cur || ((p as CocoResult).score ?? 1) > ((cur as CocoResult).score ?? 1)) best.set(p.image_id, p);
  }
  return best;
}

/** Per image of `imageIds`: the top prediction's area as a share of the image area (0 without one). */
export function maskAreaShares(gt: CocoDataset, predictions: Prediction[], imageIds: number[]): { image: string; share: number }[] {
  const top = topPredictions(predictions);
  const byId = new Map(gt.images.map((im) => [im.id, im]));
  return imageIds.filter((id) => byId.has(id)).map((id) => {
    const im = byId.get(id)!, p = top.get(id);
    const area = p ? (p as CocoAnnotation).area ?? (p.segmentation ? maskArea(p, im.height, im.width) : 0) : 0;
    return { image: im.file_name, share: area / (im.width * im.height) };
  });
}

function maskArea(p: Prediction, h: number, w: number): number {
  const m = maskFromRle(rleFromCoco(p.segmentation!, h, w));
  let n = 0;
  for (let i = 0; i < m.length; i++) n += m[i];
  return n;
}

/** Histogram of mask area / image area in 5 % bins, with a dashed rule at the centred-box baseline's share. */
export function maskAreaHistogramSpec(shares: { share: number }[], title: string, baselineShare = 0.5): VegaLiteSpec {
  return {
    title, width: 480, height: 200,
    layer: [
      {
        data: { values: shares },
        mark: { type: "bar", tooltip: true },
        encoding: {
          x: { field: "share", type: "quantitative", bin: { extent: [0, 1], step: 0.05 }, title: "mask area / image area", axis: { format: "%" } },
          y: { aggregate: "count", type: "quantitative", title: "images" },
        },
      },
      {
        data: { values: [{ share: baselineShare, label: "centred-box baseline" }] },
        mark: { type: "rule", color: "#d62728", strokeDash: [4, 3], strokeWidth: 2 },
        encoding: { x: { field: "share", type: "quantitative" }, tooltip: [{ field: "label" }] },
      },
    ],
  };
}

/** Histogram of the per-image best-GT mask IoU in 0.05 bins, with a rule at IoU 0.5. */
export function iouHistogramSpec(perImage: { maskIou: number }[], title: string): VegaLiteSpec {
  return {
    title, width: 480, height: 200,
    layer: [
      {
        data: { values: perImage.map((r) => ({ iou: r.maskIou })) },
        mark: { type: "bar", tooltip: true, color: "#2ca02c" },
        encoding: {
          x: { field: "iou", type: "quantitative", bin: { extent: [0, 1], step: 0.05 }, title: "mask IoU with the best-matching GT object" },
          y: { aggregate: "count", type: "quantitative", title: "images" },
        },
      },
      { data: { values: [{ iou: 0.5 }] }, mark: { type: "rule", color: "#555", strokeDash: [4, 3] }, encoding: { x: { field: "iou", type: "quantitative" } } },
    ],
  };
}

/** One image of a discovery result, with its scores (as `scoreDiscovery`'s perImage). */
export interface ScoredImage { image_id: number; boxIou: number; maskIou: number }

/**
 * The `n` images with the highest and the `n` with the lowest mask IoU (ties by image id); an image
 * is in at most one of the two lists, so fewer than 2n images give shorter lists.
 */
export function bestAndWorst<T extends ScoredImage>(perImage: T[], n: number): { best: T[]; worst: T[] } {
  const sorted = [...perImage].sort((a, b) => b.maskIou - a.maskIou || a.image_id - b.image_id);
  const best = sorted.slice(0, Math.min(n, sorted.length));
  const worst = sorted.slice(best.length).reverse().slice(0, n);
  return { best, worst };
}

/**
 * One discovery result at display height: the predicted mask (blue) and its box (yellow) over the
 * image, with the boxes of the non-crowd GT objects (white, 1 px).
 */
export function discoveryPanel(
  img: RgbImage, gtObjects: { bbox: readonly number[]; iscrowd?: number }[],
  prediction: { mask?: Uint8Array; bbox?: readonly number[] }, height: number,
): RgbImage {
  const box = (b: readonly number[]): Box => [b[0], b[1], b[2], b[3]];
  return maskPanel(img, {
    height,
    masks: prediction.mask ? [{ mask: prediction.mask, color: DISCOVERY_COLORS.mask }] : [],
    boxes: [
      ...gtObjects.filter((a) => !a.iscrowd).map((a) => ({ box: box(a.bbox), color: DISCOVERY_COLORS.gt, thickness: 1 })),
      ...(prediction.bbox ? [{ box: box(prediction.bbox), color: DISCOVERY_COLORS.box, thickness: 2 }] : []),
    ],
  });
}

/** A panel to draw: an image, its caption lines. */
export interface OverviewCase { image_id: number; caption: string[] }

/**
 * A grid of discovery results: each image at `cellHeight` with its top predicted mask (blue), the
 * mask's box (yellow) and the non-crowd GT boxes (white), and its caption below.
 */
export async function discoveryOverview(
  gt: CocoDataset, predictions: Prediction[], cases: OverviewCase[], imageDir: string,
  opts: { cols?: number; cellHeight?: number } = {},
): Promise<RgbImage> {
  const H = opts.cellHeight ?? 160, top = topPredictions(predictions), byId = new Map(gt.images.map((im) => [im.id, im]));
  const views: RgbImage[] = [];
  for (const c of cases) {
    const im = byId.get(c.image_id);
    if (!im) throw new Error(`discoveryOverview: image ${c.image_id} is not in the ground truth`);
    const img = await loadRgb(path.join(imageDir, im.file_name));
    const p = top.get(c.image_id);
    const panel = discoveryPanel(img, gt.annotations.filter((a) => a.image_id === c.image_id), {
      mask: p?.segmentation ? maskFromRle(rleFromCoco(p.segmentation, im.height, im.width)) : undefined,
      bbox: p?.bbox,
    }, H);
    views.push(panel);
  }
  return captionedGrid(views, cases.map((c) => c.caption), { cols: opts.cols ?? 4 });
}

/** A data URI of PNG bytes, for self-contained HTML. */
export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png).toString("base64")}`;
}

const escapeHtml = (s: string) => s.replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]!);

/** One section of a report: a heading, a paragraph of text, then tables and PNG images in order. */
export interface ReportSection {
  heading: string;
  text?: string;
  tables?: { rows: Row[]; digits?: number }[];
  images?: { png: Uint8Array; alt: string; width?: number }[];
}

/** A single self-contained HTML page: inline CSS, tables, images as data URIs; no scripts, no links. */
export function reportHtml(title: string, sections: ReportSection[], footer = ""): string {
  const body = sections.map((s) => [
    `<h2>${escapeHtml(s.heading)}</h2>`,
    s.text ? `<p>${escapeHtml(s.text)}</p>` : "",
    ...(s.tables ?? []).map((t) => tableHtml(t.rows, { digits: t.digits ?? 1 })),
    ...(s.images ?? []).map((im) => `<p><img alt="${escapeHtml(im.alt)}" src="${pngDataUri(im.png)}"${im.width ? ` width="${im.width}"` : ""}></p>`),
  ].join("\n")).join("\n");
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; } th, td { border: 1px solid #ccc; padding: 3px 8px; }
th { background: #f3f3f3; } img { max-width: 100%; } footer { color: #666; font-size: 90%; margin-top: 2em; }
</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
${body}
${footer ? `<footer>${escapeHtml(footer)}</footer>` : ""}
</body></html>
`;
}
