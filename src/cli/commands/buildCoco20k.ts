// `maskdistill build-coco20k`: the COCO20k GT files (class-aware and class-agnostic) from
// instances_train2014.json, as the reference's get_coco20k (METHOD.md §1.3).
import type { Command } from "../command.js";
import { parseFlags, printJson, requireFlags } from "../command.js";

const usage = `usage: maskdistill build-coco20k --instances instances_train2014.json --output-dir DIR
                               [--file-list data/splits/coco/coco20k_files.txt] [--json]

COCO20k ground truth (the 19,817 train2014 images of the object-discovery benchmark): writes
DIR/coco20k_instances.json (all annotations of the listed images, all categories) and
DIR/coco20k_instances_agnostic.json (the same with every category_id 0, one category 'object').

  --instances FILE     COCO instances JSON holding the listed images (instances_train2014.json)
  --file-list FILE     one file name a line; image id = the integer after the last '_'
                       (default: the reference's data/splits/coco/coco20k_files.txt)
  --output-dir DIR     where the two files go
  --json               last stdout line: the summary as JSON (missing ids listed)`;

const command: Command = {
  name: "build-coco20k",
  summary: "COCO20k GT (class-aware + class-agnostic) from instances_train2014.json and the reference list",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values } = parseFlags("build-coco20k", argv, {
      instances: { type: "string" },
      "file-list": { type: "string" },
      "output-dir": { type: "string" },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("build-coco20k", values, ["instances", "output-dir"]);
    const instancesFile = values.instances;
    const outputDir = values["output-dir"];
    const { COCO20K_LIST, buildCoco20k, readCoco20kList, writeCoco20k } = await import("../../data/coco20k.js");
    const { readCocoDataset } = await import("../../data/coco.js");

    const listFile = values["file-list"] ?? COCO20K_LIST();
    const list = readCoco20kList(listFile);
    const t0 = Date.now();
    const instances = readCocoDataset(instancesFile);
    const gt = buildCoco20k(instances, list.ids);
    const files = writeCoco20k(outputDir, gt);
    const seconds = (Date.now() - t0) / 1000;

    const images = gt.classAware.images.length, annotations = gt.classAware.annotations.length;
    const crowd = gt.classAware.annotations.filter((a) => a.iscrowd).length;
    console.log(`${listFile}: ${list.ids.length} distinct image ids${list.duplicates.length ? ` (${list.duplicates.length} repeated entries kept once)` : ""}`);
    console.log(`${instancesFile}: ${instances.images.length} images, ${instances.annotations.length} annotations, ${instances.categories.length} categories`);
    console.log(`wrote ${files.classAware} and ${files.agnostic}: ${images} images, ${annotations} annotations (${crowd} crowd) (${seconds.toFixed(1)} s)`);
    if (gt.missingIds.length > 0) {
      const shown = gt.missingIds.slice(0, 20).join(", ");
      console.log(`${gt.missingIds.length} listed image id(s) are not in ${instancesFile} (skipped): ${shown}${gt.missingIds.length > 20 ? ", …" : ""}`);
    }
    if (values.json) {
      printJson({
        file_list: listFile, listed: list.ids.length, duplicates: list.duplicates,
        images, annotations, crowd, categories: gt.classAware.categories.length,
        missing_ids: gt.missingIds, class_aware_file: files.classAware, agnostic_file: files.agnostic, seconds,
      });
    }
    return 0;
  },
};

export default command;
