// train-deeplab --crf-rounds and segment end to end on a tiny synthetic set (64² input, 1 epoch of 2
// steps per round, random backbone): every round trained and scored, the CRF labels of round 0 are
// round 1's training labels, segment writes label maps at the original size (± CRF), and eval-semseg
// on those gives the number the rounds table reports.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { encode as encodePng } from "fast-png";
import trainDeeplab from "../src/cli/commands/trainDeeplab.js";
import segment from "../src/cli/commands/segment.js";
import evalSemseg from "../src/cli/commands/evalSemseg.js";
import { readLabelPng, writeLabelPng } from "../src/data/png.js";
import { runCommand, lastJson } from "./helpers.js";

function writeDisc(dir: string, stem: string, w: number, h: number, cls: number, seed: number): void {
  const rgb = new Uint8Array(w * h * 3), label = new Uint8Array(w * h);
  const cx = (w * (0.3 + 0.4 * ((seed * 37) % 10) / 10)) | 0, cy = (h / 2) | 0, r = Math.min(w, h) / 3;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r;
    rgb.set(inside ? [220, 50 + 20 * cls, 40] : [30 + 10 * seed, 70, 190], (y * w + x) * 3);
    label[y * w + x] = inside ? cls : 0;
  }
  fs.writeFileSync(path.join(dir, "images", `${stem}.png`), encodePng({ width: w, height: h, data: rgb, channels: 3, depth: 8 }));
  writeLabelPng(path.join(dir, "labels", `${stem}.png`), { width: w, height: h, data: label });
}

