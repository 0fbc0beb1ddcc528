// `maskdistill cluster`: stage (ii), the reference's utils/cluster.py — CLS embeddings of the mask
// crops, K-means into pseudo classes, and (with ground truth) the cluster naming and ACC/NMI/ARI.
import type { Command } from "../command.js";
import { numberFlag, parseFlags, parseShard, printJson, abortOnSignals, SHARD_FLAGS, SHARD_USAGE } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill cluster --input-file1 MASKS.json --dataset-root1 DIR --output-file OUT.json
                         [--dataset voc|coco] [--num-classes 20] [--overcluster 1] [--seed 1234]
                         [--gt-file1 GT.json] [--input-file2 F --dataset-root2 DIR [--gt-file2 GT.json]]
                         [--save-dir clusters/] [--weights dino_vits8|FILE] [--patch-size 8]
                         [--batch-size 8] [--device cpu|cuda|auto] [--quiet] [--json]
       maskdistill cluster --embed-only [--shard i/n|auto] --input-file1 MASKS.json --dataset-root1 DIR ...

Clusters the stage-i object masks into pseudo classes (MaskDistill stage ii): each mask's box is cropped
from the original image, embedded with the CLS token of a DINO ViT-S/8, whitened + L2-normalised, and
grouped by MiniBatchKMeans (k-means++, batch 1000, 3 inits, 100 iterations, seeded).

Outputs:
  OUT.json              the masks with category_id = raw cluster id (the unsupervised result)
  OUT.matched.json      with ground truth: category_id = the class matched to the cluster (the reference's
                        output: VOC object ids 0..19, or COCO category ids), Hungarian when clusters =
                        classes, majority when over-clustering; ACC, NMI and ARI are printed
  OUT.errors.jsonl      annotations that were skipped (degenerate box, missing image, ...)
  SAVE_DIR/             embedding cache (re-clustering is instant) and summary.json

