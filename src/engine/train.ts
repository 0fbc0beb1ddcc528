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