test("train-deeplab --crf-rounds 1, segment (± CRF) and eval-semseg agree", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "deeplab-cli-"));
  try {
    for (const sub of ["images", "labels"]) fs.mkdirSync(path.join(dir, sub));
    const sizes: [number, number][] = [[70, 60], [64, 80], [90, 64], [66, 66], [75, 61], [64, 72]];
    sizes.forEach(([w, h], i) => writeDisc(dir, `im${i}`, w, h, 1 + (i % 2) * 14, i));
    fs.writeFileSync(path.join(dir, "train.txt"), "im0\nim1\nim2\nim3\n");
    fs.writeFileSync(path.join(dir, "val.txt"), "im4\nim5\n");
    const out = path.join(dir, "out");
    const common = ["--images", path.join(dir, "images"), "--labels", path.join(dir, "labels"), "--list", path.join(dir, "train.txt")];
    const r = await runCommand(trainDeeplab, [...common, "--val-labels", path.join(dir, "labels"), "--val-list", path.join(dir, "val.txt"),
      "--out", out, "--recipe", "cpu", "--size", "64", "--epochs", "1", "--init", "none", "--crf-rounds", "1", "--json"]);
    assert.equal(r.code, 0, r.stderr.join("\n"));
    const res = lastJson(r.stdout);
    assert.equal(res.complete, true);
    assert.equal(res.rounds.length, 2);
    for (const round of res.rounds) {
      assert.equal(round.steps, 2);
      assert.ok(round.valMiou >= 0 && round.valMiou <= 1 && round.valMiouCrf >= 0 && round.valMiouCrf <= 1, JSON.stringify(round));
    }
    assert.match(res.rounds[1].labels, /round 0 \+ CRF/);
    assert.ok(res.rounds[0].labelsChanged >= 0 && res.rounds[0].labelsChanged <= 1);
    assert.ok(r.stdout.some((l) => /^round\s+trained on/.test(l)), "the printed table");
    const summary = JSON.parse(fs.readFileSync(path.join(out, "rounds.json"), "utf8"));
    assert.equal(summary.rounds.length, 2);
    // round 1 trained on round 0's CRF labels, one per training image, at the image's size
    for (const [i, [w, h]] of sizes.slice(0, 4).entries()) {
      const l = readLabelPng(path.join(out, "round0", "train_crf", `im${i}.png`));
      assert.deepEqual([l.width, l.height], [w, h]);
    }

    // segment with the last round's model: PNGs at the original size, then eval-semseg = the table's number
    const weights = path.join(out, "round1", "model.safetensors");
    for (const crf of [false, true]) {
      const pred = path.join(dir, crf ? "pred-crf" : "pred");
      const s = await runCommand(segment, ["--weights", weights, "--images", path.join(dir, "images"), "--list", path.join(dir, "val.txt"),
        "--out-dir", pred, "--size", "64", "--json", ...(crf ? ["--crf"] : [])]);
      assert.equal(s.code, 0, s.stderr.join("\n"));
      assert.equal(lastJson(s.stdout).done, 2);
      for (const [i, [w, h]] of sizes.slice(4).entries()) {
        const l = readLabelPng(path.join(pred, `im${i + 4}.png`));
        assert.deepEqual([l.width, l.height], [w, h]);
        // identical to what the rounds wrote for the same model and setting
        assert.deepEqual(l.data, readLabelPng(path.join(out, "round1", crf ? "val_crf" : "val", `im${i + 4}.png`)).data);
      }
      const gt = path.join(dir, "gt");
      fs.mkdirSync(gt, { recursive: true });
      for (const k of [4, 5]) fs.copyFileSync(path.join(dir, "labels", `im${k}.png`), path.join(gt, `im${k}.png`));
      const e = await runCommand(evalSemseg, ["--pred-dir", pred, "--gt-dir", gt, "--json"]);
      assert.equal(e.code, 0);
      assert.ok(Math.abs(lastJson(e.stdout).miou - (crf ? res.rounds[1].valMiouCrf : res.rounds[1].valMiou)) < 1e-12);
    }
    // a bad weights file is refused with its name
    fs.writeFileSync(path.join(dir, "bad.safetensors"), "not a checkpoint");
    await assert.rejects(runCommand(segment, ["--weights", path.join(dir, "bad.safetensors"), "--images", path.join(dir, "images"), "--out-dir", path.join(dir, "x")]),
      (e: Error) => e.message.includes("bad.safetensors"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("train-deeplab --recipe shapes: a pretrained backbone trains from layer3, --aspp-rates and --train-from are saved, kept on resume, checked", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "deeplab-cli-shapes-"));
  try {
    for (const sub of ["images", "labels"]) fs.mkdirSync(path.join(dir, sub));
    for (let i = 0; i < 4; i++) writeDisc(dir, `im${i}`, 64, 64, 1 + (i % 2), i);
    const common = ["--images", path.join(dir, "images"), "--labels", path.join(dir, "labels"), "--recipe", "shapes", "--size", "64", "--batch", "2", "--epochs", "1", "--threads", "1"];
    const { checkpointInfo, CHECKPOINT_FILE, MODEL_FILE } = await import("../src/segmentation/train.js");
    const { readDeepLabStateDict } = await import("../src/segmentation/model.js");
    const { projectPath } = await import("../src/paths.js");
    // the world's ResNet-50 as --init: conv1..layer2 frozen (shapesRecipe(init)), the recipe's rates 2/4/6
    const pre = path.join(dir, "pretrained");
    const r = await runCommand(trainDeeplab, [...common, "--init", projectPath("data", "backbones", "shapes_resnet50.safetensors"), "--out", pre, "--max-steps", "1"]);
    assert.equal(r.code, 0, r.stderr.join("\n"));
    const c = (await checkpointInfo(path.join(pre, CHECKPOINT_FILE)))!.config;
    assert.deepEqual([c.trainableFrom, c.asppRates], ["layer3", [2, 4, 6]]);
    // other rates and front on the command line; resuming with others is refused, with the same ones it finishes
    const own = path.join(dir, "own");
    const flags = ["--init", "none", "--aspp-rates", "1,2,3", "--train-from", "layer2", "--out", own];
    assert.equal((await runCommand(trainDeeplab, [...common, ...flags, "--max-steps", "1"])).code, 0);
    await assert.rejects(runCommand(trainDeeplab, [...common, ...flags.slice(0, 2), "--aspp-rates", "2,4,6", "--out", own, "--resume"]), /aspp-rates 1,2,3/);
    await assert.rejects(runCommand(trainDeeplab, [...common, ...flags.slice(0, 2), "--train-from", "stem", "--out", own, "--resume"]), /trains from layer2/);
    assert.equal((await runCommand(trainDeeplab, [...common, ...flags, "--resume"])).code, 0);
    const saved = await readDeepLabStateDict(path.join(own, MODEL_FILE));
    assert.deepEqual(saved.asppRates, [1, 2, 3]);
    assert.equal((await checkpointInfo(path.join(own, CHECKPOINT_FILE)))!.config.trainableFrom, "layer2");
    // bad values name the flag
    await assert.rejects(runCommand(trainDeeplab, [...common, "--init", "none", "--aspp-rates", "2,4", "--out", path.join(dir, "x")]), /--aspp-rates expects three rates/);
    await assert.rejects(runCommand(trainDeeplab, [...common, "--init", "none", "--aspp-rates", "2,0,4", "--out", path.join(dir, "x")]), /--aspp-rates expects an integer ≥ 1/);
    await assert.rejects(runCommand(trainDeeplab, [...common, "--init", "none", "--train-from", "layer9", "--out", path.join(dir, "x")]), /--train-from expects stem, layer1/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
