// Mask R-CNN R50-FPN as tfjs computations (NHWC): the ResNet-50 body with frozen batch norm, the FPN
// (P2–P5 + max-pooled P6), the RPN head, the two-FC box head with its predictor, and the 4-conv mask
// head with its deconvolution and per-class 1×1 predictor. One definition for training and inference;
// the forward-only geometry (anchors, box coding, NMS, pasting) is plain TypeScript in src/instance/.
//
// Weights load from torchvision's maskrcnn_resnet50_fpn state dicts or detectron2's R50-FPN Mask R-CNN
// ones (see maskRcnnFromDetectron2StateDict for its names and class layout); torch layouts converted here:
// conv [O, I, kh, kw] → [kh, kw, I, O], linear [out, in] → [in, out], fc6's input reordered from
// torch's C×7×7 flattening to our 7×7×C. Widths are read from the tensors, so narrow test models load too.
import * as tf from "@tensorflow/tfjs";
import { MaskdistillError } from "../../errors.js";
import { toFloat32, type StateDict, type TensorData } from "../../modeling/checkpoint/index.js";
import { roiAlignLevels } from "../roiAlign.js";
import { inferenceConv } from "../ops.js";
import type { ConvBn, Bottleneck, ResNet50 } from "./resnet.js";
import { stage, stem } from "./resnet.js";

/** A convolution with bias (FPN, RPN and mask head layers). */
export interface Conv {
  kernel: tf.Variable;   // [k, k, Cin, Cout]
  bias: tf.Variable;     // [Cout]
  stride: number;
  padding: number;
}

export interface Linear {
  w: tf.Variable;        // [in, out]
  b: tf.Variable;        // [out]
}

export interface MaskRcnnNet {
  body: ResNet50;
  /** FPN lateral 1×1 convs and 3×3 output convs, for C2…C5. */
  fpnInner: Conv[];
  fpnLayer: Conv[];
  rpnConv: Conv;
  rpnCls: Conv;           // 1×1 → A objectness logits per location
  rpnBox: Conv;           // 1×1 → 4A box deltas per location
  fc6: Linear;            // input 7·7·C in our (y, x, c) order
  fc7: Linear;
  clsScore: Linear;       // → numClasses (index 0 = background)
  bboxPred: Linear;       // → 4·numClasses
  maskConvs: Conv[];
  /** The 2×2 stride-2 transposed convolution as a matrix [Cin, 4·Cout] (column (dy·2 + dx)·Cout + o). */
  maskDeconv: Linear;
  maskLogits: Conv;       // 1×1 → numClasses
  numClasses: number;
  fpnChannels: number;
  anchorsPerLocation: number;
  /** The box side the ROI poolers assign to p4 (default 224, both libraries'; the file's `canonical_box_size`). */
  canonicalBoxSize?: number;
}

// ---- forward ----

function conv(p: Conv, x: tf.Tensor4D, relu = false): tf.Tensor4D {
  // inference: conv, bias and ReLU as one kernel where the engine has it
  const fused = inferenceConv(x, p.kernel as tf.Tensor4D, { stride: p.stride, pad: p.padding }, { bias: p.bias as tf.Tensor1D }, relu);
  if (fused) return fused;
  const y = tf.add(tf.conv2d(x, p.kernel as tf.Tensor4D, p.stride, p.padding, "NHWC"), p.bias) as tf.Tensor4D;
  return relu ? tf.relu(y) : y;
}

function linear(p: Linear, x: tf.Tensor2D, relu = false): tf.Tensor2D {
  const y = tf.add(tf.matMul(x, p.w as tf.Tensor2D), p.b) as tf.Tensor2D;
  return relu ? tf.relu(y) : y;
}

/** Nearest-neighbour upsampling to `h`×`w` as F.interpolate(mode="nearest"): index ⌊dst·in/out⌋; exact 2× by broadcasting. */
function upsampleNearest(x: tf.Tensor4D, h: number, w: number): tf.Tensor4D {
  const [n, xh, xw, c] = x.shape;
  if (h === 2 * xh && w === 2 * xw) {
    // columns, then rows, each by concatenating a copy (rank ≤ 4: tfjs has no gradient for tile above rank 4)
    const cols = tf.reshape(tf.concat([tf.reshape(x, [n * xh, xw, 1, c]), tf.reshape(x, [n * xh, xw, 1, c])], 2), [n, xh, 1, w * c]);
    return tf.reshape(tf.concat([cols, cols], 2), [n, h, w, c]);
  }
  return tf.image.resizeNearestNeighbor(x, [h, w], false, false);
}

/** `f` in its own tidy scope, so that its intermediates are freed as soon as it returns. */
const scoped = <T extends tf.Tensor>(f: () => T): T => tf.tidy(f);

/** A ResNet stage block by block, freeing each block's intermediates (at 800 px a 256-channel map of
 *  stage 1 is 55 MB; one tidy over the whole body would hold dozens of them). */
