// Decoding must equal PIL's Image.open(f).convert("RGB") byte for byte (references from
// tools/make-resize-fixtures.py with Pillow 9.4), and bad files must give a MaskdistillError naming them.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as crypto from "node:crypto";
import { decode } from "fast-png";
import { projectPath } from "../src/paths.js";
import { decodeRgb, encodePng, loadRgb, saveRgb, type RgbImage } from "../src/data/image.js";
import { MaskdistillError } from "../src/errors.js";

const dir = projectPath("test", "fixtures", "resize");
const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));
const md5 = (d: Uint8Array) => crypto.createHash("md5").update(d).digest("hex");

function readExpected(rel: string): RgbImage {
  const png = decode(fs.readFileSync(path.join(dir, rel)));
  assert.equal(png.channels, 3);
  return { width: png.width, height: png.height, data: Uint8Array.from(png.data as Uint8Array) };
}

// The fixture lists PIL's decode of all 317 COCO/VOC JPEGs of the original material; the repo bundles the
// 57 of them that the tests read (data/coco-mini/images, data/voc-mini/JPEGImages), chosen to include
// 40 ICC-tagged files and the grayscale one.
test("decode: the bundled COCO/VOC JPEGs equal PIL's decode (incl. ICC-tagged and grayscale files)", async () => {
  const shared = Object.entries<any>(index.decode.shared).filter(([rel]) => fs.existsSync(projectPath("data", rel)));
  assert.equal(shared.length, 57);
  const bad: string[] = [];
  let icc = 0, gray = 0;
  for (const [rel, ref] of shared) {
    const img = await loadRgb(projectPath("data", rel));
    assert.equal(img.width, ref.width, rel);
    assert.equal(img.height, ref.height, rel);
    if (md5(img.data) !== ref.md5) bad.push(rel);
    if (ref.icc) icc++;
    if (ref.mode === "L") gray++;
  }
  assert.ok(icc >= 40 && gray >= 1, `fixture covers ICC (${icc}) and grayscale (${gray}) files`);
  assert.deepEqual(bad, []);
});

test("decode: grayscale, CMYK, alpha, palette, 16-bit, 4:2:0/4:2:2/progressive files equal PIL's convert('RGB')", async () => {
  const failures: string[] = [];
  for (const s of index.decode.synthetic) {
    const img = await loadRgb(path.join(dir, s.file));
    const exp = readExpected(s.expected);
    assert.equal(img.width, exp.width, s.file);
    assert.equal(img.height, exp.height, s.file);
    let diff = 0;
    for (let i = 0; i < exp.data.length; i++) if (img.data[i] !== exp.data[i]) diff++;
    if (diff) failures.push(`${s.file} (${s.pilMode}): ${diff} values differ`);
  }
  assert.ok(index.decode.synthetic.length >= 15);
  assert.deepEqual(failures, []);
});

test("decode: EXIF orientation is ignored by default (as PIL) and applied with autoOrient", async () => {
  const s = index.decode.synthetic.find((x: any) => x.file === "decode/exif6.jpg");
  const file = path.join(dir, s.file);
  const plain = await loadRgb(file);
  assert.deepEqual([plain.width, plain.height], [48, 36]);
  assert.equal(md5(plain.data), md5(readExpected(s.expected).data));
  const upright = await loadRgb(file, { autoOrient: true });
  const oriented = readExpected(s.oriented);
  assert.deepEqual([upright.width, upright.height], [36, 48]);
  assert.equal(md5(upright.data), md5(oriented.data));
});

test("decode: bad files give a MaskdistillError naming the file and the problem", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "md-image-"));
  try {
    const jpeg = fs.readFileSync(projectPath("data", "coco-mini", "images", "000000000009.jpg"));
    const cases: [string, Buffer | null, RegExp][] = [
      ["missing.jpg", null, /missing\.jpg: image file not found/],
      ["truncated.jpg", jpeg.subarray(0, jpeg.length >> 1), /truncated\.jpg: truncated image file/],
      ["text.jpg", Buffer.from("this is not an image\n"), /text\.jpg: not an image/],
      ["empty.png", Buffer.alloc(0), /empty\.png: empty file/],
      // a JPEG whose Huffman tables are garbage
      ["corrupt.jpg", corruptHuffman(jpeg), /corrupt\.jpg: (corrupt image data|cannot decode image)/],
      ["truncated.png", fs.readFileSync(path.join(dir, "decode", "rgb.png")).subarray(0, 200), /truncated\.png: (truncated image file|corrupt image data|cannot decode)/],
    ];
    for (const [name, bytes, re] of cases) {
      const file = path.join(tmp, name);
      if (bytes) fs.writeFileSync(file, bytes);
      await assert.rejects(loadRgb(file), (e: unknown) => {
        assert.ok(e instanceof MaskdistillError, `${name}: ${String(e)}`);
        assert.match(e.message, re);
        assert.ok(!/\n/.test(e.message), "one-line message");
        return true;
      });
    }
    await assert.rejects(loadRgb(tmp), /is a directory, expected an image file/);
    // in-memory decode names the given source
    await assert.rejects(decodeRgb(Buffer.from("GIF89a junk"), "upload#3"), /upload#3: /);
    // a JPEG with extraneous bytes before a marker is only a libjpeg warning: PIL decodes it, so do we
    const i = jpeg.indexOf(Buffer.from([0xff, 0xc4]));
    const extraneous = Buffer.concat([jpeg.subarray(0, i), Buffer.from([0, 1, 2]), jpeg.subarray(i)]);
    const img = await decodeRgb(extraneous, "extraneous.jpg");
    assert.equal(md5(img.data), index.decode.shared["coco-mini/images/000000000009.jpg"].md5);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

function corruptHuffman(jpeg: Buffer): Buffer {
  const out = Buffer.from(jpeg);
  const i = out.indexOf(Buffer.from([0xff, 0xc4]));
  out.fill(0xff, i + 5, i + 21); // code-length counts: 16 × 255 codes is an impossible table
  return out;
}

test("encodePng/saveRgb round-trip losslessly; JPEG is written by extension; others refused", async () => {
  const img = await loadRgb(path.join(dir, "decode", "rgb.png"));
  const png = await encodePng(img);
  assert.equal(md5((await decodeRgb(png, "mem.png")).data), md5(img.data));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "md-image-"));
  try {
    await saveRgb(img, path.join(tmp, "sub", "a.png"));
    assert.equal(md5((await loadRgb(path.join(tmp, "sub", "a.png"))).data), md5(img.data));
    const photo = await loadRgb(projectPath("data", "coco-mini", "images", "000000000009.jpg"));
    await saveRgb(photo, path.join(tmp, "a.jpg"));
    const back = await loadRgb(path.join(tmp, "a.jpg"));
    assert.deepEqual([back.width, back.height], [photo.width, photo.height]);
    let sum = 0;
    for (let k = 0; k < photo.data.length; k++) sum += Math.abs(back.data[k] - photo.data[k]);
    assert.ok(sum / photo.data.length < 2, `JPEG q95 round trip mean |Δ| ${sum / photo.data.length}`);
    assert.equal(fs.readFileSync(path.join(tmp, "a.jpg"))[0], 0xff);
    await assert.rejects(saveRgb(img, path.join(tmp, "a.bmp")), /a\.bmp: cannot save an image as "\.bmp"/);
    await assert.rejects(encodePng({ width: 2, height: 2, data: new Uint8Array(5) }), /needs 12 bytes, got 5/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
