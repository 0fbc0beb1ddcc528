// Procedural colours and textures of the shapes world: backgrounds (value noise, stripes, checkers,
// gradients, soft blobs, crops of real photos) and object fills. Everything draws from the caller's
// seeded PRNG, so a scene is a pure function of its seed. Pixels are float RGB in [0, 255],
// interleaved row-major (index (y*width + x)*3 + c).
import type { RgbImage } from "../data/image.js";
import { resizeImage } from "../data/resize.js";

export type Rng = () => number;
export type Rgb = [number, number, number];

export const uniform = (rng: Rng, a: number, b: number) => a + (b - a) * rng();
export const randint = (rng: Rng, lo: number, hiExclusive: number) => lo + Math.floor(rng() * (hiExclusive - lo));
export const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)];

/** HSV (h in [0, 1), s, v in [0, 1]) to RGB in [0, 255]. */
export function hsv(h: number, s: number, v: number): Rgb {
  const i = Math.floor(h * 6) % 6, f = h * 6 - Math.floor(h * 6);
  const p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i];
  return [255 * r, 255 * g, 255 * b];
}

export const randomColour = (rng: Rng, sat: [number, number] = [0, 1], val: [number, number] = [0.1, 1]): Rgb =>
  hsv(rng(), uniform(rng, sat[0], sat[1]), uniform(rng, val[0], val[1]));

export const colourDistance = (a: Rgb, b: Rgb) => Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);

/**
 * Smooth value noise in [0, 1] on a width × height grid: `octaves` layers of a random lattice
 * (cell `cell` px, halved per octave) with smoothstep interpolation, amplitudes halving.
 */
export function valueNoise(rng: Rng, width: number, height: number, cell: number, octaves = 3): Float32Array {
  const out = new Float32Array(width * height);
  let amp = 1, total = 0;
  for (let o = 0; o < octaves; o++, cell /= 2, amp /= 2) {
    const c = Math.max(cell, 1.5);
    const gw = Math.ceil(width / c) + 2, gh = Math.ceil(height / c) + 2;
    const lattice = new Float32Array(gw * gh);
    for (let i = 0; i < lattice.length; i++) lattice[i] = rng();
    for (let y = 0; y < height; y++) {
      const fy = y / c, iy = Math.floor(fy), ty = fy - iy, sy = ty * ty * (3 - 2 * ty);
      for (let x = 0; x < width; x++) {
        const fx = x / c, ix = Math.floor(fx), tx = fx - ix, sx = tx * tx * (3 - 2 * tx);
        const a = lattice[iy * gw + ix], b = lattice[iy * gw + ix + 1];
        const d = lattice[(iy + 1) * gw + ix], e = lattice[(iy + 1) * gw + ix + 1];
        out[y * width + x] += amp * ((a * (1 - sx) + b * sx) * (1 - sy) + (d * (1 - sx) + e * sx) * sy);
      }
    }
    total += amp;
  }
  for (let i = 0; i < out.length; i++) out[i] /= total;
  return out;
}

/** Per-pixel mix of two colours by a weight field in [0, 1]. */
function mix(width: number, height: number, c1: Rgb, c2: Rgb, weight: (x: number, y: number, i: number) => number): Float32Array {
  const out = new Float32Array(width * height * 3);
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      const t = weight(x, y, i);
      for (let ch = 0; ch < 3; ch++) out[i * 3 + ch] = c1[ch] * (1 - t) + c2[ch] * t;
    }
  }
  return out;
}

const smoothSquare = (phase: number) => 0.5 + 0.5 * Math.max(-1, Math.min(1, 3 * Math.sin(2 * Math.PI * phase)));

export const BACKGROUND_KINDS = ["photo", "noise", "stripes", "checker", "gradient", "blobs"] as const;
export type BackgroundKind = (typeof BACKGROUND_KINDS)[number];
/** Backgrounds of the easy world (`make-shapes --difficulty easy`): smooth, no edges of their own. */
export const EASY_BACKGROUND_KINDS: readonly BackgroundKind[] = ["gradient", "noise"];

/** Decoded photos, shrunk once; backgrounds are random square crops of them. */
export interface PhotoBank {
  images: RgbImage[];
}

/** A square crop of 30–80 % of a photo's short side, resized (bilinear) to size × size. */
function photoCrop(rng: Rng, bank: PhotoBank, size: number): Float32Array {
  const img = pick(rng, bank.images);
  const short = Math.min(img.width, img.height);
  const side = Math.max(8, Math.round(short * uniform(rng, 0.3, 0.8)));
  const x0 = randint(rng, 0, img.width - side + 1), y0 = randint(rng, 0, img.height - side + 1);
  const crop = new Uint8Array(side * side * 3);
  for (let y = 0; y < side; y++) crop.set(img.data.subarray(((y0 + y) * img.width + x0) * 3, ((y0 + y) * img.width + x0 + side) * 3), y * side * 3);
  const resized = resizeImage({ width: side, height: side, data: crop }, size, size, "bilinear");
  return Float32Array.from(resized.data);
}

