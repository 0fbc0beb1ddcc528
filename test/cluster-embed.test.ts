// Stage ii embeddings: CLS tokens of box crops against the reference (manifest `cls`: ViT-S/8 depth-2
// fixture checkpoint, tolerance 1e-4 relative to the largest magnitude), batching, bad input and the
// feature cache.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { loadBackbone, type VitBackbone } from "../src/modeling/backbone.js";
import { boxProblem, embedCrops, type CropItem } from "../src/cluster/embed.js";
import { openFeatureCache, rowKey } from "../src/cluster/featureCache.js";

const REF = projectPath("test", "fixtures", "reference-vit");
const manifest = JSON.parse(fs.readFileSync(path.join(REF, "manifest.json"), "utf8"));
const IMAGES = projectPath("data", "coco-mini", "images");
const cases: { image: string; bbox: number[]; crop_hw: [number, number]; cls: number[] }[] = manifest.cls;

let vit: VitBackbone;
let tmp = "";
before(async () => {
  vit = await loadBackbone(path.join(REF, manifest.vit8), { patch: 8, device: "cpu" });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "cluster-embed-"));
});
after(async () => {
  await vit.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const itemsOf = (list: typeof cases): CropItem[] => list.map((c) => ({ file: path.join(IMAGES, c.image), bbox: c.bbox }));

function maxRelDiff(got: Float32Array, want: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let j = 0; j < want.length; j++) {
    diff = Math.max(diff, Math.abs(got[j] - want[j]));
    scale = Math.max(scale, Math.abs(want[j]));
  }
  return diff / scale;
}

test("CLS embeddings of box crops match the reference (12 crops, ≤ 1e-4 relative)", async () => {
  const res = await embedCrops(itemsOf(cases), { backbone: vit });
  assert.equal(res.problems.length, 0);
  assert.equal(res.dim, 384);
  cases.forEach((c, i) => {
    const rel = maxRelDiff(res.features.subarray(i * 384, (i + 1) * 384), c.cls);
    assert.ok(rel <= 1e-4, `${c.image} ${JSON.stringify(c.bbox)}: relative difference ${rel}`);
  });
});

test("crops of equal padded size run as one batch and give the unbatched embeddings", async () => {
  // the same box shifted by whole pixels has the same padded size; with batch size 4 they share a batch
  const c = cases[0];
  const items: CropItem[] = [0, 1, 2, 3].map((dx) => ({ file: path.join(IMAGES, c.image), bbox: [c.bbox[0] + dx, c.bbox[1], c.bbox[2], c.bbox[3]] }));
  let calls = 0;
  const counting = { patch: vit.patch, dim: vit.dim, clsBatch: (imgs: Parameters<VitBackbone["clsBatch"]>[0]) => (calls++, vit.clsBatch(imgs)) };
  const batched = await embedCrops(items, { backbone: counting, batchSize: 4 });
  assert.equal(calls, 1);
  const single = await embedCrops(items, { backbone: vit, batchSize: 1 });
  for (let i = 0; i < items.length; i++) {
    const rel = maxRelDiff(batched.features.subarray(i * 384, (i + 1) * 384), single.features.subarray(i * 384, (i + 1) * 384));
    assert.ok(rel <= 1e-5, `crop ${i}: batched vs single ${rel}`);
  }
  assert.ok(maxRelDiff(single.features.subarray(0, 384), c.cls) <= 1e-4);
});

test("bad boxes and unreadable images are recorded and skipped; the others are embedded", async () => {
  const good = itemsOf(cases.slice(0, 2));
  const items: CropItem[] = [
    good[0],
    { file: good[0].file, bbox: [10, 10, 0.5, 20] },                 // narrower than 1 px
    { file: good[0].file, bbox: [10, 10, 20, 0] },                   // empty
    { file: good[0].file, bbox: [10, Number.NaN, 20, 20] },          // not finite
    { file: good[0].file, bbox: [5000, 5000, 20, 20] },              // outside the image
    { file: path.join(tmp, "missing.jpg"), bbox: [0, 0, 10, 10] },  // no such file
    good[1],
  ];
  fs.writeFileSync(path.join(tmp, "corrupt.jpg"), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
  items.push({ file: path.join(tmp, "corrupt.jpg"), bbox: [0, 0, 10, 10] });
  const res = await embedCrops(items, { backbone: vit });
  assert.deepEqual(Array.from(res.ok), [1, 0, 0, 0, 0, 0, 1, 0]);
  const why = new Map(res.problems.map((p) => [p.index, p.problem]));
  assert.match(why.get(1)!, /degenerate bbox .*at least 1 px/);
  assert.match(why.get(2)!, /degenerate bbox/);
  assert.match(why.get(3)!, /4 finite numbers/);
  assert.match(why.get(4)!, /selects no pixels/);
  assert.match(why.get(5)!, /image cannot be read: .*missing\.jpg: image file not found/);
  assert.match(why.get(7)!, /image cannot be read: .*corrupt\.jpg/);
  assert.ok(maxRelDiff(res.features.subarray(6 * 384, 7 * 384), cases[1].cls) <= 1e-4);
  assert.equal(boxProblem([1, 2, 3]), "bbox is not [x, y, w, h] (4 finite numbers)");
  assert.equal(boxProblem([0, 0, 1, 1]), undefined);
});

test("feature cache: a rerun embeds nothing; a changed box, image or backbone misses", async () => {
  const dir = path.join(tmp, "cache");
  const imageCopy = path.join(tmp, cases[2].image);
  fs.copyFileSync(path.join(IMAGES, cases[2].image), imageCopy);
  const list = cases.slice(0, 3).map((c, i) => ({ file: i === 2 ? imageCopy : path.join(IMAGES, c.image), bbox: c.bbox }));
  const keyed = () => list.map((it, i) => ({ ...it, key: rowKey(100 + i, it.file, it.bbox) }));
  const identity = { backboneSha256: "a".repeat(64), patch: 8, dim: 384 };

  const first = await embedCrops(keyed(), { backbone: vit, cache: openFeatureCache(dir, "features1", identity) });
  assert.equal(first.embedded, 3);
  const cache = openFeatureCache(dir, "features1", identity);
  assert.equal(cache.loaded, 3);
  const again = await embedCrops(keyed(), { backbone: vit, cache });
  assert.equal(again.fromCache, 3);
  assert.equal(again.embedded, 0);
  assert.deepEqual(again.features, first.features);

  // another box for annotation 100, and the third image replaced (new mtime): those two are embedded again
  list[0] = { ...list[0], bbox: [list[0].bbox[0] + 1, list[0].bbox[1], list[0].bbox[2], list[0].bbox[3]] };
  const later = new Date(Date.now() + 5000);
  fs.utimesSync(imageCopy, later, later);
  const changed = await embedCrops(keyed(), { backbone: vit, cache: openFeatureCache(dir, "features1", identity) });
  assert.equal(changed.fromCache, 1);
  assert.equal(changed.embedded, 2);

  // another backbone: the cache is not used
  assert.equal(openFeatureCache(dir, "features1", { ...identity, backboneSha256: "b".repeat(64) }).loaded, 0);
  // a truncated data file is ignored rather than misread
  const idx = JSON.parse(fs.readFileSync(path.join(dir, "features1-aaaaaaaaaaaa-p8.json"), "utf8"));
  fs.truncateSync(path.join(dir, idx.data), 100);
  assert.equal(openFeatureCache(dir, "features1", identity).loaded, 0);
});
