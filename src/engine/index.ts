// The training engine: TensorFlow.js set up for training (wasm with SIMD, its products and
// normalisation passes in onnxruntime's native kernels, or native TensorFlow when installed), our
// kernels and gradients for the wasm backend's missing and slow paths, heap-size checks, and the
// small model zoo the benchmarks and stages use.
export { initEngine, engineInfo, wasmHeapBytes } from "./init.js";
export type { EngineOptions, EngineInfo, EngineBackendChoice } from "./init.js";
export { registerEngineKernels, engineKernelNames, engineGradientNames } from "./register.js";
export {
  estimateStepMemory, assertFitsInHeap, withHeapGuard, isWasmHeapExhaustion, WASM_HEAP_MAX_BYTES, WASM_HEAP_USABLE_BYTES,
} from "./memory.js";
export type { StepMemoryModel, StepMemoryEstimate, ActivationCount, EstimateOptions } from "./memory.js";
export { batchNormTrain, batchNormFrozen, layerNorm, gelu, softmaxCrossEntropy, crossEntropyPerRow, channelSum, leadingAxes, bilinearMatrix, resizeBilinearHalfPixel } from "./ops.js";
export type { BatchStats } from "./ops.js";
export { sgdStep, sgdMomentumStep, sgdMomentumUpdate, newMomentumBuffers } from "./train.js";
export type { SgdMomentumConfig, MomentumBuffers } from "./train.js";
export { sumToShape } from "./gradients.js";
export * as params from "./models/params.js";
export * as resnet from "./models/resnet.js";
export * as deeplab from "./models/deeplab.js";
export * as vit from "./models/vit.js";
