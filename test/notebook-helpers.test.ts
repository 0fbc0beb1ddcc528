// Notebook helpers outside tslab: charts render to SVG, tables to HTML, overlays blend as specified.
import { test } from "node:test";
import assert from "node:assert/strict";
import { vegaLiteToSvg, withDefaults } from "../src/notebook/plot.js";
import { overlayLabels, imageGrid, heatmap } from "../src/notebook/overlay.js";
import { inNotebook } from "../src/notebook/display.js";

test("vega-lite renders to a static SVG with a white background", async () => {
  const svg = await vegaLiteToSvg({ data: { values: [{ a: "x", b: 3 }, { a: "y", b: 5 }] }, mark: "bar", encoding: { x: { field: "a", type: "nominal" }, y: { field: "b", type: "quantitative" } } });
  assert.match(svg, /^<svg /);
  assert.match(svg, /fill="white"/);
  assert.equal((svg.match(/role-mark/g) ?? []).length > 0, true);
  assert.equal((withDefaults({}) as { $schema: string }).$schema, "https://vega.github.io/schema/vega-lite/v5.json");
  assert.equal(inNotebook(), false);
});

test("overlayLabels: background untouched, interior blended, borders opaque", () => {
  const img = { width: 4, height: 3, data: new Uint8Array(36).fill(100) };
  const labels = Uint8Array.from([0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1]);
  const out = overlayLabels(img, labels, { alpha: 0.5, colors: () => [200, 0, 0] });
  assert.deepEqual([...out.data.subarray(0, 3)], [100, 100, 100]);
  // pixel (2,2) (index 10) has label 1 with all 4-neighbours inside or out of bounds except (1,2)? -> it is interior: left (1,2)=1, right (3,2)=1, up (2,1)=1
  assert.deepEqual([...out.data.subarray(30, 33)], [150, 50, 50]);
  // pixel (1,1) (index 5) borders label 0 on its left → opaque colour
  assert.deepEqual([...out.data.subarray(15, 18)], [200, 0, 0]);
});

test("imageGrid lays cells out with gaps; heatmap spans the value range", () => {
  const a = { width: 2, height: 2, data: new Uint8Array(12).fill(10) };
  const g = imageGrid([a, a, a], { cols: 2, cellHeight: 2, gap: 1 });
  assert.equal(g.width, 5);
  assert.equal(g.height, 5);
  assert.equal(g.data[(2 * 5 + 2) * 3], 255); // gap pixel
  const h = heatmap([0, 1], 2, 1, 2);
  assert.equal(h.width, 4);
  assert.deepEqual([...h.data.subarray(0, 3)], [0, 0, 0]);
  assert.equal(h.data[3 * 3], 255);
});

test("charts carry a non-blank PNG next to the vega-lite spec; the notebook chart check finds missing and blank ones", async () => {
  const { chartBundle } = await import("../src/notebook/plot.js");
  const { checkNotebookCharts, pngForegroundShare } = await import("../src/notebook/check.js");
  const { encodePng } = await import("../src/data/image.js");
  const { data, metadata } = await chartBundle({ data: { values: [{ a: 1, b: 2 }, { a: 2, b: 5 }, { a: 3, b: 1 }] }, mark: "line", encoding: { x: { field: "a", type: "quantitative" }, y: { field: "b", type: "quantitative" } } });
  assert.deepEqual(Object.keys(data).sort(), ["application/vnd.vegalite.v5+json", "image/png", "text/plain"]);
  const share = pngForegroundShare(data["image/png"] as string);
  assert.ok(share > 0.02 && share < 0.5, `foreground share ${share}`);
  assert.ok((metadata["image/png"] as { width: number }).width > 100);
  const white = Buffer.from(await encodePng({ width: 20, height: 10, data: new Uint8Array(600).fill(255) })).toString("base64");
  const chart = (extra: Record<string, unknown>) => ({ output_type: "display_data", data: { "application/vnd.vegalite.v5+json": {}, ...extra } });
  const nb = { cells: [
    { cell_type: "code", outputs: [{ output_type: "display_data", data }] },
    { cell_type: "code", outputs: [chart({ "image/svg+xml": "<svg/>" })] },
    { cell_type: "code", outputs: [chart({ "image/png": white })] },
    { cell_type: "code", outputs: [{ output_type: "display_data", data: { "image/png": white } }] },   // a picture, not a chart
  ] };
  const { charts, problems } = checkNotebookCharts(nb);
  assert.equal(charts, 3);
  assert.equal(problems.length, 2);
  assert.match(problems[0], /cell 1: chart output has no image\/png/);
  assert.match(problems[1], /cell 2: image\/png is blank \(0\.00 %/);
});
