// Which ViT the notebooks and `npm run demo` use when none is named, best first:
//   0. MASKDISTILL_BACKBONE_MASKS / MASKDISTILL_BACKBONE_CLUSTER, then MASKDISTILL_BACKBONE (a known name
//      such as dino_vits16, or a checkpoint path);
//   1. the real DINO weights, when downloaded into the weights cache (dino_vits16 for stage-i masks,
//      dino_vits8 for stage-ii embeddings, as the reference);
//   2. the bundled demo backbone: a `data/backbones/<name>.json` sidecar next to its checkpoint (one whose
//      sidecar names a "world", e.g. the shapes world's backbone, is used only for that world — and there
//      before the real DINO weights, as it was trained for it);
//   3. the reference-vit test checkpoint in test/fixtures/reference-vit: randomly initialised, depth 2 — it
//      shows the pipeline runs, its masks are near chance.
//
// Sidecar format (`data/backbones/<name>.json`, all fields optional):
//   { "weights": "<checkpoint file, relative to the sidecar>",   // default: <name>.pth / .safetensors / .pt
//     "patch": 16,                                                // patch size (also patch_size / patchSize)
//     "label": "demo ViT-S/16, depth 4, 30 epochs on the demo train split",   // (also name / description)
//     "world": "shapes",                                          // only for that data world (make-shapes)
//     "use": "cluster" }                                          // only for this use (masks | cluster); a world's
//                                                                 // backbone with no "use" serves both
// A sidecar whose checkpoint is not there yet (a backbone being trained) is skipped.
import * as fs from "node:fs";
import * as path from "node:path";
import { inputError, MaskdistillError } from "../errors.js";
import { projectPath } from "../paths.js";
import { resolveWeights } from "../modeling/weights.js";

/** What the backbone is for: stage-i masks (the reference uses ViT-S/16) or stage-ii embeddings (ViT-S/8). */
export type BackboneUse = "masks" | "cluster";

export interface BackboneChoice {
  /** Checkpoint file, for `loadBackbone`. */
  path: string;
  /** Short human-readable name. */
  label: string;
  /** The weights are randomly initialised (the test fixture): results are near chance. */
  random: boolean;
  /** One or two sentences for the reader: where the weights come from and what to expect of them. */
  note: string;
  source: "env" | "dino" | "bundled" | "fixture";
  /** Patch size when known without reading the checkpoint. */
  patch?: number;
  /** Stage-i short side this backbone was made for (a bundled sidecar's "resize"); undefined = the reference's 640. */
  resize?: number;
}

export interface BundledBackbone {
  /** The sidecar's stem. */
  name: string;
  sidecar: string;
  /** Checkpoint file (may not exist yet). */
  weights: string;
  exists: boolean;
  patch?: number;
  /** Sidecar "resize": the stage-i short side the backbone works at (small demo backbones are trained on small crops). */
  resize?: number;
  label: string;
  /** Sidecar "world": the synthetic data world it was trained for (then the default only there). */
  world?: string;
  /** Sidecar "use": the one stage it is the default for (e.g. a world's separate stage-ii backbone, as the reference's ViT-S/8). */
  use?: BackboneUse;
}

export interface BackboneChoiceOptions {
  /** Folder of bundled backbones (default `data/backbones` in the project). */
  backbonesDir?: string;
  /** Environment to read the overrides from (default process.env). */
  env?: Record<string, string | undefined>;
  /** The data world the backbone is for (e.g. "shapes"): its own bundled backbone comes first. */
  world?: string;
}

const REFERENCE_PATCH: Record<BackboneUse, 8 | 16> = { masks: 16, cluster: 8 };
const DINO_NAME: Record<BackboneUse, string> = { masks: "dino_vits16", cluster: "dino_vits8" };
const FIXTURE_FILE: Record<BackboneUse, string> = { masks: "vit_small16_depth2_seed0.pth", cluster: "vit_small8_depth2_seed1.pth" };
const CHECKPOINT_EXTS = [".pth", ".safetensors", ".pt"];

/** The random reference-vit test checkpoint for `use`. */
export function fixtureBackbonePath(use: BackboneUse): string {
  return projectPath("test", "fixtures", "reference-vit", FIXTURE_FILE[use]);
}

const randomNote = (file: string) =>
  `${path.basename(file)} is a test checkpoint with randomly initialised weights (depth 2, not trained): ` +
  `the pipeline runs end to end, but its masks and scores are near chance. ` +
  `Run 'npx maskdistill weights get dino_vits16' (and dino_vits8) for the real method.`;

function isFixture(file: string): boolean {
  const dir = path.resolve(projectPath("test", "fixtures", "reference-vit"));
  return path.dirname(path.resolve(file)) === dir && /_seed\d+\.pth$/.test(file);
}

