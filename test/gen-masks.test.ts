// gen-masks end to end on the small reference checkpoint (ViT-S/16, depth 2) and a few coco-mini images
// at --resize 256: streaming output, errors file, resume after a kill, shards + merge-preds, the CLI.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { genMasks, mergePreds, journalPath, errorsPath, type QkBackbone, type GenMasksOptions } from "../src/distill/genMasks.js";
import { entriesPath } from "../src/runner/perImage.js";
import { folderImages, vocImages, cocoImages } from "../src/distill/imageList.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { maskFromRle, rleFromString } from "../src/mask/rle.js";
import { polygonsFromMask } from "../src/mask/polygon.js";
import { projectPath } from "../src/paths.js";
import { shardOutputPath } from "../src/runner/perImage.js";

const CKPT = projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth");
const COCO = projectPath("data", "coco-mini");
const manifest = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "reference-vit", "manifest.json"), "utf8"));
const PICK = ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg"];

let tmp = "";
let imageDir = "";
let backbone: QkBackbone;
const read = (f: string) => fs.readFileSync(f, "utf8");

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gen-masks-"));
  imageDir = path.join(tmp, "images");
  fs.mkdirSync(imageDir);
  for (const f of PICK) fs.copyFileSync(path.join(COCO, "images", f), path.join(imageDir, f));
  // a corrupt image between the good ones (sorted order: ...25, ...26_corrupt, ...30, ...)
  fs.writeFileSync(path.join(imageDir, "000000000026_corrupt.jpg"), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
  fs.writeFileSync(path.join(imageDir, "notes.txt"), "not an image, not listed");
  backbone = await loadBackbone(CKPT, { device: "cpu" });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const base = (predJson: string): GenMasksOptions => ({ images: folderImages(imageDir), predJson, backbone, resize: 256, quiet: true });

test("uninterrupted run: reference masks, a recorded corrupt image, COCO layout", async () => {
  const out = path.join(tmp, "full.json");
  const s = await genMasks(base(out));
  assert.equal(s.images, 5);
  assert.equal(s.errors, 1);
  assert.equal(s.masks + s.empty, 4);
  assert.ok(!fs.existsSync(journalPath(out)), "journal removed once the JSON is written");
  const errors = read(errorsPath(out)).trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(errors.length, 1 + s.empty);
  const bad = errors.find((e) => e.file.endsWith("000000000026_corrupt.jpg"));
  assert.equal(bad.image_id, 2);
  assert.match(bad.reason, /^truncated image file/);

  const ds = JSON.parse(read(out));
  assert.deepEqual(ds.categories, [{ id: 0, name: "object" }]);
  assert.deepEqual(ds.images.map((i: any) => [i.id, i.file_name]), [[0, PICK[0]], [1, PICK[1]], [3, PICK[2]], [4, PICK[3]]]);
  ds.annotations.forEach((a: any, i: number) => {
    assert.equal(a.id, i + 1);
    assert.equal(a.category_id, 0);
    assert.equal(a.score, 1);
    assert.equal(a.iscrowd, 0);
  });
  // each mask is the reference generator's full-size mask for that image at short side 256
  for (const a of ds.annotations) {
    const img = ds.images.find((i: any) => i.id === a.image_id);
    const ref = manifest.masks[`${img.file_name}@256`];
    const [h, w] = ref.full_hw;
    assert.deepEqual([img.height, img.width], [h, w]);
    const mask = maskFromRle(rleFromString(a.segmentation.counts, h, w));
    const want = new Uint8Array(h * w);
    const runs = typeof ref.full_mask_runs === "string" ? JSON.parse(ref.full_mask_runs) : ref.full_mask_runs;
    for (const [st, n] of runs) want.fill(1, st, st + n);
    assert.equal(a.area, ref.full_area, `${img.file_name}: area`);
    assert.ok(Buffer.from(mask).equals(Buffer.from(want)), `${img.file_name}: full-size mask`);
  }
});

test("resume after a kill mid-write equals the uninterrupted output byte for byte", async () => {
  const out = path.join(tmp, "resumed.json");
  const controller = new AbortController();
  let seen = 0;
  await assert.rejects(
    genMasks({ ...base(out), signal: controller.signal, onImage: () => { if (++seen === 3) controller.abort(); } }),
    /interrupted after 3 of 5 images; rerun with --resume/,
  );
  // simulate kill -9 during the write of the third line: cut it in the middle
  const journal = read(journalPath(out));
  const lines = journal.split("\n");
  assert.equal(lines.length, 5); // header, 3 entries, ""
  const cut = journal.length - Math.floor(lines[3].length / 2) - 1;
  fs.truncateSync(journalPath(out), Buffer.byteLength(journal.slice(0, cut)));
  const s = await genMasks({ ...base(out), resume: true });
  assert.equal(s.resumed, 2);
  assert.equal(read(out), read(path.join(tmp, "full.json")));
  assert.equal(read(errorsPath(out)), read(errorsPath(path.join(tmp, "full.json"))));
});

test("resume refuses a journal written with other settings", async () => {
  const out = path.join(tmp, "other.json");
  const controller = new AbortController();
  await assert.rejects(genMasks({ ...base(out), signal: controller.signal, onImage: () => controller.abort() }), /interrupted/);
  await assert.rejects(genMasks({ ...base(out), topk: 0.3, resume: true }), /other settings/);
});

test("keepEntries: a finished run rerun with resume recomputes nothing and writes the same bytes; with other settings it starts over", async () => {
  const out = path.join(tmp, "kept.json");
  const first = await genMasks({ ...base(out), keepEntries: true });
  assert.equal(first.resumed, 0);
  assert.ok(fs.existsSync(entriesPath(out)) && !fs.existsSync(journalPath(out)));
  const bytes = read(out);
  const again = await genMasks({ ...base(out), keepEntries: true, resume: true });
  assert.deepEqual([again.resumed, again.images], [5, 5]);
  assert.equal(read(out), bytes);
  assert.equal(read(out), read(path.join(tmp, "full.json")));
  // the kept journal is a cache of a finished run: other settings recompute everything (an interrupted journal refuses)
  const other = await genMasks({ ...base(out), topk: 0.3, keepEntries: true, resume: true });
  assert.equal(other.resumed, 0);
  assert.equal(read(out), read((await genMasks({ ...base(path.join(tmp, "topk03.json")), topk: 0.3 })).predJson));
  // without keepEntries the journal goes, as before
  await genMasks({ ...base(path.join(tmp, "plain.json")) });
  assert.ok(!fs.existsSync(entriesPath(path.join(tmp, "plain.json"))));
});

test("two shards merged equal one run", async () => {
  // both shards get the same --pred-json; each writes its own file beside it
  const sharded = path.join(tmp, "shard.json");
  const outs = [0, 1].map((i) => shardOutputPath(sharded, { index: i, count: 2 }));
  assert.deepEqual(outs.map((f) => path.basename(f)), ["shard.shard-0-of-2.json", "shard.shard-1-of-2.json"]);
  const s0 = await genMasks({ ...base(sharded), shard: { index: 0, count: 2 } });
  const s1 = await genMasks({ ...base(sharded), shard: { index: 1, count: 2 } });
  assert.deepEqual([s0.predJson, s1.predJson], outs);
  assert.equal(s0.images + s1.images, 5);
  const merged = path.join(tmp, "merged.json");
  const r = mergePreds(merged, [outs[1], outs[0]]);
  assert.equal(r.images, 4);
  assert.equal(read(merged), read(path.join(tmp, "full.json")));
  assert.equal(read(errorsPath(merged)), read(errorsPath(path.join(tmp, "full.json"))));
  assert.throws(() => mergePreds(path.join(tmp, "dup.json"), [outs[0], outs[0]]), /also occurs in/);
});

test("--segm polygon writes the reference polygons of the same masks", async () => {
  const out = path.join(tmp, "poly.json");
  await genMasks({ ...base(out), segm: "polygon" });
  const poly = JSON.parse(read(out)), rle = JSON.parse(read(path.join(tmp, "full.json")));
  assert.equal(poly.annotations.length, rle.annotations.length);
  poly.annotations.forEach((a: any, i: number) => {
    const r = rle.annotations[i];
    assert.deepEqual([a.area, a.bbox, a.image_id], [r.area, r.bbox, r.image_id]);
    const [h, w] = r.segmentation.size;
    assert.deepEqual(a.segmentation, polygonsFromMask(maskFromRle(rleFromString(r.segmentation.counts, h, w)), h, w, 2));
  });
});

test("CLI: gen-masks and merge-preds", () => {
  const out = path.join(tmp, "cli.json");
  const cli = (...args: string[]) => spawnSync(process.execPath, [projectPath("bin", "maskdistill.cjs"), ...args], { encoding: "utf8", env: { ...process.env, MASKDISTILL_QUIET: "1" } });
  const r = cli("gen-masks", "--images", imageDir, "--weights", CKPT, "--resize", "256", "--device", "cpu", "--pred-json", out, "--json");
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.deepEqual([summary.images, summary.errors], [5, 1]);
  assert.equal(read(out), read(path.join(tmp, "full.json")));
  const m = cli("merge-preds", "--out", path.join(tmp, "cli-merged.json"), ...[0, 1].map((i) => shardOutputPath(path.join(tmp, "shard.json"), { index: i, count: 2 })));
  assert.equal(m.status, 0, m.stderr);
  assert.equal(read(path.join(tmp, "cli-merged.json")), read(out));
  const bad = cli("gen-masks", "--images", imageDir, "--segm", "mask");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--pred-json is required/);
  const badSegm = cli("gen-masks", "--images", imageDir, "--pred-json", out, "--segm", "mask");
  assert.match(badSegm.stderr, /--segm expects rle or polygon, got 'mask'/);
  // COCO layout (the demo data: 313 images + instances.json): file order by id, COCO ids kept; a shard of every 100th image
  const DEMO = projectPath("data", "demo");
  let coco = path.join(tmp, "coco-shard.json");
  const c = cli("gen-masks", "--dataset", "coco", "--dataset-root", DEMO, "--weights", CKPT, "--resize", "256", "--shard", "0/100", "--pred-json", coco, "--json");
  assert.equal(c.status, 0, c.stderr);
  coco = shardOutputPath(coco, { index: 0, count: 100 });
  const ids = cocoImages(path.join(DEMO, "instances.json"), path.join(DEMO, "images")).map((i) => i.id);
  assert.equal(ids.length, 313);
  const got = JSON.parse(read(coco));
  assert.deepEqual(got.images.map((i: any) => i.id), [ids[0], ids[100], ids[200], ids[300]]);
  assert.deepEqual(got.annotations.map((a: any) => a.image_id), got.images.map((i: any) => i.id));
});

