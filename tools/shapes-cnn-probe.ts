// A control for tools/shapes-supervised-probe.ts: a small CNN (four 3×3 stride-2 convs 16-32-64-64 with
// ReLU, global average pool, linear; Adam 1e-3, batch 32, tf.layers on our wasm engine) trained WITH the
// class labels on a shapes world's train images, printing the training loss every 50 iterations
// (ln 8 = 2.079 is chance). Where the CNN leaves chance and the ViT does not, the ViT's architecture is
// slow to train here; where neither does, the world's classes are. A diagnostic only.
//
//   node --import tsx tools/shapes-cnn-probe.ts [--world .cache/shapes] [--iterations 300] [--limit 2000]
import * as path from "node:path";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../src/engine/index.js";
import { readCocoDataset } from "../src/data/coco.js";
import { loadRgb } from "../src/data/image.js";
import { mulberry32 } from "../src/random.js";

const { values } = parseArgs({ options: {
  world: { type: "string", default: ".cache/shapes" }, iterations: { type: "string", default: "300" }, limit: { type: "string", default: "2000" },
} });
await initEngine({ backend: "wasm", threads: 1 });
const world = values.world!;
const gt = readCocoDataset(path.join(world, "instances_train.json"));
const cls = new Map(gt.annotations.map((a) => [a.image_id, a.category_id - 1]));
const x: Float32Array[] = [], y: number[] = [];
let size = 0;
for (const im of gt.images.slice(0, Number(values.limit))) {
  const img = await loadRgb(path.join(world, im.file_name));
  size = img.width;
  x.push(Float32Array.from(img.data, (v) => v / 127.5 - 1));
  y.push(cls.get(im.id)!);
}
const conv = (filters: number, first = false) => tf.layers.conv2d({
  ...(first ? { inputShape: [size, size, 3] } : {}), filters, kernelSize: 3, strides: 2, activation: "relu", padding: "same", kernelInitializer: tf.initializers.heNormal({ seed: filters }),
});
const model = tf.sequential({ layers: [conv(16, true), conv(32), conv(64), conv(64), tf.layers.globalAveragePooling2d({}), tf.layers.dense({ units: 8, kernelInitializer: tf.initializers.glorotNormal({ seed: 8 }) })] });
const opt = tf.train.adam(1e-3), rng = mulberry32(1), B = 32;
let losses: number[] = [];
for (let it = 0; it < Number(values.iterations); it++) {
  const idx = Array.from({ length: B }, () => Math.floor(rng() * x.length));
  const batch = new Float32Array(B * size * size * 3);
  idx.forEach((i, b) => batch.set(x[i], b * size * size * 3));
  const xb = tf.tensor4d(batch, [B, size, size, 3]), ys = tf.oneHot(idx.map((i) => y[i]), 8);
  const loss = opt.minimize(() => tf.losses.softmaxCrossEntropy(ys, model.apply(xb) as tf.Tensor) as tf.Scalar, true)!;
  losses.push((await loss.data())[0]);
  tf.dispose([loss, ys, xb]);
  if ((it + 1) % 50 === 0) {
    console.log(`it ${it + 1} loss ${(losses.reduce((a, v) => a + v, 0) / losses.length).toFixed(3)}`);
    losses = [];
  }
}
