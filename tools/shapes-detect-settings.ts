// Test-time settings of the shapes world's Mask R-CNN side by side: for each POST,DETS pair, the RPN proposals
// kept per image (post-NMS) and the detections kept per image, the seconds per val image and the mask AP50
// (class-aware / agnostic) on the first N val images. What SHAPES_TEST_PROPOSALS (src/shapes/maskRcnn.ts) rests on.
//   node --import tsx tools/shapes-detect-settings.ts [--world .cache/shapes-materials] [--model data/runs/shapes-pipeline/maskrcnn.safetensors]
//        [--limit 200] [--threads 2] [--test-size S] 1000,100 300,100 300,20 100,20
import { parseArgs } from "node:util";
import { initEngine } from "../src/engine/index.js";
import { cocoImages } from "../src/distill/imageList.js";
import { readCocoDataset, cocoSubsetByIds } from "../src/data/coco.js";
import { maskAp50s } from "../src/shapes/stageThree.js";
import { loadMaskRcnnModel, detectImages } from "../src/instance/detect.js";
import { shapesInference, shapesMaskRcnnFile } from "../src/shapes/maskRcnn.js";

const { values: a, positionals } = parseArgs({ allowPositionals: true, options: {
  world: { type: "string", default: ".cache/shapes-materials" }, model: { type: "string" }, limit: { type: "string", default: "200" }, threads: { type: "string", default: "2" }, "test-size": { type: "string" } } });
await initEngine({ backend: "wasm", threads: Number(a.threads) });
const gtFile = `${a.world}/instances_val.json`;
const gt = readCocoDataset(gtFile);
const images = cocoImages(gtFile, a.world!, gt).slice(0, Number(a.limit));
const gtSub = cocoSubsetByIds(gt, new Set(images.map((i) => i.id)));
const model = await loadMaskRcnnModel(a.model ?? shapesMaskRcnnFile());
await detectImages({ net: model.net, images: images.slice(0, 3), inference: await shapesInference() });   // warm-up
for (const spec of positionals.length ? positionals : ["1000,100", "300,100"]) {
  const [post, dets] = spec.split(",").map(Number);
  // --test-size S: another short side (a model trained at other sizes than the recipe's)
  const inference = await shapesInference(dets, { proposals: post, ...(a["test-size"] ? { minSize: Number(a["test-size"]) } : {}) });
  const t0 = performance.now();
  const results = await detectImages({ net: model.net, images, inference, categoryOf: (l) => model.categoryIds![l - 1] });
  const perImage = (performance.now() - t0) / 1000 / images.length;
  const ap = maskAp50s(gtSub, results);
  console.log(`proposals ${String(post).padStart(4)}, detections ${String(dets).padStart(3)}: ${perImage.toFixed(3)} s/image, ${(results.length / images.length).toFixed(1)} per image kept, mask AP50 ${ap.ap50} / ${ap.ap50Agnostic} (class-aware / agnostic, ${images.length} val images)`);
}
