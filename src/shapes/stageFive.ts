// Stages iv–v on the shapes world (issue 19), after stage iii (stageThree.ts):
//   iv — the trained Mask R-CNN run on the train images; its detections painted into one semantic
//        pseudo-label PNG per image (gen-segmentation: 0 background, 1..K the stage-ii class named by the
//        train Hungarian pairing, i.e. the world's SegmentationClass ids), scored against the train labels;
//   v  — DeepLab-v3 trained on those pseudo-labels (train-deeplab --recipe shapes), its ResNet initialised from
//        a self-supervised ResNet-50 (the demo passes the world's own, data/backbones/shapes_resnet50, as the
//        paper's MoCo v2) or from stage iii's Mask R-CNN body (also a CNN trained without human labels), then CRF
//        rounds (the model's CRF-refined predictions of the train images become the next round's labels),
//        every round scored on val with and without the CRF; next to the same DeepLab untrained. Because
//        the classes were named on the train split, val mIoU is scored directly (ids = classes): the
//        "clustering" mIoU of the paper, with the pairing made once, on train;
//   LC — the linear probe: the last round's DeepLab frozen, a new 1×1 classifier trained on the train GT
//        labels (the paper's linear-classification protocol), scored on val.
// Everything is resumable: detections, pseudo-labels, each round's checkpoint and predictions, the probe.
import * as fs from "node:fs";
import * as path from "node:path";
import { cocoSubsetByIds, readCocoDataset, readCocoResults } from "../data/coco.js";
import { cocoImages } from "../distill/imageList.js";
import { MaskdistillError } from "../errors.js";
import { writeFileAtomic } from "../runner/perImage.js";
import type { SegmentationItem } from "../segmentation/data.js";
import type { DeepLabTrainConfig, StepLog } from "../segmentation/train.js";
import { detectShapes, lossAtEnds } from "./stageThree.js";

/**
 * Train images that `demo --world shapes` labels and trains DeepLab on by default (of 3,500): 500, so that the
 * default run fits the issue's 15 minutes on 2 cores (session 13: with 1,000, stages iv–v and the probe took
 * 9.1 of the run's 18.0 minutes — detection 0.9, DeepLab 3.3, its val scoring 0.8, the probe 2.8 —, and each of
 * those but the val scoring scales with the images). The committed run uses `--train-images 1000`; all 3,500
 * took ~35 minutes for stages iv–v (session 9).
 */
export const SHAPES_STAGE_V_TRAIN_IMAGES = 500;

/**
 * CRF rounds after round 0 that `demo --world shapes` runs by default: none, to fit the 15 minutes. A round
 * CRF-predicts the train images and retrains a fresh DeepLab on them: 5.6 minutes for a val mIoU change of
 * −0.5, −1.3, −0.7 and +0.7 in the four runs measured in sessions 11–13, −3.7 in session 15, −1.4 in 16. The CRF itself is still applied to every
 * round's val predictions; `--rounds 1` shows a round (the committed run does).
 */
export const SHAPES_DEFAULT_ROUNDS = 0;

export interface ShapesStageVOptions {
  world: string;
  /** Stage iii's trained Mask R-CNN and the world category id of each of its classes (ShapesStageIII). */
  maskRcnn: { modelFile: string; modelSha256: string; categoryIds: number[] };
  out: string;
  /** Train images labelled and trained on (default all); val images scored (default all). */
  trainLimit?: number;
  valLimit?: number;
  /** DeepLab epochs per round (default the shapes recipe's); CRF rounds after round 0 (default SHAPES_DEFAULT_ROUNDS). */
  epochs?: number;
  rounds?: number;
  /** Linear-probe epochs (default the shapes probe recipe's). */
  probeEpochs?: number;
  /**
   * The DeepLab backbone's initialisation: "maskrcnn" (default: stage iii's Mask R-CNN body), "none" (random) or
   * a torchvision ResNet-50 file of the recipe's width (e.g. a self-supervised one, as the paper's MoCo v2).
   */
  deeplabInit?: string;
  threads?: number;
  onProgress?: (what: string) => void;
  onStep?: (what: string, step: number, total: number, loss: number) => void;
}

