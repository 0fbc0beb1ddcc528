// RoIAlign as a TensorFlow.js op with its gradient, on the wasm and cpu backends (tfjs has neither).
// The arithmetic is src/instance/roiAlign.ts; the kernels only copy tensors in (readSync, both
// backends) and out (makeTensorInfo on cpu; a block of the wasm heap on wasm).
import * as tf from "@tensorflow/tfjs";
import { alloc, f32, type WasmBackend } from "./wasm/backend.js";
import { roiAlignBackward, roiAlignForward, type MapShape, type RoiAlignParams } from "../instance/roiAlign.js";

export const ROI_ALIGN = "MaskdistillRoiAlign";
export const ROI_ALIGN_GRAD = "MaskdistillRoiAlignGrad";

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

const registered = new Set<string>();

/** Registers the two kernels for the active backend (wasm or cpu; idempotent). */
function ensureKernels(): void {
  const backendName = tf.getBackend();
  if (registered.has(backendName)) return;
  for (const [kernelName, kernelFunc] of [[ROI_ALIGN, roiAlignKernel], [ROI_ALIGN_GRAD, roiAlignGradKernel]] as const) {
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
