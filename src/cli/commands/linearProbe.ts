// `maskdistill linear-probe`: the paper's "LC" evaluation (METHOD.md §6.2) — the stage-v DeepLab frozen,
// head[4] re-initialised and trained on ground truth, then mIoU on val with and without the CRF.
import * as fs from "node:fs";
import * as path from "node:path";
import type { Command } from "../command.js";
import { numberFlag, parseFlags, printJson, abortOnSignals, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";
import { progress } from "../progress.js";

const usage = `usage: maskdistill linear-probe --weights DEEPLAB --out DIR
                              (--dataset voc --dataset-root DIR [--train-set trainaug] [--val-set val]
                               | --images DIR --labels DIR --train-split FILE --val-split FILE)
                              [--recipe multi_obj|multi_obj_avg|cpu|shapes] [--epochs N] [--lr X] [--crf]
                              [--classes 21] [--seed 0] [--widths BACKBONE,ASPP]
                              [--limit N] [--val-limit N] [--resume] [--max-steps N] [--eval-only] [--json]

Linear probe of a stage-v DeepLab-v3 (the reference's linear_finetune.py): the whole network frozen in
eval mode, only the head's last 1×1 conv (head[4], 256 → classes) re-initialised N(0, 0.01), bias 0, and
trained with plain cross-entropy (ignore 255), SGD lr 0.1, momentum 0.9, weight decay 1e-4, the stage-v
augmentation; the last epoch is kept. Then val predictions at the original size (argmax, and with
--crf MaskDistill's dense CRF) and their mIoU.

  --weights FILE       the DeepLab-v3 (reference or torchvision naming; .pth/.pth.tar/.safetensors);
                       loaded strictly (a missing or unexpected tensor is an error naming it);
                       seeded:N = a DeepLab with weights drawn from seed N (the untrained baseline: how much a
                       probe gets from random features; --widths sets its width)
  --dataset voc        VOC: JPEGImages + SegmentationClassAug (else SegmentationClass); splits from
                       ImageSets/Segmentation or the reference's lists (data/splits/voc)
  --dataset-root DIR   VOC2012, VOCdevkit or its parent    --train-set / --val-set (trainaug / val)
  --images, --labels   any image folder and label folder (<stem>.png, 255 = ignore), with
  --train-split, --val-split  lists of stems
  --recipe NAME        multi_obj: batch 16, 60 epochs, lr ×0.1 after epoch 25, 512² (linear_deeplab.yml)
                       multi_obj_avg: batch 24, 45 epochs, lr ×0.1 after epoch 25, 512² (the README's 62.77)
                       cpu (default): batch 8, 3 epochs, lr ×0.1 after epoch 1, 128² (demo data on a CPU)
                       shapes: batch 8, 4 epochs, lr 0.1 ×0.1 after epoch 2, 96² (the shapes world)
  --epochs N           train N epochs instead of the recipe's (its lr steps stay where they are)
  --lr X               base learning rate instead of the recipe's
  --widths B,A         --weights seeded:N only: stem and ASPP widths (default 64,256 = ResNet-50 / DeepLab-v3;
                       16,64 = train-deeplab --recipe shapes)
  --crf                also evaluate with the CRF (summary: miou_crf, per_class_crf)
  --classes N          classes of the ground truth (default 21)
  --limit N            train on the first N training images only   --val-limit N  evaluate N val images
  --resume             continue OUT/checkpoint.safetensors (same weights, data and recipe)
  --max-steps N        stop after N steps in this sitting (checkpointed; --resume continues)
  --eval-only          --weights is already a probe (OUT of a previous run: model.safetensors): evaluate it
  --json               last stdout line: the summary

Writes OUT/checkpoint.safetensors (head[4] + momentum, every 5 minutes, at the end, on Ctrl-C),
OUT/train_log.jsonl, OUT/model.safetensors (the whole DeepLab with the trained head[4]),
OUT/val/plain/<id>.png, OUT/val/crf/<id>.png and OUT/summary.json (mIoU ± CRF, per-class IoU, confusion).`;

const command: Command = {
  name: "linear-probe",
  summary: "linear probe (LC mIoU ± CRF) of a stage-v DeepLab: only head[4] trains, on ground truth",
  usage,
  async run(argv) {
    const { values } = parseFlags("linear-probe", argv, {
      weights: { type: "string" },
      out: { type: "string" },
      dataset: { type: "string" },
      "dataset-root": { type: "string" },
      year: { type: "string" },
      "train-set": { type: "string" },
      "val-set": { type: "string" },
      images: { type: "string" },
      labels: { type: "string" },
      "train-split": { type: "string" },
      "val-split": { type: "string" },
      recipe: { type: "string" },
      epochs: { type: "string" },
      lr: { type: "string" },
      widths: { type: "string" },
      crf: { type: "boolean" },
      classes: { type: "string" },
      seed: { type: "string" },
      limit: { type: "string" },
      "val-limit": { type: "string" },
      resume: { type: "boolean" },
      "max-steps": { type: "string" },
      "eval-only": { type: "boolean" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("linear-probe", values, ["weights", "out"]);
    const lp = await import("../../segmentation/linearProbe.js");
    const recipeName = values.recipe ?? "cpu";
    if (!(recipeName in lp.LINEAR_PROBE_RECIPES)) throw new MaskdistillError(`--recipe expects ${Object.keys(lp.LINEAR_PROBE_RECIPES).join(", ")}, got '${recipeName}'`);
    const base = lp.LINEAR_PROBE_RECIPES[recipeName as keyof typeof lp.LINEAR_PROBE_RECIPES];
    const integer = (name: string, v: string | undefined, fallback: number, min: number): number => {
      const x = numberFlag(name, v, fallback);
      if (!Number.isInteger(x) || x < min) throw new MaskdistillError(`--${name} expects an integer ≥ ${min}, got '${v}'`);
      return x;
    };
    const classes = integer("classes", values.classes, 21, 2);
    const seed = integer("seed", values.seed, 0, 0);
    const limit = values.limit === undefined ? undefined : integer("limit", values.limit, 0, 1);
    const valLimit = values["val-limit"] === undefined ? undefined : integer("val-limit", values["val-limit"], 0, 1);
    const maxSteps = values["max-steps"] === undefined ? undefined : integer("max-steps", values["max-steps"], 0, 1);
    const lr = numberFlag("lr", values.lr, base.lr);
    if (!(lr > 0)) throw new MaskdistillError(`--lr expects a positive number, got '${values.lr}'`);
    const recipe = { ...base, epochs: integer("epochs", values.epochs, base.epochs, 1), lr };
    const seeded = /^seeded:(\d+)$/.exec(values.weights);
    if (values.widths !== undefined && !seeded) throw new MaskdistillError("--widths is for --weights seeded:N only (a checkpoint's widths are read from its tensors)");
    const w = values.widths?.split(",").map(Number);
    if (w && (w.length !== 2 || !w.every((x) => Number.isInteger(x) && x >= 1))) throw new MaskdistillError(`--widths expects two integers BACKBONE,ASPP (e.g. 16,64), got '${values.widths}'`);
    const widths = w ? { backbone: w[0], aspp: w[1] } : undefined;

    let data;
    if ((values.dataset ?? (values.images ? "folder" : undefined)) === "voc") {
      if (!values["dataset-root"]) throw new MaskdistillError("--dataset voc needs --dataset-root DIR");
      data = lp.probeDataFromVoc(values["dataset-root"], { year: values.year, trainSet: values["train-set"], valSet: values["val-set"] });
    } else if (values.images) {
      if (!values.labels || !values["train-split"] || !values["val-split"]) throw new MaskdistillError("--images needs --labels, --train-split and --val-split");
      data = lp.probeDataFromFolders(values.images, values.labels, values["train-split"], values["val-split"]);
    } else {
      throw new MaskdistillError("give --dataset voc --dataset-root DIR, or --images DIR --labels DIR --train-split FILE --val-split FILE");
    }

    const { initEngine } = await import("../../engine/index.js");
    await initEngine({});
    const outDir = values.out;
    const t0 = Date.now();
    const frozen = seeded
      ? { ...(await lp.seededFrozenDeepLab(Number(seeded[1]), classes, widths)), layout: "seeded random", sourceClasses: classes }
      : await lp.loadFrozenDeepLab(values.weights);
    const config = { recipe, classes, seed, weights: seeded ? values.weights : path.resolve(values.weights), fingerprint: frozen.fingerprint };
    const commandLine = `npx maskdistill linear-probe ${argv.join(" ")}`;
    const controller = new AbortController();
    const removeSignals = abortOnSignals(controller, "linear-probe");
    try {
      let state;
      if (values["eval-only"]) {
        if (frozen.sourceClasses !== classes) throw new MaskdistillError(`--eval-only: the checkpoint has ${frozen.sourceClasses} classes, --classes is ${classes}`, values.weights);
        state = { config, model: frozen.model, momentum: new Map(), step: 0, trainSeconds: 0, trainIds: [] };
      } else {
        const train = limit !== undefined ? data.train.slice(0, limit) : data.train;
        const per = lp.stepsPerEpoch(config, train.length);
        console.log(`linear-probe: ${frozen.layout} DeepLab ${values.weights} (fingerprint ${frozen.fingerprint}); recipe ${recipe.name}: ` +
          `batch ${recipe.batchSize}, ${recipe.epochs} epochs × ${per} steps, ${recipe.inputSize}²; ${train.length} training images`);
        const bar = progress("linear-probe", per * recipe.epochs);
        let started = false;
        state = await lp.trainLinearProbe({
          outDir, data, config, frozen: frozen.model, resume: !!values.resume, limit, maxSteps, signal: controller.signal,
          onStep(log, s, total) {
            if (!started) { bar.tick(s.step - 1); started = true; }
            bar.tick(1, `epoch ${log.epoch.toFixed(2)} lr ${log.lr} loss ${log.loss.toFixed(4)} (${log.imagesPerSecond.toFixed(2)} img/s)`);
            void total;
          },
        });
        bar.stop();
        if (controller.signal.aborted || state.step < per * recipe.epochs) {
          console.log(`linear-probe: stopped at step ${state.step} of ${per * recipe.epochs}; checkpoint ${path.join(outDir, lp.CHECKPOINT_FILE)} (--resume continues)`);
          return controller.signal.aborted ? 130 : 0;
        }
        console.log(`linear-probe: model ${await lp.saveProbeModel(state, outDir)}`);
      }
      const valItems = valLimit !== undefined ? data.val.slice(0, valLimit) : data.val;
      const bar = progress("linear-probe val", valItems.length);
      const ev = await lp.evaluateLinearProbe(state.model, valItems, {
        size: recipe.inputSize, crf: !!values.crf, classes, predictionsDir: path.join(outDir, "val"), signal: controller.signal, onImage: (id) => bar.tick(1, id),
      });
      bar.stop();
      const log = lp.readProbeLog(path.join(outDir, lp.LOG_FILE));
      const summary = lp.probeSummary(state, ev, {
        command: commandLine, data: data.description, trainImages: state.trainIds.length,
        finalLoss: log.length ? log[log.length - 1].loss : null,
      });
      fs.mkdirSync(outDir, { recursive: true });
      fs.writeFileSync(path.join(outDir, lp.SUMMARY_FILE), JSON.stringify(summary, null, 1) + "\n");
      console.log(`linear-probe: val mIoU ${(100 * summary.miou).toFixed(2)}${summary.miou_crf !== null ? `, with CRF ${(100 * summary.miou_crf).toFixed(2)}` : ""} ` +
        `on ${ev.images} images (${((Date.now() - t0) / 1000).toFixed(0)} s in all) → ${path.join(outDir, lp.SUMMARY_FILE)}`);
      if (values.json) printJson(summary);
    } finally {
      removeSignals();
    }
    return 0;
  },
};
export default command;
