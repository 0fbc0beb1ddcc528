// How well any patch mask can match the shapes world's objects: for each short side and patch size, the mean
// IoU of the best possible patch mask (patches at least half object) and of the mask of every patch the
// object touches, on the first N val images (no backbone involved: the ceiling the patch grid sets).
//   node --import tsx tools/shapes-grid-cap.ts [--world .cache/shapes] [--limit 300] [--resize 96,160,224] [--patch 16,8]
import * as path from "node:path";
import { parseArgs } from "node:util";
import { readVocSegmentationObject } from "../src/data/voc.js";
import { cocoImages } from "../src/distill/imageList.js";
import { projectPath } from "../src/paths.js";

const { values } = parseArgs({ options: {
  world: { type: "string", default: projectPath(".cache", "shapes") },
  limit: { type: "string", default: "300" },
  resize: { type: "string", default: "96,160,224" },
  patch: { type: "string", default: "16,8" },
} });
const images = cocoImages(path.join(values.world!, "instances_val.json"), values.world!).slice(0, Number(values.limit));
const objects = images.map((im) => {
  const seg = readVocSegmentationObject(path.join(values.world!, "SegmentationObject", `${path.parse(im.file).name}.png`));
  return { w: seg.width, h: seg.height, gt: seg.data.map((v) => (v > 0 && v !== 255 ? 1 : 0)) };
});
for (const resize of values.resize!.split(",").map(Number)) {
  const row: Record<string, number> = { resize };
  for (const patch of values.patch!.split(",").map(Number)) {
    let best = 0, touched = 0;
    for (const { w, h, gt } of objects) {
      const cell = (patch * Math.min(w, h)) / resize;   // a patch's footprint in original pixels
      const cols = Math.ceil(w / cell), cellOf = (x: number, y: number) => Math.floor(y / cell) * cols + Math.floor(x / cell);
      const cover = new Float64Array(cols * Math.ceil(h / cell)), count = new Float64Array(cover.length);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { const c = cellOf(x, y); count[c]++; cover[c] += gt[y * w + x]; }
      const iou = (keep: (c: number) => boolean) => {
        let inter = 0, union = 0;
        for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { const m = keep(cellOf(x, y)) ? 1 : 0, g = gt[y * w + x]; inter += m & g; union += m | g; }
        return inter / union;
      };
      best += iou((c) => cover[c] * 2 >= count[c]);
      touched += iou((c) => cover[c] > 0);
    }
    row[`p${patch}_best`] = +(100 * best / objects.length).toFixed(1);
    row[`p${patch}_touched`] = +(100 * touched / objects.length).toFixed(1);
  }
  console.log(JSON.stringify(row));
}