function stageScoped(blocks: Bottleneck[], x: tf.Tensor4D, train: boolean): tf.Tensor4D {
  let y = x;
  for (const b of blocks) {
    const next = scoped(() => stage([b], y, train));
    if (y !== x) y.dispose();
    y = next;
  }
  return y;
}

/** ResNet body + FPN: [P2, P3, P4, P5, P6] for a normalised, padded batch [N, H, W, 3]. */
export function backboneFeatures(net: MaskRcnnNet, images: tf.Tensor4D, train = false): tf.Tensor4D[] {
  const c1 = scoped(() => stem(net.body.stem, images, train));
  const c2 = stageScoped(net.body.layer1, c1, train);
  c1.dispose();
  const c3 = stageScoped(net.body.layer2, c2, train);
  const c4 = stageScoped(net.body.layer3, c3, train);
  const c5 = stageScoped(net.body.layer4, c4, train);
  const cs = [c2, c3, c4, c5];
  const outs = tf.tidy(() => {
    let last = conv(net.fpnInner[3], c5);
    const levels: tf.Tensor4D[] = [conv(net.fpnLayer[3], last)];
    for (let i = 2; i >= 0; i--) {
      const lateral = conv(net.fpnInner[i], cs[i]);
      last = tf.add(lateral, upsampleNearest(last, lateral.shape[1], lateral.shape[2])) as tf.Tensor4D;
      levels.unshift(conv(net.fpnLayer[i], last));
    }
    // LastLevelMaxPool: max_pool2d(kernel 1, stride 2) = every other cell of P5
    levels.push(tf.maxPool(levels[3], 1, 2, "valid"));
    return levels;
  });
  tf.dispose(cs);
  return outs;
}

/** The RPN head on every level: objectness logits [N, H, W, A] and deltas [N, H, W, 4A]. */
export function rpnHeadOutputs(net: MaskRcnnNet, features: tf.Tensor4D[]): { objectness: tf.Tensor4D[]; deltas: tf.Tensor4D[] } {
  return tf.tidy(() => {
    const objectness: tf.Tensor4D[] = [], deltas: tf.Tensor4D[] = [];
    for (const f of features) {
      const t = conv(net.rpnConv, f, true);
      objectness.push(conv(net.rpnCls, t));
      deltas.push(conv(net.rpnBox, t));
    }
    return { objectness, deltas };
  });
}

export interface PoolSpec {
  outputSize: number;
  samplingRatio: number;
  aligned: boolean;
  /** Map cells per image pixel of each pooled level (P2…P5: 1/4 … 1/32). */
  scales: number[];
}

/**
 * RoIAlign of boxes [K, 4] (image pixels of the padded batch) from the levels the boxes were assigned
 * to (`levels[k]` indexes `features`), all of image `imageIndex[k]` → [K, s, s, C] in box order.
 */
export function multiScaleRoiAlign(features: tf.Tensor4D[], boxes: Float32Array, levels: Int32Array, imageIndex: Int32Array, spec: PoolSpec): tf.Tensor4D {
  const K = levels.length;
  const C = features[0].shape[3];
  if (K === 0) return tf.zeros([0, spec.outputSize, spec.outputSize, C]);
  return tf.tidy(() => roiAlignLevels(features.slice(0, spec.scales.length), tf.tensor2d(boxes, [K, 4]), tf.tensor1d(imageIndex, "int32"),
    tf.tensor1d(levels, "int32"), spec.scales, { outputSize: [spec.outputSize, spec.outputSize], samplingRatio: spec.samplingRatio, aligned: spec.aligned }));
}

/** Box head on pooled features [K, 7, 7, C]: class logits [K, numClasses] and box deltas [K, 4·numClasses]. */
export function boxHeadOutputs(net: MaskRcnnNet, pooled: tf.Tensor4D): { classLogits: tf.Tensor2D; boxDeltas: tf.Tensor2D } {
  return tf.tidy(() => {
    const [K, h, w, c] = pooled.shape;
    const x = linear(net.fc7, linear(net.fc6, tf.reshape(pooled, [K, h * w * c]), true), true);
    return { classLogits: linear(net.clsScore, x), boxDeltas: linear(net.bboxPred, x) };
  });
}

/** Mask head on pooled features [K, 14, 14, C]: per-class mask logits [K, 28, 28, numClasses]. */
export function maskHeadOutputs(net: MaskRcnnNet, pooled: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    let x = pooled;
    for (const c of net.maskConvs) x = conv(c, x, true);
    const [K, h, w, cin] = x.shape;
    const cout = net.maskDeconv.b.shape[0];
    const y = tf.matMul(tf.reshape(x, [K * h * w, cin]), net.maskDeconv.w as tf.Tensor2D);         // [K·h·w, 4·Cout]
    const up = tf.reshape(tf.transpose(tf.reshape(y, [K, h, w, 2, 2, cout]), [0, 1, 3, 2, 4, 5]), [K, 2 * h, 2 * w, cout]);
    return conv(net.maskLogits, tf.relu(tf.add(up, net.maskDeconv.b)) as tf.Tensor4D);
  });
}

