// Registers the engine's wasm kernels and gradient overrides (idempotent).
import * as tf from "@tensorflow/tfjs";
import { KernelArgs, rememberStockKernel } from "./wasm/backend.js";
import { layoutKernels } from "./wasm/layout.js";
import { convKernels } from "./wasm/conv.js";
import { convOrtKernels } from "./wasm/convOrt.js";
import { matMulKernels } from "./wasm/matmul.js";
import { reduceKernels } from "./wasm/reduce.js";
import { segmentKernels } from "./wasm/segment.js";
import { batchNormKernels } from "./wasm/batchnorm.js";
import { layerNormGeluKernels } from "./wasm/layerNormGelu.js";
import { engineGradients } from "./gradients.js";

type OurKernel = { name: string; kernelFunc: (a: KernelArgs) => tf.TensorInfo | tf.TensorInfo[] };

/** The wasm kernels we register: overrides of slow stock kernels, the two missing ones, fused batch norm, layer norm and GELU, the inference conv unit. */
export const ENGINE_WASM_KERNELS: readonly OurKernel[] = [
  ...layoutKernels, ...convKernels, ...convOrtKernels, ...matMulKernels, ...reduceKernels, ...segmentKernels, ...batchNormKernels, ...layerNormGeluKernels,
];

const stockGradients = new Map<string, tf.GradConfig | undefined>();
let registered = false;

/**
 * Registers our kernels for the wasm backend and our gradients. Call after importing
 * @tensorflow/tfjs-backend-wasm (so the stock kernels exist to fall back on); safe to call twice.
 * A stock kernel that we replace keeps its setup function (its C++ binding), because our version
 * still calls it for the cases it does not handle.
 */
export function registerEngineKernels(): void {
  if (registered) return;
  for (const k of ENGINE_WASM_KERNELS) {
    const stock = rememberStockKernel(k.name);
    if (stock) tf.unregisterKernel(k.name, "wasm");
    tf.registerKernel({
      kernelName: k.name,
      backendName: "wasm",
      kernelFunc: k.kernelFunc as unknown as tf.KernelFunc,
      setupFunc: stock?.setupFunc,
      disposeFunc: stock?.disposeFunc,
    });
  }
  for (const g of engineGradients((name) => {
    if (!stockGradients.has(name)) stockGradients.set(name, tf.getGradient(name));
    return stockGradients.get(name);
  })) {
    if (tf.getGradient(g.kernelName)) tf.unregisterGradient(g.kernelName);
    tf.registerGradient(g);
  }
  registered = true;
}

export function engineKernelNames(): string[] {
  return ENGINE_WASM_KERNELS.map((k) => k.name);
}
export function engineGradientNames(): string[] {
  return ["Conv2D", "BatchMatMul", "FusedBatchNorm"];
}
