// `detect` end to end with the narrow torchvision-layout fixture checkpoint: on a --images folder and a
// --dataset voc layout; shards + merge-preds and a resume after a kill give the bytes of one run; the
// output scores with eval-instances and feeds gen-segmentation; bad input gets a clear message.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { projectPath } from "../src/paths.js";
import { journalPath, shardOutputPath } from "../src/runner/perImage.js";

const WEIGHTS = projectPath("test", "fixtures", "maskrcnn", "narrow_maskrcnn.pth");
const D2_WEIGHTS = projectPath("test", "fixtures", "maskrcnn-d2", "narrow_maskrcnn_d2.pth");
const D2_TINY_PKL = projectPath("test", "fixtures", "maskrcnn-d2", "tiny_p2.pkl");
const VIT = projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth");
const SMALL = ["--min-size", "320", "--max-size", "512", "--score-thresh", "0", "--max-dets", "20"];
let tmp = "", imageDir = "";
const cli = (...args: string[]) => spawnSync(process.execPath, [projectPath("bin", "maskdistill.cjs"), ...args], { encoding: "utf8", env: { ...process.env, MASKDISTILL_QUIET: "1" } });
const read = (f: string) => fs.readFileSync(f, "utf8");
const last = (stdout: string) => JSON.parse(stdout.trim().split("\n").pop()!);

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "detect-"));
  imageDir = path.join(tmp, "images");
  fs.mkdirSync(imageDir);
  for (const f of ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg"]) fs.copyFileSync(projectPath("data", "demo", "images", f), path.join(imageDir, f));
  fs.writeFileSync(path.join(imageDir, "broken.jpg"), "not a jpeg");
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test("detect on a folder: detections best first with RLE masks; a bad image is recorded; shards + merge-preds and a resume after kill -9 give the same bytes", async () => {
  const out = path.join(tmp, "full.json");
  const r = cli("detect", "--weights", WEIGHTS, "--images", imageDir, "--out", out, ...SMALL, "--json");
  assert.equal(r.status, 0, r.stderr);
  const s = last(r.stdout);
  assert.deepEqual([s.images, s.errors, s.detections], [4, 1, 60]);
  const ds = JSON.parse(read(out));
  assert.equal(ds.images.length, 3);
  assert.equal(ds.categories.length, 20);
  for (const im of ds.images) {
    const anns = ds.annotations.filter((a: any) => a.image_id === im.id);
    assert.equal(anns.length, 20);
    for (let i = 1; i < anns.length; i++) assert.ok(anns[i - 1].score >= anns[i].score, "descending score");
    for (const a of anns) {
      assert.deepEqual(a.segmentation.size, [im.height, im.width]);
      assert.ok(a.category_id >= 0 && a.category_id < 20 && a.bbox[2] >= 0 && a.bbox[3] >= 0);
    }
  }
  assert.match(read(`${out}.errors.jsonl`), /broken\.jpg/);
  // two images at a time, one in a helper thread: the same bytes, the broken image recorded alike
  const two = path.join(tmp, "two-workers.json");
  const w = cli("detect", "--weights", WEIGHTS, "--images", imageDir, "--out", two, ...SMALL, "--workers", "2", "--threads", "2");
  assert.equal(w.status, 0, w.stderr);
  assert.equal(read(two), read(out));
  assert.equal(read(`${two}.errors.jsonl`), read(`${out}.errors.jsonl`));
  // shards with one --out (each writes OUT.shard-i-of-2.json; shard 1 through --shard auto in a SLURM array task),
  // merged in any order, or found by merge-preds beside OUT
  const sharded = path.join(tmp, "sharded.json");
  const shards = [0, 1].map((i) => shardOutputPath(sharded, { index: i, count: 2 }));
  assert.equal(cli("detect", "--weights", WEIGHTS, "--images", imageDir, "--out", sharded, ...SMALL, "--shard", "0/2").status, 0);
  const auto = spawnSync(process.execPath, [projectPath("bin", "maskdistill.cjs"), "detect", "--weights", WEIGHTS, "--images", imageDir, "--out", sharded, ...SMALL, "--shard", "auto"],
    { encoding: "utf8", env: { ...process.env, MASKDISTILL_QUIET: "1", SLURM_ARRAY_TASK_ID: "1", SLURM_ARRAY_TASK_MIN: "0", SLURM_ARRAY_TASK_MAX: "1", SLURM_ARRAY_TASK_COUNT: "2" } });
  assert.equal(auto.status, 0, auto.stderr);
  assert.ok(shards.every((f) => fs.existsSync(f)));
  const merged = path.join(tmp, "merged.json");
  const m = cli("merge-preds", "--out", merged, shards[1], shards[0]);
  assert.equal(m.status, 0, m.stderr);
  assert.equal(read(merged), read(out));
  assert.equal(read(`${merged}.errors.jsonl`), read(`${out}.errors.jsonl`));
  const found = cli("merge-preds", "--out", sharded);
  assert.equal(found.status, 0, found.stderr);
  assert.equal(read(sharded), read(out));
  assert.equal(read(`${sharded}.errors.jsonl`), read(`${out}.errors.jsonl`));
  // kill -9 once two images are in the journal; --resume finishes with the same bytes
  const partial = path.join(tmp, "resumed.json");
  const child = spawn(process.execPath, [projectPath("bin", "maskdistill.cjs"), "detect", "--weights", WEIGHTS, "--images", imageDir, "--out", partial, ...SMALL],
    { env: { ...process.env, MASKDISTILL_QUIET: "1" }, stdio: "ignore" });
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const j = fs.existsSync(journalPath(partial)) ? read(journalPath(partial)) : "";
    if (j.split("\n").length >= 4) break;   // header + 2 entries
    spawnSync("sleep", ["0.05"]);
  }
  child.kill("SIGKILL");
  await new Promise((res) => child.once("exit", res));
  assert.ok(!fs.existsSync(partial), "killed before the output was written");
  const rr = cli("detect", "--weights", WEIGHTS, "--images", imageDir, "--out", partial, ...SMALL, "--resume", "--json");
  assert.equal(rr.status, 0, rr.stderr);
  assert.ok(last(rr.stdout).resumed >= 2);
  assert.equal(read(partial), read(out));
  assert.equal(read(`${partial}.errors.jsonl`), read(`${out}.errors.jsonl`));
});

