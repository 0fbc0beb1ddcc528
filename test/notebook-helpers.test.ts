// Notebook helpers outside tslab: charts render to SVG/PNG, tables to HTML, overlays, drawing and the
// discovery figures give the pixel values specified, reports are self-contained HTML.
import { test } from "node:test";
import assert from "node:assert/strict";
import { vegaLiteToSvg, withDefaults } from "../src/notebook/plot.js";
import { overlayLabels, imageGrid, heatmap } from "../src/notebook/overlay.js";
import { inNotebook } from "../src/notebook/display.js";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { drawBox, cropImage, signedMap, MEAN_RGB, paddedInputView, markCell, maskPanel, padImage, withCaption, captionedGrid } from "../src/notebook/draw.js";
import { bestAndWorst, maskAreaShares, reportHtml, pngDataUri, discoveryOverview, maskAreaHistogramSpec } from "../src/notebook/report.js";
import { encodePng, decodeRgb, type RgbImage } from "../src/data/image.js";
import { rleFromMask, rleToCoco } from "../src/mask/rle.js";

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

// --- drawing (src/notebook/draw.ts) ---

const solid = (w: number, h: number, v: number): RgbImage => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(v) });
const px = (im: RgbImage, x: number, y: number) => [...im.data.subarray((y * im.width + x) * 3, (y * im.width + x) * 3 + 3)];

test("drawBox outlines inside the box, clipped, on a copy; cropImage", () => {
  const img = solid(6, 5, 0);
  const out = drawBox(img, [1, 1, 4, 3], [255, 0, 0], 1);
  assert.deepEqual(px(out, 1, 1), [255, 0, 0]);
  assert.deepEqual(px(out, 4, 3), [255, 0, 0]);   // last column / row of the box
  assert.deepEqual(px(out, 2, 2), [0, 0, 0]);     // interior
  assert.deepEqual(px(out, 5, 4), [0, 0, 0]);     // outside
  assert.deepEqual(px(img, 1, 1), [0, 0, 0]);     // input untouched
  assert.deepEqual(px(drawBox(img, [4, 3, 10, 10], [0, 255, 0], 1), 5, 4), [0, 0, 0]); // right/bottom edges clipped away
  assert.deepEqual(px(drawBox(img, [4, 3, 10, 10], [0, 255, 0], 1), 4, 4), [0, 255, 0]);

  const ramp: RgbImage = { width: 4, height: 3, data: Uint8Array.from({ length: 36 }, (_, i) => Math.floor(i / 3)) };
  const c = cropImage(ramp, [1, 1, 2, 2]);
  assert.deepEqual([c.width, c.height], [2, 2]);
  assert.deepEqual([c.data[0], c.data[3], c.data[6], c.data[9]], [5, 6, 9, 10]);
  const edge = cropImage(ramp, [3, 2, 5, 5]);   // clipped to the last pixel
  assert.deepEqual([edge.width, edge.height, edge.data[0]], [1, 1, 11]);
});

test("signedMap: blue for negative, white at 0, red for positive, sqrt of the magnitude", () => {
  const m = signedMap([-1, 0, 1, 0.25], 2, 2, 2);
  assert.deepEqual([m.width, m.height], [4, 4]);
  assert.deepEqual(px(m, 0, 0), [30, 105, 255]);
  assert.deepEqual(px(m, 1, 1), [30, 105, 255]);   // same cell, upscaled
  assert.deepEqual(px(m, 2, 0), [255, 255, 255]);
  assert.deepEqual(px(m, 0, 2), [255, 40, 30]);
  assert.deepEqual(px(m, 2, 2), [255, 148, 143]);  // |0.25| → a = 0.5
});

test("paddedInputView: the resized image top-left, mean-colour padding; markCell", () => {
  assert.deepEqual(MEAN_RGB, [124, 116, 104]);
  const v = paddedInputView(solid(4, 2, 200), 2, { rows: 1, cols: 2, patch: 3 }, 3);
  assert.deepEqual([v.width, v.height], [6, 3]);
  assert.deepEqual(px(v, 0, 0), [200, 200, 200]);
  assert.deepEqual(px(v, 3, 1), [200, 200, 200]);
  assert.deepEqual(px(v, 5, 0), [124, 116, 104]);
  assert.deepEqual(px(v, 0, 2), [124, 116, 104]);
  const marked = markCell(solid(10, 10, 0), 4, 4, 1, [0, 255, 0]);
  assert.deepEqual(px(marked, 4, 4), [0, 255, 0]);
  assert.deepEqual(px(marked, 2, 2), [0, 255, 0]);
  assert.deepEqual(px(marked, 0, 0), [0, 0, 0]);
  assert.deepEqual(px(marked, 7, 7), [0, 0, 0]);
});