/**
 * The ViT sidecars in `dir` (sorted by name) with their checkpoint; an unreadable sidecar is an error naming it.
 * ResNet sidecars (`"family": "resnet"`) are left out.
 */
export function bundledBackbones(dir: string = projectPath("data", "backbones")): BundledBackbone[] {
  const out: BundledBackbone[] = [];
  for (const { name, sidecar, cfg, weights } of readSidecars(dir)) {
    // a CNN exported by `pretrain --arch resnet50` (stage iii's / stage v's body) is no backbone for stages i–ii
    if (cfg.family === "resnet") continue;
    const patchValue = cfg.patch ?? cfg.patch_size ?? cfg.patchSize;
    if (patchValue !== undefined && !(Number.isInteger(patchValue) && (patchValue as number) > 0)) {
      throw new MaskdistillError(`backbone sidecar: patch size must be a positive integer, got ${JSON.stringify(patchValue)}`, sidecar);
    }
    if (cfg.resize !== undefined && !(Number.isInteger(cfg.resize) && (cfg.resize as number) > 0)) {
      throw new MaskdistillError(`backbone sidecar: "resize" must be a positive integer (stage-i short side), got ${JSON.stringify(cfg.resize)}`, sidecar);
    }
    if (cfg.world !== undefined && !(typeof cfg.world === "string" && cfg.world)) {
      throw new MaskdistillError(`backbone sidecar: "world" must be a data world's name, got ${JSON.stringify(cfg.world)}`, sidecar);
    }
    if (cfg.use !== undefined && cfg.use !== "masks" && cfg.use !== "cluster") {
      throw new MaskdistillError(`backbone sidecar: "use" must be "masks" or "cluster", got ${JSON.stringify(cfg.use)}`, sidecar);
    }
    const labelValue = cfg.label ?? cfg.name ?? cfg.description;
    out.push({
      name, sidecar, weights, exists: fs.existsSync(weights),
      patch: patchValue as number | undefined,
      resize: cfg.resize as number | undefined,
      world: cfg.world as string | undefined,
      use: cfg.use as BackboneUse | undefined,
      label: typeof labelValue === "string" && labelValue ? labelValue : `bundled demo backbone ${name}`,
    });
  }
  return out;
}

/**
 * Every `*.json` in `dir` (sorted by name) as a JSON object, with its checkpoint path ("weights", relative to the
 * sidecar, else the first existing <name>.pth / .safetensors / .pt, else <name>.pth); an unreadable one is an error
 * naming it. Data files beside them (`*_trials.jsonl` …) are not .json.
 */
function readSidecars(dir: string): { name: string; sidecar: string; cfg: Record<string, unknown>; weights: string }[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((f) => f.endsWith(".json")).sort().map((f) => {
    const sidecar = path.join(dir, f);
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(sidecar, "utf8"));
    } catch (e) {
      throw inputError(sidecar, "backbone sidecar is not valid JSON", e);
    }
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new MaskdistillError("backbone sidecar must be a JSON object", sidecar);
    const cfg = raw as Record<string, unknown>, name = f.slice(0, -".json".length);
    if (cfg.weights !== undefined && (typeof cfg.weights !== "string" || !cfg.weights)) {
      throw new MaskdistillError(`backbone sidecar: "weights" must be a file name, got ${JSON.stringify(cfg.weights)}`, sidecar);
    }
    const weights = typeof cfg.weights === "string" ? path.resolve(dir, cfg.weights)
      : CHECKPOINT_EXTS.map((ext) => path.join(dir, name + ext)).find((p) => fs.existsSync(p)) ?? path.join(dir, name + ".pth");
    return { name, sidecar, cfg, weights };
  });
}

/**
 * A data world's own self-supervised ResNet-50 (a sidecar with `"family": "resnet"` and `"world": W` whose
 * checkpoint exists): the body its stage iii starts from and its stage v's init, as the paper's self-supervised
 * CNN (DINO / MoCo v2 ResNet-50). Undefined when the world has none.
 */
export function worldResNet(world: string, dir: string = projectPath("data", "backbones")): { path: string; label: string; name: string } | undefined {
  for (const { name, cfg, weights } of readSidecars(dir)) {
    if (cfg.family !== "resnet" || cfg.world !== world) continue;
    if (!fs.existsSync(weights)) continue;
    return { path: weights, name, label: typeof cfg.label === "string" && cfg.label ? cfg.label : `bundled ResNet-50 ${name}` };
  }
  return undefined;
}

