// `maskdistill eval-semseg`: mIoU of predicted label PNGs against GT PNGs (METHOD.md §6.1, §6.3).
import type { Command } from "../command.js";
import { numberFlag, parseFlags, printJson, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill eval-semseg --pred-dir DIR --gt-dir DIR [--num-classes 21] [--ignore 255]
                              [--match none|hungarian|majority] [--pin-background] [--list FILE]
                              [--class-names a,b,...] [--confusion] [--json]

Scores predicted label maps against GT label maps, paired by file stem (palette or grayscale PNGs whose
values are class ids; every GT needs a prediction of the same size). Accumulates one confusion matrix
over the data set (pixels with GT = ignore are skipped) and prints per-class IoU, mIoU and pixel accuracy.

  --pred-dir DIR       predicted PNGs (class ids, or cluster ids with --match)
  --gt-dir DIR         ground-truth PNGs (e.g. VOC SegmentationClass)
  --num-classes N      number of classes including background (default 21)
  --ignore V           GT value to skip (default 255)
  --match MODE         none (ids are classes, default) | hungarian (maximum total agreement, one cluster
                       per class) | majority (each cluster to its most overlapping class)
  --pin-background     keep cluster 0 = class 0 and match only the others (the reference's protocol)
  --list FILE          score only the images named in FILE (one stem per line, e.g. VOC's
                       ImageSets/Segmentation/val.txt), when the GT folder holds more than were predicted
  --class-names LIST   comma-separated names of the classes, background first (default VOC's 21 names
                       when --num-classes is 21, else "class 0", "class 1", ...)
  --confusion          also print where each GT class's pixels go: one row per GT class, the percentage
                       of its pixels predicted as each class (after --match; pixels of unmatched
                       clusters left out)
  --json               last stdout line: {"per_class", "miou", "miou_present", "pixel_acc", "mapping", "images"}

mIoU counts a class that never occurs (in GT nor prediction) as 0, as the reference does; miou_present
averages only the classes that occur.`;

/** Rows of GT classes, columns of predicted classes: the percentage of each GT class's pixels. */
function confusionRows(confusion: number[][], names: string[]): string[] {
  const short = names.map((n) => n.slice(0, 7).padStart(8));
  const rows = ["  where each GT class's pixels go (% of the row):", `  ${"GT \\ pred".padEnd(14)}${short.join("")}`];
  names.forEach((name, g) => {
    const total = confusion.reduce((sum, row) => sum + row[g], 0);
    const cells = confusion.map((row) => (total ? (100 * row[g] / total).toFixed(1) : "—").padStart(8));
    rows.push(`  ${name.padEnd(14)}${cells.join("")}`);
  });
  return rows;
}

const command: Command = {
  name: "eval-semseg",
  summary: "semantic mIoU of label PNGs vs GT, with Hungarian/majority cluster matching",
  usage,
  async run(argv) {
    const { values } = parseFlags("eval-semseg", argv, {
      "pred-dir": { type: "string" },
      "gt-dir": { type: "string" },
      "num-classes": { type: "string" },
      ignore: { type: "string" },
      match: { type: "string" },
      "pin-background": { type: "boolean" },
      list: { type: "string" },
      "class-names": { type: "string" },
      confusion: { type: "boolean" },
    });
    requireFlags("eval-semseg", values, ["pred-dir", "gt-dir"]);
    const match = (values.match ?? "none") as "none" | "hungarian" | "majority";
    if (!["none", "hungarian", "majority"].includes(match)) throw new MaskdistillError(`--match must be none, hungarian or majority, got '${values.match}'`);
    const { evaluateSemsegDirs } = await import("../../evaluation/semseg.js");
    const { VOC_CLASSES, readSplit } = await import("../../data/voc.js");
    const numClasses = numberFlag("num-classes", values["num-classes"], 21);
    const given = values["class-names"]?.split(",").map((n) => n.trim());
    if (given && given.length !== numClasses) throw new MaskdistillError(`--class-names lists ${given.length} name(s) but --num-classes is ${numClasses}; give one name per class, background first`);
    const res = evaluateSemsegDirs(values["pred-dir"], values["gt-dir"], {
      numClasses,
      ignore: numberFlag("ignore", values.ignore, 255),
      match,
      pinBackground: values["pin-background"] ?? false,
      stems: values.list === undefined ? undefined : readSplit(values.list),
    });
    const names = given ?? (numClasses === 21 ? [...VOC_CLASSES] : Array.from({ length: numClasses }, (_, i) => `class ${i}`));
    const lines = [`eval-semseg: ${res.images} images, ${numClasses} classes, match ${match}${values["pin-background"] ? " (background pinned)" : ""}`];
    res.per_class.forEach((iou, c) => lines.push(`  ${names[c].padEnd(14)} ${iou === null ? "   —" : (100 * iou).toFixed(2).padStart(6)}`));
    lines.push(`  mIoU ${(100 * res.miou).toFixed(2)}  (over present classes ${(100 * res.miou_present).toFixed(2)})  pixel acc ${(100 * res.pixel_acc).toFixed(2)}`);
    if (values.confusion) lines.push(...confusionRows(res.confusion, names));
    console.log(lines.join("\n"));
    if (values.json) {
      const { confusion: _c, ...rest } = res;
      printJson(rest);
    }
    return 0;
  },
};
export default command;