test("detect on a --dataset voc layout; the output scores with eval-instances and feeds gen-segmentation", () => {
  const voc = path.join(tmp, "VOC2012");
  fs.mkdirSync(path.join(voc, "ImageSets", "Main"), { recursive: true });
  fs.cpSync(projectPath("data", "voc-mini", "JPEGImages"), path.join(voc, "JPEGImages"), { recursive: true });
  fs.writeFileSync(path.join(voc, "ImageSets", "Main", "trainval.txt"), "2007_000039\n2011_000003\n");
  const out = path.join(tmp, "voc.json");
  const r = cli("detect", "--weights", WEIGHTS, "--dataset", "voc", "--dataset-root", voc, "--out", out, ...SMALL, "--json");
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(read(out)).images.map((i: any) => i.id), [0, 1]);
  // eval-instances, class-agnostic, against the demo GT on the folder run (the folder ids are positions: 0, 1, 2)
  const gt = path.join(tmp, "gt.json");
  const demo = JSON.parse(read(projectPath("data", "demo", "instances.json")));
  const names = ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg"];
  const images = names.map((n, i) => ({ ...demo.images.find((im: any) => im.file_name === n), id: i }));
  const oldIds = new Map(names.map((n, i) => [demo.images.find((im: any) => im.file_name === n).id, i]));
  fs.writeFileSync(gt, JSON.stringify({ images, categories: demo.categories,
    annotations: demo.annotations.filter((a: any) => oldIds.has(a.image_id)).map((a: any) => ({ ...a, image_id: oldIds.get(a.image_id) })) }));
  const e = cli("eval-instances", "--gt-file", gt, "--input-file", path.join(tmp, "full.json"), "--agnostic", "--json");
  assert.equal(e.status, 0, e.stderr);
  const ap50 = last(e.stdout).ap50;
  assert.ok(ap50 >= 0 && ap50 <= 1, `AP50 ${ap50}`);
  const g = cli("gen-segmentation", "--input-file", path.join(tmp, "full.json"), "--gt-file", gt, "--output-dir", path.join(tmp, "pseudo"), "--json");
  assert.equal(g.status, 0, g.stderr);
  assert.equal(fs.readdirSync(path.join(tmp, "pseudo")).filter((f) => f.endsWith(".png")).length, 3);
});

