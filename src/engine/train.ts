// One plain SGD training step, the unit the benchmarks and tests time.
import * as tf from "@tensorflow/tfjs";
import { withHeapGuard } from "./memory.js";

/**
 * Computes the loss and the gradients of `vars`, applies w ← w − lr·g, and returns the loss value.
 * Every tensor made by the step is disposed (running BN statistics are assigned to their variables).
 */
export async function sgdStep(loss: () => tf.Scalar, vars: tf.Variable[], lr: number): Promise<number> {
  return withHeapGuard("a training step", async () => sgdStepUnguarded(loss, vars, lr));
}

async function sgdStepUnguarded(loss: () => tf.Scalar, vars: tf.Variable[], lr: number): Promise<number> {
  const { value, grads } = tf.variableGrads(loss, vars);
  for (const v of vars) {
    const g = grads[v.name];
    if (!g) continue;
    // One variable at a time, freeing its gradient at once: the update never holds a second copy
    // of all the weights.
    tf.tidy(() => { v.assign(tf.sub(v, tf.mul(g, lr))); });
    g.dispose();
  }
  const out = (await value.data())[0];
  value.dispose();
  tf.dispose(Object.values(grads));
  return out;
}

/** PyTorch's torch.optim.SGD settings (dampening 0, no Nesterov), with an optional global gradient clip. */
export interface SgdMomentumConfig {
  lr: number;
  momentum: number;
  weightDecay: number;
  /** torch.nn.utils.clip_grad_norm_ before the step: the global L2 norm of all gradients clipped to this (0 or absent = off). */
  clipGradNorm?: number;
}

/** Momentum buffers, one per trained variable (keyed by the variable's name), zero at the start. */
export type MomentumBuffers = Map<string, tf.Variable>;

export function newMomentumBuffers(vars: tf.Variable[]): MomentumBuffers {
  return new Map(vars.map((v) => [v.name, tf.variable(tf.zerosLike(v), false)]));
}

/**
 * torch.optim.SGD's update on given gradients (each gradient is disposed once applied):
 *   g ← g·min(1, clip / (‖g‖ + 1e-6)) when clipping (clip_grad_norm_, ‖g‖ over all gradients);
 *   d = g + wd·w;  b ← μ·b + d  (b = d at the first step: the buffers start at 0);  w ← w − lr·b.
 * `bufferOf` gives a variable's momentum buffer. Returns the global gradient norm before clipping when
 * clipping or `measureNorm`, else NaN.
 */
export function sgdMomentumUpdate(vars: tf.Variable[], grads: tf.NamedTensorMap, bufferOf: (v: tf.Variable) => tf.Variable | undefined,
    cfg: SgdMomentumConfig, opts: { measureNorm?: boolean } = {}): number {
  const clipTo = cfg.clipGradNorm ?? 0;
  let norm = NaN;
  if (clipTo > 0 || opts.measureNorm) {
    let sq = 0;
    for (const v of vars) {
      const g = grads[v.name];
      if (g) sq += tf.tidy(() => tf.sum(tf.square(g)).dataSync()[0]);
    }
    norm = Math.sqrt(sq);
  }
  const clip = clipTo > 0 ? Math.min(1, clipTo / (norm + 1e-6)) : 1;
  for (const v of vars) {
    const g = grads[v.name];
    const b = bufferOf(v);
    if (!b) throw new Error(`no momentum buffer for variable ${v.name}`);
    if (!g) continue;   // torch skips parameters without a gradient (weight decay included)
    tf.tidy(() => {
      const gc = clip < 1 ? tf.mul(g, clip) : g;
      const d = cfg.weightDecay ? tf.add(gc, tf.mul(v, cfg.weightDecay)) : gc;
      const nb = tf.add(tf.mul(b, cfg.momentum), d);
      b.assign(nb);
      v.assign(tf.sub(v, tf.mul(nb, cfg.lr)));
    });
    g.dispose();
  }
  return norm;
}

/**
 * One step of torch.optim.SGD with momentum and weight decay on every variable in `vars` (sgdMomentumUpdate
 * on the gradients of `loss`). Returns the loss value. Running BN statistics are assigned by the forward pass itself.
 */
export async function sgdMomentumStep(loss: () => tf.Scalar, vars: tf.Variable[], buffers: MomentumBuffers,
    cfg: SgdMomentumConfig): Promise<number> {
  return withHeapGuard("a training step", async () => {
    const { value, grads } = tf.variableGrads(loss, vars);
    sgdMomentumUpdate(vars, grads, (v) => buffers.get(v.name), cfg);
    const out = (await value.data())[0];
    value.dispose();
    tf.dispose(Object.values(grads));
    return out;
  });
}
