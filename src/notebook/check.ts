// Checks on executed notebooks: every chart output must carry a PNG that is not blank, so the chart
// shows in viewers that render neither vega-lite nor inline SVG (GitHub, nbconvert HTML, classic Notebook).
import * as fs from "node:fs";
import { decode } from "fast-png";

interface NotebookOutput { output_type?: string; data?: Record<string, unknown> }
interface NotebookCell { cell_type?: string; outputs?: NotebookOutput[] }

const CHART_MIME = /^application\/vnd\.vegalite\.v\d+\+json$/;

/** Share of the pixels of a PNG (base64) whose colour differs from its top-left pixel, the background. */
export function pngForegroundShare(base64: string): number {
  const png = decode(Buffer.from(base64, "base64"));
  const { width, height, channels } = png;
  const data = png.data as ArrayLike<number>;
  let differ = 0;
  for (let p = 0; p < width * height; p++) {
    for (let c = 0; c < channels; c++) {
      if (data[p * channels + c] !== data[c]) { differ++; break; }
    }
  }
  return width * height ? differ / (width * height) : 0;
}

export interface ChartCheck { charts: number; problems: string[] }

/**
 * The chart outputs of an executed notebook (parsed .ipynb JSON) and what is wrong with them: a chart
 * without `image/png`, an undecodable PNG, or one where fewer than `minShare` of the pixels differ from
 * the background.
 */
export function checkNotebookCharts(nb: { cells?: NotebookCell[] }, minShare = 0.005): ChartCheck {
  const problems: string[] = [];
  let charts = 0;
  (nb.cells ?? []).forEach((cell, i) => {
    for (const out of cell.outputs ?? []) {
      const mimes = Object.keys(out.data ?? {});
      if (!mimes.some((m) => CHART_MIME.test(m) || m === "image/svg+xml")) continue;
      charts++;
      const png = out.data!["image/png"];
      if (typeof png !== "string") { problems.push(`cell ${i}: chart output has no image/png (${mimes.join(", ")})`); continue; }
      let share: number;
      try {
        share = pngForegroundShare(png);
      } catch (e) {
        problems.push(`cell ${i}: image/png cannot be decoded (${(e as Error).message})`);
        continue;
      }
      if (share < minShare) problems.push(`cell ${i}: image/png is blank (${(share * 100).toFixed(2)} % of pixels differ from the background)`);
    }
  });
  return { charts, problems };
}

/** checkNotebookCharts on a .ipynb file. */
export function checkNotebookChartsFile(file: string, minShare?: number): ChartCheck {
  return checkNotebookCharts(JSON.parse(fs.readFileSync(file, "utf8")), minShare);
}
