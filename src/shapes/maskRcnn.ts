// The shapes world's stage-iii Mask R-CNN at test time, for the notebooks and tools that read a model file
// rather than train one: the recipe's inference settings, the committed model of the pipeline run
// (data/runs/shapes-pipeline/, written by `demo --world shapes`), and a model file run on a list of images
// → COCO results whose category ids are the world's, in memory.
import * as path from "node:path";
import type { CocoResult } from "../data/coco.js";
import type { ImageItem } from "../distill/genMasks.js";
import { MaskdistillError } from "../errors.js";
import type { MaskRcnnInference } from "../instance/maskrcnn.js";
import { projectPath } from "../paths.js";

/** The committed stage-iii Mask R-CNN of the shapes pipeline run (float16, torchvision layout, shapes recipe). */
export function shapesMaskRcnnFile(): string {
  return projectPath("data", "runs", "shapes-pipeline", "maskrcnn.safetensors");
}

/**
 * RPN proposals kept per image at test time in this world: Faster R-CNN's test setting (Ren et al. 2015: 300),
 * not detectron2's 1,000. A scene holds one object; on 200 val images session 12's committed model scored mask
 * AP50 34.5 / 61.8 (class-aware / agnostic) with 300 against 33.6 / 61.4 with 1,000, in 58 % of the time
 * (the box head runs on every proposal). Measured with `node --import tsx tools/shapes-detect-settings.ts --model M
 * 1000,100 300,100`.
 */
export const SHAPES_TEST_PROPOSALS = 300;

/**
 * The shapes recipe at test time: detectron2 preset at the recipe's largest training short side and its max size,
 * 300 proposals. `over` changes those (e.g. a network trained at other sizes, or a sweep of proposal counts).
 */
export async function shapesInference(detectionsPerImage?: number, over: { minSize?: number; maxSize?: number; proposals?: number } = {}): Promise<MaskRcnnInference> {
  const { shapesRecipe, BGR_PIXEL_MEAN, BGR_PIXEL_STD } = await import("../instance/train.js");
  const { detectron2Inference } = await import("../instance/maskrcnn.js");
  const recipe = shapesRecipe();
  return detectron2Inference({
    minSize: over.minSize ?? Math.max(...recipe.minSizes), maxSize: over.maxSize ?? recipe.maxSize, detectionsPerImage,
    proposals: over.proposals ?? SHAPES_TEST_PROPOSALS, transform: { pixelMean: BGR_PIXEL_MEAN, pixelStd: BGR_PIXEL_STD },
  });
}

export interface ShapesDetections {
  /** COCO results (image order, each image's best first); category_id = the world's class id. */
  results: CocoResult[];
  modelFile: string;
  /** World category id of each label (label l → categoryIds[l − 1]), from the file's metadata. */
  categoryIds: number[];
  images: number;
  seconds: number;
}

/**
 * A shapes Mask R-CNN file (default the committed one) on `images` with the recipe's inference settings, as
 * `detectShapes` runs it in stages iii and v, but in memory (no journal). The engine must be initialised;
 * the network is disposed before returning.
 */
export async function detectWithShapesModel(images: ImageItem[], opts: { modelFile?: string; detectionsPerImage?: number; onImage?: (done: number, total: number) => void } = {}): Promise<ShapesDetections> {
  const modelFile = opts.modelFile ?? shapesMaskRcnnFile();
  const { loadMaskRcnnModel, detectImages } = await import("../instance/detect.js");
  const { maskRcnnVariables } = await import("../engine/models/maskrcnn.js");
  const tf = await import("@tensorflow/tfjs");
  const model = await loadMaskRcnnModel(modelFile);
  try {
    const categoryIds = model.categoryIds;
    if (!categoryIds) throw new MaskdistillError(`no category_ids metadata: which world class is each label? (train-maskrcnn writes it; ${path.basename(modelFile)} has none)`, modelFile);
    const t0 = Date.now();
    const results = await detectImages({ net: model.net, images, inference: await shapesInference(opts.detectionsPerImage), categoryOf: (l) => categoryIds[l - 1], onImage: opts.onImage });
    return { results, modelFile, categoryIds, images: images.length, seconds: (Date.now() - t0) / 1000 };
  } finally {
    tf.dispose(maskRcnnVariables(model.net));
  }
}
