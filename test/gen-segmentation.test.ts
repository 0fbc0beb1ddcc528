// Stage iv (gen-segmentation): the threshold rule, both overlap rules on hand-built cases (including the
// released rule's top-two-rows effect, METHOD.md §4.2), bbx boxes, empty images, sorting, box AP50 and
// mIoU on hand-built data; resume / shards give the same bytes on the coco-mini prediction fixtures.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import {
  paintDetections, releasedOverlapHit, selectConfident, scoreOrder, boxMask, roundHalfEven, type PaintDetection,
} from "../src/pseudolabels/paint.js";
import { genSegmentation, labelImage, readDetections, boxAp50, keptDetections, summaryPath } from "../src/pseudolabels/genSegmentation.js";
import { thresholdCurve } from "../src/pseudolabels/curve.js";
import { journalPath, errorsPath } from "../src/runner/perImage.js";
import { readLabelPng, writeLabelPng } from "../src/data/png.js";
import { readCocoDataset } from "../src/data/coco.js";
import { rleFromMask, rleToCoco, rleFromCoco, maskFromRle, rlePixels } from "../src/mask/rle.js";
import { projectPath } from "../src/paths.js";

const H = 6, W = 6;
/** A 6×6 mask with ones on the given rows × columns (inclusive ranges). */
function rect(r0: number, r1: number, c0: number, c1: number, h = H, w = W): Uint8Array {
  const m = new Uint8Array(h * w);
  for (let y = r0; y <= r1; y++) for (let x = c0; x <= c1; x++) m[y * w + x] = 1;
  return m;
}
const det = (score: number, category_id: number, mask: Uint8Array, bbox: number[] = [0, 0, 1, 1]): PaintDetection => ({ score, category_id, bbox, mask });
const rows = (map: Uint8Array, w = W) => Array.from({ length: map.length / w }, (_, y) => Array.from(map.subarray(y * w, (y + 1) * w)).join(""));

let tmp = "";
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "gen-seg-")); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test("threshold rule: top detection only when it is below the threshold, else all at or above it", () => {
  assert.deepEqual(selectConfident([0.8, 0.5, 0.3], 0.9), [true, false, false]);
  assert.deepEqual(selectConfident([0.95, 0.9, 0.89, 0.2], 0.9), [true, true, false, false]);
  assert.deepEqual(selectConfident([0.9], 0.9), [true]);
  assert.deepEqual(selectConfident([], 0.9), []);
  // stable descending order; `sorted` says whether the input already was
  assert.deepEqual(scoreOrder([0.5, 0.9, 0.5, 0.7]), { order: [1, 3, 0, 2], sorted: false });
  assert.deepEqual(scoreOrder([0.9, 0.9, 0.1]), { order: [0, 1, 2], sorted: true });
});

test("intended overlap rule skips a whole detection that touches painted pixels", () => {
  // A: rows 3-5, cols 0-3 (class 1 -> label 2); B overlaps A on rows 4-5, cols 2-3; C is disjoint
  const A = det(0.99, 1, rect(3, 5, 0, 3)), B = det(0.95, 4, rect(4, 5, 2, 5)), C = det(0.92, 6, rect(0, 1, 4, 5));
  const { map, outcomes } = paintDetections([A, B, C], H, W, { overlapRule: "intended" });
  assert.deepEqual(outcomes, ["painted", "overlap", "painted"]);
  assert.deepEqual(rows(map), ["000077", "000077", "000000", "222200", "222200", "222200"]);
});

test("released overlap rule: real overlaps go unnoticed, later masks overwrite shared pixels", () => {
  const A = det(0.99, 1, rect(3, 5, 0, 3)), B = det(0.95, 4, rect(4, 5, 2, 5));
  const { map, outcomes } = paintDetections([A, B], H, W, { overlapRule: "released" });
  assert.deepEqual(outcomes, ["painted", "painted"]);
  assert.deepEqual(rows(map), ["000000", "000000", "000000", "222200", "225555", "225555"]);
});

