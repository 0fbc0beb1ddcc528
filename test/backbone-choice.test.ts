// defaultBackbone: env override > real DINO weights in the cache > bundled demo backbone (sidecar) >
// random fixture checkpoint. Each case builds its own weights cache and backbones folder in a temp dir.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { MaskdistillError } from "../src/errors.js";
import { bundledBackbones, defaultBackbone, fixtureBackbonePath, worldResNet } from "../src/distill/backboneChoice.js";
import { loadBackbone } from "../src/modeling/backbone.js";

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "maskdistill-backbone-choice-"));
process.env.MASKDISTILL_QUIET = "1";
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

const FIX16 = projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth");
const FIX8 = projectPath("test", "fixtures", "reference-vit", "vit_small8_depth2_seed1.pth");
let caseNo = 0;

/** A fresh weights cache (MASKDISTILL_HOME) and backbones folder; `dino` lists cache files to create. */
function setup(dino: string[] = []): { home: string; backbones: string } {
  const dir = path.join(TMP, `case${caseNo++}`);
  const home = path.join(dir, "home"), backbones = path.join(dir, "backbones");
  fs.mkdirSync(path.join(home, "weights"), { recursive: true });
  for (const f of dino) fs.copyFileSync(f.includes("small8") ? FIX8 : FIX16, path.join(home, "weights", f));
  process.env.MASKDISTILL_HOME = home;
  return { home, backbones };
}

