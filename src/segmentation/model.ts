// DeepLab-v3 weights in PyTorch's layout: the reference's keys (segmentation/models/deeplabv3_model.py:
// `backbone.*` = torchvision's ResNet-50 names, `head.0.convs.N…`, `head.0.project…`, `head.1/2/4`),
// torchvision's deeplabv3_resnet50 (the same with `classifier.` for `head.`, plus an optional
// `aux_classifier.*`), and a ResNet-50 backbone alone (MoCo v2 or torchvision) for the initialisation.
// Loading is strict: a missing, unexpected or mis-shaped tensor is an error that names it.
import * as tf from "@tensorflow/tfjs";
import { MaskdistillError } from "../errors.js";
import { readStateDict, toFloat32, type StateDict, type TensorData } from "../modeling/checkpoint/index.js";
import { safetensorsMetadataOf } from "../pretrain/safetensorsIo.js";
import type { ConvBn, Bottleneck, ResNet50 } from "../engine/models/resnet.js";
import { ASPP_RATES, validAsppRates, type DeepLabV3, type DeepLabWidths } from "../engine/models/deeplab.js";
import { hwioToOihw, oihwToHwio } from "../engine/models/params.js";

/** One tensor of the model under its PyTorch key: a conv kernel (ours HWIO, torch OIHW) or a vector. */
export interface DeepLabTensor {
  key: string;
  variable: tf.Variable;
  conv: boolean;
  /** BN running statistics are buffers (in the state dict, never trained). */
  buffer: boolean;
}

function convBnTensors(p: ConvBn, conv: string, bn: string): DeepLabTensor[] {
  const v = (key: string, variable: tf.Variable, buffer = false): DeepLabTensor => ({ key, variable, conv: false, buffer });
  return [
    { key: `${conv}.weight`, variable: p.kernel, conv: true, buffer: false },
    v(`${bn}.weight`, p.gamma), v(`${bn}.bias`, p.beta), v(`${bn}.running_mean`, p.runningMean, true), v(`${bn}.running_var`, p.runningVar, true),
  ];
}

function stageTensors(blocks: Bottleneck[], prefix: string): DeepLabTensor[] {
  const out: DeepLabTensor[] = [];
  blocks.forEach((b, i) => {
    const p = `${prefix}.${i}`;
    out.push(...convBnTensors(b.conv1, `${p}.conv1`, `${p}.bn1`), ...convBnTensors(b.conv2, `${p}.conv2`, `${p}.bn2`),
      ...convBnTensors(b.conv3, `${p}.conv3`, `${p}.bn3`));
    if (b.downsample) out.push(...convBnTensors(b.downsample, `${p}.downsample.0`, `${p}.downsample.1`));
  });
  return out;
}

/**
 * The ResNet-50 backbone's tensors under torchvision's names, with `prefix` ("" or "backbone."): of a DeepLab,
 * or of any model holding one (the pretraining ResNet exports and loads with these names too).
 */
export function backboneTensors(m: { backbone: ResNet50 }, prefix = "backbone."): DeepLabTensor[] {
  const b = m.backbone;
  return [
    ...convBnTensors(b.stem, `${prefix}conv1`, `${prefix}bn1`),
    ...stageTensors(b.layer1, `${prefix}layer1`), ...stageTensors(b.layer2, `${prefix}layer2`),
    ...stageTensors(b.layer3, `${prefix}layer3`), ...stageTensors(b.layer4, `${prefix}layer4`),
  ];
}

/** Every tensor of the model in the state dict's order; `head` = "head" (reference) or "classifier" (torchvision). */
export function deepLabTensors(m: DeepLabV3, head: "head" | "classifier" = "head"): DeepLabTensor[] {
  const a = m.aspp;
  return [
    ...backboneTensors(m),
    ...convBnTensors(a.conv1x1, `${head}.0.convs.0.0`, `${head}.0.convs.0.1`),
    ...a.atrous.flatMap((p, i) => convBnTensors(p, `${head}.0.convs.${i + 1}.0`, `${head}.0.convs.${i + 1}.1`)),
    // ASPPPooling = Sequential(AdaptiveAvgPool2d, Conv2d, BatchNorm2d, ReLU): conv at 1, BN at 2
    ...convBnTensors(a.pool, `${head}.0.convs.4.1`, `${head}.0.convs.4.2`),
    ...convBnTensors(a.project, `${head}.0.project.0`, `${head}.0.project.1`),
    ...convBnTensors(m.head.conv, `${head}.1`, `${head}.2`),
    { key: `${head}.4.weight`, variable: m.head.classifier, conv: true, buffer: false },
    { key: `${head}.4.bias`, variable: m.head.classifierBias, conv: false, buffer: false },
  ];
}

