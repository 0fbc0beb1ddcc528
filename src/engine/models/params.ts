// Deterministic parameter initialisation: values come from a seeded generator as Float32Arrays,
// so the same model built on two backends starts from identical weights.
import * as tf from "@tensorflow/tfjs";
import { mulberry32 } from "../../random.js";

/** Uniform [0, 1) generator (mulberry32). */
export type Rng = () => number;

/** The project's seeded generator (src/random.ts). */
export const seededRng = (seed: number): Rng => mulberry32(seed);

/** n samples of N(0, std²) (Box–Muller). */
export function normalArray(rng: Rng, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng(), 1e-12), v = rng();
    const r = std * Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export function sizeOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A variable drawn from N(0, std²). */
export function normalVariable(rng: Rng, shape: number[], std: number, trainable: boolean): tf.Variable {
  return tf.tidy(() => tf.variable(tf.tensor(normalArray(rng, sizeOf(shape), std), shape), trainable));
}

export function constantVariable(shape: number[], value: number, trainable: boolean): tf.Variable {
  return tf.tidy(() => tf.variable(tf.fill(shape, value), trainable));
}

/** Every tf.Variable in a plain object tree (arrays and records), in a stable order. */
export function collectVariables(tree: unknown, trainableOnly = false): tf.Variable[] {
  const out: tf.Variable[] = [];
  const visit = (node: unknown) => {
    if (node instanceof tf.Variable) {
      if (!trainableOnly || node.trainable) out.push(node);
    } else if (Array.isArray(node)) {
      node.forEach(visit);
    } else if (node && typeof node === "object" && !(node instanceof tf.Tensor)) {
      for (const key of Object.keys(node).sort()) visit((node as Record<string, unknown>)[key]);
    }
  };
  visit(tree);
  return out;
}

export function countParams(vars: tf.Variable[]): number {
  return vars.reduce((s, v) => s + v.size, 0);
}

/** Our HWIO kernel values → PyTorch's OIHW. */
export function hwioToOihw(src: Float32Array, shape: number[]): Float32Array {
  const [kh, kw, i, o] = shape;
  const dst = new Float32Array(src.length);
  for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) for (let b = 0; b < i; b++) {
    const s = ((y * kw + x) * i + b) * o;
    for (let a = 0; a < o; a++) dst[((a * i + b) * kh + y) * kw + x] = src[s + a];
  }
  return dst;
}

/** PyTorch's OIHW kernel values → our HWIO (`shape` = the torch shape). */
export function oihwToHwio(src: Float32Array, shape: number[]): Float32Array {
  const [o, i, kh, kw] = shape;
  const dst = new Float32Array(src.length);
  for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) {
    dst[((y * kw + x) * i + b) * o + a] = src[((a * i + b) * kh + y) * kw + x];
  }
  return dst;
}