test("image lists: VOC split order, COCO ids sorted, folder errors", () => {
  const voc = path.join(tmp, "VOCdevkit", "VOC2012");
  fs.mkdirSync(path.join(voc, "ImageSets", "Main"), { recursive: true });
  fs.mkdirSync(path.join(voc, "JPEGImages"));
  fs.writeFileSync(path.join(voc, "ImageSets", "Main", "trainval.txt"), "2011_000003\n2007_000039\n\n");
  const items = vocImages(tmp, "2012", "trainval");
  assert.deepEqual(items.map((i) => [i.id, i.fileName]), [[0, "2011_000003.jpg"], [1, "2007_000039.jpg"]]);
  assert.equal(items[1].file, path.join(voc, "JPEGImages", "2007_000039.jpg"));
  assert.throws(() => vocImages(tmp, "2012", "val"), /split 'val' not found/);
  const coco = cocoImages(path.join(COCO, "instances.json"), path.join(COCO, "images"));
  assert.equal(coco.length, 313);
  assert.deepEqual(coco.slice(0, 3).map((i) => i.id), [9, 25, 30]);
  assert.ok(coco.every((c, j) => j === 0 || c.id > coco[j - 1].id));
  assert.throws(() => folderImages(path.join(tmp, "nope")), /cannot list the image folder/);
});
