// The picture and the page of `maskdistill demo`: overview.png (the best and the worst stage-i masks by
// mask IoU, with GT boxes and captions) and report.html (the results table, the histograms of mask
// area and per-image IoU, the clustering scores and cluster sizes, the overview; one self-contained file).
import * as fs from "node:fs";
import * as path from "node:path";
import type { CocoAnnotation, CocoDataset } from "../data/coco.js";
import { encodePng } from "../data/image.js";
import type { ClusterRun } from "../cluster/run.js";
import type { DiscoveryScore } from "../evaluation/discovery.js";
import { vegaLiteToPng } from "./plot.js";
import { withCaption } from "./draw.js";
import { bestAndWorst, discoveryOverview, iouHistogramSpec, maskAreaHistogramSpec, maskAreaShares, reportHtml, type ReportSection } from "./report.js";

/** The numbers of a demo run, as `summary.json` holds them. */
export interface DemoSummary {
  split: string;
  images: number;
  backbone: string;
  clusterBackbone: string;
  randomWeights: boolean;
  resize: number;
  masks: number;
  empty: number;
  errors: number;
  secondsPerImage: number;
  results: { method: string; corloc: number; meanBestIou: number; ap50Single: number; ap50Multi: number }[];
  clustering: { clusters: number; evaluated: number; acc: number; nmi: number; ari: number } | null;
  command: string;
}

export interface DemoReportInput {
  outDir: string;
  summary: DemoSummary;
  gt: CocoDataset;
  predictions: CocoAnnotation[];
  imageIds: number[];
  imageDir: string;
  /** scoreDiscovery of the predictions on `imageIds` */
  discovery: DiscoveryScore;
  clusters?: Pick<ClusterRun, "masks" | "classNames" | "scores"> | null;
  /** best and worst cases shown (each; default 4) */
  cases?: number;
}

/** One case of the overview, in display order. */
export interface DemoCase { rank: string; file: string; maskIou: number; boxIou: number }

/** Writes overview.png and report.html into `outDir`; returns their paths and the cases shown. */
export async function writeDemoReport(input: DemoReportInput): Promise<{ overview: string; report: string; cases: DemoCase[] }> {
  const { summary: s, gt, discovery } = input;
  const fileOf = new Map(gt.images.map((im) => [im.id, im.file_name]));
  const { best, worst } = bestAndWorst(discovery.perImage, input.cases ?? 4);
  const cases: (DemoCase & { id: number })[] = [
    ...best.map((r, i) => ({ rank: `best ${i + 1}`, file: fileOf.get(r.image_id)!, maskIou: r.maskIou, boxIou: r.boxIou, id: r.image_id })),
    ...worst.map((r, i) => ({ rank: `worst ${i + 1}`, file: fileOf.get(r.image_id)!, maskIou: r.maskIou, boxIou: r.boxIou, id: r.image_id })),
  ];
  const grid = await discoveryOverview(gt, input.predictions, cases.map((c) => ({
    image_id: c.id,
    caption: [`${c.rank} · ${path.parse(c.file).name}`, `mask IoU ${c.maskIou.toFixed(2)} · box IoU ${c.boxIou.toFixed(2)}${c.boxIou >= 0.5 ? " (hit)" : ""}`],
  })), input.imageDir, { cols: Math.max(1, best.length), cellHeight: 160 }).then((g) =>
    withCaption(g, [`Stage i masks (blue), their boxes (yellow), GT boxes (white). Top: the ${best.length} best by mask IoU; bottom: the ${worst.length} worst.`]));
  const overviewPng = new Uint8Array(await encodePng(grid));
  const overview = path.join(input.outDir, "overview.png");
  fs.writeFileSync(overview, overviewPng);

  const sections: ReportSection[] = [{
    heading: "Object discovery (stage i)",
    text: `${s.images} demo images (${s.split}), ${s.masks} masks, ${s.empty} empty, ${s.errors} unreadable; backbone ${s.backbone} at a short side of ${s.resize} px` +
      `${s.randomWeights ? " — RANDOM WEIGHTS: the scores show the pipeline runs, not that it works" : ""}. ` +
      "CorLoc: % of images whose mask box has IoU ≥ 0.5 with a GT box; mIoU: mean best-GT mask IoU (%); AP50: class-agnostic mask AP at IoU 0.5 (single and multi protocols).",
    tables: [{ rows: s.results.map((r) => ({ method: r.method, CorLoc: r.corloc, "mIoU (best GT)": r.meanBestIou, "AP50 single": r.ap50Single, "AP50 multi": r.ap50Multi })) }],
  }, {
    heading: `The ${best.length} best and ${worst.length} worst masks by mask IoU`,
    text: "Mask in blue, its box in yellow, the ground-truth boxes in white.",
    images: [{ png: overviewPng, alt: "best and worst cases", width: Math.round(grid.width) }],
  }, {
    heading: "Mask area and per-image IoU",
    images: [
      { png: await vegaLiteToPng(maskAreaHistogramSpec(maskAreaShares(gt, input.predictions, input.imageIds), `Mask area / image area (${input.imageIds.length} images)`)), alt: "mask area histogram", width: 560 },
      { png: await vegaLiteToPng(iouHistogramSpec(discovery.perImage, `Best-GT mask IoU per image (${discovery.perImage.length} images with a GT object)`)), alt: "IoU histogram", width: 560 },
    ],
  }];
  if (s.clustering) {
    const c = s.clustering;
    const section: ReportSection = {
      heading: "Clustering (stage ii)",
      text: `${c.clusters} clusters from the CLS embeddings of ${s.clusterBackbone}; scored on the ${c.evaluated} masks with a VOC-class GT box (%).`,
      tables: [{ rows: [{ clusters: c.clusters, masks: c.evaluated, ACC: c.acc, NMI: c.nmi, ARI: c.ari }] }],
    };
    const run = input.clusters;
    if (run) {
      const sizes = new Map<number, number>();
      for (const m of run.masks) sizes.set(m.cluster, (sizes.get(m.cluster) ?? 0) + 1);
      const name = (k: number) => {
        const cls = run.scores?.clusterToClass[k] ?? -1;
        return `${String(k).padStart(2, "0")} → ${cls >= 0 ? run.classNames[cls] : "—"}`;
      };
      const rows = Array.from({ length: c.clusters }, (_, k) => ({ cluster: name(k), masks: sizes.get(k) ?? 0 }));
      section.images = [{
        png: await vegaLiteToPng({
          title: "Masks per cluster (cluster → matched class)", width: 480, height: { step: 14 },
          data: { values: rows }, mark: { type: "bar", tooltip: true },
          encoding: { y: { field: "cluster", type: "nominal", sort: null, title: null }, x: { field: "masks", type: "quantitative" } },
        }),
        alt: "cluster sizes", width: 560,
      }];
    }
    sections.push(section);
  }
  const report = path.join(input.outDir, "report.html");
  fs.writeFileSync(report, reportHtml("maskdistill demo", sections, s.command));
  return { overview, report, cases: cases.map(({ rank, file, maskIou, boxIou }) => ({ rank, file, maskIou, boxIou })) };
}
