// The seeded DeepLab-v3 of the parity fixtures (tools/make-deeplab-fixtures.ts writes it for
// PyTorch; test/deeplab.test.ts rebuilds it): the full ResNet-50 OS8 + ASPP model with every weight
// drawn from mulberry32, so the ~40 M weights never need committing.
//   convs: N(0, 1/fan_in) (activations keep their scale through 50 layers with eval-mode BN)
//   BN: γ U(0.6, 1.2), β N(0, 0.1²), running mean N(0, 0.1²), running var U(0.6, 1.4)
//   classifier bias N(0, 0.1²)
import * as tf from "@tensorflow/tfjs";
import { makeDeepLabV3, type DeepLabV3 } from "../src/engine/models/deeplab.js";
import { normalArray, seededRng } from "../src/engine/models/params.js";
import { deepLabTensors } from "../src/segmentation/model.js";

export const FIXTURE_SEED = 1717;
export const FIXTURE_DIR = "test/fixtures/deeplab";

/** The fixture model (21 classes, conv1..layer2 frozen as in the reference). */
export function fixtureDeepLab(seed = FIXTURE_SEED): DeepLabV3 {
  const m = makeDeepLabV3(seededRng(seed), { numClasses: 21, trainableFrom: "layer3" });
  const rng = seededRng(seed + 1);
  const uniform = (n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rng());
  for (const t of deepLabTensors(m)) {
    const shape = t.variable.shape as number[];
    const n = t.variable.size;
    let values: Float32Array;
    if (t.conv) values = normalArray(rng, n, Math.sqrt(1 / (shape[0] * shape[1] * shape[2])));
    else if (t.key.endsWith(".running_var")) values = uniform(n, 0.6, 1.4);
    else if (t.key.endsWith(".running_mean") || t.key.endsWith(".bias")) values = normalArray(rng, n, 0.1);
    else values = uniform(n, 0.6, 1.2);   // BN weight (γ)
    tf.tidy(() => t.variable.assign(tf.tensor(values, shape)));
  }
  return m;
}

/** N(0, 1) images, NCHW (PyTorch's order) from a seed. */
export function fixtureImages(seed: number, n: number, h: number, w: number): Float32Array {
  return normalArray(seededRng(seed), n * 3 * h * w, 1);
}

/** NCHW → NHWC. */
export function nchwToNhwc(x: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) out[(b * h * w + i) * c + k] = x[(b * c + k) * h * w + i];
  return out;
}

/** NHWC → NCHW. */
export function nhwcToNchw(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) for (let i = 0; i < h * w; i++) for (let k = 0; k < c; k++) out[(b * c + k) * h * w + i] = x[(b * h * w + i) * c + k];
  return out;
}

/**
 * The training-step images, NCHW: noise with a different mean and spread per image. Two images of
 * the same noise have nearly equal global averages, and batch norm over the pooling branch's two
 * values per channel then divides by √(d² + ε) with d ≈ 0: a forward and gradient that float32
 * rounding decides (PyTorch's own float32 and float64 runs disagree by 50 % there).
 */
export function stepImages(): Float32Array {
  const { batch, size, imageSeed } = STEP_FIXTURE;
  const x = fixtureImages(imageSeed, batch, size, size);
  const per = 3 * size * size;
  for (let b = 0; b < batch; b++) for (let i = 0; i < per; i++) x[b * per + i] = x[b * per + i] * (1 + 0.75 * b) + 0.6 * b - 0.3;
  return x;
}

/** Labels of the training-step fixture: classes 0..20 with about 10 % ignore (255). */
export function fixtureLabels(seed: number, n: number): Uint8Array {
  const rng = seededRng(seed);
  return Uint8Array.from({ length: n }, () => (rng() < 0.1 ? 255 : Math.floor(rng() * 21)));
}

/** The training-step fixture: batch 2 at 64×64, two SGD steps with the reference's hyper-parameters. */
export const STEP_FIXTURE = { batch: 2, size: 64, imageSeed: 31, labelSeed: 32, dropoutSeeds: [41, 42], lr: 0.002, momentum: 0.9, weightDecay: 1e-4, ohem: 0.2 };

/** The eval-forward inputs: [seed, N, H, W] (a square batch of 2 and one odd, non-square image). */
export const FORWARD_INPUTS: [number, number, number, number][] = [[21, 2, 64, 64], [22, 1, 45, 70]];
