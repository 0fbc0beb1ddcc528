// The procedural shapes world (src/shapes/, `maskdistill make-shapes`): determinism, ground truth that
// matches the drawn object, and the existing readers and commands accepting the output unchanged.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import makeShapes from "../src/cli/commands/makeShapes.js";
import genMasksCommand from "../src/cli/commands/genMasks.js";
import evalSemsegCommand from "../src/cli/commands/evalSemseg.js";
import evalInstancesCommand from "../src/cli/commands/evalInstances.js";
import { runCommand, lastJson } from "./helpers.js";
import { projectPath } from "../src/paths.js";
import { readCocoDataset } from "../src/data/coco.js";
import { loadRgb } from "../src/data/image.js";
import { readVocSegmentationClass, readVocSegmentationObject } from "../src/data/voc.js";
import { cocoImages, vocImages } from "../src/distill/imageList.js";
import { rleFromCoco, maskFromRle } from "../src/mask/rle.js";
import { SHAPE_CLASSES, SHAPE_INSIDE, maskOfCoverage, shapeCoverage, unitShapeStats } from "../src/shapes/geometry.js";
import { renderScene } from "../src/shapes/scene.js";
import { CLASS_MATERIALS } from "../src/shapes/textures.js";
import { runClustering } from "../src/cluster/run.js";
import { targetsMarkdown as targetsTable, withStageV, type ShapesTargets } from "../src/shapes/targets.js";
import { loadBackbone } from "../src/modeling/backbone.js";

const PHOTOS = ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg"].map((f) => projectPath("data", "demo", "images", f));

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p).map((f) => path.join(e.name, f)));
    else out.push(e.name);
  }
  return out.sort();
}

async function makeWorld(seed: number, extra: string[] = []): Promise<string> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "md-shapes-"));
  process.env.MASKDISTILL_QUIET = "1";
  const photoDir = fs.mkdtempSync(path.join(os.tmpdir(), "md-photos-"));
  for (const p of PHOTOS) fs.copyFileSync(p, path.join(photoDir, path.basename(p)));
  const r = await runCommand(makeShapes, ["--out", out, "--n", "40", "--size", "64", "--seed", String(seed), "--photos", photoDir, "--json", ...extra]);
  assert.equal(r.code, 0, r.stderr.join("\n"));
  return out;
}

let world: string | undefined;
const tinyWorld = async () => (world ??= await makeWorld(3));

test("shape geometry: every class has area and a bounding radius near 1; the disc mask has area πr²", () => {
  for (const c of SHAPE_CLASSES) {
    const s = unitShapeStats(c);
    assert.ok(s.area > 0.8 && s.area < 3.2, `${c} area ${s.area}`);
    assert.ok(s.radius > 0.8 && s.radius < 1.3, `${c} radius ${s.radius}`);
    assert.ok(SHAPE_INSIDE[c](0.05, 0.05) || c === "ring" || c === "crescent", `${c} contains its centre`);
  }
  assert.equal(SHAPE_INSIDE.ring(0, 0), false);
  const mask = maskOfCoverage(shapeCoverage({ shape: "disc", cx: 50, cy: 50, scale: 20, angle: 0.3 }, 100, 100));
  let area = 0;
  for (const v of mask) area += v;
  assert.ok(Math.abs(area - Math.PI * 400) < 25, `disc area ${area}`); // boundary ≈ 126 px
});

test("make-shapes is deterministic: the same seed gives byte-identical files, another seed other images", async () => {
  const a = await tinyWorld();
  const b = await makeWorld(3);
  const files = listFiles(a);
  assert.deepEqual(files, listFiles(b));
  assert.ok(files.length >= 40 * 3 + 6 + 3);
  for (const f of files) assert.ok(fs.readFileSync(path.join(a, f)).equals(fs.readFileSync(path.join(b, f))), `${f} differs`);
  const c = await makeWorld(4);
  assert.ok(!fs.readFileSync(path.join(a, "JPEGImages", "000000.jpg")).equals(fs.readFileSync(path.join(c, "JPEGImages", "000000.jpg"))));
  // rendering is a pure function of (seed, index)
  const s1 = renderScene(3, 7, { size: 64, distractors: true });
  const s2 = renderScene(3, 7, { size: 64, distractors: true });
  assert.deepEqual(s1.image.data, s2.image.data);
  assert.ok(s1.distractors >= 1 && s1.distractors <= 3);
  for (const dir of [b, c]) fs.rmSync(dir, { recursive: true, force: true });
});

