// `maskdistill train-maskrcnn`: stage iii training of the Mask R-CNN on a COCO instances file (the
// stage-ii clustered pseudo-masks) — the library is src/instance/train.ts.
import * as path from "node:path";
import type { Command } from "../command.js";
import { numberFlag, parseFlags, printJson, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill train-maskrcnn --annotations FILE.json --images DIR --out DIR
                     [--recipe lost|cpu|shapes] [--preset detectron2|torchvision] [--init NAME|FILE|none]
                     [--agnostic] [--freeze-at N] [--norm FrozenBN|BN] [--iterations N] [--batch N] [--lr X] [--min-sizes A,B,..]
                     [--max-size N] [--no-flip] [--warmup N] [--steps A,B] [--weight-decay X]
                     [--clip-grad X] [--droploss X] [--roi-batch N] [--canonical-box N] [--workers N] [--seed N] [--resume]
                     [--max-steps N] [--checkpoint-minutes 3] [--threads N] [--backend auto|wasm|tensorflow] [--json]

Trains Mask R-CNN R50-FPN on the instances of a COCO file (stage ii's clustered JSON: one pseudo-mask
per image, 20 pseudo-classes; or any COCO instances file). Images without usable instances, crowd
instances, boxes under 1 px and empty masks are skipped and counted.

  --recipe lost            LOST's recipe, the GPU default (METHOD.md §4.1): init dino_resnet50, stem+res2
                           frozen, batch 16, lr 0.02, warm-up 100, ×0.1 at 18k/22k, 24k iterations, short
                           side 480–800 (max 1333), flip
  --recipe cpu             LOST's, changed for 2 CPU cores (≤ 15 min on the demo data): short side 256–320
                           (max 533), batch 2, 90 iterations, the ResNet body frozen (--freeze-at 5: FPN +
                           heads train), 128 ROI samples per image (not 512), lr 0.01, warm-up 15, ×0.1 at
                           70, gradient clipping 1.0
  --recipe shapes          the shapes world (96×96 images, one object; make-shapes): random init, ResNet-50
                           shape at 1/4 width (stem 16, FPN 64, heads 256/64), nothing frozen, short side
                           128–160 (max 267), batch 4 in 2 workers, 128 ROI samples, lr 0.04, warm-up 50,
                           ×0.1 at 900, 1,080 iterations, clipping 5; detect with --min-size 160 --max-size 267
                           --proposals 300
  --preset P               detectron2 (default: L1 box losses, binarised mask targets, aligned RoIAlign) or
                           torchvision (smooth-L1 1/9, soft mask targets)
  --init W                 dino_resnet50 | moco_v2 | a torchvision ResNet-50 file | none (random)
  --agnostic               one class for every instance (else one per category, e.g. 20 pseudo-classes)
  --freeze-at N            0 nothing frozen, 1 the stem, 2 stem + layer1 (default), …, 5 the whole body
  --norm N                 the body's normalisation (detectron2 RESNETS.NORM): FrozenBN (default: a pretrained
                           body's statistics, fixed) or BN (batch statistics while training, running ones in
                           detect; meant for a body trained from scratch — the shapes recipe keeps FrozenBN,
                           BN did no better there)
  --clip-grad X            clip the global gradient norm to X (CutLER: 1.0); --droploss X: CutLER's DropLoss
                           (background proposals with IoU < X to every instance do not count; CutLER 0.01)
  --roi-batch N            proposals sampled per image for the ROI heads, 25 % foreground (default 512; cpu 128)
  --canonical-box N        the box side the ROI poolers take from FPN level p4 (default 224, both libraries';
                           half that side from p3, a quarter from p2); saved in the model file for detect
  --workers N              data-parallel shares of each batch, in N threads (detectron2's DDP over N GPUs:
                           each share normalises its own losses, the step averages their gradients; the
                           --threads are divided among them, at least one each). Default 1. Part of the
                           recipe: the numbers depend on N, not on the machine
  --resume                 continue OUT/checkpoint.safetensors bit for bit (same annotations and images)
  --max-steps N            stop after N iterations in this sitting (the checkpoint is saved)

