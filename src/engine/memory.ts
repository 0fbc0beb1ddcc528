// The 4 GiB wasm heap, made visible.
//
// tfjs-wasm is a wasm32 module: its heap cannot grow past 4 GiB. Out of memory, the single-threaded
// build aborts (`Aborted()`), and the threaded build hangs. So we estimate a training step's memory
// from the model's shapes before running it, and refuse with a message that says what fits.
//
// The estimate: tfjs keeps every forward intermediate until the end of the backward pass (the tape),
// and also every gradient of an intermediate (tape.ts never frees them during backprop). So a step
// needs about
//   2 × all parameters (the weights and XNNPACK's packed copy of each conv filter)
//   + (2 + optimizer slots) × trainable parameters (gradients, update temporaries, slots)
//   + batch × 3 × (floats the tape keeps per image: values, their gradients, allocator slack)
//   + transient backward memory: 3 × the largest activation and the filter gradient's im2col
//     buffer (≤ 64 MB).
// Model builders supply the shape walk (see models/*.ts, `…MemoryModel`). Calibrated on DeepLab-v3
// R50 OS8 (heap high-water, 1 thread): 64² 0.86 GB, 128² 1.06, 192² 1.48, 256² 2.13; 256² at batch 2
// 3.49 GB (2 threads: 3.48). The estimate gives 0.77, 1.01, 1.45, 2.10 and 3.44 GB.
// With the onnxruntime provider (the default) the heap holds less (no packed filter copies, no im2col
// buffers inside XNNPACK, fused batch norm): DeepLab-v3 at 256², batch 1, 2 and 4: 1.27, 2.15 and 3.85 GB;
// batch 6 runs out (tools/engine-probe.ts heap N). The estimate stays the XNNPACK one, on the
// safe side. A step that runs out anyway ends in a MaskdistillError (withHeapGuard) instead of the
// module's bare RuntimeError.
import * as tf from "@tensorflow/tfjs";
import { MaskdistillError } from "../errors.js";

/** The wasm32 ceiling (65535 pages of 64 KiB). */
export const WASM_HEAP_MAX_BYTES = 4294901760;
/** What we plan for: allocator fragmentation and the module's own data take the rest. */
export const WASM_HEAP_USABLE_BYTES = Math.floor(WASM_HEAP_MAX_BYTES * 0.85);

const FLOAT = 4;
const IM2COL_BYTES = 64 * 1024 * 1024;       // COLS_BUDGET in wasm/conv.ts
const TRANSIENT_LARGEST = 3;                  // largest activations alive at once in backward, besides the tape
const TAPE_FACTOR = 3;                        // values + gradients of intermediates + allocator slack

export interface ActivationCount {
  /** Floats the tape keeps per image. */
  savedFloats: number;
  /** Floats of the largest single activation per image. */
  largestFloats: number;
}

export interface StepMemoryModel {
  name: string;
  /** Every parameter, frozen ones included (floats). */
  paramFloats: number;
  /** Parameters that get gradients (floats). */
  trainableFloats: number;
  /** Shape walk of one training forward pass at input height×width. */
  activations(height: number, width: number): ActivationCount;
}

export interface StepMemoryEstimate {
  model: string;
  batch: number;
  inputSize: [number, number];
  bytes: number;
  parts: { parameters: number; savedActivations: number; transient: number };
  limitBytes: number;
  fits: boolean;
  /** The largest batch that fits at this input size (0: not even one image). */
  maxBatch: number;
}

export interface EstimateOptions {
  /** Optimizer state per trainable parameter: 0 for SGD, 1 for momentum, 2 for Adam. */
  optimizerSlots?: number;
  /** Budget to check against; default WASM_HEAP_USABLE_BYTES. */
  limitBytes?: number;
}

function bytesFor(model: StepMemoryModel, batch: number, h: number, w: number, slots: number) {
  const a = model.activations(h, w);
  const parameters = FLOAT * (2 * model.paramFloats + model.trainableFloats * (2 + slots));
  const savedActivations = FLOAT * batch * TAPE_FACTOR * a.savedFloats;
  const transient = FLOAT * batch * TRANSIENT_LARGEST * a.largestFloats + IM2COL_BYTES;
  return { parameters, savedActivations, transient, total: parameters + savedActivations + transient };
}

