// COCO20k GT builder (the reference's get_coco20k): a synthetic instances file and a short list, and
// the shipped 19,817-name list.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import command from "../src/cli/commands/buildCoco20k.js";
import { readCocoDataset, type CocoDataset } from "../src/data/coco.js";
import { buildCoco20k, COCO20K_LIST, cocoIdFromFileName, readCoco20kList } from "../src/data/coco20k.js";
import { rleFromMask, rleToCoco } from "../src/mask/rle.js";
import { lastJson, runCommand } from "./helpers.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "coco20k-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

const crowdMask = new Uint8Array(20 * 30);
for (let y = 2; y < 8; y++) for (let x = 5; x < 15; x++) crowdMask[y * 30 + x] = 1;
const poly = (x: number, y: number) => [[x, y, x + 4, y, x + 4, y + 3, x, y + 3]];

function instances(): CocoDataset {
  return {
    info: { description: "synthetic train2014" },
    licenses: [{ id: 1, name: "x" }],
    images: [9, 25, 30, 42].map((id) => ({ id, width: 30, height: 20, file_name: `COCO_train2014_${String(id).padStart(12, "0")}.jpg` })),
    annotations: [
      { id: 101, image_id: 9, category_id: 1, segmentation: poly(1, 1), area: 12, bbox: [1, 1, 4, 3], iscrowd: 0 },
      { id: 102, image_id: 25, category_id: 18, segmentation: poly(2, 2), area: 12, bbox: [2, 2, 4, 3], iscrowd: 0 },
      { id: 103, image_id: 9, category_id: 90, segmentation: poly(3, 3), area: 12, bbox: [3, 3, 4, 3], iscrowd: 0 },
      { id: 104, image_id: 30, category_id: 1, segmentation: poly(4, 4), area: 12, bbox: [4, 4, 4, 3], iscrowd: 0 },
      { id: 105, image_id: 25, category_id: 1, segmentation: rleToCoco(rleFromMask(crowdMask, 20, 30)), area: 60, bbox: [5, 2, 10, 6], iscrowd: 1 },
    ],
    categories: [
      { id: 1, name: "person", supercategory: "person" },
      { id: 18, name: "dog", supercategory: "animal" },
      { id: 90, name: "toothbrush", supercategory: "indoor" },
    ],
  };
}

test("cocoIdFromFileName: the integer after the last '_'", () => {
  assert.equal(cocoIdFromFileName("train2014/COCO_train2014_000000560992.jpg"), 560992);
  assert.equal(cocoIdFromFileName("COCO_train2014_000000000009.jpg"), 9);
  assert.equal(cocoIdFromFileName(" COCO_train2014_000000000025 "), 25);
  assert.equal(cocoIdFromFileName("train2014/image.jpg"), undefined);
});

test("the shipped COCO20k list parses to 19,817 distinct train2014 ids", () => {
  const { ids, duplicates } = readCoco20kList(COCO20K_LIST());
  assert.equal(ids.length, 19817);
  assert.equal(new Set(ids).size, 19817);
  assert.deepEqual(duplicates, []);
  assert.equal(ids[0], 560992); // first line: train2014/COCO_train2014_000000560992.jpg
  assert.ok(ids.every((id) => Number.isInteger(id) && id > 0));
  const lines = fs.readFileSync(COCO20K_LIST(), "utf8").split("\n").filter((l) => l.trim());
  assert.ok(lines.every((l) => /^train2014\/COCO_train2014_\d{12}\.jpg$/.test(l)));
});