test("maskPanel blends masks, outlines, then boxes at display size; padImage centres", () => {
  const mask = Uint8Array.from([1, 1, 0, 0, 1, 1, 0, 0]);   // left half of 4×2
  const p = maskPanel(solid(4, 2, 100), { height: 2, alpha: 0.5, masks: [{ mask, color: [200, 0, 0] }], boxes: [{ box: [2, 0, 2, 2], color: [0, 0, 255], thickness: 1 }] });
  assert.deepEqual(px(p, 0, 0), [150, 50, 50]);    // interior: blended
  assert.deepEqual(px(p, 1, 0), [200, 0, 0]);      // borders background: opaque
  assert.deepEqual(px(p, 3, 1), [0, 0, 255]);      // box
  const o = maskPanel(solid(4, 2, 100), { height: 2, outlines: [{ mask, color: [255, 255, 255] }] });
  assert.deepEqual(px(o, 0, 0), [100, 100, 100]);  // outline only: interior untouched
  assert.deepEqual(px(o, 1, 1), [255, 255, 255]);
  // 8×4 shown at height 2: image bilinear, mask nearest; box coordinates scale by 1/2
  const big = maskPanel(solid(8, 4, 60), { height: 2, boxes: [{ box: [4, 0, 4, 4], color: [9, 9, 9], thickness: 1 }] });
  assert.deepEqual([big.width, big.height], [4, 2]);
  assert.deepEqual(px(big, 2, 0), [9, 9, 9]);
  assert.deepEqual(px(big, 1, 0), [60, 60, 60]);
  assert.throws(() => maskPanel(solid(4, 2, 0), { height: 2, masks: [{ mask: new Uint8Array(3), color: [0, 0, 0] }] }), /mask has 3 pixels/);

  const padded = padImage(solid(2, 1, 7), 4, 3);
  assert.deepEqual([padded.width, padded.height], [4, 3]);
  assert.deepEqual(px(padded, 1, 1), [7, 7, 7]);
  assert.deepEqual(px(padded, 0, 1), [255, 255, 255]);
  assert.deepEqual(px(padded, 1, 0), [255, 255, 255]);
  assert.equal(padImage(padded, 2), padded);   // never cropped
});

test("withCaption adds a white strip with dark text below the unchanged image", async () => {
  const out = await withCaption(solid(60, 10, 0), ["Hi 0.5"], { fontSize: 12 });
  assert.equal(out.width, 60);
  assert.equal(out.height, 10 + Math.round(12 * 1.35) + 6);
  assert.deepEqual(px(out, 59, 9), [0, 0, 0]);
  assert.deepEqual(px(out, 59, 10), [255, 255, 255]);
  let dark = 0;
  for (let i = 60 * 10 * 3; i < out.data.length; i += 3) if (out.data[i] < 128) dark++;
  assert.ok(dark > 10 && dark < 60 * 16 * 0.5, `dark text pixels ${dark}`);
});

// --- discovery figures and reports (src/notebook/report.ts) ---
test("bestAndWorst ranks by mask IoU without overlap; maskAreaShares uses the top prediction", () => {
  const per = [0.3, 0.9, 0.1, 0.5, 0.0].map((maskIou, i) => ({ image_id: i + 1, boxIou: 0, maskIou }));
  const r = bestAndWorst(per, 2);
  assert.deepEqual(r.best.map((x) => x.image_id), [2, 4]);
  assert.deepEqual(r.worst.map((x) => x.image_id), [5, 3]);
  const short = bestAndWorst(per, 3);
  assert.deepEqual(short.best.map((x) => x.image_id), [2, 4, 1]);
  assert.deepEqual(short.worst.map((x) => x.image_id), [5, 3]);

  const gt = { images: [{ id: 1, width: 10, height: 10, file_name: "a.jpg" }, { id: 2, width: 4, height: 5, file_name: "b.jpg" }], annotations: [], categories: [] };
  const preds = [
    { id: 1, image_id: 1, category_id: 1, area: 20, bbox: [0, 0, 1, 1] as [number, number, number, number], iscrowd: 0, score: 0.2 },
    { id: 2, image_id: 1, category_id: 1, area: 50, bbox: [0, 0, 1, 1] as [number, number, number, number], iscrowd: 0, score: 0.9 },
  ];
  assert.deepEqual(maskAreaShares(gt, preds, [1, 2]), [{ image: "a.jpg", share: 0.5 }, { image: "b.jpg", share: 0 }]);
  const spec = maskAreaHistogramSpec([{ share: 0.5 }], "t") as { layer: { data: { values: unknown[] } }[] };
  assert.equal(spec.layer[1].data.values.length, 1);
});

