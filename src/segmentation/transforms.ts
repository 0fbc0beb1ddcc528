// Stage v input transforms (METHOD.md §5), as the reference's segmentation/ code composes them
// (utils/common_config.py get_train_transformations / get_val_transformations, 'fblib_pascal'):
//   train: RandomHorizontalFlip → ScaleNRotate(±5°, scale 0.75–1.25) → FixedResize(512×512) →
//          ToTensor → Normalize(ImageNet)
//   val:   FixedResize(512×512) → ToTensor → Normalize(ImageNet)
// The image is resampled bicubically and the label with nearest, both with OpenCV's arithmetic
// (src/data/resizeOpenCv.ts); the scale-rotate keeps the input size and fills uncovered pixels
// with black in the image and 0 (background) in the label — OpenCV's default border, which the
// reference keeps. There is no crop: the rotated image is resized whole to 512×512, aspect not kept.
// Randomness comes from a seeded generator (src/random.ts), drawn in the reference's order
// (flip, then angle, then scale); `augmentPair` is the deterministic core given those parameters.
import { MaskdistillError } from "../errors.js";
import type { RgbImage } from "../data/image.js";
import type { LabelMap } from "../data/png.js";
import { IMAGENET_NORMALISED_LUT } from "../data/preprocess.js";
import {
  cvFlipHorizontalU8, cvResizeImage, cvResizeLabel, cvRotationMatrix2D, cvWarpAffineU8,
} from "../data/resizeOpenCv.js";

/** The reference's network input side (FixedResize resolutions 512×512). */
export const SEGMENTATION_INPUT_SIZE = 512;
/** The label value ignored by the loss and the evaluation. */
export const IGNORE_LABEL = 255;

/** Augmentation ranges of the reference's ScaleNRotate: rots=(-5, 5), scales=(.75, 1.25). */
export interface AugmentRanges {
  rotation: readonly [number, number];
  scale: readonly [number, number];
}
export const REFERENCE_AUGMENT_RANGES: AugmentRanges = { rotation: [-5, 5], scale: [0.75, 1.25] };

/** One draw of the training augmentation. */
export interface AugmentParams {
  /** Mirror left–right (probability 0.5). */
  flip: boolean;
  /** Rotation in degrees, counter-clockwise as displayed (cv2.getRotationMatrix2D's angle). */
  angle: number;
  /** Isotropic zoom about the image centre (> 1 zooms in). */
  scale: number;
}

/** An image with its label map, both 8-bit and the same size. */
export interface SegmentationPair {
  image: RgbImage;
  label: LabelMap;
}

/**
 * A network-ready sample: `image` is float32 HWC (height × width × 3, the layout of one element
 * of a tfjs NHWC batch), ImageNet-normalised; `label` is uint8 HW with 255 = ignore.
 */
export interface SegmentationSample {
  width: number;
  height: number;
  image: Float32Array;
  label: Uint8Array;
}

/**
 * Draws flip, angle and scale from `rng` (uniform in [0, 1)) in the reference's order and with its
 * formulas: flip when r < 0.5; angle = (hi − lo)·r − (hi − lo)/2; scale = (hi − lo)·r − (hi − lo)/2 + 1
 * (ranges centred on 0° and 1, as ScaleNRotate computes them).
 */
export function drawAugmentParams(rng: () => number, ranges: AugmentRanges = REFERENCE_AUGMENT_RANGES): AugmentParams {
  const flip = rng() < 0.5;
  const rotSpan = ranges.rotation[1] - ranges.rotation[0];
  const angle = rotSpan * rng() - rotSpan / 2;
  const scaleSpan = ranges.scale[1] - ranges.scale[0];
  const scale = scaleSpan * rng() - scaleSpan / 2 + 1;
  return { flip, angle, scale };
}

/**
 * The dataset's alignment of a label to its image (pascal_voc*.py __getitem__): a label of another
 * size is resized to the image's with nearest (cv2.INTER_NEAREST); same size is returned as is.
 */
export function alignLabel(image: RgbImage, label: LabelMap): LabelMap {
  if (label.width === image.width && label.height === image.height) return label;
  return cvResizeLabel(label, image.width, image.height);
}

function checkPair(pair: SegmentationPair): void {
  const { image, label } = pair;
  if (image.data.length !== image.width * image.height * 3) {
    throw new MaskdistillError(`segmentation transform: image data has ${image.data.length} values, expected ${image.width}×${image.height}×3`);
  }
  if (label.data.length !== label.width * label.height) {
    throw new MaskdistillError(`segmentation transform: label data has ${label.data.length} values, expected ${label.width}×${label.height}`);
  }
  if (label.width !== image.width || label.height !== image.height) {
    throw new MaskdistillError(
      `segmentation transform: label ${label.width}×${label.height} differs from image ${image.width}×${image.height}; align it first (alignLabel)`);
  }
}

/** The scale-rotate about the image centre: bicubic image on black, nearest label on 0; same size. */
export function scaleRotatePair(pair: SegmentationPair, angle: number, scale: number): SegmentationPair {
  checkPair(pair);
  const { image, label } = pair;
  const m = cvRotationMatrix2D(image.width / 2, image.height / 2, angle, scale);
  return {
    image: { width: image.width, height: image.height, data: cvWarpAffineU8(image.data, image.width, image.height, 3, m, image.width, image.height, "bicubic", 0) },
    label: { width: label.width, height: label.height, data: cvWarpAffineU8(label.data, label.width, label.height, 1, m, label.width, label.height, "nearest", 0) },
  };
}

