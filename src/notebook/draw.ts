// Drawing on RGB typed arrays for notebooks, the demo overview and reports: boxes, crops, signed maps,
// the ViT's padded input, and mask panels (an image at display height with masks, outlines and boxes).
// Every function returns a new image; inputs are never modified.
import { decodeRgb, type RgbImage } from "../data/image.js";
import { IMAGENET_MEAN } from "../data/preprocess.js";
import { resizeImage, resizeU8, shortSideSize } from "../data/resize.js";
import { imageGrid, overlayLabels } from "./overlay.js";
import { svgToPng } from "./plot.js";

export type Rgb = readonly [number, number, number];
/** A box as COCO writes it: [x, y, width, height] in pixels. */
export type Box = readonly [number, number, number, number];

/** A copy of `img` with the outline of `box` drawn `thickness` px thick, inside the box, clipped to the image. */
export function drawBox(img: RgbImage, box: Box, color: Rgb, thickness = 2): RgbImage {
  const out = { width: img.width, height: img.height, data: new Uint8Array(img.data) };
  const x0 = Math.round(box[0]), y0 = Math.round(box[1]), x1 = Math.round(box[0] + box[2]) - 1, y1 = Math.round(box[1] + box[3]) - 1;
  for (let y = Math.max(0, y0); y <= Math.min(img.height - 1, y1); y++) {
    for (let x = Math.max(0, x0); x <= Math.min(img.width - 1, x1); x++) {
      if (x - x0 < thickness || x1 - x < thickness || y - y0 < thickness || y1 - y < thickness) out.data.set(color, (y * img.width + x) * 3);
    }
  }
  return out;
}

/** The part of `img` inside `box` (rounded to whole pixels, clipped to the image; at least 1×1). */
export function cropImage(img: RgbImage, box: Box): RgbImage {
  const x0 = Math.min(img.width - 1, Math.max(0, Math.round(box[0]))), y0 = Math.min(img.height - 1, Math.max(0, Math.round(box[1])));
  const x1 = Math.min(img.width, Math.round(box[0] + box[2])), y1 = Math.min(img.height, Math.round(box[1] + box[3]));
  const w = Math.max(1, x1 - x0), h = Math.max(1, y1 - y0);
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) data.set(img.data.subarray(((y0 + y) * img.width + x0) * 3, ((y0 + y) * img.width + x0 + w) * 3), y * w * 3);
  return { width: w, height: h, data };
}

/**
 * Diverging colours for signed values on a cols×rows grid: blue (negative) → white (0) → red (positive),
 * scaled by the largest magnitude, each cell `scale` px. The square root keeps small magnitudes visible.
 */
export function signedMap(values: ArrayLike<number>, cols: number, rows: number, scale = 1): RgbImage {
  let m = 0;
  for (let i = 0; i < values.length; i++) m = Math.max(m, Math.abs(values[i]));
  const W = cols * scale, H = rows * scale, out = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const v = m > 0 ? values[Math.floor(y / scale) * cols + Math.floor(x / scale)] / m : 0;
      const a = Math.min(1, Math.sqrt(Math.abs(v)));
      const c = v >= 0 ? [255, 255 - 215 * a, 255 - 225 * a] : [255 - 225 * a, 255 - 150 * a, 255];
      out.set(c.map(Math.round), (y * W + x) * 3);
    }
  }
  return { width: W, height: H, data: out };
}

/** The ImageNet mean colour in 0–255: what zero padding of a normalised input looks like. */
export const MEAN_RGB: Rgb = [Math.round(255 * IMAGENET_MEAN[0]), Math.round(255 * IMAGENET_MEAN[1]), Math.round(255 * IMAGENET_MEAN[2])];

/**
 * What a ViT sees: `img` resized to `shortSide` (bilinear), on a canvas of rows×cols patches of `patch`
 * px padded right/bottom with the mean colour, shown at `scale` px per patch.
 */
export function paddedInputView(img: RgbImage, shortSide: number, grid: { rows: number; cols: number; patch: number }, scale: number): RgbImage {
  const [w, h] = shortSideSize(img.width, img.height, shortSide);
  const resized = resizeImage(img, w, h, "bilinear");
  const W = grid.cols * grid.patch, H = grid.rows * grid.patch, canvas = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) canvas.set(MEAN_RGB, i * 3);
  for (let y = 0; y < Math.min(h, H); y++) canvas.set(resized.data.subarray(y * w * 3, (y * w + Math.min(w, W)) * 3), y * W * 3);
  return resizeImage({ width: W, height: H, data: canvas }, grid.cols * scale, grid.rows * scale, "bilinear");
}

/** Marks one grid cell: the cell filled and a ring two cells around it, so a single patch stays visible. */
export function markCell(img: RgbImage, x: number, y: number, cell: number, color: Rgb): RgbImage {
  return drawBox(drawBox(img, [x, y, cell, cell], color, cell), [x - 2 * cell, y - 2 * cell, 5 * cell, 5 * cell], color, 2);
}

/** A mask at full image resolution with its colour. */
export interface ColoredMask { mask: Uint8Array; color: Rgb }
/** A box in original image pixels with its colour and line width (display px). */
export interface ColoredBox { box: Box; color: Rgb; thickness?: number }