// ---- weights from a torchvision state dict ----

/** Which library's key names a checkpoint uses (named in the errors about missing tensors). */
export type MaskRcnnLayout = "torchvision" | "detectron2";

function need(sd: StateDict, key: string, file: string, layout: MaskRcnnLayout = "torchvision"): TensorData {
  const t = sd.get(key);
  if (!t) throw new MaskdistillError(`not a ${layout} Mask R-CNN checkpoint: tensor '${key}' is missing`, file);
  return t;
}

/** torch conv weight [O, I, kh, kw] → tfjs [kh, kw, I, O]. */
function convKernel(t: TensorData): tf.Variable {
  const [o, i, kh, kw] = t.shape, src = toFloat32(t), dst = new Float32Array(src.length);
  for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) {
    dst[((y * kw + x) * i + b) * o + a] = src[((a * i + b) * kh + y) * kw + x];
  }
  return frozenVariable(tf.tensor4d(dst, [kh, kw, i, o]));
}

/** A non-trainable variable holding `t`'s data; `t` itself is released (the variable keeps the data). */
function frozenVariable(t: tf.Tensor): tf.Variable {
  const v = tf.variable(t, false);
  t.dispose();
  return v;
}

const vector = (t: TensorData): tf.Variable => frozenVariable(tf.tensor1d(toFloat32(t)));

function convFrom(sd: StateDict, prefix: string, file: string, layout: MaskRcnnLayout = "torchvision"): Conv {
  const w = need(sd, `${prefix}.weight`, file, layout);
  return { kernel: convKernel(w), bias: vector(need(sd, `${prefix}.bias`, file, layout)), stride: 1, padding: (w.shape[2] - 1) >> 1 };
}

/** torch linear [out, in] → [in, out]; `permuteIn` maps our input index to torch's. */
function linearFrom(sd: StateDict, prefix: string, file: string, permuteIn?: (i: number) => number, layout: MaskRcnnLayout = "torchvision"): Linear {
  const w = need(sd, `${prefix}.weight`, file, layout);
  const [out, inn] = w.shape, src = toFloat32(w), dst = new Float32Array(src.length);
  for (let i = 0; i < inn; i++) {
    const ti = permuteIn ? permuteIn(i) : i;
    for (let o = 0; o < out; o++) dst[i * out + o] = src[o * inn + ti];
  }
  return { w: frozenVariable(tf.tensor2d(dst, [inn, out])), b: vector(need(sd, `${prefix}.bias`, file, layout)) };
}

/** conv (no bias) + FrozenBatchNorm2d (weight, bias, running_mean, running_var) as a frozen ConvBn. */
function convBnFrom(sd: StateDict, conv: string, bn: string, file: string, stride: number, layout: MaskRcnnLayout = "torchvision"): ConvBn {
  const w = need(sd, `${conv}.weight`, file, layout);
  const v = (k: string) => vector(need(sd, `${bn}.${k}`, file, layout));
  return {
    kernel: convKernel(w),
    gamma: v("weight"), beta: v("bias"), runningMean: v("running_mean"), runningVar: v("running_var"),
    stride, dilation: 1, padding: (w.shape[2] - 1) >> 1, trainable: false,
  };
}

function stageFrom(sd: StateDict, prefix: string, file: string, stride: number): Bottleneck[] {
  const blocks: Bottleneck[] = [];
  for (let i = 0; sd.has(`${prefix}.${i}.conv1.weight`); i++) {
    const p = `${prefix}.${i}`, s = i === 0 ? stride : 1;
    blocks.push({
      conv1: convBnFrom(sd, `${p}.conv1`, `${p}.bn1`, file, 1),
      conv2: convBnFrom(sd, `${p}.conv2`, `${p}.bn2`, file, s),     // v1.5: the stride sits on the 3×3
      conv3: convBnFrom(sd, `${p}.conv3`, `${p}.bn3`, file, 1),
      downsample: sd.has(`${p}.downsample.0.weight`) ? convBnFrom(sd, `${p}.downsample.0`, `${p}.downsample.1`, file, s) : undefined,
    });
  }
  if (!blocks.length) throw new MaskdistillError(`not a torchvision Mask R-CNN checkpoint: no blocks under '${prefix}'`, file);
  return blocks;
}

