// `maskdistill gen-segmentation`: stage iv, confident detections become semantic pseudo-label PNGs
// (the reference's gen_segmentation.py, METHOD.md §4.2).
import type { Command } from "../command.js";
import { numberFlag, parseFlags, parseShard, printJson, abortOnSignals, SHARD_FLAGS, SHARD_USAGE } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill gen-segmentation --input-file PREDS.json --gt-file IMAGES.json --output-dir DIR
                                   [--threshold 0.9] [--overlap-rule intended|released] [--mask-type mask|bbx]
                                   [--gt-dir DIR] [--match hungarian|majority|none] [--pin-background]
                                   [--shard i/n|auto | --merge] [--resume] [--json]

Turns detections (a COCO results list, e.g. the Mask R-CNN's; or an {annotations} file such as a stage-ii
output) into one semantic pseudo-label map per image of --gt-file (MaskDistill stage iv): per image, keep
the top detection when it scores below the threshold, else every detection at or above it; paint
1 + category_id in descending score order on a background-0 map of the image's size. Images without a
detection get an all-background map (listed in summary.json). Results not sorted by score are sorted
(stable) with a warning.

  --input-file FILE     detections; category ids 0..253 (label = 1 + category_id)
  --gt-file FILE        COCO JSON with the images (sizes, file names) and, for the box AP50, annotations
  --output-dir DIR      <file stem>.png per image (single channel, VOC palette), summary.json
  --threshold 0.9       confidence threshold (the reference runs 0.9)
  --overlap-rule R      intended (default): skip a detection that overlaps painted pixels;
                        released: the released code's test (NumPy integer indexing, METHOD.md §4.2): only
                        painted rows 0/1 are looked at, real overlaps are overwritten
  --mask-type T         mask (default) or bbx (fill the box, rows/columns round(y)..round(y+h) inclusive)
  --gt-dir DIR          semantic GT PNGs (e.g. SegmentationClass): score the pseudo-labels' mIoU (21 classes)
  --match M             matching of pseudo-classes to classes for the mIoU (default hungarian)
  --pin-background      keep label 0 = background and match only the others
${SHARD_USAGE}
                           Shards share --output-dir: the PNGs join there, each shard writes
                           summary.shard-i-of-n.json (no mIoU) + summary.shard-i-of-n.json.entries.jsonl
  --merge               after all shards: write summary.json (with AP50 and, with --gt-dir, the mIoU) and
                        its errors file from the shards in --output-dir, the bytes one run writes (give
                        the shards' other flags)
  --resume              continue from DIR/summary.json.partial.jsonl after an interruption
  --json                last stdout line: the summary as JSON

Also reported: box AP50 (COCOeval bbox) of the kept detections against --gt-file's annotations,
class-aware when their categories are GT categories, and class-agnostic.`;

const command: Command = {
  name: "gen-segmentation",
  summary: "Stage iv: confident detections -> semantic pseudo-label PNGs (resumable, shardable, scored)",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("gen-segmentation", argv, {
      "input-file": { type: "string" },
      "gt-file": { type: "string" },
      "output-dir": { type: "string" },
      threshold: { type: "string" },
      "overlap-rule": { type: "string" },
      "mask-type": { type: "string" },
      "gt-dir": { type: "string" },
      match: { type: "string" },
      "pin-background": { type: "boolean" },
      ...SHARD_FLAGS,
      merge: { type: "boolean" },
      resume: { type: "boolean" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    for (const f of ["input-file", "gt-file", "output-dir"] as const) {
      if (!values[f]) throw new MaskdistillError(`--${f} is required. Run 'maskdistill gen-segmentation --help' for the flags.`);
    }
    const overlapRule = values["overlap-rule"] ?? "intended";
    if (overlapRule !== "intended" && overlapRule !== "released") throw new MaskdistillError(`--overlap-rule expects intended or released, got '${overlapRule}'`);
    const maskType = values["mask-type"] ?? "mask";
    if (maskType !== "mask" && maskType !== "bbx") throw new MaskdistillError(`--mask-type expects mask or bbx, got '${maskType}'`);
    const match = values.match ?? "hungarian";
    if (match !== "hungarian" && match !== "majority" && match !== "none") throw new MaskdistillError(`--match expects hungarian, majority or none, got '${match}'`);
    const threshold = numberFlag("threshold", values.threshold, 0.9);
    if (values.merge && (values.shard || values["shard-count"] || values.resume)) throw new MaskdistillError("--merge joins the finished shards: give it without --shard, --shard-count or --resume");
    const shard = parseShard(values.shard, values["shard-count"]);

    const { genSegmentation, summaryPath } = await import("../../pseudolabels/genSegmentation.js");
    const controller = new AbortController();
    const removeSignals = abortOnSignals(controller, "gen-segmentation");
    let s;
    try {
      s = await genSegmentation({
        inputFile: values["input-file"]!, gtFile: values["gt-file"]!, outputDir: values["output-dir"]!,
        threshold, overlapRule, maskType, gtDir: values["gt-dir"], match, pinBackground: !!values["pin-background"],
        shard, merge: !!values.merge, resume: !!values.resume, signal: controller.signal,
        onWarning: (m) => console.error(`warning: ${m}`),
      });
    } finally {
      removeSignals();
    }
    const pct = (v: number | null) => (v === null ? "—" : (100 * v).toFixed(1));
    const lines = [
      `gen-segmentation: ${s.images} images (${s.imagesWithDetections} with detections, ${s.emptyImages.count} without: all background), ` +
        `${s.detections} detections, threshold ${s.threshold}, overlap rule ${s.overlapRule}, mask type ${s.maskType}`,
      `  threshold rule: kept ${s.thresholdRule.kept}, dropped ${s.thresholdRule.droppedBelowThreshold} below the threshold` +
        ` and ${s.thresholdRule.droppedNotTop} as not the top detection of a low-confidence image`,
      `  overlap rule (${s.overlapRule}): painted ${s.overlapRuleCounts.painted}, dropped ${s.overlapRuleCounts.droppedOverlap} overlapping` +
        ` and ${s.overlapRuleCounts.droppedTopRows} by the top-rows test`,
      `  box AP50 of the kept detections: ${pct(s.ap50)} class-aware, ${pct(s.ap50Agnostic)} class-agnostic` + (s.ap50Note ? ` (${s.ap50Note})` : ""),
    ];
    if (s.semseg) lines.push(`  pseudo-label mIoU vs ${values["gt-dir"]}: ${pct(s.semseg.miou)} (match ${s.semseg.match}${s.semseg.pinBackground ? ", background pinned" : ""}, ${s.semseg.images} images), pixel acc ${pct(s.semseg.pixel_acc)}`);
    const summaryFile = summaryPath(values["output-dir"]!, s.shard);
    if (s.errors) lines.push(`  ${s.errors} image(s) failed: see ${summaryFile}.errors.jsonl`);
    if (values.merge) lines.push(`  merged from the shards in ${values["output-dir"]} -> ${summaryFile}`);
    else if (s.resumed) lines.push(`  ${s.resumed} image(s) taken from the journal`);
    lines.push(`  ${s.secondsPerImage.toFixed(3)} s/image -> ${values["output-dir"]}`);
    console.log(lines.join("\n"));
    if (values.json) printJson(s);
    return 0;
  },
};

export default command;
