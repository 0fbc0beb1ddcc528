// MaskDistill's CRF post-processing (`segmentation/utils/crf.py` `dense_crf`, METHOD.md §5.3) on
// typed arrays: logits [C, h, w] + the image → Q [N, C] and labels, with the reference's parameters
// as defaults and every one of them an option.
import type { RgbImage } from "../data/image.js";
import { addPairwiseBilateral, addPairwiseGaussian, createDenseCrf, inference, labelsFromQ, type CrfBackend, type Normalization } from "./densecrf.js";
import { softmaxUnary, upsampleBilinear } from "./unary.js";

/** The reference's parameters (MAX_ITER, POS_XY_STD/POS_W, Bi_XY_STD/Bi_RGB_STD/Bi_W). */
export const MASKDISTILL_CRF = {
  iterations: 10,
  gaussian: { sxy: 1, compat: 3 },
  bilateral: { sxy: 67, srgb: 3, compat: 4 },
  clip: 1e-5,
  channelOrder: "bgr" as "bgr" | "rgb",
  normalization: "symmetric" as Normalization,
};

export interface CrfOptions {
  /** Mean-field iterations (default 10). */
  iterations?: number;
  /** Gaussian (smoothness) kernel: position std and Potts weight (default sxy 1, compat 3). */
  gaussian?: { sxy?: number | [number, number]; compat?: number } | null;
  /** Bilateral (appearance) kernel (default sxy 67, srgb 3, compat 4). */
  bilateral?: { sxy?: number | [number, number]; srgb?: number | [number, number, number]; compat?: number } | null;
  /** Probability clip of `unary_from_softmax` (default 1e-5). */
  clip?: number;
  /**
   * Channel order of the bilateral features. "bgr" (default) = what MaskDistill passes (cv2.imread);
   * it decides which lattice points the pixels land on, so keep it for parity.
   */
  channelOrder?: "bgr" | "rgb";
  /** Kernel normalisation (default "symmetric", pydensecrf's NORMALIZE_SYMMETRIC). */
  normalization?: Normalization;
  /** Called with Q (pixel-major [N, C], live buffer) after each iteration. */
  onIteration?: (it: number, q: Float32Array) => void;
  /** Keep the upsampled softmax probabilities ([C, H, W]) in the result. */
  keepProbs?: boolean;
  /** "auto" (wasm SIMD lattice where available) or "js" (TypeScript loops; the same float32 results). */
  backend?: CrfBackend;
}

export interface CrfResult {
  width: number;
  height: number;
  classes: number;
  /** Q after the last iteration, pixel-major [H·W, C] (use qToPlanes for [C, H, W]). */
  q: Float32Array;
  /** argmax_c Q (first index on ties), [H, W]. */
  labels: Uint8Array;
  /** Softmax of the upsampled logits, [C, H, W], when keepProbs. */
  probs?: Float32Array;
}

/**
 * Unary energies from logits [C, h, w]: bilinear upsampling to H×W, softmax, −log(clip(p)).
 * Returns the probabilities [C, H·W] (unless keepProbs is false) and U pixel-major [H·W, C] (see softmaxUnary).
 */
export function unaryFromLogits(logits: Float32Array, c: number, h: number, w: number, H: number, W: number, clip = 1e-5, keepProbs = true): { probs: Float32Array | null; unary: Float32Array } {
  return softmaxUnary(upsampleBilinear(logits, c, h, w, H, W), c, H * W, clip, keepProbs);
}

/** MaskDistill's `dense_crf(image, logits)`: the image's size sets the output size. */
export function denseCrfFromLogits(logits: Float32Array, c: number, h: number, w: number, image: RgbImage, opts: CrfOptions = {}): CrfResult {
  const { width: W, height: H } = image;
  const o = {
    iterations: opts.iterations ?? MASKDISTILL_CRF.iterations,
    gaussian: opts.gaussian,
    bilateral: opts.bilateral,
    clip: opts.clip ?? MASKDISTILL_CRF.clip,
    channelOrder: opts.channelOrder ?? MASKDISTILL_CRF.channelOrder,
    normalization: opts.normalization ?? MASKDISTILL_CRF.normalization,
    onIteration: opts.onIteration,
    backend: opts.backend,
  };
  const { probs, unary } = unaryFromLogits(logits, c, h, w, H, W, o.clip, !!opts.keepProbs);
  const crf = createDenseCrf(W, H, c);
  crf.unary = unary; // already pixel-major
  const normalization = o.normalization;
  if (o.gaussian !== null) addPairwiseGaussian(crf, { ...MASKDISTILL_CRF.gaussian, ...o.gaussian, normalization });
  if (o.bilateral !== null) {
    let im = image.data;
    if (o.channelOrder === "bgr") {
      im = new Uint8Array(image.data.length);
      for (let i = 0; i < im.length; i += 3) { im[i] = image.data[i + 2]; im[i + 1] = image.data[i + 1]; im[i + 2] = image.data[i]; }
    }
    addPairwiseBilateral(crf, im, { ...MASKDISTILL_CRF.bilateral, ...o.bilateral, normalization });
  }
  const q = inference(crf, o.iterations, o.onIteration, o.backend ?? "auto");
  return { width: W, height: H, classes: c, q, labels: labelsFromQ(q, W * H, c), probs: probs ?? undefined };
}
