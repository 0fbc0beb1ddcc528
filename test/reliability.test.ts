// Issue 21 (reliability): bad input that used to be accepted silently, output-path faults, messages that
// named the wrong file, interruption and two runs on one output. Every bad input is built here.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { projectPath } from "../src/paths.js";
import { MaskdistillError } from "../src/errors.js";
import { readCheckpoint, readStateDict, writeSafetensors, type StateDict } from "../src/modeling/checkpoint/index.js";
import { loadBackbone, requireFinite } from "../src/modeling/backbone.js";
import weightsCommand from "../src/cli/commands/weights.js";
import { validateCocoDataset, validateCocoResults, writeCocoJson } from "../src/data/coco.js";
import { mergePreds } from "../src/runner/predictions.js";
import { cocoImages, folderImages } from "../src/distill/imageList.js";
import { genMasks } from "../src/distill/genMasks.js";
import { loadRgb } from "../src/data/image.js";
import { runPerImage, finishRun, writeFileAtomic, lockPath, journalPath, errorsPath, checkOutputLocation } from "../src/runner/perImage.js";
import { evaluateSemsegDirs } from "../src/evaluation/semseg.js";
import { writeLabelPng } from "../src/data/png.js";

const CKPT = projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth");
const COCO_IMG = projectPath("data", "coco-mini", "images", "000000000009.jpg");
const BIN = projectPath("bin", "maskdistill.cjs");

let tmp = "";
const HOME_BEFORE = process.env.MASKDISTILL_HOME;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "md-reliability-"));
  process.env.MASKDISTILL_HOME = path.join(tmp, "home");
  process.env.MASKDISTILL_QUIET = "1";
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
  if (HOME_BEFORE === undefined) delete process.env.MASKDISTILL_HOME; else process.env.MASKDISTILL_HOME = HOME_BEFORE;
});
const tmpFiles = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith(".tmp") || /\.tmp-\d+$/.test(f));

// ---------------------------------------------------------------------------------------------
// (2) silent acceptance

test("safetensors whose tensors share bytes are refused, naming both", async () => {
  const header = JSON.stringify({
    a: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
    b: { dtype: "F32", shape: [4], data_offsets: [8, 24] },
    empty: { dtype: "F32", shape: [0], data_offsets: [8, 8] },
  });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const file = path.join(tmp, "overlap.safetensors");
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(header), Buffer.alloc(24)]));
  await assert.rejects(readCheckpoint(file), (e: Error) =>
    e instanceof MaskdistillError && e.message.startsWith(file) && /tensors a \(data bytes 0\.\.16\) and b \(8\.\.24\) overlap/.test(e.message));
  // touching (not overlapping) tensors and zero-size tensors are fine
  const ok = JSON.stringify({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, e: { dtype: "F32", shape: [0], data_offsets: [8, 8] }, b: { dtype: "F32", shape: [2], data_offsets: [8, 16] } });
  len.writeBigUInt64LE(BigInt(ok.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(ok), Buffer.alloc(16)]));
  assert.equal((await readCheckpoint(file) as StateDict).size, 3);
});

/** The small ViT fixture as a state dict, changed by `edit` and saved as safetensors. */
async function editedVit(name: string, edit: (sd: StateDict) => void): Promise<string> {
  const { stateDict } = await readStateDict(CKPT, "vit");
  const copy: StateDict = new Map([...stateDict].map(([k, t]) => [k, { ...t, data: t.data.slice() }]));
  edit(copy);
  const file = path.join(tmp, name);
  writeSafetensors(file, copy);
  return file;
}

test("checkpoints with NaN or Inf weights are refused at load, naming the file and the tensor; weights inspect agrees", async () => {
  const ok = await editedVit("ok.safetensors", () => {});
  await (await loadBackbone(ok)).dispose();
  const nan = await editedVit("nan.safetensors", (sd) => { (sd.get("blocks.0.attn.qkv.weight")!.data as Float32Array)[5] = NaN; });
  let loadError: Error | undefined;
  await assert.rejects(loadBackbone(nan), (e: Error) => { loadError = e; return e instanceof MaskdistillError; });
  assert.ok(loadError!.message.startsWith(`${nan}: tensor blocks.0.attn.qkv.weight [`), loadError!.message);
  assert.match(loadError!.message, /1 non-finite value\(s\), the first NaN at element 5/);
  // inspect: the same message, non-zero exit through the launcher
  await assert.rejects(weightsCommand.run(["inspect", nan]), (e: Error) => e.message === loadError!.message);
  const cli = spawnSync(process.execPath, [BIN, "weights", "inspect", nan], { encoding: "utf8", env: { ...process.env } });
  assert.equal(cli.status, 2);
  assert.ok(cli.stderr.includes(loadError!.message), cli.stderr);
  assert.ok(!cli.stderr.includes("    at "), "no stack trace");
  const inf = await editedVit("inf.safetensors", (sd) => { (sd.get("norm.bias")!.data as Float32Array)[0] = -Infinity; });
  await assert.rejects(loadBackbone(inf), /tensor norm\.bias \[\d+\] holds 1 non-finite value\(s\), the first -Infinity at element 0/);
  // float16 / bfloat16 are checked on their bit patterns
  const half = (bits: number[], dtype: "float16" | "bfloat16"): StateDict => new Map([["w", { dtype, shape: [bits.length], data: Uint16Array.from(bits) }]]);
  assert.throws(() => requireFinite(half([0x3c00, 0x7c00], "float16"), "f.pth"), /f\.pth: tensor w \[2\] holds a non-finite value at element 1/);
  assert.throws(() => requireFinite(half([0x3f80, 0xffc1], "bfloat16"), "f.pth"), /non-finite value at element 1/);
  requireFinite(half([0x3c00, 0x7bff, 0xfbff], "float16"), "f.pth");
});

