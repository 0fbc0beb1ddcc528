// The ResNet-50 that `pretrain --arch resnet50` trains: torchvision's network (engine/models/resnet.ts) at a
// chosen stem width, globally average-pooled into the projection head, as MoCo v2 and DINO's ResNet-50
// runs pretrain theirs. It exports and loads under torchvision's names (conv1, bn1, layer1.0.conv1, …), the
// layout `train-maskrcnn --init` and `train-deeplab --init` read.
//
// Initialisation: torchvision's, with zero_init_residual (below). Batch norm: the student and the teacher both normalise with the statistics of the batch they see (the
// teacher's running statistics come from its own batches; the EMA moves parameters only, as MoCo's
// momentum update). Each network sees every image of the batch at once — SimCLR's global BN — so no
// per-device subset lets a view find its pair through the batch statistics, the leak MoCo's shuffle-BN
// guards against.
import * as tf from "@tensorflow/tfjs";
import { makeResNet50, stage, stem, type ResNet50 } from "../engine/models/resnet.js";
import { seededRng, type Rng } from "../engine/models/params.js";
import { backboneTensors, loadResNet50Backbone, tensorsStateDict, torchShape } from "../segmentation/model.js";
import { MaskdistillError } from "../errors.js";
import { readStateDict, type StateDict } from "../modeling/checkpoint/index.js";
import { toFloat16Bits, type NamedParam } from "./vit.js";

export interface PretrainResNet {
  kind: "resnet50";
  /** Stem channels: 64 is ResNet-50; the pooled embedding has 32·width channels. */
  width: number;
  backbone: ResNet50;
}

export function makePretrainResNet(rng: Rng, width: number): PretrainResNet {
  if (!(Number.isInteger(width) && width >= 1)) throw new MaskdistillError(`ResNet-50 width must be a positive integer, got ${width}`);
  const backbone = makeResNet50(rng, { width });
  // zero_init_residual (Goyal et al. 2017; torchvision's option): each bottleneck's last BN starts at γ = 0,
  // so every block starts as the identity. Without it the contrastive loss of a width-16 ResNet-50 stayed at
  // chance on the shapes world (1.66 after 360 iterations); with it, 1.43 after 60.
  for (const layer of [backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4]) for (const b of layer) b.conv3.gamma.assign(tf.zerosLike(b.conv3.gamma));
  return { kind: "resnet50", width, backbone };
}

/** Channels of the pooled embedding (layer4's output). */
export const resnetEmbedDim = (width: number): number => 32 * width;

/** Normalised CHW images (all `width`×`height`, default square) → one NHWC batch. */
export function chwToNhwc(images: Float32Array[], width: number, height = width): tf.Tensor4D {
  const plane = width * height, out = new Float32Array(images.length * plane * 3);
  images.forEach((img, b) => {
    if (img.length !== 3 * plane) throw new MaskdistillError(`chwToNhwc: expected 3×${height}×${width} values, got ${img.length}`);
    const o = b * plane * 3;
    for (let i = 0; i < plane; i++) for (let c = 0; c < 3; c++) out[o + i * 3 + c] = img[c * plane + i];
  });
  return tf.tensor4d(out, [images.length, height, width, 3]);
}

/** The globally average-pooled layer4 features [N, 32·width] of an NHWC batch; BN on batch statistics when `train`. */
export function resnetPooled(m: PretrainResNet, x: tf.Tensor4D, train: boolean): tf.Tensor2D {
  const b = m.backbone;
  let y = stem(b.stem, x, train);
  for (const layer of [b.layer1, b.layer2, b.layer3, b.layer4]) y = stage(layer, y, train);
  return tf.mean(y, [1, 2]) as tf.Tensor2D;
}

function namedParam(t: ReturnType<typeof backboneTensors>[number]): NamedParam {
  return { key: t.key, variable: t.variable, torchShape: torchShape(t), transposed: false, ...(t.conv ? { hwio: true } : {}) };
}

/** The trained tensors (kernels, BN weights and biases) under torchvision's keys. */
export function resnetParams(m: PretrainResNet): NamedParam[] {
  return backboneTensors(m, "").filter((t) => !t.buffer).map(namedParam);
}

/** The BN running statistics (buffers: saved and exported, never trained nor averaged). */
export function resnetBuffers(m: PretrainResNet): NamedParam[] {
  return backboneTensors(m, "").filter((t) => t.buffer).map(namedParam);
}

/** The backbone's torchvision state dict (parameters and running statistics). */
export async function resnetStateDict(m: PretrainResNet, dtype: "float32" | "float16" = "float32"): Promise<StateDict> {
  const sd = await tensorsStateDict(backboneTensors(m, ""));
  if (dtype === "float16") for (const [k, t] of sd) sd.set(k, { dtype: "float16", shape: t.shape, data: toFloat16Bits(t.data as Float32Array) });
  return sd;
}

/** A pretrained ResNet-50 file as a tfjs model (e.g. to embed crops), width read from its stem. */
export async function loadPretrainResNet(file: string): Promise<PretrainResNet> {
  return pretrainResNetFrom((await readStateDict(file, "resnet")).stateDict, file);
}

/** The same from a state dict already read (`file` names it in errors). */
export function pretrainResNetFrom(stateDict: StateDict, file: string): PretrainResNet {
  const stemKernel = stateDict.get("conv1.weight");
  if (!stemKernel) throw new MaskdistillError("not a torchvision ResNet-50 (no conv1.weight)", file);
  const m = makePretrainResNet(seededRng(0), stemKernel.shape[0]);
  loadResNet50Backbone(m, stateDict, file);
  return m;
}