export interface SemsegRow {
  method: string;
  /** mIoU % over the K + 1 classes (background included), one decimal. */
  miou: number;
  /** With the dense CRF on the logits (null: not run). */
  miouCrf: number | null;
}

export interface ShapesStageV {
  trainImages: number;
  valImages: number;
  /** Stage iv: pseudo-labels of the train images against their GT labels (direct mIoU %). */
  pseudoLabels: { miou: number; pixelAcc: number; imagesWithDetections: number; backgroundOnly: number };
  /** What DeepLab's backbone started from: "maskrcnn" (stage iii's body), "none" or the ResNet-50 file. */
  init: string;
  /** DeepLab: loss over the first and last 20 steps of round 0, steps per round; wall seconds of stages iv–v. */
  lossStart: number;
  lossEnd: number;
  stepsPerRound: number;
  seconds: number;
  /** Val rows: each round (argmax, + CRF), the untrained DeepLab, the linear probe. */
  rounds: SemsegRow[];
  untrained: SemsegRow;
  linearProbe: SemsegRow & { trainImages: number; epochs: number };
}

const round1 = (x: number) => Math.round(1000 * x) / 10;

/** A shortened or lengthened schedule keeps the recipes' shape: lr ×0.1 for the last epoch only. */
const lastEpochDecay = (epochs: number) => (epochs > 1 ? [epochs - 2] : []);

