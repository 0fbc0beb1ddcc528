// How well a detection file finds the shapes world's one object per image (the input of stage iv): the share
// of images whose top-scoring detection's box overlaps the GT box with IoU ≥ 0.5, the share where any kept
// detection does, the median top score, and how many top detections fall in each class (stage iv paints each
// image with its top detection's class, so a skew here is a skew in the pseudo-labels), and per GT class how
// many of its images' top detections fall in each class (which shapes the detector confuses). One JSON line.
//   node --import tsx tools/shapes-detection-check.ts --detections results/shapes/stage5/detections_train.json
//        [--gt .cache/shapes-materials/instances_train.json]
import { parseArgs } from "node:util";
import { readCocoDataset, readCocoResults, type CocoResult } from "../src/data/coco.js";
import { bboxIou } from "../src/mask/rle.js";
import { shapesDefaultDir, shapesObjects } from "../src/shapes/world.js";
import * as path from "node:path";

const boxIou = (a: number[], b: number[]) => bboxIou([a], [b], [0])[0];

const { values } = parseArgs({ options: { detections: { type: "string" }, gt: { type: "string" } } });
if (!values.detections) throw new Error("give --detections FILE");
const gt = readCocoDataset(values.gt ?? path.join(shapesDefaultDir(), "instances_train.json"));
const gtMain = shapesObjects(gt);
const gtBox = new Map([...gtMain].map(([id, a]) => [id, a.bbox!]));
const byImage = new Map<number, CocoResult[]>();
for (const d of readCocoResults(values.detections, undefined, { anyCategory: true })) {
  if (!gtBox.has(d.image_id)) continue;
  if (!byImage.has(d.image_id)) byImage.set(d.image_id, []);
  byImage.get(d.image_id)!.push(d);
}
let topHit = 0, anyHit = 0;
const topScores: number[] = [];
const topClasses = new Map<string, number>();
const className = new Map(gt.categories.map((c) => [c.id, c.name]));
const byGtClass = new Map(gt.categories.map((c) => [c.name, new Map<string, number>()]));
for (const [id, dets] of byImage) {
  const top = dets.reduce((m, d) => (d.score > m.score ? d : m));
  topScores.push(top.score);
  const name = className.get(top.category_id) ?? `class ${top.category_id}`;
  topClasses.set(name, (topClasses.get(name) ?? 0) + 1);
  const row = byGtClass.get(className.get(gtMain.get(id)!.category_id)!)!;
  row.set(name, (row.get(name) ?? 0) + 1);
  if (boxIou(top.bbox!, gtBox.get(id)!) >= 0.5) topHit++;
  if (dets.some((d) => boxIou(d.bbox!, gtBox.get(id)!) >= 0.5)) anyHit++;
}
topScores.sort((a, b) => a - b);
const n = byImage.size;
console.log(JSON.stringify({
  detections: values.detections, images: n, imagesWithoutDetections: gt.images.length - n,
  topBoxOnObject: +(100 * topHit / n).toFixed(1), anyBoxOnObject: +(100 * anyHit / n).toFixed(1), medianTopScore: +topScores[n >> 1].toFixed(3),
  topClasses: Object.fromEntries([...topClasses].sort((a, b) => b[1] - a[1])),
  topClassByGtClass: Object.fromEntries([...byGtClass].map(([gtName, row]) => [gtName, Object.fromEntries([...row].sort((a, b) => b[1] - a[1]))])),
}));
