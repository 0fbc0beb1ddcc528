// The stage i–ii targets of the shapes world (issue 19) on its val split, in one call:
//   stage i  — gen-masks with the world's backbone, scored with CorLoc and mean best-GT mask IoU, next
//              to the same architecture at its random initialisation and a centred box (50 % of the area);
//   stage ii — the masks clustered into K pseudo classes (cluster, K-means on the CLS embeddings of the
//              mask boxes), ACC / NMI / ARI against the K shape classes; and, as a diagnostic, the same
//              clustering of the GT boxes (how well the embedding separates the classes by itself).
// Writes OUT/targets.json and OUT/targets.md (a table the README includes), plus the masks and clusters.
import * as fs from "node:fs";
import * as path from "node:path";
import { cocoSubsetByIds, readCocoDataset } from "../data/coco.js";
import { cocoImages } from "../distill/imageList.js";
import { genMasks } from "../distill/genMasks.js";
import { centredBoxPrediction, scoreDiscovery, type DiscoveryScore } from "../evaluation/discovery.js";
import { loadBackbone } from "../modeling/backbone.js";
import { runClustering } from "../cluster/run.js";
import { fileSha256 } from "../modeling/session.js";
import { MaskdistillError } from "../errors.js";
import type { ShapesStageIII } from "./stageThree.js";
import type { ShapesStageV } from "./stageFive.js";

/** The issue's targets (percent). */
export const SHAPES_TARGETS = { corloc: 90, meanBestIou: 70, clusterAcc: 80, maskAp50: 50, clusteringMiou: 60, linearMiou: 75 } as const;

export interface ShapesTargetsOptions {
  /** World folder (make-shapes output). */
  world: string;
  /** Trained backbone (safetensors with its sidecar). */
  weights: string;
  /** Stage ii's backbone, when it is another one (the reference embeds with ViT-S/8, masks with S/16); default `weights`. */
  clusterWeights?: string;
  /** The same architecture at its random initialisation (optional baseline row). */
  randomWeights?: string;
  /** Stage-i short side (default: the image size, i.e. no resize). */
  resize?: number;
  /** Heads averaged for the CLS map (default 5, the reference's). */
  heads?: number;
  out: string;
  /** Split to score (default val). */
  split?: "val" | "train";
  /** Only the first N images of the split (quick looks, tests). */
  limit?: number;
  onProgress?: (what: string) => void;
}

export interface StageIRow {
  method: string;
  corloc: number;
  meanBestIou: number;
  images: number;
  predicted: number;
}

export interface ShapesTargets {
  world: string;
  split: string;
  images: number;
  weights: string;
  /** Stage ii's backbone (= weights when one backbone does both). */
  clusterWeights?: string;
  resize: number;
  stageI: StageIRow[];
  stageII: { method: string; clusters: number; evaluated: number; acc: number; nmi: number; ari: number }[];
  targets: typeof SHAPES_TARGETS;
  met: { corloc: boolean; meanBestIou: boolean; clusterAcc: boolean; maskAp50?: boolean; clusteringMiou?: boolean; linearMiou?: boolean };
  /** Stage iii (stageThree.ts), when run. */
  stageIII?: ShapesStageIII;
  /** Stages iv–v and the linear probe (stageFive.ts), when run. */
  stageV?: ShapesStageV;
  seconds: number;
}

const round1 = (x: number) => Math.round(10 * x) / 10;

function stageIRow(method: string, s: DiscoveryScore): StageIRow {
  return { method, corloc: round1(s.corloc), meanBestIou: round1(s.meanBestIou), images: s.images, predicted: s.predicted };
}

