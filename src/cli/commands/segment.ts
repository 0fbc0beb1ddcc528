// `maskdistill segment`: a trained DeepLab-v3 over a folder of images → label PNGs at the original size
// (src/segmentation/segmentFolder.ts, through the shared per-image runner).
import type { Command } from "../command.js";
import { numberFlag, parseFlags, parseShard, printJson, abortOnSignals, SHARD_FLAGS, SHARD_USAGE, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill segment --weights FILE --images DIR --out-dir DIR [--crf] [--list FILE] [--size 512]
                         [--shard i/n|auto | --merge] [--resume] [--threads N] [--workers N] [--json]

Predicts label maps as the reference saves them (utils/evaluate_utils.py): each image resized to 512×512
(OpenCV bicubic), ImageNet-normalised, eval-mode DeepLab-v3 logits at 512×512; then the argmax resized to
the original size with OpenCV's nearest, or with --crf the logits bilinearly resized to the original
size and refined by the dense CRF (pydensecrf-exact, the reference's parameters). Score the PNGs with
'maskdistill eval-semseg --pred-dir DIR --gt-dir GT' (ids are classes: the stage-ii cluster→class
mapping is already in the pseudo-labels the model learnt, so use the default --match none; that is the
paper's "clustering" protocol; --match hungarian --pin-background re-matches on val instead).

  --weights FILE     OUT/model.safetensors of train-deeplab, a reference checkpoint (head.*, module. or
                     {model} wrappers) or torchvision's deeplabv3_resnet50 state dict (classifier.*)
  --images DIR       images (.jpg/.png); --list FILE restricts to the listed ids
  --out-dir DIR      <stem>.png (class ids, VOC palette), segment.json, segment.json.errors.jsonl
  --crf              dense CRF post-processing (10 mean-field iterations)
  --size S           network input side (default 512, the reference's)
${SHARD_USAGE}
                     Shard i of n writes its PNGs into --out-dir and its summary as segment.shard-i-of-n.json
                     (+ segment.shard-i-of-n.json.entries.jsonl, what --merge reads)
  --merge            after all shards: write segment.json and segment.json.errors.jsonl from the shards in
                     --out-dir, the bytes one run writes (give the shards' other flags; predicts nothing)
  --resume           continue from segment.json.partial.jsonl (a shard: segment.shard-i-of-n.json.partial.jsonl)
                     after an interruption
  --threads N        threads for the matrix products (default 2)
  --workers N        images predicted N at a time, in N threads with a copy of the model each (the --threads
                     divided among them; default 1): the same output, sooner for a small model or with --crf
  --json             last stdout line: {images, done, errors, resumed, seconds, seconds_per_image, ...}`;

const command: Command = {
  name: "segment",
  summary: "stage v prediction: DeepLab-v3 label maps at the original size (± CRF), resumable",
  usage,
  async run(argv) {
    const { values } = parseFlags("segment", argv, {
      weights: { type: "string" }, images: { type: "string" }, list: { type: "string" }, "out-dir": { type: "string" },
      crf: { type: "boolean" }, size: { type: "string" }, ...SHARD_FLAGS, merge: { type: "boolean" }, resume: { type: "boolean" }, threads: { type: "string" }, workers: { type: "string" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("segment", values, ["weights", "images", "out-dir"]);
    const size = numberFlag("size", values.size, 512);
    if (!Number.isInteger(size) || size < 32 || size % 8) throw new MaskdistillError(`--size expects a multiple of 8, at least 32, got '${values.size}'`);
    const threads = numberFlag("threads", values.threads, 2);
    if (!Number.isInteger(threads) || threads < 1) throw new MaskdistillError(`--threads expects a positive integer, got '${values.threads}'`);
    const workers = numberFlag("workers", values.workers, 1);
    if (!Number.isInteger(workers) || workers < 1) throw new MaskdistillError(`--workers expects a positive integer, got '${values.workers}'`);
    if (values.merge && (values.shard || values["shard-count"] || values.resume)) throw new MaskdistillError("--merge joins the finished shards: give it without --shard, --shard-count or --resume");
    const shard = parseShard(values.shard, values["shard-count"]);
    const { segmentationItems } = await import("../../segmentation/data.js");
    const items = segmentationItems({ images: values.images, list: values.list }, "images");
    const path = await import("node:path");
    const weightsId = path.resolve(values.weights);
    if (values.merge) {
      // the shards' settings include the class count; the merge reads it and predicts nothing
      const { readDeepLabStateDict } = await import("../../segmentation/model.js");
      const { numClasses } = await readDeepLabStateDict(values.weights);
      const { segmentFolder } = await import("../../segmentation/segmentFolder.js");
      const m = await segmentFolder({ classes: numClasses, items, outDir: values["out-dir"], crf: !!values.crf, size, merge: true, weightsId });
      console.log(`segment --merge: ${m.images} images from the shards in ${m.outDir} (${m.done} predicted, ${m.errors} errors) -> ${m.summaryFile}`);
      if (values.json) printJson({ images: m.images, done: m.done, errors: m.errors, resumed: m.resumed, seconds: m.seconds, seconds_per_image: m.secondsPerImage, out_dir: m.outDir, crf: !!values.crf, summary_file: m.summaryFile, errors_file: m.errorsFile });
      return m.errors && !m.done ? 1 : 0;
    }
    const { initEngine } = await import("../../engine/index.js");
    await initEngine({ threads });
    const { loadDeepLab, segmentFolder } = await import("../../segmentation/segmentFolder.js");
    const { model, layout } = await loadDeepLab(values.weights);
    console.error(`segment: ${items.length} images, DeepLab-v3 (${layout} layout, ${model.numClasses} classes) at ${size}²${values.crf ? " + CRF" : ""}`);
    const controller = new AbortController();
    const removeSignals = abortOnSignals(controller, "segment");
    let s;
    try {
      s = await segmentFolder({ model, items, outDir: values["out-dir"], crf: !!values.crf, size, shard, resume: !!values.resume, signal: controller.signal, weightsId, workers });
    } finally {
      removeSignals();
    }
    console.log(`segment: ${s.done} of ${s.images} images in ${s.seconds.toFixed(1)} s${s.resumed ? ` (${s.resumed} resumed)` : ""}, ` +
      `${s.secondsPerImage.toFixed(2)} s/image; outputs ${s.outDir}/<stem>.png, ${s.summaryFile}` + (s.errors ? `\n  ${s.errors} errors: see ${s.errorsFile}` : ""));
    if (values.json) printJson({ images: s.images, done: s.done, errors: s.errors, resumed: s.resumed, seconds: s.seconds, seconds_per_image: s.secondsPerImage, out_dir: s.outDir, crf: !!values.crf, layout, summary_file: s.summaryFile, errors_file: s.errorsFile });
    return s.errors && !s.done ? 1 : 0;
  },
};
export default command;
