// Hungarian matching vs brute force, mIoU arithmetic by hand, and eval-semseg on real VOC GT.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { maximumAssignment, majorityAssignment } from "../src/evaluation/hungarian.js";
import { accumulate, newConfusion, matchPredictions, scoreConfusion, evaluateSemsegDirs } from "../src/evaluation/semseg.js";
import { readVocSegmentationClass } from "../src/data/voc.js";
import { writeLabelPng } from "../src/data/png.js";
import { projectPath } from "../src/paths.js";
import evalSemseg from "../src/cli/commands/evalSemseg.js";
import { runCommand, lastJson } from "./helpers.js";
import { mulberry32 as rng } from "../src/random.js";


/** Best total over all injective maps of the smaller side into the larger, by enumeration. */
function bruteForce(score: number[], n: number, m: number): number {
  let best = -Infinity;
  const rows = Math.min(n, m), cols = Math.max(n, m);
  const at = (r: number, c: number) => (n <= m ? score[r * m + c] : score[c * m + r]);
  const used = new Array(cols).fill(false);
  const rec = (r: number, acc: number) => {
    if (r === rows) { best = Math.max(best, acc); return; }
    for (let c = 0; c < cols; c++) if (!used[c]) { used[c] = true; rec(r + 1, acc + at(r, c)); used[c] = false; }
  };
  rec(0, 0);
  return best;
}

test("Hungarian equals brute force on random square and rectangular cases", () => {
  const r = rng(7);
  for (let t = 0; t < 60; t++) {
    const n = 1 + Math.floor(r() * 6), m = 1 + Math.floor(r() * 6);
    const score = Array.from({ length: n * m }, () => Math.floor(r() * 20));
    const a = maximumAssignment(score, n, m);
    const cols = [...a].filter((c) => c >= 0);
    assert.equal(new Set(cols).size, cols.length, "columns distinct");
    assert.equal(cols.length, Math.min(n, m));
    const total = [...a].reduce((s, c, i) => s + (c >= 0 ? score[i * m + c] : 0), 0);
    assert.equal(total, bruteForce(score, n, m), `case ${t} (${n}×${m})`);
  }
  assert.deepEqual([...majorityAssignment([1, 5, 5, 9, 0, 0], 2, 3)], [1, 0]);
});

test("confusion → IoU by hand; empty classes count 0 in mIoU and null per class", () => {
  const conf = newConfusion(3, 3);
  // gt:   0 0 1 1 255 1 ; pred: 0 1 1 1 0 0
  accumulate(conf, Uint8Array.from([0, 1, 1, 1, 0, 0]), Uint8Array.from([0, 0, 1, 1, 255, 1]));
  const s = scoreConfusion(conf, matchPredictions(conf, "none"));
  // class 0: tp 1, fp 1 (pixel 5), fn 1 (pixel 1) → 1/3 ; class 1: tp 2, fp 1, fn 1 → 2/4 ; class 2: empty
  assert.deepEqual(s.per_class, [1 / 3, 0.5, null]);
  assert.equal(s.miou, (1 / 3 + 0.5 + 0) / 3);
  assert.equal(s.miou_present, (1 / 3 + 0.5) / 2);
  assert.equal(s.pixel_acc, 3 / 5);
});

