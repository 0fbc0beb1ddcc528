// `maskdistill demo` (`npm run demo`): the main job on the bundled demo data — stage i masks on the demo
// val split, scored against the (COCO) ground truth with the discovery metrics and COCOeval, next to
// the centred-box baseline. Resumable: rerunning continues where a killed run stopped.
import * as path from "node:path";
import * as fs from "node:fs";
import type { Command } from "../command.js";
import { numberFlag, parseFlags, printJson } from "../command.js";
import { projectPath } from "../../paths.js";
import { MaskdistillError } from "../../errors.js";
import type { ClusteringScores } from "../../cluster/naming.js";
import type { ClusterRun } from "../../cluster/run.js";
import type { DemoSummary } from "../../notebook/demoReport.js";

const usage = `usage: maskdistill demo [--split all|train|val] [--resize 640] [--weights NAME|PATH] [--cluster-weights NAME|PATH]
                        [--out DIR] [--limit N] [--json]
       maskdistill demo --world shapes [--world-dir .cache/shapes] [--out results/shapes] [--weights FILE]
                        [--cluster-weights FILE] [--stages i-ii|i-iii|i-v] [--iterations N] [--epochs N] [--train-images N]
                        [--rounds N] [--maskrcnn-init none|FILE] [--deeplab-init maskrcnn|none|FILE] [--threads 2] [--limit N]

Runs the method on the bundled demo data (data/demo: 313 real COCO images at 500 px, labels used only
for scoring):
  1. stage i  — one object mask per image from the ViT's last attention layer (gen-masks)
  2. scoring  — CorLoc and mean best-GT mask IoU, class-agnostic mask AP (single and multi protocols),
                against a centred box covering 50 % of the image
  3. stage ii — the masks' CLS embeddings clustered into 20 pseudo classes (cluster), scored with ACC,
                NMI and ARI against the VOC class of the best-overlapping GT box
Results go to --out (default results/demo): masks.json, clusters.json (+ .matched.json), summary.json,
overview.png (the best and the worst masks by mask IoU, with the GT boxes) and report.html (tables and
charts on one self-contained page).
Rerunning resumes: finished images and cached embeddings are reused.

  --split S       demo split to run on (default all: no stage trains, labels only score)
  --resize N      short side for the ViT (default 640 as the reference, or the size a bundled demo
                  backbone declares in its sidecar)
  --weights W     stage-i backbone (default: DINO ViT-S/16 if downloaded, else the bundled demo backbone,
                  else the random fixture checkpoint — the run says which)
  --cluster-weights W  stage-ii backbone (default: DINO ViT-S/8, else demo backbone, else random fixture)
  --limit N       only the first N images (quick look)
  --json          last stdout line: the summary object

--world shapes runs on the procedural shapes world instead (make-shapes; made in --world-dir when
missing): stage i on its val split with the world's bundled backbone (data/backbones/shapes_vit), the
same ViT at random initialisation and the centred box, then stage ii (K = 8 clusters vs the 8 shape
classes) with the world's stage-ii backbone (data/backbones/shapes_vit_cluster; as the reference, which
masks with DINO ViT-S/16 and embeds with ViT-S/8; --cluster-weights to change it); then stage iii
(--stages i-iii or i-v): stage-i masks of the train split, clustered (stage ii, named by the Hungarian
pairing with the train ground truth), a Mask R-CNN trained on them (train-maskrcnn --recipe shapes; --iterations to change
its length) from the world's self-supervised ResNet-50 (data/backbones/shapes_resnet50, pretrain --arch resnet50 on
the train images, as the paper's Mask R-CNN starts from a self-supervised CNN) at lr 0.02 with the stem frozen —
--maskrcnn-init FILE: another ResNet-50 file; none: random weights, at the recipe's lr 0.04 — and run on val, scored with
class-aware and class-agnostic mask AP50 next to the val stage-i masks with their stage-ii classes and
the untrained network; then stages iv–v (--stages i-v, the default): that Mask R-CNN run on the first
--train-images train images (default 500 of 3,500, to fit 15 minutes; the committed run uses 1000; 0 = all), its detections
painted into semantic pseudo-labels (gen-segmentation), a DeepLab-v3 trained on them (train-deeplab
--recipe shapes; --epochs per round; its ResNet starts from the world's ResNet-50 too, as the paper's from
MoCo v2, with conv1..layer2 frozen as the reference's — --deeplab-init maskrcnn: from the stage-iii Mask R-CNN's body;
none: random weights, every layer trained; FILE: a ResNet-50 file) and --rounds CRF rounds (default 0, to fit 15
minutes: a round takes ~8 and moved val mIoU by −3.7 to +3.2 here; --rounds 1 shows one), each
scored on val (mIoU over the K + 1 classes, with and without the CRF) next to the DeepLab untrained, and
the linear probe (a 1×1 classifier on the frozen DeepLab, trained on the train labels: LC mIoU). Writes
OUT/targets.md and targets.json (default OUT: results/shapes), stage iii's files under OUT/stage3/,
stages iv–v's under OUT/stage5/. Resumable at every step (rerun the same command).`;

