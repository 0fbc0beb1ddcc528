// COCO JSON reading/writing with validation: every bad input names the file, the id and the problem.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { MaskdistillError } from "../src/errors.js";
import { readCocoDataset, readCocoResults, writeCocoJson, type CocoDataset } from "../src/data/coco.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "coco-json-test-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function file(content: unknown, raw = false): string {
  const f = path.join(tmp, `f${n++}.json`);
  fs.writeFileSync(f, raw ? String(content) : JSON.stringify(content));
  return f;
}

function small(): CocoDataset {
  return {
    images: [{ id: 1, width: 4, height: 3, file_name: "a.jpg" }, { id: 2, width: 5, height: 5, file_name: "b.jpg" }],
    categories: [{ id: 7, name: "cat" }],
    annotations: [
      { id: 10, image_id: 1, category_id: 7, bbox: [0, 0, 2, 2], area: 4, iscrowd: 0, segmentation: [[0, 0, 2, 0, 2, 2, 0, 2]] },
      { id: 11, image_id: 1, category_id: 7, bbox: [0, 0, 4, 3], area: 12, iscrowd: 1, segmentation: { size: [3, 4], counts: [0, 12] } },
    ],
  };
}

/** Asserts a MaskdistillError whose message names the file and matches every pattern. */
function rejects(fn: () => unknown, f: string, ...patterns: RegExp[]) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof MaskdistillError, `expected MaskdistillError, got ${String(e)}`);
    assert.ok(e.message.includes(f), `message names the file: ${e.message}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test("reads coco-mini: 313 images, 2753 annotations (32 crowd RLEs), 80 categories", () => {
  const ds = readCocoDataset(projectPath("data", "coco-mini", "instances.json"));
  assert.equal(ds.images.length, 313);
  assert.equal(ds.annotations.length, 2753);
  assert.equal(ds.categories.length, 80);
  assert.equal(ds.annotations.filter((a) => a.iscrowd === 1).length, 32);
  assert.ok(ds.info !== undefined && Array.isArray(ds.licenses));
});

test("reads the pycocotools prediction fixtures against their GT", () => {
  const gt = readCocoDataset(projectPath("data", "coco-mini", "instances.json"));
  const res = readCocoResults(projectPath("test", "fixtures", "pycocotools", "preds_noisy.json"), gt);
  assert.equal(res.length, 2256);
  assert.equal(typeof res[0].score, "number");
});

test("writeCocoJson writes atomically (no temporary left) and round-trips", () => {
  const ds = small();
  const out = path.join(tmp, "nested", "dir", "out.json");
  writeCocoJson(out, ds);
  assert.deepEqual(readCocoDataset(out), ds);
  assert.deepEqual(fs.readdirSync(path.dirname(out)), ["out.json"]);
  writeCocoJson(out, { ...ds, images: ds.images.slice(0, 1), annotations: ds.annotations.slice(0, 1) });
  assert.equal(readCocoDataset(out).images.length, 1);
});

test("a missing iscrowd reads as 0", () => {
  const ds = small() as unknown as { annotations: Record<string, unknown>[] };
  delete ds.annotations[0].iscrowd;
  assert.equal(readCocoDataset(file(ds)).annotations[0].iscrowd, 0);
});

test("malformed JSON and missing top-level lists", () => {
  const bad = file("{ not json", true);
  rejects(() => readCocoDataset(bad), bad, /not valid JSON/);
  const missing = file({ images: [], annotations: [] });
  rejects(() => readCocoDataset(missing), missing, /missing the 'categories' list/);
  const nope = path.join(tmp, "does-not-exist.json");
  rejects(() => readCocoDataset(nope), nope, /cannot be read/);
});

test("bad images and categories: missing fields, duplicate ids", () => {
  const noSize = small() as unknown as { images: Record<string, unknown>[] };
  delete noSize.images[1].height;
  const f1 = file(noSize);
  rejects(() => readCocoDataset(f1), f1, /image id 2/, /'height' must be a positive integer/);
  const dup = small();
  dup.images[1].id = 1;
  const f2 = file(dup);
  rejects(() => readCocoDataset(f2), f2, /image id 1/, /duplicate image id/);
  const dupCat = small();
  dupCat.categories.push({ id: 7, name: "dog" });
  const f3 = file(dupCat);
  rejects(() => readCocoDataset(f3), f3, /category id 7/, /duplicate/);
});

test("bad annotations: missing fields, unknown image or category, duplicate ids", () => {
  const noBox = small() as unknown as { annotations: Record<string, unknown>[] };
  delete noBox.annotations[0].bbox;
  const f1 = file(noBox);
  rejects(() => readCocoDataset(f1), f1, /annotation id 10/, /'bbox' must be/);
  const noCat = small() as unknown as { annotations: Record<string, unknown>[] };
  delete noCat.annotations[1].category_id;
  const f2 = file(noCat);
  rejects(() => readCocoDataset(f2), f2, /annotation id 11/, /category_id/);
  const unknownImage = small();
  unknownImage.annotations[1].image_id = 99;
  const f3 = file(unknownImage);
  rejects(() => readCocoDataset(f3), f3, /annotation id 11/, /image_id 99 is not in 'images'/);
  const unknownCat = small();
  unknownCat.annotations[0].category_id = 3;
  const f4 = file(unknownCat);
  rejects(() => readCocoDataset(f4), f4, /annotation id 10/, /category_id 3 is not in 'categories'/);
  const dup = small();
  dup.annotations[1].id = 10;
  const f5 = file(dup);
  rejects(() => readCocoDataset(f5), f5, /annotation id 10/, /duplicate annotation id/);
  const crowd = small();
  crowd.annotations[0].iscrowd = 2;
  const f6 = file(crowd);
  rejects(() => readCocoDataset(f6), f6, /annotation id 10/, /iscrowd/);
});

test("bad segmentations: short or odd polygons, empty list, RLE size or counts that do not fit the image", () => {
  const cases: [unknown, RegExp][] = [
    [[[0, 0, 2, 0]], /polygon 0 has 4 numbers; a polygon needs an even count of at least 6/],
    [[[0, 0, 2, 0, 2, 2, 0, 2], [1, 1, 2, 2, 3]], /polygon 1 has 5 numbers/],
    [[[0, 0, 2, 0, 2, 2, 0]], /polygon 0 has 7 numbers/],
    [[[0, 0, 2, 0, "x", 2]], /not a finite number/],
    [[], /empty polygon list/],
    [{ size: [4, 3], counts: [0, 12] }, /RLE size \[4, 3\] differs from the size of image 1 \[3, 4\]/],
    [{ size: [3, 4], counts: [0, 11] }, /RLE counts sum to 11, expected height\*width = 12/],
    [{ size: [3, 4], counts: "0<~" }, /counts string is malformed/],
    [{ size: [3, 4] }, /needs counts/],
  ];
  for (const [seg, pattern] of cases) {
    const ds = small();
    ds.annotations[1].segmentation = seg as never;
    const f = file(ds);
    rejects(() => readCocoDataset(f), f, /annotation id 11 \(image 1\)/, pattern);
  }
});

test("results: a list or an {annotations} file; unknown image or category, missing score, RLE size mismatch", () => {
  const gt = small();
  const good = { image_id: 1, category_id: 7, score: 0.5, bbox: [0, 0, 1, 1], segmentation: { size: [3, 4], counts: "<" } };
  assert.equal(readCocoResults(file([good]), gt).length, 1);
  assert.equal(readCocoResults(file({ images: [], annotations: [good] }), gt).length, 1);   // gen-masks / detect output
  const notList = file({ detections: [] });
  rejects(() => readCocoResults(notList, gt), notList, /JSON list of detections/);
  // class-agnostic evaluation accepts any category id (pseudo-classes)
  assert.equal(readCocoResults(file([{ ...good, category_id: 99 }]), gt, { anyCategory: true }).length, 1);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ image_id: 42 }, /result #0: image_id 42 is not an image of the ground truth/],
    [{ category_id: 8 }, /result #0 \(image 1\): category_id 8 is not a ground-truth category/],
    [{ score: "high" }, /result #0 \(image 1\): missing or non-finite 'score'/],
    [{ score: null }, /non-finite 'score'/],
    [{ bbox: [1, 2, 3] }, /'bbox' must be \[x, y, width, height\]/],
    [{ bbox: undefined, segmentation: undefined }, /neither 'bbox' nor 'segmentation'/],
    [{ image_id: 2 }, /result #0 \(image 2\): RLE size \[3, 4\] differs from the size of image 2 \[5, 5\]/],
  ];
  for (const [patch, pattern] of cases) {
    const f = file([{ ...good, ...patch }]);
    rejects(() => readCocoResults(f, gt), f, pattern);
  }
  // Without GT only the shape of each result is checked.
  assert.equal(readCocoResults(file([{ ...good, image_id: 42 }])).length, 1);
});