test("buildCoco20k: list order, annotations in file order, agnostic copy, missing ids, input untouched", () => {
  const ds = instances();
  const before = JSON.stringify(ds);
  const gt = buildCoco20k(ds, [25, 9, 77]);
  assert.deepEqual(gt.classAware.images.map((im) => im.id), [25, 9]);
  assert.deepEqual(gt.classAware.annotations.map((a) => a.id), [102, 105, 101, 103]);
  assert.deepEqual(gt.classAware.annotations.map((a) => a.category_id), [18, 1, 1, 90]);
  assert.deepEqual(gt.classAware.categories.map((c) => c.id), [1, 18, 90]);
  assert.deepEqual(gt.classAware.info, { description: "synthetic train2014" });
  assert.deepEqual(gt.agnostic.annotations.map((a) => [a.id, a.category_id, a.iscrowd]), [[102, 0, 0], [105, 0, 1], [101, 0, 0], [103, 0, 0]]);
  assert.deepEqual(gt.agnostic.annotations[1].segmentation, ds.annotations[4].segmentation);
  assert.deepEqual(gt.agnostic.categories, [{ id: 0, name: "object", supercategory: "" }]);
  assert.deepEqual(gt.missingIds, [77]);
  assert.equal(JSON.stringify(ds), before);
});

test("build-coco20k command: writes both files, lists missing ids, clear errors", async () => {
  const instFile = path.join(tmp, "instances_train2014.json");
  fs.writeFileSync(instFile, JSON.stringify(instances()));
  const list = path.join(tmp, "list.txt");
  fs.writeFileSync(list, ["train2014/COCO_train2014_000000000030.jpg", "", "train2014/COCO_train2014_000000000009.jpg",
    "train2014/COCO_train2014_000000000030.jpg", "train2014/COCO_train2014_000000123456.jpg"].join("\n"));
  const out = path.join(tmp, "out");
  const r = await runCommand(command, ["--instances", instFile, "--file-list", list, "--output-dir", out, "--json"]);
  assert.equal(r.code, 0);
  const s = lastJson(r.stdout);
  assert.equal(s.listed, 3);
  assert.deepEqual(s.duplicates, [30]);
  assert.equal(s.images, 2);
  assert.equal(s.annotations, 3);
  assert.equal(s.crowd, 0);
  assert.equal(s.categories, 3);
  assert.deepEqual(s.missing_ids, [123456]);
  assert.match(r.stdout.join("\n"), /1 listed image id\(s\) are not in .*instances_train2014\.json \(skipped\): 123456/);

  const aware = readCocoDataset(path.join(out, "coco20k_instances.json"));
  const agn = readCocoDataset(path.join(out, "coco20k_instances_agnostic.json"));
  assert.deepEqual(aware.images.map((im) => im.id), [30, 9]);
  assert.deepEqual(aware.annotations.map((a) => [a.id, a.category_id]), [[104, 1], [101, 1], [103, 90]]);
  assert.deepEqual(agn.annotations.map((a) => [a.id, a.category_id]), [[104, 0], [101, 0], [103, 0]]);
  assert.deepEqual(agn.categories, [{ id: 0, name: "object", supercategory: "" }]);
  assert.equal(s.class_aware_file, path.join(out, "coco20k_instances.json"));

  const bad = path.join(tmp, "bad.txt");
  fs.writeFileSync(bad, "train2014/COCO_train2014_000000000009.jpg\ntrain2014/nothing.jpg\n");
  await assert.rejects(runCommand(command, ["--instances", instFile, "--file-list", bad, "--output-dir", out]), /bad\.txt: line 2: 'train2014\/nothing\.jpg' has no image id/);
  const notCoco = path.join(tmp, "notcoco.json");
  fs.writeFileSync(notCoco, JSON.stringify({ images: [] }));
  await assert.rejects(runCommand(command, ["--instances", notCoco, "--file-list", list, "--output-dir", out]), /notcoco\.json: missing the 'annotations' list/);
  await assert.rejects(runCommand(command, ["--instances", instFile]), /--output-dir is required\. Run 'maskdistill build-coco20k --help'/);
  await assert.rejects(runCommand(command, ["--instances", path.join(tmp, "none.json"), "--file-list", list, "--output-dir", out]), /none\.json: cannot be read/);
});
