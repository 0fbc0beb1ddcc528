// One scene of the shapes world: a background (photo crop or procedural texture), optional small
// clutter blobs (distractors: background, not objects), and one main object of the K shape classes
// with a random colour, fill, scale (10–50 % of the image area), rotation and position. The image is
// anti-aliased; the GT mask is the object's coverage thresholded at one half, so it is exactly the
// drawn object. A scene is a pure function of (world seed, index).
import type { RgbImage } from "../data/image.js";
import { mulberry32 } from "../random.js";
import { COVERAGE_SAMPLES, SHAPE_CLASSES, coverage, maskOfCoverage, randomBlob, shapeCoverage, unitShapeStats, type ShapeClass, type ShapePose } from "./geometry.js";
import {
  BACKGROUND_KINDS, CLASS_MATERIALS, EASY_BACKGROUND_KINDS, EASY_FILL_KINDS, FILL_KINDS, colourDistance, drawBackground, makeFill, pick, randint, randomColour, uniform,
  type BackgroundKind, type Fill, type FillKind, type PhotoBank, type Rgb, type Rng,
} from "./textures.js";

export interface SceneOptions {
  size: number;
  distractors: boolean;
  /** Photos for backgrounds; without them the photo kind falls back to value noise. */
  photos?: PhotoBank;
  /** Range of the object's area as a share of the image (default 0.10–0.50). */
  areaRange?: [number, number];
  /**
   * Views ≥ 1 give the object a new colour and fill (its shape stays): colour and texture become nuisances
   * that the paired views do not share, like DINO's colour jitter on photos, so a backbone pretrained on
   * the pairs must tell them apart by shape (`make-shapes --recolour-views`).
   */
  recolourViews?: boolean;
  /**
   * "full" (default): every background (photo crops, stripes, checkers, …) and fill kind. "easy": smooth
   * backgrounds (gradient, value noise) and flat fills only. "materials": smooth backgrounds, each class in
   * its own material. (Session 7 found the full world's classes unlearnt by a small ViT even with labels;
   * session 8 the easy world's too.)
   */
  difficulty?: ShapesDifficulty;
}

/**
 * full: every background and fill kind, fills at random. easy: smooth backgrounds, flat fills. materials:
 * smooth backgrounds, and each class drawn in its own material (CLASS_MATERIALS; colour still random).
 */
export const SHAPES_DIFFICULTIES = ["full", "easy", "materials"] as const;
export type ShapesDifficulty = (typeof SHAPES_DIFFICULTIES)[number];

export interface Scene {
  image: RgbImage;
  /** Row-major 0/1 mask of the main object (coverage ≥ 1/2). */
  mask: Uint8Array;
  /** Class index 0..K−1 (category id = classIndex + 1). */
  classIndex: number;
  shape: ShapeClass;
  pose: ShapePose;
  /** Visible mask area / image area. */
  areaFraction: number;
  background: BackgroundKind;
  fill: FillKind | "dots";
  distractors: number;
}

/** The PRNG seed of scene `index` of a world with seed `seed` (independent streams per image). */
export function sceneSeed(seed: number, index: number): number {
  let h = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 13)) >>> 0;
}

/** Paints `fill` over `canvas` with per-pixel coverage `cov` (alpha = coverage / samples). */
function paint(canvas: Float32Array, cov: Uint8Array, size: number, pose: Omit<ShapePose, "shape">, fill: (u: number, v: number, x: number, y: number) => Rgb): void {
  const c = Math.cos(pose.angle), s = Math.sin(pose.angle), inv = 1 / pose.scale;
  for (let i = 0; i < cov.length; i++) {
    if (cov[i] === 0) continue;
    const x = i % size, y = (i - x) / size;
    const dx = x + 0.5 - pose.cx, dy = y + 0.5 - pose.cy;
    const col = fill((c * dx + s * dy) * inv, (-s * dx + c * dy) * inv, x, y);
    const t = cov[i] / COVERAGE_SAMPLES;
    for (let ch = 0; ch < 3; ch++) canvas[i * 3 + ch] = canvas[i * 3 + ch] * (1 - t) + col[ch] * t;
  }
}

/** Pose of the main object: area share in `areaRange`, kept inside the image where its size allows. */
function samplePose(rng: Rng, shape: ShapeClass, size: number, areaRange: [number, number]): ShapePose {
  const unit = unitShapeStats(shape);
  const area = uniform(rng, areaRange[0], areaRange[1]) * size * size;
  const scale = Math.sqrt(area / unit.area);
  // a large shape cannot fit whole: its centre is then pulled towards the middle (clipped at the border)
  const margin = Math.min(unit.radius * scale, size / 2);
  return { shape, cx: uniform(rng, margin, size - margin), cy: uniform(rng, margin, size - margin), scale, angle: rng() * 2 * Math.PI };
}

/** Mean background colour under a mask. */
function meanUnder(canvas: Float32Array, mask: Uint8Array): Rgb {
  const sum: Rgb = [0, 0, 0];
  let n = 0;
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    n++;
    for (let ch = 0; ch < 3; ch++) sum[ch] += canvas[i * 3 + ch];
  }
  return n ? [sum[0] / n, sum[1] / n, sum[2] / n] : [128, 128, 128];
}

