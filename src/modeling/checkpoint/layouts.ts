// From "whatever a training script saved" to the backbone's own state dict. Released checkpoints wrap
// the weights differently:
//   dino-backbone       flat {cls_token, pos_embed, patch_embed.proj.weight, blocks.N.…, norm.…}
//   dino-full:teacher   {student, teacher, optimizer, epoch, args, …}; the teacher is the model DINO
//                       evaluates; keys carry `module.`/`backbone.` prefixes and the `head.` projection head
//   moco-v2             {epoch, arch, state_dict: {module.encoder_q.…, module.encoder_k.…, module.queue…}, optimizer}
//   model / state_dict  {model: {...}} or {state_dict: {...}} (generic training-script wrappers)
//   torchvision-resnet  flat {conv1.weight, bn1.…, layer1.0.conv1.weight, …, fc.weight}
//   torchvision-detection  a torchvision-layout Mask/Faster R-CNN {backbone.body.…, backbone.fpn.…, rpn.…,
//                       roi_heads.…}: when a ResNet is asked for, its body (train-maskrcnn writes this layout)
// Heads are dropped (`head.` for ViTs, `fc.` for ResNets), as are BatchNorm's num_batches_tracked
// counters, so what remains is exactly the backbone.
import { MaskdistillError, inputError } from "../../errors.js";
import { readCheckpoint } from "./read.js";
import { isTensorData, type StateDict, type TensorData } from "./tensor.js";

export type BackboneKind = "vit" | "resnet";

export interface LoadedStateDict {
  stateDict: StateDict;
  /** Which wrapper was found: "dino-backbone", "dino-full:teacher", "dino-full:student", "moco-v2",
   *  "model", "state_dict", "torchvision-resnet", or "flat" (tensors of neither architecture). */
  layout: string;
  /** The architecture the keys belong to, when recognisable. */
  kind?: BackboneKind;
}

/** Reads a checkpoint and returns the backbone state dict with wrappers unwrapped and prefixes stripped. */
export async function readStateDict(file: string, kind?: BackboneKind): Promise<LoadedStateDict> {
  const root = await readCheckpoint(file);
  if (!(root instanceof Map)) {
    throw inputError(file, `the checkpoint holds ${typeName(root)}, not a dict of tensors (a state dict)`);
  }
  let layout: string;
  let inner: Map<unknown, unknown>;
  if (root.get("teacher") instanceof Map) {
    layout = "dino-full:teacher";
    inner = root.get("teacher") as Map<unknown, unknown>;
  } else if (root.get("student") instanceof Map) {
    layout = "dino-full:student";
    inner = root.get("student") as Map<unknown, unknown>;
  } else if (root.get("state_dict") instanceof Map) {
    inner = root.get("state_dict") as Map<unknown, unknown>;
    layout = [...inner.keys()].some((k) => typeof k === "string" && k.startsWith("module.encoder_q.")) ? "moco-v2" : "state_dict";
  } else if (root.get("model") instanceof Map) {
    layout = "model";
    inner = root.get("model") as Map<unknown, unknown>;
  } else {
    layout = "flat";
    inner = root;
  }

  let sd = tensorsOf(inner, file, layout);
  if (layout === "moco-v2") {
    // The query encoder is the backbone MoCo trains; encoder_k (momentum copy) and the queue are not.
    sd = selectPrefix(sd, "module.encoder_q.");
  }
  sd = stripCommonPrefix(sd, "module.");
  if (layout.startsWith("dino-full")) {
    // DINO wraps the ViT as MultiCropWrapper(backbone, head): the DINO head is not part of the backbone.
    sd = dropPrefix(sd, "head.");
    sd = stripCommonPrefix(sd, "backbone.");
  }
  if (kind === "resnet" && sd.has("backbone.body.conv1.weight")) {
    // a detector's ResNet body (the FPN and heads are not part of the backbone)
    sd = selectPrefix(sd, "backbone.body.");
    layout = "torchvision-detection";
  }

  const detected = detectKind(sd);
  if (kind && detected !== kind) {
    const keys = [...sd.keys()].slice(0, 6).join(", ");
    const want = kind === "vit" ? "a ViT (cls_token, pos_embed, patch_embed.proj.weight, blocks.N.…)" : "a ResNet (conv1.weight, bn1.…, layer1.…)";
    throw new MaskdistillError(
      `expected ${want} checkpoint, but the ${layout} state dict ${detected ? `is a ${detected}` : "matches neither"} (keys: ${keys || "none"})`,
      file,
    );
  }
  if (detected === "vit") {
    sd = dropPrefix(sd, "head."); // classification head (timm/DeiT files)
    if (layout === "flat") layout = "dino-backbone";
  } else if (detected === "resnet") {
    sd = dropPrefix(sd, "fc."); // classifier, or MoCo's MLP projection head
    sd = new Map([...sd].filter(([k]) => !k.endsWith(".num_batches_tracked")));
    if (layout === "flat") layout = "torchvision-resnet";
  }
  return { stateDict: sd, layout, kind: detected };
}