test("weights inspect exits non-zero on a checkpoint gen-masks refuses: missing tensor, wrong shape", async () => {
  const missing = await editedVit("missing.safetensors", (sd) => { sd.delete("norm.weight"); });
  let loadError: Error | undefined;
  await assert.rejects(loadBackbone(missing), (e: Error) => { loadError = e; return true; });
  assert.match(loadError!.message, /lacks 1 tensor\(s\) the model needs: norm\.weight/);
  await assert.rejects(weightsCommand.run(["inspect", missing]), (e: Error) => e.message === loadError!.message);
  const shape = await editedVit("shape.safetensors", (sd) => {
    const t = sd.get("blocks.0.mlp.fc1.bias")!;
    sd.set("blocks.0.mlp.fc1.bias", { ...t, shape: [t.shape[0] + 1], data: new Float32Array(t.shape[0] + 1) });
  });
  await assert.rejects(loadBackbone(shape), (e: Error) => { loadError = e; return true; });
  assert.match(loadError!.message, /shape mismatch for 1 tensor\(s\): blocks\.0\.mlp\.fc1\.bias/);
  await assert.rejects(weightsCommand.run(["inspect", shape]), (e: Error) => e.message === loadError!.message);
});

test("a graph-cache entry changed in place (same size) is rebuilt, not used", async () => {
  const home = path.join(tmp, "cache-home");
  process.env.MASKDISTILL_HOME = home;
  try {
    const img = { width: 32, height: 32, data: Float32Array.from({ length: 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37)) };
    const run = async () => {
      const vit = await loadBackbone(CKPT);
      try {
        return { cls: await vit.cls(img), q: (await vit.lastSelfAttention(img)).q };
      } finally {
        await vit.dispose();
      }
    };
    const want = await run();
    const graphs = path.join(home, "graphs");
    const corrupt = (name: string) => {
      const f = path.join(graphs, name);
      const b = fs.readFileSync(f);
      for (let i = Math.floor(b.length / 3); i < b.length; i += 997) b[i] ^= 0x5a;
      fs.writeFileSync(f, b);
    };
    corrupt(fs.readdirSync(graphs).find((f) => f.endsWith(".vit.weights"))!);
    const got = await run();
    assert.deepEqual(got.cls, want.cls);
    assert.deepEqual(got.q, want.q);
    for (const g of fs.readdirSync(graphs).filter((f) => f.endsWith(".onnx"))) corrupt(g);
    const again = await run();
    assert.deepEqual(again.cls, want.cls);
    assert.deepEqual(again.q, want.q);
  } finally {
    process.env.MASKDISTILL_HOME = path.join(tmp, "home");
  }
});

const gt = (anns: object[]) => ({
  images: [{ id: 1, width: 10, height: 10, file_name: "a.jpg" }],
  categories: [{ id: 1, name: "thing" }],
  annotations: anns,
});