test("paired views: view 1 shows the same object (shape, colour, fill) in a new pose over a new background", async () => {
  const opts = { size: 64, distractors: false };
  for (let i = 0; i < 6; i++) {
    const v0 = renderScene(3, i, opts), v1 = renderScene(3, i, opts, 1);
    assert.deepEqual(renderScene(3, i, opts, 1).image.data, v1.image.data);   // deterministic
    assert.equal(v1.classIndex, v0.classIndex);
    assert.equal(v1.fill, v0.fill);
    assert.notDeepEqual(v1.pose, v0.pose);
    assert.ok(v1.areaFraction > 0.05 && v1.areaFraction < 0.55, `area ${v1.areaFraction}`);
    if (v0.fill === "flat") {
      // a flat object has one colour in both views: the median colour under each mask agrees
      const median = (sc: typeof v0, ch: number) => {
        const vals: number[] = [];
        sc.mask.forEach((m, p) => { if (m) vals.push(sc.image.data[p * 3 + ch]); });
        vals.sort((a, b) => a - b);
        return vals[vals.length >> 1];
      };
      for (let ch = 0; ch < 3; ch++) assert.ok(Math.abs(median(v0, ch) - median(v1, ch)) <= 2, `channel ${ch}`);
    }
  }
  // make-shapes --paired-views: train-views/ holds view 1 of every train image, under the same names
  const dir = await makeWorld(3, ["--paired-views", "--n", "12"]);
  const train = fs.readdirSync(path.join(dir, "train-images")).sort();
  assert.deepEqual(fs.readdirSync(path.join(dir, "train-views")).sort(), train);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "world.json"), "utf8")).pairedViews, true);
  const base = await tinyWorld();   // the views do not change the world's other files
  assert.ok(fs.readFileSync(path.join(dir, "JPEGImages", "000004.jpg")).equals(fs.readFileSync(path.join(base, "JPEGImages", "000004.jpg"))));
  fs.rmSync(dir, { recursive: true, force: true });
});

test("recoloured views: view 1 keeps the shape and moves it, but draws a new colour and fill; view 0 unchanged", async () => {
  const opts = { size: 64, distractors: false }, recoloured = { ...opts, recolourViews: true };
  const meanUnderMask = (sc: ReturnType<typeof renderScene>) => {
    const m = [0, 0, 0];
    let n = 0;
    sc.mask.forEach((on, p) => { if (on) { n++; for (let ch = 0; ch < 3; ch++) m[ch] += sc.image.data[p * 3 + ch]; } });
    return m.map((v) => v / n);
  };
  let fillsDiffer = 0, coloursDiffer = 0;
  for (let i = 0; i < 12; i++) {
    const v0 = renderScene(3, i, recoloured), v1 = renderScene(3, i, recoloured, 1), plain1 = renderScene(3, i, opts, 1);
    assert.deepEqual(v0.image.data, renderScene(3, i, opts).image.data);          // view 0 is the scene itself
    assert.deepEqual(renderScene(3, i, recoloured, 1).image.data, v1.image.data);  // deterministic
    assert.equal(v1.classIndex, v0.classIndex);
    assert.deepEqual(v1.pose, plain1.pose);                                         // same pose and background as
    assert.deepEqual(v1.mask, plain1.mask);                                         // the plain paired view
    if (v1.fill !== v0.fill) fillsDiffer++;
    const a = meanUnderMask(v0), b = meanUnderMask(v1);
    if (Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]) > 30) coloursDiffer++;
  }
  assert.ok(fillsDiffer >= 5, `fill changed in ${fillsDiffer} of 12`);
  assert.ok(coloursDiffer >= 9, `colour changed in ${coloursDiffer} of 12`);
  // make-shapes: the flag is recorded and needs --paired-views
  const dir = await makeWorld(3, ["--paired-views", "--recolour-views", "--n", "12"]);
  const world = JSON.parse(fs.readFileSync(path.join(dir, "world.json"), "utf8"));
  assert.equal(world.recolourViews, true);
  assert.match(world.command, /--paired-views --recolour-views$/);
  fs.rmSync(dir, { recursive: true, force: true });
  await assert.rejects(runCommand(makeShapes, ["--out", path.join(os.tmpdir(), "md-rc-none"), "--recolour-views"]),
    /--recolour-views re-colours the paired views: add --paired-views/);
});