/** ConvTranspose2d(k 2, stride 2) [Cin, Cout, 2, 2] as the matrix [Cin, 4·Cout] of `maskDeconv`. */
function deconvFrom(sd: StateDict, prefix: string, file: string, layout: MaskRcnnLayout): Linear {
  const dw = need(sd, `${prefix}.weight`, file, layout);
  const [cin, cout, kh, kw] = dw.shape;
  if (kh !== 2 || kw !== 2) throw new MaskdistillError(`mask head deconvolution '${prefix}' is ${kh}×${kw}, expected 2×2`, file);
  const dsrc = toFloat32(dw), dm = new Float32Array(cin * 4 * cout);
  for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) for (let t = 0; t < 4; t++) dm[c * 4 * cout + t * cout + o] = dsrc[(c * cout + o) * 4 + t];
  return { w: frozenVariable(tf.tensor2d(dm, [cin, 4 * cout])), b: vector(need(sd, `${prefix}.bias`, file, layout)) };
}

/** The network's weights as a torchvision maskrcnn_resnet50_fpn state dict (what maskRcnnFromStateDict reads). */
export async function maskRcnnStateDict(net: MaskRcnnNet): Promise<StateDict> {
  const sd: StateDict = new Map();
  for (const p of maskRcnnParams(net)) sd.set(p.key, { dtype: "float32", shape: p.torchShape, data: p.toTorch((await p.variable.data()) as Float32Array) } as TensorData);
  return sd;
}

/** The first key present, so both torchvision naming generations load (e.g. mask_fcn1 vs 0.0 since 0.13). */
function firstKey(sd: StateDict, candidates: string[], file: string): string {
  for (const c of candidates) if (sd.has(`${c}.weight`)) return c;
  throw new MaskdistillError(`not a torchvision Mask R-CNN checkpoint: none of ${candidates.map((c) => `'${c}.weight'`).join(", ")}`, file);
}

/** Builds the network from a torchvision maskrcnn_resnet50_fpn state dict (any widths, any class count). */
export function maskRcnnFromStateDict(sd: StateDict, file: string): MaskRcnnNet {
  const b = "backbone.body";
  const body: ResNet50 = {
    stem: convBnFrom(sd, `${b}.conv1`, `${b}.bn1`, file, 2),
    layer1: stageFrom(sd, `${b}.layer1`, file, 1),
    layer2: stageFrom(sd, `${b}.layer2`, file, 2),
    layer3: stageFrom(sd, `${b}.layer3`, file, 2),
    layer4: stageFrom(sd, `${b}.layer4`, file, 2),
  };
  const fpnInner = [0, 1, 2, 3].map((i) => convFrom(sd, firstKey(sd, [`backbone.fpn.inner_blocks.${i}.0`, `backbone.fpn.inner_blocks.${i}`], file), file));
  const fpnLayer = [0, 1, 2, 3].map((i) => convFrom(sd, firstKey(sd, [`backbone.fpn.layer_blocks.${i}.0`, `backbone.fpn.layer_blocks.${i}`], file), file));
  const fpnChannels = fpnInner[0].bias.shape[0];
  const rpnCls = convFrom(sd, "rpn.head.cls_logits", file);
  const cls = need(sd, "roi_heads.box_predictor.cls_score.weight", file);
  const numClasses = cls.shape[0];
  const fc6w = need(sd, "roi_heads.box_head.fc6.weight", file);
  const pooledCells = fc6w.shape[1] / fpnChannels;
  const side = Math.round(Math.sqrt(pooledCells));
  if (side * side * fpnChannels !== fc6w.shape[1]) {
    throw new MaskdistillError(`box head fc6 takes ${fc6w.shape[1]} inputs, not a square pooled map of the FPN's ${fpnChannels} channels`, file);
  }
  // ours: (y·side + x)·C + c  ←  torch: c·side² + y·side + x
  const fc6 = linearFrom(sd, "roi_heads.box_head.fc6", file, (i) => (i % fpnChannels) * pooledCells + Math.floor(i / fpnChannels));
  const maskConvs: Conv[] = [];
  for (let i = 0; ; i++) {
    const key = [`roi_heads.mask_head.${i}.0`, `roi_heads.mask_head.mask_fcn${i + 1}`].find((k) => sd.has(`${k}.weight`));
    if (!key) break;
    maskConvs.push(convFrom(sd, key, file));
  }
  if (!maskConvs.length) throw new MaskdistillError("not a torchvision Mask R-CNN checkpoint: no mask head convolutions (roi_heads.mask_head.*)", file);
  return {
    body, fpnInner, fpnLayer,
    rpnConv: convFrom(sd, firstKey(sd, ["rpn.head.conv.0.0", "rpn.head.conv"], file), file),
    rpnCls,
    rpnBox: convFrom(sd, "rpn.head.bbox_pred", file),
    fc6,
    fc7: linearFrom(sd, "roi_heads.box_head.fc7", file),
    clsScore: linearFrom(sd, "roi_heads.box_predictor.cls_score", file),
    bboxPred: linearFrom(sd, "roi_heads.box_predictor.bbox_pred", file),
    maskConvs,
    maskDeconv: deconvFrom(sd, "roi_heads.mask_predictor.conv5_mask", file, "torchvision"),
    maskLogits: convFrom(sd, "roi_heads.mask_predictor.mask_fcn_logits", file),
    numClasses, fpnChannels,
    anchorsPerLocation: rpnCls.bias.shape[0],
  };
}

