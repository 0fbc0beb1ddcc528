// A COCO instances file restricted to the images of a split list (file-name stems, one a line), e.g. the
// demo's train images of the stage-ii pseudo-masks (train-maskrcnn input) or the demo GT of its val images
// (detect and eval-instances):
//
//   node --import tsx tools/coco-split.ts --in results/demo/clusters.json --split data/demo/sets/train.txt --out .cache/demo-split/clusters.train.json
import { parseArgs } from "node:util";
import { cocoSubset, readCocoDataset, writeCocoJson } from "../src/data/coco.js";
import { readSplit } from "../src/data/voc.js";

const { values } = parseArgs({ options: { in: { type: "string" }, split: { type: "string" }, out: { type: "string" } } });
if (!values.in || !values.split || !values.out) {
  console.error("usage: node --import tsx tools/coco-split.ts --in COCO.json --split SPLIT.txt --out OUT.json");
  process.exit(2);
}
const sub = cocoSubset(readCocoDataset(values.in), readSplit(values.split));
writeCocoJson(values.out, sub);
console.log(`${values.out}: ${sub.images.length} images, ${sub.annotations.length} annotations`);
