// Does Mask R-CNN training learn? A reduced model (narrow ResNet-50-shaped body, random init, short side
// 256) overfits the 8 one-object images of data/coco-mini with their GT masks; the mask AP50 on those
// images (our COCOeval, class-aware) must reach 0.8. The README quotes the figure.
//
//   node --import tsx tools/maskrcnn-overfit.ts [--iterations 300] [--images 8] [--max-objects 1] [--out .cache/maskrcnn-overfit]
// (data/coco-mini/images holds 4 one-object images: 8 images need --max-objects 3)
//
// The small version in npm test (test/maskrcnn-train-loop.test.ts) runs the same function on 2 images.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine/index.js";
import { projectPath } from "../src/paths.js";
import { overfitCheck } from "../src/instance/overfit.js";

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { iterations: { type: "string" }, images: { type: "string" }, out: { type: "string" }, threads: { type: "string" }, "max-objects": { type: "string" } } });
  await initEngine({ backend: "wasm", threads: Number(values.threads ?? 2) });
  const out = values.out ?? projectPath(".cache", "maskrcnn-overfit");
  fs.rmSync(out, { recursive: true, force: true });
  const t0 = Date.now();
  const r = await overfitCheck({
    annotations: projectPath("data", "coco-mini", "instances.json"), imagesDir: projectPath("data", "coco-mini", "images"),
    images: Number(values.images ?? 8), iterations: Number(values.iterations ?? 300), outDir: out, maxObjects: Number(values["max-objects"] ?? 1),
    onStep: (l) => { if (l.step % 10 === 0) console.error(`step ${l.step} loss ${l.loss.toFixed(3)} ${Object.entries(l.losses).map(([k, v]) => `${k.replace("loss_", "")} ${v.toFixed(3)}`).join(" ")} (${l.trainSeconds.toFixed(0)} s)`); },
  });
  console.log(JSON.stringify({ ...r, seconds: Math.round((Date.now() - t0) / 1000), backend: tf.getBackend(), out: path.relative(process.cwd(), out) }));
}

main().catch((e) => { console.error(e); process.exit(1); });
