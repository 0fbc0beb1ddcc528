// `maskdistill demo --world shapes`: the method on the procedural shapes world (src/shapes/). Makes the
// world when its folder has none (deterministic, about a minute), then runs the stage i–ii targets on
// its val split with the world's bundled backbone, next to the same ViT at its random initialisation
// and the centred box (src/shapes/targets.ts), and — unless --stages i-ii — stage iii: the train split's
// pseudo-masks, a Mask R-CNN trained on them and scored on val (src/shapes/stageThree.ts). Resumable:
// finished masks, embeddings, the Mask R-CNN checkpoint and detections are reused.
import * as fs from "node:fs";
import * as path from "node:path";
import { numberFlag, printJson } from "./command.js";
import { projectPath } from "../paths.js";
import { MaskdistillError } from "../errors.js";

export interface ShapesDemoFlags {
  "world-dir"?: string;
  out?: string;
  weights?: string;
  "cluster-weights"?: string;
  resize?: string;
  limit?: string;
  stages?: string;
  iterations?: string;
  epochs?: string;
  "train-images"?: string;
  rounds?: string;
  "deeplab-init"?: string;
  "maskrcnn-init"?: string;
  threads?: string;
  json?: boolean;
}

export async function runShapesDemo(values: ShapesDemoFlags): Promise<number> {
  const started = Date.now();
  // each line says when it started (minutes:seconds into the run), so a user sees where the time goes
  const say = (what: string) => {
    const t = Math.round((Date.now() - started) / 1000);
    console.log(`demo ${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}: ${what}`);
  };
  const stages = values.stages ?? "i-v";
  if (stages !== "i-ii" && stages !== "i-iii" && stages !== "i-v") throw new MaskdistillError(`--stages expects i-ii, i-iii or i-v, got '${stages}'`);
  const { SHAPES_STAGE_V_TRAIN_IMAGES } = await import("../shapes/stageFive.js");
  const stageVTrainImages = countFlag("train-images", values["train-images"], SHAPES_STAGE_V_TRAIN_IMAGES);
  const rounds = values.rounds === undefined ? undefined : countFlag("rounds", values.rounds, 0);
  // an init is a keyword or a ResNet-50 file (the trainers read and check it; a missing one is named here, before any work)
  const initFlag = (name: string, v: string, keywords: string[]): string => {
    if (keywords.includes(v)) return v;
    if (!fs.existsSync(v)) throw new MaskdistillError(`--${name} expects ${keywords.join(", ")} or a ResNet-50 file; no such file`, path.resolve(v));
    return path.resolve(v);
  };
  // stage iii's body and stage v's init: the world's own self-supervised ResNet-50 when bundled
  // (data/backbones/shapes_resnet50), as the paper starts both from a self-supervised CNN (DINO / MoCo v2 ResNet-50);
  // without it, stage iii from random weights and stage v from stage iii's body
  const { worldResNet } = await import("../distill/backboneChoice.js");
  const ownResNet = worldResNet("shapes")?.path;
  const maskRcnnInit = initFlag("maskrcnn-init", values["maskrcnn-init"] ?? ownResNet ?? "none", ["none"]);
  const deeplabInit = initFlag("deeplab-init", values["deeplab-init"] ?? ownResNet ?? "maskrcnn", ["maskrcnn", "none"]);
  const { ensureShapesWorld, SHAPES_DEFAULT_WORLD, shapesDefaultDir } = await import("../shapes/world.js");
  const worldDir = path.resolve(values["world-dir"] ?? shapesDefaultDir());
  const out = path.resolve(values.out ?? projectPath("results", "shapes"));
  const { progress } = await import("./progress.js");
  let bar: ReturnType<typeof progress> | undefined, ticked = 0;
  let world;
  try {
    world = await ensureShapesWorld(worldDir, {
      photoDir: projectPath("data", "demo", "images"),
      onStart: () => {
        const d = SHAPES_DEFAULT_WORLD.difficulty;
        say(`making the shapes world in ${worldDir} (npx maskdistill make-shapes --out ${worldDir}${d === "full" ? "" : ` --difficulty ${d}`})`);
        bar = progress("make-shapes", SHAPES_DEFAULT_WORLD.n);
      },
      onProgress: (done) => { bar?.tick(done - ticked); ticked = done; },
    });
  } finally {
    bar?.stop();
  }

  const { defaultBackbone } = await import("../distill/backboneChoice.js");
  const choice = values.weights
    ? { path: values.weights, label: values.weights, random: false, resize: undefined as number | undefined, note: "" }
    : defaultBackbone("masks", { world: "shapes" });
  const clusterChoice = values["cluster-weights"]
    ? { path: values["cluster-weights"], label: values["cluster-weights"], random: false, note: "" }
    : values.weights ? choice : defaultBackbone("cluster", { world: "shapes" });
  say(`shapes world ${worldDir} (${world.images} images of ${world.size} px, seed ${world.seed}; val ${world.val}); backbone ${choice.label}` +
    (choice.random ? ` — RANDOM WEIGHTS: ${choice.note}` : "") +
    (clusterChoice.path !== choice.path ? `; stage ii: ${clusterChoice.label}` : "") +
    (stages === "i-ii" ? "" : `; stage iii's body: ${maskRcnnInit === "none" ? "random weights (--maskrcnn-init none)" : path.relative(process.cwd(), maskRcnnInit) || maskRcnnInit}`));
  const clusterWeights = clusterChoice.path !== choice.path ? clusterChoice.path : undefined;
  const resize = numberFlag("resize", values.resize, choice.resize ?? world.size);
  const limit = values.limit ? numberFlag("limit", values.limit, 0) : undefined;

  // the untrained baseline: the same architecture at the trainer's initialisation for the recipe's seed
  let randomWeights: string | undefined;
  const sidecarFile = choice.path.replace(/\.[^.]+$/, "") + ".json";
  const sidecar = fs.existsSync(sidecarFile) ? JSON.parse(fs.readFileSync(sidecarFile, "utf8")) as { training?: { config?: unknown } } : undefined;
  if (sidecar?.training?.config) {
    const { initEngine } = await import("../engine/index.js");
    const { exportInitialisation } = await import("../pretrain/trainer.js");
    await initEngine({ backend: "wasm", threads: 1 });
    randomWeights = path.join(out, "random_init.safetensors");
    await exportInitialisation(sidecar.training.config as import("../pretrain/config.js").PretrainConfig, randomWeights);
  } else {
    say("the backbone has no training sidecar, so there is no random-initialisation row");
  }

  const { runShapesTargets, targetsMarkdown } = await import("../shapes/targets.js");
  const t = await runShapesTargets({
    world: worldDir, weights: choice.path, clusterWeights, randomWeights, resize: resize === world.size ? 0 : resize, out,
    limit,
    onProgress: say,
  });
  let result = t;
  if (stages !== "i-ii") {
    const { runShapesStageIII } = await import("../shapes/stageThree.js");
    const { withStageIII, writeTargets } = await import("../shapes/targets.js");
    const bars = stepBars(progress, say);
    const threads = numberFlag("threads", values.threads, 2);
    try {
      const s = await runShapesStageIII({
        world: worldDir, weights: choice.path, clusterWeights, resize: resize === world.size ? 0 : resize, out: path.join(out, "stage3"),
        valPseudoLabels: path.join(out, "clusters_masks.matched.json"),
        // --limit N (a quick look): N val images, and 7N train images (the world's train : val ratio)
        trainLimit: limit ? 7 * limit : undefined,
        valLimit: limit,
        iterations: values.iterations ? numberFlag("iterations", values.iterations, 0) : undefined,
        init: maskRcnnInit,
        threads,
        onProgress: bars.message,
        onStep: (step, total, loss) => bars.step("train-maskrcnn", step, total, loss),
      });
      result = withStageIII(t, s);
      writeTargets(result, out);
      if (stages === "i-v") {
        const { runShapesStageV } = await import("../shapes/stageFive.js");
        const { withStageV } = await import("../shapes/targets.js");
        const v = await runShapesStageV({
          world: worldDir, maskRcnn: s, out: path.join(out, "stage5"),
          trainLimit: limit ? 7 * limit : stageVTrainImages || undefined,
          valLimit: limit,
          epochs: values.epochs ? numberFlag("epochs", values.epochs, 1) : undefined,
          rounds,
          deeplabInit,
          threads,
          onProgress: bars.message,
          onStep: bars.step,
        });
        result = withStageV(result, v);
        writeTargets(result, out);
      }
    } finally {
      bars.stop();
    }
  }
  console.log("\n" + targetsMarkdown(result));
  console.log(`wrote ${path.relative(process.cwd(), path.join(out, "targets.md"))} and targets.json (${Math.round((Date.now() - started) / 1000)} s)`);
  if (values.json) printJson(result);
  return 0;
}

/** A whole number ≥ 0 from --name (the fallback when absent). */
function countFlag(name: string, value: string | undefined, fallback: number): number {
  const v = numberFlag(name, value, fallback);
  if (!Number.isInteger(v) || v < 0) throw new MaskdistillError(`--${name} expects a whole number ≥ 0, got '${value}'`);
  return v;
}

/** Progress of the demo's training loops: one bar per named loop; a message (or another loop) ends the current bar. */
function stepBars(progress: (label: string, total: number) => { tick: (n?: number, info?: string) => void; stop: () => void }, say: (what: string) => void) {
  let bar: ReturnType<typeof progress> | undefined, name = "", last = 0;
  const stop = () => { bar?.stop(); bar = undefined; };
  return {
    stop,
    message: (what: string) => { stop(); say(what); },
    step: (what: string, step: number, total: number, loss: number) => {
      if (!bar || what !== name) { stop(); bar = progress(what, total); name = what; last = 0; }
      bar.tick(step - last, `loss ${loss.toFixed(3)}`);
      last = step;
    },
  };
}