/** The backbone to use for `use` when none is named (see the top of this file for the order). */
export function defaultBackbone(use: BackboneUse, opts: BackboneChoiceOptions = {}): BackboneChoice {
  if (use !== "masks" && use !== "cluster") throw new MaskdistillError(`defaultBackbone: use must be "masks" or "cluster", got ${JSON.stringify(use)}`);
  const env = opts.env ?? process.env;
  const wantPatch = REFERENCE_PATCH[use];

  // 0. explicit override
  const specific = `MASKDISTILL_BACKBONE_${use.toUpperCase()}`;
  const envVar = env[specific] ? specific : env.MASKDISTILL_BACKBONE ? "MASKDISTILL_BACKBONE" : undefined;
  if (envVar) {
    const value = env[envVar]!;
    let resolved;
    try {
      resolved = resolveWeights(value);
    } catch (e) {
      throw new MaskdistillError(`${envVar}=${value}: ${(e as Error).message}`);
    }
    if (!resolved.exists) {
      throw resolved.name
        ? new MaskdistillError(`${envVar}=${value}: weights '${resolved.name}' are not downloaded (run 'npx maskdistill weights get ${resolved.name}')`, resolved.path)
        : new MaskdistillError(`${envVar} names a checkpoint that does not exist`, resolved.path);
    }
    const random = isFixture(resolved.path);
    const patch = resolved.arch?.family === "vit" ? resolved.arch.patch : undefined;
    return {
      path: resolved.path, label: resolved.name ?? path.basename(resolved.path), random, source: "env", patch,
      note: random ? `set by ${envVar}. ${randomNote(resolved.path)}` : `set by ${envVar}.`,
    };
  }

  // a world's own backbone, trained on it, before the real weights
  const ready = bundledBackbones(opts.backbonesDir).filter((b) => b.exists);
  // (one made for this use first, then one for either use; never one made for the other use)
  const own = opts.world ? ready.filter((b) => b.world === opts.world && (b.use === undefined || b.use === use)) : [];
  const ownChoice = own.find((b) => b.use === use) ?? own.find((b) => b.patch === wantPatch) ?? own[0];
  if (ownChoice) return bundledChoice(ownChoice, use);

  // 1. real DINO weights
  const dino = resolveWeights(DINO_NAME[use]);
  if (dino.exists) {
    return {
      path: dino.path, label: `DINO ViT-S/${wantPatch} (${dino.name})`, random: false, source: "dino", patch: wantPatch,
      note: `the official self-supervised DINO ViT-S/${wantPatch} weights from the weights cache, as the reference uses.`,
    };
  }

  // 2. bundled demo backbone: the reference's patch size first, then one of unknown patch, then any
  const general = ready.filter((b) => b.world === undefined && (b.use === undefined || b.use === use));
  const bundled = general.find((b) => b.patch === wantPatch) ?? general.find((b) => b.patch === undefined) ?? general[0];
  if (bundled) return bundledChoice(bundled, use);

  // 3. the random test checkpoint
  const fixture = fixtureBackbonePath(use);
  if (!fs.existsSync(fixture)) {
    throw new MaskdistillError(`no backbone available: ${DINO_NAME[use]} is not downloaded, there is no bundled demo backbone and the test checkpoint is missing; run 'npx maskdistill weights get ${DINO_NAME[use]}'`, fixture);
  }
  return {
    path: fixture, label: `test checkpoint ${FIXTURE_FILE[use]} (ViT-S/${wantPatch}, depth 2, random weights)`,
    random: true, source: "fixture", patch: wantPatch, note: randomNote(fixture),
  };
}

/** The choice record of a bundled backbone (the note says where it is from and what to expect). */
function bundledChoice(bundled: BundledBackbone, use: BackboneUse): BackboneChoice {
  const wantPatch = REFERENCE_PATCH[use];
  const otherPatch = bundled.patch !== undefined && bundled.patch !== wantPatch;
  return {
    path: bundled.weights, label: bundled.label, random: false, source: "bundled", patch: bundled.patch, resize: bundled.resize,
    note: `the small demo backbone bundled in ${path.relative(projectPath(), bundled.sidecar) || bundled.sidecar}` +
      ` (a small ViT pretrained for the demo, expect it to be much weaker than DINO)` +
      (otherPatch ? `; its patch size is ${bundled.patch}, the reference uses ${wantPatch}` : "") +
      (bundled.resize ? `; stage i runs it at a short side of ${bundled.resize} px, the size it was trained for (the reference uses 640 with DINO)` : "") +
      (bundled.world ? `. It was trained on the ${bundled.world} world and is its default there` :
        `. Real DINO weights ('npx maskdistill weights get ${DINO_NAME[use]}') replace it when downloaded`) + ".",
  };
}