/** Runs stages i–ii on the world's split and writes targets.json / targets.md into `out`. */
export async function runShapesTargets(opts: ShapesTargetsOptions): Promise<ShapesTargets> {
  const t0 = Date.now();
  const split = opts.split ?? "val";
  const gtFile = path.join(opts.world, `instances_${split}.json`);
  if (!fs.existsSync(gtFile)) throw new MaskdistillError(`no ${split} ground truth: is this a make-shapes folder?`, gtFile);
  const gt = readCocoDataset(gtFile);
  let images = cocoImages(gtFile, opts.world, gt);
  if (opts.limit) images = images.slice(0, opts.limit);
  const ids = images.map((im) => im.id);
  const idSet = new Set(ids);
  const resize = opts.resize ?? 0;
  const heads = opts.heads ?? 5;
  fs.mkdirSync(opts.out, { recursive: true });

  const masksOf = async (weights: string, name: string) => {
    opts.onProgress?.(`stage i: ${name}`);
    const backbone = await loadBackbone(weights);
    const predJson = path.join(opts.out, `masks_${name}.json`);
    try {
      await genMasks({ images, predJson, backbone, resize, heads, resume: true, quiet: true, keepEntries: true, configTag: { weightsSha256: await fileSha256(weights), resize, heads } });
    } finally {
      await backbone.dispose();
    }
    return predJson;
  };
  const trainedMasks = await masksOf(opts.weights, "trained");
  const stageI = [stageIRow("stage i masks, trained backbone", scoreDiscovery(gt, readCocoDataset(trainedMasks).annotations, ids))];
  if (opts.randomWeights) {
    const randomMasks = await masksOf(opts.randomWeights, "random_init");
    stageI.push(stageIRow("stage i masks, same ViT at random init", scoreDiscovery(gt, readCocoDataset(randomMasks).annotations, ids)));
  }
  const boxes = gt.images.filter((im) => idSet.has(im.id)).map((im) => centredBoxPrediction(im, 0.5));
  stageI.push(stageIRow("centred box, 50 % of the image", scoreDiscovery(gt, boxes, ids)));

  // stage ii on the stage-i masks, and on the GT boxes as a diagnostic of the embedding alone
  const k = gt.categories.length;
  const gtSubset = path.join(opts.out, `gt_${split}.json`);
  fs.writeFileSync(gtSubset, JSON.stringify(cocoSubsetByIds(gt, idSet)));
  const stageII: ShapesTargets["stageII"] = [];
  const backbone = await loadBackbone(opts.clusterWeights ?? opts.weights);
  try {
    for (const [method, input, name] of [["stage ii: clusters of the stage-i masks", trainedMasks, "masks"], ["diagnostic: clusters of the GT boxes", gtSubset, "gt_boxes"]] as const) {
      opts.onProgress?.(`stage ii: ${name}`);
      const run = await runClustering({
        dataset: "coco", numClasses: k,
        primary: { inputFile: input, datasetRoot: opts.world, gtFile: gtSubset },
        backbone, outputFile: path.join(opts.out, `clusters_${name}.json`), saveDir: path.join(opts.out, `cluster-cache-${name}`),
      });
      const s = run.summary.scores;
      if (!s) throw new MaskdistillError("clustering returned no scores (no ground truth?)", gtSubset);
      stageII.push({ method, clusters: run.summary.clusters, evaluated: s.evaluated, acc: round1(s.acc), nmi: round1(s.nmi), ari: round1(s.ari) });
    }
  } finally {
    await backbone.dispose();
  }

  const ours = stageI[0], clustered = stageII[0];
  const result: ShapesTargets = {
    world: opts.world, split, images: images.length, weights: opts.weights, clusterWeights: opts.clusterWeights ?? opts.weights, resize, stageI, stageII,
    targets: SHAPES_TARGETS,
    met: { corloc: ours.corloc >= SHAPES_TARGETS.corloc, meanBestIou: ours.meanBestIou >= SHAPES_TARGETS.meanBestIou, clusterAcc: clustered.acc >= SHAPES_TARGETS.clusterAcc },
    seconds: Math.round((Date.now() - t0) / 1000),
  };
  writeTargets(result, opts.out);
  return result;
}

/** OUT/targets.json and OUT/targets.md. */
export function writeTargets(t: ShapesTargets, out: string): void {
  fs.writeFileSync(path.join(out, "targets.json"), JSON.stringify(t, null, 1) + "\n");
  fs.writeFileSync(path.join(out, "targets.md"), targetsMarkdown(t));
}

/** Adds stage iii's result (and whether it meets its target: class-aware AP50 ≥ 50 and above the stage-i masks). */
export function withStageIII(t: ShapesTargets, s: ShapesStageIII): ShapesTargets {
  const [trained, stageI] = s.rows;
  return { ...t, stageIII: s, met: { ...t.met, maskAp50: trained.ap50 >= t.targets.maskAp50 && trained.ap50 > stageI.ap50 } };
}

/**
 * Adds stages iv–v: the clustering mIoU target is met by the best round (with or without the CRF), the LC
 * target by the linear probe (with or without the CRF).
 */