test("eval-semseg: GT vs itself is perfect; permuted ids are recovered by Hungarian; errors name files", async () => {
  const voc = projectPath("data", "voc-mini", "SegmentationClass");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "md-sem-"));
  const gtDir = path.join(dir, "gt"), same = path.join(dir, "same"), perm = path.join(dir, "perm");
  for (const d of [gtDir, same, perm]) fs.mkdirSync(d);
  const permute = (v: number) => (v === 255 ? 0 : v === 0 ? 0 : 1 + ((v * 7) % 20)); // a bijection on 1..20, bg pinned
  for (const f of fs.readdirSync(voc)) {
    const m = readVocSegmentationClass(path.join(voc, f));
    writeLabelPng(path.join(gtDir, f), m);
    writeLabelPng(path.join(same, f), { ...m, data: m.data.map((v) => (v === 255 ? 0 : v)) });
    writeLabelPng(path.join(perm, f), { ...m, data: m.data.map(permute) });
  }
  const a = evaluateSemsegDirs(same, gtDir);
  assert.equal(a.images, 4);
  assert.equal(a.pixel_acc, 1);
  assert.deepEqual(a.per_class.map((v) => v === null ? null : v), [1, null, null, null, null, 1, 1, 1, null, 1, null, null, 1, null, null, 1, null, null, null, null, 1]);
  assert.equal(a.miou, 8 / 21);
  const b = evaluateSemsegDirs(perm, gtDir, { match: "hungarian", pinBackground: true });
  assert.equal(b.pixel_acc, 1);
  assert.equal(b.miou_present, 1);
  const none = evaluateSemsegDirs(perm, gtDir, { match: "none" });
  assert.ok(none.miou_present < 0.2);

  // CLI --json: last line is the JSON object
  const run = await runCommand(evalSemseg, ["--pred-dir", perm, "--gt-dir", gtDir, "--match", "hungarian", "--pin-background", "--json"]);
  assert.equal(run.code, 0);
  assert.match(run.stdout[0], /mIoU/);
  const last = lastJson(run.stdout);
  assert.equal(last.pixel_acc, 1);
  assert.equal(last.images, 4);
  assert.equal(last.per_class.length, 21);

  // a prediction of another size, and a missing prediction
  const small = path.join(dir, "small");
  fs.mkdirSync(small);
  for (const f of fs.readdirSync(voc)) writeLabelPng(path.join(small, f), { width: 3, height: 2, data: new Uint8Array(6) });
  assert.throws(() => evaluateSemsegDirs(small, gtDir), (e: Error) => e.message.includes(path.join(small, "2007_000039.png")) && /3×2/.test(e.message));
  fs.rmSync(path.join(same, "2011_000025.png"));
  assert.throws(() => evaluateSemsegDirs(same, gtDir), /no prediction PNG \(e\.g\. 2011_000025\.png\)/);

  // --list: only the listed images are scored (a GT folder holding more images than were predicted)
  const stems = fs.readdirSync(same).map((f) => path.parse(f).name);
  assert.equal(stems.length, 3);
  const listed = evaluateSemsegDirs(same, gtDir, { stems });
  assert.deepEqual([listed.images, listed.pixel_acc], [3, 1]);
  assert.throws(() => evaluateSemsegDirs(same, gtDir, { stems: [...stems, "2099_000001"] }), (e: Error) => e.message.includes(gtDir) && /1 listed image\(s\) have no GT PNG \(e\.g\. 2099_000001\.png\)/.test(e.message));
  const listFile = path.join(dir, "val.txt");
  fs.writeFileSync(listFile, stems.join("\n") + "\n");
  // --confusion: one row per GT class, the share of its pixels per predicted class (here all on the diagonal)
  const table = await runCommand(evalSemseg, ["--pred-dir", same, "--gt-dir", gtDir, "--list", listFile, "--confusion"]);
  assert.equal(table.code, 0);
  const all = table.stdout.join("\n").split("\n");
  const lines = all.slice(all.findIndex((l) => l.includes("where each GT class's pixels go")));
  assert.match(all[0], /^eval-semseg: 3 images, 21 classes/);
  const person = lines.find((l) => l.startsWith("  person"))!.trim().split(/\s+/).slice(1);
  assert.deepEqual([person.length, person[15], person[0]], [21, "100.0", "0.0"]);
  assert.equal(lines.find((l) => l.startsWith("  cow"))!.trim().split(/\s+/)[1], "—"); // no cow in these images
  await assert.rejects(runCommand(evalSemseg, ["--pred-dir", same, "--gt-dir", gtDir, "--class-names", "a,b"]), /--class-names lists 2 name\(s\) but --num-classes is 21/);
});
