// results-table (src/evaluation/resultsTable.ts + the command) on small synthetic summaries: rounds.json
// rows per round, a linear-probe summary, "not run" for what is missing, bad inputs named.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { semanticTable, semanticTableMarkdown, PAPER_SEMANTIC } from "../src/evaluation/resultsTable.js";
import command from "../src/cli/commands/resultsTable.js";
import { MaskdistillError } from "../src/errors.js";

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "results-table-"));
}

test("rows per CRF round and for the linear probe, next to the paper's numbers; missing summaries say 'not run'", async () => {
  const dir = tmp();
  const rounds = path.join(dir, "rounds.json"), probe = path.join(dir, "summary.json");
  fs.writeFileSync(rounds, JSON.stringify({ config: { epochs: 45, batchSize: 16 }, rounds: [
    { round: 0, valMiou: 0.41, valMiouCrf: 0.44 }, { round: 1, valMiou: 0.455, valMiouCrf: null },
  ] }));
  fs.writeFileSync(probe, JSON.stringify({ kind: "linear-probe", command: "npx maskdistill linear-probe --weights w", data: "demo", recipe: { name: "cpu" }, miou: 0.5, miou_crf: 0.52 }));
  const t = semanticTable({ clustering: [rounds], linear: [probe] });
  assert.deepEqual(t.rows.map((r) => [r.metric, r.ours === null ? null : Number(r.ours.toFixed(6)), r.paper, r.readme]), [
    ["clustering", 41, 45.8, null], ["clusteringCrf", 44, 48.9, 48.46],
    ["clustering", 45.5, 45.8, null], ["clusteringCrf", null, 48.9, 48.46],
    ["linear", 50, 58.7, null], ["linearCrf", 52, 62.8, 62.77],
  ]);
  assert.equal(t.rows[2].setting, "Clustering (stage-v DeepLab, argmax), round 1");
  assert.match(t.rows[0].command!, /train-deeplab \(see .*rounds\.json\)/);
  assert.equal(t.rows[0].data, 'epochs 45, batchSize 16');
  const md = semanticTableMarkdown(t);
  assert.match(md, /\| LC \+ CRF \(recipe cpu\) \| 52\.00 \| 62\.80 \| 62\.77 \| `npx maskdistill linear-probe --weights w` \| demo \|/);
  assert.match(md, /\| Clustering \+ CRF, round 1 \| not run \| 48\.90 \| 48\.46 \|/);

  // nothing run: four "not run" rows with the paper's numbers, and a note per missing file
  const none = semanticTable({ clustering: [path.join(dir, "absent.json")], linear: [] });
  assert.deepEqual(none.rows.map((r) => [r.metric, r.ours, r.paper]), [
    ["clustering", null, PAPER_SEMANTIC.clustering.paper], ["clusteringCrf", null, 48.9], ["linear", null, 58.7], ["linearCrf", null, 62.8],
  ]);
  assert.equal(none.notes.length, 1);

  // the command writes Markdown + JSON
  const out = path.join(dir, "out", "semantic.md");
  const log = console.log;
  console.log = () => {};
  try {
    assert.equal(await command.run(["--out", out, "--clustering", rounds, "--linear", probe]), 0);
  } finally {
    console.log = log;
  }
  assert.equal(fs.readFileSync(out, "utf8"), md);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, "out", "semantic.json"), "utf8")), JSON.parse(JSON.stringify(t)));
  fs.rmSync(dir, { recursive: true, force: true });
});

test("summaries that are not what the flag says are refused, naming the file", () => {
  const dir = tmp();
  const bad = path.join(dir, "bad.json"), pct = path.join(dir, "pct.json");
  fs.writeFileSync(bad, JSON.stringify({ hello: 1 }));
  fs.writeFileSync(pct, JSON.stringify({ miou: 45.8 }));
  assert.throws(() => semanticTable({ clustering: [bad], linear: [] }), (e: Error) => e instanceof MaskdistillError && e.message.includes("bad.json") && /rounds/.test(e.message));
  assert.throws(() => semanticTable({ clustering: [pct], linear: [] }), /in \[0, 1\]/);
  assert.throws(() => semanticTable({ clustering: [], linear: [bad] }), /not a linear-probe summary/);
  fs.rmSync(dir, { recursive: true, force: true });
});
