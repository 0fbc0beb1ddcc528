// Builds data/demo/ from the full coco-mini material (313 real COCO images and their original
// annotations; the repo's data/coco-mini keeps only the 53 images the tests read, see its PROVENANCE.md):
// images downscaled to a longest side of 500 px (VOC-like), the instances JSON rescaled to match,
// VOC-class semantic PNGs derived from the COCO annotations, and seeded train/val split lists.
// Usage: node --import tsx tools/make-demo-data.ts COCO_MINI_DIR   (deterministic; rerun gives the same files)
import * as fs from "node:fs";
import * as path from "node:path";
import sharp from "sharp";
import { projectPath } from "../src/paths.js";
import { readCocoDataset, writeCocoJson, type CocoAnnotation, type CocoDataset } from "../src/data/coco.js";
import { rleFromCoco, maskFromRle, rleFromMask, rleToCoco, rleArea } from "../src/mask/rle.js";
import { resizeU8 } from "../src/data/resize.js";
import { loadRgb } from "../src/data/image.js";
import { cocoCategoryToVoc, cocoToVocLabelMap } from "../src/data/cocoToVoc.js";
import { writeLabelPng } from "../src/data/png.js";
import { mulberry32 } from "../src/random.js";

const LONG_SIDE = 500;
const VAL_FRACTION = 0.2;
const SEED = 20261124;

const src = process.argv[2] ?? "";
if (!src || !fs.existsSync(path.join(src, "instances.json"))) {
  console.error("usage: node --import tsx tools/make-demo-data.ts COCO_MINI_DIR   (a folder with instances.json and images/ of all 313 images)");
  process.exit(2);
}
const out = projectPath("data", "demo");

async function main() {
  const gt = readCocoDataset(path.join(src, "instances.json"));
  for (const d of ["images", "SegmentationClass"]) fs.mkdirSync(path.join(out, d), { recursive: true });
  const byImage = new Map<number, CocoAnnotation[]>();
  for (const a of gt.annotations) (byImage.get(a.image_id) ?? byImage.set(a.image_id, []).get(a.image_id)!).push(a);
  const catToVoc = cocoCategoryToVoc(gt.categories);

  const images = [...gt.images].sort((a, b) => a.id - b.id);
  const newImages: CocoDataset["images"] = [];
  const newAnns: CocoAnnotation[] = [];
  for (const im of images) {
    const s = Math.min(1, LONG_SIDE / Math.max(im.width, im.height));
    const w = Math.round(im.width * s), h = Math.round(im.height * s);
    const sx = w / im.width, sy = h / im.height;
    const stem = path.parse(im.file_name).name;
    const fileName = `${stem}.jpg`;
    // decode as PIL does (stored pixel frame, no ICC conversion: the annotations refer to it)
    const rgb = await loadRgb(path.join(src, "images", im.file_name));
    await sharp(Buffer.from(rgb.data), { raw: { width: rgb.width, height: rgb.height, channels: 3 } })
      .resize(w, h, { fit: "fill", kernel: "lanczos3", fastShrinkOnLoad: false })
      .jpeg({ quality: 90, chromaSubsampling: "4:2:0" })
      .toFile(path.join(out, "images", fileName));
    newImages.push({ ...im, file_name: fileName, width: w, height: h, coco_url: undefined, flickr_url: undefined } as typeof im);
    for (const a of byImage.get(im.id) ?? []) {
      let segmentation: CocoAnnotation["segmentation"];
      if (!a.segmentation) throw new Error(`annotation ${a.id} has no segmentation`);
      if (Array.isArray(a.segmentation)) {
        segmentation = a.segmentation.map((poly) => poly.map((v, i) => Math.round((i % 2 === 0 ? v * sx : v * sy) * 100) / 100));
      } else {
        // crowd RLE: decode at the original size, nearest resize (PIL NEAREST rule), re-encode
        const m = maskFromRle(rleFromCoco(a.segmentation, im.height, im.width));
        const r = resizeU8(m, im.width, im.height, 1, w, h, "nearest");
        segmentation = rleToCoco(rleFromMask(r, h, w));
      }
      // area from the rescaled mask (what pycocotools computes); box = the original box rescaled
      const rle = rleFromCoco(segmentation, h, w);
      const r2 = (v: number) => Math.round(v * 100) / 100;
      const bbox: [number, number, number, number] = [r2(a.bbox[0] * sx), r2(a.bbox[1] * sy), r2(a.bbox[2] * sx), r2(a.bbox[3] * sy)];
      newAnns.push({ ...a, segmentation, area: rleArea(rle), bbox });
    }
  }
  const demo: CocoDataset = {
    info: { description: "maskdistill demo set: coco-mini downscaled to a 500 px longest side (tools/make-demo-data.ts)", ...(gt.info ?? {}) },
    licenses: gt.licenses,
    images: newImages,
    annotations: newAnns,
    categories: gt.categories,
  };
  writeCocoJson(path.join(out, "instances.json"), demo);

  const annsOf = new Map<number, CocoAnnotation[]>();
  for (const a of newAnns) (annsOf.get(a.image_id) ?? annsOf.set(a.image_id, []).get(a.image_id)!).push(a);
  for (const im of newImages) {
    const map = cocoToVocLabelMap(im, annsOf.get(im.id) ?? [], catToVoc);
    writeLabelPng(path.join(out, "SegmentationClass", `${path.parse(im.file_name).name}.png`), map);
  }

  const rand = mulberry32(SEED);
  const order = newImages.map((im) => ({ stem: path.parse(im.file_name).name, r: rand() }));
  const shuffled = [...order].sort((a, b) => a.r - b.r);
  const nVal = Math.round(order.length * VAL_FRACTION);
  const val = new Set(shuffled.slice(0, nVal).map((o) => o.stem));
  const stems = order.map((o) => o.stem);
  fs.mkdirSync(path.join(out, "sets"), { recursive: true });
  fs.writeFileSync(path.join(out, "sets", "train.txt"), stems.filter((s) => !val.has(s)).join("\n") + "\n");
  fs.writeFileSync(path.join(out, "sets", "val.txt"), stems.filter((s) => val.has(s)).join("\n") + "\n");
  console.log(`data/demo: ${newImages.length} images (${newImages.length - nVal} train / ${nVal} val), ${newAnns.length} annotations`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
