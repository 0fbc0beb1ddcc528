// `maskdistill crf` on a folder made from the pydensecrf fixtures: outputs equal the reference's labels,
// Q is written as float32 [C, H, W], and bad files are recorded without ending the run.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import crf from "../src/cli/commands/crf.js";
import { readNpy, writeNpy } from "../src/data/npy.js";
import { readLabelPng } from "../src/data/png.js";
import { projectPath } from "../src/paths.js";
import { runCommand, lastJson } from "./helpers.js";

const DIR = projectPath("test", "fixtures", "densecrf");
const IDS = ["000000370162", "000000415748"];

test("crf command: labels and Q of the fixture images, errors recorded per file", async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "md-crf-"));
  const images = path.join(tmp, "images"), logits = path.join(tmp, "logits"), out = path.join(tmp, "out");
  fs.mkdirSync(images);
  fs.mkdirSync(logits);
  for (const id of IDS) {
    fs.copyFileSync(path.join(DIR, `${id}.png`), path.join(images, `${id}.png`));
    fs.copyFileSync(path.join(DIR, `${id}.logits.npy`), path.join(logits, `${id}.logits.npy`));
  }
  // a truncated .npy, and logits whose image is missing
  fs.writeFileSync(path.join(logits, "a_broken.logits.npy"), fs.readFileSync(path.join(DIR, `${IDS[0]}.logits.npy`)).subarray(0, 300));
  writeNpy(path.join(logits, "b_noimage.logits.npy"), new Float32Array(2 * 3 * 4), [2, 3, 4]);
  // float64 logits: a clear error naming the file
  const f8 = Buffer.from(fs.readFileSync(path.join(logits, "b_noimage.logits.npy")));
  f8.write("<f8", f8.indexOf("<f4"), "latin1");
  fs.writeFileSync(path.join(logits, "c_float64.logits.npy"), f8);

  const r = await runCommand(crf, ["--images", images, "--logits", logits, "--out-dir", out, "--save-q", "--json"]);
  assert.equal(r.code, 0);
  const s = lastJson(r.stdout);
  assert.equal(s.images, 5);
  assert.equal(s.done, 2);
  assert.equal(s.errors, 3);
  assert.equal(s.iterations, 10);
  const errors = fs.readFileSync(path.join(out, "crf.json.errors.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(errors.map((e) => path.basename(e.file)), ["a_broken.logits.npy", "b_noimage.logits.npy", "c_float64.logits.npy"]);
  assert.match(errors[0].reason, /\.npy data have \d+ bytes, expected/);
  assert.match(errors[1].reason, /no image b_noimage\.png or b_noimage\.jpg/);
  assert.match(errors[2].reason, /unsupported \.npy dtype '<f8'/);

  const summary = JSON.parse(fs.readFileSync(path.join(out, "crf.json"), "utf8"));
  const manifest = JSON.parse(fs.readFileSync(path.join(DIR, "manifest.json"), "utf8"));
  for (const id of IDS) {
    const got = readLabelPng(path.join(out, `${id}.png`));
    const want = readLabelPng(path.join(DIR, `${id}.labels.png`));
    assert.deepEqual([got.width, got.height], [want.width, want.height]);
    let same = 0;
    for (let i = 0; i < want.data.length; i++) if (got.data[i] === want.data[i]) same++;
    assert.ok(same / want.data.length >= 0.995, `${id}: labels agree on ${same} of ${want.data.length}`);
    const q = readNpy(path.join(out, `${id}.q.npy`));
    assert.equal(q.dtype, "float32");
    assert.deepEqual(q.shape, [21, want.height, want.width]);
    const ref = readNpy(path.join(DIR, `${id}.q.npy`)).data;
    let mx = 0;
    for (let i = 0; i < ref.length; i++) mx = Math.max(mx, Math.abs(q.data[i] - ref[i]));
    assert.ok(mx <= 2 ** -12 + 2e-5, `${id}: max |ΔQ| ${mx}`);
    // the per-image record: the CRF changed as many labels as pydensecrf's did
    const rec = summary.images.find((e: { stem: string }) => e.stem === id);
    const m = manifest.images.find((e: { id: string }) => e.id === id);
    assert.equal(rec.changed_px, m.crf_vs_softmax_argmax_changed_px);
    assert.deepEqual(rec.labels_present, m.labels_present);
  }
  assert.ok(!fs.existsSync(path.join(out, "crf.json.partial.jsonl")), "journal removed after the run");
  fs.rmSync(tmp, { recursive: true });
});

test("crf command: flag errors", async () => {
  await assert.rejects(runCommand(crf, ["--images", "x"]), /--logits and --out-dir are required\. Run 'maskdistill crf --help'/);
  await assert.rejects(runCommand(crf, ["--images", "x", "--logits", "y", "--out-dir", "z", "--iterations", "2.5"]), /--iterations expects a non-negative integer/);
  await assert.rejects(runCommand(crf, ["--images", DIR, "--logits", "/nonexistent", "--out-dir", os.tmpdir()]), /nonexistent: logits folder not found/);
});
