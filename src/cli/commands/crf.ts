// `maskdistill crf`: MaskDistill's dense CRF post-processing (METHOD.md §5.3, pydensecrf-exact) over a
// folder of logits + images.
import type { Command } from "../command.js";
import { numberFlag, parseFlags, parseShard, printJson, abortOnSignals, SHARD_FLAGS, SHARD_USAGE, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill crf --images DIR --logits DIR --out-dir DIR [--iterations 10] [--save-q]
                     [--shard i/n|auto | --merge] [--resume] [--json]

Refines network predictions with the fully connected CRF the reference uses (pydensecrf with
MaskDistill's parameters: Gaussian sxy 1 / compat 3, bilateral sxy 67 / srgb 3 / compat 4 on the BGR
image, symmetric normalisation, Potts, mean field): logits are upsampled bilinearly to the image size
(torch align_corners=False), softmaxed, and U = −log(clip(p, 1e-5, 1)).

  --images DIR       images <stem>.png / <stem>.jpg (the CRF runs at their size)
  --logits DIR       <stem>.logits.npy: float32 (or float16) [C, h, w], C order (NumPy .npy)
  --out-dir DIR      writes <stem>.png (uint8 labels, VOC palette), crf.json (per-image summary) and
                     crf.json.errors.jsonl (files that could not be processed; the run goes on)
  --iterations N     mean-field iterations (default 10)
  --save-q           also write <stem>.q.npy: float32 Q [C, H, W] (the marginals dense_crf returns)
  --gaussian-sxy, --gaussian-compat, --bilateral-sxy, --bilateral-srgb, --bilateral-compat
                     override the reference's kernel parameters
${SHARD_USAGE}
                     Shard i of n writes its PNGs into --out-dir and its summary as crf.shard-i-of-n.json
                     (+ crf.shard-i-of-n.json.entries.jsonl, what --merge reads)
  --merge            after all shards: write crf.json and crf.json.errors.jsonl from the shards in
                     --out-dir, the bytes one run writes (give the shards' other flags)
  --resume           continue from crf.json.partial.jsonl (a shard: crf.shard-i-of-n.json.partial.jsonl)
                     after an interruption
  --json             last stdout line: {images, done, errors, resumed, seconds, seconds_per_image, changed, ...}`;

const command: Command = {
  name: "crf",
  summary: "dense CRF (pydensecrf-exact, MaskDistill's parameters) on a folder of logits .npy + images",
  usage,
  async run(argv) {
    const { values } = parseFlags("crf", argv, {
      images: { type: "string" },
      logits: { type: "string" },
      "out-dir": { type: "string" },
      iterations: { type: "string" },
      "save-q": { type: "boolean" },
      "gaussian-sxy": { type: "string" },
      "gaussian-compat": { type: "string" },
      "bilateral-sxy": { type: "string" },
      "bilateral-srgb": { type: "string" },
      "bilateral-compat": { type: "string" },
      ...SHARD_FLAGS,
      merge: { type: "boolean" },
      resume: { type: "boolean" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("crf", values, ["images", "logits", "out-dir"]);
    if (values.merge && (values.shard || values["shard-count"] || values.resume)) throw new MaskdistillError("--merge joins the finished shards: give it without --shard, --shard-count or --resume");
    const shard = parseShard(values.shard, values["shard-count"]);
    const iterations = numberFlag("iterations", values.iterations, 10);
    if (!Number.isInteger(iterations) || iterations < 0) throw new MaskdistillError(`--iterations expects a non-negative integer, got '${values.iterations}'`);
    const positive = (name: string, v: string | undefined): number | undefined => {
      if (v === undefined) return undefined;
      const x = numberFlag(name, v, 0);
      if (!(x > 0)) throw new MaskdistillError(`--${name} expects a positive number, got '${v}'`);
      return x;
    };
    const crf = {
      gaussian: { sxy: positive("gaussian-sxy", values["gaussian-sxy"]), compat: positive("gaussian-compat", values["gaussian-compat"]) },
      bilateral: {
        sxy: positive("bilateral-sxy", values["bilateral-sxy"]),
        srgb: positive("bilateral-srgb", values["bilateral-srgb"]),
        compat: positive("bilateral-compat", values["bilateral-compat"]),
      },
    };
    // drop unset overrides so the defaults apply (and the journal config stays small)
    const clean = <T extends Record<string, number | undefined>>(o: T) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
    const { crfFolder } = await import("../../refine/crfFolder.js");
    const controller = new AbortController();
    const removeSignals = abortOnSignals(controller, "crf");
    let s;
    try {
      s = await crfFolder({
        images: values.images,
        logits: values.logits,
        outDir: values["out-dir"],
        iterations,
        saveQ: !!values["save-q"],
        crf: { gaussian: clean(crf.gaussian), bilateral: clean(crf.bilateral) },
        shard,
        merge: !!values.merge,
        resume: !!values.resume,
        signal: controller.signal,
      });
    } finally {
      removeSignals();
    }
    if (values.merge) {
      console.log(`crf --merge: ${s.images} images from the shards in ${s.outDir} (${s.done} refined, ${s.errors} errors) -> ${s.summaryFile}`);
    } else console.log(
      `crf: ${s.done} of ${s.images} images refined (${iterations} iterations) in ${s.seconds.toFixed(1)} s` +
        `${s.resumed ? `, ${s.resumed} resumed` : ""}, ${(s.secondsPerImage * 1000).toFixed(0)} ms/image; ` +
        `the CRF changed ${(100 * s.changed).toFixed(2)} % of the labels\n  outputs: ${s.outDir}/<stem>.png` +
        `${values["save-q"] ? ", <stem>.q.npy" : ""}, ${s.summaryFile}` +
        (s.errors ? `\n  ${s.errors} errors: see ${s.errorsFile}` : ""),
    );
    if (values.json) {
      printJson({
        images: s.images, done: s.done, errors: s.errors, resumed: s.resumed, seconds: s.seconds,
        seconds_per_image: s.secondsPerImage, changed: s.changed, iterations, out_dir: s.outDir,
        summary_file: s.summaryFile, errors_file: s.errorsFile,
      });
    }
    return s.errors && !s.done ? 1 : 0;
  },
};
export default command;