test("reportHtml is one self-contained page: tables, data-URI images, escaped text", () => {
  const png = Uint8Array.from([137, 80, 78, 71]);
  assert.equal(pngDataUri(png), "data:image/png;base64,iVBORw==");
  const html = reportHtml("demo <1>", [{ heading: "scores", text: "a & b", tables: [{ rows: [{ method: "m", CorLoc: 33.333 }] }], images: [{ png, alt: "x" }] }], "npx maskdistill demo");
  assert.match(html, /^<!DOCTYPE html>/);
  assert.ok(html.includes("<title>demo &lt;1&gt;</title>"));
  assert.ok(html.includes("<p>a &amp; b</p>"));
  assert.ok(html.includes(">33.3</td>"));
  assert.ok(html.includes('src="data:image/png;base64,iVBORw=="'));
  assert.doesNotMatch(html, /<script|<link|src="http/);
});

test("discoveryOverview: mask, its box and the GT boxes on each image, cells of one size with captions", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "md-overview-"));
  fs.writeFileSync(path.join(dir, "wide.png"), await encodePng(solid(40, 20, 0)));
  fs.writeFileSync(path.join(dir, "tall.png"), await encodePng(solid(10, 20, 0)));
  const mask = new Uint8Array(40 * 20);
  for (let y = 4; y < 12; y++) for (let x = 4; x < 16; x++) mask[y * 40 + x] = 1;
  const gt = {
    images: [{ id: 1, width: 40, height: 20, file_name: "wide.png" }, { id: 2, width: 10, height: 20, file_name: "tall.png" }],
    annotations: [{ id: 1, image_id: 1, category_id: 1, area: 100, bbox: [20, 2, 10, 10] as [number, number, number, number], iscrowd: 0 }],
    categories: [],
  };
  const preds = [{ image_id: 1, category_id: 1, score: 1, bbox: [4, 4, 12, 8] as [number, number, number, number], segmentation: rleToCoco(rleFromMask(mask, 20, 40)) }];
  const g = await discoveryOverview(gt, preds, [{ image_id: 1, caption: ["one"] }, { image_id: 2, caption: ["two", "lines"] }], dir, { cols: 2, cellHeight: 20 });
  const capH = 2 * Math.round(12 * 1.35) + 6;
  assert.deepEqual([g.width, g.height], [40 + 6 + 40, 20 + capH]);
  assert.deepEqual(px(g, 20, 2), [255, 255, 255]);   // GT box corner (white, 1 px)
  assert.deepEqual(px(g, 25, 7), [0, 0, 0]);         // inside the GT box
  assert.deepEqual(px(g, 4, 4), [255, 230, 0]);      // predicted box (yellow) over the mask
  assert.deepEqual(px(g, 8, 8), [0, 55, 128]);       // mask interior: blue at alpha 0.5 on black
  assert.deepEqual(px(g, 46, 10), [255, 255, 255]);  // the tall image is padded white to the cell width
  assert.deepEqual(px(g, 46 + 20, 10), [0, 0, 0]);   // …and centred
  await assert.rejects(discoveryOverview(gt, preds, [{ image_id: 9, caption: [] }], dir), /image 9 is not in the ground truth/);
  const decoded = await decodeRgb(await encodePng(g), "g");
  assert.equal(decoded.width, g.width);
  // captionedGrid: the 3-wide panel is padded to 5 and the 1-line caption to 2 lines; 2 columns, gap 1
  const cg = await captionedGrid([solid(5, 4, 0), solid(3, 2, 0)], [["a", "b"], ["c"]], { cols: 2, gap: 1 });
  assert.deepEqual([cg.width, cg.height], [5 + 1 + 5, 4 + capH]);
  assert.deepEqual(px(cg, 6, 0), [255, 255, 255]);   // padding left of the small panel
  assert.deepEqual(px(cg, 7, 1), [0, 0, 0]);         // the small panel, centred
  await assert.rejects(captionedGrid([solid(2, 2, 0)], []), /1 panels but 0 captions/);
});