test("released overlap rule: once the top two rows hold a label, every further detection is dropped", () => {
  // A touches row 0; B and C are far from A but are dropped all the same (painted[mask] reads rows 0 and 1)
  const A = det(0.99, 2, rect(0, 2, 0, 1)), B = det(0.97, 4, rect(4, 5, 4, 5)), C = det(0.93, 7, rect(3, 3, 3, 3));
  const released = paintDetections([A, B, C], H, W, { overlapRule: "released" });
  assert.deepEqual(released.outcomes, ["painted", "top-rows", "top-rows"]);
  assert.deepEqual(rows(released.map), ["330000", "330000", "330000", "000000", "000000", "000000"]);
  const intended = paintDetections([A, B, C], H, W, { overlapRule: "intended" });
  assert.deepEqual(intended.outcomes, ["painted", "painted", "painted"]);
  assert.deepEqual(rows(intended.map), ["330000", "330000", "330000", "000800", "000055", "000055"]);
  // an object on row 1 only also triggers it; one that stays below row 1 does not
  assert.equal(releasedOverlapHit(rect(1, 1, 5, 5), rect(4, 5, 0, 0), H, W), true);
  assert.equal(releasedOverlapHit(rect(2, 5, 0, 5), rect(0, 1, 0, 5), H, W), false);
});

test("released overlap rule is integer indexing: a mask of all ones looks at row 1 only, all zeros at row 0 only", () => {
  const row0 = rect(0, 0, 2, 2), row1 = rect(1, 1, 2, 2);
  const ones = new Uint8Array(H * W).fill(1), zeros = new Uint8Array(H * W);
  assert.equal(releasedOverlapHit(row0, ones, H, W), false); // painted[ones] = row 1 repeated: empty
  assert.equal(releasedOverlapHit(row1, ones, H, W), true);
  assert.equal(releasedOverlapHit(row0, zeros, H, W), true); // painted[zeros] = row 0 repeated
  assert.equal(releasedOverlapHit(row1, zeros, H, W), false);
  // so a full-image detection after a row-0 object is painted over everything
  const { map, outcomes } = paintDetections([det(0.99, 0, row0), det(0.98, 9, ones)], H, W, { overlapRule: "released" });
  assert.deepEqual(outcomes, ["painted", "painted"]);
  assert.ok(map.every((v) => v === 10));
  // a 1-row image cannot be indexed at row 1 (NumPy raises IndexError there)
  assert.throws(() => releasedOverlapHit(new Uint8Array([1, 0]), new Uint8Array([1, 1]), 1, 2), /row 1 of a 1-row image/);
});

test("bbx fills the box: rows round(y)..round(y+h), columns round(x)..round(x+w), Python rounding", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, -2, 2, 3]);
  // x 0.5 -> 0, x+w 2.5 -> 2 (cols 0..2); y 1.5 -> 2, y+h 4.0 -> 4 (rows 2..4)
  assert.deepEqual(rows(boxMask([0.5, 1.5, 2, 2.5], H, W)), ["000000", "000000", "111000", "111000", "111000", "000000"]);
  // clipped at the image border
  assert.deepEqual(rows(boxMask([4, 4, 10, 10], H, W)), ["000000", "000000", "000000", "000000", "000011", "000011"]);
  // bbx paints the box, not the mask; the intended rule tests the box
  const A = det(0.99, 0, rect(3, 3, 3, 3), [2, 2, 2, 2]), B = det(0.95, 1, rect(5, 5, 5, 5), [4, 4, 1, 1]);
  const { map, outcomes } = paintDetections([A, B], H, W, { maskType: "bbx" });
  assert.deepEqual(outcomes, ["painted", "overlap"]);
  assert.deepEqual(rows(map), ["000000", "000000", "001110", "001110", "001110", "000000"]);
});

