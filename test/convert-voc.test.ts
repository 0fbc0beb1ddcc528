// convert-voc: VOC SegmentationObject → COCO instance GT (the reference convert_voc.py).
// Real data: voc-mini's 2007_000063 against a fixture made with PIL/numpy/skimage
// (tools/make-convert-voc-fixtures.py). Edge cases: a synthetic VOC folder in a temp dir.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import command from "../src/cli/commands/convertVoc.js";
import { readCocoDataset } from "../src/data/coco.js";
import { writeLabelPng } from "../src/data/png.js";
import { convertVoc, instancesFromLabelMaps, vocInstanceCategories } from "../src/data/vocInstances.js";
import { evaluateInstances } from "../src/evaluation/instances.js";
import { maskFromRle, rleArea, rleFromCoco, type CocoRle } from "../src/mask/rle.js";
import { projectPath } from "../src/paths.js";
import { lastJson, runCommand } from "./helpers.js";

const VOC_MINI = projectPath("data", "voc-mini");
const FIXTURE = JSON.parse(fs.readFileSync(path.join("test", "fixtures", "convert-voc", "voc-mini.json"), "utf8"));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "convert-voc-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

function writeList(name: string, ids: string[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, ids.join("\n") + "\n");
  return file;
}

// --- synthetic VOC folder -----------------------------------------------------------------------
// 'mixed' (8×6): instance 1 = 10 px dog(12) + 4 px cat(8) → dog (11); instance 2 touches void (255 in
// both maps) and covers 3 px bottle(5) + 2 px void in SegmentationClass → bottle (4); instance 3 is a
// 3/3 tie between bird(3) and car(7) → bird (2, the smaller label, as np.argmax); instance 5 lies on
// background only → skipped; instance 7 is a single pixel of person(15) → person (14), dropped in
// polygon mode (no polygon of 3 points survives tolerance 2, as the reference).
// 'noobject': no SegmentationObject PNG. 'badsize': maps of different sizes. 'empty': no instance.
const W = 8, H = 6;
const OBJ = [
  1, 1, 1, 1, 0, 0, 0, 7,
  1, 1, 1, 1, 255, 2, 2, 2,
  1, 1, 1, 1, 255, 2, 2, 0,
  1, 1, 0, 0, 255, 255, 0, 0,
  3, 3, 3, 3, 3, 3, 5, 5,
  0, 0, 0, 0, 0, 0, 5, 5,
];
const SEM = [
  12, 12, 12, 12, 0, 0, 0, 15,
  12, 12, 12, 8, 255, 5, 5, 255,
  12, 12, 8, 8, 255, 5, 255, 0,
  12, 8, 0, 0, 255, 255, 0, 0,
  3, 3, 3, 7, 7, 7, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0,
];
const synth = path.join(tmp, "VOC2012");
for (const d of ["JPEGImages", "SegmentationObject", "SegmentationClass"]) fs.mkdirSync(path.join(synth, d), { recursive: true });
const map = (data: number[], width = W, height = H) => ({ width, height, data: Uint8Array.from(data) });
writeLabelPng(path.join(synth, "SegmentationObject", "mixed.png"), map(OBJ));
writeLabelPng(path.join(synth, "SegmentationClass", "mixed.png"), map(SEM));
writeLabelPng(path.join(synth, "SegmentationClass", "noobject.png"), map(SEM));
writeLabelPng(path.join(synth, "SegmentationObject", "badsize.png"), map(new Array(12).fill(1), 4, 3));
writeLabelPng(path.join(synth, "SegmentationClass", "badsize.png"), map(new Array(12).fill(1), 3, 4));
writeLabelPng(path.join(synth, "SegmentationObject", "empty.png"), map(new Array(W * H).fill(0)));
writeLabelPng(path.join(synth, "SegmentationClass", "empty.png"), map(new Array(W * H).fill(0)));
const synthList = writeList("synth.txt", ["mixed", "noobject", "badsize", "empty"]);

test("instancesFromLabelMaps: majority vote without 0/255, ties to the smaller label, void excluded", () => {
  const inst = instancesFromLabelMaps(map(OBJ), map(SEM));
  assert.deepEqual(inst.map((i) => i.instanceId), [1, 2, 3, 5, 7]);
  assert.deepEqual(inst.map((i) => i.classId), [11, 4, 2, -1, 14]);
  assert.deepEqual(inst.map((i) => i.area), [14, 5, 6, 4, 1]);
  assert.equal(inst[0].votes[11], 10); // dog
  assert.equal(inst[0].votes[7], 4); // cat
  // instance 2's mask is exactly the five '2' pixels: the void pixels beside it are not part of it
  const on = [...inst[1].mask].flatMap((v, i) => (v ? [i] : []));
  assert.deepEqual(on, [13, 14, 15, 21, 22]);
  assert.throws(() => instancesFromLabelMaps(map([1, 1], 2, 1), map([1, 1], 1, 2)), /SegmentationObject is 2×1 but SegmentationClass is 1×2/);
});

