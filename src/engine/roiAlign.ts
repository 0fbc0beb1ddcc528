// RoIAlign as a TensorFlow.js op with its gradient, on the wasm and cpu backends (tfjs has neither).
// The arithmetic is src/instance/roiAlign.ts; the kernels only copy tensors in (readSync, both
// backends) and out (makeTensorInfo on cpu; a block of the wasm heap on wasm).
import * as tf from "@tensorflow/tfjs";
import { alloc, f32, type WasmBackend } from "./wasm/backend.js";
import { roiAlignLevelsOrt, useOrtRoiAlign } from "./wasm/roiAlignOrt.js";
import { roiAlignBackward, roiAlignBackwardLevels, roiAlignForward, roiAlignForwardLevels, type MapShape, type RoiAlignParams } from "../instance/roiAlign.js";

export const ROI_ALIGN = "MaskdistillRoiAlign";
export const ROI_ALIGN_GRAD = "MaskdistillRoiAlignGrad";
export const ROI_ALIGN_LEVELS = "MaskdistillRoiAlignLevels";
export const ROI_ALIGN_LEVELS_GRAD = "MaskdistillRoiAlignLevelsGrad";

interface TensorBackend {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values?: tf.backend_util.BackendValues): tf.TensorInfo;
}
type Args = { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap };

function paramsOf(attrs: tf.NamedAttrMap | undefined): RoiAlignParams {
  const a = attrs as unknown as { outputSize: [number, number]; spatialScale: number; samplingRatio: number; aligned: boolean };
  return { outputSize: a.outputSize, spatialScale: a.spatialScale, samplingRatio: a.samplingRatio, aligned: a.aligned };
}

function read(b: TensorBackend, t: tf.TensorInfo): Float32Array | Int32Array {
  return b.readSync(t.dataId) as Float32Array | Int32Array;
}

function output(b: TensorBackend, shape: number[], values: Float32Array): tf.TensorInfo {
  if (b.makeTensorInfo) return b.makeTensorInfo(shape, "float32", values);
  const out = alloc(b as unknown as WasmBackend, shape, "float32");
  f32(b as unknown as WasmBackend, out).set(values);
  return out;
}

function roiAlignKernel({ inputs, backend, attrs }: Args): tf.TensorInfo {
  const b = backend as TensorBackend, { x, boxes, boxIndex } = inputs as { x: tf.TensorInfo; boxes: tf.TensorInfo; boxIndex: tf.TensorInfo };
  const p = paramsOf(attrs);
  const out = roiAlignForward(read(b, x) as Float32Array, x.shape as unknown as MapShape, read(b, boxes), read(b, boxIndex), p);
  return output(b, [boxIndex.shape[0], p.outputSize[0], p.outputSize[1], x.shape[3]], out);
}

function roiAlignGradKernel({ inputs, backend, attrs }: Args): tf.TensorInfo {
  const b = backend as TensorBackend, { dy, boxes, boxIndex } = inputs as { dy: tf.TensorInfo; boxes: tf.TensorInfo; boxIndex: tf.TensorInfo };
  const inputShape = (attrs as unknown as { inputShape: number[] }).inputShape;
  const dx = roiAlignBackward(read(b, dy) as Float32Array, inputShape as unknown as MapShape, read(b, boxes), read(b, boxIndex), paramsOf(attrs));
  return output(b, inputShape, dx);
}

// The pyramid version: inputs x0…x{L−1}, boxes, boxIndex, levels; pooling every box from its own level
// in one pass writes the result in box order (a per-level pooling + gather costs 2–3× more on wasm).
function levelInputs(inputs: tf.NamedTensorInfoMap, n: number): tf.TensorInfo[] {
  return Array.from({ length: n }, (_, l) => inputs[`x${l}`]!);
}

function roiAlignLevelsKernel({ inputs, backend, attrs }: Args): tf.TensorInfo {
  const b = backend as TensorBackend, a = attrs as unknown as { scales: number[] };
  const xs = levelInputs(inputs, a.scales.length), { boxes, boxIndex, levels } = inputs as { boxes: tf.TensorInfo; boxIndex: tf.TensorInfo; levels: tf.TensorInfo };
  const p = paramsOf(attrs);
  // inference on wasm: onnxruntime's RoiAlign, the same arithmetic on the MLAS threads (wasm/roiAlignOrt.ts)
  if (!b.makeTensorInfo && useOrtRoiAlign()) {
    return roiAlignLevelsOrt(b as unknown as WasmBackend, xs, a.scales, read(b, boxes), read(b, boxIndex), read(b, levels), p);
  }
  const out = roiAlignForwardLevels(xs.map((x) => read(b, x) as Float32Array), xs.map((x) => x.shape as unknown as MapShape), a.scales,
    read(b, boxes), read(b, boxIndex), read(b, levels), p);
  return output(b, [boxIndex.shape[0], p.outputSize[0], p.outputSize[1], xs[0].shape[3]], out);
}