export async function runShapesStageV(opts: ShapesStageVOptions): Promise<ShapesStageV> {
  const t0 = Date.now();
  const progress = (what: string) => opts.onProgress?.(what);
  const trainGtFile = path.join(opts.world, "instances_train.json"), valGtFile = path.join(opts.world, "instances_val.json");
  for (const f of [trainGtFile, valGtFile]) if (!fs.existsSync(f)) throw new MaskdistillError("missing: is this a make-shapes folder?", f);
  fs.mkdirSync(opts.out, { recursive: true });
  const trainGt = readCocoDataset(trainGtFile), valGt = readCocoDataset(valGtFile);
  let trainImages = cocoImages(trainGtFile, opts.world, trainGt), valImages = cocoImages(valGtFile, opts.world, valGt);
  if (opts.trainLimit) trainImages = trainImages.slice(0, opts.trainLimit);
  if (opts.valLimit) valImages = valImages.slice(0, opts.valLimit);

  const { initEngine } = await import("../engine/index.js");
  await initEngine({ backend: "wasm", threads: opts.threads ?? 1 });
  const tf = await import("@tensorflow/tfjs");

  // stage iv: detections on the train images → semantic pseudo-labels (label = 1 + class index = the world's ids)
  const detFile = path.join(opts.out, "detections_train.json");
  {
    const { loadMaskRcnnModel } = await import("../instance/detect.js");
    const { maskRcnnVariables } = await import("../engine/models/maskrcnn.js");
    progress(`stage iv: detecting on ${trainImages.length} train images with the stage-iii Mask R-CNN`);
    const net = (await loadMaskRcnnModel(opts.maskRcnn.modelFile)).net;
    try {
      await detectShapes({ net, images: trainImages, out: detFile, categories: trainGt.categories.map((c) => ({ id: c.id, name: c.name })), categoryIds: opts.maskRcnn.categoryIds, name: "train", weightsId: opts.maskRcnn.modelSha256,
        // one object per scene: stage iv keeps the top detection (or those ≥ 0.9), so 10 per image is plenty and
        // the mask head and RLE encoding run on a tenth of detectron2's 100
        detectionsPerImage: 10, workers: opts.threads });
    } finally {
      tf.dispose(maskRcnnVariables(net));
    }
  }
  // gen-segmentation paints 1 + category_id: the world's category ids are 1..K, its label values too
  const results = readCocoResults(detFile, undefined, { anyCategory: true });
  const asLabels = path.join(opts.out, "detections_train.labels.json");
  writeFileAtomic(asLabels, JSON.stringify(results.map((r) => ({ ...r, category_id: r.category_id - 1 }))));
  const trainSubset = path.join(opts.out, "gt_train.json");
  writeFileAtomic(trainSubset, JSON.stringify(cocoSubsetByIds(trainGt, trainImages.map((im) => im.id))));
  const labelsDir = path.join(opts.out, "pseudo-labels");
  progress(`stage iv: painting the pseudo-labels of ${trainImages.length} train images (gen-segmentation)`);
  const { genSegmentation } = await import("../pseudolabels/genSegmentation.js");
  const gen = await genSegmentation({ inputFile: asLabels, gtFile: trainSubset, outputDir: labelsDir, resume: true, quiet: true });

  const listFile = (name: string, stems: string[]) => {
    const f = path.join(opts.out, `${name}.txt`);
    writeFileAtomic(f, stems.join("\n") + "\n");
    return f;
  };
  const { segmentationItems } = await import("../segmentation/data.js");
  const stemOf = (im: { file: string }) => path.parse(im.file).name;
  const imagesDir = path.join(opts.world, "JPEGImages"), gtDir = path.join(opts.world, "SegmentationClass");
  const trainList = listFile("train", trainImages.map(stemOf)), valList = listFile("val", valImages.map(stemOf));
  const train: SegmentationItem[] = segmentationItems({ images: imagesDir, labels: labelsDir, list: trainList });
  const trainGtItems = segmentationItems({ images: imagesDir, labels: gtDir, list: trainList });
  const val = segmentationItems({ images: imagesDir, labels: gtDir, list: valList }, "val set");
  const { scoreFolder, trainWithCrfRounds } = await import("../segmentation/rounds.js");
  const { shapesRecipe, initTrainState, disposeTrainState, stepsPerEpoch } = await import("../segmentation/train.js");
  const init = (opts.deeplabInit ?? "maskrcnn") === "maskrcnn" ? opts.maskRcnn.modelFile : opts.deeplabInit!;
  const config: DeepLabTrainConfig = { ...shapesRecipe(init),
    ...(opts.epochs ? { epochs: opts.epochs, decayEpochs: lastEpochDecay(opts.epochs) } : {}) };
  const k = config.numClasses;
  // the pseudo-labels against the train GT (labels are already class ids)
  const pseudoScore = scoreFolder(labelsDir, trainGtItems, k);

  // stage v: DeepLab + CRF rounds
  const roundsDir = path.join(opts.out, "deeplab");
  let roundNow = 0;
  const rounds = await trainWithCrfRounds({
    outDir: roundsDir, train, val, config, rounds: opts.rounds ?? SHAPES_DEFAULT_ROUNDS, resume: true, quiet: true, workers: opts.threads,
    hooks: {
      onPhase: (r, what) => { roundNow = r; progress(`stage v, round ${r}: ${what}`); },
      onStep: (log: StepLog) => opts.onStep?.(`train-deeplab round ${roundNow}`, log.step, stepsPerEpoch(config, train.length) * config.epochs, log.loss),
    },
  });
  if (!rounds.complete) throw new MaskdistillError("DeepLab training stopped before the end of its schedule; rerun to resume", roundsDir);
  const { segmentFolder } = await import("../segmentation/segmentFolder.js");
  const { MODEL_FILE, LOG_FILE } = await import("../segmentation/train.js");

  // the same DeepLab untrained (its initialisation: the backbone as above, the head at the recipe's seeded init),
  // on the first 100 val images as stage iii's untrained row: a floor, not a figure to read closely
  const untrainedVal = val.slice(0, 100);
  progress(`stage v: the untrained DeepLab on ${untrainedVal.length} val images`);
  const untrainedState = await initTrainState(config, []);
  let untrained: SemsegRow;
  try {
    const dir = path.join(opts.out, "untrained_val");
    await segmentFolder({ model: untrainedState.model, items: untrainedVal, outDir: dir, size: config.inputSize, resume: true, quiet: true, weightsId: `untrained (seed ${config.seed}, backbone init ${init})`, workers: opts.threads });
    const s = scoreFolder(dir, untrainedVal, k);
    untrained = { method: `the same DeepLab, untrained${untrainedVal.length < val.length ? ` (first ${untrainedVal.length} val images)` : ""}`, miou: round1(s.miou), miouCrf: null };
  } finally {
    disposeTrainState(untrainedState);
  }

  // LC: linear probe on the last round's frozen DeepLab, trained on the train GT labels
  const probe = await import("../segmentation/linearProbe.js");
  const recipe = { ...probe.LINEAR_PROBE_RECIPES.shapes, ...(opts.probeEpochs ? { epochs: opts.probeEpochs, lrDecayEpochs: lastEpochDecay(opts.probeEpochs) } : {}) };
  const lastModel = path.join(roundsDir, `round${rounds.results.length - 1}`, MODEL_FILE);
  const probeDir = path.join(opts.out, "linear-probe");
  const probeSummaryFile = path.join(probeDir, probe.SUMMARY_FILE);
  let lc: { miou: number; miouCrf: number | null };
  if (fs.existsSync(probeSummaryFile)) {
    const s = JSON.parse(fs.readFileSync(probeSummaryFile, "utf8")) as { miou: number; miou_crf: number | null };
    lc = { miou: s.miou, miouCrf: s.miou_crf };
  } else {
    progress(`linear probe: a 1×1 classifier on the frozen round-${rounds.results.length - 1} DeepLab, ${recipe.epochs} epochs on the train GT labels`);
    const frozen = await probe.loadFrozenDeepLab(lastModel);
    const data = { train: trainGtItems.map((it) => ({ id: it.name, image: it.image, label: it.label! })), val: val.map((it) => ({ id: it.name, image: it.image, label: it.label! })), description: `shapes world ${opts.world}` };
    const state = await probe.trainLinearProbe({
      outDir: probeDir, data, frozen: frozen.model, resume: true,
      config: { recipe, classes: k, seed: 0, weights: lastModel, fingerprint: frozen.fingerprint },
      onStep: (log, _s, total) => opts.onStep?.("linear probe", log.step, total, log.loss),
    });
    try {
      progress(`linear probe: scoring ${val.length} val images (with the CRF too)`);
      const ev = await probe.evaluateLinearProbe(state.model, data.val, { size: recipe.inputSize, crf: true, classes: k });
      const logLines = probe.readProbeLog(path.join(probeDir, probe.LOG_FILE));
      const { SHAPE_CLASSES } = await import("./geometry.js");
      const summary = probe.probeSummary(state, ev, { command: "npx maskdistill demo --world shapes", data: data.description, trainImages: data.train.length, finalLoss: logLines.at(-1)?.loss ?? null,
        classNames: ["background", ...SHAPE_CLASSES] });
      writeFileAtomic(probeSummaryFile, JSON.stringify(summary, null, 1) + "\n");
      lc = { miou: ev.plain.miou, miouCrf: ev.crf?.miou ?? null };
    } finally {
      probe.disposeProbeHead(state);
      tf.dispose([...probe.frozenVariables(state.model), frozen.model.head.classifier, frozen.model.head.classifierBias]);
    }
  }

  const log0 = fs.readFileSync(path.join(roundsDir, "round0", LOG_FILE), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { loss?: number })
    .filter((l): l is { loss: number } => typeof l.loss === "number");
  const loss0 = lossAtEnds(log0);
  return {
    trainImages: train.length, valImages: val.length, init: opts.deeplabInit ?? "maskrcnn",
    pseudoLabels: { miou: round1(pseudoScore.miou), pixelAcc: round1(pseudoScore.pixelAcc), imagesWithDetections: gen.imagesWithDetections, backgroundOnly: gen.backgroundOnly },
    lossStart: loss0.start, lossEnd: loss0.end,
    stepsPerRound: stepsPerEpoch(config, train.length) * config.epochs,
    seconds: Math.round((Date.now() - t0) / 1000),
    rounds: rounds.results.map((r) => ({
      method: r.round === 0 ? "stage v: DeepLab trained on the stage-iv pseudo-labels" : `stage v: CRF round ${r.round} (trained on round ${r.round - 1}'s CRF labels)`,
      miou: round1(r.valMiou ?? 0), miouCrf: r.valMiouCrf === null ? null : round1(r.valMiouCrf),
    })),
    untrained,
    linearProbe: { method: "linear probe (LC): 1×1 classifier on the frozen DeepLab, train GT labels", miou: round1(lc.miou), miouCrf: lc.miouCrf === null ? null : round1(lc.miouCrf), trainImages: trainGtItems.length, epochs: recipe.epochs },
  };
}