/**
 * Compares a state dict with the keys and shapes a model expects. Shape mismatches are an error (that
 * names the file and every offending key); missing and unexpected keys are returned for the caller.
 */
export function checkKeys(sd: StateDict, expected: Map<string, number[]>, file: string): { missing: string[]; unexpected: string[] } {
  const missing: string[] = [];
  const mismatched: string[] = [];
  for (const [key, shape] of expected) {
    const t = sd.get(key);
    if (!t) missing.push(key);
    else if (!sameShape(t.shape, shape)) mismatched.push(`${key}: checkpoint [${t.shape.join(", ")}] vs model [${shape.join(", ")}]`);
  }
  const unexpected = [...sd.keys()].filter((k) => !expected.has(k));
  if (mismatched.length) {
    throw new MaskdistillError(`shape mismatch for ${mismatched.length} tensor(s): ${mismatched.join("; ")}`, file);
  }
  return { missing, unexpected };
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function detectKind(sd: StateDict): BackboneKind | undefined {
  if (sd.has("cls_token") || sd.has("patch_embed.proj.weight")) return "vit";
  if (sd.has("conv1.weight") && [...sd.keys()].some((k) => k.startsWith("layer1."))) return "resnet";
  return undefined;
}

function tensorsOf(d: Map<unknown, unknown>, file: string, layout: string): StateDict {
  const sd: StateDict = new Map();
  const other: string[] = [];
  for (const [k, v] of d) {
    if (typeof k === "string" && isTensorData(v)) sd.set(k, v as TensorData);
    else other.push(String(k));
  }
  if (sd.size === 0) {
    throw inputError(file, `no state dict found: the ${layout === "flat" ? "top-level dict" : layout} has no tensors (keys: ${other.slice(0, 8).join(", ") || "none"}; expected tensors, or one of teacher/student/state_dict/model)`);
  }
  if (layout === "flat" && other.length) {
    throw inputError(file, `unrecognised checkpoint layout: the top-level dict mixes tensors with other entries (${other.slice(0, 8).join(", ")})`);
  }
  return sd;
}

function selectPrefix(sd: StateDict, prefix: string): StateDict {
  return new Map([...sd].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
}

function dropPrefix(sd: StateDict, prefix: string): StateDict {
  return new Map([...sd].filter(([k]) => !k.startsWith(prefix)));
}

/** Strips `prefix` only when every key has it (DataParallel's `module.`, DINO's `backbone.`). */
function stripCommonPrefix(sd: StateDict, prefix: string): StateDict {
  for (const k of sd.keys()) if (!k.startsWith(prefix)) return sd;
  return selectPrefix(sd, prefix);
}

function typeName(x: unknown): string {
  if (x === null) return "None";
  if (Array.isArray(x)) return "a list/tuple";
  if (isTensorData(x)) return "a single tensor";
  return `a ${typeof x}`;
}
