// segment shards like every per-image stage (issue 20; test/shard-merge.test.ts's crf test): 2 shards
// into one --out-dir + --merge are the bytes of one run (segment.json, its errors file, the PNGs), a shard
// from --shard auto with a SLURM array task's environment, and an interrupted shard rerun resumes. A
// seeded (untrained) DeepLab-v3 checkpoint and 5 tiny images (+ one unreadable) at --size 32; the single
// run and the interrupted shard use the in-memory model (building a ResNet-50 is most of a CLI run).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { encode as encodePng } from "fast-png";
import segment from "../src/cli/commands/segment.js";
import { initEngine } from "../src/engine/index.js";
import { makeDeepLabV3 } from "../src/engine/models/deeplab.js";
import { seededRng } from "../src/engine/models/params.js";
import { writeSafetensors } from "../src/modeling/checkpoint/index.js";
import type { DeepLabV3 } from "../src/engine/models/deeplab.js";
import { segmentationItems } from "../src/segmentation/data.js";
import { deepLabStateDict } from "../src/segmentation/model.js";
import { segmentFolder } from "../src/segmentation/segmentFolder.js";
import { entriesPath, shardOutputPath } from "../src/runner/perImage.js";
import { runCommand, lastJson, withEnv } from "./helpers.js";

let tmp = "", images = "", weights = "";
let model: DeepLabV3;
const bytes = (f: string) => fs.readFileSync(f);
const same = (a: string, b: string) => assert.ok(bytes(a).equals(bytes(b)), `${b} differs from ${a}`);

async function ok(argv: string[]): Promise<any> {
  const r = await runCommand(segment, [...argv, "--json", "--threads", "1"]);
  assert.equal(r.code, 0, r.stderr.join("\n"));
  return lastJson(r.stdout);
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "segment-shard-"));
  images = path.join(tmp, "images");
  fs.mkdirSync(images);
  const sizes: [number, number][] = [[40, 33], [36, 44], [48, 32], [33, 33], [45, 38]];
  sizes.forEach(([w, h], i) => {
    const rgb = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.set([(x * 7 + i * 40) & 255, (y * 5) & 255, ((x + y) * 3 + 90 * i) & 255], (y * w + x) * 3);
    fs.writeFileSync(path.join(images, `im${i}.png`), encodePng({ width: w, height: h, data: rgb, channels: 3, depth: 8 }));
  });
  fs.writeFileSync(path.join(images, "broken.png"), "not a png");
  await initEngine({ backend: "wasm", threads: 1 });
  weights = path.join(tmp, "model.safetensors");
  model = makeDeepLabV3(seededRng(3), { numClasses: 3 });
  writeSafetensors(weights, await deepLabStateDict(model));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test("segment with workers 2: images predicted side by side in a helper thread, plain and with the CRF — the same PNGs, segment.json and errors file", async () => {
  const items = segmentationItems({ images }, "images");
  for (const crf of [false, true]) {
    const lib = { model, items, size: 32, quiet: true, weightsId: path.resolve(weights), crf };
    const a = path.join(tmp, `workers1-${crf}`), b = path.join(tmp, `workers2-${crf}`);
    await segmentFolder({ ...lib, outDir: a });
    const s = await segmentFolder({ ...lib, outDir: b, workers: 2 });
    assert.deepEqual([s.images, s.done, s.errors], [6, 5, 1]);
    assert.deepEqual(fs.readdirSync(b).sort(), fs.readdirSync(a).sort());
    for (const f of fs.readdirSync(a)) same(path.join(a, f), path.join(b, f));
  }
});

test("segment: 2 shards into one --out-dir (one via --shard auto, interrupted and resumed) + --merge = one run (segment.json, errors file, PNGs)", async () => {
  const args = (out: string) => ["--weights", weights, "--images", images, "--out-dir", out, "--size", "32"];
  const one = path.join(tmp, "one"), sharded = path.join(tmp, "sharded");
  const items = segmentationItems({ images }, "images");
  const lib = { model, items, size: 32, quiet: true, weightsId: path.resolve(weights) };
  const single = await segmentFolder({ ...lib, outDir: one });
  assert.deepEqual([single.images, single.done, single.errors], [6, 5, 1]);

  const s0 = await ok([...args(sharded), "--shard", "0/2"]);
  assert.equal(s0.summary_file, shardOutputPath(path.join(sharded, "segment.json"), { index: 0, count: 2 }));
  // shard 1 stopped after its first image, then resumed as a SLURM array task (--shard auto)
  const stop = new AbortController();
  await assert.rejects(segmentFolder({ ...lib, outDir: sharded, shard: { index: 1, count: 2 }, signal: stop.signal, onImage: () => stop.abort() }),
    /interrupted after 1 of 3 images/);
  const s1 = await withEnv({ SLURM_ARRAY_TASK_ID: "1", SLURM_ARRAY_TASK_COUNT: "2" }, () => ok([...args(sharded), "--shard", "auto", "--resume"]));
  assert.equal(s1.summary_file, path.join(sharded, "segment.shard-1-of-2.json"));
  assert.equal(s1.resumed, 1);
  for (const s of [s0, s1]) assert.ok(fs.existsSync(entriesPath(s.summary_file)), "a finished shard keeps its entries for the merge");
  assert.equal(s0.images + s1.images, 6);

  await assert.rejects(runCommand(segment, [...args(sharded), "--merge", "--crf"]), /shard 0 of 2 was run with other settings than this merge/);
  await assert.rejects(runCommand(segment, [...args(sharded), "--merge", "--shard", "0/2"]), /--merge joins the finished shards/);
  const merged = await ok([...args(sharded), "--merge"]);
  assert.deepEqual([merged.images, merged.done, merged.errors], [6, 5, 1]);
  same(path.join(one, "segment.json"), path.join(sharded, "segment.json"));
  same(path.join(one, "segment.json.errors.jsonl"), path.join(sharded, "segment.json.errors.jsonl"));
  const pngs = (d: string) => fs.readdirSync(d).filter((f) => f.endsWith(".png")).sort();
  assert.deepEqual(pngs(sharded), pngs(one));
  assert.equal(pngs(one).length, 5);
  for (const f of pngs(one)) same(path.join(one, f), path.join(sharded, f));
  const help = await runCommand(segment, ["--help"]);
  assert.ok(help.stdout.join("\n").includes("--merge"), "deploy/slurm/pipeline.sh runs segment as an array when --help lists --merge");
});