/** The object of a scene as drawn: shape, pose, coverage and fill (the appearance a second view keeps). */
interface DrawnObject { classIndex: number; shape: ShapeClass; pose: ShapePose; cov: Uint8Array; fillKind: FillKind | "dots"; fill: Fill }

/** Background kind + background + optional distractors, drawn from `rng`. */
function drawSurroundings(rng: Rng, opts: SceneOptions): { canvas: Float32Array; background: BackgroundKind; distractors: number } {
  const size = opts.size;
  const background = pick(rng, opts.difficulty === "easy" || opts.difficulty === "materials" ? EASY_BACKGROUND_KINDS : BACKGROUND_KINDS);
  const canvas = drawBackground(rng, background, size, opts.photos);
  let distractors = 0;
  if (opts.distractors) {
    distractors = randint(rng, 1, 4);
    for (let d = 0; d < distractors; d++) {
      const blob = randomBlob(rng, randint(rng, 5, 9));
      const pose = { cx: rng() * size, cy: rng() * size, scale: uniform(rng, 0.04, 0.08) * size, angle: rng() * 2 * Math.PI };
      const col = randomColour(rng);
      paint(canvas, coverage(blob, 1, pose, size, size), size, pose, () => col);
    }
  }
  return { canvas, background, distractors };
}

function finishScene(canvas: Float32Array, size: number, obj: DrawnObject, background: BackgroundKind, distractors: number): Scene {
  paint(canvas, obj.cov, size, obj.pose, obj.fill);
  const mask = maskOfCoverage(obj.cov);
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.max(0, Math.min(255, Math.round(canvas[i])));
  let area = 0;
  for (let i = 0; i < mask.length; i++) area += mask[i];
  return {
    image: { width: size, height: size, data }, mask, classIndex: obj.classIndex, shape: obj.shape, pose: obj.pose,
    areaFraction: area / (size * size), background, fill: obj.fillKind, distractors,
  };
}

/**
 * Views 0 … count − 1 of scene `index` of the world with seed `seed`. View 0 is the scene; a view ≥ 1
 * shows the same object — its shape, colour and fill (the texture moves with the object) — in a new pose
 * over a new background, like a later frame in which the object has moved: what `pretrain --paired-views`
 * pairs. (The object's colour depends on view 0's background, so every view draws view 0 first.)
 */
export function renderSceneViews(seed: number, index: number, opts: SceneOptions, count = 1): Scene[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`renderSceneViews: count must be a positive integer, got ${count}`);
  const rng = mulberry32(sceneSeed(seed, index));
  const size = opts.size;
  const areaRange = opts.areaRange ?? [0.1, 0.5];
  const classIndex = randint(rng, 0, SHAPE_CLASSES.length);
  const shape = SHAPE_CLASSES[classIndex];
  const first = drawSurroundings(rng, opts);
  const pose = samplePose(rng, shape, size, areaRange);
  const cov = shapeCoverage(pose, size, size);
  // the object must be visible: its base colour differs from the background under it (best of 20 draws)
  const base = visibleColour(rng, meanUnder(first.canvas, maskOfCoverage(cov)));
  const fillKinds = opts.difficulty === "easy" ? EASY_FILL_KINDS : FILL_KINDS;
  const material = opts.difficulty === "materials" ? CLASS_MATERIALS[classIndex] : undefined;
  // the class's material, or a kind drawn at random (the only draw the full world makes here)
  const drawFill = (r: Rng, colour: Rgb) => {
    const kind = material ? material.kind : pick(r, fillKinds);
    return { fillKind: kind, fill: makeFill(r, kind, colour, size, material?.freq) };
  };
  const { fillKind, fill } = drawFill(rng, base);
  const views = [finishScene(first.canvas, size, { classIndex, shape, pose, cov, fillKind, fill }, first.background, first.distractors)];
  for (let view = 1; view < count; view++) {
    const rngView = mulberry32(sceneSeed(seed, index) ^ Math.imul(view, 0x27d4eb2f));
    const other = drawSurroundings(rngView, opts);
    const poseView = samplePose(rngView, shape, size, areaRange);
    const covView = shapeCoverage(poseView, size, size);
    let look = { fillKind, fill };
    if (opts.recolourViews) {
      const baseView = visibleColour(rngView, meanUnder(other.canvas, maskOfCoverage(covView)));
      look = drawFill(rngView, baseView);
    }
    views.push(finishScene(other.canvas, size, { classIndex, shape, pose: poseView, cov: covView, ...look }, other.background, other.distractors));
  }
  return views;
}

/** A base colour that differs from `under`, the mean colour beneath the object (best of 20 draws). */
function visibleColour(rng: Rng, under: Rgb): Rgb {
  let base = randomColour(rng, [0.35, 1], [0.3, 1]);
  for (let t = 0; t < 20 && colourDistance(base, under) < 100; t++) {
    const next = randomColour(rng, [0.35, 1], [0.3, 1]);
    if (colourDistance(next, under) > colourDistance(base, under)) base = next;
  }
  return base;
}

/** View `view` (default 0: the scene itself) of scene `index` of the world with seed `seed` (see renderSceneViews). */
export function renderScene(seed: number, index: number, opts: SceneOptions, view = 0): Scene {
  if (!Number.isInteger(view) || view < 0) throw new Error(`renderScene: view must be a non-negative integer, got ${view}`);
  return renderSceneViews(seed, index, opts, view + 1)[view];
}
