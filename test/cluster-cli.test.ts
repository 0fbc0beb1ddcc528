// `maskdistill cluster` end to end on demo images (boxes of real COCO objects stand in for stage-i masks;
// the fixture ViT-S/8 with random weights): outputs and their consistency with the GT, the feature
// cache, determinism, a support set, results lists without images, bad flags.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import command from "../src/cli/commands/cluster.js";
import { runCommand, lastJson } from "./helpers.js";
import { projectPath } from "../src/paths.js";
import { COCO_TO_VOC } from "../src/data/cocoToVoc.js";
import { cocoGtBox, targetOf, type GtBox } from "../src/cluster/naming.js";

const WEIGHTS = projectPath("test", "fixtures", "reference-vit", "vit_small8_depth2_seed1.pth");
const DEMO = projectPath("data", "demo");
const GT_FILE = path.join(DEMO, "instances.json");
const gt = JSON.parse(fs.readFileSync(GT_FILE, "utf8"));

let tmp = "";
let primaryFile = "", supportFile = "", resultsListFile = "";
const goodIds: number[] = [];

/** One small non-crowd object box per image as a stand-in for a stage-i mask. */
function masksFor(images: { id: number }[], firstId: number) {
  const anns = [];
  for (const im of images) {
    const a = gt.annotations.find((x: any) => x.image_id === im.id && !x.iscrowd && x.bbox[2] * x.bbox[3] < 120 * 120 && x.bbox[2] >= 8 && x.bbox[3] >= 8);
    if (a) anns.push({ id: firstId + anns.length, image_id: im.id, category_id: 0, bbox: a.bbox, area: a.area, iscrowd: 0, segmentation: a.segmentation });
  }
  return anns;
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cluster-cli-"));
  const images = [...gt.images].sort((a: any, b: any) => a.id - b.id);
  const primaryImages = images.slice(0, 40), supportImages = images.slice(40, 52);
  const primary = masksFor(primaryImages, 0).slice(0, 24);
  goodIds.push(...primary.map((a) => a.id));
  primary.push({ id: 900, image_id: primary[0].image_id, category_id: 0, bbox: [10, 10, 0.5, 40], area: 0, iscrowd: 0, segmentation: undefined });
  const missing = { id: 999999, file_name: "missing.jpg", width: 100, height: 100 };
  primary.push({ id: 901, image_id: missing.id, category_id: 0, bbox: [0, 0, 10, 10], area: 100, iscrowd: 0, segmentation: undefined });
  const categories = [{ id: 0, name: "object" }];
  primaryFile = path.join(tmp, "masks1.json");
  fs.writeFileSync(primaryFile, JSON.stringify({ images: [...primaryImages, missing], annotations: primary, categories }));
  supportFile = path.join(tmp, "masks2.json");
  fs.writeFileSync(supportFile, JSON.stringify({ images: supportImages, annotations: masksFor(supportImages, 5000), categories }));
  // a results list (no images): two predictions per image, the more confident one is used
  const results = primary.slice(0, 24).flatMap((a) => [
    { image_id: a.image_id, category_id: 0, bbox: a.bbox, score: 0.9 },
    { image_id: a.image_id, category_id: 0, bbox: [0, 0, 3, 3], score: 0.1 },
  ]);
  resultsListFile = path.join(tmp, "results.json");
  fs.writeFileSync(resultsListFile, JSON.stringify(results));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const base = (out: string, ...extra: string[]) => [
  "--input-file1", primaryFile, "--dataset-root1", DEMO, "--gt-file1", GT_FILE, "--dataset", "voc",
  "--output-file", path.join(tmp, out), "--save-dir", path.join(tmp, "cache"), "--weights", WEIGHTS, "--device", "cpu", "--quiet", "--json", ...extra,
];
const readJson = (f: string) => JSON.parse(fs.readFileSync(f, "utf8"));

test("cluster: raw clusters, the reference's matched file, errors, and scores consistent with the GT", async () => {
  const r = await runCommand(command, base("out.json"));
  assert.equal(r.code, 0, r.stderr.join("\n"));
  const s = lastJson(r.stdout);
  assert.equal(s.clusters, 20);
  assert.deepEqual(s.masks, { primary: 26, support: 0, clustered: 24, skipped: 2, fromCache: 0, embedded: 24 });
  assert.ok(s.cropsPerSecond > 0);

  const raw = readJson(path.join(tmp, "out.json"));
  assert.deepEqual(raw.categories.map((c: any) => c.id), Array.from({ length: 20 }, (_, i) => i));
  assert.deepEqual(raw.annotations.map((a: any) => a.id), goodIds);
  for (const a of raw.annotations) {
    assert.ok(Number.isInteger(a.category_id) && a.category_id >= 0 && a.category_id < 20);
    assert.equal(a.score, 1.0);
    assert.ok(a.segmentation, "the mask itself is kept");
  }
  const matched = readJson(path.join(tmp, "out.matched.json"));
  assert.equal(matched.categories.length, 21);
  assert.deepEqual(matched.categories[20], { supercategory: "", id: 20, name: "background" });
  assert.equal(matched.categories[0].name, "aeroplane");
  // Hungarian: the cluster → class map is a function and one-to-one
  const clusterToClass = new Map<number, number>();
  raw.annotations.forEach((a: any, i: number) => {
    const c = matched.annotations[i].category_id;
    assert.equal(clusterToClass.get(a.category_id) ?? c, c);
    clusterToClass.set(a.category_id, c);
  });
  assert.equal(new Set(clusterToClass.values()).size, clusterToClass.size);

  // recompute ACC from the GT: target = VOC class of the best-overlapping VOC object
  const vocOfCat = new Map<number, number>(gt.categories.map((c: any) => [c.id, (COCO_TO_VOC[c.name] ?? 0) - 1]));
  let evaluated = 0, correct = 0;
  matched.annotations.forEach((a: any) => {
    const boxes: GtBox[] = gt.annotations
      .filter((g: any) => g.image_id === a.image_id && vocOfCat.get(g.category_id)! >= 0)
      .map((g: any) => ({ box: cocoGtBox(g.bbox), classId: vocOfCat.get(g.category_id)! }));
    const t = targetOf(a.bbox, boxes);
    if (!t) return;
    evaluated++;
    if (t.classId === a.category_id) correct++;
  });
  assert.equal(s.scores.evaluated, evaluated);
  assert.ok(Math.abs(s.scores.acc - (100 * correct) / evaluated) < 1e-9);
  assert.equal(s.scores.method, "hungarian");
  assert.ok(s.scores.nmi >= 0 && s.scores.nmi <= 100);

  const errors = fs.readFileSync(path.join(tmp, "out.errors.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => e.annotationId), [900, 901]);
  assert.match(errors[0].problem, /degenerate bbox/);
  assert.match(errors[1].problem, /missing\.jpg: image file not found/);
  assert.deepEqual(readJson(path.join(tmp, "cache", "summary.json")), s);
  assert.ok(r.stdout.some((l) => /ACC \d+\.\d\d {2}NMI \d+\.\d\d {2}ARI -?\d+\.\d\d/.test(l)));
});

test("cluster: a rerun takes every embedding from the cache and gives the same clusters; the seed matters", async () => {
  const r = await runCommand(command, base("again.json"));
  assert.equal(r.code, 0);
  const s = lastJson(r.stdout);
  assert.equal(s.masks.fromCache, 24);
  assert.equal(s.masks.embedded, 0);
  assert.deepEqual(readJson(path.join(tmp, "again.json")), readJson(path.join(tmp, "out.json")));
  const other = lastJson((await runCommand(command, base("seed7.json", "--seed", "7"))).stdout);
  assert.equal(other.seed, 7);
  assert.notDeepEqual(other.kmeans.initInertias, s.kmeans.initInertias);
  // too few masks for the clusters: known before embedding (usable boxes), or after it (unreadable images)
  await assert.rejects(runCommand(command, base("over.json", "--overcluster", "2")), /masks1\.json: 25 annotations with a usable box — too few for 40 clusters/);
  const input = readJson(primaryFile);
  const short = path.join(tmp, "short.json");
  fs.writeFileSync(short, JSON.stringify({ ...input, annotations: [...input.annotations.slice(0, 19), input.annotations[25]] }));
  await assert.rejects(runCommand(command, base("short-out.json", "--input-file1", short)), /short\.json: 19 masks could be embedded \(1 skipped, see .*short-out\.errors\.jsonl\) — too few for 20 clusters/);
  assert.match(fs.readFileSync(path.join(tmp, "short-out.errors.jsonl"), "utf8"), /missing\.jpg: image file not found/);
});

test("cluster: a support set is clustered with the input but not written out", async () => {
  const r = await runCommand(command, base("with-support.json", "--input-file2", supportFile, "--dataset-root2", DEMO, "--gt-file2", GT_FILE));
  assert.equal(r.code, 0, r.stderr.join("\n"));
  const s = lastJson(r.stdout);
  assert.ok(s.masks.support >= 8);
  assert.equal(s.masks.clustered, 24 + s.masks.support);
  assert.ok(s.scoresPrimary && s.scoresPrimary.evaluated <= s.scores.evaluated);
  assert.deepEqual(readJson(path.join(tmp, "with-support.json")).annotations.map((a: any) => a.id), goodIds);
});

test("cluster: a results list without images uses the GT's images (or says it needs them)", async () => {
  const args = (gtFlag: string[]) => [
    "--input-file1", resultsListFile, "--dataset-root1", DEMO, ...gtFlag, "--output-file", path.join(tmp, "fromlist.json"),
    "--save-dir", path.join(tmp, "cache-list"), "--weights", WEIGHTS, "--device", "cpu", "--quiet", "--json",
  ];
  await assert.rejects(runCommand(command, args([])), /results\.json: has no 'images' list.*--gt-file1/);
  const r = await runCommand(command, args(["--gt-file1", GT_FILE]));
  assert.equal(r.code, 0);
  const s = lastJson(r.stdout);
  assert.equal(s.masks.clustered, 24);
  assert.match(s.notes[0], /most confident/);
  const out = readJson(path.join(tmp, "fromlist.json"));
  assert.ok(out.annotations.every((a: any) => a.score === 0.9));
  assert.equal(out.images.length, gt.images.length);
});

test("cluster: bad flags and files are refused before any work", async () => {
  await assert.rejects(runCommand(command, ["--input-file1", primaryFile, "--dataset-root1", DEMO]), /--output-file is required/);
  await assert.rejects(runCommand(command, base("x.json", "--num-classes", "21")), /--num-classes 21 but the VOC ground truth has 20 classes/);
  await assert.rejects(runCommand(command, base("x.json", "--dataset", "ade20k")), /--dataset expects voc or coco/);
  await assert.rejects(runCommand(command, base("x.json", "--patch-size", "14")), /--patch-size expects 8 or 16/);
  await assert.rejects(runCommand(command, base("x.json", "--dataset-root2", DEMO)), /need --input-file2/);
  const broken = path.join(tmp, "broken.json");
  fs.writeFileSync(broken, "{ not json");
  await assert.rejects(runCommand(command, base("x.json", "--input-file1", broken)), /broken\.json: is not valid JSON/);
  const help = await runCommand(command, ["--help"]);
  assert.match(help.stdout.join("\n"), /--overcluster M/);
});