// ---- weights from a detectron2 state dict ----
//
// detectron2 (GeneralizedRCNN with build_resnet_fpn_backbone, StandardRPNHead, FastRCNNConvFCHead,
// FastRCNNOutputLayers, MaskRCNNConvUpsampleHead) names and lays out the same network differently:
//   backbone.bottom_up.stem.conv1.{weight, norm.*}           ← body stem conv + FrozenBN
//   backbone.bottom_up.res{2..5}.{i}.conv{1,2,3}[.norm.*]   ← bottleneck convs; `shortcut[.norm.*]` = downsample
//   backbone.fpn_lateral{2..5}, backbone.fpn_output{2..5}   ← FPN inner / layer convs (P2..P5)
//   proposal_generator.rpn_head.{conv, objectness_logits, anchor_deltas}
//   roi_heads.box_head.fc{1,2}; roi_heads.box_predictor.{cls_score, bbox_pred}
//   roi_heads.mask_head.{mask_fcn1..4, deconv, predictor}
// The MSRA ResNet-50 of the model zoo (RESNETS.STRIDE_IN_1X1 = True) puts the stride of a stage's first
// block in the 1×1 conv1 (and the shortcut), torchvision's v1.5 in the 3×3 conv2: `strideIn1x1` picks.
//
// Classes. detectron2 has K foreground classes 0…K−1 and background LAST: cls_score has K+1 rows (row K
// = background), bbox_pred 4K rows (no background box; 4 rows when class-agnostic), the mask predictor
// K channels (1 when class-agnostic). The loader rewrites them into torchvision's layout, which the
// inference code uses for both presets: cls_score row 0 = detectron2's background row, row c = its
// class c−1 (softmax is permutation-invariant, so the probabilities are detectron2's); bbox_pred and the
// mask predictor get zero rows/channels for the background (never read: background is never a detection)
// and class-agnostic ones are repeated per class. So `labels` are 1…K, label = detectron2 class + 1, as
// with the torchvision preset (label − 1 = the category index `detect` writes by default).

/** Which key layout a Mask R-CNN state dict uses, or a reason it is none of them. */
export function maskRcnnLayout(sd: StateDict): MaskRcnnLayout | { unknown: string } {
  if (sd.has("backbone.bottom_up.stem.conv1.weight")) return "detectron2";
  if (sd.has("backbone.body.conv1.weight")) return "torchvision";
  const keys = [...sd.keys()];
  if (keys.some((k) => /^(res\d_\d+_branch|conv1_w$|fpn_inner_)/.test(k))) {
    return { unknown: "Detectron (Caffe2) blob names (e.g. res2_0_branch2a_w): convert it with detectron2's c2_model_loading first" };
  }
  if (sd.has("conv1.weight") && keys.some((k) => k.startsWith("layer1."))) return { unknown: "a ResNet classifier, not a Mask R-CNN" };
  if (keys.some((k) => k.startsWith("backbone.bottom_up.res2."))) return { unknown: "a detectron2 backbone without its stem (backbone.bottom_up.stem.conv1.weight)" };
  return { unknown: `keys of neither torchvision's maskrcnn_resnet50_fpn nor detectron2's R50-FPN Mask R-CNN (first keys: ${keys.slice(0, 5).join(", ") || "none"})` };
}

/** A tensor with its first axis rearranged: row r of the result = row `from(r)` of `t` (−1 = zeros). */
function rowsFrom(t: TensorData, rows: number, from: (r: number) => number): TensorData {
  const src = toFloat32(t), per = src.length / t.shape[0], out = new Float32Array(rows * per);
  for (let r = 0; r < rows; r++) {
    const q = from(r);
    if (q >= 0) out.set(src.subarray(q * per, (q + 1) * per), r * per);
  }
  return { dtype: "float32", shape: [rows, ...t.shape.slice(1)], data: out };
}

