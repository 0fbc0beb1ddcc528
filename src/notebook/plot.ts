// vega-lite → SVG → PNG in Node with no canvas. vega and vega-lite are ESM with top-level await, which
// tslab's require() cannot load, so they are loaded with a real dynamic import that TypeScript's
// CommonJS emit leaves alone. Every chart is shown as its vega-lite spec (JupyterLab, VS Code) and a
// PNG rasterised by sharp (GitHub, nbconvert HTML, classic Notebook); no SVG is sent, because
// nbconvert 6's HTML export prefers SVG and strips it inline, which left charts blank.
import sharp from "sharp";
import { displayBundle } from "./display.js";

const importESM = new Function("s", "return import(s)") as (s: string) => Promise<any>;

export type VegaLiteSpec = Record<string, unknown>;

const SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json";

/** Adds the v5 schema (vega-lite 6 compiles v5 specs) and a white background so images read anywhere. */
export function withDefaults(spec: VegaLiteSpec): VegaLiteSpec {
  const config = { background: "white", ...((spec.config as object) ?? {}) };
  return { $schema: SCHEMA, ...spec, config };
}

/** Renders a vega-lite spec to a static SVG string. */
export async function vegaLiteToSvg(spec: VegaLiteSpec): Promise<string> {
  const [vega, vl] = await Promise.all([importESM("vega"), importESM("vega-lite")]);
  const view = new vega.View(vega.parse(vl.compile(withDefaults(spec)).spec), { renderer: "none" });
  try {
    return (await view.toSVG()) as string;
  } finally {
    view.finalize();
  }
}

/** Rasterises an SVG string to PNG bytes; `scale` 2 gives crisp charts on high-density screens. */
export async function svgToPng(svg: string, scale = 2): Promise<Uint8Array> {
  return new Uint8Array(await sharp(Buffer.from(svg), { density: 72 * scale }).png({ compressionLevel: 9 }).toBuffer());
}

/** Renders a vega-lite spec to PNG bytes. */
export async function vegaLiteToPng(spec: VegaLiteSpec, scale = 2): Promise<Uint8Array> {
  return svgToPng(await vegaLiteToSvg(spec), scale);
}

/** The MIME bundle of a chart: the vega-lite v5 spec, its PNG rendering (shown at 1× size) and a text line. */
export async function chartBundle(spec: VegaLiteSpec, title = "chart"): Promise<{ data: Record<string, unknown>; metadata: Record<string, unknown> }> {
  const full = withDefaults(spec);
  const png = await vegaLiteToPng(full, 2);
  const meta = await sharp(Buffer.from(png)).metadata();
  return {
    data: { "application/vnd.vegalite.v5+json": full, "image/png": Buffer.from(png).toString("base64"), "text/plain": `<VegaLite ${title}>` },
    metadata: { "image/png": { width: Math.round((meta.width ?? 0) / 2), height: Math.round((meta.height ?? 0) / 2) } },
  };
}

/** Shows a chart (see chartBundle). */
export async function showChart(spec: VegaLiteSpec, title = "chart"): Promise<void> {
  const { data, metadata } = await chartBundle(spec, title);
  displayBundle(data, metadata);
}