/** The PyTorch shape of a tensor (conv kernels [O, I, kh, kw]). */
export function torchShape(t: DeepLabTensor): number[] {
  const s = t.variable.shape as number[];
  return t.conv ? [s[3], s[2], s[0], s[1]] : s;
}

// the kernel layout conversions live with the other parameter helpers (the pretraining ViT's conv stem uses them too)
export { hwioToOihw, oihwToHwio };

/** A tensor's current values in PyTorch's layout. */
export async function torchValues(t: DeepLabTensor): Promise<Float32Array> {
  const v = (await t.variable.data()) as Float32Array;
  return t.conv ? hwioToOihw(v, t.variable.shape as number[]) : Float32Array.from(v);
}

/** The model's state dict (float32, PyTorch layout, reference keys by default). */
export async function deepLabStateDict(m: DeepLabV3, head: "head" | "classifier" = "head"): Promise<StateDict> {
  return tensorsStateDict(deepLabTensors(m, head));
}

/** Float32 state dict of model tensors in PyTorch layout (OIHW kernels) under their keys. */
export async function tensorsStateDict(tensors: DeepLabTensor[]): Promise<StateDict> {
  const sd: StateDict = new Map();
  for (const t of tensors) sd.set(t.key, { dtype: "float32", shape: torchShape(t), data: await torchValues(t) });
  return sd;
}

function assignFrom(t: DeepLabTensor, data: TensorData): void {
  const values = toFloat32(data);
  const v = t.conv ? oihwToHwio(values, data.shape) : values;
  tf.tidy(() => t.variable.assign(tf.tensor(v, t.variable.shape)));
}

function listKeys(keys: string[], max = 8): string {
  return keys.slice(0, max).join(", ") + (keys.length > max ? ` … (${keys.length} in all)` : "");
}

/** Assigns `tensors` from `sd` (keys as given); missing, unexpected or mis-shaped keys are an error naming them. */
function assignStrict(tensors: DeepLabTensor[], sd: StateDict, file: string, what: string): void {
  const want = new Map(tensors.map((t) => [t.key, t]));
  const missing = tensors.filter((t) => !sd.has(t.key)).map((t) => t.key);
  const unexpected = [...sd.keys()].filter((k) => !want.has(k));
  const mismatched: string[] = [];
  for (const [k, d] of sd) {
    const t = want.get(k);
    if (t && torchShape(t).join(",") !== d.shape.join(",")) mismatched.push(`${k}: checkpoint [${d.shape.join(", ")}] vs model [${torchShape(t).join(", ")}]`);
  }
  if (missing.length || unexpected.length || mismatched.length) {
    const parts = [
      missing.length ? `missing ${missing.length} tensor(s): ${listKeys(missing)}` : "",
      unexpected.length ? `unexpected ${unexpected.length} tensor(s): ${listKeys(unexpected)}` : "",
      mismatched.length ? `shape mismatch: ${listKeys(mismatched, 4)}` : "",
    ].filter(Boolean);
    throw new MaskdistillError(`not a ${what} checkpoint (${parts.join("; ")})`, file);
  }
  for (const t of tensors) assignFrom(t, sd.get(t.key)!);
}

/** Which naming a DeepLab state dict uses (after `module.` was stripped), or why it is not one. */
export function deepLabLayout(sd: StateDict): "reference" | "torchvision" | { unknown: string } {
  if (sd.has("head.4.weight")) return "reference";
  if (sd.has("classifier.4.weight")) return "torchvision";
  const keys = [...sd.keys()];
  return { unknown: `keys of neither the reference's DeepLabV3 (head.4.weight) nor torchvision's deeplabv3_resnet50 (classifier.4.weight); first keys: ${listKeys(keys, 5) || "none"}` };
}

/** The number of classes of a DeepLab state dict (rows of the classifier). */
export function deepLabClassCount(sd: StateDict, file: string): number {
  const layout = deepLabLayout(sd);
  if (typeof layout === "object") throw new MaskdistillError(`not a DeepLab-v3 checkpoint: ${layout.unknown}`, file);
  return sd.get(layout === "reference" ? "head.4.weight" : "classifier.4.weight")!.shape[0];
}

/**
 * The channel widths a DeepLab-v3 state dict was saved at, from its tensors' shapes: the stem conv's
 * outputs (64 for ResNet-50) and the ASPP 1×1 branch's (256). A narrow model (train-deeplab --recipe
 * shapes) is then rebuilt at its own widths, and the strict load checks every other shape against them.
 */