/** The predictors of a detectron2 checkpoint in torchvision's class layout (see above). */
function detectron2Predictors(sd: StateDict, file: string): { cls: StateDict; numClasses: number } {
  const L = "detectron2" as const;
  const cw = need(sd, "roi_heads.box_predictor.cls_score.weight", file, L), cb = need(sd, "roi_heads.box_predictor.cls_score.bias", file, L);
  const K = cw.shape[0] - 1;
  if (K < 1) throw new MaskdistillError(`detectron2 cls_score has ${cw.shape[0]} rows: no foreground class`, file);
  const clsRow = (r: number) => (r === 0 ? K : r - 1);
  const bw = need(sd, "roi_heads.box_predictor.bbox_pred.weight", file, L), bb = need(sd, "roi_heads.box_predictor.bbox_pred.bias", file, L);
  const agnosticBox = bw.shape[0] === 4;
  if (!agnosticBox && bw.shape[0] !== 4 * K) throw new MaskdistillError(`detectron2 bbox_pred has ${bw.shape[0]} rows, expected 4·${K} (or 4, class-agnostic)`, file);
  const boxRow = (r: number) => (r < 4 ? -1 : agnosticBox ? r % 4 : r - 4);
  const mw = need(sd, "roi_heads.mask_head.predictor.weight", file, L), mb = need(sd, "roi_heads.mask_head.predictor.bias", file, L);
  const agnosticMask = mw.shape[0] === 1;
  if (!agnosticMask && mw.shape[0] !== K) throw new MaskdistillError(`detectron2 mask predictor has ${mw.shape[0]} channels, expected ${K} (or 1, class-agnostic)`, file);
  const maskRow = (r: number) => (r === 0 ? -1 : agnosticMask ? 0 : r - 1);
  const cls: StateDict = new Map([
    ["cls.weight", rowsFrom(cw, K + 1, clsRow)], ["cls.bias", rowsFrom(cb, K + 1, clsRow)],
    ["box.weight", rowsFrom(bw, 4 * (K + 1), boxRow)], ["box.bias", rowsFrom(bb, 4 * (K + 1), boxRow)],
    ["mask.weight", rowsFrom(mw, K + 1, maskRow)], ["mask.bias", rowsFrom(mb, K + 1, maskRow)],
  ]);
  return { cls, numClasses: K + 1 };
}

/**
 * Builds the network from a detectron2 R50-FPN Mask R-CNN state dict (model-zoo `.pkl` or a training
 * `.pth`, any widths and class count). `strideIn1x1` (default true: the MSRA R-50 of mask_rcnn_R_50_FPN_*)
 * must match the RESNETS.STRIDE_IN_1X1 the checkpoint was trained with.
 */
export function maskRcnnFromDetectron2StateDict(sd: StateDict, file: string, opts: { strideIn1x1?: boolean } = {}): MaskRcnnNet {
  const L = "detectron2" as const;
  const in1x1 = opts.strideIn1x1 ?? true;
  const b = "backbone.bottom_up";
  const stageD2 = (name: string, stride: number): Bottleneck[] => {
    const blocks: Bottleneck[] = [];
    for (let i = 0; sd.has(`${b}.${name}.${i}.conv1.weight`); i++) {
      const p = `${b}.${name}.${i}`, s = i === 0 ? stride : 1;
      blocks.push({
        conv1: convBnFrom(sd, `${p}.conv1`, `${p}.conv1.norm`, file, in1x1 ? s : 1, L),
        conv2: convBnFrom(sd, `${p}.conv2`, `${p}.conv2.norm`, file, in1x1 ? 1 : s, L),
        conv3: convBnFrom(sd, `${p}.conv3`, `${p}.conv3.norm`, file, 1, L),
        downsample: sd.has(`${p}.shortcut.weight`) ? convBnFrom(sd, `${p}.shortcut`, `${p}.shortcut.norm`, file, s, L) : undefined,
      });
    }
    if (!blocks.length) throw new MaskdistillError(`not a detectron2 Mask R-CNN checkpoint: no blocks under '${b}.${name}'`, file);
    return blocks;
  };
  const body: ResNet50 = {
    stem: convBnFrom(sd, `${b}.stem.conv1`, `${b}.stem.conv1.norm`, file, 2, L),
    layer1: stageD2("res2", 1), layer2: stageD2("res3", 2), layer3: stageD2("res4", 2), layer4: stageD2("res5", 2),
  };
  const fpnInner = [2, 3, 4, 5].map((i) => convFrom(sd, `backbone.fpn_lateral${i}`, file, L));
  const fpnLayer = [2, 3, 4, 5].map((i) => convFrom(sd, `backbone.fpn_output${i}`, file, L));
  const fpnChannels = fpnInner[0].bias.shape[0];
  const rpnCls = convFrom(sd, "proposal_generator.rpn_head.objectness_logits", file, L);
  const fc1w = need(sd, "roi_heads.box_head.fc1.weight", file, L);
  const pooledCells = fc1w.shape[1] / fpnChannels;
  const side = Math.round(Math.sqrt(pooledCells));
  if (side * side * fpnChannels !== fc1w.shape[1]) {
    throw new MaskdistillError(`box head fc1 takes ${fc1w.shape[1]} inputs, not a square pooled map of the FPN's ${fpnChannels} channels`, file);
  }
  const maskConvs: Conv[] = [];
  for (let i = 1; sd.has(`roi_heads.mask_head.mask_fcn${i}.weight`); i++) maskConvs.push(convFrom(sd, `roi_heads.mask_head.mask_fcn${i}`, file, L));
  if (!maskConvs.length) throw new MaskdistillError("not a detectron2 Mask R-CNN checkpoint: no mask head convolutions (roi_heads.mask_head.mask_fcn1…)", file);
  const { cls, numClasses } = detectron2Predictors(sd, file);
  return {
    body, fpnInner, fpnLayer,
    rpnConv: convFrom(sd, "proposal_generator.rpn_head.conv", file, L),
    rpnCls,
    rpnBox: convFrom(sd, "proposal_generator.rpn_head.anchor_deltas", file, L),
    // torch flattening C×7×7 (FastRCNNConvFCHead's torch.flatten) → ours 7×7×C, as for torchvision's fc6
    fc6: linearFrom(sd, "roi_heads.box_head.fc1", file, (i) => (i % fpnChannels) * pooledCells + Math.floor(i / fpnChannels), L),
    fc7: linearFrom(sd, "roi_heads.box_head.fc2", file, undefined, L),
    clsScore: linearFrom(cls, "cls", file, undefined, L),
    bboxPred: linearFrom(cls, "box", file, undefined, L),
    maskConvs,
    maskDeconv: deconvFrom(sd, "roi_heads.mask_head.deconv", file, L),
    maskLogits: convFrom(cls, "mask", file, L),
    numClasses, fpnChannels,
    anchorsPerLocation: rpnCls.bias.shape[0],
  };
}

