// DINO's projection head (Caron et al. 2021, DINOHead): a 3-layer MLP with GELU down to a bottleneck,
// L2 normalisation, then a weight-normalised linear layer without bias whose norm (weight_g) is fixed
// to 1 (norm_last_layer=True), so each output prototype is a unit vector.
import * as tf from "@tensorflow/tfjs";
import { gelu } from "../engine/ops.js";
import { applyLinear, type Linear } from "../engine/models/vit.js";
import { normalVariable, constantVariable, type Rng } from "../engine/models/params.js";
import type { NamedParam } from "./vit.js";

export interface DinoHeadConfig {
  hidden: number;
  bottleneck: number;
  outDim: number;
}

export interface DinoHead {
  config: DinoHeadConfig;
  mlp: [Linear, Linear, Linear];
  /** weight_v of the last layer, [bottleneck, outDim] (our layout; PyTorch's is [outDim, bottleneck]). */
  lastV: tf.Variable;
}

const INIT_STD = 0.02;

function linear(rng: Rng, cin: number, cout: number): Linear {
  return { w: normalVariable(rng, [cin, cout], INIT_STD, true), b: constantVariable([cout], 0, true) };
}

export function makeDinoHead(rng: Rng, inDim: number, cfg: DinoHeadConfig): DinoHead {
  return {
    config: cfg,
    mlp: [linear(rng, inDim, cfg.hidden), linear(rng, cfg.hidden, cfg.hidden), linear(rng, cfg.hidden, cfg.bottleneck)],
    lastV: normalVariable(rng, [cfg.bottleneck, cfg.outDim], INIT_STD, true),
  };
}

/** F.normalize(x, dim=-1): x / max(‖x‖₂, 1e-12). */
function l2Normalize(x: tf.Tensor, axis: number): tf.Tensor {
  return tf.div(x, tf.maximum(tf.norm(x, 2, axis, true), 1e-12));
}

/**
 * The L2-normalised bottleneck embedding [N, bottleneck] of CLS tokens [N, D] (the MLP's output); with
 * `centre`, the MLP's output minus its mean over the N rows first (PretrainConfig.centreEmbeddings).
 */
export function headEmbedding(h: DinoHead, x: tf.Tensor2D, centre = false): tf.Tensor2D {
  const [l1, l2, l3] = h.mlp;
  const y = applyLinear(l3, gelu(applyLinear(l2, gelu(applyLinear(l1, x)))));
  return l2Normalize(centre ? tf.sub(y, tf.mean(y, 0, true)) : y, 1) as tf.Tensor2D;
}

/** Logits [N, outDim] for CLS tokens [N, D]. */
export function dinoHead(h: DinoHead, x: tf.Tensor2D): tf.Tensor2D {
  // weight norm with g = 1: every output column of v scaled to unit length
  const w = tf.div(h.lastV, tf.norm(h.lastV, 2, 0, true));
  return tf.matMul(headEmbedding(h, x), w as tf.Tensor2D);
}

/** The head's parameters under DINO's keys (`head.` prefix not included). weight_g is implied (= 1). */
export function headParams(h: DinoHead): NamedParam[] {
  const out: NamedParam[] = [];
  h.mlp.forEach((l, i) => {
    const [cin, cout] = l.w.shape as number[];
    out.push({ key: `mlp.${2 * i}.weight`, variable: l.w, torchShape: [cout, cin], transposed: true });
    out.push({ key: `mlp.${2 * i}.bias`, variable: l.b, torchShape: [cout], transposed: false });
  });
  out.push({ key: "last_layer.weight_v", variable: h.lastV, torchShape: [h.config.outDim, h.config.bottleneck], transposed: true });
  return out;
}
