// `maskdistill gen-masks`: stage (i), one object mask per image from DINO self-attention (the
// reference's gen_masks.py), written as a COCO-style class-agnostic JSON.
import type { Command } from "../command.js";
import { numberFlag, parseFlags, parseShard, printJson, abortOnSignals, SHARD_FLAGS, SHARD_USAGE, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";
import { IMAGE_SOURCE_FLAGS, IMAGE_SOURCE_USAGE, imagesFromFlags } from "../imageSource.js";

const usage = `usage: maskdistill gen-masks --pred-json OUT.json (--dataset voc|coco --dataset-root DIR | --images DIR)
                           [--weights dino_vits16|FILE] [--arch vit_small|vit_base] [--patch-size 16|8]
                           [--heads 5] [--topk 0.4] [--resize 640] [--segm rle|polygon] [--precision fp32|int8]
                           [--shard i/n|auto] [--resume] [--device cpu|cuda|auto] [--json]

One object mask per image from the last-layer self-attention of a DINO ViT (MaskDistill stage i):
CLS-attention proposals, key-affinity seed expansion, 4-connected component, back-projected to the
original size. Output: {images, annotations (category 0, score 1), categories: [{id: 0, name: object}]}.

${IMAGE_SOURCE_USAGE}
  --weights NAME|FILE      backbone checkpoint (default dino_vits16, see 'maskdistill weights')
  --arch, --patch-size     architecture when the checkpoint does not say (default vit_small, 16)
  --heads 5                heads averaged for the CLS attention map (first N of the last layer)
  --topk 0.4               share of patches in the proposal set
  --resize 640             short side after resizing (0 = original size)
  --segm rle|polygon       segmentation format (default rle; polygon = the reference's tolerance-2 polygons)
  --precision fp32|int8    backbone arithmetic (default fp32, the reference's). int8: Linear layers in int8
                           (onnxruntime dynamic quantisation), faster on the CPU; masks close to, not equal
                           to, fp32 ones (README "Reduced precision"). A journal keeps one precision
  --pred-json OUT          output JSON; OUT.errors.jsonl lists unreadable images and empty masks.
                           Shard i of n writes OUT.shard-i-of-n.json beside it; 'maskdistill merge-preds
                           --out OUT' joins the shards into the bytes of one run
${SHARD_USAGE}
  --resume                 continue from OUT.partial.jsonl after an interruption
  --device cpu|cuda|auto   where the backbone runs (default auto)
  --json                   last stdout line: the summary as JSON`;

const command: Command = {
  name: "gen-masks",
  summary: "Stage i: one object mask per image from ViT self-attention (COCO JSON, resumable, shardable)",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("gen-masks", argv, {
      ...IMAGE_SOURCE_FLAGS,
      weights: { type: "string" },
      arch: { type: "string" },
      "patch-size": { type: "string" },
      heads: { type: "string" },
      topk: { type: "string" },
      resize: { type: "string" },
      segm: { type: "string" },
      "pred-json": { type: "string" },
      ...SHARD_FLAGS,
      resume: { type: "boolean" },
      device: { type: "string" },
      precision: { type: "string" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("gen-masks", values, ["pred-json"]);
    const predJson = values["pred-json"];
    const segm = values.segm ?? "rle";
    if (segm !== "rle" && segm !== "polygon") throw new MaskdistillError(`--segm expects rle or polygon, got '${segm}'`);
    const arch = values.arch;
    if (arch !== undefined && arch !== "vit_small" && arch !== "vit_base") throw new MaskdistillError(`--arch expects vit_small or vit_base, got '${arch}'`);
    const patchFlag = values["patch-size"] === undefined ? undefined : numberFlag("patch-size", values["patch-size"], 16);
    if (patchFlag !== undefined && patchFlag !== 16 && patchFlag !== 8) throw new MaskdistillError(`--patch-size expects 16 or 8, got '${values["patch-size"]}'`);
    const device = values.device ?? "auto";
    if (device !== "cpu" && device !== "cuda" && device !== "auto") throw new MaskdistillError(`--device expects cpu, cuda or auto, got '${device}'`);
    const precision = values.precision ?? "fp32";
    if (precision === "bf16" || precision === "fp16") {
      throw new MaskdistillError(`--precision ${precision} is not offered: onnxruntime's CPU execution provider has no bfloat16 MatMul kernel and runs float16 no faster than fp32 without AVX-512 FP16 (README "Reduced precision"); use --precision int8 for speed`);
    }
    if (precision !== "fp32" && precision !== "int8") throw new MaskdistillError(`--precision expects fp32 or int8, got '${precision}'`);
    const heads = numberFlag("heads", values.heads, 5);
    const topk = numberFlag("topk", values.topk, 0.4);
    const resize = numberFlag("resize", values.resize, 640);
    if (!Number.isInteger(heads) || heads < 1) throw new MaskdistillError(`--heads expects a positive integer, got '${values.heads}'`);
    if (!(topk > 0 && topk <= 1)) throw new MaskdistillError(`--topk expects a share in (0, 1], got '${values.topk}'`);
    if (!Number.isInteger(resize) || resize < 0) throw new MaskdistillError(`--resize expects a non-negative integer, got '${values.resize}'`);
    const shard = parseShard(values.shard, values["shard-count"]);
    const weights = values.weights ?? "dino_vits16";

    const images = await imagesFromFlags(values);
    const { loadBackbone } = await import("../../modeling/backbone.js");
    const { genMasks } = await import("../../distill/genMasks.js");
    // (the casts restate the checks above: TypeScript 5.0, which tslab uses, loses those narrowings across the awaits)
    const backbone = await loadBackbone(weights, { arch: arch as "vit_small" | "vit_base" | undefined, patch: patchFlag as 16 | 8 | undefined, device, precision: precision as "fp32" | "int8" });
    if (backbone.heads < heads) throw new MaskdistillError(`--heads ${heads} but the backbone has ${backbone.heads} heads`);
    // Ctrl-C stops after the current image; the journal keeps what is done for --resume
    const controller = new AbortController();
    const removeSignals = abortOnSignals(controller, "gen-masks");
    let summary;
    try {
      summary = await genMasks({
        images, predJson, backbone, resize, heads, topk, segm, shard, resume: !!values.resume,
        configTag: { weights, arch: arch ?? null, patch: backbone.patch }, signal: controller.signal,
      });
    } finally {
      removeSignals();
    }
    console.log(
      `gen-masks: ${summary.images} images, ${summary.masks} masks, ${summary.empty} empty, ${summary.errors} errors, ` +
        `${summary.clsSumNonPositive} with CLS score sum <= 0` +
        (summary.resumed ? `, ${summary.resumed} taken from the journal` : "") +
        `, ${summary.secondsPerImage.toFixed(3)} s/image -> ${summary.predJson}`,
    );
    if (summary.errors + summary.empty > 0) console.log(`see ${summary.predJson}.errors.jsonl for the images without a mask`);
    if (values.json) printJson(summary);
    return 0;
  },
};

export default command;
