// COCO JSON: instances files (GT) and detection results lists, read with validation so that a bad
// file fails here with its name, the offending id and the problem, not deep inside COCOeval.
import * as fs from "node:fs";
import * as path from "node:path";
import { MaskdistillError, inputError } from "../errors.js";
import { rleStringTotal, type CocoRle, type CocoSegmentation } from "../mask/rle.js";

export type { CocoRle, CocoSegmentation } from "../mask/rle.js";

export interface CocoImage {
  id: number;
  width: number;
  height: number;
  file_name: string;
  [extra: string]: unknown;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  /** Polygons or RLE; absent in box-only datasets. */
  segmentation?: CocoSegmentation;
  area: number;
  /** [x, y, w, h] */
  bbox: [number, number, number, number];
  /** 0 or 1 (a missing field is read as 0). */
  iscrowd: number;
  [extra: string]: unknown;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
  [extra: string]: unknown;
}

export interface CocoDataset {
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
  info?: unknown;
  licenses?: unknown[];
  [extra: string]: unknown;
}

/** One detection of a results list (the file `COCO.loadRes` reads). */
export interface CocoResult {
  image_id: number;
  category_id: number;
  score: number;
  bbox?: [number, number, number, number];
  segmentation?: CocoSegmentation;
  [extra: string]: unknown;
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw inputError(file, "cannot be read", e);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw inputError(file, "is not valid JSON", e);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isFiniteNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function isBox(v: unknown): v is [number, number, number, number] {
  return Array.isArray(v) && v.length === 4 && v.every(isFiniteNumber);
}

/**
 * Checks a segmentation against its image: polygons need an even count of at least 6 finite numbers;
 * an RLE needs `size` = [image height, image width] and counts (string or list) that sum to h*w.
 * Returns the problem, or undefined when it is fine.
 */
function segmentationProblem(seg: unknown, img: CocoImage): string | undefined {
  if (Array.isArray(seg)) {
    if (seg.length === 0) return "segmentation is an empty polygon list";
    for (let i = 0; i < seg.length; i++) {
      const p = seg[i];
      if (!Array.isArray(p)) return `polygon ${i} is not a list of numbers`;
      if (p.length < 6 || p.length % 2 !== 0) {
        return `polygon ${i} has ${p.length} numbers; a polygon needs an even count of at least 6 (3 points)`;
      }
      if (!p.every(isFiniteNumber)) return `polygon ${i} contains a value that is not a finite number`;
    }
    return undefined;
  }
  if (!isObject(seg)) return "segmentation is neither a polygon list nor an RLE object";
  const size = seg.size;
  if (!Array.isArray(size) || size.length !== 2 || !size.every((s) => Number.isInteger(s) && s >= 0)) {
    return "RLE segmentation needs size: [height, width]";
  }
  const [h, w] = size as [number, number];
  if (h !== img.height || w !== img.width) {
    return `RLE size [${h}, ${w}] differs from the size of image ${img.id} [${img.height}, ${img.width}] (height, width)`;
  }
  let total = 0;
  if (typeof seg.counts === "string") {
    try {
      total = rleStringTotal(seg.counts); // structure and sum without decoding into runs
    } catch (e) {
      return `RLE counts string is malformed (${(e as Error).message})`;
    }
  } else if (Array.isArray(seg.counts)) {
    for (const c of seg.counts) {
      if (!Number.isInteger(c) || c < 0 || c > 0xffffffff) return "RLE counts list must hold non-negative integers";
      total += c;
    }
  } else {
    return "RLE segmentation needs counts (a string or a list of run lengths)";
  }
  if (total !== h * w) return `RLE counts sum to ${total}, expected height*width = ${h * w}`;
  return undefined;
}

/** Validates an in-memory instances dataset (what `readCocoDataset` does after parsing). */
export function validateCocoDataset(raw: unknown, file: string): CocoDataset {
  if (!isObject(raw)) throw new MaskdistillError("a COCO instances file must hold a JSON object", file);
  for (const key of ["images", "annotations", "categories"]) {
    if (!Array.isArray(raw[key])) throw new MaskdistillError(`missing the '${key}' list (not a COCO instances file?)`, file);
  }
  const images = raw.images as unknown[], annotations = raw.annotations as unknown[], categories = raw.categories as unknown[];

  const imageById = new Map<number, CocoImage>();
  images.forEach((img, i) => {
    const where = isObject(img) && "id" in img ? `image id ${JSON.stringify(img.id)}` : `image #${i}`;
    if (!isObject(img)) throw new MaskdistillError(`${where}: not an object`, file);
    if (!isFiniteNumber(img.id)) throw new MaskdistillError(`${where}: missing or non-numeric 'id'`, file);
    for (const k of ["width", "height"]) {
      if (!Number.isInteger(img[k]) || (img[k] as number) <= 0) throw new MaskdistillError(`${where}: '${k}' must be a positive integer`, file);
    }
    if (typeof img.file_name !== "string") throw new MaskdistillError(`${where}: missing 'file_name'`, file);
    if (imageById.has(img.id)) throw new MaskdistillError(`${where}: duplicate image id`, file);
    imageById.set(img.id, img as CocoImage);
  });

  const categoryIds = new Set<number>();
  categories.forEach((cat, i) => {
    const where = isObject(cat) && "id" in cat ? `category id ${JSON.stringify(cat.id)}` : `category #${i}`;
    if (!isObject(cat)) throw new MaskdistillError(`${where}: not an object`, file);
    if (!isFiniteNumber(cat.id)) throw new MaskdistillError(`${where}: missing or non-numeric 'id'`, file);
    if (typeof cat.name !== "string") throw new MaskdistillError(`${where}: missing 'name'`, file);
    if (categoryIds.has(cat.id)) throw new MaskdistillError(`${where}: duplicate category id`, file);
    categoryIds.add(cat.id);
  });

  const annotationIds = new Set<number>();
  annotations.forEach((ann, i) => {
    const where = isObject(ann) && "id" in ann ? `annotation id ${JSON.stringify(ann.id)}` : `annotation #${i}`;
    if (!isObject(ann)) throw new MaskdistillError(`${where}: not an object`, file);
    if (!isFiniteNumber(ann.id)) throw new MaskdistillError(`${where}: missing or non-numeric 'id'`, file);
    if (annotationIds.has(ann.id)) throw new MaskdistillError(`${where}: duplicate annotation id`, file);
    annotationIds.add(ann.id);
    if (!isFiniteNumber(ann.image_id)) throw new MaskdistillError(`${where}: missing or non-numeric 'image_id'`, file);
    const img = imageById.get(ann.image_id);
    if (!img) throw new MaskdistillError(`${where}: image_id ${ann.image_id} is not in 'images'`, file);
    if (!isFiniteNumber(ann.category_id)) throw new MaskdistillError(`${where}: missing or non-numeric 'category_id'`, file);
    if (!categoryIds.has(ann.category_id)) throw new MaskdistillError(`${where}: category_id ${ann.category_id} is not in 'categories'`, file);
    if (!isBox(ann.bbox)) throw new MaskdistillError(`${where}: 'bbox' must be [x, y, width, height] (4 finite numbers)`, file);
    if (ann.bbox[2] < 0 || ann.bbox[3] < 0) {
      throw new MaskdistillError(`${where}: 'bbox' [${ann.bbox.join(", ")}] has a negative width or height (COCO boxes are [x, y, width, height] with width, height >= 0)`, file);
    }
    if (!isFiniteNumber(ann.area)) throw new MaskdistillError(`${where}: missing or non-numeric 'area'`, file);
    if (ann.area < 0) throw new MaskdistillError(`${where}: 'area' ${ann.area} is negative`, file);
    if (ann.iscrowd === undefined) ann.iscrowd = 0;
    if (ann.iscrowd !== 0 && ann.iscrowd !== 1 && typeof ann.iscrowd !== "boolean") {
      throw new MaskdistillError(`${where}: 'iscrowd' must be 0 or 1`, file);
    }
    ann.iscrowd = Number(ann.iscrowd);
    if (ann.segmentation !== undefined) {
      const problem = segmentationProblem(ann.segmentation, img);
      if (problem) throw new MaskdistillError(`${where} (image ${img.id}): ${problem}`, file);
    }
  });
  return raw as CocoDataset;
}

/**
 * Validates an in-memory results list — a JSON list, or the {images, annotations, categories} file that
 * gen-masks, detect and cluster write (its annotations are the results). With `gt`, every image_id and
 * category_id must exist in it and RLE sizes must equal the image size.
 */
export function validateCocoResults(raw: unknown, file: string, gt?: CocoDataset, opts: { anyCategory?: boolean } = {}): CocoResult[] {
  if (raw && typeof raw === "object" && !Array.isArray(raw) && Array.isArray((raw as { annotations?: unknown }).annotations)) {
    raw = (raw as { annotations: unknown[] }).annotations;
  }
  if (!Array.isArray(raw)) throw new MaskdistillError("a COCO results file must hold a JSON list of detections (or an object with an 'annotations' list)", file);
  const imageById = gt ? new Map(gt.images.map((img) => [img.id, img])) : undefined;
  // class-agnostic evaluation takes any category (e.g. pseudo-class ids of stage ii or detect)
  const categoryIds = gt && !opts.anyCategory ? new Set(gt.categories.map((c) => c.id)) : undefined;
  raw.forEach((res, i) => {
    const where = `result #${i}`;
    if (!isObject(res)) throw new MaskdistillError(`${where}: not an object`, file);
    if (!isFiniteNumber(res.image_id)) throw new MaskdistillError(`${where}: missing or non-numeric 'image_id'`, file);
    if (!isFiniteNumber(res.category_id)) throw new MaskdistillError(`${where}: missing or non-numeric 'category_id'`, file);
    if (!isFiniteNumber(res.score)) throw new MaskdistillError(`${where} (image ${res.image_id}): missing or non-finite 'score'`, file);
    if (res.bbox !== undefined && !isBox(res.bbox)) {
      throw new MaskdistillError(`${where} (image ${res.image_id}): 'bbox' must be [x, y, width, height] (4 finite numbers)`, file);
    }
    const bbox = res.bbox as number[] | undefined;   // checked by isBox above (TS 5.0, tslab's, does not keep that narrowing)
    if (bbox !== undefined && (bbox[2] < 0 || bbox[3] < 0)) {
      throw new MaskdistillError(`${where} (image ${res.image_id}): 'bbox' [${bbox.join(", ")}] has a negative width or height (results are [x, y, width, height] with width, height >= 0)`, file);
    }
    if (res.bbox === undefined && res.segmentation === undefined) {
      throw new MaskdistillError(`${where} (image ${res.image_id}): has neither 'bbox' nor 'segmentation'`, file);
    }
    const img = imageById?.get(res.image_id);
    if (imageById && !img) {
      throw new MaskdistillError(`${where}: image_id ${res.image_id} is not an image of the ground truth (results do not correspond to this GT)`, file);
    }
    if (categoryIds && !categoryIds.has(res.category_id)) {
      throw new MaskdistillError(`${where} (image ${res.image_id}): category_id ${res.category_id} is not a ground-truth category`, file);
    }
    if (res.segmentation !== undefined) {
      if (img) {
        const problem = segmentationProblem(res.segmentation, img);
        if (problem) throw new MaskdistillError(`${where} (image ${res.image_id}): ${problem}`, file);
      } else if (!Array.isArray(res.segmentation) && !isObject(res.segmentation)) {
        throw new MaskdistillError(`${where} (image ${res.image_id}): segmentation is neither a polygon list nor an RLE object`, file);
      }
    }
  });
  return raw as CocoResult[];
}

/** Reads and validates a COCO instances JSON (images, annotations, categories). */
export function readCocoDataset(file: string): CocoDataset {
  return validateCocoDataset(readJson(file), file);
}

/** Reads and validates a detection results list; with `gt`, ids and RLE sizes are checked against it. */
export function readCocoResults(file: string, gt?: CocoDataset, opts: { anyCategory?: boolean } = {}): CocoResult[] {
  return validateCocoResults(readJson(file), file, gt, opts);
}

/** Writes JSON atomically: a temporary file beside the target, then rename. */
export function writeCocoJson(file: string, obj: unknown): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(tmp, JSON.stringify(obj));
    fs.renameSync(tmp, file);
  } catch (e) {
    try { fs.rmSync(tmp, { force: true }); } catch { /* nothing left to clean */ }
    throw inputError(file, "could not be written", e);
  }
}

/** The images whose file-name stem is in `stems` (a split list such as data/demo/sets/train.txt) and their annotations. */
export function cocoSubset(ds: CocoDataset, stems: Iterable<string>): CocoDataset {
  const keep = new Set(stems);
  return cocoSubsetByIds(ds, ds.images.filter((im) => keep.has(path.parse(im.file_name).name)).map((im) => im.id));
}

/** The images of `ds` with these ids and their annotations (categories and the rest unchanged). */
export function cocoSubsetByIds(ds: CocoDataset, imageIds: Iterable<number>): CocoDataset {
  const ids = imageIds instanceof Set ? imageIds as Set<number> : new Set(imageIds);
  return { ...ds, images: ds.images.filter((im) => ids.has(im.id)), annotations: ds.annotations.filter((a) => ids.has(a.image_id)) };
}
