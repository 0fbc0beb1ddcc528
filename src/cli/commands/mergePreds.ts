// `maskdistill merge-preds`: joins the outputs of `gen-masks` / `detect` shards (`--shard i/n|auto`).
import type { Command } from "../command.js";
import { parseFlags, printJson, requireFlags } from "../command.js";

const usage = `usage: maskdistill merge-preds --out OUT.json [IN1.json IN2.json ...] [--json]

Joins the prediction JSONs of gen-masks or detect shards into the JSON a single run over all images
writes, byte for byte: images sorted by id, annotation ids 1, 2, ... in image order. The shards'
IN.errors.jsonl files are joined into OUT.errors.jsonl.

Without inputs, the shards of OUT are taken from beside it: OUT.shard-0-of-N.json ... OUT.shard-(N-1)-of-N.json,
what 'gen-masks --pred-json OUT' and 'detect --out OUT' write with --shard i/N or --shard auto; a missing
shard is an error that names it.

  --out OUT.json   merged output
  --json           last stdout line: {"images": n, "annotations": n, "errors": n, "inputs": [...]}`;

const command: Command = {
  name: "merge-preds",
  summary: "Join gen-masks / detect shard outputs into the predictions JSON of one run",
  usage,
  async run(argv: string[]): Promise<number> {
    const { values, positionals } = parseFlags("merge-preds", argv, { out: { type: "string" } }, true);
    if (values.help) {
      console.log(usage);
      return 0;
    }
    requireFlags("merge-preds", values, ["out"]);
    const { mergePreds, mergePredShards } = await import("../../runner/predictions.js");
    const r = positionals.length ? { ...mergePreds(values.out, positionals), inputs: positionals } : mergePredShards(values.out);
    console.log(`merge-preds: ${r.inputs.length} inputs -> ${values.out}: ${r.images} images, ${r.annotations} annotations, ${r.errors} errors`);
    if (values.json) printJson(r);
    return 0;
  },
};

export default command;