export function withStageV(t: ShapesTargets, v: ShapesStageV): ShapesTargets {
  const best = (r: { miou: number; miouCrf: number | null }) => Math.max(r.miou, r.miouCrf ?? -1);
  return {
    ...t, stageV: v,
    met: { ...t.met, clusteringMiou: Math.max(...v.rounds.map(best)) >= t.targets.clusteringMiou, linearMiou: best(v.linearProbe) >= t.targets.linearMiou },
  };
}

/** The targets as a markdown table (stage i and stage ii), with the target of each figure. */
/** "(body from R.safetensors) " for a network started from a file (or a named network); nothing for random init. */
const initNote = (part: string, init: string | undefined) =>
  init && init !== "none" ? `(${part} from ${path.basename(init)}) ` : "";

export function targetsMarkdown(t: ShapesTargets): string {
  const mark = (ok: boolean) => (ok ? "✓" : "✗");
  const lines = [
    `| shapes world, ${t.split} (${t.images} images), stage i at ${t.resize > 0 ? `${t.resize} px` : "the images' size"} | CorLoc % | mean best-GT mask IoU % |`,
    "|---|---|---|",
    ...t.stageI.map((r, i) => `| ${r.method} | ${r.corloc.toFixed(1)}${i === 0 ? ` (target ≥ ${t.targets.corloc} ${mark(t.met.corloc)})` : ""} | ` +
      `${r.meanBestIou.toFixed(1)}${i === 0 ? ` (target ≥ ${t.targets.meanBestIou} ${mark(t.met.meanBestIou)})` : ""} |`),
    "",
    `| stage ii, ${t.stageII[0]?.clusters ?? 0} clusters vs the ${t.stageII[0]?.clusters ?? 0} shape classes | ACC % | NMI % | ARI % |`,
    "|---|---|---|---|",
    ...t.stageII.map((r, i) => `| ${r.method} (${r.evaluated} masks) | ${r.acc.toFixed(1)}${i === 0 ? ` (target ≥ ${t.targets.clusterAcc} ${mark(t.met.clusterAcc)})` : ""} | ${r.nmi.toFixed(1)} | ${r.ari.toFixed(1)} |`),
  ];
  const s = t.stageIII;
  if (s) {
    lines.push("",
      `| stage iii, ${t.split} (mask AP50 %, COCOeval multi protocol); Mask R-CNN ${initNote("body", s.init)}trained ${s.iterations} iterations on ${s.pseudoMasks} train pseudo-masks (stage-ii ACC ${s.trainClusterAcc.toFixed(1)} %), loss ${s.lossStart} → ${s.lossEnd} | class-aware | class-agnostic |`,
      "|---|---|---|",
      ...s.rows.map((r, i) => `| ${r.method} | ${r.ap50.toFixed(1)}${i === 0 ? ` (target ≥ ${t.targets.maskAp50} and above the stage-i masks ${mark(Boolean(t.met.maskAp50))})` : ""} | ${r.ap50Agnostic.toFixed(1)} |`));
  }
  const v = t.stageV;
  if (v) {
    const crf = (x: number | null) => (x === null ? "—" : x.toFixed(1));
    lines.push("",
      `| stages iv–v, ${t.split} (${v.valImages} images; mIoU % over the ${(t.stageII[0]?.clusters ?? 0) + 1} classes incl. background); stage iv pseudo-labels of ${v.trainImages} train images: mIoU ${v.pseudoLabels.miou.toFixed(1)} vs their labels; DeepLab ${initNote("backbone", v.init === "maskrcnn" ? "the stage-iii Mask R-CNN" : v.init)}${v.stepsPerRound} steps a round, loss ${v.lossStart} → ${v.lossEnd} | mIoU | mIoU + CRF |`,
      "|---|---|---|",
      ...v.rounds.map((r, i) => `| ${r.method} | ${r.miou.toFixed(1)}${i === 0 ? ` (target ≥ ${t.targets.clusteringMiou} in either column${v.rounds.length > 1 ? ", any round" : ""} ${mark(Boolean(t.met.clusteringMiou))})` : ""} | ${crf(r.miouCrf)} |`),
      `| ${v.untrained.method} | ${v.untrained.miou.toFixed(1)} | ${crf(v.untrained.miouCrf)} |`,
      `| ${v.linearProbe.method}, ${v.linearProbe.epochs} epochs | ${v.linearProbe.miou.toFixed(1)} (target ≥ ${t.targets.linearMiou} in either column ${mark(Boolean(t.met.linearMiou))}) | ${crf(v.linearProbe.miouCrf)} |`);
  }
  return lines.join("\n") + "\n";
}