/** A small data set on disk: 3 images, GT objects, a results list. */
function smallDataset(dir: string) {
  fs.mkdirSync(dir, { recursive: true });
  const images = [
    { id: 1, file_name: "a.jpg", width: W, height: H },
    { id: 2, file_name: "sub/b.jpg", width: W, height: H },
    { id: 3, file_name: "c.jpg", width: W, height: H },
  ];
  const box = (m: Uint8Array) => {
    let x0 = W, y0 = H, x1 = -1, y1 = -1;
    for (let i = 0; i < m.length; i++) if (m[i]) { const x = i % W, y = (i - x) / W; x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
    return [x0, y0, x1 - x0 + 1, y1 - y0 + 1];
  };
  const seg = (m: Uint8Array) => rleToCoco(rleFromMask(m, H, W));
  const gtMasks = [
    { image_id: 1, category_id: 1, m: rect(3, 5, 0, 3) },
    { image_id: 1, category_id: 1, m: rect(0, 1, 4, 5) },
    { image_id: 2, category_id: 2, m: rect(2, 4, 2, 4) },
  ];
  const gt = {
    images,
    annotations: gtMasks.map((g, i) => ({ id: i + 1, image_id: g.image_id, category_id: g.category_id, segmentation: seg(g.m), area: g.m.reduce((s, v) => s + v, 0), bbox: box(g.m), iscrowd: 0 })),
    categories: [{ id: 1, name: "one" }, { id: 2, name: "two" }],
  };
  // image 1: unsorted (0.5 listed before 0.97); image 2: only a low-score detection; image 3: none
  const preds = [
    { image_id: 1, category_id: 1, score: 0.5, m: rect(0, 5, 0, 5) },
    { image_id: 1, category_id: 1, score: 0.97, m: rect(3, 5, 0, 3) },
    { image_id: 2, category_id: 2, score: 0.3, m: rect(2, 4, 2, 4) },
    { image_id: 2, category_id: 1, score: 0.2, m: rect(0, 0, 0, 0) },
  ].map((p) => ({ image_id: p.image_id, category_id: p.category_id, score: p.score, bbox: box(p.m), segmentation: seg(p.m) }));
  const gtFile = path.join(dir, "images.json"), predFile = path.join(dir, "preds.json");
  fs.writeFileSync(gtFile, JSON.stringify(gt));
  fs.writeFileSync(predFile, JSON.stringify(preds));
  // semantic GT PNGs: image a: its two objects (class 1 = label... any ids: matched), b: one object, c: background
  const gtDir = path.join(dir, "SegmentationClass");
  fs.mkdirSync(gtDir);
  const paint = (list: [Uint8Array, number][]) => { const d = new Uint8Array(H * W); for (const [m, v] of list) m.forEach((x, i) => { if (x) d[i] = v; }); return { width: W, height: H, data: d }; };
  writeLabelPng(path.join(gtDir, "a.png"), paint([[rect(3, 5, 0, 3), 15], [rect(0, 1, 4, 5), 15]]));
  writeLabelPng(path.join(gtDir, "b.png"), paint([[rect(2, 4, 2, 4), 8]]));
  writeLabelPng(path.join(gtDir, "c.png"), paint([]));
  return { gtFile, predFile, gtDir };
}

test("gen-segmentation on a hand-built set: maps, empty images, sorting warning, AP50 and mIoU", async () => {
  const { gtFile, predFile, gtDir } = smallDataset(path.join(tmp, "small"));
  const out = path.join(tmp, "small-out");
  const warnings: string[] = [];
  const s = await genSegmentation({ inputFile: predFile, gtFile, outputDir: out, gtDir, quiet: true, onWarning: (m) => warnings.push(m) });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /preds\.json: the detections of 1 image\(s\) are not in descending score order \(e\.g\. image 1\)/);
  assert.deepEqual(fs.readdirSync(out).sort(), ["a.png", "b.png", "c.png", "summary.json", "summary.json.errors.jsonl"]);
  // image a: 0.97 (class 1 -> 2) painted first; 0.5 is below the threshold
  assert.deepEqual(rows(readLabelPng(path.join(out, "a.png")).data), ["000000", "000000", "000000", "222200", "222200", "222200"]);
  // image b: top detection 0.3 < 0.9: kept alone (label 3); c: no detection, all background
  assert.deepEqual(rows(readLabelPng(path.join(out, "b.png")).data), ["000000", "000000", "003330", "003330", "003330", "000000"]);
  assert.ok(readLabelPng(path.join(out, "c.png")).data.every((v) => v === 0));
  assert.deepEqual(s.thresholdRule, { kept: 2, droppedBelowThreshold: 1, droppedNotTop: 1 });
  assert.deepEqual(s.overlapRuleCounts, { painted: 2, droppedOverlap: 0, droppedTopRows: 0 });
  assert.deepEqual(s.emptyImages, { count: 1, images: [{ image_id: 3, stem: "c" }] });
  assert.equal(s.backgroundOnly, 1);
  assert.equal(s.unsortedImages, 1);
  // AP50: class 1 has 2 GT objects and 1 exact kept box (precision 1 up to recall 0.5: 51 of 101 recall
  // points); class 2 has 1 GT and 1 exact kept box (AP 1): mean (51/101 + 1) / 2
  assert.ok(Math.abs(s.ap50! - (51 / 101 + 1) / 2) < 1e-12, String(s.ap50));
  // agnostic: 3 GT, the 2 kept boxes both match: recall 2/3 at precision 1 -> recall thresholds 0..0.66: 67/101
  assert.ok(Math.abs(s.ap50Agnostic! - 67 / 101) < 1e-12, String(s.ap50Agnostic));
  // mIoU with Hungarian matching: 2 -> 15 (IoU 12/16), 3 -> 8 (IoU 9/9), 0 -> 0 (83 GT-background pixels,
  // 87 predicted background, 83 shared: 83/87); the other 18 classes count 0 (21 classes)
  const sem = s.semseg!;
  assert.equal(sem.images, 3);
  assert.deepEqual([sem.mapping[0], sem.mapping[2], sem.mapping[3]], [0, 15, 8]);
  const expected = (12 / 16 + 1 + 83 / 87) / 21;
  assert.ok(Math.abs(sem.miou - expected) < 1e-12, `${sem.miou} vs ${expected}`);
  const onDisk = JSON.parse(fs.readFileSync(path.join(out, "summary.json"), "utf8"));
  assert.deepEqual(onDisk.emptyImages, s.emptyImages);
  assert.equal(fs.readFileSync(errorsPath(path.join(out, "summary.json")), "utf8"), "");
  assert.ok(!fs.existsSync(journalPath(path.join(out, "summary.json"))));
});

