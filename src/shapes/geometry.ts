// The K = 8 shape classes of the procedural world, as inside-tests in a unit frame (the shape fits in
// the disc of radius ≈ 1 around the origin; y points down, as in images), and the anti-aliased
// rasteriser that paints one shape and returns its exact coverage-thresholded mask.

/** Class names in category-id order (category id = index + 1; 0 is the background). */
export const SHAPE_CLASSES = ["disc", "square", "triangle", "star", "cross", "ring", "heart", "crescent"] as const;
export type ShapeClass = (typeof SHAPE_CLASSES)[number];

export type Inside = (x: number, y: number) => boolean;

/** Even-odd point-in-polygon test on a flat [x0, y0, x1, y1, ...] vertex list. */
function insidePolygon(xy: number[], x: number, y: number): boolean {
  let inside = false;
  const n = xy.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = xy[2 * i], yi = xy[2 * i + 1], xj = xy[2 * j], yj = xy[2 * j + 1];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function regularPolygon(points: number, radii: number[], startAngle: number): number[] {
  const xy: number[] = [];
  const n = points * radii.length;
  for (let i = 0; i < n; i++) {
    const a = startAngle + (2 * Math.PI * i) / n;
    xy.push(radii[i % radii.length] * Math.cos(a), radii[i % radii.length] * Math.sin(a));
  }
  return xy;
}

const TRIANGLE = regularPolygon(3, [1], -Math.PI / 2);
const STAR = regularPolygon(5, [1, 0.45], -Math.PI / 2);

/** Inside-tests of the unit shapes. */
export const SHAPE_INSIDE: Record<ShapeClass, Inside> = {
  disc: (x, y) => x * x + y * y <= 1,
  square: (x, y) => Math.abs(x) <= 0.75 && Math.abs(y) <= 0.75,
  triangle: (x, y) => insidePolygon(TRIANGLE, x, y),
  star: (x, y) => insidePolygon(STAR, x, y),
  cross: (x, y) => (Math.abs(x) <= 0.3 && Math.abs(y) <= 0.9) || (Math.abs(y) <= 0.3 && Math.abs(x) <= 0.9),
  ring: (x, y) => {
    const r2 = x * x + y * y;
    return r2 <= 1 && r2 >= 0.55 * 0.55;
  },
  heart: (x, y) => {
    // (u² + v² − 1)³ − u² v³ ≤ 0, v up; spans u ∈ [−1.14, 1.14], v ∈ [−1, 1.24]: centre and shrink it
    const u = x * 1.15, v = -(y * 1.15) + 0.12;
    const a = u * u + v * v - 1;
    return a * a * a - u * u * v * v * v <= 0;
  },
  crescent: (x, y) => x * x + y * y <= 1 && (x - 0.45) * (x - 0.45) + (y + 0.1) * (y + 0.1) >= 0.8 * 0.8,
};

export interface UnitShapeStats {
  /** Area of the unit shape. */
  area: number;
  /** Largest distance of an inside point from the origin. */
  radius: number;
}

const statsCache = new Map<ShapeClass, UnitShapeStats>();

/** Area and bounding radius of a unit shape (midpoint sampling on a 512² grid over [−1.5, 1.5]²; cached). */
export function unitShapeStats(shape: ShapeClass): UnitShapeStats {
  const hit = statsCache.get(shape);
  if (hit) return hit;
  const inside = SHAPE_INSIDE[shape];
  const n = 512, lo = -1.5, step = 3 / n;
  let count = 0, r2 = 0;
  for (let j = 0; j < n; j++) {
    const y = lo + (j + 0.5) * step;
    for (let i = 0; i < n; i++) {
      const x = lo + (i + 0.5) * step;
      if (inside(x, y)) {
        count++;
        r2 = Math.max(r2, x * x + y * y);
      }
    }
  }
  const stats = { area: count * step * step, radius: Math.sqrt(r2) + step };
  statsCache.set(shape, stats);
  return stats;
}

/** Where and how big a shape is drawn: centre (px), scale (px per unit), rotation (radians). */
export interface ShapePose {
  shape: ShapeClass;
  cx: number;
  cy: number;
  scale: number;
  angle: number;
}

/** Supersampling grid per pixel (SS × SS samples); a pixel is in the mask when at least half are inside. */
const SS = 4;

/**
 * Coverage of `pose` on a width × height pixel grid: the count of inside samples (0..16) per pixel.
 * Only the shape's bounding square is visited.
 */
export function shapeCoverage(pose: ShapePose, width: number, height: number): Uint8Array {
  return coverage(SHAPE_INSIDE[pose.shape], unitShapeStats(pose.shape).radius, pose, width, height);
}

/** Coverage of any unit-frame inside-test (bounding radius `radius` in units) placed at `pose`. */
export function coverage(inside: Inside, radius: number, pose: Omit<ShapePose, "shape">, width: number, height: number): Uint8Array {
  const cov = new Uint8Array(width * height);
  const r = radius * pose.scale;
  const x0 = Math.max(0, Math.floor(pose.cx - r)), x1 = Math.min(width - 1, Math.ceil(pose.cx + r));
  const y0 = Math.max(0, Math.floor(pose.cy - r)), y1 = Math.min(height - 1, Math.ceil(pose.cy + r));
  const c = Math.cos(pose.angle), s = Math.sin(pose.angle), inv = 1 / pose.scale;
  for (let py = y0; py <= y1; py++) {
    for (let px = x0; px <= x1; px++) {
      let k = 0;
      for (let sy = 0; sy < SS; sy++) {
        const dy = py + (sy + 0.5) / SS - pose.cy;
        for (let sx = 0; sx < SS; sx++) {
          const dx = px + (sx + 0.5) / SS - pose.cx;
          // rotate the sample into the shape's frame
          if (inside((c * dx + s * dy) * inv, (-s * dx + c * dy) * inv)) k++;
        }
      }
      cov[py * width + px] = k;
    }
  }
  return cov;
}

/** A star-shaped random polygon (`vertices` corners at radii in [0.5, 1]): the clutter of the distractor option. */
export function randomBlob(rng: () => number, vertices: number): Inside {
  const xy: number[] = [];
  for (let i = 0; i < vertices; i++) {
    const a = (2 * Math.PI * (i + 0.8 * rng())) / vertices, r = 0.5 + 0.5 * rng();
    xy.push(r * Math.cos(a), r * Math.sin(a));
  }
  return (x, y) => insidePolygon(xy, x, y);
}

/** Samples per pixel of `shapeCoverage`. */
export const COVERAGE_SAMPLES = SS * SS;

/** The GT mask of a coverage map: pixels with at least half of their samples inside. */
export function maskOfCoverage(cov: Uint8Array): Uint8Array {
  const mask = new Uint8Array(cov.length);
  for (let i = 0; i < cov.length; i++) mask[i] = cov[i] * 2 >= COVERAGE_SAMPLES ? 1 : 0;
  return mask;
}
