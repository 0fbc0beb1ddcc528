// A confusion matrix as a vega-lite heatmap (show it with plot.ts showChart): rows = ground truth,
// columns = prediction, each row normalised to the share of that GT class's pixels (recall per cell),
// so small classes stay visible; classes absent from both GT and prediction are left out.
import type { VegaLiteSpec } from "./plot.js";

/** `confusion[pred][gt]` (the layout of SemsegScore.confusion) → heatmap spec. */
export function confusionHeatmapSpec(confusion: number[][], names: string[], opts: { title?: string; cell?: number } = {}): VegaLiteSpec {
  const k = confusion.length;
  const gtTotal = Array.from({ length: k }, (_, g) => confusion.reduce((s, row) => s + row[g], 0));
  const predTotal = confusion.map((row) => row.reduce((s, v) => s + v, 0));
  const shown = names.map((_, i) => i).filter((i) => gtTotal[i] > 0 || predTotal[i] > 0);
  const values: { gt: string; pred: string; share: number; pixels: number }[] = [];
  for (const g of shown) for (const p of shown) {
    const pixels = confusion[p][g];
    values.push({ gt: names[g], pred: names[p], share: gtTotal[g] ? pixels / gtTotal[g] : 0, pixels });
  }
  const order = shown.map((i) => names[i]);
  const cell = opts.cell ?? 18;
  return {
    title: opts.title ?? "confusion (row = GT class, share of its pixels)",
    data: { values },
    mark: "rect",
    width: cell * shown.length,
    height: cell * shown.length,
    encoding: {
      x: { field: "pred", type: "nominal", sort: order, title: "prediction" },
      y: { field: "gt", type: "nominal", sort: order, title: "ground truth" },
      color: { field: "share", type: "quantitative", scale: { domain: [0, 1], scheme: "blues" }, title: "share" },
      tooltip: [{ field: "gt" }, { field: "pred" }, { field: "share", format: ".3f" }, { field: "pixels" }],
    },
  };
}