test("labelImage reports why each detection was kept or dropped; released rule as an option", () => {
  const { gtFile, predFile } = smallDataset(path.join(tmp, "small2"));
  const gt = readCocoDataset(gtFile);
  const set = readDetections(predFile, gt);
  assert.deepEqual(set.unsortedImages, [1]);
  const img = gt.images[0];
  const l = labelImage(img, set.byImage.get(1)!, { threshold: 0.4 });
  assert.deepEqual(l.detections.map((d) => [d.id, d.score, d.outcome]), [[2, 0.97, "painted"], [1, 0.5, "overlap"]]);
  const r = labelImage(img, set.byImage.get(1)!, { threshold: 0.4, overlapRule: "released" });
  assert.deepEqual(r.detections.map((d) => d.outcome), ["painted", "painted"]);
  assert.ok(r.map.every((v) => v === 2)); // the full-image mask painted over the first
  assert.deepEqual(keptDetections(set, 0.9).map((d) => d.id), [2, 3]);
  assert.deepEqual(keptDetections(set, 0.1).map((d) => d.id), [1, 2, 3, 4]);
  assert.deepEqual(boxAp50(gt, []), { ap50: 0, ap50Agnostic: 0 });
  // pseudo-classes: ids named otherwise than the GT's (a stage-ii file's clusters) are not scored class-aware
  const kept = keptDetections(set, 0.9);
  const named = boxAp50(gt, kept, undefined, new Map([[1, "cluster 1"], [2, "two"]]));
  assert.equal(named.ap50, null);
  assert.match(named.ap50Note!, /category 1 is 'cluster 1' in the detections but 'one' in the GT/);
  assert.equal(named.ap50Agnostic, boxAp50(gt, kept).ap50Agnostic);
  assert.match(boxAp50(gt, kept.map((d) => ({ ...d, category_id: 7 }))).ap50Note!, /category 7 is not a GT category/);
});