function roiAlignLevelsGradKernel({ inputs, backend, attrs }: Args): tf.TensorInfo[] {
  const b = backend as TensorBackend, a = attrs as unknown as { scales: number[]; inputShapes: number[][] };
  const { dy, boxes, boxIndex, levels } = inputs as { dy: tf.TensorInfo; boxes: tf.TensorInfo; boxIndex: tf.TensorInfo; levels: tf.TensorInfo };
  const dxs = roiAlignBackwardLevels(read(b, dy) as Float32Array, a.inputShapes as unknown as MapShape[], a.scales, read(b, boxes), read(b, boxIndex), read(b, levels), paramsOf(attrs));
  return dxs.map((dx, l) => output(b, a.inputShapes[l], dx));
}

const registered = new Set<string>();

/** Registers the two kernels for the active backend (wasm or cpu; idempotent). */
function ensureKernels(): void {
  const backendName = tf.getBackend();
  if (registered.has(backendName)) return;
  const kernels = [[ROI_ALIGN, roiAlignKernel], [ROI_ALIGN_GRAD, roiAlignGradKernel], [ROI_ALIGN_LEVELS, roiAlignLevelsKernel], [ROI_ALIGN_LEVELS_GRAD, roiAlignLevelsGradKernel]] as const;
  for (const [kernelName, kernelFunc] of kernels) {
    if (!tf.getKernel(kernelName, backendName)) tf.registerKernel({ kernelName, backendName, kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
  registered.add(backendName);
}

/**
 * RoIAlign on a channels-last feature map `x` [N, H, W, C] for `boxes` [K, 4] (x1, y1, x2, y2 in image
 * pixels) of images `boxIndex` [K] (int32) → [K, ph, pw, C]. Differentiable with respect to `x`.
 */
export function roiAlign(x: tf.Tensor4D, boxes: tf.Tensor2D, boxIndex: tf.Tensor1D, params: RoiAlignParams): tf.Tensor4D {
  ensureKernels();
  const attrs = { ...params, outputSize: [...params.outputSize] } as unknown as tf.NamedAttrMap;
  const op = tf.customGrad((xIn, boxesIn, save) => {
    const value = tf.engine().runKernel(ROI_ALIGN, { x: xIn as tf.Tensor, boxes: boxesIn as tf.Tensor, boxIndex }, attrs) as tf.Tensor4D;
    (save as (saved: tf.Tensor[]) => void)([boxesIn as tf.Tensor]);
    return {
      value,
      gradFunc: (dy, saved) => {
        const dx = tf.engine().runKernel(ROI_ALIGN_GRAD, { dy: dy as tf.Tensor, boxes: saved[0], boxIndex },
          { ...attrs, inputShape: (xIn as tf.Tensor).shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
        return [dx, tf.zerosLike(saved[0])];
      },
    };
  });
  return op(x, boxes) as tf.Tensor4D;
}

/**
 * MultiScaleRoIAlign's pooling: box k (x1, y1, x2, y2 in image pixels of image boxIndex[k]) from
 * `features[levels[k]]` at `scales[levels[k]]` → [K, ph, pw, C] in box order. Differentiable with
 * respect to every level.
 */
export function roiAlignLevels(features: tf.Tensor4D[], boxes: tf.Tensor2D, boxIndex: tf.Tensor1D, levels: tf.Tensor1D,
    scales: number[], params: Omit<RoiAlignParams, "spatialScale">): tf.Tensor4D {
  ensureKernels();
  const attrs = { ...params, spatialScale: 0, outputSize: [...params.outputSize], scales: [...scales] } as unknown as tf.NamedAttrMap;
  const L = features.length;
  const op = tf.customGrad(((...args: unknown[]) => {
    const save = args[L] as (saved: tf.Tensor[]) => void;
    const xs = args.slice(0, L) as tf.Tensor[];
    const named: tf.NamedTensorMap = { boxes, boxIndex, levels };
    xs.forEach((x, l) => { named[`x${l}`] = x; });
    const value = tf.engine().runKernel(ROI_ALIGN_LEVELS, named, attrs) as tf.Tensor4D;
    save([boxes, boxIndex, levels]);   // kept for the backward pass, whatever scope made them
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(ROI_ALIGN_LEVELS_GRAD, { dy, boxes: saved[0], boxIndex: saved[1], levels: saved[2] },
        { ...attrs, inputShapes: xs.map((x) => x.shape) } as unknown as tf.NamedAttrMap) as unknown as tf.Tensor[],
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return op(...features) as tf.Tensor4D;
}
