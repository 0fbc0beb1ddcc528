// `maskdistill detect`: Mask R-CNN inference over a dataset (MaskDistill stage iii), written as
// {images, annotations, categories} with each image's detections in descending score order.
import type { Command } from "../command.js";
import { abortOnSignals, numberFlag, parseFlags, parseShard, printJson, SHARD_FLAGS, SHARD_USAGE, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";
import { IMAGE_SOURCE_FLAGS, IMAGE_SOURCE_USAGE, imagesFromFlags } from "../imageSource.js";

const usage = `usage: maskdistill detect --weights FILE --out OUT.json (--dataset voc|coco --dataset-root DIR | --images DIR)
                        [--preset detectron2|torchvision] [--score-thresh 0.05] [--max-dets 100] [--proposals 1000] [--min-size 800]
                        [--max-size 1333] [--label-ids shift|keep] [--shard i/n|auto] [--resume] [--threads N] [--workers N] [--json]

Mask R-CNN R50-FPN on every image (MaskDistill stage iii). Output: {images, annotations (RLE masks, boxes
[x, y, w, h], scores; per image best first), categories}; evaluate it with 'maskdistill eval-instances',
turn it into pseudo-labels with 'maskdistill gen-segmentation'.

${IMAGE_SOURCE_USAGE}
  --weights FILE           Mask R-CNN R50-FPN weights, any class count and width: a detectron2 checkpoint
                           (.pth {"model": …} or a model-zoo .pkl of numpy arrays; MSRA R-50, stride in
                           the 1×1 convs) or a torchvision maskrcnn_resnet50_fpn state dict (.pth); the
                           layout is recognised from the tensor names. Labels are 1…K either way
                           (detectron2's class c is label c + 1; its background row becomes label 0)
  --preset detectron2|torchvision
                           behaviour to reproduce. detectron2 (default): mask_rcnn_R_50_FPN_3x at test
                           time (ResizeShortestEdge with PIL bilinear, BGR 0–255 minus PIXEL_MEAN — the
                           checkpoint's pixel_mean/pixel_std when it has them —, unrounded anchors,
                           ROIAlignV2, find_top_rpn_proposals, fast_rcnn_inference, grid_sample paste).
                           torchvision: 0.14's maskrcnn_resnet50_fpn (normalise-then-resize, rounded
                           anchors, RoIAlign aligned=False, its NMS counts and mask paste). Without
                           --preset a torchvision-layout checkpoint runs with the torchvision preset, unless
                           it is a train-maskrcnn file, which names the preset it was trained with
  --score-thresh 0.05      keep detections scoring above this
  --max-dets 100           detections per image
  --proposals 1000         RPN proposals kept per image after NMS, which the box head scores (both presets:
                           1000; the shapes world runs 300, Faster R-CNN's test setting: one object per scene)
  --min-size 800           short side after resizing   --max-size 1333   long side limit (both presets)
  --label-ids shift|keep   category_id = label − 1 (shift: pseudo-classes 0…K−1 as stage ii writes, the
                           default) or = label (keep: e.g. torchvision's COCO weights, COCO ids 1…90;
                           a detectron2 COCO model gives its contiguous classes + 1, i.e. 1…80)
  --out OUT                output JSON; OUT.errors.jsonl lists the images that could not be processed.
                           Shard i of n writes OUT.shard-i-of-n.json beside it; 'maskdistill merge-preds
                           --out OUT' joins the shards into the bytes of one run
${SHARD_USAGE}
  --resume                 continue from OUT.partial.jsonl after an interruption
  --threads N              CPU threads for the network (default: all cores, at most 8)
  --workers N              images detected N at a time, in N threads with a copy of the network each (the
                           --threads divided among them; default 1). The same output, sooner where the
                           network is small and JavaScript, not the matrix products, takes the time
  --json                   last stdout line: the summary as JSON`;

const command: Command = {
  name: "detect",
  summary: "Stage iii: Mask R-CNN detections with masks for every image (COCO JSON, resumable, shardable)",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("detect", argv, {
      ...IMAGE_SOURCE_FLAGS,
      weights: { type: "string" },
      preset: { type: "string" },
      "score-thresh": { type: "string" },
      "max-dets": { type: "string" },
      proposals: { type: "string" },
      "min-size": { type: "string" },
      "max-size": { type: "string" },
      "label-ids": { type: "string" },
      out: { type: "string" },
      ...SHARD_FLAGS,
      resume: { type: "boolean" },
      threads: { type: "string" }, workers: { type: "string" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("detect", values, ["out"]);
    const out = values.out;
    if (!values.weights) throw new MaskdistillError("--weights is required: a detectron2 (.pth/.pkl) or torchvision (.pth) Mask R-CNN R50-FPN checkpoint");
    if (values.preset !== undefined && values.preset !== "detectron2" && values.preset !== "torchvision") {
      throw new MaskdistillError(`--preset expects detectron2 or torchvision, got '${values.preset}'`);
    }
    const labelIds = values["label-ids"] ?? "shift";
    if (labelIds !== "shift" && labelIds !== "keep") throw new MaskdistillError(`--label-ids expects shift or keep, got '${labelIds}'`);
    const scoreThresh = numberFlag("score-thresh", values["score-thresh"], 0.05);
    const maxDets = numberFlag("max-dets", values["max-dets"], 100);
    const proposals = numberFlag("proposals", values.proposals, 1000);
    if (!(Number.isInteger(proposals) && proposals >= 1)) throw new MaskdistillError(`--proposals expects a positive integer, got '${values.proposals}'`);
    const minSize = numberFlag("min-size", values["min-size"], 800);
    const maxSize = numberFlag("max-size", values["max-size"], 1333);
    if (!(scoreThresh >= 0 && scoreThresh < 1)) throw new MaskdistillError(`--score-thresh expects a value in [0, 1), got '${values["score-thresh"]}'`);
    if (!(Number.isInteger(maxDets) && maxDets >= 1)) throw new MaskdistillError(`--max-dets expects a positive integer, got '${values["max-dets"]}'`);
    if (!(Number.isInteger(minSize) && minSize >= 32 && Number.isInteger(maxSize) && maxSize >= minSize)) {
      throw new MaskdistillError(`--min-size and --max-size expect integers with 32 ≤ min-size ≤ max-size, got ${minSize} and ${maxSize}`);
    }
    const threads = values.threads === undefined ? undefined : numberFlag("threads", values.threads, 1);
    const workers = numberFlag("workers", values.workers, 1);
    if (!Number.isInteger(workers) || workers < 1) throw new MaskdistillError(`--workers expects a positive integer, got '${values.workers}'`);
    const shard = parseShard(values.shard, values["shard-count"]);
    const images = await imagesFromFlags(values);
    if (images.length === 0) throw new MaskdistillError("no images to process: the image list is empty");

    const { initEngine } = await import("../../engine/index.js");
    const { detectron2Inference, torchvisionInference } = await import("../../instance/maskrcnn.js");
    const { detectDataset, pseudoClassCategories, loadMaskRcnnModel } = await import("../../instance/detect.js");
    await initEngine({ backend: "wasm", threads });
    const model = await loadMaskRcnnModel(values.weights);
    const { net, layout } = model;
    // a train-maskrcnn file says which preset it was trained with (its weights are in torchvision's layout either way)
    const preset = (values.preset ?? model.preset ?? (layout === "torchvision" ? "torchvision" : "detectron2")) as "detectron2" | "torchvision";
    if (preset !== layout && preset !== model.preset) console.error(`detect: note: ${values.weights} has ${layout}'s layout but runs with the ${preset} preset (its preprocessing may not be what the weights expect)`);
    const over = { minSize, maxSize, scoreThresh, detectionsPerImage: maxDets, proposals };
    // detectron2 .pth files (and train-maskrcnn's) carry the model's PIXEL_MEAN / PIXEL_STD as buffers: use them when present
    const pixel = model.pixel ?? {};
    const inference = preset === "detectron2" ? detectron2Inference({ ...over, transform: pixel }) : torchvisionInference(over);
    const categories = labelIds === "keep"
      ? Array.from({ length: net.numClasses - 1 }, (_, i) => ({ id: i + 1, name: `class ${i + 1}` }))
      : pseudoClassCategories(net);
    // Ctrl-C / SIGTERM stop after the current image (exit 130 / 143); the journal keeps what is done
    const controller = new AbortController();
    const stopHandling = abortOnSignals(controller, "detect");
    let summary;
    try {
      summary = await detectDataset({
        images, out, net, inference, shard, resume: !!values.resume, signal: controller.signal, categories,
        categoryOf: labelIds === "keep" ? (l) => l : (l) => l - 1,
        configTag: { weights: values.weights, labelIds, layout }, workers,
      });
    } finally {
      stopHandling();
    }
    console.log(
      `detect: ${summary.images} images, ${summary.detections} detections, ${summary.withoutDetections} images without any, ` +
        `${summary.errors} errors` + (summary.resumed ? `, ${summary.resumed} taken from the journal` : "") +
        `, ${summary.secondsPerImage.toFixed(2)} s/image -> ${summary.out}`,
    );
    if (summary.errors > 0) console.log(`see ${summary.out}.errors.jsonl for the images that could not be processed`);
    if (values.json) printJson(summary);
    return 0;
  },
};

export default command;
