// Scaling out (issue 20): for every sharded command, shards that share one output location and their
// merge give the bytes of a single run — gen-masks (+ merge-preds), cluster's embedding (--embed-only
// --shard, then cluster on the merged cache), crf and gen-segmentation (--merge) — and a rerun shard
// resumes. On 24 demo images with the bundled demo backbone (gen-masks, cluster), the densecrf fixtures
// (crf) and the gen-masks output (gen-segmentation). (detect: test/detect.test.ts.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import genMasksCommand from "../src/cli/commands/genMasks.js";
import mergePredsCommand from "../src/cli/commands/mergePreds.js";
import clusterCommand from "../src/cli/commands/cluster.js";
import crfCommand from "../src/cli/commands/crf.js";
import genSegmentationCommand from "../src/cli/commands/genSegmentation.js";
import { genMasks } from "../src/distill/genMasks.js";
import { cocoImages } from "../src/distill/imageList.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { genSegmentation } from "../src/pseudolabels/genSegmentation.js";
import { entriesPath, errorsPath, journalPath, shardOutputPath } from "../src/runner/perImage.js";
import { projectPath } from "../src/paths.js";
import { runCommand, lastJson, withEnv } from "./helpers.js";

const DEMO = projectPath("data", "demo");
const DEMO_VIT = projectPath("data", "backbones", "demo_vit.safetensors");
const CRF_DIR = projectPath("test", "fixtures", "densecrf");
let tmp = "", root = "", gtFile = "", masks = "";
const bytes = (f: string) => fs.readFileSync(f);
const same = (a: string, b: string) => assert.ok(bytes(a).equals(bytes(b)), `${b} differs from ${a}`);
const shardFile = (out: string, index: number, count: number) => shardOutputPath(out, { index, count });

async function ok(cmd: Parameters<typeof runCommand>[0], argv: string[]): Promise<any> {
  const r = await runCommand(cmd, [...argv, "--json"]);
  assert.equal(r.code, 0, r.stderr.join("\n"));
  return lastJson(r.stdout);
}

before(() => {
  // a COCO layout of the first 24 demo images plus one unreadable file (an errors-file entry to merge)
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "shard-merge-"));
  root = path.join(tmp, "coco");
  fs.mkdirSync(path.join(root, "images"), { recursive: true });
  const gt = JSON.parse(fs.readFileSync(path.join(DEMO, "instances.json"), "utf8"));
  const images = [...gt.images].sort((a: any, b: any) => a.id - b.id).slice(0, 24);
  for (const im of images) fs.copyFileSync(path.join(DEMO, "images", im.file_name), path.join(root, "images", im.file_name));
  const ids = new Set(images.map((im: any) => im.id));
  const sub = { ...gt, images, annotations: gt.annotations.filter((a: any) => ids.has(a.image_id)) };
  gtFile = path.join(tmp, "gt24.json");
  fs.writeFileSync(gtFile, JSON.stringify(sub));
  fs.writeFileSync(path.join(root, "images", "broken.jpg"), "not a jpeg");
  fs.writeFileSync(path.join(root, "instances.json"), JSON.stringify({ ...sub, images: [...images, { id: 999999999, file_name: "broken.jpg", width: 10, height: 10 }] }));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const GEN_MASKS = () => ["--dataset", "coco", "--dataset-root", root, "--weights", DEMO_VIT, "--resize", "96", "--device", "cpu"];