Scaling out: 'cluster --embed-only --shard i/n' (one array task per shard) embeds the masks of the
images j with j % n == i into its own cache, SAVE_DIR/features1-….shard-i-of-n.json; the cluster run
after them (same inputs and --save-dir, no --shard) takes every shard cache in, embeds nothing, and
writes the bytes a single run writes.

  --dataset voc|coco       class set (VOC: 20 classes; COCO: the GT file's categories, 80)
  --num-classes N          must equal the dataset's classes (default: 20 VOC, the GT's count for COCO)
  --overcluster M          make M × num-classes clusters, named by majority vote (default 1)
  --input-file1 F          stage-i masks (gen-masks output); a results list without 'images' needs --gt-file1
  --dataset-root1 DIR      VOC: VOC2012 (or VOCdevkit / its parent; GT from Annotations/);
                           COCO or a plain folder: the images (or DIR/images)
  --gt-file1 F             COCO instances JSON: GT boxes for naming/scoring (COCO; VOC without Annotations/,
                           COCO category names mapped to VOC classes)
  --input-file2, --dataset-root2, --gt-file2
                           a support set: clustered together with input 1, not written out
  --output-file OUT        output JSON (required)
  --save-dir DIR           embedding cache and summary (default clusters/)
  --seed S                 K-means seed (default 1234, the reference's)
  --weights NAME|FILE      backbone (default dino_vits8, see 'maskdistill weights')
  --patch-size 8|16        checked against the checkpoint (default 8)
  --batch-size N           crops of one padded size embedded together (default 8)
  --device cpu|cuda|auto   where the backbone runs (default auto)
  --embed-only             only fill the embedding cache (no k-means, no --output-file needed)
${SHARD_USAGE}
                           (with --embed-only)
  --quiet                  no progress lines
  --json                   last stdout line: the summary as JSON`;

/** The reference names datasets like 'VOCClass' / 'COCO20k': any name containing voc or coco. */
function datasetOf(name: string): "voc" | "coco" {
  const up = name.toUpperCase();
  if (up.includes("VOC")) return "voc";
  if (up.includes("COCO")) return "coco";
  throw new MaskdistillError(`--dataset expects voc or coco, got '${name}'`);
}

function positiveInteger(name: string, value: string | undefined, fallback: number): number {
  const v = numberFlag(name, value, fallback);
  if (!Number.isInteger(v) || v < 1) throw new MaskdistillError(`--${name} expects a positive integer, got '${value}'`);
  return v;
}

const command: Command = {
  name: "cluster",
  summary: "Stage ii: cluster the masks into pseudo classes (ViT-S/8 CLS + MiniBatchKMeans; ACC/NMI/ARI with GT)",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("cluster", argv, {
      dataset: { type: "string" },
      "num-classes": { type: "string" },
      overcluster: { type: "string" },
      "patch-size": { type: "string" },
      "dataset-root1": { type: "string" },
      "dataset-root2": { type: "string" },
      "input-file1": { type: "string" },
      "input-file2": { type: "string" },
      "gt-file1": { type: "string" },
      "gt-file2": { type: "string" },
      "output-file": { type: "string" },
      "save-dir": { type: "string" },
      seed: { type: "string" },
      weights: { type: "string" },
      "batch-size": { type: "string" },
      device: { type: "string" },
      quiet: { type: "boolean" },
      "embed-only": { type: "boolean" },
      ...SHARD_FLAGS,
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const need = (flag: string, v: string | undefined): string => {
      if (!v) throw new MaskdistillError(`--${flag} is required. Run 'maskdistill cluster --help' for the flags.`);
      return v;
    };
    const inputFile1 = need("input-file1", values["input-file1"]);
    const datasetRoot1 = need("dataset-root1", values["dataset-root1"]);
    const embedOnly = !!values["embed-only"];
    const shard = parseShard(values.shard, values["shard-count"]);
    if (shard.count > 1 && !embedOnly) {
      throw new MaskdistillError("--shard goes with --embed-only: k-means needs every embedding. Run 'cluster --embed-only --shard i/n' per shard, then cluster without --shard");
    }
    const outputFile = embedOnly ? values["output-file"] ?? "" : need("output-file", values["output-file"]);
    if (!embedOnly && !/\.json$/i.test(outputFile)) throw new MaskdistillError(`--output-file should end in .json (the mapped and error files go beside it), got '${outputFile}'`);
    const dataset = datasetOf(values.dataset ?? "voc");
    const numClasses = values["num-classes"] === undefined ? undefined : positiveInteger("num-classes", values["num-classes"], 20);
    const overcluster = positiveInteger("overcluster", values.overcluster, 1);
    const patch = numberFlag("patch-size", values["patch-size"], 8);
    if (patch !== 8 && patch !== 16) throw new MaskdistillError(`--patch-size expects 8 or 16, got '${values["patch-size"]}'`);
    const seed = numberFlag("seed", values.seed, 1234);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new MaskdistillError(`--seed expects an integer in [0, 2^32 - 1], got '${values.seed}'`);
    const batchSize = positiveInteger("batch-size", values["batch-size"], 8);
    const device = values.device ?? "auto";
    if (device !== "cpu" && device !== "cuda" && device !== "auto") throw new MaskdistillError(`--device expects cpu, cuda or auto, got '${device}'`);
    let support;
    if (values["input-file2"]) {
      support = { inputFile: values["input-file2"], datasetRoot: need("dataset-root2", values["dataset-root2"]), gtFile: values["gt-file2"] };
    } else if (values["dataset-root2"] || values["gt-file2"]) {
      throw new MaskdistillError("--dataset-root2 / --gt-file2 need --input-file2 (the support set's masks)");
    }
    const saveDir = values["save-dir"] ?? "clusters";
    const weights = values.weights ?? "dino_vits8";

    // a bad output location fails now, not after the embedding and k-means
    const { checkOutputLocation } = await import("../../runner/perImage.js");
    if (!embedOnly) checkOutputLocation(outputFile);
    const { loadBackbone } = await import("../../modeling/backbone.js");
    const { runClustering, embedMasks } = await import("../../cluster/run.js");
    const { progress } = await import("../progress.js");
    const backbone = await loadBackbone(weights, { patch, device });

    const bars = new Map<string, ReturnType<typeof progress>>();
    const labels = { embed1: "embed (input 1)", embed2: "embed (input 2)", kmeans: "k-means steps" } as const;
    const controller = new AbortController();
    const removeSignals = abortOnSignals(controller, "cluster");
    const onProgress = (stage: keyof typeof labels, done: number, total: number, info?: string) => {
      let bar = bars.get(stage);
      if (!bar) bars.set(stage, (bar = progress(labels[stage], total, { quiet: values.quiet })));
      bar.tick(1, info ?? "");
      if (done === total) bar.stop();
    };
    const primary = { inputFile: inputFile1, datasetRoot: datasetRoot1, gtFile: values["gt-file1"] };
    let run: Awaited<ReturnType<typeof runClustering>> | undefined;
    let embedding: Awaited<ReturnType<typeof embedMasks>> | undefined;
    try {
      if (embedOnly) {
        embedding = await embedMasks({ dataset, primary, support, backbone, saveDir, batchSize, shard, signal: controller.signal, onProgress });
      } else {
        run = await runClustering({
          dataset, numClasses, overcluster, seed, backbone, outputFile, saveDir, batchSize, primary, support, signal: controller.signal, onProgress,
        });
      }
    } finally {
      removeSignals();
      for (const bar of bars.values()) bar.stop();
      await backbone.dispose();
    }
    if (embedding) {
      const e = embedding;
      for (const note of e.notes) console.log(`note: ${note}`);
      console.log(
        `cluster --embed-only${e.shard.count > 1 ? ` (shard ${e.shard.index} of ${e.shard.count})` : ""}: ${e.masks.primary + e.masks.support} masks ` +
          `(${e.masks.fromCache} from the cache, ${e.masks.embedded} embedded` + (e.cropsPerSecond ? ` at ${e.cropsPerSecond.toFixed(2)} crops/s` : "") +
          `, ${e.masks.skipped} skipped) -> ${e.cacheFiles.join(", ")}`,
      );
      if (values.json) printJson(e);
      return 0;
    }
    const s = run!.summary;
    for (const note of s.notes) console.log(`note: ${note}`);
    console.log(
      `cluster: ${s.masks.clustered} masks (${s.masks.fromCache} from the cache, ${s.masks.embedded} embedded` +
        (s.cropsPerSecond ? ` at ${s.cropsPerSecond.toFixed(2)} crops/s` : "") +
        `, ${s.masks.skipped} skipped) -> ${s.clusters} clusters in ${s.kmeans.steps} mini-batch steps (${s.kmeans.seconds.toFixed(2)} s)`,
    );
    if (s.scores) {
      console.log(`clusters named by ${s.scores.method} matching on ${s.scores.evaluated} masks with a GT target: ACC ${s.scores.acc.toFixed(2)}  NMI ${s.scores.nmi.toFixed(2)}  ARI ${s.scores.ari.toFixed(2)}`);
      if (s.scoresPrimary) console.log(`input 1 only (${s.scoresPrimary.evaluated} masks): ACC ${s.scoresPrimary.acc.toFixed(2)}  NMI ${s.scoresPrimary.nmi.toFixed(2)}  ARI ${s.scoresPrimary.ari.toFixed(2)}`);
    }
    console.log(`wrote ${s.outputFile}${s.matchedFile ? ` and ${s.matchedFile}` : ""}`);
    if (s.errorsFile) console.log(`${s.masks.skipped} annotations skipped: see ${s.errorsFile}`);
    if (values.json) printJson(s);
    return 0;
  },
};

export default command;
