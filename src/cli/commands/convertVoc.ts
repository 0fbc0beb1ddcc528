// `maskdistill convert-voc`: PASCAL VOC instance GT in COCO format (the reference's convert_voc.py).
import type { Command } from "../command.js";
import { parseFlags, printJson, requireFlags } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill convert-voc --dataset-root DIR --output-file OUT.json [--set instance|FILE]
                             [--year 2012] [--agnostic] [--segm rle|polygon] [--json]

Instance ground truth of PASCAL VOC as a COCO instances file (the reference's convert_voc.py): every
SegmentationObject instance (0 and 255 skipped) becomes one object whose class is the majority
SegmentationClass label inside it minus 1 (object ids 0..19; void pixels are never part of an object).
Image ids are positions in the split list (as 'gen-masks --dataset voc'), file_name <name>.jpg.

  --dataset-root DIR     VOC<year>, VOCdevkit or its parent (needs SegmentationObject/, SegmentationClass/)
  --set instance|FILE    split list: a file, else data/splits/voc/<set>.txt, else
                         ImageSets/Segmentation/<set>.txt, else ImageSets/Main/<set>.txt
                         (default 'instance': the reference's 2,913 SegmentationObject images)
  --year 2012            VOC year (to find VOC<year> under VOCdevkit)
  --agnostic             every object gets category 0 (single category 'object')
  --segm rle|polygon     rle (default, exact) or the reference's tolerance-2 polygons (an object whose
                         polygons all vanish is then dropped, as in the reference)
  --output-file OUT      COCO instances JSON (written atomically)
  --json                 last stdout line: the summary as JSON

Images whose PNGs are missing or unreadable are skipped and listed; instances with no class pixel
under them are skipped and listed.`;

const command: Command = {
  name: "convert-voc",
  summary: "PASCAL VOC SegmentationObject → COCO instance GT (class-aware or agnostic), as convert_voc.py",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("convert-voc", argv, {
      "dataset-root": { type: "string" },
      set: { type: "string" },
      year: { type: "string" },
      agnostic: { type: "boolean" },
      segm: { type: "string" },
      "output-file": { type: "string" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("convert-voc", values, ["dataset-root", "output-file"]);
    const root = values["dataset-root"];
    const outputFile = values["output-file"];
    const segm = values.segm ?? "rle";
    if (segm !== "rle" && segm !== "polygon") throw new MaskdistillError(`--segm expects rle or polygon, got '${segm}'`);
    const { vocRoot } = await import("../../data/voc.js");
    const { convertVoc, readInstanceSplit } = await import("../../data/vocInstances.js");
    const { writeCocoJson } = await import("../../data/coco.js");
    const { progress } = await import("../progress.js");

    const voc = vocRoot(root, values.year ?? "2012");
    const split = readInstanceSplit(voc, values.set ?? "instance");
    const bar = progress("convert-voc", split.names.length, { quiet: !!values.json });
    const t0 = Date.now();
    const { dataset, summary } = convertVoc(voc, split.names, { agnostic: !!values.agnostic, segm, onImage: (n) => bar.tick(1, n) });
    bar.stop();
    writeCocoJson(outputFile, dataset);
    const seconds = (Date.now() - t0) / 1000;

    console.log(`${split.file}: ${summary.listed} images listed`);
    console.log(
      `wrote ${outputFile}: ${summary.images} images, ${summary.objects} objects, ` +
        `${values.agnostic ? "class-agnostic" : "class-aware (20 VOC classes)"}, ${segm} (${seconds.toFixed(1)} s)`,
    );
    if (summary.skippedImages.length > 0) {
      console.log(`skipped ${summary.skippedImages.length} image(s) without readable SegmentationObject/SegmentationClass PNGs:`);
      for (const s of summary.skippedImages.slice(0, 10)) console.log(`  ${s.name}: ${s.reason}`);
      if (summary.skippedImages.length > 10) console.log(`  … and ${summary.skippedImages.length - 10} more`);
    }
    if (summary.skippedInstances.length > 0) {
      console.log(`skipped ${summary.skippedInstances.length} instance(s):`);
      for (const s of summary.skippedInstances.slice(0, 10)) console.log(`  ${s.name} instance ${s.instance}: ${s.reason}`);
    }
    if (summary.mixedInstances.length > 0) {
      console.log(`${summary.mixedInstances.length} instance(s) cover several class labels (majority used)`);
    }
    if (values.json) {
      printJson({
        output_file: outputFile, split_file: split.file, listed: summary.listed, images: summary.images,
        objects: summary.objects, objects_per_category: summary.objectsPerCategory,
        skipped_images: summary.skippedImages, skipped_instances: summary.skippedInstances,
        mixed_instances: summary.mixedInstances.length, agnostic: !!values.agnostic, segm, seconds,
      });
    }
    return 0;
  },
};

export default command;