test("gen-masks: 3 shards into one --pred-json (one via --shard auto, one killed and resumed) + merge-preds = one run", async () => {
  masks = path.join(tmp, "masks.json");
  const single = await ok(genMasksCommand, [...GEN_MASKS(), "--pred-json", masks]);
  assert.deepEqual([single.images, single.errors, single.masks], [25, 1, 24]);

  const sharded = path.join(tmp, "sharded", "masks.json");
  await ok(genMasksCommand, [...GEN_MASKS(), "--pred-json", sharded, "--shard", "0/3"]);
  // shard 2 as task 2 of 'sbatch --array=0-2'
  const auto = await withEnv({ SLURM_ARRAY_TASK_ID: "2", SLURM_ARRAY_TASK_MIN: "0", SLURM_ARRAY_TASK_MAX: "2", SLURM_ARRAY_TASK_COUNT: "3" },
    () => ok(genMasksCommand, [...GEN_MASKS(), "--pred-json", sharded, "--shard", "auto"]));
  assert.equal(auto.predJson, shardFile(sharded, 2, 3));
  // shard 1 stops after 2 images (as a preempted task), its rerun with --resume takes them from the journal
  const backbone = await loadBackbone(DEMO_VIT, { device: "cpu" });
  const stop = new AbortController();
  let done = 0;
  await assert.rejects(genMasks({
    images: cocoImages(path.join(root, "instances.json"), path.join(root, "images")), predJson: sharded, backbone, resize: 96, quiet: true,
    shard: { index: 1, count: 3 }, configTag: { weights: DEMO_VIT, arch: null, patch: 16 }, signal: stop.signal, onImage: () => { if (++done === 2) stop.abort(); },
  }), /interrupted after 2 of 8 images; rerun with --resume/);
  await backbone.dispose();
  assert.ok(fs.existsSync(journalPath(shardFile(sharded, 1, 3))));
  // merging now names the unfinished shard
  const early = await runCommand(mergePredsCommand, ["--out", sharded]).catch((e: Error) => e);
  assert.match(String(early), /1 of 3 shards have not finished: shard 1 \(started: masks\.shard-1-of-3\.json\.partial\.jsonl; rerun it with --resume\)/);
  const resumed = await ok(genMasksCommand, [...GEN_MASKS(), "--pred-json", sharded, "--shard", "1/3", "--resume"]);
  assert.equal(resumed.resumed, 2);

  const merged = await ok(mergePredsCommand, ["--out", sharded]);
  assert.deepEqual([merged.images, merged.annotations, merged.errors], [24, 24, 1]);
  assert.deepEqual(merged.inputs, [0, 1, 2].map((i) => shardFile(sharded, i, 3)));
  same(masks, sharded);
  same(errorsPath(masks), errorsPath(sharded));
});

test("cluster: --embed-only --shard per shard (a rerun shard takes its cache), then cluster on the merged cache = one run", async () => {
  const base = (dir: string) => ["--input-file1", masks, "--dataset-root1", root, "--gt-file1", gtFile, "--dataset", "voc", "--weights", DEMO_VIT,
    "--patch-size", "16", "--device", "cpu", "--quiet", "--save-dir", path.join(dir, "cache")];
  const one = path.join(tmp, "cluster-one"), sharded = path.join(tmp, "cluster-sharded");
  const single = await ok(clusterCommand, [...base(one), "--output-file", path.join(one, "clusters.json")]);
  assert.deepEqual([single.masks.clustered, single.masks.embedded], [24, 24]);

  const counts: number[] = [];
  for (const i of [0, 1, 2]) {
    const s = await ok(clusterCommand, [...base(sharded), "--embed-only", "--shard", `${i}/3`]);
    assert.deepEqual(s.shard, { index: i, count: 3 });
    assert.equal(s.masks.fromCache, 0);
    counts.push(s.masks.embedded);
  }
  assert.deepEqual(counts, [8, 8, 8]);
  const rerun = await ok(clusterCommand, [...base(sharded), "--embed-only", "--shard", "1/3"]);
  assert.deepEqual([rerun.masks.embedded, rerun.masks.fromCache], [0, 8]);
  await assert.rejects(runCommand(clusterCommand, [...base(sharded), "--output-file", path.join(sharded, "x.json"), "--shard", "0/3"]), /--shard goes with --embed-only/);

  const merged = await ok(clusterCommand, [...base(sharded), "--output-file", path.join(sharded, "clusters.json")]);
  assert.deepEqual([merged.masks.embedded, merged.masks.fromCache], [0, 24]);
  assert.match(merged.notes.join("\n"), /took 24 embeddings from the shard caches/);
  same(path.join(one, "clusters.json"), path.join(sharded, "clusters.json"));
  same(path.join(one, "clusters.matched.json"), path.join(sharded, "clusters.matched.json"));
  // the shard caches are folded into the one cache, whose rows are the single run's
  const cacheFiles = (dir: string) => fs.readdirSync(path.join(dir, "cache")).filter((f) => f.startsWith("features")).sort();
  assert.equal(cacheFiles(sharded).filter((f) => f.includes(".shard-")).length, 0);
  const [oneData, shardedData] = [one, sharded].map((d) => path.join(d, "cache", cacheFiles(d).find((f) => f.endsWith(".f32"))!));
  same(oneData, shardedData);
});

