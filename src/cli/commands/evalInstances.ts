// `maskdistill eval-instances`: mask AP of instance predictions, as the reference eval_instances.py.
import type { Command } from "../command.js";
import { parseFlags, printJson, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill eval-instances --gt-file GT.json --input-file PRED.json [--iou-type segm|bbox]
                                [--agnostic] [--eval-most-confident] [--json]

COCOeval (pycocotools-exact) of a detection results list against a COCO instances file; prints the
12-line COCO summary and the AP50 (stats[1]) that MaskDistill reports.

  --gt-file FILE           COCO instances JSON (images, annotations, categories)
  --input-file FILE        results list: [{image_id, category_id, score, bbox?, segmentation?}, ...]
  --iou-type segm|bbox     match masks (default) or boxes
  --agnostic               class-agnostic matching (COCOeval useCats = 0)
  --eval-most-confident    "single" protocol: keep the top-scoring prediction per image and, for each,
                           the one GT object of its image whose box (corners rounded) overlaps its box
                           most; a prediction on an image without GT objects stays, as a false positive
  --json                   last stdout line: {"stats": [12], "ap50": stats[1], "per_category": {name: ap50}}`;

const command: Command = {
  name: "eval-instances",
  summary: "Instance mask AP50 (COCOeval) of predictions against COCO-format GT (multi or single protocol)",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("eval-instances", argv, {
      "gt-file": { type: "string" },
      "input-file": { type: "string" },
      "iou-type": { type: "string" },
      agnostic: { type: "boolean" },
      "eval-most-confident": { type: "boolean" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("eval-instances", values, ["gt-file", "input-file"]);
    const gtFile = values["gt-file"];
    const inputFile = values["input-file"];
    const iouType = values["iou-type"] ?? "segm";
    if (iouType !== "segm" && iouType !== "bbox") {
      throw new MaskdistillError(`--iou-type expects segm or bbox, got '${iouType}'`);
    }
    const { readCocoDataset, readCocoResults } = await import("../../data/coco.js");
    const { evaluateInstances } = await import("../../evaluation/instances.js");

    const { progress, announceLargeRead } = await import("../progress.js");
    announceLargeRead("eval-instances", "GT", gtFile);
    const gt = readCocoDataset(gtFile);
    announceLargeRead("eval-instances", "predictions", inputFile);
    const results = readCocoResults(inputFile, gt, { anyCategory: !!values.agnostic });
    // A bar for the matching step (the long one: masks are decoded there), made on its first report.
    let bar: ReturnType<typeof progress> | undefined, shown = 0;
    const report = evaluateInstances(gt, results, {
      iouType, agnostic: !!values.agnostic, mostConfident: !!values["eval-most-confident"],
      onProgress: (done, total) => {
        if (done < total || bar) {
          bar ??= progress("eval-instances: matching (image, category) groups", total);
          bar.tick(done - shown);
          shown = done;
        }
      },
    });
    bar?.stop();
    const mode = `${report.protocol} protocol, iouType ${iouType}, ${report.useCats ? "class-aware" : "class-agnostic"}`;
    console.log(`${mode}: ${report.numDetections} predictions, ${report.numGtObjects} GT objects, ${gt.images.length} images`);
    if (report.imagesWithoutGt.length > 0) {
      console.log(`note: ${report.imagesWithoutGt.length} image(s) have a prediction but no GT object (counted as false positives)`);
    }
    console.log(report.summary);
    console.log(`${iouType} AP50 result is ${report.ap50}`);
    if (values.json) {
      const perCategory: Record<string, number> = {};
      for (const c of report.perCategory) {
        const key = c.name in perCategory ? `${c.name} (id ${c.id})` : c.name;
        perCategory[key] = c.ap50;
      }
      printJson({ stats: report.stats, ap50: report.ap50, per_category: perCategory });
    }
    return 0;
  },
};

export default command;