test("make-shapes --difficulty easy: smooth backgrounds and flat fills only, no photos, deterministic; the full world unchanged by the option", async () => {
  const easy = { size: 64, distractors: false, difficulty: "easy" as const };
  for (let i = 0; i < 24; i++) {
    const sc = renderScene(5, i, easy);
    assert.ok(["gradient", "noise"].includes(sc.background), `scene ${i}: background ${sc.background}`);
    assert.equal(sc.fill, "flat");
    assert.deepEqual(renderScene(5, i, easy).image.data, sc.image.data);
    // a flat fill: every pixel 2 px inside the mask (past the anti-aliased edge) has one colour
    const inner: number[] = [];
    const on = (x: number, y: number) => x >= 0 && y >= 0 && x < 64 && y < 64 && sc.mask[y * 64 + x] === 1;
    for (let p = 0; p < sc.mask.length; p++) {
      const x = p % 64, y = (p - x) / 64;
      let all = true;
      for (let dy = -2; dy <= 2 && all; dy++) for (let dx = -2; dx <= 2 && all; dx++) all = on(x + dx, y + dy);
      if (all) inner.push(p);
    }
    assert.ok(inner.length > 0, `scene ${i}: no interior`);
    for (const p of inner) for (let ch = 0; ch < 3; ch++) assert.ok(Math.abs(sc.image.data[p * 3 + ch] - sc.image.data[inner[0] * 3 + ch]) <= 1);
  }
  const dir = await makeWorld(3, ["--difficulty", "easy", "--n", "12"]);
  const world = JSON.parse(fs.readFileSync(path.join(dir, "world.json"), "utf8"));
  assert.equal(world.difficulty, "easy");
  assert.equal(world.photos, 0);
  assert.match(world.command, /--difficulty easy/);
  const scenes = fs.readFileSync(path.join(dir, "scenes.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.ok(scenes.every((s) => s.fill === "flat" && (s.background === "gradient" || s.background === "noise")));
  fs.rmSync(dir, { recursive: true, force: true });
  // the default world draws exactly as before the option existed (its files are what the committed backbone saw)
  const base = await tinyWorld();
  assert.equal(JSON.parse(fs.readFileSync(path.join(base, "world.json"), "utf8")).difficulty, undefined);
  await assert.rejects(runCommand(makeShapes, ["--out", path.join(os.tmpdir(), "md-easy-bad"), "--difficulty", "hard"]), /--difficulty expects full, easy or materials, got 'hard'/);
});

test("make-shapes --difficulty materials: every class in its own material (recoloured views keep it), smooth backgrounds, deterministic", async () => {
  const opts = { size: 64, distractors: false, difficulty: "materials" as const };
  const seen = new Set<number>();
  for (let i = 0; i < 40; i++) {
    const sc = renderScene(7, i, { ...opts, recolourViews: true }), view = renderScene(7, i, { ...opts, recolourViews: true }, 1);
    assert.equal(sc.fill, CLASS_MATERIALS[sc.classIndex].kind);
    assert.equal(view.fill, sc.fill);   // a new colour, the same material
    assert.ok(["gradient", "noise"].includes(sc.background));
    assert.deepEqual(renderScene(7, i, opts).image.data, sc.image.data);
    seen.add(sc.classIndex);
  }
  assert.equal(seen.size, 8);
  // the eight materials differ (kind or frequency)
  assert.equal(new Set(CLASS_MATERIALS.map((m) => `${m.kind}@${m.freq ?? ""}`)).size, SHAPE_CLASSES.length);
  const dir = await makeWorld(3, ["--difficulty", "materials", "--n", "12"]);
  const world = JSON.parse(fs.readFileSync(path.join(dir, "world.json"), "utf8"));
  assert.equal(world.difficulty, "materials");
  assert.match(world.command, /--difficulty materials/);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("shapes ground truth: one object per image, class ids, area 10–50 %, masks agree across COCO and VOC files", async () => {
  const dir = await tinyWorld();
  const world = JSON.parse(fs.readFileSync(path.join(dir, "world.json"), "utf8"));
  assert.deepEqual(world.classes, [...SHAPE_CLASSES]);
  assert.equal(world.train + world.val, 40);
  assert.equal(world.val, 5);
  const gt = readCocoDataset(path.join(dir, "instances.json"));
  assert.deepEqual(gt.categories.map((c) => [c.id, c.name]), SHAPE_CLASSES.map((n, i) => [i + 1, n]));
  assert.equal(gt.images.length, 40);
  assert.equal(gt.annotations.length, 40);
  const scenes = fs.readFileSync(path.join(dir, "scenes.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const classesSeen = new Set<number>();
  for (const ann of gt.annotations) {
    const im = gt.images.find((i) => i.id === ann.image_id)!;
    assert.equal(im.width, 64);
    const stem = path.parse(im.file_name).name;
    const scene = scenes[ann.image_id];
    assert.equal(scene.stem, stem);
    assert.equal(ann.category_id, scene.category_id);
    assert.ok(ann.category_id >= 1 && ann.category_id <= 8);
    classesSeen.add(ann.category_id);
    const frac = ann.area / (64 * 64);
    assert.ok(frac >= 0.09 && frac <= 0.51, `${stem}: area share ${frac}`);
    const cls = readVocSegmentationClass(path.join(dir, "SegmentationClass", `${stem}.png`));
    const obj = readVocSegmentationObject(path.join(dir, "SegmentationObject", `${stem}.png`));
    const rle = maskFromRle(rleFromCoco(ann.segmentation!, 64, 64));
    let n = 0;
    for (let p = 0; p < rle.length; p++) {
      assert.equal(cls.data[p], rle[p] ? ann.category_id : 0);
      assert.equal(obj.data[p], rle[p]);
      n += rle[p];
    }
    assert.equal(n, ann.area);
    const img = await loadRgb(path.join(dir, im.file_name));
    assert.deepEqual([img.width, img.height], [64, 64]);
  }
  assert.ok(classesSeen.size >= 6, `only ${classesSeen.size} classes in 40 images`);
  // splits: train then val, in instances_{train,val}.json and the VOC lists
  const val = readCocoDataset(path.join(dir, "instances_val.json"));
  assert.deepEqual(val.images.map((i) => i.id), [35, 36, 37, 38, 39]);
  assert.equal(readCocoDataset(path.join(dir, "instances_train.json")).images.length, 35);
  assert.equal(fs.readdirSync(path.join(dir, "train-images")).length, 35);
});

test("the existing readers and commands take the shapes world unchanged (VOC and COCO layouts)", async () => {
  const dir = await tinyWorld();
  // VOC layout: ImageSets/Main lists, JPEGImages
  const voc = vocImages(dir, "2012", "val");
  assert.equal(voc.length, 5);
  assert.ok(fs.existsSync(voc[0].file));
  assert.equal(vocImages(dir, "2012", "trainval").length, 40);
  // COCO layout: file names relative to the world folder
  const coco = cocoImages(path.join(dir, "instances_val.json"), dir);
  assert.ok(coco.every((im) => fs.existsSync(im.file)));

  // gen-masks (random test ViT) → eval-instances accepts its output against the world's GT
  const weights16 = projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth");
  const masks = path.join(dir, "out", "masks.json");
  const g = await runCommand(genMasksCommand, ["--dataset", "coco", "--dataset-root", dir, "--gt-file", path.join(dir, "instances.json"),
    "--weights", weights16, "--resize", "0", "--pred-json", masks, "--json"]);
  assert.equal(g.code, 0, g.stderr.join("\n"));
  const preds = readCocoDataset(masks);
  assert.equal(preds.images.length, 40);
  const results = path.join(dir, "out", "results.json");
  fs.writeFileSync(results, JSON.stringify(preds.annotations.map((a) => ({ ...a, category_id: 1 }))));
  const e = await runCommand(evalInstancesCommand, ["--gt-file", path.join(dir, "instances.json"), "--input-file", results, "--agnostic", "--json"]);
  assert.equal(e.code, 0, e.stderr.join("\n"));
  const ap = lastJson(e.stdout).ap50;
  assert.ok(ap >= 0 && ap <= 1);
  // the GT as predictions scores AP50 = 1 class-aware
  const gtAsResults = path.join(dir, "out", "gt_results.json");
  fs.writeFileSync(gtAsResults, JSON.stringify(readCocoDataset(path.join(dir, "instances.json")).annotations.map((a) => ({ ...a, score: 1 }))));
  const perfect = await runCommand(evalInstancesCommand, ["--gt-file", path.join(dir, "instances.json"), "--input-file", gtAsResults, "--json"]);
  assert.equal(lastJson(perfect.stdout).ap50, 1);

  // eval-semseg: SegmentationClass against itself over K + 1 = 9 classes
  const s = await runCommand(evalSemsegCommand, ["--pred-dir", path.join(dir, "SegmentationClass"), "--gt-dir", path.join(dir, "SegmentationClass"), "--num-classes", "9", "--json"]);
  assert.equal(s.code, 0, s.stderr.join("\n"));
  assert.equal(lastJson(s.stdout).miou_present, 1);
  assert.equal(lastJson(s.stdout).images, 40);

  // cluster (COCO mode, K = 8 from the GT's categories): GT boxes of all 40 images
  const vit8 = await loadBackbone(projectPath("test", "fixtures", "reference-vit", "vit_small8_depth2_seed1.pth"));
  try {
    const run = await runClustering({
      dataset: "coco", primary: { inputFile: masks, datasetRoot: dir, gtFile: path.join(dir, "instances.json") },
      backbone: vit8, outputFile: path.join(dir, "out", "clusters.json"), saveDir: path.join(dir, "out", "cache"),
    });
    assert.equal(run.summary.clusters, 8);
    assert.equal(run.summary.masks.clustered, preds.annotations.length);
    assert.ok(run.scores && run.scores.evaluated > 0);
    assert.deepEqual(run.classNames, [...SHAPE_CLASSES]);
  } finally {
    await vit8.dispose();
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test("a bundled backbone whose sidecar names a world is the default there only (before DINO), never for other data", async () => {
  const { defaultBackbone, bundledBackbones } = await import("../src/distill/backboneChoice.js");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "md-backbones-"));
  const fix16 = projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth");
  for (const [name, extra] of [["demo_vit", {}], ["shapes_vit", { world: "shapes", resize: 96 }]] as const) {
    fs.writeFileSync(path.join(dir, `${name}.json`), JSON.stringify({ patch: 16, label: name, ...extra }));
    fs.copyFileSync(fix16, path.join(dir, `${name}.pth`));
  }
  // a weights cache with the real DINO name present: the world's own backbone still comes first there
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "md-home-"));
  fs.mkdirSync(path.join(home, "weights"));
  const saved = process.env.MASKDISTILL_HOME;
  process.env.MASKDISTILL_HOME = home;
  try {
    assert.equal(bundledBackbones(dir).find((b) => b.name === "shapes_vit")!.world, "shapes");
    const shapes = defaultBackbone("masks", { backbonesDir: dir, env: {}, world: "shapes" });
    assert.equal(shapes.label, "shapes_vit");
    assert.equal(shapes.resize, 96);
    assert.match(shapes.note, /trained on the shapes world/);
    assert.equal(defaultBackbone("masks", { backbonesDir: dir, env: {} }).label, "demo_vit");
    fs.rmSync(path.join(dir, "demo_vit.json"));
    assert.equal(defaultBackbone("masks", { backbonesDir: dir, env: {} }).source, "fixture");
    fs.writeFileSync(path.join(dir, "bad.json"), JSON.stringify({ world: 3 }));
    assert.throws(() => bundledBackbones(dir), /"world" must be a data world's name/);
  } finally {
    if (saved === undefined) delete process.env.MASKDISTILL_HOME;
    else process.env.MASKDISTILL_HOME = saved;
  }
});

test("shapes targets: stage i rows (trained, random init, centred box) and stage ii rows as the library computes them", async () => {
  const { runShapesTargets, targetsMarkdown, SHAPES_TARGETS } = await import("../src/shapes/targets.js");
  const { scoreDiscovery, centredBoxPrediction } = await import("../src/evaluation/discovery.js");
  const dir = await makeWorld(5);
  const out = path.join(dir, "targets");
  const fix16 = projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth");
  const t = await runShapesTargets({ world: dir, weights: fix16, randomWeights: fix16, out, split: "train" });
  assert.equal(t.images, 35);
  assert.deepEqual(t.stageI.map((r) => r.method), ["stage i masks, trained backbone", "stage i masks, same ViT at random init", "centred box, 50 % of the image"]);
  const gt = readCocoDataset(path.join(dir, "instances_train.json"));
  const ids = gt.images.map((i) => i.id);
  const ours = scoreDiscovery(gt, readCocoDataset(path.join(out, "masks_trained.json")).annotations, ids);
  assert.equal(t.stageI[0].corloc, Math.round(10 * ours.corloc) / 10);
  assert.equal(t.stageI[0].meanBestIou, Math.round(10 * ours.meanBestIou) / 10);
  assert.deepEqual(t.stageI[1].corloc, t.stageI[0].corloc); // same weights in both rows here
  const box = scoreDiscovery(gt, gt.images.map((im) => centredBoxPrediction(im, 0.5)), ids);
  assert.equal(t.stageI[2].corloc, Math.round(10 * box.corloc) / 10);
  assert.equal(t.stageII.length, 2);
  assert.equal(t.stageII[0].clusters, 8);
  assert.equal(t.stageII[1].evaluated, 35); // every GT box has itself as its target
  assert.equal(t.met.corloc, t.stageI[0].corloc >= SHAPES_TARGETS.corloc);
  const md = fs.readFileSync(path.join(out, "targets.md"), "utf8");
  assert.equal(md, targetsMarkdown(t));
  assert.match(md, /\| centred box, 50 % of the image \| [\d.]+ \| [\d.]+ \|/);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "targets.json"), "utf8")).stageI, t.stageI);
  fs.rmSync(dir, { recursive: true, force: true });
});

test("stage v targets count the CRF column (the reference reports its mIoU with the CRF) and the table says so", () => {
  const committed = JSON.parse(fs.readFileSync(projectPath("data", "runs", "shapes-pipeline", "targets.json"), "utf8")) as ShapesTargets;
  const v = committed.stageV!;
  const probe = (miou: number, miouCrf: number | null) => withStageV(committed, { ...v, rounds: v.rounds.slice(0, 1), linearProbe: { ...v.linearProbe, miou, miouCrf } });
  const viaCrf = probe(71.2, 79.3);
  assert.equal(viaCrf.met.linearMiou, true);
  assert.match(targetsTable(viaCrf), /\| 71\.2 \(target ≥ 75 in either column ✓\) \| 79\.3 \|/);
  const neither = probe(71.2, 74.9);
  assert.equal(neither.met.linearMiou, false);
  assert.match(targetsTable(neither), /\| 71\.2 \(target ≥ 75 in either column ✗\) \| 74\.9 \|/);
  assert.equal(probe(75, null).met.linearMiou, true);
  // one round: "any round" is not written; the committed run's two rounds: it is
  const r0 = v.rounds[0], mark = Math.max(r0.miou, r0.miouCrf ?? -1) >= 60 ? "✓" : "✗";
  assert.ok(targetsTable(neither).includes(`| ${r0.miou.toFixed(1)} (target ≥ 60 in either column ${mark}) | ${r0.miouCrf!.toFixed(1)} |`));
  assert.equal(v.rounds.length, 2);
  const anyRound = v.rounds.some((r) => Math.max(r.miou, r.miouCrf ?? -1) >= 60) ? "✓" : "✗";
  assert.ok(targetsTable(withStageV(committed, v)).includes(`| ${r0.miou.toFixed(1)} (target ≥ 60 in either column, any round ${anyRound}) |`));
});