/** Either layout, recognised from the keys; anything else is an error naming `file`. */
export function maskRcnnFromAnyStateDict(sd: StateDict, file: string): { net: MaskRcnnNet; layout: MaskRcnnLayout } {
  const layout = maskRcnnLayout(sd);
  if (typeof layout !== "string") throw new MaskdistillError(`not a Mask R-CNN R50-FPN checkpoint: ${layout.unknown}`, file);
  return { net: layout === "detectron2" ? maskRcnnFromDetectron2StateDict(sd, file) : maskRcnnFromStateDict(sd, file), layout };
}

/** Every variable of the network (for disposal). */
export function maskRcnnVariables(net: MaskRcnnNet): tf.Variable[] {
  const out: tf.Variable[] = [];
  const walk = (v: unknown): void => {
    if (v instanceof tf.Variable) out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(net);
  return out;
}

// ---- parameters under torchvision's names (checkpoints written by training, gradients in tests) ----

/** A tensor of the network under its torchvision maskrcnn_resnet50_fpn key, with its layout conversion. */
export interface MaskRcnnParam {
  key: string;
  variable: tf.Variable;
  /** Shape in torch's layout. */
  torchShape: number[];
  /** Our layout → torch's (for writing a torchvision state dict). */
  toTorch(data: Float32Array): Float32Array;
  /** A weight or bias that training may update (conv kernels, linear layers, biases; not the FrozenBN buffers). */
  learnable: boolean;
  /** Backbone stage: 0 stem, 1…4 layer1…4; −1 outside the ResNet body. */
  stage: number;
  /** For a body BN's weight and bias: its conv-BN unit (trained as BN, not FrozenBN, with setTrainable's trainNorm). */
  normOf?: ConvBn;
}

const identity = (d: Float32Array): Float32Array => d;

function convParam(key: string, v: tf.Variable, stage: number): MaskRcnnParam {
  const [kh, kw, i, o] = v.shape;
  return {
    key, variable: v, torchShape: [o, i, kh, kw], learnable: true, stage,
    toTorch: (src) => {
      const dst = new Float32Array(src.length);
      for (let a = 0; a < o; a++) for (let b = 0; b < i; b++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) {
        dst[((a * i + b) * kh + y) * kw + x] = src[((y * kw + x) * i + b) * o + a];
      }
      return dst;
    },
  };
}

function vectorParam(key: string, v: tf.Variable, stage: number, learnable: boolean): MaskRcnnParam {
  return { key, variable: v, torchShape: [v.shape[0]], toTorch: identity, learnable, stage };
}

/** [in, out] → torch [out, in]; `permuteIn(i)` = torch's input index of our input i. */
function linearParams(prefix: string, p: Linear, permuteIn?: (i: number) => number): MaskRcnnParam[] {
  const [inn, out] = p.w.shape;
  return [{
    key: `${prefix}.weight`, variable: p.w, torchShape: [out, inn], learnable: true, stage: -1,
    toTorch: (src) => {
      const dst = new Float32Array(src.length);
      for (let i = 0; i < inn; i++) {
        const ti = permuteIn ? permuteIn(i) : i;
        for (let o = 0; o < out; o++) dst[o * inn + ti] = src[i * out + o];
      }
      return dst;
    },
  }, vectorParam(`${prefix}.bias`, p.b, -1, true)];
}

function convBnParams(conv: string, bn: string, p: ConvBn, stage: number): MaskRcnnParam[] {
  return [
    convParam(`${conv}.weight`, p.kernel, stage),
    { ...vectorParam(`${bn}.weight`, p.gamma, stage, false), normOf: p }, { ...vectorParam(`${bn}.bias`, p.beta, stage, false), normOf: p },
    vectorParam(`${bn}.running_mean`, p.runningMean, stage, false), vectorParam(`${bn}.running_var`, p.runningVar, stage, false),
  ];
}

const convBiasParams = (prefix: string, c: Conv, stage = -1): MaskRcnnParam[] => [convParam(`${prefix}.weight`, c.kernel, stage), vectorParam(`${prefix}.bias`, c.bias, stage, true)];

/**
 * Every tensor of the network under torchvision 0.14's maskrcnn_resnet50_fpn keys, in state-dict order;
 * writing them (toTorch) gives a state dict maskRcnnFromStateDict (and so `detect`) loads.
 */
export function maskRcnnParams(net: MaskRcnnNet): MaskRcnnParam[] {
  const b = "backbone.body";
  const out: MaskRcnnParam[] = [...convBnParams(`${b}.conv1`, `${b}.bn1`, net.body.stem, 0)];
  const layers = [net.body.layer1, net.body.layer2, net.body.layer3, net.body.layer4];
  layers.forEach((blocks, li) => blocks.forEach((blk, i) => {
    const p = `${b}.layer${li + 1}.${i}`;
    out.push(...convBnParams(`${p}.conv1`, `${p}.bn1`, blk.conv1, li + 1), ...convBnParams(`${p}.conv2`, `${p}.bn2`, blk.conv2, li + 1),
      ...convBnParams(`${p}.conv3`, `${p}.bn3`, blk.conv3, li + 1));
    if (blk.downsample) out.push(...convBnParams(`${p}.downsample.0`, `${p}.downsample.1`, blk.downsample, li + 1));
  }));
  net.fpnInner.forEach((c, i) => out.push(...convBiasParams(`backbone.fpn.inner_blocks.${i}.0`, c)));
  net.fpnLayer.forEach((c, i) => out.push(...convBiasParams(`backbone.fpn.layer_blocks.${i}.0`, c)));
  out.push(...convBiasParams("rpn.head.conv.0.0", net.rpnConv), ...convBiasParams("rpn.head.cls_logits", net.rpnCls), ...convBiasParams("rpn.head.bbox_pred", net.rpnBox));
  const C = net.fpnChannels, cells = net.fc6.w.shape[0] / C;
  out.push(...linearParams("roi_heads.box_head.fc6", net.fc6, (i) => (i % C) * cells + Math.floor(i / C)), ...linearParams("roi_heads.box_head.fc7", net.fc7));
  out.push(...linearParams("roi_heads.box_predictor.cls_score", net.clsScore), ...linearParams("roi_heads.box_predictor.bbox_pred", net.bboxPred));
  net.maskConvs.forEach((c, i) => out.push(...convBiasParams(`roi_heads.mask_head.${i}.0`, c)));
  const [cin, four] = net.maskDeconv.w.shape, cout = four / 4;
  out.push({
    key: "roi_heads.mask_predictor.conv5_mask.weight", variable: net.maskDeconv.w, torchShape: [cin, cout, 2, 2], learnable: true, stage: -1,
    toTorch: (src) => {
      const dst = new Float32Array(src.length);
      for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) for (let t = 0; t < 4; t++) dst[(c * cout + o) * 4 + t] = src[c * 4 * cout + t * cout + o];
      return dst;
    },
  }, vectorParam("roi_heads.mask_predictor.conv5_mask.bias", net.maskDeconv.b, -1, true));
  out.push(...convBiasParams("roi_heads.mask_predictor.mask_fcn_logits", net.maskLogits));
  return out;
}

/**
 * The parameters training updates, marked trainable (tf.variableGrads skips the others): every weight
 * and bias outside the body, and the body's convolutions of the stages ≥ `freezeAt` (detectron2's
 * FREEZE_AT: 0 none frozen, 1 the stem, 2 the stem and layer1 — torchvision's trainable_layers=3 —,
 * … 5 the whole body). The body's batch norm stays frozen (FrozenBN) unless `trainNorm` (detectron2's
 * RESNETS.NORM "BN", for training from scratch): then the BNs of those stages train too — weight and bias
 * by gradient, running statistics from the batches. Returns them in state-dict order.
 */
export function setTrainable(net: MaskRcnnNet, freezeAt: number, trainNorm = false): MaskRcnnParam[] {
  const out: MaskRcnnParam[] = [];
  for (const p of maskRcnnParams(net)) {
    const on = (p.learnable || (trainNorm && p.normOf !== undefined)) && (p.stage < 0 || p.stage >= freezeAt);
    (p.variable as { trainable: boolean }).trainable = on;
    // a trained BN normalises with the batch's statistics and updates its running ones (resnet.ts convBn)
    if (p.normOf) p.normOf.trainable = on;
    if (on) out.push(p);
  }
  return out;
}