test("convertVoc on the synthetic folder: ids are list positions, skipped images and instances are reported", () => {
  const { dataset, summary } = convertVoc(synth, ["mixed", "noobject", "badsize", "empty"]);
  assert.deepEqual(dataset.images, [
    { id: 0, file_name: "mixed.jpg", width: 8, height: 6 },
    { id: 3, file_name: "empty.jpg", width: 8, height: 6 },
  ]);
  assert.deepEqual(dataset.annotations.map((a) => [a.id, a.image_id, a.category_id, a.area, a.iscrowd]), [
    [1, 0, 11, 14, 0], [2, 0, 4, 5, 0], [3, 0, 2, 6, 0], [4, 0, 14, 1, 0],
  ]);
  assert.deepEqual(dataset.annotations.map((a) => a.bbox), [[0, 0, 4, 4], [5, 1, 3, 2], [0, 4, 6, 1], [7, 0, 1, 1]]);
  // the RLE decodes to the instance's pixels
  const rle = rleFromCoco(dataset.annotations[1].segmentation as CocoRle, H, W);
  assert.deepEqual([...maskFromRle(rle)].flatMap((v, i) => (v ? [i] : [])), [13, 14, 15, 21, 22]);
  assert.equal(dataset.categories.length, 20);
  assert.deepEqual(dataset.categories[11], { id: 11, name: "dog", supercategory: "" });
  assert.equal(summary.listed, 4);
  assert.equal(summary.images, 2);
  assert.equal(summary.objects, 4);
  assert.deepEqual(summary.objectsPerCategory, { 2: 1, 4: 1, 11: 1, 14: 1 });
  assert.deepEqual(summary.skippedImages.map((s) => s.name), ["noobject", "badsize"]);
  assert.match(summary.skippedImages[0].reason, /missing SegmentationObject[\\/]noobject\.png/);
  assert.match(summary.skippedImages[1].reason, /SegmentationObject is 4×3 but SegmentationClass is 3×4/);
  assert.deepEqual(summary.skippedInstances.map((s) => [s.name, s.instance]), [["mixed", 5]]);
  assert.match(summary.skippedInstances[0].reason, /no pixel with a class label/);
  assert.deepEqual(summary.mixedInstances.map((s) => [s.instance, s.votes]), [[1, { cat: 4, dog: 10 }], [3, { bird: 3, car: 3 }]]);
});

test("convertVoc polygon mode drops an object with no 3-point polygon; agnostic gives category 0", () => {
  const { dataset, summary } = convertVoc(synth, ["mixed"], { segm: "polygon", agnostic: true });
  assert.deepEqual(dataset.annotations.map((a) => a.category_id), [0, 0, 0]);
  assert.deepEqual(dataset.annotations.map((a) => a.area), [14, 5, 6]); // area from the mask, as the reference
  assert.ok(dataset.annotations.every((a) => Array.isArray(a.segmentation) && a.segmentation.length > 0));
  assert.deepEqual(summary.skippedInstances.map((s) => s.instance), [5, 7]);
  assert.match(summary.skippedInstances[1].reason, /no polygon with 3 points/);
  assert.deepEqual(dataset.categories, vocInstanceCategories(true));
  assert.deepEqual(dataset.categories, [{ id: 0, name: "object", supercategory: "" }]);
});