test("bad input names the file", async () => {
  const { gtFile, predFile } = smallDataset(path.join(tmp, "bad"));
  const gt = readCocoDataset(gtFile);
  const write = (name: string, obj: unknown) => { const f = path.join(tmp, "bad", name); fs.writeFileSync(f, typeof obj === "string" ? obj : JSON.stringify(obj)); return f; };
  const preds = JSON.parse(fs.readFileSync(predFile, "utf8"));
  const bigCat = write("bigcat.json", [{ ...preds[0], category_id: 254 }]);
  assert.throws(() => readDetections(bigCat, gt), (e: Error) => e.message.startsWith(bigCat) && /category_id 254 gives no label/.test(e.message));
  const noImage = write("noimage.json", [{ ...preds[0], image_id: 99 }]);
  assert.throws(() => readDetections(noImage, gt), (e: Error) => e.message.startsWith(noImage) && /image_id 99 is not an image/.test(e.message));
  const notJson = write("broken.json", "[{");
  assert.throws(() => readDetections(notJson, gt), (e: Error) => e.message.startsWith(notJson) && /cannot read the detections/.test(e.message));
  const wrongSize = write("size.json", [{ ...preds[0], segmentation: rleToCoco(rleFromMask(new Uint8Array(20), 4, 5)) }]);
  assert.throws(() => readDetections(wrongSize, gt), (e: Error) => e.message.startsWith(wrongSize) && /RLE size \[4, 5\] differs/.test(e.message));
  const dupStems = write("dup.json", { ...gt, images: [...gt.images, { id: 9, file_name: "other/a.png", width: W, height: H }] });
  await assert.rejects(genSegmentation({ inputFile: predFile, gtFile: dupStems, outputDir: path.join(tmp, "bad-out"), quiet: true }),
    (e: Error) => e.message.startsWith(dupStems) && /same file stem 'a'/.test(e.message));
});

const COCO_GT = projectPath("data", "coco-mini", "instances.json");
const PREDS = projectPath("test", "fixtures", "pycocotools", "preds_noisy.json");
const listPngs = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith(".png")).sort();

