// VOC readers and the palette writer against real PASCAL VOC 2012 files (data/voc-mini).
// Expected pixel counts were read with PIL (np.unique on the palette indices).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { readVocSegmentationClass, readVocSegmentationObject, readVocAnnotation, readSplit, vocRoot, VOC_CLASSES } from "../src/data/voc.js";
import { encode } from "fast-png";
import { readLabelPng, vocColormap, writeLabelPng } from "../src/data/png.js";

const voc = projectPath("data", "voc-mini");
const counts = (d: Uint8Array) => {
  const m: Record<number, number> = {};
  for (const v of d) m[v] = (m[v] ?? 0) + 1;
  return m;
};

test("VOC colormap matches the devkit table (METHOD.md §1.1)", () => {
  const cm = vocColormap();
  assert.deepEqual(cm[0], [0, 0, 0]);
  assert.deepEqual(cm[1], [128, 0, 0]);
  assert.deepEqual(cm[8], [64, 0, 0]);
  assert.deepEqual(cm[15], [192, 128, 128]);
  assert.deepEqual(cm[20], [0, 64, 128]);
  assert.deepEqual(cm[255], [224, 224, 192]);
  assert.equal(VOC_CLASSES[15], "person");
});

test("SegmentationClass palette PNGs read as class indices (PIL counts)", () => {
  const expected: Record<string, Record<number, number>> = {
    "2007_000039": { 0: 154539, 20: 30031, 255: 2930 },
    "2007_000063": { 0: 72224, 9: 78930, 12: 27632, 255: 8714 },
    "2011_000003": { 0: 122905, 5: 601, 15: 29270, 255: 16224 },
    "2011_000025": { 0: 62682, 6: 105698, 7: 4967, 255: 14153 },
  };
  for (const [id, exp] of Object.entries(expected)) {
    const m = readVocSegmentationClass(path.join(voc, "SegmentationClass", `${id}.png`));
    assert.equal(m.width, 500);
    assert.deepEqual(counts(m.data), exp);
  }
  const obj = readVocSegmentationObject(path.join(voc, "SegmentationObject", "2007_000063.png"));
  assert.deepEqual(counts(obj.data), { 0: 72224, 1: 27632, 2: 78930, 255: 8714 });
});

test("Annotations XML: boxes, difficult, size", () => {
  const a = readVocAnnotation(path.join(voc, "Annotations", "2007_000063.xml"));
  assert.equal(a.width, 500);
  assert.equal(a.height, 375);
  assert.equal(a.segmented, true);
  assert.deepEqual(a.objects.map((o) => [o.name, o.classId, o.difficult, o.truncated]), [["dog", 11, false, false], ["chair", 8, false, true]]);
  assert.deepEqual(a.objects[0].bbox, { xmin: 123, ymin: 115, xmax: 379, ymax: 275 });
});

test("palette PNG round trip keeps indices and writes the VOC palette", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "md-png-"));
  const orig = readVocSegmentationClass(path.join(voc, "SegmentationClass", "2011_000003.png"));
  const f = path.join(dir, "x.png");
  writeLabelPng(f, orig);
  const back = readLabelPng(f);
  assert.deepEqual(back.data, orig.data);
  // the palette travels: byte offset of PLTE holds the colormap
  const buf = fs.readFileSync(f);
  const plte = buf.indexOf(Buffer.from("PLTE"));
  assert.deepEqual([...buf.subarray(plte + 4, plte + 4 + 9)], [0, 0, 0, 128, 0, 0, 0, 128, 0]);
});

test("split lists and root discovery", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "md-voc-"));
  fs.mkdirSync(path.join(dir, "VOCdevkit", "VOC2012", "JPEGImages"), { recursive: true });
  assert.equal(vocRoot(dir), path.join(dir, "VOCdevkit", "VOC2012"));
  fs.writeFileSync(path.join(dir, "s.txt"), "2007_000039\n\n2007_000063 -1\r\n");
  assert.deepEqual(readSplit(path.join(dir, "s.txt")), ["2007_000039", "2007_000063"]);
  assert.throws(() => vocRoot(path.join(dir, "nowhere")), /no PASCAL VOC 2012 folder found/);
});

test("bad masks: RGB PNG, unexpected values, directory, not a PNG — errors name the file", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "md-bad-"));
  const bad = path.join(dir, "bad.png");
  writeLabelPng(bad, { width: 2, height: 1, data: Uint8Array.from([3, 77]) });
  assert.throws(() => readVocSegmentationClass(bad), (e: Error) => e.message.includes(bad) && /unexpected label values 77/.test(e.message));
  assert.throws(() => readLabelPng(dir), (e: Error) => e.message.includes(dir) && /directory/.test(e.message));
  const txt = path.join(dir, "t.png");
  fs.writeFileSync(txt, "hello");
  assert.throws(() => readLabelPng(txt), (e: Error) => e.message.includes(txt) && /not a readable PNG/.test(e.message));
  const rgb = path.join(dir, "rgb.png");
  fs.writeFileSync(rgb, encode({ width: 1, height: 1, data: Uint8Array.from([255, 0, 0]), channels: 3, depth: 8 }));
  assert.throws(() => readLabelPng(rgb), (e: Error) => e.message.includes(rgb) && /cannot be read as class ids/.test(e.message));
  assert.throws(() => readVocAnnotation(txt), /not a VOC annotation XML/);
});
