// How well stage i's masks (the pseudo-masks stage iii learns from) fit the shapes world's objects, per GT
// class: the mean IoU with the image's object, the share of the object they cover, the share of the mask
// outside it, and the share of masks with IoU < 0.5. A class whose masks are poor teaches the detector a
// poor shape. One JSON line.
//   node --import tsx tools/shapes-mask-check.ts --run results/shapes   (reads RUN/stage3/{masks,gt}_train.json)
//   node --import tsx tools/shapes-mask-check.ts --masks FILE --gt FILE
import * as path from "node:path";
import { parseArgs } from "node:util";
import { readCocoDataset } from "../src/data/coco.js";
import { rleFromCoco, maskFromRle } from "../src/mask/rle.js";
import { shapesObjects } from "../src/shapes/world.js";

const { values } = parseArgs({ options: { run: { type: "string" }, masks: { type: "string" }, gt: { type: "string" } } });
const masksFile = values.masks ?? (values.run && path.join(values.run, "stage3", "masks_train.json"));
const gtFile = values.gt ?? (values.run && path.join(values.run, "stage3", "gt_train.json"));
if (!masksFile || !gtFile) throw new Error("give --run DIR, or --masks FILE and --gt FILE");
const gt = readCocoDataset(gtFile), masks = readCocoDataset(masksFile);
const image = new Map(gt.images.map((im) => [im.id, im]));
const object = shapesObjects(gt);
const className = new Map(gt.categories.map((c) => [c.id, c.name]));
const perClass = new Map<string, { iou: number[]; covered: number[]; outside: number[] }>();
for (const a of masks.annotations) {
  const g = object.get(a.image_id), im = image.get(a.image_id);
  if (!g || !im) continue;
  const m = maskFromRle(rleFromCoco(a.segmentation!, im.height, im.width)), t = maskFromRle(rleFromCoco(g.segmentation!, im.height, im.width));
  let both = 0, inMask = 0, inTruth = 0;
  for (let k = 0; k < m.length; k++) { both += m[k] & t[k]; inMask += m[k]; inTruth += t[k]; }
  const name = className.get(g.category_id)!;
  if (!perClass.has(name)) perClass.set(name, { iou: [], covered: [], outside: [] });
  const e = perClass.get(name)!;
  e.iou.push(both / (inMask + inTruth - both || 1));
  e.covered.push(inTruth ? both / inTruth : 0);
  e.outside.push(inMask ? (inMask - both) / inMask : 0);
}
const pct = (v: number[]) => +(100 * v.reduce((s, x) => s + x, 0) / v.length).toFixed(1);
console.log(JSON.stringify({
  masks: masksFile, gt: gtFile,
  perClass: Object.fromEntries([...perClass].sort((a, b) => a[0].localeCompare(b[0])).map(([name, e]) => [name, {
    masks: e.iou.length, meanIou: pct(e.iou), objectCovered: pct(e.covered), maskOutsideObject: pct(e.outside), iouBelowHalf: pct(e.iou.map((x) => (x < 0.5 ? 1 : 0))),
  }])),
}));