export function deepLabWidthsOf(sd: StateDict, file: string): DeepLabWidths {
  const layout = deepLabLayout(sd);
  if (typeof layout === "object") throw new MaskdistillError(`not a DeepLab-v3 checkpoint: ${layout.unknown}`, file);
  const stem = sd.get("backbone.conv1.weight"), aspp = sd.get(`${layout === "reference" ? "head" : "classifier"}.0.convs.0.0.weight`);
  if (!stem || !aspp) throw new MaskdistillError(`not a DeepLab-v3 checkpoint: no ${stem ? "ASPP 1×1 conv" : "backbone.conv1.weight"}`, file);
  return { backbone: stem.shape[0], aspp: aspp.shape[0] };
}

/**
 * Loads a full DeepLab-v3 state dict (reference or torchvision naming; BN's num_batches_tracked and
 * torchvision's aux_classifier are ignored) into `m`. Returns the naming found.
 */
export function loadDeepLabStateDict(m: DeepLabV3, sd: StateDict, file: string): "reference" | "torchvision" {
  const layout = deepLabLayout(sd);
  if (typeof layout === "object") throw new MaskdistillError(`not a DeepLab-v3 checkpoint: ${layout.unknown}`, file);
  const kept: StateDict = new Map([...sd].filter(([k]) => !k.endsWith(".num_batches_tracked") && !k.startsWith("aux_classifier.")));
  const k = kept.get(layout === "reference" ? "head.4.weight" : "classifier.4.weight")!.shape[0];
  if (k !== m.numClasses) throw new MaskdistillError(`the checkpoint's classifier has ${k} classes, the model ${m.numClasses}`, file);
  assignStrict(deepLabTensors(m, layout === "reference" ? "head" : "classifier"), kept, file, `DeepLab-v3 R50 (${layout} layout)`);
  return layout;
}

/** What a DeepLab-v3 file says about the model beyond its tensors: the ASPP rates (read back by readDeepLabStateDict). */
export function deepLabFileMetadata(m: DeepLabV3): Record<string, string> {
  return { aspp_rates: m.asppRates.join(",") };
}

/**
 * The ASPP rates a DeepLab-v3 file was saved with: its safetensors metadata's `aspp_rates` (deepLabFileMetadata),
 * else the reference's (a PyTorch checkpoint, torchvision's, or a file written before the rates were recorded).
 */
async function asppRatesOf(file: string): Promise<number[]> {
  const raw = (await safetensorsMetadataOf(file))?.aspp_rates;
  if (raw === undefined) return [...ASPP_RATES];
  const rates = raw.split(",").map(Number);
  if (!validAsppRates(rates)) {
    throw new MaskdistillError(`metadata aspp_rates "${raw}" is not three positive integers; fix or drop it (the reference's are 12,24,36)`, file);
  }
  return rates;
}

/** Reads a DeepLab-v3 checkpoint file (any wrapper readStateDict knows: {model}, {state_dict}, DDP's module.). */
export async function readDeepLabStateDict(file: string): Promise<{ stateDict: StateDict; layout: "reference" | "torchvision"; numClasses: number; widths: DeepLabWidths; asppRates: number[] }> {
  const { stateDict } = await readStateDict(file);
  // our training checkpoints keep the optimiser's momentum buffers next to the weights
  const sd: StateDict = new Map([...stateDict].filter(([k]) => !k.startsWith("optimizer.")));
  const layout = deepLabLayout(sd);
  if (typeof layout === "object") throw new MaskdistillError(`not a DeepLab-v3 checkpoint: ${layout.unknown}`, file);
  return { stateDict: sd, layout, numClasses: deepLabClassCount(sd, file), widths: deepLabWidthsOf(sd, file), asppRates: await asppRatesOf(file) };
}

/**
 * Loads a ResNet-50 backbone (torchvision names; MoCo v2's module.encoder_q.* and the fc head are
 * handled by readStateDict) into the model's backbone. The head keeps its initialisation.
 */
export function loadResNet50Backbone(m: { backbone: ResNet50 }, sd: StateDict, file: string): void {
  const kept: StateDict = new Map([...sd].filter(([k]) => !k.endsWith(".num_batches_tracked") && !k.startsWith("fc.")));
  assignStrict(backboneTensors(m, ""), kept, file, "torchvision ResNet-50");
}

/** Reads a ResNet-50 file (MoCo v2 .pth.tar, torchvision resnet50 .pth, safetensors) and loads it into the backbone. */
export async function loadResNet50BackboneFile(m: DeepLabV3, file: string): Promise<string> {
  const { stateDict, layout } = await readStateDict(file, "resnet");
  loadResNet50Backbone(m, stateDict, file);
  return layout;
}