const command: Command = {
  name: "demo",
  summary: "run the method on the bundled demo data and score it (npm run demo)",
  usage,
  async run(argv) {
    const { values } = parseFlags("demo", argv, {
      split: { type: "string" },
      resize: { type: "string" },
      weights: { type: "string" },
      "cluster-weights": { type: "string" },
      out: { type: "string" },
      limit: { type: "string" },
      world: { type: "string" },
      "world-dir": { type: "string" },
      stages: { type: "string" },
      iterations: { type: "string" },
      epochs: { type: "string" },
      "train-images": { type: "string" },
      rounds: { type: "string" },
      "deeplab-init": { type: "string" },
      "maskrcnn-init": { type: "string" },
      threads: { type: "string" },
    });
    for (const f of ["stages", "iterations", "epochs", "train-images", "rounds", "deeplab-init", "maskrcnn-init", "threads", "world-dir"] as const) {
      if (values[f] !== undefined && values.world === undefined) throw new MaskdistillError(`--${f} applies to --world shapes only`);
    }
    if (values.world !== undefined) {
      if (values.world !== "shapes") throw new MaskdistillError(`--world expects shapes, got '${values.world}'`);
      const { runShapesDemo } = await import("../shapesDemo.js");
      return runShapesDemo(values);
    }
    const { cocoSubsetByIds, readCocoDataset } = await import("../../data/coco.js");
    const { readSplit } = await import("../../data/voc.js");
    const { cocoImages } = await import("../../distill/imageList.js");
    const { genMasks } = await import("../../distill/genMasks.js");
    const { defaultBackbone } = await import("../../distill/backboneChoice.js");
    const { loadBackbone } = await import("../../modeling/backbone.js");
    const { scoreDiscovery, centredBoxPrediction } = await import("../../evaluation/discovery.js");
    const { evaluateInstances } = await import("../../evaluation/instances.js");

    const { runClustering } = await import("../../cluster/run.js");
    const split = values.split ?? "all";
    const out = path.resolve(values.out ?? projectPath("results", "demo"));
    const gtFile = projectPath("data", "demo", "instances.json");
    const gt = readCocoDataset(gtFile);
    const stems = split === "all" ? null : new Set(readSplit(projectPath("data", "demo", "sets", `${split}.txt`)));
    let images = cocoImages(gtFile, projectPath("data", "demo", "images"), gt).filter((im) => !stems || stems.has(path.parse(im.fileName).name));
    if (values.limit) images = images.slice(0, numberFlag("limit", values.limit, images.length));
    const ids = new Set(images.map((i) => i.id));

    const choice = values.weights ? { path: values.weights, label: values.weights, random: false, note: "", resize: undefined as number | undefined } : defaultBackbone("masks");
    console.log(`demo: ${images.length} ${split} images; backbone ${choice.label}${choice.random ? " — RANDOM WEIGHTS: " + choice.note : ""}`);
    const backbone = await loadBackbone(choice.path);
    fs.mkdirSync(out, { recursive: true });
    // a bundled demo backbone says which short side it was trained for; DINO uses the reference's 640
    const resize = numberFlag("resize", values.resize, values.weights ? 640 : choice.resize ?? 640);
    const predJson = path.join(out, "masks.json");
    const run = await genMasks({ images, predJson, backbone, resize, resume: true, configTag: { weights: choice.path } });
    await backbone.dispose();

    const preds = readCocoDataset(predJson).annotations;
    const valIds = [...ids];
    const ours = scoreDiscovery(gt, preds, valIds);
    const boxes = gt.images.filter((im) => ids.has(im.id)).map((im) => centredBoxPrediction(im, 0.5));
    const baseline = scoreDiscovery(gt, boxes, valIds);
    // class-agnostic COCOeval on the split's images only
    const sub = cocoSubsetByIds(gt, ids);
    const asResults = (anns: { image_id: number; segmentation?: unknown; bbox?: number[]; score?: number }[]) =>
      anns.map((a) => ({ image_id: a.image_id, category_id: sub.categories[0].id, score: a.score ?? 1, segmentation: a.segmentation, bbox: a.bbox })) as never[];
    const ap = (anns: never[], mostConfident: boolean) => evaluateInstances(sub, anns, { agnostic: true, mostConfident }).ap50;
    const rows = [
      { method: "stage i masks (gen-masks)", corloc: ours.corloc, meanBestIou: ours.meanBestIou, ap50Single: 100 * ap(asResults(preds), true), ap50Multi: 100 * ap(asResults(preds), false) },
      { method: "centred box, 50 % of the image", corloc: baseline.corloc, meanBestIou: baseline.meanBestIou, ap50Single: 100 * ap(asResults(boxes), true), ap50Multi: 100 * ap(asResults(boxes), false) },
    ];
    console.log(`\n${"method".padEnd(48)} CorLoc  mIoU(best GT)  AP50 single  AP50 multi`);
    for (const r of rows) console.log(`${r.method.padEnd(48)} ${r.corloc.toFixed(1).padStart(6)}  ${r.meanBestIou.toFixed(1).padStart(13)}  ${r.ap50Single.toFixed(1).padStart(11)}  ${r.ap50Multi.toFixed(1).padStart(10)}`);

    // stage ii: cluster the masks into 20 pseudo classes (demo GT: COCO categories named as VOC classes)
    const clusterChoice = values["cluster-weights"]
      ? { path: values["cluster-weights"], label: values["cluster-weights"], random: false, note: "" }
      : defaultBackbone("cluster");
    let sc: ClusteringScores | null = null, nClusters = 0;
    let clusterRun: ClusterRun | null = null;
    if (preds.length < 20) {
      console.log(`\nstage ii skipped: ${preds.length} masks are too few for 20 clusters (use more images)`);
    } else {
      console.log(`\nstage ii: embedding ${preds.length} masks with ${clusterChoice.label}${clusterChoice.random ? " (RANDOM WEIGHTS)" : ""}`);
      const vit8 = await loadBackbone(clusterChoice.path);
      const { progress } = await import("../progress.js");
      let bar: ReturnType<typeof progress> | undefined, ticked = 0;
      const clusters = await runClustering({
        dataset: "voc",
        primary: { inputFile: predJson, datasetRoot: projectPath("data", "demo"), gtFile },
        backbone: vit8,
        outputFile: path.join(out, "clusters.json"),
        saveDir: path.join(out, "cluster-cache"),
        onProgress: (stage, done, total, info) => {
          if (stage !== "embed1") return;
          bar ??= progress("embed", total);
          bar.tick(done - ticked, info);
          ticked = done;
        },
      });
      bar?.stop();
      await vit8.dispose();
      clusterRun = clusters;
      sc = clusters.scores;
      nClusters = clusters.summary.clusters;
      if (sc) console.log(`clusters: ${clusters.summary.clusters}; scored on ${sc.evaluated} masks with a VOC-class GT box: ACC ${(100 * sc.acc).toFixed(1)}  NMI ${(100 * sc.nmi).toFixed(1)}  ARI ${(100 * sc.ari).toFixed(1)}`);
    }

    const summary: DemoSummary = {
      split, images: images.length, backbone: choice.label, clusterBackbone: clusterChoice.label,
      randomWeights: choice.random || clusterChoice.random, resize,
      masks: run.masks, empty: run.empty, errors: run.errors, secondsPerImage: run.secondsPerImage, results: rows,
      clustering: sc ? { clusters: nClusters, evaluated: sc.evaluated, acc: 100 * sc.acc, nmi: 100 * sc.nmi, ari: 100 * sc.ari } : null,
      command: `npx maskdistill demo --split ${split} --resize ${resize}${values.weights ? " --weights " + values.weights : ""}${values["cluster-weights"] ? " --cluster-weights " + values["cluster-weights"] : ""}`,
    };
    fs.writeFileSync(path.join(out, "summary.json"), JSON.stringify(summary, null, 1) + "\n");
    const { writeDemoReport } = await import("../../notebook/demoReport.js");
    const report = await writeDemoReport({
      outDir: out, summary, gt, predictions: preds, imageIds: valIds, imageDir: projectPath("data", "demo", "images"), discovery: ours, clusters: clusterRun,
    });
    console.log("\noverview.png, best and worst masks by mask IoU (left to right, top to bottom):");
    for (const c of report.cases) console.log(`  ${c.rank.padEnd(8)} ${c.file}  mask IoU ${c.maskIou.toFixed(2)}  box IoU ${c.boxIou.toFixed(2)}`);
    const rel = (f: string) => path.relative(process.cwd(), f);
    console.log(`\nwrote ${rel(predJson)} and ${rel(path.join(out, "summary.json"))}`);
    console.log(`picture: ${rel(report.overview)}`);
    console.log(`report:  ${rel(report.report)}`);
    if (values.json) printJson(summary);
    return 0;
  },
};
export default command;