/** FixedResize: bicubic image, nearest label, to size×size (aspect not kept). */
export function fixedResizePair(pair: SegmentationPair, size = SEGMENTATION_INPUT_SIZE): SegmentationPair {
  checkPair(pair);
  return { image: cvResizeImage(pair.image, size, size, "bicubic"), label: cvResizeLabel(pair.label, size, size) };
}

/** RandomHorizontalFlip's flip of both image and label (cv2.flip(…, 1)). */
export function flipPair(pair: SegmentationPair): SegmentationPair {
  checkPair(pair);
  const { image, label } = pair;
  return {
    image: { width: image.width, height: image.height, data: cvFlipHorizontalU8(image.data, image.width, image.height, 3) },
    label: { width: label.width, height: label.height, data: cvFlipHorizontalU8(label.data, label.width, label.height, 1) },
  };
}

/**
 * The deterministic core of the training augmentation, still 8-bit: flip (if asked) → scale-rotate
 * → fixed resize. The label must already have the image's size (alignLabel).
 */
export function augmentPair(pair: SegmentationPair, params: AugmentParams, size = SEGMENTATION_INPUT_SIZE): SegmentationPair {
  checkPair(pair);
  if (!Number.isFinite(params.angle) || !Number.isFinite(params.scale) || params.scale <= 0) {
    throw new MaskdistillError(`segmentation transform: angle and scale must be finite and scale > 0, got angle ${params.angle}, scale ${params.scale}`);
  }
  const flipped = params.flip ? flipPair(pair) : pair;
  return fixedResizePair(scaleRotatePair(flipped, params.angle, params.scale), size);
}

/** ToTensor + Normalize(ImageNet) into float32 HWC (channel last, for a tfjs NHWC batch). */
export function normalizeImageHwc(image: RgbImage, out = new Float32Array(image.width * image.height * 3)): Float32Array {
  const n = image.width * image.height;
  if (out.length !== n * 3) throw new MaskdistillError(`normalizeImageHwc: output has ${out.length} values, expected ${n * 3}`);
  const d = image.data;
  for (let i = 0; i < n * 3; i += 3) {
    out[i] = IMAGENET_NORMALISED_LUT[d[i]];
    out[i + 1] = IMAGENET_NORMALISED_LUT[256 + d[i + 1]];
    out[i + 2] = IMAGENET_NORMALISED_LUT[512 + d[i + 2]];
  }
  return out;
}

function toSample(pair: SegmentationPair): SegmentationSample {
  return { width: pair.image.width, height: pair.image.height, image: normalizeImageHwc(pair.image), label: pair.label.data };
}

/** The training transform with given parameters: alignLabel → augmentPair → normalise. */
export function trainSampleWith(pair: SegmentationPair, params: AugmentParams, size = SEGMENTATION_INPUT_SIZE): SegmentationSample {
  return toSample(augmentPair({ image: pair.image, label: alignLabel(pair.image, pair.label) }, params, size));
}

/** The training transform, its flip / angle / scale drawn from `rng` (see drawAugmentParams). */
export function trainSample(
  pair: SegmentationPair, rng: () => number, size = SEGMENTATION_INPUT_SIZE, ranges: AugmentRanges = REFERENCE_AUGMENT_RANGES,
): SegmentationSample {
  return trainSampleWith(pair, drawAugmentParams(rng, ranges), size);
}

/** The val transform: alignLabel → fixed resize to size×size → normalise. */
export function valSample(pair: SegmentationPair, size = SEGMENTATION_INPUT_SIZE): SegmentationSample {
  return toSample(fixedResizePair({ image: pair.image, label: alignLabel(pair.image, pair.label) }, size));
}

/** The val transform of an image alone (prediction): fixed resize → normalise. */
export function valImage(image: RgbImage, size = SEGMENTATION_INPUT_SIZE): Float32Array {
  return normalizeImageHwc(cvResizeImage(image, size, size, "bicubic"));
}

/** Samples of one size stacked into a batch: images N×H×W×3 float32 (tfjs NHWC), labels N×H×W uint8. */
export interface SegmentationBatch {
  size: number;
  width: number;
  height: number;
  images: Float32Array;
  labels: Uint8Array;
}

/** Stacks samples (all the same size) into one NHWC batch, in order. */
export function collateSamples(samples: readonly SegmentationSample[]): SegmentationBatch {
  if (samples.length === 0) throw new MaskdistillError("collateSamples: no samples to stack");
  const { width, height } = samples[0];
  const px = width * height;
  const images = new Float32Array(samples.length * px * 3), labels = new Uint8Array(samples.length * px);
  samples.forEach((s, i) => {
    if (s.width !== width || s.height !== height) {
      throw new MaskdistillError(`collateSamples: sample ${i} is ${s.width}×${s.height}, sample 0 is ${width}×${height}`);
    }
    images.set(s.image, i * px * 3);
    labels.set(s.label, i * px);
  });
  return { size: samples.length, width, height, images, labels };
}