function sidecar(dir: string, name: string, cfg: object | string, weightsFile?: string, from = FIX16): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${name}.json`), typeof cfg === "string" ? cfg : JSON.stringify(cfg));
  if (weightsFile) fs.copyFileSync(from, path.join(dir, weightsFile));
}

test("nothing downloaded, nothing bundled: the random fixture checkpoints, said plainly", async () => {
  const { backbones } = setup();
  const masks = defaultBackbone("masks", { backbonesDir: backbones, env: {} });
  assert.equal(masks.path, FIX16);
  assert.equal(masks.source, "fixture");
  assert.equal(masks.random, true);
  assert.equal(masks.patch, 16);
  assert.match(masks.note, /randomly initialised/);
  assert.match(masks.note, /depth 2/);
  assert.match(masks.note, /near chance/);
  assert.match(masks.label, /random weights/);
  const cluster = defaultBackbone("cluster", { backbonesDir: backbones, env: {} });
  assert.equal(cluster.path, FIX8);
  assert.equal(cluster.random, true);
  assert.equal(cluster.patch, 8);
  assert.equal(fixtureBackbonePath("cluster"), FIX8);
  // the chosen files are what they claim: they load as ViTs of that patch size
  for (const [choice, patch] of [[masks, 16], [cluster, 8]] as const) {
    const vit = await loadBackbone(choice.path);
    assert.equal(vit.patch, patch);
    assert.equal(vit.depth, 2);
    await vit.dispose();
  }
});

test("real DINO weights in the cache win over bundled and fixture, per use", () => {
  const { home, backbones } = setup(["dino_deitsmall16_pretrain.pth"]);
  sidecar(backbones, "demo16", { patch: 16 }, "demo16.pth");
  const masks = defaultBackbone("masks", { backbonesDir: backbones, env: {} });
  assert.equal(masks.path, path.join(home, "weights", "dino_deitsmall16_pretrain.pth"));
  assert.equal(masks.source, "dino");
  assert.equal(masks.random, false);
  assert.match(masks.label, /DINO ViT-S\/16/);
  // ViT-S/8 is not downloaded: the cluster use falls back to the bundled backbone
  const cluster = defaultBackbone("cluster", { backbonesDir: backbones, env: {} });
  assert.equal(cluster.source, "bundled");
  assert.equal(cluster.path, path.join(backbones, "demo16.pth"));
  // both downloaded
  fs.copyFileSync(FIX8, path.join(home, "weights", "dino_deitsmall8_pretrain.pth"));
  const cluster8 = defaultBackbone("cluster", { backbonesDir: backbones, env: {} });
  assert.equal(cluster8.source, "dino");
  assert.equal(cluster8.path, path.join(home, "weights", "dino_deitsmall8_pretrain.pth"));
  assert.equal(cluster8.patch, 8);
});

test("bundled sidecars: the reference patch size is preferred, unfinished ones are skipped", () => {
  const { backbones } = setup();
  sidecar(backbones, "a_vit8", { patch_size: 8, label: "demo ViT-S/8", weights: "weights/a.safetensors" });
  fs.mkdirSync(path.join(backbones, "weights"));
  fs.copyFileSync(FIX8, path.join(backbones, "weights", "a.safetensors"));
  sidecar(backbones, "b_vit16", { patchSize: 16 }, "b_vit16.pth");
  sidecar(backbones, "c_training", { patch: 16 }); // no checkpoint yet
  sidecar(backbones, "d_resnet", { family: "resnet", width: 16, weights: "d_resnet.safetensors" }, "d_resnet.safetensors");   // pretrain --arch resnet50: not for stages i–ii
  const list = bundledBackbones(backbones);
  assert.deepEqual(list.map((b) => [b.name, b.patch, b.exists]), [["a_vit8", 8, true], ["b_vit16", 16, true], ["c_training", 16, false]]);
  assert.equal(list[0].weights, path.join(backbones, "weights", "a.safetensors"));
  assert.equal(list[0].label, "demo ViT-S/8");
  assert.equal(list[1].label, "bundled demo backbone b_vit16");

  const masks = defaultBackbone("masks", { backbonesDir: backbones, env: {} });
  assert.deepEqual([masks.source, masks.path, masks.random, masks.patch], ["bundled", path.join(backbones, "b_vit16.pth"), false, 16]);
  const cluster = defaultBackbone("cluster", { backbonesDir: backbones, env: {} });
  assert.deepEqual([cluster.source, cluster.path, cluster.label], ["bundled", path.join(backbones, "weights", "a.safetensors"), "demo ViT-S/8"]);
  assert.doesNotMatch(cluster.note, /patch size is/);
});

test("a world's ResNet-50 (stage iii's body) is found by its world; others, ViTs and missing checkpoints are not", () => {
  const { backbones } = setup();
  sidecar(backbones, "a_vit", { world: "shapes", patch: 16 }, "a_vit.safetensors");
  sidecar(backbones, "b_resnet_other", { family: "resnet", world: "other", weights: "b.safetensors" }, "b.safetensors");
  sidecar(backbones, "c_resnet_training", { family: "resnet", world: "shapes" });   // no checkpoint yet
  assert.equal(worldResNet("shapes", backbones), undefined);
  sidecar(backbones, "d_resnet", { family: "resnet", world: "shapes", label: "shapes R50" }, "d_resnet.safetensors");
  assert.deepEqual(worldResNet("shapes", backbones), { path: path.join(backbones, "d_resnet.safetensors"), name: "d_resnet", label: "shapes R50" });
  assert.equal(worldResNet("coco", backbones), undefined);
  // the project's own: the shapes world's is bundled
  assert.equal(worldResNet("shapes")?.path, projectPath("data", "backbones", "shapes_resnet50.safetensors"));
});

test("a single bundled backbone of the other patch size is used, with a note", () => {
  const { backbones } = setup();
  sidecar(backbones, "demo", { patch: 16 }, "demo.pth");
  const cluster = defaultBackbone("cluster", { backbonesDir: backbones, env: {} });
  assert.equal(cluster.source, "bundled");
  assert.match(cluster.note, /patch size is 16, the reference uses 8/);
  // only a sidecar without its checkpoint: the fixture
  const { backbones: other } = setup();
  sidecar(other, "demo", { patch: 16 });
  assert.equal(defaultBackbone("masks", { backbonesDir: other, env: {} }).source, "fixture");
});

test("bad sidecars are errors naming the file and the problem", () => {
  const { backbones } = setup();
  sidecar(backbones, "broken", "{ not json", "broken.pth");
  const file = path.join(backbones, "broken.json");
  assert.throws(() => defaultBackbone("masks", { backbonesDir: backbones, env: {} }),
    (e: Error) => e instanceof MaskdistillError && e.message.startsWith(`${file}: backbone sidecar is not valid JSON`));
  fs.writeFileSync(file, "[1, 2]");
  assert.throws(() => bundledBackbones(backbones), (e: Error) => e.message === `${file}: backbone sidecar must be a JSON object`);
  fs.writeFileSync(file, JSON.stringify({ patch: "16" }));
  assert.throws(() => bundledBackbones(backbones), (e: Error) => e.message === `${file}: backbone sidecar: patch size must be a positive integer, got "16"`);
  fs.writeFileSync(file, JSON.stringify({ weights: 3 }));
  assert.throws(() => bundledBackbones(backbones), (e: Error) => e.message === `${file}: backbone sidecar: "weights" must be a file name, got 3`);
  fs.writeFileSync(file, JSON.stringify({ resize: 0 }));
  assert.throws(() => bundledBackbones(backbones), (e: Error) => e.message === `${file}: backbone sidecar: "resize" must be a positive integer (stage-i short side), got 0`);
  fs.writeFileSync(file, JSON.stringify({ patch: 16, resize: 160 }));
  assert.equal(bundledBackbones(backbones)[0].resize, 160);
});

test("MASKDISTILL_BACKBONE overrides everything; the per-use variable overrides it", () => {
  const { home, backbones } = setup(["dino_deitsmall16_pretrain.pth", "dino_deitsmall8_pretrain.pth"]);
  const mine = path.join(TMP, "my-vit.pth");
  fs.copyFileSync(FIX16, mine);
  const env = { MASKDISTILL_BACKBONE: mine };
  for (const use of ["masks", "cluster"] as const) {
    const c = defaultBackbone(use, { backbonesDir: backbones, env });
    assert.deepEqual([c.source, c.path, c.random, c.label], ["env", mine, false, "my-vit.pth"]);
    assert.match(c.note, /set by MASKDISTILL_BACKBONE\./);
  }
  const cluster = defaultBackbone("cluster", { backbonesDir: backbones, env: { ...env, MASKDISTILL_BACKBONE_CLUSTER: "dino_vits8" } });
  assert.deepEqual([cluster.source, cluster.path, cluster.patch], ["env", path.join(home, "weights", "dino_deitsmall8_pretrain.pth"), 8]);
  assert.match(cluster.note, /MASKDISTILL_BACKBONE_CLUSTER/);
  // pointing it at the fixture still says the weights are random
  const fixture = defaultBackbone("masks", { backbonesDir: backbones, env: { MASKDISTILL_BACKBONE: FIX16 } });
  assert.equal(fixture.random, true);
  assert.match(fixture.note, /randomly initialised/);
  // process.env is read when no env is given
  process.env.MASKDISTILL_BACKBONE = mine;
  try {
    assert.equal(defaultBackbone("masks", { backbonesDir: backbones }).path, mine);
  } finally {
    delete process.env.MASKDISTILL_BACKBONE;
  }
});

test("bad overrides are errors that say which variable and what is wrong", () => {
  const { home, backbones } = setup();
  const missing = path.join(TMP, "nope.pth");
  assert.throws(() => defaultBackbone("masks", { backbonesDir: backbones, env: { MASKDISTILL_BACKBONE: missing } }),
    (e: Error) => e.message === `${missing}: MASKDISTILL_BACKBONE names a checkpoint that does not exist`);
  assert.throws(() => defaultBackbone("masks", { backbonesDir: backbones, env: { MASKDISTILL_BACKBONE: "dino_vits16" } }),
    (e: Error) => e.message === `${path.join(home, "weights", "dino_deitsmall16_pretrain.pth")}: MASKDISTILL_BACKBONE=dino_vits16: weights 'dino_vits16' are not downloaded (run 'npx maskdistill weights get dino_vits16')`);
  assert.throws(() => defaultBackbone("cluster", { backbonesDir: backbones, env: { MASKDISTILL_BACKBONE_CLUSTER: "vit_huge" } }),
    (e: Error) => /^MASKDISTILL_BACKBONE_CLUSTER=vit_huge: unknown weights 'vit_huge'/.test(e.message));
  assert.throws(() => defaultBackbone("segment" as never, { backbonesDir: backbones, env: {} }), /use must be "masks" or "cluster"/);
});

test("a world's backbone made for one use (sidecar \"use\") is that use's default; one without serves both", () => {
  const { backbones } = setup(["dino_deitsmall16_pretrain.pth", "dino_deitsmall8_pretrain.pth"]);
  sidecar(backbones, "w_vit", { patch: 16, world: "shapes", label: "masks and cluster" }, "w_vit.pth");
  sidecar(backbones, "w_vit_cluster", { patch: 16, world: "shapes", use: "cluster", label: "cluster only" }, "w_vit_cluster.pth");
  const opts = { backbonesDir: backbones, env: {}, world: "shapes" };
  assert.equal(defaultBackbone("masks", opts).label, "masks and cluster");
  assert.equal(defaultBackbone("cluster", opts).label, "cluster only");
  assert.equal(bundledBackbones(backbones)[1].use, "cluster");
  // only the cluster one: stage i does not take it (the real DINO ViT-S/16 instead)
  fs.rmSync(path.join(backbones, "w_vit.json"));
  assert.equal(defaultBackbone("masks", opts).source, "dino");
  assert.equal(defaultBackbone("cluster", opts).label, "cluster only");
  fs.writeFileSync(path.join(backbones, "w_vit_cluster.json"), JSON.stringify({ use: "embed" }));
  assert.throws(() => bundledBackbones(backbones), /"use" must be "masks" or "cluster", got "embed"/);
});