/** A background of `kind` (a photo crop needs a non-empty bank). */
export function drawBackground(rng: Rng, kind: BackgroundKind, size: number, bank?: PhotoBank): Float32Array {
  const w = size, h = size;
  const c1 = randomColour(rng), c2 = randomColour(rng);
  switch (kind) {
    case "photo":
      if (bank && bank.images.length) return photoCrop(rng, bank, size);
      return drawBackground(rng, "noise", size);
    case "noise": {
      const n = valueNoise(rng, w, h, uniform(rng, size / 8, size / 2), 4);
      return mix(w, h, c1, c2, (_x, _y, i) => n[i]);
    }
    case "stripes": {
      const a = rng() * Math.PI, period = uniform(rng, 4, 16), ca = Math.cos(a), sa = Math.sin(a);
      const n = valueNoise(rng, w, h, size / 4, 2);
      return mix(w, h, c1, c2, (x, y, i) => 0.8 * smoothSquare((ca * x + sa * y) / period) + 0.2 * n[i]);
    }
    case "checker": {
      const a = rng() * Math.PI, cell = uniform(rng, 5, 20), ca = Math.cos(a), sa = Math.sin(a);
      return mix(w, h, c1, c2, (x, y) => {
        const u = Math.floor((ca * x + sa * y) / cell), v = Math.floor((-sa * x + ca * y) / cell);
        return (u + v) & 1;
      });
    }
    case "gradient": {
      const a = rng() * 2 * Math.PI, ca = Math.cos(a), sa = Math.sin(a), grain = uniform(rng, 0, 0.25);
      const n = valueNoise(rng, w, h, 2, 1);
      return mix(w, h, c1, c2, (x, y, i) => Math.max(0, Math.min(1, (ca * (x - w / 2) + sa * (y - h / 2)) / size + 0.5 + grain * (n[i] - 0.5))));
    }
    case "blobs": {
      const out = mix(w, h, c1, c1, () => 0);
      const count = randint(rng, 4, 12);
      for (let b = 0; b < count; b++) {
        const col = randomColour(rng), bx = rng() * w, by = rng() * h, r = uniform(rng, size / 12, size / 4);
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            const d = Math.hypot(x - bx, y - by) / r;
            const t = d >= 1 ? 0 : 0.85 * (1 - d * d);
            if (t === 0) continue;
            for (let ch = 0; ch < 3; ch++) out[(y * w + x) * 3 + ch] = out[(y * w + x) * 3 + ch] * (1 - t) + col[ch] * t;
          }
        }
      }
      return out;
    }
  }
}

export const FILL_KINDS = ["flat", "gradient", "stripes", "noise", "checker"] as const;
export type FillKind = (typeof FILL_KINDS)[number];
/** Fills of the easy world: one flat colour, so the silhouette is the only thing inside the object. */
export const EASY_FILL_KINDS: readonly FillKind[] = ["flat"];

/** A class's own material in the "materials" world: a fill kind (or polka dots) at a fixed frequency. */
export interface Material { kind: FillKind | "dots"; freq?: number }
/**
 * One material per class, in SHAPE_CLASSES order (disc, square, triangle, star, cross, ring, heart,
 * crescent): the class is then told by its surface as well as by its outline, as real categories are
 * (fur, foliage, brick), while colour stays random.
 */
export const CLASS_MATERIALS: readonly Material[] = [
  { kind: "flat" }, { kind: "stripes", freq: 1.5 }, { kind: "checker", freq: 2 }, { kind: "noise" },
  { kind: "gradient" }, { kind: "stripes", freq: 4 }, { kind: "dots", freq: 3 }, { kind: "checker", freq: 4 },
];

/** The object's paint, as a function of the pixel's position in the shape's frame (units of the shape). */
export type Fill = (u: number, v: number, x: number, y: number) => Rgb;

/**
 * An object fill of `kind` around the base colour `base`: flat, a gradient to a darker/lighter
 * shade, stripes or a checker with a second colour, or value-noise shading. Patterns live in the
 * shape's frame, so they rotate and scale with it.
 */
export function makeFill(rng: Rng, kind: FillKind | "dots", base: Rgb, size: number, freqOverride?: number): Fill {
  const shade = (c: Rgb, f: number): Rgb => [Math.min(255, c[0] * f), Math.min(255, c[1] * f), Math.min(255, c[2] * f)];
  const lerp = (a: Rgb, b: Rgb, t: number): Rgb => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
  switch (kind) {
    case "flat":
      return () => base;
    case "gradient": {
      const other = shade(base, uniform(rng, 0.45, 1.5)), a = rng() * 2 * Math.PI, ca = Math.cos(a), sa = Math.sin(a);
      return (u, v) => lerp(base, other, Math.max(0, Math.min(1, 0.5 + 0.5 * (ca * u + sa * v))));
    }
    case "stripes": {
      const other = randomColour(rng, [0.3, 1], [0.3, 1]), freq = freqOverride ?? uniform(rng, 1.5, 4), a = rng() * Math.PI;
      const ca = Math.cos(a), sa = Math.sin(a);
      return (u, v) => lerp(base, other, smoothSquare(freq * (ca * u + sa * v)) * 0.7);
    }
    case "checker": {
      const other = shade(base, uniform(rng, 0.5, 0.8)), freq = freqOverride ?? uniform(rng, 2, 4);
      return (u, v) => ((Math.floor(freq * u) + Math.floor(freq * v)) & 1 ? other : base);
    }
    case "dots": {
      // polka dots of radius 0.3 cells on a square lattice of `freq` cells per shape unit
      const other = randomColour(rng, [0.3, 1], [0.3, 1]), freq = freqOverride ?? 3;
      return (u, v) => {
        const du = freq * u - Math.floor(freq * u) - 0.5, dv = freq * v - Math.floor(freq * v) - 0.5;
        return du * du + dv * dv < 0.09 ? other : base;
      };
    }
    case "noise": {
      const n = valueNoise(rng, size, size, size / 10, 2);
      return (_u, _v, x, y) => shade(base, 0.6 + 0.7 * n[Math.min(size - 1, y) * size + Math.min(size - 1, x)]);
    }
  }
}