test("coco-mini fixtures: shards and a resumed run after a kill give the bytes of one run", async () => {
  const full = path.join(tmp, "full"), sharded = path.join(tmp, "sharded"), resumed = path.join(tmp, "resumed");
  const s = await genSegmentation({ inputFile: PREDS, gtFile: COCO_GT, outputDir: full, quiet: true, overlapRule: "released" });
  const gt = readCocoDataset(COCO_GT);
  assert.equal(s.images, gt.images.length);
  assert.equal(listPngs(full).length, gt.images.length);
  // counts add up: every detection is kept or dropped, every kept one painted or dropped by the overlap rule
  const preds = JSON.parse(fs.readFileSync(PREDS, "utf8")) as { image_id: number; score: number }[];
  assert.equal(s.detections, preds.length);
  assert.equal(s.thresholdRule.kept + s.thresholdRule.droppedBelowThreshold + s.thresholdRule.droppedNotTop, preds.length);
  assert.equal(s.overlapRuleCounts.painted + s.overlapRuleCounts.droppedOverlap + s.overlapRuleCounts.droppedTopRows, s.thresholdRule.kept);
  const withDets = new Set(preds.map((p) => p.image_id));
  assert.equal(s.emptyImages.count, gt.images.length - withDets.size);
  // one kept detection per image whose best score is < 0.9, plus every score >= 0.9 elsewhere
  const best = new Map<number, number>();
  for (const p of preds) best.set(p.image_id, Math.max(best.get(p.image_id) ?? -1, p.score));
  const expectKept = [...best.values()].filter((b) => b < 0.9).length + preds.filter((p) => p.score >= 0.9).length;
  assert.equal(s.thresholdRule.kept, expectKept);
  assert.ok(s.unsortedImages > 0);

  for (const i of [0, 1]) {
    const r = await genSegmentation({ inputFile: PREDS, gtFile: COCO_GT, outputDir: sharded, quiet: true, overlapRule: "released", shard: { index: i, count: 2 } });
    assert.equal(r.images, i === 0 ? Math.ceil(gt.images.length / 2) : Math.floor(gt.images.length / 2));
    assert.ok(fs.existsSync(summaryPath(sharded, { index: i, count: 2 })));
  }
  assert.deepEqual(listPngs(sharded), listPngs(full));
  for (const f of listPngs(full)) assert.ok(fs.readFileSync(path.join(full, f)).equals(fs.readFileSync(path.join(sharded, f))), f);

  // kill after 5 images, tear the last journal line, resume
  const summaryFile = path.join(resumed, "summary.json");
  const abortAfter = new AbortController();
  await assert.rejects(
    genSegmentation({ inputFile: PREDS, gtFile: COCO_GT, outputDir: resumed, quiet: true, overlapRule: "released", signal: abortAfter.signal,
      onImage: (index) => { if (index === 4) abortAfter.abort(); } }),
    /interrupted after 5 of 313 images; rerun with --resume/,
  );
  const journal = fs.readFileSync(journalPath(summaryFile), "utf8");
  fs.truncateSync(journalPath(summaryFile), Buffer.byteLength(journal) - 7);
  const again = await genSegmentation({ inputFile: PREDS, gtFile: COCO_GT, outputDir: resumed, quiet: true, overlapRule: "released", resume: true });
  assert.equal(again.resumed, 4);
  assert.deepEqual(listPngs(resumed), listPngs(full));
  for (const f of listPngs(full)) assert.ok(fs.readFileSync(path.join(full, f)).equals(fs.readFileSync(path.join(resumed, f))), f);
  const strip = (t: string) => t.split(resumed).join("DIR").split(full).join("DIR");
  assert.equal(strip(fs.readFileSync(summaryFile, "utf8")), strip(fs.readFileSync(path.join(full, "summary.json"), "utf8")));
  // resume refuses other settings
  const c2 = new AbortController();
  c2.abort();
  await assert.rejects(genSegmentation({ inputFile: PREDS, gtFile: COCO_GT, outputDir: resumed, quiet: true, signal: c2.signal }), /interrupted/);
  await assert.rejects(genSegmentation({ inputFile: PREDS, gtFile: COCO_GT, outputDir: resumed, quiet: true, threshold: 0.5, resume: true }), /other settings/);
});

test("thresholdCurve scores the maps in memory as gen-segmentation + eval-semseg do", async () => {
  const { gtFile, predFile, gtDir } = smallDataset(path.join(tmp, "curve"));
  const gt = readCocoDataset(gtFile);
  const set = readDetections(predFile, gt);
  const gtMap = (img: { file_name: string }) => readLabelPng(path.join(gtDir, `${path.parse(img.file_name).name}.png`));
  const [low, high] = thresholdCurve(set, [0.1, 0.9], gtMap);
  const run = await genSegmentation({ inputFile: predFile, gtFile, outputDir: path.join(tmp, "curve-out"), gtDir, quiet: true });
  assert.ok(Math.abs(high.miou - run.semseg!.miou) < 1e-15);
  assert.equal(high.ap50, run.ap50);
  assert.deepEqual([high.kept, high.painted], [2, 2]);
  // at 0.1 image b also keeps its 0.2 detection (1 px at (0, 0), label 2): 2 -> 15 gains a false positive
  assert.deepEqual([low.kept, low.painted], [4, 3]);
  assert.ok(Math.abs(low.miou - (12 / 17 + 1 + 82 / 87) / 21) < 1e-12, String(low.miou));
  // another class count (a world of 16 labels): the same IoUs over 16 classes
  const [low16] = thresholdCurve(set, [0.1], gtMap, { numClasses: 16 });
  assert.ok(Math.abs(low16.miou - (12 / 17 + 1 + 82 / 87) / 16) < 1e-12, String(low16.miou));
  assert.equal(low16.pixelAcc, low.pixelAcc);
});