export interface MaskPanelOptions {
  /** Display height in px; the width keeps the aspect ratio. */
  height: number;
  /** Filled at `alpha` with an opaque outline, later ones on top. */
  masks?: ColoredMask[];
  /** Outline only (e.g. ground truth), drawn over the filled masks. */
  outlines?: ColoredMask[];
  /** Boxes in original-image coordinates, drawn last. */
  boxes?: ColoredBox[];
  alpha?: number;
}

/**
 * `img` at display height with masks, outlines and boxes. The image is resized bilinearly and the masks
 * by nearest neighbour to the display size before blending, so outlines stay one crisp pixel.
 */
export function maskPanel(img: RgbImage, opts: MaskPanelOptions): RgbImage {
  const H = opts.height, W = Math.max(1, Math.round((img.width * H) / img.height)), f = H / img.height;
  let view = img.width === W && img.height === H ? img : resizeImage(img, W, H, "bilinear");
  const shrink = (m: Uint8Array) => {
    if (m.length !== img.width * img.height) throw new Error(`maskPanel: mask has ${m.length} pixels, image ${img.width}×${img.height}`);
    return img.width === W && img.height === H ? m : resizeU8(m, img.width, img.height, 1, W, H, "nearest");
  };
  for (const m of opts.masks ?? []) view = overlayLabels(view, shrink(m.mask), { alpha: opts.alpha ?? 0.5, colors: () => [m.color[0], m.color[1], m.color[2]] });
  for (const m of opts.outlines ?? []) view = overlayLabels(view, shrink(m.mask), { alpha: 0, colors: () => [m.color[0], m.color[1], m.color[2]] });
  for (const b of opts.boxes ?? []) view = drawBox(view, [b.box[0] * f, b.box[1] * f, b.box[2] * f, b.box[3] * f], b.color, b.thickness ?? 2);
  return view;
}

/** `img` centred on a white canvas of at least `width`×`height` (never cropped). */
export function padImage(img: RgbImage, width: number, height = img.height, fill: Rgb = [255, 255, 255]): RgbImage {
  const W = Math.max(width, img.width), H = Math.max(height, img.height);
  if (W === img.width && H === img.height) return img;
  const data = new Uint8Array(W * H * 3);
  for (let i = 0; i < W * H; i++) data.set(fill, i * 3);
  const x0 = Math.floor((W - img.width) / 2), y0 = Math.floor((H - img.height) / 2);
  for (let y = 0; y < img.height; y++) data.set(img.data.subarray(y * img.width * 3, (y + 1) * img.width * 3), ((y0 + y) * W + x0) * 3);
  return { width: W, height: H, data };
}

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * `img` with a white strip of text lines below it (dark sans-serif, `fontSize` px, rendered as SVG by
 * sharp/librsvg). Lines longer than the image are cut by the image edge.
 */
export async function withCaption(img: RgbImage, lines: string[], opts: { fontSize?: number; color?: Rgb } = {}): Promise<RgbImage> {
  const size = opts.fontSize ?? 12, lineH = Math.round(size * 1.35), pad = 3;
  const stripH = lines.length * lineH + 2 * pad, c = opts.color ?? [20, 20, 20];
  const text = lines.map((l, i) => `<text x="${pad}" y="${pad + (i + 1) * lineH - Math.round(size * 0.3)}">${escapeXml(l)}</text>`).join("");
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${img.width}" height="${stripH}">` +
    `<rect width="100%" height="100%" fill="white"/><g font-family="DejaVu Sans, sans-serif" font-size="${size}" fill="rgb(${c.join(",")})">${text}</g></svg>`;
  const strip = await decodeRgb(await svgToPng(svg, 1), "caption");
  const data = new Uint8Array(img.width * (img.height + stripH) * 3);
  data.set(img.data);
  data.set(strip.data.subarray(0, img.width * stripH * 3), img.width * img.height * 3);
  return { width: img.width, height: img.height + stripH, data };
}

/**
 * Panels with caption strips in a grid (rows of `cols`, `gap` px apart): every cell is padded to the
 * widest panel and gets as many caption lines as the longest caption, so all cells have one size and
 * no caption is scaled or cut by a narrow (portrait) panel.
 */
export async function captionedGrid(panels: RgbImage[], captions: string[][], opts: { cols?: number; gap?: number; fontSize?: number } = {}): Promise<RgbImage> {
  if (panels.length !== captions.length) throw new Error(`captionedGrid: ${panels.length} panels but ${captions.length} captions`);
  const width = Math.max(1, ...panels.map((p) => p.width)), height = Math.max(1, ...panels.map((p) => p.height));
  const lines = Math.max(1, ...captions.map((c) => c.length));
  const cells: RgbImage[] = [];
  for (let i = 0; i < panels.length; i++) {
    const caption = [...captions[i], ...new Array<string>(lines - captions[i].length).fill("")];
    cells.push(await withCaption(padImage(panels[i], width, height), caption, { fontSize: opts.fontSize }));
  }
  return imageGrid(cells, { cols: opts.cols ?? 4, cellHeight: cells[0]?.height ?? 1, gap: opts.gap ?? 6 });
}
