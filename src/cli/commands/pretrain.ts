// `maskdistill pretrain`: DINO self-supervised pretraining of a small ViT on unlabelled images
// (src/pretrain/), resumable, deterministic given --seed.
import * as fs from "node:fs";
import * as path from "node:path";
import type { Command } from "../command.js";
import { numberFlag, parseFlags, printJson, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill pretrain --images DIR[,DIR…] --out DIR [--epochs 30] [--resume] [flags]
       maskdistill pretrain --resume --out DIR

DINO (Caron et al. 2021) on unlabelled images: a student and an EMA teacher ViT (or ResNet-50) with the DINO head,
multi-crop (2 global + local crops), centred and sharpened teacher targets, AdamW with warm-up and
cosine schedules. Writes DIR/checkpoint.safetensors (full state, every few minutes and at every epoch
end), DIR/train_log.jsonl (one line per iteration) and DIR/teacher_vit.safetensors + .json (the
teacher backbone in the official DINO layout, loadable with loadBackbone / --weights).
Ctrl-C / SIGTERM stop after the current iteration and save; --resume continues with nothing lost.

  --images DIR[,DIR]     image folders (.jpg/.png; names sorted). Stored in the checkpoint.
  --paired-views DIR[,DIR]  a second picture of each image's object, same file name (one folder per
                         --images folder; e.g. make-shapes --paired-views writes train-views/). The
                         second global view and every other local view are cut from it, so the views
                         share the object and not its background (like two frames of a video)
  --out DIR              work folder (checkpoint, log, exported teacher)
  --resume               continue the checkpoint in --out (its config and images; flags below ignored)
  --epochs N             planned epochs (the schedules span them; default 30)
  --batch N              images per iteration (default 16)
  --seed N               PRNG seed for init, order and augmentation (default 0)
  --lr X                 peak learning rate (default 1e-4)   --warmup-epochs N (default 2)
  --momentum-teacher X   teacher EMA start (default 0.996, as DINO)
  --weight-decay A[,B]   AdamW weight decay, cosine from A to B (default DINO's 0.04,0.4). It is the only force on
                         what the loss cannot see, e.g. a key component shared by every patch of an image
  --teacher-temp X       teacher temperature (default 0.02; DINO 0.04; no warm-up)
  --objective dino|contrastive  dino (default); contrastive: MoCo-style InfoNCE of every student view
                         against the teacher's global views of the batch (the positive: the same image's
                         other global view) — much more signal per iteration for short CPU runs
  --contrast-temp X      InfoNCE temperature of --objective contrastive (default 0.2)
  --centre-embeddings    --objective contrastive: subtract the batch mean from the embeddings before normalising
                         them (MoCo v3's projector ends in a batch norm); keeps views that share little (e.g.
                         make-shapes --recolour-views) from collapsing to one embedding, where the loss sits at chance
  --init FILE            start both backbones from this checkpoint of the same architecture (a ViT in DINO layout,
                         same --dim/--depth/--heads/--patch/--global-size, or a torchvision ResNet-50 of the same
                         --width; e.g. a finished run's teacher_*.safetensors, to go on with a new schedule); the
                         heads start fresh. Recorded in the checkpoint (path and SHA-256)
  --symmetric-globals    blur both global views with p 0.5 and never solarise (SimCLR) instead of DINO's
                         asymmetric pair (blur 1.0 / 0.1, solarisation 0 / 0.2)
  --arch vit|resnet50     the network: vit (default; --patch/--dim/--depth/--heads below) or a ResNet-50 in
                         torchvision's layout, its layer4 average-pooled into the head (the body of MoCo v2 and
                         DINO's ResNet runs; the file train-maskrcnn --init and train-deeplab --init read).
                         Exported as teacher_resnet50.safetensors. Its batch norm uses each batch's statistics in
                         the student and in the teacher (every image of the batch in one batch: no BN leak)
  --width W              --arch resnet50: stem channels (default 64, ResNet-50's; 16 = the shapes recipes' width)
  --patch 16 --dim 192 --depth 6 --heads 6     ViT architecture
  --conv-stem C1,…,Cn    a convolutional stem instead of the patch embedding: n = log2(patch) 3×3 stride-2
                         convs (padding 1, ReLU) with these channels, then a 1×1 projection (e.g. 24,48,96,192
                         at patch 16); exported as patch_embed.stem.<i> + a 1×1 patch_embed.proj, which gen-masks,
                         cluster and every backbone reader load
  --global-size 96 --local-size 48 --local-crops 6            crops (px)
  --global-scale A,B     area range of the global crops, as a share of the image (default DINO's 0.4,1;
                         --local-scale A,B likewise, default 0.05,0.4). With a large object per image, a wider
                         lower bound keeps its whole outline in both views
  --color-jitter B,C,S,H,P,G  colour jitter: brightness, contrast, saturation, hue, its probability and the
                         grayscale probability (default DINO's 0.4,0.4,0.2,0.1,0.8,0.2; e.g. hue 0.5 for
                         images whose colours are random, so colour cannot match the views)
  --out-dim 4096         prototypes of the head
  --max-steps N          stop after N iterations in this sitting (the state is saved)
  --checkpoint-minutes M minutes between checkpoints (default 3)
  --export FILE          also export the teacher backbone to FILE (.safetensors; sidecar FILE.json)
  --fp16                 export in float16 (half the size)
  --threads N            threads for the matrix products (default 1)   --backend auto|wasm|tensorflow (default auto)
  --json                 last stdout line: a JSON summary`;

/** --color-jitter B,C,S,H,P,G → the crops' colorJitter (absent: DINO's). */
/** --weight-decay A[,B]: AdamW's decoupled weight decay, cosine from A to B (one value: constant). */
function weightDecayFlag(v: string | undefined): { weightDecay?: number; weightDecayEnd?: number } {
  if (v === undefined) return {};
  const parts = v.split(",").map(Number);
  if (parts.length > 2 || parts.some((x) => !(x >= 0))) throw new MaskdistillError(`--weight-decay expects A or A,B (non-negative numbers), got '${v}'`);
  return { weightDecay: parts[0], weightDecayEnd: parts[parts.length - 1] };
}

/** --init FILE: the checkpoint to start from, with its SHA-256 for the record (a missing file is named). */
async function initFromFlag(file: string): Promise<{ file: string; sha256: string }> {
  const abs = path.resolve(file);
  if (!fs.existsSync(abs)) throw new MaskdistillError("--init: no such checkpoint file", abs);
  const { fileSha256 } = await import("../../modeling/session.js");
  return { file: abs, sha256: await fileSha256(abs) };
}

/** --global-scale / --local-scale A,B: a crop-area range, 0 < A ≤ B ≤ 1. */
function scaleFlag(name: string, v: string | undefined, fallback: [number, number]): [number, number] {
  if (v === undefined) return fallback;
  const x = v.split(",").map(Number);
  if (x.length !== 2 || !(x[0] > 0 && x[0] <= x[1] && x[1] <= 1)) throw new MaskdistillError(`--${name} expects A,B with 0 < A ≤ B ≤ 1, got '${v}'`);
  return [x[0], x[1]];
}

function colorJitterFlag(v: string | undefined): { colorJitter?: import("../../pretrain/augment.js").ColorJitterConfig } {
  if (v === undefined) return {};
  const x = v.split(",").map(Number);
  if (x.length !== 6 || x.some((n) => !Number.isFinite(n) || n < 0) || x[3] > 0.5 || x[4] > 1 || x[5] > 1) {
    throw new MaskdistillError(`--color-jitter expects six numbers B,C,S,H,P,G (hue ≤ 0.5, probabilities ≤ 1), got '${v}'`);
  }
  return { colorJitter: { brightness: x[0], contrast: x[1], saturation: x[2], hue: x[3], p: x[4], grayscale: x[5] } };
}

const command: Command = {
  name: "pretrain",
  summary: "self-supervised pretraining (DINO or contrastive) of a small ViT or ResNet-50 on unlabelled images (resumable)",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("pretrain", argv, {
      images: { type: "string" }, "paired-views": { type: "string" }, init: { type: "string" }, objective: { type: "string" }, "contrast-temp": { type: "string" }, "symmetric-globals": { type: "boolean" }, "centre-embeddings": { type: "boolean" }, out: { type: "string" }, resume: { type: "boolean" },
      epochs: { type: "string" }, batch: { type: "string" }, seed: { type: "string" }, lr: { type: "string" },
      "warmup-epochs": { type: "string" }, "momentum-teacher": { type: "string" }, "weight-decay": { type: "string" }, "teacher-temp": { type: "string" },
      arch: { type: "string" }, width: { type: "string" }, patch: { type: "string" }, dim: { type: "string" }, depth: { type: "string" }, heads: { type: "string" }, "conv-stem": { type: "string" },
      "global-size": { type: "string" }, "local-size": { type: "string" }, "global-scale": { type: "string" }, "local-scale": { type: "string" }, "local-crops": { type: "string" },
      "out-dim": { type: "string" }, "max-steps": { type: "string" }, "color-jitter": { type: "string" }, "checkpoint-minutes": { type: "string" },
      export: { type: "string" }, fp16: { type: "boolean" }, threads: { type: "string" }, backend: { type: "string" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("pretrain", values, ["out"]);
    const backend = (values.backend ?? "auto") as "auto" | "wasm" | "tensorflow";
    if (!["auto", "wasm", "tensorflow"].includes(backend)) throw new MaskdistillError(`--backend expects auto, wasm or tensorflow, got '${values.backend}'`);

    const { DEMO_RECIPE, checkConfig } = await import("../../pretrain/config.js");
    const trainer = await import("../../pretrain/trainer.js");
    const outDir = path.resolve(values.out);
    const ckpt = path.join(outDir, trainer.CHECKPOINT_FILE);
    const existing = values.resume ? await trainer.checkpointInfo(ckpt) : undefined;
    if (values.resume && !existing) {
      // say so: a resume that silently starts over (or fails on a missing flag) hides a wrong --out
      if (!values.images) {
        throw new MaskdistillError(`pretrain --resume: no checkpoint found in ${outDir} (looked for ${ckpt}); check --out, or start a new run with --images DIR and without --resume`);
      }
      console.error(`pretrain --resume: no checkpoint found in ${outDir} (looked for ${ckpt}); starting a new run`);
    }

    const d = DEMO_RECIPE;
    const int = (name: string, v: string | undefined, fallback: number) => {
      const n = numberFlag(name, v, fallback);
      if (!Number.isInteger(n) || n < 0) throw new MaskdistillError(`--${name} expects a non-negative integer, got '${v}'`);
      return n;
    };
    const archName = values.arch ?? "vit";
    if (archName !== "vit" && archName !== "resnet50") throw new MaskdistillError(`--arch expects vit or resnet50, got '${values.arch}'`);
    if (values.width !== undefined && archName !== "resnet50") throw new MaskdistillError("--width applies to --arch resnet50");
    const config = existing?.config ?? {
      ...d,
      seed: int("seed", values.seed, 0),
      arch: { patch: int("patch", values.patch, d.arch.patch), dim: int("dim", values.dim, d.arch.dim), depth: int("depth", values.depth, d.arch.depth), heads: int("heads", values.heads, d.arch.heads), mlpRatio: 4,
        ...(values["conv-stem"] ? { convStem: values["conv-stem"].split(",").map((c) => int("conv-stem", c, 0)) } : {}) },
      head: { ...d.head, outDim: int("out-dim", values["out-dim"], d.head.outDim) },
      crops: { ...d.crops, ...colorJitterFlag(values["color-jitter"]), globalSize: int("global-size", values["global-size"], d.crops.globalSize), localSize: int("local-size", values["local-size"], d.crops.localSize), localCrops: int("local-crops", values["local-crops"], d.crops.localCrops), globalScale: scaleFlag("global-scale", values["global-scale"], d.crops.globalScale), localScale: scaleFlag("local-scale", values["local-scale"], d.crops.localScale), ...(values["symmetric-globals"] ? { symmetricGlobals: true } : {}) },
      batchSize: int("batch", values.batch, d.batchSize),
      epochs: int("epochs", values.epochs, d.epochs),
      lr: numberFlag("lr", values.lr, d.lr),
      warmupEpochs: numberFlag("warmup-epochs", values["warmup-epochs"], d.warmupEpochs),
      momentumTeacher: numberFlag("momentum-teacher", values["momentum-teacher"], d.momentumTeacher),
      ...weightDecayFlag(values["weight-decay"]),
      teacherTemp: numberFlag("teacher-temp", values["teacher-temp"], d.teacherTemp),
      warmupTeacherTemp: numberFlag("teacher-temp", values["teacher-temp"], d.warmupTeacherTemp),
      ...(values["paired-views"] ? { pairedViews: true } : {}),
      ...(values.objective ? { objective: values.objective as "dino" | "contrastive" } : {}),
      ...(values["centre-embeddings"] ? { centreEmbeddings: true } : {}),
      ...(values["contrast-temp"] ? { contrastTemp: numberFlag("contrast-temp", values["contrast-temp"], 0.2) } : {}),
      ...(values.init ? { initFrom: await initFromFlag(values.init) } : {}),
      ...(archName === "resnet50" ? { resnet: { width: int("width", values.width, 64) } } : {}),
    };
    if (existing && values.epochs !== undefined && Number(values.epochs) !== existing.config.epochs) {
      throw new MaskdistillError(`pretrain --resume: the checkpoint plans ${existing.config.epochs} epochs (its schedules span them); ` +
        `--epochs ${values.epochs} would change them. Drop --epochs, or start a new --out.`, ckpt);
    }
    checkConfig(config);
    const dirs = values.images ? values.images.split(",").filter(Boolean).map((p) => path.resolve(p)) : existing?.imageDirs ?? [];
    const pairedDirs = values["paired-views"] ? values["paired-views"].split(",").filter(Boolean).map((p) => path.resolve(p)) : existing?.pairedDirs ?? [];
    if (config.pairedViews && pairedDirs.length === 0) throw new MaskdistillError("pretrain: this run pairs views: pass --paired-views DIR (one per --images folder)", ckpt);
    if (dirs.length === 0) throw new MaskdistillError("pretrain: --images DIR is required (a resumed checkpoint names its own folders)");

    const { initEngine, engineInfo } = await import("../../engine/index.js");
    await initEngine({ backend, threads: int("threads", values.threads, 1) || 1 });
    const info = engineInfo();
    if (info.backend === "cpu") throw new MaskdistillError("pretrain: refusing the cpu backend (too slow); install the wasm backend or tfjs-node");

    // unreadable images are skipped and listed in OUT/pretrain.errors.jsonl, like gen-masks' errors file
    const skipped: { file: string; reason: string }[] = [];
    const images = await trainer.loadTrainImages(dirs, config.cacheShortSide, { onSkip: (file, reason) => skipped.push({ file, reason }), pairedDirs });
    const { checkOutputLocation, writeLinesAtomic } = await import("../../runner/perImage.js");
    const errorsFile = path.join(outDir, "pretrain.errors.jsonl");
    checkOutputLocation(errorsFile);
    if (skipped.length) {
      writeLinesAtomic(errorsFile, skipped.map((r) => JSON.stringify(r)));
      console.error(`pretrain: ${skipped.length} image(s) cannot be read and are left out: see ${errorsFile}`);
    } else {
      fs.rmSync(errorsFile, { force: true });
    }
    const ipe = trainer.itersPerEpoch(config, images.length);
    const total = ipe * config.epochs;
    const startStep = existing?.step ?? 0;
    const maxSteps = values["max-steps"] !== undefined ? int("max-steps", values["max-steps"], 0) : undefined;
    const planned = Math.min(total - startStep, maxSteps ?? Infinity);
    console.error(`pretrain: ${images.length} images, ${ipe} iterations/epoch, ${config.epochs} epochs; ` +
      `${existing ? `resuming at iteration ${startStep}` : "starting"}; backend ${info.backend} (${info.threads} thread(s))`);

    const { progress } = await import("../progress.js");
    const bar = progress("pretrain", Math.max(planned, 0));
    const abort = new AbortController();
    let stoppedBy: NodeJS.Signals | undefined;
    const stop = (sig: NodeJS.Signals) => {
      if (abort.signal.aborted) return;
      stoppedBy = sig;
      console.error("\npretrain: stopping after this iteration (saving the checkpoint)…");
      abort.abort();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    let last: import("../../pretrain/trainer.js").StepLog | undefined;
    let state;
    try {
      state = await trainer.train({
        outDir, images, imageDirs: dirs, pairedDirs, config, resume: Boolean(values.resume), maxSteps,
        checkpointSeconds: 60 * numberFlag("checkpoint-minutes", values["checkpoint-minutes"], 3),
        signal: abort.signal,
        onStep(log) {
          last = log;
          bar.tick(1, `epoch ${log.epoch.toFixed(2)} loss ${log.loss.toFixed(4)} ${log.imagesPerSecond.toFixed(1)} img/s`);
        },
      });
    } finally {
      bar.stop();
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
    }
    let exported: string | undefined;
    if (values.export) {
      exported = path.resolve(values.export);
      await trainer.exportTeacher(state, exported, { dtype: values.fp16 ? "float16" : "float32" });
    }
    const summary = {
      out: outDir, step: state.step, totalSteps: total, epoch: state.step / ipe, loss: last?.loss ?? null,
      imagesPerSecond: last?.imagesPerSecond ?? null, trainSeconds: Math.round(state.trainSeconds),
      done: state.step >= total, exported: exported ?? null,
    };
    trainer.disposeState(state);
    if (values.json) printJson(summary);
    else console.log(`pretrain: iteration ${summary.step}/${total} (epoch ${summary.epoch.toFixed(2)}), loss ${summary.loss?.toFixed(4) ?? "-"}` +
      `${summary.done ? ", done" : `; continue with: npx maskdistill pretrain --resume --out ${values.out}`}`);
    // interrupted (checkpoint saved): the exit code says so, 128 + the signal's number
    if (stoppedBy && !summary.done) return stoppedBy === "SIGINT" ? 130 : 143;
    return 0;
  },
};

export default command;