/** Estimates the heap a training step of `model` needs at this batch and input size. */
export function estimateStepMemory(model: StepMemoryModel, batch: number, inputSize: [number, number],
    opts: EstimateOptions = {}): StepMemoryEstimate {
  if (!(batch >= 1) || !Number.isInteger(batch)) throw new MaskdistillError(`batch size must be a positive integer, got ${batch}`);
  const [h, w] = inputSize;
  if (!(h >= 1 && w >= 1)) throw new MaskdistillError(`input size must be positive, got ${h}×${w}`);
  const slots = opts.optimizerSlots ?? 0;
  const limitBytes = opts.limitBytes ?? WASM_HEAP_USABLE_BYTES;
  const b = bytesFor(model, batch, h, w, slots);
  let maxBatch = 0;
  while (bytesFor(model, maxBatch + 1, h, w, slots).total <= limitBytes && maxBatch < 4096) maxBatch++;
  return {
    model: model.name, batch, inputSize: [h, w], bytes: b.total,
    parts: { parameters: b.parameters, savedActivations: b.savedActivations, transient: b.transient },
    limitBytes, fits: b.total <= limitBytes, maxBatch,
  };
}

const GIB = 1024 ** 3;

/** The largest square input (multiple of `multiple`) at which `batch` images fit, or 0. */
function largestSquareInput(model: StepMemoryModel, batch: number, limit: number, slots: number, multiple: number): number {
  let best = 0;
  for (let s = multiple; s <= 4096; s += multiple) {
    if (bytesFor(model, batch, s, s, slots).total <= limit) best = s;
    else break;
  }
  return best;
}

/**
 * Throws a MaskdistillError naming the batch size, input size and what would fit, when the estimate
 * exceeds the budget. Call it before the first step (a step that runs out of heap aborts the
 * process, or hangs it with threads).
 */
export function assertFitsInHeap(model: StepMemoryModel, batch: number, inputSize: [number, number],
    opts: EstimateOptions & { sizeMultiple?: number } = {}): StepMemoryEstimate {
  const est = estimateStepMemory(model, batch, inputSize, opts);
  if (est.fits) return est;
  const [h, w] = inputSize;
  const side = largestSquareInput(model, batch, est.limitBytes, opts.optimizerSlots ?? 0, opts.sizeMultiple ?? 32);
  const options = [
    est.maxBatch > 0 ? `batch ${est.maxBatch} at ${h}×${w}` : `no batch at ${h}×${w}`,
    side > 0 ? `batch ${batch} at ≤ ${side}×${side}` : `no input size at batch ${batch}`,
  ];
  throw new MaskdistillError(
    `a training step of ${model.name} at batch ${batch}, input ${h}×${w} needs about ` +
    `${(est.bytes / GIB).toFixed(2)} GiB, more than the ${(est.limitBytes / GIB).toFixed(2)} GiB the wasm heap ` +
    `can give (wasm32: 4 GiB at most; running out aborts the process, or hangs it with threads). ` +
    `What fits: ${options.join("; ")}. For larger steps use the tensorflow backend ` +
    `(@tensorflow/tfjs-node or -gpu, see the README's "Training on CPU and GPU").`);
}

/** Whether an error is the wasm module running out of its heap (an out-of-bounds access or an abort). */
export function isWasmHeapExhaustion(e: unknown): boolean {
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return /memory access out of bounds|Cannot enlarge memory|Aborted\(|out of memory|Array buffer allocation failed/i.test(msg);
}

/**
 * Runs one training step; if the wasm heap runs out during it, throws a MaskdistillError that says
 * so and what to do instead of the module's bare RuntimeError. (The wasm module cannot be used after
 * that: the process must start again.)
 */
export async function withHeapGuard<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    if (!isWasmHeapExhaustion(e)) throw e;
    throw new MaskdistillError(
      `${what} ran out of the wasm heap (4 GiB at most; ${(heapInUse() / GIB).toFixed(2)} GiB reserved): ` +
      `use a smaller batch or input size (estimate one with assertFitsInHeap), or the tensorflow backend. ` +
      `The wasm backend is unusable after this error: start the process again. (${String(e).slice(0, 120)})`);
  }
}

function heapInUse(): number {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength ?? 0;
}
