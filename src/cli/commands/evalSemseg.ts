// `maskdistill eval-semseg`: mIoU of predicted label PNGs against GT PNGs (METHOD.md §6.1, §6.3).
import type { Command } from "../command.js";
import { numberFlag, parseFlags, printJson, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill eval-semseg --pred-dir DIR --gt-dir DIR [--num-classes 21] [--ignore 255]
                              [--match none|hungarian|majority] [--pin-background] [--json]

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
  --json               last stdout line: {"per_class", "miou", "miou_present", "pixel_acc", "mapping", "images"}

mIoU counts a class that never occurs (in GT nor prediction) as 0, as the reference does; miou_present
averages only the classes that occur.`;

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
    });
    requireFlags("eval-semseg", values, ["pred-dir", "gt-dir"]);
    const match = (values.match ?? "none") as "none" | "hungarian" | "majority";
    if (!["none", "hungarian", "majority"].includes(match)) throw new MaskdistillError(`--match must be none, hungarian or majority, got '${values.match}'`);
    const { evaluateSemsegDirs } = await import("../../evaluation/semseg.js");
    const { VOC_CLASSES } = await import("../../data/voc.js");
    const numClasses = numberFlag("num-classes", values["num-classes"], 21);
    const res = evaluateSemsegDirs(values["pred-dir"], values["gt-dir"], {
      numClasses,
      ignore: numberFlag("ignore", values.ignore, 255),
      match,
      pinBackground: values["pin-background"] ?? false,
    });
    const names = numClasses === 21 ? [...VOC_CLASSES] : Array.from({ length: numClasses }, (_, i) => `class ${i}`);
    const lines = [`eval-semseg: ${res.images} images, ${numClasses} classes, match ${match}${values["pin-background"] ? " (background pinned)" : ""}`];
    res.per_class.forEach((iou, c) => lines.push(`  ${names[c].padEnd(14)} ${iou === null ? "   —" : (100 * iou).toFixed(2).padStart(6)}`));
    lines.push(`  mIoU ${(100 * res.miou).toFixed(2)}  (over present classes ${(100 * res.miou_present).toFixed(2)})  pixel acc ${(100 * res.pixel_acc).toFixed(2)}`);
    console.log(lines.join("\n"));
    if (values.json) {
      const { confusion: _c, ...rest } = res;
      printJson(rest);
    }
    return 0;
  },
};
export default command;