test("COCO GT with a negative box size or area, and results with a negative box size, are refused", () => {
  const ann = { id: 1, image_id: 1, category_id: 1, bbox: [1, 1, 3, 3], area: 9, iscrowd: 0 };
  validateCocoDataset(gt([ann]), "gt.json");
  assert.throws(() => validateCocoDataset(gt([{ ...ann, bbox: [1, 1, -3, 3] }]), "gt.json"),
    /^MaskdistillError: gt\.json: annotation id 1: 'bbox' \[1, 1, -3, 3\] has a negative width or height/);
  assert.throws(() => validateCocoDataset(gt([{ ...ann, bbox: [1, 1, 3, -0.5] }]), "gt.json"), /negative width or height/);
  assert.throws(() => validateCocoDataset(gt([{ ...ann, area: -9 }]), "gt.json"), /gt\.json: annotation id 1: 'area' -9 is negative/);
  const res = { image_id: 1, category_id: 1, score: 0.5, bbox: [0, 0, 2, 2] };
  validateCocoResults([res], "res.json", validateCocoDataset(gt([ann]), "gt.json"));
  assert.throws(() => validateCocoResults([res, { ...res, bbox: [0, 0, 2, -2] }], "res.json"),
    /res\.json: result #1 \(image 1\): 'bbox' \[0, 0, 2, -2\] has a negative width or height/);
});

test("merge-preds refuses annotations with a non-numeric bbox or no segmentation", () => {
  const pred = (ann: object) => {
    const f = path.join(tmp, `pred-${Math.random().toString(36).slice(2)}.json`);
    fs.writeFileSync(f, JSON.stringify({ images: [{ id: 1, width: 10, height: 10, file_name: "a.jpg" }], annotations: [ann], categories: [] }));
    return f;
  };
  const good = { id: 1, image_id: 1, category_id: 0, score: 1, iscrowd: 0, area: 4, bbox: [0, 0, 2, 2], segmentation: { size: [10, 10], counts: "0" } };
  assert.deepEqual(mergePreds(path.join(tmp, "merged.json"), [pred(good)]), { images: 1, annotations: 1, errors: 0 });
  const bad1 = pred({ ...good, bbox: ["0", 0, 2, 2] });
  assert.throws(() => mergePreds(path.join(tmp, "merged.json"), [bad1]), (e: Error) =>
    e.message.startsWith(`${bad1}: annotation #0 (id 1): 'bbox' must be [x, y, width, height] (4 finite numbers)`));
  const { segmentation: _s, ...noSeg } = good;
  const bad2 = pred(noSeg);
  assert.throws(() => mergePreds(path.join(tmp, "merged.json"), [bad2]), (e: Error) => e.message.startsWith(`${bad2}: annotation #0 (id 1): has no 'segmentation'`));
});

test("a COCO file_name with '..' or an absolute path is refused (nothing outside the image folder is read)", () => {
  const write = (name: string) => {
    const f = path.join(tmp, "gt-names.json");
    fs.writeFileSync(f, JSON.stringify({ images: [{ id: 3, width: 4, height: 4, file_name: name }], annotations: [], categories: [] }));
    return f;
  };
  for (const name of ["../secret.jpg", "sub/../../x.jpg", "/etc/passwd", "..\\x.jpg"]) {
    const f = write(name);
    assert.throws(() => cocoImages(f, tmp), (e: Error) =>
      e instanceof MaskdistillError && e.message === `${f}: image id 3: file_name ${JSON.stringify(name)} must be a path inside the image folder (no absolute path, no '..')`, name);
  }
  assert.equal(cocoImages(write("sub/a..b.jpg"), tmp)[0].file, path.join(tmp, "sub", "a..b.jpg"));
});

test("GT image sizes that disagree with the decoded file are reported per image, not replaced", async () => {
  const dir = path.join(tmp, "size-images");
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(COCO_IMG, path.join(dir, "a.jpg"));
  fs.copyFileSync(COCO_IMG, path.join(dir, "b.jpg"));
  const { width, height } = await loadRgb(COCO_IMG);
  const gtFile = path.join(tmp, "size-gt.json");
  fs.writeFileSync(gtFile, JSON.stringify({
    images: [{ id: 1, width, height, file_name: "a.jpg" }, { id: 2, width: width + 1, height, file_name: "b.jpg" }],
    annotations: [], categories: [],
  }));
  const backbone = await loadBackbone(CKPT);
  const out = path.join(tmp, "size-pred.json");
  const summary = await genMasks({ images: cocoImages(gtFile, dir), predJson: out, backbone, resize: 64, quiet: true });
  await backbone.dispose();
  assert.equal(summary.errors, 1);
  const pred = JSON.parse(fs.readFileSync(out, "utf8"));
  assert.deepEqual(pred.images.map((i: any) => [i.id, i.width, i.height]), [[1, width, height]]);
  const errors = fs.readFileSync(errorsPath(out), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(errors, [{
    file: path.join(dir, "b.jpg"), image_id: 2,
    reason: `the ground truth gives image 2 the size ${width + 1}×${height}, but the file decodes to ${width}×${height}; fix the GT entry or the file (skipped)`,
  }]);
});

// ---------------------------------------------------------------------------------------------
// (1) memory blow-ups

test("gen-masks: an image whose attention would exceed the memory budget (4000×3) is skipped and recorded; the run goes on", async () => {
  const dir = path.join(tmp, "budget-images");
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(COCO_IMG, path.join(dir, "a.jpg"));
  writeLabelPng(path.join(dir, "b_thin.png"), { width: 4000, height: 3, data: new Uint8Array(12000).fill(1) });
  const backbone = await loadBackbone(CKPT);
  const out = path.join(tmp, "budget-pred.json");
  const summary = await genMasks({ images: folderImages(dir), predJson: out, backbone, resize: 64, quiet: true });
  await backbone.dispose();
  assert.deepEqual([summary.images, summary.masks, summary.errors], [2, 1, 1]);
  const errors = fs.readFileSync(errorsPath(out), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(errors[0].file, path.join(dir, "b_thin.png"));
  assert.match(errors[0].reason, /^image 4000×3 is 85333×64 after resizing: 21337 tokens, whose self-attention needs 10 GiB, over the 4\.0 GiB budget/);
});

test("cluster embeddings: batches are bounded by attention memory, not only by count; a crop over the budget is skipped", async () => {
  const { embedCrops } = await import("../src/cluster/embed.js");
  const batches: number[] = [];
  const backbone = {
    patch: 8, dim: 4, heads: 6,
    async clsBatch(imgs: { width: number; height: number }[]) {
      batches.push(imgs.length);
      return imgs.map(() => new Float32Array(4));
    },
  };
  // 64×64 crops: 65 tokens, 6 × 65² × 4 = 101400 bytes each; a budget of 250000 takes 2 per call
  const items = [0, 1, 2, 3, 4].map((k) => ({ file: COCO_IMG, bbox: [k * 10, 0, 64, 64] }));
  items.push({ file: COCO_IMG, bbox: [0, 0, 200, 200] });
  const r = await embedCrops(items, { backbone, batchSize: 8, attentionBudgetBytes: 250_000 });
  assert.deepEqual(batches, [2, 2, 1]);
  assert.deepEqual([...r.ok], [1, 1, 1, 1, 1, 0]);
  assert.deepEqual(r.problems, [{ index: 5, file: COCO_IMG, problem: "crop 200×200 needs 9.0 MiB for its self-attention, over the 0.2 MiB budget; skipped" }]);
});

// ---------------------------------------------------------------------------------------------
// (3) output-path faults

const items = [{ id: 0, file: "x0" }, { id: 1, file: "x1" }];
const runOpts = (out: string, process = (it: { id: number; file: string }, index: number) => ({ index, image_id: it.id, file: it.file })) => ({
  label: "test", items, out, config: {}, quiet: true, process, summarize: () => 0,
});

test("output locations are checked before the work starts: a file where a folder should be", async () => {
  const file = path.join(tmp, "plain-file");
  fs.writeFileSync(file, "x");
  let calls = 0;
  const out = path.join(file, "sub", "out.json");
  await assert.rejects(runPerImage(runOpts(out, (it, index) => { calls++; return { index, image_id: it.id, file: it.file }; })), (e: Error) =>
    e instanceof MaskdistillError && e.message === `${out}: cannot write the output here: ${file} is a file, not a folder (ENOTDIR); choose another output path`);
  assert.equal(calls, 0);
  assert.throws(() => checkOutputLocation(tmp), /the output path is a folder \(EISDIR\)/);
  // a folder where the file should go: the atomic writers say what and where and leave no *.tmp
  const dirTarget = path.join(tmp, "is-a-dir");
  fs.mkdirSync(path.join(dirTarget, "inside"), { recursive: true });
  assert.throws(() => writeFileAtomic(dirTarget, "x"), (e: Error) => e instanceof MaskdistillError && e.message.startsWith(`${dirTarget}: could not be written (`));
  assert.throws(() => writeCocoJson(dirTarget, {}), (e: Error) => e instanceof MaskdistillError && e.message.startsWith(`${dirTarget}: could not be written (`));
  assert.throws(() => writeCocoJson(path.join(file, "x.json"), {}), (e: Error) => e instanceof MaskdistillError && /could not be written \((EEXIST|ENOTDIR)/.test(e.message));
  assert.throws(() => writeSafetensors(dirTarget, new Map([["w", { dtype: "float32", shape: [1], data: new Float32Array(1) }]])),
    (e: Error) => e instanceof MaskdistillError && e.message.startsWith(`${dirTarget}: could not be written (`));
  assert.deepEqual(tmpFiles(tmp), []);
});

test("output locations the process cannot write (sysfs, procfs) are refused up front, without hanging", { skip: !fs.existsSync("/sys/kernel") }, () => {
  // sysfs takes no new files, even from root: EACCES (or EROFS where it is mounted read-only)
  assert.throws(() => checkOutputLocation("/sys/kernel/md-out.json"), (e: Error) =>
    e instanceof MaskdistillError && /^\/sys\/kernel\/md-out\.json: cannot write in the output folder \/sys\/kernel \((no permission to write there|the file system is read-only)\); choose another output path \((EACCES|EROFS|EPERM)/.test(e.message));
  // node's recursive mkdir spins forever here; the check makes the folders one by one
  assert.throws(() => checkOutputLocation("/proc/self/md-missing/out.json"), /cannot create the output folder \/proc\/self\/md-missing; choose another output path \(ENOENT/);
  assert.deepEqual(fs.readdirSync("/sys/kernel").filter((f) => f.includes("md-out")), []);
});

test("an I/O fault no check caught is one line, not a stack trace", () => {
  // gen-masks' --pred-json under a file fails in the runner's check (exit 2, one line)
  const file = path.join(tmp, "plain-file-2");
  fs.writeFileSync(file, "x");
  const r = spawnSync(process.execPath, [BIN, "gen-masks", "--images", path.dirname(COCO_IMG), "--weights", CKPT, "--device", "cpu", "--pred-json", path.join(file, "p.json")],
    { encoding: "utf8", env: { ...process.env } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /is a file, not a folder \(ENOTDIR\)/);
  assert.ok(!r.stderr.includes("    at "), r.stderr);
});

test("cluster checks its output file before loading weights or embedding anything", async () => {
  const { default: cluster } = await import("../src/cli/commands/cluster.js");
  const file = path.join(tmp, "plain-file-3");
  fs.writeFileSync(file, "x");
  const out = path.join(file, "clusters.json");
  await assert.rejects(cluster.run(["--input-file1", path.join(tmp, "missing.json"), "--dataset-root1", tmp, "--output-file", out, "--weights", path.join(tmp, "missing.pth")]),
    (e: Error) => e instanceof MaskdistillError && e.message === `${out}: cannot write the output here: ${file} is a file, not a folder (ENOTDIR); choose another output path`);
});

// ---------------------------------------------------------------------------------------------
// (5) locks and interruption

test("two runs on one output: a live run's lock is refused, a dead run's lock is taken over", async () => {
  const out = path.join(tmp, "locked", "out.json");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const sleeper = spawn("sleep", ["30"], { stdio: "ignore" });
  try {
    fs.writeFileSync(lockPath(out), `${sleeper.pid}\n`);
    await assert.rejects(runPerImage(runOpts(out)), (e: Error) =>
      e instanceof MaskdistillError && e.message.startsWith(`${out}: another test run (pid ${sleeper.pid}) is writing this output (lock ${lockPath(out)})`));
    assert.equal(fs.readFileSync(lockPath(out), "utf8"), `${sleeper.pid}\n`);
  } finally {
    sleeper.kill("SIGKILL");
  }
  await new Promise((r) => sleeper.once("exit", r));
  // the sleeper is gone: its lock is stale
  const run = await runPerImage(runOpts(out));
  assert.equal(fs.readFileSync(lockPath(out), "utf8"), `${process.pid}\n`);
  finishRun(out, run);
  assert.ok(!fs.existsSync(lockPath(out)));
  // a run that fails releases its lock
  await assert.rejects(runPerImage(runOpts(out, () => { throw new Error("bug"); })), /test failed on this image \(bug\)/);
  assert.ok(!fs.existsSync(lockPath(out)));
  assert.ok(fs.existsSync(journalPath(out)));
});

/**
 * Runs the CLI (through the launcher), waits until `ready(stderr)` holds (polling; fails after
 * `waitMs`), sends SIGTERM and returns the exit code and stderr; asserts the exit came within `exitMs`.
 */
async function terminateWhenReady(args: string[], ready: (stderr: string) => boolean, what: string, waitMs: number, exitMs: number,
    env: NodeJS.ProcessEnv = process.env, signal: NodeJS.Signals = "SIGTERM"): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...env } });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr += d; });
  const exited = new Promise<number | null>((r) => child.once("exit", (code, sig) => r(code ?? (sig ? 128 + os.constants.signals[sig] : null))));
  const t0 = Date.now();
  while (!ready(stderr)) {
    assert.ok(Date.now() - t0 < waitMs, `${what} in ${waitMs / 1000} s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const tKill = Date.now();
  child.kill(signal);
  const code = await exited;
  assert.ok(Date.now() - tKill < exitMs, "exits promptly");
  return { code, stderr };
}

test("SIGTERM to the launcher during gen-masks: prompt non-zero exit, no lock left, --resume finishes", async () => {
  const dir = path.join(tmp, "sig-images");
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 40; i++) fs.copyFileSync(COCO_IMG, path.join(dir, `img${String(i).padStart(2, "0")}.jpg`));
  const out = path.join(tmp, "sig", "pred.json");
  const args = ["gen-masks", "--images", dir, "--weights", CKPT, "--device", "cpu", "--resize", "0", "--pred-json", out];
  // stop once the first image is finished in the journal
  const lines = () => (fs.existsSync(journalPath(out)) ? fs.readFileSync(journalPath(out), "utf8").split("\n").length - 1 : 0);
  const { code, stderr } = await terminateWhenReady(args, () => lines() >= 2, "no image finished", 60_000, 10_000);
  assert.equal(code, 143, stderr);
  assert.match(stderr, /interrupted after \d+ of 40 images; rerun with --resume to continue/);
  assert.ok(!stderr.includes("    at "), stderr);
  assert.ok(!fs.existsSync(lockPath(out)), "lock released");
  assert.ok(!fs.existsSync(out));
  const done = lines() - 1;
  assert.ok(done >= 1 && done < 40, `${done}`);
  const r = spawnSync(process.execPath, [BIN, ...args, "--resume", "--json"], { encoding: "utf8", env: { ...process.env } });
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.deepEqual([summary.images, summary.resumed, summary.masks], [40, done, 40]);
  assert.deepEqual(tmpFiles(path.dirname(out)), []);
  assert.deepEqual(fs.readdirSync(path.dirname(out)).sort(), ["pred.json", "pred.json.errors.jsonl"]);
});

// A real full disk: a small tmpfs (mounting needs root, as in CI; elsewhere the test says why it skips).
const canMount = process.getuid?.() === 0 && spawnSync("mount", ["--version"]).status === 0;
test("gen-masks on a disk that fills up mid-run: one line naming the file, the journal kept, no temporaries; --resume after freeing space gives the uninterrupted output", { skip: canMount ? false : "needs root to mount a small tmpfs" }, async () => {
  const dir = path.join(tmp, "enospc-images");
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < 10; i++) fs.copyFileSync(COCO_IMG, path.join(dir, `img${String(i).padStart(2, "0")}.jpg`));
  const args = (out: string) => ["gen-masks", "--images", dir, "--weights", CKPT, "--device", "cpu", "--resize", "0", "--pred-json", out];
  const refOut = path.join(tmp, "enospc-ref", "pred.json");
  const ref = spawnSync(process.execPath, [BIN, ...args(refOut)], { encoding: "utf8" });
  assert.equal(ref.status, 0, ref.stderr);
  const mnt = path.join(tmp, "enospc-mnt");
  fs.mkdirSync(mnt);
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt], { encoding: "utf8" });
  assert.equal(mounted.status, 0, mounted.stderr);
  try {
    // leave 3 pages free: the probe passes, the journal (about 1.9 KB per image) fills them after a few images
    const filler = path.join(mnt, "filler");
    const fill = spawnSync("dd", ["if=/dev/zero", `of=${filler}`, "bs=4096", `count=${256 / 4 - 3}`], { encoding: "utf8" });
    assert.equal(fill.status, 0, fill.stderr);
    const out = path.join(mnt, "pred.json");
    const full = spawnSync(process.execPath, [BIN, ...args(out)], { encoding: "utf8" });
    assert.notEqual(full.status, 0);
    assert.match(full.stderr, /the disk is full/, full.stderr);
    assert.ok(full.stderr.includes(mnt), full.stderr);
    assert.ok(!full.stderr.includes("    at "), full.stderr);
    assert.equal(full.stderr.trim().split("\n").length, 1, full.stderr);
    assert.ok(!fs.existsSync(out) && !fs.existsSync(lockPath(out)));
    assert.deepEqual(tmpFiles(mnt), []);
    const kept = fs.readFileSync(journalPath(out), "utf8").split("\n").filter((l) => l.trim().startsWith("{"));
    for (const line of kept) JSON.parse(line); // no torn line survives as JSON garbage
    assert.ok(kept.length >= 2 && kept.length < 11, `${kept.length} journal lines`);
    fs.rmSync(filler);
    const resumed = spawnSync(process.execPath, [BIN, ...args(out), "--resume", "--json"], { encoding: "utf8" });
    assert.equal(resumed.status, 0, resumed.stderr);
    const summary = JSON.parse(resumed.stdout.trim().split("\n").pop()!);
    assert.ok(summary.resumed >= 1, JSON.stringify(summary));
    assert.equal(fs.readFileSync(out, "utf8"), fs.readFileSync(refOut, "utf8"));
    assert.deepEqual(tmpFiles(mnt), []);
  } finally {
    spawnSync("umount", [mnt]);
  }
});

test("temporaries of a killed run (dead pid) are removed when the next run starts; a live run's are kept", async () => {
  const out = path.join(tmp, "stale", "out.json");
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const dead = spawnSync("true").pid!;
  const stale = [`.out.json.${dead}.tmp`, `.out.json.errors.jsonl.${dead}.tmp`, `.out.json.${dead}.1700000000000.tmp`];
  const keep = [`.out.json.${process.ppid}.tmp`, `.other.json.${dead}.tmp`];
  for (const f of [...stale, ...keep]) fs.writeFileSync(path.join(path.dirname(out), f), "x");
  finishRun(out, await runPerImage(runOpts(out)));
  assert.deepEqual(fs.readdirSync(path.dirname(out)).sort(), [...keep, "out.json.errors.jsonl"].sort());
});

test("pretrain: SIGTERM to the launcher saves the checkpoint and exits 143; --resume continues and clears a dead run's temporary", async () => {
  const imgDir = path.join(tmp, "pre-imgs");
  fs.mkdirSync(imgDir, { recursive: true });
  for (const f of fs.readdirSync(projectPath("data", "demo", "images")).sort().slice(0, 4)) fs.copyFileSync(projectPath("data", "demo", "images", f), path.join(imgDir, f));
  const out = path.join(tmp, "pre-out");
  const tiny = ["--batch", "2", "--dim", "24", "--depth", "1", "--heads", "6", "--patch", "8", "--global-size", "32", "--local-size", "16", "--local-crops", "2", "--out-dim", "32"];
  const log = path.join(out, "train_log.jsonl");
  const { code, stderr } = await terminateWhenReady(["pretrain", "--images", imgDir, "--out", out, "--epochs", "1000", ...tiny],
    () => fs.existsSync(log) && fs.readFileSync(log, "utf8").includes("\n"), "no iteration", 60_000, 15_000);
  assert.equal(code, 143, stderr);
  assert.match(stderr, /stopping after this iteration \(saving the checkpoint\)/);
  const { checkpointStep } = await import("../src/pretrain/trainer.js");
  const step = await checkpointStep(path.join(out, "checkpoint.safetensors"));
  assert.ok(step >= 1, `${step}`);
  const dead = spawnSync("true").pid!;
  fs.writeFileSync(path.join(out, `checkpoint.safetensors.tmp-${dead}`), "half a checkpoint");
  const r = spawnSync(process.execPath, [BIN, "pretrain", "--resume", "--out", out, "--max-steps", "1", "--json"], { encoding: "utf8", env: { ...process.env } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim().split("\n").pop()!).step, step + 1);
  assert.deepEqual(tmpFiles(out), []);
});

test("cluster: SIGTERM through the launcher keeps the embeddings made so far in the cache, exit 143", async () => {
  const DEMO = projectPath("data", "demo");
  const gtDemo = JSON.parse(fs.readFileSync(path.join(DEMO, "instances.json"), "utf8"));
  // whole-image boxes: slow enough crops to stop the run in the middle
  const images = [...gtDemo.images].sort((a: any, b: any) => a.id - b.id);
  const annotations = images.map((im: any, i: number) => ({ id: i + 1, image_id: im.id, category_id: 0, bbox: [0, 0, im.width, im.height], area: im.width * im.height, iscrowd: 0 }));
  const masks = path.join(tmp, "cluster-masks.json");
  fs.writeFileSync(masks, JSON.stringify({ images, annotations, categories: [{ id: 0, name: "object" }] }));
  const cache = path.join(tmp, "cluster-cache");
  const WEIGHTS8 = projectPath("test", "fixtures", "reference-vit", "vit_small8_depth2_seed1.pth");
  // stop at the first progress line (after 5 s of embedding): some crops are done, most are not
  const { code, stderr } = await terminateWhenReady(["cluster", "--input-file1", masks, "--dataset-root1", DEMO, "--dataset", "voc", "--batch-size", "1",
    "--output-file", path.join(tmp, "clusters.json"), "--save-dir", cache, "--weights", WEIGHTS8, "--device", "cpu"],
    (err) => /embed \(input 1\) \d+\/\d+/.test(err), "no progress", 90_000, 15_000, { ...process.env, MASKDISTILL_QUIET: "" });
  assert.equal(code, 143, stderr);
  const m = /interrupted; (\d+) new embeddings are cached in/.exec(stderr);
  assert.ok(m, stderr);
  const index = fs.readdirSync(cache).find((f) => f.endsWith(".json"))!;
  const keys = JSON.parse(fs.readFileSync(path.join(cache, index), "utf8")).keys.length;
  assert.equal(keys, Number(m![1]));
  assert.ok(keys > 0 && keys < images.length, `${keys} of ${images.length}`);
  assert.ok(!fs.existsSync(path.join(tmp, "clusters.json")));
});

test("cluster: kill -9 mid-embedding loses no finished embedding: the cache journal has them, the rerun embeds only the rest", async () => {
  const DEMO = projectPath("data", "demo");
  const gtDemo = JSON.parse(fs.readFileSync(path.join(DEMO, "instances.json"), "utf8"));
  const images = [...gtDemo.images].sort((a: any, b: any) => a.id - b.id).slice(0, 40);
  const annotations = images.map((im: any, i: number) => ({ id: i + 1, image_id: im.id, category_id: 0, bbox: [0, 0, im.width, im.height], area: im.width * im.height, iscrowd: 0 }));
  const masks = path.join(tmp, "cluster9-masks.json");
  fs.writeFileSync(masks, JSON.stringify({ images, annotations, categories: [{ id: 0, name: "object" }] }));
  const cache = path.join(tmp, "cluster9-cache");
  const WEIGHTS8 = projectPath("test", "fixtures", "reference-vit", "vit_small8_depth2_seed1.pth");
  const args = ["cluster", "--input-file1", masks, "--dataset-root1", DEMO, "--dataset", "voc", "--batch-size", "1", "--num-classes", "20",
    "--output-file", path.join(tmp, "clusters9.json"), "--save-dir", cache, "--weights", WEIGHTS8, "--device", "cpu"];
  const { code, stderr } = await terminateWhenReady(args, (err) => /embed \(input 1\) \d+\/\d+/.test(err), "no progress", 90_000, 5_000,
    { ...process.env, MASKDISTILL_QUIET: "" }, "SIGKILL");
  assert.equal(code, 137, stderr);
  const done = Number(/embed \(input 1\) (\d+)\//.exec(stderr)![1]);
  assert.ok(done >= 1, stderr);
  assert.ok(fs.readdirSync(cache).some((f) => f.endsWith(".journal")), fs.readdirSync(cache).join(" "));
  const rerun = spawnSync(process.execPath, [BIN, ...args, "--json"], { encoding: "utf8", env: { ...process.env } });
  assert.equal(rerun.status, 0, rerun.stderr);
  const s = JSON.parse(rerun.stdout.trim().split("\n").pop()!);
  const masksInfo = s.masks ?? s.summary?.masks;
  assert.ok(masksInfo.fromCache >= done, `${masksInfo.fromCache} from the cache, ${done} reported done before the kill`);
  assert.equal(masksInfo.fromCache + masksInfo.embedded, images.length);
  assert.ok(!fs.readdirSync(cache).some((f) => f.endsWith(".journal")), "the journal is folded into the cache by the next save");
});

test("pretrain: an unreadable image is left out and recorded, not fatal", async () => {
  const { default: cmd } = await import("../src/cli/commands/pretrain.js");
  const imgDir = path.join(tmp, "pre-bad-imgs");
  fs.mkdirSync(imgDir, { recursive: true });
  for (const f of fs.readdirSync(projectPath("data", "demo", "images")).sort().slice(0, 4)) fs.copyFileSync(projectPath("data", "demo", "images", f), path.join(imgDir, f));
  const bad = path.join(imgDir, "0000_truncated.jpg");
  fs.writeFileSync(bad, Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
  const out = path.join(tmp, "pre-bad-out");
  const tiny = ["--epochs", "2", "--batch", "2", "--dim", "24", "--depth", "1", "--heads", "6", "--patch", "8", "--global-size", "32", "--local-size", "16", "--local-crops", "2", "--out-dim", "32"];
  const log = console.log, error = console.error;
  const printed: string[] = [], warned: string[] = [];
  console.log = (x: string) => void printed.push(String(x));
  console.error = (x: string) => void warned.push(String(x));
  try {
    assert.equal(await cmd.run(["--images", imgDir, "--out", out, ...tiny, "--max-steps", "1", "--json"]), 0);
  } finally {
    console.log = log;
    console.error = error;
  }
  assert.equal(JSON.parse(printed[printed.length - 1]).step, 1);
  const errors = fs.readFileSync(path.join(out, "pretrain.errors.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(errors.length, 1);
  assert.equal(errors[0].file, bad);
  assert.ok(warned.some((w) => w.includes("1 image(s) cannot be read and are left out")), warned.join("\n"));
  const { checkpointInfo } = await import("../src/pretrain/trainer.js");
  assert.equal((await checkpointInfo(path.join(out, "checkpoint.safetensors")))!.images, 4);
});

// ---------------------------------------------------------------------------------------------
// (6) messages that pointed at the wrong file

test("eval-semseg names the GT file for a bad GT value", () => {
  const predDir = path.join(tmp, "semseg-pred"), gtDir = path.join(tmp, "semseg-gt");
  fs.mkdirSync(predDir, { recursive: true });
  fs.mkdirSync(gtDir, { recursive: true });
  writeLabelPng(path.join(predDir, "a.png"), { width: 2, height: 2, data: Uint8Array.from([0, 1, 1, 0]) });
  writeLabelPng(path.join(gtDir, "a.png"), { width: 2, height: 2, data: Uint8Array.from([0, 1, 40, 255]) });
  const gtFile = path.join(gtDir, "a.png"), predFile = path.join(predDir, "a.png");
  assert.throws(() => evaluateSemsegDirs(predDir, gtDir), (e: Error) =>
    e instanceof MaskdistillError && e.message.startsWith(`${gtFile}: GT value 40 at pixel 2 is not a class id (< 21) nor the ignore value 255 (the GT of ${predFile})`));
});

test("pretrain --resume with no checkpoint says that none was found", async () => {
  const { default: cmd } = await import("../src/cli/commands/pretrain.js");
  const out = path.join(tmp, "no-ckpt");
  await assert.rejects(cmd.run(["--resume", "--out", out]), (e: Error) =>
    e instanceof MaskdistillError && e.message.startsWith(`pretrain --resume: no checkpoint found in ${out} (looked for ${path.join(out, "checkpoint.safetensors")})`));
});

// ---------------------------------------------------------------------------------------------
// (7) scale: long evaluations report progress (eval-instances draws a bar from it)

test("COCOeval reports its matching progress, ending at (groups, groups), and the result does not depend on it", async () => {
  const { readCocoDataset, readCocoResults } = await import("../src/data/coco.js");
  const { evaluateInstances } = await import("../src/evaluation/instances.js");
  const gt = readCocoDataset(projectPath("data", "coco-mini", "instances.json"));
  const results = readCocoResults(projectPath("test", "fixtures", "pycocotools", "preds_noisy.json"), gt);
  const calls: [number, number][] = [];
  const withProgress = evaluateInstances(gt, results, { onProgress: (done, total) => calls.push([done, total]) });
  const without = evaluateInstances(gt, results);
  assert.deepEqual(withProgress.stats, without.stats);
  const [lastDone, total] = calls[calls.length - 1];
  assert.equal(lastDone, total);
  assert.ok(total > 500, `${total} groups`);
  for (let i = 1; i < calls.length; i++) assert.ok(calls[i][0] > calls[i - 1][0]);
});