test("crf: 2 shards into one --out-dir + --merge = one run (crf.json, errors file, PNGs)", async () => {
  const images = path.join(tmp, "crf-images"), logits = path.join(tmp, "crf-logits");
  fs.mkdirSync(images);
  fs.mkdirSync(logits);
  for (const id of ["000000000294", "000000000486", "000000000572"]) {
    fs.copyFileSync(path.join(CRF_DIR, `${id}.png`), path.join(images, `${id}.png`));
    fs.copyFileSync(path.join(CRF_DIR, `${id}.logits.npy`), path.join(logits, `${id}.logits.npy`));
  }
  fs.writeFileSync(path.join(logits, "a_broken.logits.npy"), "not npy");
  const args = (out: string) => ["--images", images, "--logits", logits, "--out-dir", out, "--iterations", "3"];
  const one = path.join(tmp, "crf-one"), sharded = path.join(tmp, "crf-sharded");
  const single = await ok(crfCommand, args(one));
  assert.deepEqual([single.images, single.done, single.errors], [4, 3, 1]);
  for (const i of [0, 1]) {
    const s = await ok(crfCommand, [...args(sharded), "--shard", `${i}/2`]);
    assert.equal(s.summary_file, path.join(sharded, `crf.shard-${i}-of-2.json`));
    assert.ok(fs.existsSync(entriesPath(s.summary_file)), "a finished shard keeps its entries for the merge");
  }
  await assert.rejects(runCommand(crfCommand, [...args(sharded), "--merge", "--iterations", "10"]), /shard 0 of 2 was run with other settings than this merge/);
  const merged = await ok(crfCommand, [...args(sharded), "--merge"]);
  assert.deepEqual([merged.images, merged.done, merged.errors], [4, 3, 1]);
  same(path.join(one, "crf.json"), path.join(sharded, "crf.json"));
  same(path.join(one, "crf.json.errors.jsonl"), path.join(sharded, "crf.json.errors.jsonl"));
  const pngs = (d: string) => fs.readdirSync(d).filter((f) => f.endsWith(".png")).sort();
  assert.deepEqual(pngs(sharded), pngs(one));
  for (const f of pngs(one)) same(path.join(one, f), path.join(sharded, f));
});

test("gen-segmentation: 3 shards into one --output-dir (a killed one resumed, a finished one rerun) + --merge = one run, mIoU included", async () => {
  const gtDir = path.join(tmp, "SegmentationClass");
  fs.mkdirSync(gtDir);
  const gt = JSON.parse(fs.readFileSync(gtFile, "utf8"));
  for (const im of gt.images) {
    const stem = path.parse(im.file_name).name;
    fs.copyFileSync(path.join(DEMO, "SegmentationClass", `${stem}.png`), path.join(gtDir, `${stem}.png`));
  }
  // summary.json names --output-dir: the single run goes to the same folder, moved away before the shards run
  const out = path.join(tmp, "pseudo");
  const args = ["--input-file", masks, "--gt-file", gtFile, "--output-dir", out, "--gt-dir", gtDir, "--threshold", "0.5"];
  const single = await ok(genSegmentationCommand, args);
  assert.equal(single.images, 24);
  assert.equal(single.semseg.images, 24);
  const one = `${out}.one`;
  fs.renameSync(out, one);

  await ok(genSegmentationCommand, [...args, "--shard", "0/3"]);
  const stop = new AbortController();
  await assert.rejects(genSegmentation({
    inputFile: masks, gtFile, outputDir: out, gtDir, threshold: 0.5, quiet: true, shard: { index: 1, count: 3 }, signal: stop.signal,
    onImage: (index) => { if (index === 2) stop.abort(); },
  }), /interrupted after 3 of 8 images/);
  const resumed = await ok(genSegmentationCommand, [...args, "--shard", "1/3", "--resume"]);
  assert.equal(resumed.resumed, 3);
  await ok(genSegmentationCommand, [...args, "--shard", "2/3"]);
  // a finished shard rerun with --resume computes nothing
  const again = await ok(genSegmentationCommand, [...args, "--shard", "2/3", "--resume"]);
  assert.equal(again.resumed, 8);
  assert.equal(again.semseg, null);

  const merged = await ok(genSegmentationCommand, [...args, "--merge"]);
  assert.equal(merged.images, 24);
  same(path.join(one, "summary.json"), path.join(out, "summary.json"));
  same(path.join(one, "summary.json.errors.jsonl"), path.join(out, "summary.json.errors.jsonl"));
  const pngs = (d: string) => fs.readdirSync(d).filter((f) => f.endsWith(".png")).sort();
  assert.deepEqual(pngs(out), pngs(one));
  for (const f of pngs(one)) same(path.join(one, f), path.join(out, f));
  await assert.rejects(runCommand(genSegmentationCommand, [...args, "--merge", "--shard", "0/3"]), /--merge joins the finished shards/);
});