test("convert-voc on voc-mini 2007_000063: classes, areas, boxes and polygons of the Python fixture", async () => {
  const list = writeList("mini.txt", ["2007_000063", "2007_000039"]);
  const out = path.join(tmp, "mini-rle.json");
  const r = await runCommand(command, ["--dataset-root", VOC_MINI, "--set", list, "--output-file", out, "--json"]);
  assert.equal(r.code, 0);
  const s = lastJson(r.stdout);
  assert.equal(s.listed, 2);
  assert.equal(s.images, 1);
  assert.equal(s.objects, 2);
  assert.deepEqual(s.skipped_images.map((x: { name: string }) => x.name), ["2007_000039"]); // has no SegmentationObject
  assert.match(r.stdout.join("\n"), /skipped 1 image\(s\)[\s\S]*2007_000039: missing SegmentationObject/);

  const gt = readCocoDataset(out);
  const fx = FIXTURE.images[0];
  assert.deepEqual(gt.images, [{ id: 0, file_name: "2007_000063.jpg", width: fx.width, height: fx.height }]);
  assert.equal(gt.annotations.length, fx.objects.length);
  fx.objects.forEach((o: { reference_class: number; class: number; area: number; bbox: number[] }, k: number) => {
    const a = gt.annotations[k];
    assert.equal(a.category_id, o.class);
    assert.equal(a.category_id, o.reference_class); // consistent VOC masks: same vote as the reference's bincount
    assert.equal(a.area, o.area);
    assert.deepEqual(a.bbox, o.bbox);
    assert.equal(rleArea(rleFromCoco(a.segmentation!, fx.height, fx.width)), o.area);
  });
  // instance 1 = 27,632 px dog (object id 11), instance 2 = 78,930 px chair (object id 8)
  assert.deepEqual(gt.annotations.map((a) => [gt.categories[a.category_id].name, a.area]), [["dog", 27632], ["chair", 78930]]);

  // the GT scores AP 1 against itself (multi and single protocols)
  const asResults = gt.annotations.map((a) => ({ image_id: a.image_id, category_id: a.category_id, score: 1, bbox: a.bbox, segmentation: a.segmentation }));
  // (1 up to the last bit: pycocotools averages the 101 precision samples in float64)
  assert.ok(Math.abs(evaluateInstances(gt, asResults).stats[1] - 1) < 1e-12);
  assert.ok(Math.abs(evaluateInstances(gt, asResults, { mostConfident: true }).stats[1] - 1) < 1e-12);

  const outPoly = path.join(tmp, "mini-poly.json");
  const rp = await runCommand(command, ["--dataset-root", VOC_MINI, "--set", list, "--segm", "polygon", "--agnostic", "--output-file", outPoly, "--json"]);
  assert.equal(rp.code, 0);
  const poly = readCocoDataset(outPoly);
  assert.deepEqual(poly.categories, [{ id: 0, name: "object", supercategory: "" }]);
  fx.objects.forEach((o: { polygons: number[][] }, k: number) => {
    const seg = poly.annotations[k].segmentation as number[][];
    assert.equal(poly.annotations[k].category_id, 0);
    assert.equal(seg.length, o.polygons.length);
    seg.forEach((p, j) => {
      assert.equal(p.length, o.polygons[j].length);
      p.forEach((v, i) => assert.ok(Math.abs(v - o.polygons[j][i]) < 1e-9, `polygon ${j} value ${i}: ${v} vs ${o.polygons[j][i]}`));
    });
  });
});

test("convert-voc command on the synthetic folder and its errors", async () => {
  const out = path.join(tmp, "synth.json");
  const r = await runCommand(command, ["--dataset-root", synth, "--set", synthList, "--output-file", out, "--json"]);
  assert.equal(r.code, 0);
  const s = lastJson(r.stdout);
  assert.equal(s.images, 2);
  assert.equal(s.objects, 4);
  assert.equal(s.skipped_images.length, 2);
  assert.equal(s.skipped_instances.length, 1);
  assert.equal(s.mixed_instances, 2);
  assert.equal(readCocoDataset(out).annotations.length, 4);

  // the default split is the reference's 'instance' list: none of its 2,913 images is in the synthetic folder
  const rd = await runCommand(command, ["--dataset-root", synth, "--output-file", path.join(tmp, "default.json"), "--json"]);
  const sd = lastJson(rd.stdout);
  assert.equal(sd.listed, 2913);
  assert.equal(sd.images, 0);
  assert.equal(sd.skipped_images.length, 2913);
  assert.match(sd.split_file, /data[\\/]splits[\\/]voc[\\/]instance\.txt$/);

  await assert.rejects(runCommand(command, ["--dataset-root", synth]), /--output-file is required/);
  await assert.rejects(runCommand(command, ["--dataset-root", synth, "--output-file", out, "--segm", "mask"]), /--segm expects rle or polygon, got 'mask'/);
  await assert.rejects(runCommand(command, ["--dataset-root", synth, "--output-file", out, "--set", "nosuchsplit"]), /split 'nosuchsplit' is neither a file nor a known split/);
  await assert.rejects(runCommand(command, ["--dataset-root", tmp + "/nowhere", "--output-file", out]), /no PASCAL VOC 2012 folder found/);
  const emptyList = writeList("empty.txt", []);
  await assert.rejects(runCommand(command, ["--dataset-root", synth, "--output-file", out, "--set", emptyList]), /empty\.txt: the split list is empty/);
  assert.equal((await runCommand(command, ["--help"])).stdout.join("\n").includes("--segm rle|polygon"), true);
});
