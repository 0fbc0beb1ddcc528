// The shapes world's stage-v DeepLab for the notebooks and tools that read a model file rather than train
// one: the committed DeepLab of the pipeline run (data/runs/shapes-pipeline/, written by `demo --world
// shapes`), and a shapes world folder as the linear probe's data (the GT maps of its train and val splits).
import * as path from "node:path";
import { projectPath } from "../paths.js";
import { probeDataFromFolders, type ProbeData } from "../segmentation/linearProbe.js";

/** The committed stage-v DeepLab of the shapes pipeline run (float16, reference layout, quarter-width DeepLab-v3, 9 classes). */
export function shapesDeepLabFile(): string {
  return projectPath("data", "runs", "shapes-pipeline", "deeplab.safetensors");
}

/**
 * A make-shapes folder as linear-probe data: JPEGImages/<stem>.jpg with the GT SegmentationClass/<stem>.png
 * (0 background, 1..8 the shapes), the train and val lists of ImageSets/Segmentation/.
 */
export function shapesProbeData(worldDir: string): ProbeData {
  const sets = path.join(worldDir, "ImageSets", "Segmentation");
  return probeDataFromFolders(path.join(worldDir, "JPEGImages"), path.join(worldDir, "SegmentationClass"), path.join(sets, "train.txt"), path.join(sets, "val.txt"));
}