test("detect with a detectron2 checkpoint: the detectron2 preset by default (the torchvision one on request), labels 1…K written as 0…K−1", () => {
  const out = path.join(tmp, "d2.json");
  const r = cli("detect", "--weights", D2_WEIGHTS, "--images", imageDir, "--out", out, ...SMALL, "--json");
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /note:/);
  const s = last(r.stdout);
  assert.deepEqual([s.images, s.errors, s.detections], [4, 1, 60]);
  const ds = JSON.parse(read(out));
  assert.equal(ds.categories.length, 20);
  assert.ok(ds.annotations.every((a: any) => a.category_id >= 0 && a.category_id < 20));
  // the same weights under the other preset: allowed, with a note, and other detections
  const tvOut = path.join(tmp, "d2-tv.json");
  const t = cli("detect", "--weights", D2_WEIGHTS, "--images", imageDir, "--out", tvOut, ...SMALL, "--preset", "torchvision");
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stderr, /has detectron2's layout but runs with the torchvision preset/);
  assert.notEqual(read(tvOut), read(out));
});

test("in memory: detectImages gives the detections `detect` writes; loadMaskRcnnModel reads a train-maskrcnn file's category_ids", async () => {
  const { initEngine } = await import("../src/engine/index.js");
  const { loadMaskRcnnModel, detectImages } = await import("../src/instance/detect.js");
  const { torchvisionInference } = await import("../src/instance/maskrcnn.js");
  const { readStateDict, writeSafetensors } = await import("../src/modeling/checkpoint/index.js");
  const dir = path.join(tmp, "two");
  fs.mkdirSync(dir);
  const names = ["000000000009.jpg", "000000000025.jpg"];
  for (const f of names) fs.copyFileSync(path.join(imageDir, f), path.join(dir, f));
  const out = path.join(tmp, "two.json");
  const r = cli("detect", "--weights", WEIGHTS, "--images", dir, "--out", out, ...SMALL, "--threads", "1");
  assert.equal(r.status, 0, r.stderr);
  await initEngine({ backend: "wasm", threads: 1 });
  const model = await loadMaskRcnnModel(WEIGHTS);
  assert.deepEqual([model.layout, model.categoryIds, model.pixel], ["torchvision", null, null]);
  const mem = await detectImages({
    net: model.net, images: names.map((f, i) => ({ id: i, file: path.join(dir, f), fileName: f })),
    inference: torchvisionInference({ minSize: 320, maxSize: 512, scoreThresh: 0, detectionsPerImage: 20 }),
  });
  const written = JSON.parse(read(out)).annotations.map(({ id: _id, ...a }: any) => a);
  assert.equal(mem.length, 40);
  assert.deepEqual(JSON.parse(JSON.stringify(mem)), written);
  // a train-maskrcnn file names its classes (category_ids metadata); one that names another count is refused
  const { stateDict } = await readStateDict(WEIGHTS);
  const named = path.join(tmp, "named.safetensors");
  const ids = Array.from({ length: model.net.numClasses - 1 }, (_, i) => 101 + i);
  writeSafetensors(named, stateDict, { category_ids: JSON.stringify(ids) });
  assert.deepEqual((await loadMaskRcnnModel(named)).categoryIds, ids);
  assert.equal((await loadMaskRcnnModel(named)).preset, null);
  // …and the preset it was trained with: `detect` without --preset runs that one, silently, as --preset would
  writeSafetensors(named, stateDict, { category_ids: JSON.stringify(ids), preset: "detectron2" });
  assert.equal((await loadMaskRcnnModel(named)).preset, "detectron2");
  const byMeta = cli("detect", "--weights", named, "--images", dir, "--out", path.join(tmp, "by-meta.json"), ...SMALL, "--threads", "1");
  const byFlag = cli("detect", "--weights", named, "--images", dir, "--out", path.join(tmp, "by-flag.json"), ...SMALL, "--threads", "1", "--preset", "detectron2");
  assert.equal(byMeta.status, 0, byMeta.stderr);
  assert.doesNotMatch(byMeta.stderr, /runs with the/);
  assert.equal(read(path.join(tmp, "by-meta.json")), read(path.join(tmp, "by-flag.json")));
  assert.notEqual(read(path.join(tmp, "by-meta.json")), read(out));
  writeSafetensors(named, stateDict, { category_ids: "[1, 2]" });
  await assert.rejects(loadMaskRcnnModel(named), /category_ids metadata \[1, 2\] does not name the network's 20 classes/);
});

test("detectWithShapesModel: the shapes recipe's test settings; a model file's labels become the category ids its metadata names", async () => {
  const { readStateDict, writeSafetensors } = await import("../src/modeling/checkpoint/index.js");
  const { detectWithShapesModel, shapesInference } = await import("../src/shapes/maskRcnn.js");
  const { initEngine } = await import("../src/engine/index.js");
  await initEngine({ backend: "wasm", threads: 1 });
  const inf = await shapesInference(10);
  assert.deepEqual([inf.preset, inf.detectron2!.shortEdge, inf.detectron2!.maxSize, inf.box.detectionsPerImage, inf.rpn.postNmsTopN], ["detectron2", 160, 267, 10, 300]);
  const images = [{ id: 7, file: path.join(imageDir, "000000000009.jpg"), fileName: "000000000009.jpg" }];
  await assert.rejects(detectWithShapesModel(images, { modelFile: WEIGHTS }), /no category_ids metadata/);
  const named = path.join(tmp, "shapes-named.safetensors");
  const { stateDict } = await readStateDict(WEIGHTS);
  const ids = Array.from({ length: 20 }, (_, i) => 101 + i);
  writeSafetensors(named, stateDict, { category_ids: JSON.stringify(ids) });
  const det = await detectWithShapesModel(images, { modelFile: named, detectionsPerImage: 10 });
  assert.equal(det.images, 1);
  assert.ok(det.results.length <= 10 && det.results.every((r) => r.image_id === 7 && ids.includes(r.category_id)), JSON.stringify(det.results.map((r) => r.category_id)));
});

test("detect --proposals N: the box head scores N RPN proposals per image (each gives at most one detection per class)", () => {
  const out = path.join(tmp, "p1.json");
  const flags = ["--min-size", "320", "--max-size", "512", "--score-thresh", "0", "--max-dets", "100"];
  const r = cli("detect", "--weights", D2_WEIGHTS, "--images", imageDir, "--out", out, ...flags, "--proposals", "1", "--json");
  assert.equal(r.status, 0, r.stderr);
  const perImage = new Map<number, number>();
  for (const a of JSON.parse(read(out)).annotations) perImage.set(a.image_id, (perImage.get(a.image_id) ?? 0) + 1);
  assert.ok(perImage.size > 0 && [...perImage.values()].every((n) => n <= 20), JSON.stringify([...perImage]));
  assert.match(cli("detect", "--weights", D2_WEIGHTS, "--images", imageDir, "--out", out, "--proposals", "0").stderr, /--proposals expects a positive integer, got '0'/);
});

test("bad input: a checkpoint of another architecture, an empty folder, missing flags — each a clear message, no stack trace", () => {
  const empty = path.join(tmp, "empty");
  fs.mkdirSync(empty);
  const wrong = cli("detect", "--weights", VIT, "--images", imageDir, "--out", path.join(tmp, "x.json"));
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stderr, /vit_small16_depth2_seed0\.pth: not a Mask R-CNN R50-FPN checkpoint: keys of neither torchvision's maskrcnn_resnet50_fpn nor detectron2's/);
  assert.doesNotMatch(wrong.stderr, /\n\s+at /);
  const none = cli("detect", "--weights", WEIGHTS, "--images", empty, "--out", path.join(tmp, "y.json"));
  assert.notEqual(none.status, 0);
  assert.match(none.stderr, /no images|empty/i);
  assert.doesNotMatch(none.stderr, /\n\s+at /);
  assert.match(cli("detect", "--images", imageDir, "--out", path.join(tmp, "z.json")).stderr, /--weights is required/);
  assert.match(cli("detect", "--weights", WEIGHTS, "--images", imageDir, "--out", path.join(tmp, "z.json"), "--preset", "mmdet").stderr, /--preset expects detectron2 or torchvision, got 'mmdet'/);
  const pkl = cli("detect", "--weights", D2_TINY_PKL, "--images", imageDir, "--out", path.join(tmp, "z.json"));
  assert.match(pkl.stderr, /tiny_p2\.pkl: not a Mask R-CNN R50-FPN checkpoint/);
  assert.doesNotMatch(pkl.stderr, /\n\s+at /);
});
