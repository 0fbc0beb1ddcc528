// `maskdistill train-deeplab`: stage v, DeepLab-v3 on the pseudo-labels (src/segmentation/train.ts),
// optionally followed by CRF rounds (src/segmentation/rounds.ts). Resumable, deterministic given --seed.
import * as path from "node:path";
import type { Command } from "../command.js";
import { numberFlag, parseFlags, printJson, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill train-deeplab (--images DIR --labels DIR [--list FILE] | --voc ROOT --split NAME [--labels DIR])
                               --out DIR [--val-labels DIR --val-list FILE | --val-split NAME]
                               [--recipe reference|cpu|shapes] [--init moco_v2|FILE|none] [--crf-rounds N] [--resume] [flags]

DeepLab-v3 (ResNet-50, output stride 8) on image + label pairs, as MaskDistill's segmentation/multi_gpu.py
with configs/multi_obj/deeplab.yml: augmentation flip → scale-rotate (±5°, 0.75–1.25) → 512×512 (OpenCV
bicubic / nearest), OHEM cross-entropy (hardest 20 % of the pixels, 255 ignored), SGD lr 0.002, momentum
0.9, weight decay 1e-4 on all trained parameters, conv1..layer2 frozen in eval mode, 45 epochs, lr ×0.1
after epoch 40, MoCo v2 backbone. Writes OUT/checkpoint.safetensors (every few minutes, at every epoch end,
and on Ctrl-C / SIGTERM; --resume continues bit for bit), OUT/model.safetensors (the last epoch's weights,
reference keys: what 'segment --weights' loads), OUT/train_log.jsonl.

Batch size 1 trains, but batch norm over the image-pooling branch's 1×1 map of one image is then in
eval mode (its running statistics; every other BN uses the batch). From batch 2 on it is PyTorch's.

  --images DIR, --labels DIR   training images and label PNGs (<stem>.png, class ids, 255 ignored),
                               e.g. the stage-iv pseudo-labels of gen-segmentation
  --list FILE                  restrict to these ids (one per line); default: images with a label
  --voc ROOT --split NAME      a PASCAL VOC root (JPEGImages/, SegmentationClass/ unless --labels)
  --val-images DIR --val-labels DIR --val-list FILE | --val-split NAME (with --voc)
                               a val set with ground truth: scored after every epoch (online, at the input
                               size) and, with --crf-rounds, each round at the original size (± CRF)
  --out DIR                    work folder
  --recipe reference|cpu       reference (default): the numbers above, batch 16 at 512².
                               cpu: input 128², batch 2, 1 epoch: a smoke test of a few minutes on the
                               demo data on 2 cores (see the README's stage-v section)
                               shapes: the shapes world (make-shapes; 96² images, 9 classes): the network at
                               1/4 width (stem 16, ASPP 64, rates 2/4/6), random init with every layer trained (with
                               --init FILE: conv1..layer2 frozen, as the reference), batch 8 at 96²,
                               6 epochs at lr 0.02 (×0.1 in the last), plain cross-entropy (OHEM from scratch
                               never learns the background first)
  --init NAME|FILE|none        backbone init: moco_v2 (default; 'maskdistill weights get moco_v2_r50'),
                               a torchvision/MoCo ResNet-50 checkpoint, or none (random)
  --epochs N --decay-epochs E[,E] --batch N --size S --lr X --classes N (21) --seed N (0)
  --train-from STAGE           first trained backbone stage: stem, layer1, layer2, layer3 (the reference's: conv1..layer2
                               frozen in eval mode) or layer4; default the recipe's (shapes: stem, every layer)
  --aspp-rates A,B,C           dilations of the ASPP's three 3×3 branches (default the recipe's: 12,24,36 for the
                               reference, made for 512² inputs; shapes: 2,4,6 for its 12×12 maps). Saved in the model
                               file's metadata, so segment and linear-probe rebuild the same network
  --ohem F                     share of the hardest pixels the loss keeps (default 0.2, the reference's; 1: plain
                               cross-entropy)
  --select last|best-val       model used after training: the last epoch (default) or the epoch with the
                               best val mIoU (model_best_val.safetensors; a selection on val — say so)
  --crf-rounds N               after training, N rounds of: predict the training images with the CRF, train
                               a fresh DeepLab (same init and recipe) on those labels; OUT/round<r>/ per
                               round, OUT/rounds.json + a printed table of every round's val mIoU
  --resume                     continue the run in --out (its config; schedule flags must not change)
  --max-steps N                stop after N steps in this sitting (saved; continue with --resume; without --crf-rounds)
  --checkpoint-minutes M       minutes between checkpoints (default 3)
  --threads N                  threads for the matrix products (default 2)   --backend auto|wasm|tensorflow
  --json                       last stdout line: a JSON summary`;

const command: Command = {
  name: "train-deeplab",
  summary: "stage v: DeepLab-v3 on the pseudo-labels (OHEM, the reference's recipe), CRF rounds, resumable",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("train-deeplab", argv, {
      images: { type: "string" }, labels: { type: "string" }, list: { type: "string" }, voc: { type: "string" }, split: { type: "string" },
      "val-images": { type: "string" }, "val-labels": { type: "string" }, "val-list": { type: "string" }, "val-split": { type: "string" },
      out: { type: "string" }, recipe: { type: "string" }, init: { type: "string" }, epochs: { type: "string" }, "decay-epochs": { type: "string" }, ohem: { type: "string" }, "aspp-rates": { type: "string" }, "train-from": { type: "string" },
      batch: { type: "string" }, size: { type: "string" }, lr: { type: "string" }, classes: { type: "string" }, seed: { type: "string" },
      select: { type: "string" }, "crf-rounds": { type: "string" }, resume: { type: "boolean" }, "max-steps": { type: "string" },
      "checkpoint-minutes": { type: "string" }, threads: { type: "string" }, backend: { type: "string" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("train-deeplab", values, ["out"]);
    const int = (name: string, v: string | undefined, fallback: number, min = 0) => {
      const n = numberFlag(name, v, fallback);
      if (!Number.isInteger(n) || n < min) throw new MaskdistillError(`--${name} expects an integer ≥ ${min}, got '${v}'`);
      return n;
    };
    const stages = ["stem", "layer1", "layer2", "layer3", "layer4"] as const;
    const trainFromFlag = (v: string) => {
      const stage = stages.find((st) => st === v);
      if (!stage) throw new MaskdistillError(`--train-from expects ${stages.join(", ")}, got '${v}'`);
      return stage;
    };
    const asppRatesFlag = (v: string) => {
      const rates = v.split(",").map((r) => int("aspp-rates", r.trim(), 0, 1));
      if (rates.length !== 3) throw new MaskdistillError(`--aspp-rates expects three rates (A,B,C), got '${v}'`);
      return rates;
    };
    const backend = (values.backend ?? "auto") as "auto" | "wasm" | "tensorflow";
    if (!["auto", "wasm", "tensorflow"].includes(backend)) throw new MaskdistillError(`--backend expects auto, wasm or tensorflow, got '${values.backend}'`);
    const train = await import("../../segmentation/train.js");
    const recipe = values.recipe ?? "reference", recipes = Object.keys(train.DEEPLAB_RECIPES);
    if (!recipes.includes(recipe)) throw new MaskdistillError(`--recipe expects ${recipes.slice(0, -1).join(", ")} or ${recipes.at(-1)}, got '${recipe}'`);
    const select = values.select ?? "last";
    if (select !== "last" && select !== "best-val") throw new MaskdistillError(`--select expects last or best-val, got '${select}'`);

    const data = await import("../../segmentation/data.js");
    const outDir = path.resolve(values.out);
    const rounds = int("crf-rounds", values["crf-rounds"], 0);
    const ckpt = path.join(rounds > 0 ? path.join(outDir, "round0") : outDir, train.CHECKPOINT_FILE);
    const existing = values.resume ? await train.checkpointInfo(ckpt) : undefined;
    const base = train.DEEPLAB_RECIPES[recipe](values.init);
    const config = existing?.config ?? {
      ...base,
      epochs: int("epochs", values.epochs, base.epochs, 1),
      decayEpochs: values["decay-epochs"] !== undefined ? values["decay-epochs"].split(",").filter(Boolean).map((e) => int("decay-epochs", e, 0)) : base.decayEpochs,
      asppRates: values["aspp-rates"] !== undefined ? asppRatesFlag(values["aspp-rates"]) : base.asppRates,
      trainableFrom: values["train-from"] !== undefined ? trainFromFlag(values["train-from"]) : base.trainableFrom,
      batchSize: int("batch", values.batch, base.batchSize, 1),
      inputSize: int("size", values.size, base.inputSize, 32),
      lr: numberFlag("lr", values.lr, base.lr),
      numClasses: int("classes", values.classes, base.numClasses, 2),
      seed: int("seed", values.seed, base.seed),
      ohemThreshold: numberFlag("ohem", values.ohem, base.ohemThreshold),
      select: select as "last" | "best-val",
    };
    if (existing) {
      for (const [flag, key] of [["epochs", "epochs"], ["batch", "batchSize"], ["size", "inputSize"], ["lr", "lr"], ["ohem", "ohemThreshold"]] as const) {
        if (values[flag] !== undefined && Number(values[flag]) !== existing.config[key]) {
          throw new MaskdistillError(`train-deeplab --resume: the checkpoint has ${flag} ${existing.config[key]}; --${flag} ${values[flag]} would change the run. Drop it, or start a new --out.`, ckpt);
        }
      }
      const from = existing.config.trainableFrom ?? "layer3";
      if (values["train-from"] !== undefined && values["train-from"] !== from) {
        throw new MaskdistillError(`train-deeplab --resume: the checkpoint trains from ${from}; --train-from ${values["train-from"]} would change the run. Drop it, or start a new --out.`, ckpt);
      }
      const had = (existing.config.asppRates ?? (await import("../../engine/models/deeplab.js")).ASPP_RATES).join(",");
      if (values["aspp-rates"] !== undefined && asppRatesFlag(values["aspp-rates"]).join(",") !== had) {
        throw new MaskdistillError(`train-deeplab --resume: the checkpoint has aspp-rates ${had}; --aspp-rates ${values["aspp-rates"]} would change the run. Drop it, or start a new --out.`, ckpt);
      }
    }
    train.checkConfig(config);
    // the data: training pairs, and a val set with ground truth when given
    const trainItems = data.segmentationItems({ images: values.images, labels: values.labels, list: values.list, vocRoot: values.voc, split: values.split });
    const hasVal = values["val-labels"] || values["val-list"] || values["val-split"];
    const valItems = hasVal ? data.segmentationItems({
      images: values["val-images"] ?? values.images, labels: values["val-labels"], list: values["val-list"], vocRoot: values.voc, split: values["val-split"],
    }, "val set") : undefined;
    if (valItems && !valItems.every((v) => v.label)) throw new MaskdistillError("train-deeplab: the val set needs labels (--val-labels DIR, or --voc with --val-split)");
    if (select === "best-val" && !valItems) throw new MaskdistillError("train-deeplab: --select best-val needs a val set (--val-labels / --val-list / --val-split)");
    if (config.init !== "none") train.initFile(config.init);   // a missing download is an error before any work

    const { initEngine, engineInfo } = await import("../../engine/index.js");
    await initEngine({ backend, threads: int("threads", values.threads, 2, 1) });
    const info = engineInfo();
    if (info.backend === "cpu") throw new MaskdistillError("train-deeplab: refusing the cpu backend (too slow); install the wasm backend or tfjs-node");
    console.error(`train-deeplab: ${trainItems.length} training images${valItems ? `, ${valItems.length} val` : ""}; recipe ${recipe} ` +
      `(${config.epochs} epochs, batch ${config.batchSize}, ${config.inputSize}², init ${config.init})${rounds ? `, then ${rounds} CRF round(s)` : ""}; ` +
      `backend ${info.backend} (${info.threads} thread(s))`);

    const { progress } = await import("../progress.js");
    let bar: ReturnType<typeof progress> | undefined;
    const abort = new AbortController();
    let stoppedBy: NodeJS.Signals | undefined;
    const stop = (sig: NodeJS.Signals) => {
      if (abort.signal.aborted) process.exit(sig === "SIGINT" ? 130 : 143);
      stoppedBy = sig;
      console.error(`\ntrain-deeplab: ${sig}, stopping after this step (saving the checkpoint; again to stop at once)…`);
      abort.abort();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    const maxSteps = values["max-steps"] !== undefined ? int("max-steps", values["max-steps"], 0) : undefined;
    const checkpointSeconds = 60 * numberFlag("checkpoint-minutes", values["checkpoint-minutes"], 3);
    const hooks = {
      onStart(s: import("../../segmentation/train.js").DeepLabTrainState, st: { heapGiB?: number; resumedAt: number; totalSteps: number }) {
        console.error(`train-deeplab: ${st.resumedAt ? `resuming at step ${st.resumedAt}` : "starting"} of ${st.totalSteps}; backbone init: ${s.initLayout}` +
          (st.heapGiB !== undefined ? `; heap estimate ${st.heapGiB.toFixed(2)} GiB` : ""));
        bar?.stop();
        bar = progress("train-deeplab", Math.max(0, Math.min(st.totalSteps - st.resumedAt, maxSteps ?? Infinity)));
      },
      onStep(log: import("../../segmentation/train.js").StepLog) {
        bar?.tick(1, `epoch ${log.epoch.toFixed(2)} loss ${log.loss.toFixed(4)} acc ${(100 * log.pixelAcc).toFixed(1)} % ${log.imagesPerSecond.toFixed(2)} img/s`);
      },
      onVal(rec: import("../../segmentation/train.js").ValRecord) {
        console.error(`\ntrain-deeplab: epoch ${rec.epoch}: val mIoU ${(100 * rec.miou).toFixed(2)} (online, ${config.inputSize}²), pixel acc ${(100 * rec.pixelAcc).toFixed(2)}`);
      },
    };
    try {
      if (rounds > 0) {
        const r = await import("../../segmentation/rounds.js");
        const res = await r.trainWithCrfRounds({
          outDir, train: trainItems, val: valItems, config, rounds, resume: !!values.resume, checkpointSeconds, signal: abort.signal,
          hooks: { ...hooks, onPhase: (round, what) => console.error(`\ntrain-deeplab: round ${round}: ${what}`) },
        });
        bar?.stop();
        console.log(r.roundsTable(res.results));
        console.log(`  summary: ${path.join(outDir, r.ROUNDS_FILE)}; val mIoU is direct (argmax, ids = classes; no matching)${res.complete ? "" : `; interrupted: continue with --resume --out ${values.out}`}`);
        if (values.json) printJson({ out: outDir, complete: res.complete, rounds: res.results });
        if (!res.complete && stoppedBy) return stoppedBy === "SIGINT" ? 130 : 143;
        return 0;
      }
      const pairs = await data.loadPairs(trainItems, config.numClasses);
      const valPairs = valItems ? await data.loadPairs(valItems, config.numClasses) : undefined;
      const state = await train.trainDeepLab({
        outDir, pairs, names: trainItems.map((i) => i.name), valPairs, config, resume: !!values.resume, maxSteps, checkpointSeconds, signal: abort.signal, ...hooks,
      });
      bar?.stop();
      const per = train.stepsPerEpoch(state.config, pairs.length), total = per * state.config.epochs;
      const best = state.val.length ? state.val.reduce((a, b) => (b.miou > a.miou ? b : a)) : undefined;
      const summary = {
        out: outDir, step: state.step, totalSteps: total, epoch: state.step / per, done: state.step >= total, trainSeconds: Math.round(state.trainSeconds),
        model: path.join(outDir, train.MODEL_FILE), select: state.config.select,
        selected: state.config.select === "best-val" && best ? { file: path.join(outDir, train.BEST_VAL_FILE), epoch: best.epoch, valMiou: best.miou, note: "selected on val" } : null,
        val: state.val.map((v) => ({ epoch: v.epoch, miou: v.miou, pixelAcc: v.pixelAcc })),
      };
      train.disposeTrainState(state);
      console.log(`train-deeplab: step ${summary.step}/${total} (epoch ${summary.epoch.toFixed(2)})` +
        (summary.done ? `, done: ${summary.model}${summary.selected ? `; best val epoch ${summary.selected.epoch} (selected on val): ${summary.selected.file}` : ""}` : `; continue with: npx maskdistill train-deeplab --resume --out ${values.out} (and the same data flags)`));
      if (values.json) printJson(summary);
      if (stoppedBy && !summary.done) return stoppedBy === "SIGINT" ? 130 : 143;
      return 0;
    } finally {
      bar?.stop();
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
  },
};

export default command;