test("CLI: gen-segmentation --json, warnings on stderr, flag errors", () => {
  const { gtFile, predFile, gtDir } = smallDataset(path.join(tmp, "cli"));
  const out = path.join(tmp, "cli-out");
  const cli = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", projectPath("src", "cli", "main.ts"), ...args], { encoding: "utf8", env: { ...process.env, MASKDISTILL_QUIET: "1" } });
  const r = cli("gen-segmentation", "--input-file", predFile, "--gt-file", gtFile, "--output-dir", out, "--gt-dir", gtDir, "--overlap-rule", "released", "--mask-type", "bbx", "--json");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: .*not in descending score order/);
  assert.match(r.stdout, /threshold rule: kept 2, dropped 1 below the threshold and 1 as not the top detection/);
  const s = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.deepEqual([s.images, s.overlapRule, s.maskType, s.emptyImages.count], [3, "released", "bbx", 1]);
  assert.equal(typeof s.semseg.miou, "number");
  const bad = cli("gen-segmentation", "--input-file", predFile, "--gt-file", gtFile, "--output-dir", out, "--overlap-rule", "numpy");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--overlap-rule expects intended or released, got 'numpy'/);
  const missing = cli("gen-segmentation", "--input-file", predFile, "--output-dir", out);
  assert.match(missing.stderr, /--gt-file is required/);
});

test("rlePixels lists the ones of maskFromRle (row-major indices) without an h*w pass", () => {
  const preds = JSON.parse(fs.readFileSync(PREDS, "utf8")).slice(0, 40) as { segmentation: { size: [number, number]; counts: string } }[];
  for (const p of preds) {
    const rle = rleFromCoco(p.segmentation, p.segmentation.size[0], p.segmentation.size[1]);
    const dense = maskFromRle(rle);
    const expected: number[] = [];
    dense.forEach((v, i) => { if (v) expected.push(i); });
    assert.deepEqual(Array.from(rlePixels(rle)).sort((a, b) => a - b), expected);
  }
});

test("notebook drawing: label maps in the VOC palette, detections coloured by outcome, rows that say why", async () => {
  const { renderLabels, detectionsOverlay, outcomeRows, OUTCOME_COLORS } = await import("../src/notebook/pseudolabels.js");
  assert.deepEqual(Array.from(renderLabels(new Uint8Array([0, 1, 15, 255]), 4, 1).data), [0, 0, 0, 128, 0, 0, 192, 128, 128, 224, 224, 192]);
  const img = { width: 8, height: 8, data: new Uint8Array(8 * 8 * 3).fill(100) };
  const dets = [
    { id: 1, score: 0.95, category_id: 3, bbox: [0, 0, 4, 4], kept: true, outcome: "painted" as const },
    { id: 2, score: 0.2, category_id: 5, bbox: [4, 4, 4, 4], kept: false, outcome: "below-threshold" as const },
  ];
  const out = detectionsOverlay(img, dets, [Int32Array.from([0, 1, 8, 9]), Int32Array.from([63])]);
  const px = (x: number, y: number) => Array.from(out.data.subarray(3 * (y * 8 + x), 3 * (y * 8 + x) + 3));
  assert.deepEqual(px(0, 0), [...OUTCOME_COLORS.painted]); // box outline drawn last
  assert.deepEqual(px(7, 7), [...OUTCOME_COLORS["below-threshold"]]);
  assert.deepEqual(px(2, 2), [100, 100, 100]); // inside the box, outside every mask and outline
  const rows = outcomeRows("a", dets, (c) => `cluster ${c}`);
  assert.deepEqual(rows.map((r) => [r.rank, r.class, r.label, r.what]), [[1, "cluster 3", 4, "kept, painted"], [2, "cluster 5", 6, "dropped: score below the threshold"]]);
});
