// `maskdistill results-table`: the paper's semantic results (clustering and LC mIoU ± CRF on VOC12 val)
// next to ours, from the summaries our runs wrote.
import * as fs from "node:fs";
import * as path from "node:path";
import type { Command } from "../command.js";
import { parseFlags, printJson, requireFlags } from "../command.js";

const usage = `usage: maskdistill results-table --out FILE.md [--clustering FILE]... [--linear FILE]... [--json]

One table of the paper's semantic results (PASCAL VOC 2012 val mIoU: clustering 45.8 / + CRF 48.9,
README 48.46; LC 58.7 / + CRF 62.8, README 62.77) with our numbers from the summaries that exist,
each row naming the command and data that produced it; rows without a summary say "not run".

  --out FILE.md        the Markdown table; FILE.json beside it holds the same rows
  --clustering FILE    a stage-v summary: train-deeplab's rounds.json (one row pair per CRF round) or
                       any JSON with miou / miou_crf in [0, 1] (e.g. eval-semseg --json); repeatable
  --linear FILE        a linear-probe summary.json (LC ± CRF); repeatable
  --json               last stdout line: {rows, notes, markdown, json}`;

const command: Command = {
  name: "results-table",
  summary: "the paper's semantic results table (clustering and LC mIoU ± CRF) from our runs' summaries",
  usage,
  async run(argv) {
    const { values } = parseFlags("results-table", argv, {
      out: { type: "string" },
      clustering: { type: "string", multiple: true },
      linear: { type: "string", multiple: true },
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("results-table", values, ["out"]);
    const { semanticTable, semanticTableMarkdown } = await import("../../evaluation/resultsTable.js");
    const table = semanticTable({ clustering: values.clustering ?? [], linear: values.linear ?? [] });
    const markdown = semanticTableMarkdown(table);
    const jsonFile = values.out.replace(/\.md$/i, "") + ".json";
    fs.mkdirSync(path.dirname(path.resolve(values.out)), { recursive: true });
    fs.writeFileSync(values.out, markdown);
    fs.writeFileSync(jsonFile, JSON.stringify(table, null, 1) + "\n");
    console.log(markdown);
    console.log(`results-table: ${values.out}, ${jsonFile}`);
    if (values.json) printJson({ ...table, markdown: values.out, json: jsonFile });
    return 0;
  },
};
export default command;
