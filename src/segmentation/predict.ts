// DeepLab-v3 prediction as the reference saves it (utils/evaluate_utils.py save_results_to_disk):
// the image resized to 512×512 (OpenCV bicubic, the val transform), eval-mode logits at 512×512, then
//   without CRF: argmax at 512×512, resized to the original size with OpenCV's nearest;
//   with CRF:    the 512×512 logits bilinearly resized to the original size (align_corners false),
//                softmax, and the dense CRF (src/refine, the reference's parameters) → argmax.
import * as tf from "@tensorflow/tfjs";
import type { RgbImage } from "../data/image.js";
import { deepLabLogits, type DeepLabV3 } from "../engine/models/deeplab.js";
import { denseCrfFromLogits, type CrfOptions } from "../refine/crf.js";
import { newConfusion, accumulate, scoreConfusion, type Confusion, type SemsegScore } from "../evaluation/semseg.js";
import { cvResizeLabel } from "../data/resizeOpenCv.js";
import { valImage, valSample, SEGMENTATION_INPUT_SIZE, type SegmentationPair } from "./transforms.js";

/** Logits [K, S, S] (channel planes) of one image at the network input size S. */
export async function predictLogits(m: DeepLabV3, image: RgbImage, size = SEGMENTATION_INPUT_SIZE): Promise<Float32Array> {
  return logitsOfInput(m, valImage(image, size), size);
}

/**
 * Logits [K, S, S] (class planes, what argmaxPlanes and the CRF take) of an already normalised S×S×3
 * input, through `head` (default: the DeepLab classifier; the linear probe passes its own) giving NHWC logits.
 */
export async function logitsOfInput(m: DeepLabV3, input: Float32Array, size: number,
    head: (x: tf.Tensor4D) => tf.Tensor = (x) => deepLabLogits(m, x)): Promise<Float32Array> {
  const planes = tf.tidy(() => {
    const logits = head(tf.tensor4d(input, [1, size, size, 3]));
    return tf.transpose(logits.reshape([size * size, m.numClasses]), [1, 0]);
  });
  const out = (await planes.data()) as Float32Array;
  planes.dispose();
  return out;
}

/** argmax over K planes of n pixels (first index on ties, as torch.argmax). */
export function argmaxPlanes(planes: Float32Array, k: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0, bv = planes[i];
    for (let c = 1; c < k; c++) {
      const v = planes[c * n + i];
      if (v > bv) { bv = v; best = c; }
    }
    out[i] = best;
  }
  return out;
}

export interface Prediction {
  width: number;
  height: number;
  /** Class ids at the original size. */
  labels: Uint8Array;
}

/** The label map at the image's original size from its logits [K, S, S] at the input size S, with or without the CRF (file comment). */
export function labelsFromLogits(logits: Float32Array, k: number, size: number, image: RgbImage, crf?: boolean | CrfOptions): Prediction {
  if (crf) {
    const r = denseCrfFromLogits(logits, k, size, size, image, typeof crf === "object" ? crf : {});
    return { width: r.width, height: r.height, labels: r.labels };
  }
  const small = argmaxPlanes(logits, k, size * size);
  const full = cvResizeLabel({ width: size, height: size, data: small }, image.width, image.height);
  return { width: image.width, height: image.height, labels: full.data };
}

/** The label map of one image at its original size, with or without the CRF (file comment). */
export async function predictImage(m: DeepLabV3, image: RgbImage, opts: { crf?: boolean | CrfOptions; size?: number } = {}): Promise<Prediction> {
  const size = opts.size ?? SEGMENTATION_INPUT_SIZE;
  return labelsFromLogits(await predictLogits(m, image, size), m.numClasses, size, image, opts.crf);
}

/**
 * The reference's online validation (multi_gpu.py validate): the val transform at S×S (label resized
 * with nearest), argmax, one confusion over the set, mIoU over all classes (ids are classes).
 */
export async function validate(m: DeepLabV3, pairs: SegmentationPair[], size: number): Promise<SemsegScore> {
  const conf: Confusion = newConfusion(m.numClasses, m.numClasses);
  for (const p of pairs) {
    const s = valSample(p, size);
    const pred = argmaxPlanes(await logitsOfInput(m, s.image, size), m.numClasses, size * size);
    accumulate(conf, pred, s.label, 255);
  }
  return scoreConfusion(conf, Int32Array.from({ length: m.numClasses }, (_, i) => i));
}