Writes OUT/checkpoint.safetensors (weights + momentum buffers, every --checkpoint-minutes, at the end and
on Ctrl-C / SIGTERM), OUT/model.safetensors (the weights: 'maskdistill detect --weights OUT/model.safetensors
--preset P'), OUT/train_log.jsonl (a line per iteration: the five losses, lr, gradient norm, speed).`;

const command: Command = {
  name: "train-maskrcnn",
  summary: "stage iii: train Mask R-CNN R50-FPN on a COCO instances file (pseudo-masks), resumable",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("train-maskrcnn", argv, {
      annotations: { type: "string" }, images: { type: "string" }, out: { type: "string" },
      recipe: { type: "string" }, preset: { type: "string" }, init: { type: "string" }, agnostic: { type: "boolean" },
      "freeze-at": { type: "string" }, norm: { type: "string" }, iterations: { type: "string" }, batch: { type: "string" }, lr: { type: "string" },
      "min-sizes": { type: "string" }, "max-size": { type: "string" }, "no-flip": { type: "boolean" }, warmup: { type: "string" },
      steps: { type: "string" }, "weight-decay": { type: "string" }, "clip-grad": { type: "string" }, droploss: { type: "string" }, "roi-batch": { type: "string" }, "canonical-box": { type: "string" }, workers: { type: "string" },
      seed: { type: "string" }, resume: { type: "boolean" }, "max-steps": { type: "string" }, "checkpoint-minutes": { type: "string" },
      threads: { type: "string" }, backend: { type: "string" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("train-maskrcnn", values, ["annotations", "images", "out"]);
    const train = await import("../../instance/train.js");
    const base = train.maskRcnnRecipe(values.recipe ?? "lost");
    const int = (name: string, v: string | undefined, fallback: number) => {
      const n = numberFlag(name, v, fallback);
      if (!Number.isInteger(n) || n < 0) throw new MaskdistillError(`--${name} expects a non-negative integer, got '${v}'`);
      return n;
    };
    const list = (name: string, v: string | undefined, fallback: number[]) => (v === undefined ? fallback : v.split(",").map((x) => int(name, x, 0)));
    if (values.preset !== undefined && values.preset !== "detectron2" && values.preset !== "torchvision") throw new MaskdistillError(`--preset expects detectron2 or torchvision, got '${values.preset}'`);
    const canonicalBox = values["canonical-box"] === undefined ? base.canonicalBoxSize : int("canonical-box", values["canonical-box"], 224);
    if (canonicalBox === 0) throw new MaskdistillError("--canonical-box expects a positive box side in pixels (224 in both libraries), got 0");
    const config = {
      ...base,
      preset: (values.preset ?? base.preset) as "detectron2" | "torchvision",
      init: values.init ?? base.init,
      agnostic: Boolean(values.agnostic),
      freezeAt: int("freeze-at", values["freeze-at"], base.freezeAt),
      ...(values.norm ?? base.norm ? { norm: (values.norm ?? base.norm) as "FrozenBN" | "BN" } : {}),
      iterations: int("iterations", values.iterations, base.iterations),
      batchSize: int("batch", values.batch, base.batchSize) || 1,
      lr: numberFlag("lr", values.lr, base.lr),
      minSizes: list("min-sizes", values["min-sizes"], base.minSizes),
      maxSize: int("max-size", values["max-size"], base.maxSize),
      flip: !values["no-flip"],
      warmupIters: int("warmup", values.warmup, base.warmupIters),
      steps: list("steps", values.steps, base.steps),
      weightDecay: numberFlag("weight-decay", values["weight-decay"], base.weightDecay),
      clipGradNorm: numberFlag("clip-grad", values["clip-grad"], base.clipGradNorm),
      dropLossIou: numberFlag("droploss", values.droploss, base.dropLossIou),
      roiBatchPerImage: values["roi-batch"] !== undefined ? int("roi-batch", values["roi-batch"], 0) || undefined : base.roiBatchPerImage,
      seed: int("seed", values.seed, base.seed),
      ...(values.workers !== undefined || base.workers !== undefined ? { workers: int("workers", values.workers, base.workers ?? 1) } : {}),
      ...(canonicalBox !== undefined ? { canonicalBoxSize: canonicalBox } : {}),
    };
    if (values.norm !== undefined && values.norm !== "FrozenBN" && values.norm !== "BN") throw new MaskdistillError(`--norm expects FrozenBN or BN, got '${values.norm}'`);
    if (config.freezeAt > 5) throw new MaskdistillError(`--freeze-at expects 0…5, got ${config.freezeAt}`);
    const backend = (values.backend ?? "auto") as "auto" | "wasm" | "tensorflow";
    if (!["auto", "wasm", "tensorflow"].includes(backend)) throw new MaskdistillError(`--backend expects auto, wasm or tensorflow, got '${values.backend}'`);
    const set = train.loadTrainSet(path.resolve(values.annotations), path.resolve(values.images), { agnostic: config.agnostic });
    const sk = set.skipped;
    console.error(`train-maskrcnn: ${set.samples.length} images, ${set.samples.reduce((s, x) => s + x.labels.length, 0)} instances, ${set.numClasses - 1} class(es); ` +
      `skipped ${sk.imagesWithoutAnnotations} images without instances, ${sk.missingImages} missing images, ${sk.crowd} crowd, ${sk.boxesUnder1px} boxes < 1 px, ${sk.emptyMasks} empty masks`);
    const { initEngine, engineInfo } = await import("../../engine/index.js");
    await initEngine({ backend, threads: int("threads", values.threads, 1) || 1 });
    const info = engineInfo();
    if (info.backend === "cpu") throw new MaskdistillError("train-maskrcnn: refusing the cpu backend (too slow); install the wasm backend or tfjs-node");

    const { progress } = await import("../progress.js");
    const abort = new AbortController();
    let stoppedBy: NodeJS.Signals | undefined;
    const stop = (sig: NodeJS.Signals) => {
      if (abort.signal.aborted) process.exit(sig === "SIGINT" ? 130 : 143);
      stoppedBy = sig;
      console.error("\ntrain-maskrcnn: stopping after this iteration (saving the checkpoint; again to stop at once)…");
      abort.abort();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    const maxSteps = values["max-steps"] !== undefined ? int("max-steps", values["max-steps"], 0) : undefined;
    let bar: ReturnType<typeof progress> | undefined;
    let last: import("../../instance/train.js").StepLog | undefined;
    let state;
    try {
      state = await train.trainMaskRcnn({
        outDir: path.resolve(values.out), set, config, resume: Boolean(values.resume), maxSteps, signal: abort.signal,
        checkpointSeconds: 60 * numberFlag("checkpoint-minutes", values["checkpoint-minutes"], 3),
        onStart(s, st) {
          const c = s.config;
          console.error(`train-maskrcnn: ${st.resumedAt ? `resuming at iteration ${st.resumedAt}` : "starting"} of ${c.iterations}; preset ${c.preset}, init ${c.init}, ` +
            `batch ${c.batchSize}, short side ${c.minSizes.join("/")} (max ${c.maxSize}), freeze-at ${c.freezeAt}, norm ${c.norm ?? "FrozenBN"}; backend ${info.backend} (${info.threads} thread(s))` +
            (st.heapGiB !== undefined ? `; heap estimate ${st.heapGiB.toFixed(2)} GiB at ${st.inputSize[0]}×${st.inputSize[1]}` : ""));
          bar = progress("train-maskrcnn", Math.max(0, Math.min(c.iterations - s.step, maxSteps ?? Infinity)));
        },
        onStep(log) {
          last = log;
          const l = log.losses;
          bar?.tick(1, `loss ${log.loss.toFixed(3)} (obj ${l.loss_objectness.toFixed(3)} rpn ${l.loss_rpn_box_reg.toFixed(3)} cls ${l.loss_classifier.toFixed(3)} box ${l.loss_box_reg.toFixed(3)} mask ${l.loss_mask.toFixed(3)}) lr ${log.lr.toExponential(2)}`);
        },
      });
    } finally {
      bar?.stop();
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
    const summary = {
      out: path.resolve(values.out), step: state.step, iterations: state.config.iterations, loss: last?.loss ?? null, losses: last?.losses ?? null,
      trainSeconds: Math.round(state.trainSeconds), images: set.samples.length, classes: set.numClasses - 1, skipped: set.skipped,
      model: path.join(path.resolve(values.out), train.MODEL_FILE), stoppedBy: stoppedBy ?? null,
    };
    train.disposeTrainState(state);
    if (values.json) printJson(summary);
    else console.log(`train-maskrcnn: ${state.step}/${state.config.iterations} iterations; weights in ${summary.model}`);
    return stoppedBy ? (stoppedBy === "SIGINT" ? 130 : 143) : 0;
  },
};

export default command;
