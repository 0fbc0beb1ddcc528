// The weights registry and `maskdistill weights`: names → cache paths, `list`, and `get` against a local
// HTTP server (Range resume, verification, bad files) or an unused localhost port (offline). No
// external traffic.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import { execFile } from "node:child_process";
import * as os from "node:os";
import * as path from "node:path";
import type { AddressInfo } from "node:net";
import { projectPath } from "../src/paths.js";
import { MaskdistillError } from "../src/errors.js";
import { KNOWN_WEIGHTS, downloadWeights, listWeights, resolveWeights, requireWeights } from "../src/modeling/weights.js";
import weightsCommand from "../src/cli/commands/weights.js";

const HOME = fs.mkdtempSync(path.join(os.tmpdir(), "maskdistill-home-"));
process.env.MASKDISTILL_HOME = HOME;
process.env.MASKDISTILL_QUIET = "1";
const WEIGHTS = path.join(HOME, "weights");
const fixture = (name: string) => projectPath("test", "fixtures", "checkpoint", name);

// A local server: /vit.pth and /moco.pth.tar honour Range, /norange.pth ignores it, /bad.pth is not a
// checkpoint, anything else is 404. Every request's Range header is recorded.
const ranges: (string | undefined)[] = [];
let server: http.Server;
let base = "";
const routes: Record<string, { file: string; range: boolean }> = {
  "/vit.pth": { file: fixture("dino_backbone.pth"), range: true },
  "/moco.pth.tar": { file: fixture("moco_v2.pth.tar"), range: true },
  "/norange.pth": { file: fixture("dino_backbone.pth"), range: false },
  "/bad.pth": { file: fixture("not_a_checkpoint.pth"), range: true },
};

before(async () => {
  server = http.createServer((req, res) => {
    ranges.push(req.headers.range);
    const route = routes[req.url ?? ""];
    if (!route) { res.writeHead(404).end("not found"); return; }
    const body = fs.readFileSync(route.file);
    const m = route.range ? /^bytes=(\d+)-$/.exec(req.headers.range ?? "") : null;
    if (!m) { res.writeHead(200, { "content-length": body.length }).end(body); return; }
    const start = Number(m[1]);
    if (start >= body.length) { res.writeHead(416, { "content-range": `bytes */${body.length}` }).end(); return; }
    res.writeHead(206, { "content-length": body.length - start, "content-range": `bytes ${start}-${body.length - 1}/${body.length}` })
      .end(body.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => { server.close(); fs.rmSync(HOME, { recursive: true, force: true }); });

// Runs `maskdistill weights ...` in a child process (the command module alone, so the test does not
// depend on other commands) and returns its exit code and output.
// (The arguments travel in an environment variable: node would take a leading `inspect` for its debugger.)
const DRIVER = `import("./src/cli/commands/weights.ts").then(async (m) => { process.exitCode = await m.default.run(JSON.parse(process.env.WEIGHTS_TEST_ARGV)); })`;
function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env, WEIGHTS_TEST_ARGV: JSON.stringify(args) };
    execFile(process.execPath, ["--import", "tsx", "-e", DRIVER], { cwd: projectPath(), env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, out: stdout, err: stderr });
    });
  });
}

async function unusedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

test("resolveWeights: known names map to the cache, paths pass through, unknown names list the known ones", () => {
  const r = resolveWeights("dino_vits16");
  assert.deepEqual(r, {
    path: path.join(WEIGHTS, "dino_deitsmall16_pretrain.pth"), name: "dino_vits16",
    arch: { family: "vit", model: "vit_small", patch: 16, dim: 384, heads: 6, depth: 12 },
    url: "https://dl.fbaipublicfiles.com/dino/dino_deitsmall16_pretrain/dino_deitsmall16_pretrain.pth", exists: false,
  });
  assert.equal(resolveWeights("dino_vitb8").url, "https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth");
  assert.deepEqual(resolveWeights("moco_v2_r50").arch, { family: "resnet", model: "resnet50", depth: 50 });
  assert.equal(resolveWeights("moco_v2_r50").path, path.join(WEIGHTS, "moco_v2_800ep_pretrain.pth.tar"));
  assert.deepEqual(resolveWeights(fixture("dino_backbone.pth")), { path: fixture("dino_backbone.pth"), exists: true });
  assert.deepEqual(resolveWeights("some/where.pth"), { path: "some/where.pth", exists: false });
  assert.throws(() => resolveWeights("dino_vits32"), (e: unknown) => e instanceof MaskdistillError &&
    e.message === "unknown weights 'dino_vits32': not a file and not a known name (known: dino_vits16, dino_vits8, dino_vitb16, dino_vitb8, dino_resnet50, moco_v2_r50)");
  assert.throws(() => requireWeights("dino_vits8"), /weights 'dino_vits8' are not downloaded: run 'maskdistill weights get dino_vits8', or download https:\/\/dl\.fbaipublicfiles\.com\/dino\/dino_deitsmall8_pretrain\/dino_deitsmall8_pretrain\.pth by hand and put it at .*dino_deitsmall8_pretrain\.pth/);
});

test("weights get offline: fails at once with the URL and the exact path to put the file", async () => {
  const url = `http://127.0.0.1:${await unusedPort()}/dino_deitsmall16_pretrain.pth`;
  const dest = path.join(WEIGHTS, "dino_deitsmall16_pretrain.pth");
  const t0 = Date.now();
  await assert.rejects(weightsCommand.run(["get", "dino_vits16", "--url", url]), (e: unknown) =>
    e instanceof MaskdistillError &&
    e.message === `cannot download dino_vits16 from ${url} (ECONNREFUSED: no network or the server is unreachable). Offline? download ${url} by hand (browser, curl, wget) and put it at ${dest}`);
  assert.ok(Date.now() - t0 < 5000, "fails at once");
  assert.equal(fs.existsSync(dest), false);
});

test("weights get resumes a .part file with a Range request, verifies, and renames into place", async () => {
  const body = fs.readFileSync(fixture("dino_backbone.pth"));
  const dest = path.join(WEIGHTS, "dino_deitsmall16_pretrain.pth");
  fs.mkdirSync(WEIGHTS, { recursive: true });
  const half = Math.floor(body.length / 2);
  fs.writeFileSync(`${dest}.part`, body.subarray(0, half));
  ranges.length = 0;
  const r = await downloadWeights("dino_vits16", { url: `${base}/vit.pth`, quiet: true });
  assert.deepEqual(ranges, [`bytes=${half}-`]);
  assert.deepEqual(r, { path: dest, bytes: body.length, resumedFrom: half, layout: "dino-backbone", alreadyPresent: false });
  assert.ok(fs.readFileSync(dest).equals(body), "the assembled file is byte-identical");
  assert.equal(fs.existsSync(`${dest}.part`), false);
  // Present now: `get` only re-verifies it.
  ranges.length = 0;
  const again = await downloadWeights("dino_vits16", { url: `${base}/vit.pth`, quiet: true });
  assert.equal(again.alreadyPresent, true);
  assert.deepEqual(ranges, []);
});

test("weights get: a fresh download through the CLI (--json), a server that ignores Range, a complete .part", async () => {
  const moco = fs.readFileSync(fixture("moco_v2.pth.tar"));
  const { code, out } = await cli(["get", "moco_v2_r50", "--url", `${base}/moco.pth.tar`, "--json"]);
  assert.equal(code, 0);
  const last = JSON.parse(out.trim().split("\n").pop()!);
  assert.deepEqual(last, { path: path.join(WEIGHTS, "moco_v2_800ep_pretrain.pth.tar"), bytes: moco.length, resumedFrom: 0, layout: "moco-v2", alreadyPresent: false });

  // Server without Range support: the partial file is discarded and the download starts over.
  const vit = fs.readFileSync(fixture("dino_backbone.pth"));
  const destB16 = path.join(WEIGHTS, "dino_vitbase16_pretrain.pth");
  fs.writeFileSync(`${destB16}.part`, Buffer.from("garbage that must not stay in front"));
  const r = await downloadWeights("dino_vitb16", { url: `${base}/norange.pth`, quiet: true });
  assert.equal(r.resumedFrom, 0);
  assert.ok(fs.readFileSync(destB16).equals(vit));

  // A .part that is already complete: the server answers 416 and the file is verified as is.
  const destB8 = path.join(WEIGHTS, "dino_vitbase8_pretrain.pth");
  fs.writeFileSync(`${destB8}.part`, vit);
  ranges.length = 0;
  const full = await downloadWeights("dino_vitb8", { url: `${base}/vit.pth`, quiet: true });
  assert.deepEqual(ranges, [`bytes=${vit.length}-`]);
  assert.equal(full.bytes, vit.length);
  assert.ok(fs.readFileSync(destB8).equals(vit));
});

test("weights get: HTTP errors and files that are not checkpoints are clear errors; nothing is left in place", async () => {
  const dest = path.join(WEIGHTS, "dino_deitsmall8_pretrain.pth");
  await assert.rejects(downloadWeights("dino_vits8", { url: `${base}/missing.pth`, quiet: true }), (e: unknown) =>
    e instanceof MaskdistillError && e.message.startsWith(`cannot download dino_vits8: ${base}/missing.pth answered HTTP 404 Not Found. download ${base}/missing.pth by hand`) && e.message.endsWith(`put it at ${dest}`));
  await assert.rejects(downloadWeights("dino_vits8", { url: `${base}/bad.pth`, quiet: true }), (e: unknown) =>
    e instanceof MaskdistillError && e.message.startsWith(`the file downloaded from ${base}/bad.pth for dino_vits8 is not a valid vit checkpoint and was deleted: ${dest}.part: not a PyTorch checkpoint`));
  // A real checkpoint of the wrong architecture is refused too.
  await assert.rejects(downloadWeights("dino_vits8", { url: `${base}/moco.pth.tar`, quiet: true }), /is not a valid vit checkpoint and was deleted: .*expected a ViT/);
  assert.equal(fs.existsSync(dest), false);
  assert.equal(fs.existsSync(`${dest}.part`), false);
  await assert.rejects(weightsCommand.run(["get", "dino_vits32"]), /unknown weights 'dino_vits32' \(known: dino_vits16, /);
  await assert.rejects(weightsCommand.run(["fetch"]), /weights: unknown subcommand 'fetch'/);
});

test("weights list: every known name with presence, size and path (text and --json)", async () => {
  // State left by the tests above: vits16, vitb16, vitb8, moco present; vits8 missing. Add a partial vits8.
  const vits8 = path.join(WEIGHTS, "dino_deitsmall8_pretrain.pth");
  fs.writeFileSync(`${vits8}.part`, Buffer.alloc(1000));
  const rows = listWeights();
  assert.deepEqual(rows.map((r) => r.name), KNOWN_WEIGHTS.map((w) => w.name));
  const byName = new Map(rows.map((r) => [r.name, r]));
  assert.equal(byName.get("dino_vits16")!.present, true);
  assert.equal(byName.get("dino_vits16")!.bytes, fs.statSync(fixture("dino_backbone.pth")).size);
  assert.equal(byName.get("moco_v2_r50")!.bytes, fs.statSync(fixture("moco_v2.pth.tar")).size);
  assert.deepEqual({ ...byName.get("dino_vits8")!, arch: undefined, description: undefined }, {
    name: "dino_vits8", arch: undefined, description: undefined,
    url: "https://dl.fbaipublicfiles.com/dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth",
    path: vits8, present: false, bytes: null, partialBytes: 1000,
  });
  const json = await cli(["list", "--json"]);
  assert.equal(json.code, 0);
  assert.deepEqual(JSON.parse(json.out.trim()).weights, JSON.parse(JSON.stringify(rows)));
  const text = await cli(["list"]);
  const lines = text.out.split("\n");
  assert.match(lines.find((l) => l.startsWith("dino_vits16"))!, new RegExp(`^dino_vits16 +present +5\\.\\d KiB  ${path.join(WEIGHTS, "dino_deitsmall16_pretrain.pth").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
  assert.match(lines.find((l) => l.startsWith("dino_vits8 "))!, /^dino_vits8 +partial +1000 B  .*dino_deitsmall8_pretrain\.pth$/);
  assert.ok(text.out.includes("from https://dl.fbaipublicfiles.com/dino/dino_deitsmall8_pretrain/dino_deitsmall8_pretrain.pth"));
});

test("weights inspect: layout and tensors of a file or a downloaded name", async () => {
  // the fixtures are partial toy checkpoints: listed, then refused as gen-masks / DeepLab would refuse them (non-zero exit)
  const { code, out, err } = await cli(["inspect", fixture("dino_full.pth"), "--json"]);
  assert.notEqual(code, 0);
  assert.match(err, /dino_full\.pth: not a ViT checkpoint: no "blocks\.0\.mlp\.fc1\.weight"/);
  const r = JSON.parse(out.trim());
  assert.equal(r.ok, false);
  assert.match(r.problem, /not a ViT checkpoint/);
  assert.equal(r.layout, "dino-full:teacher");
  assert.equal(r.kind, "vit");
  assert.deepEqual(r.tensors.slice(0, 3), [
    { key: "cls_token", dtype: "float32", shape: [1, 1, 8] },
    { key: "pos_embed", dtype: "float32", shape: [1, 5, 8] },
    { key: "patch_embed.proj.weight", dtype: "float32", shape: [8, 3, 4, 4] },
  ]);
  const byName = await cli(["inspect", "moco_v2_r50"]);
  assert.match(byName.out, /moco_v2_800ep_pretrain\.pth\.tar: layout moco-v2, resnet, \d+ tensors/);
  assert.match(byName.out, /\n {2}conv1\.weight {2}float32 \[4, 3, 3, 3\]\n/);
  assert.notEqual(byName.code, 0);
  assert.match(byName.err, /layer1 has BasicBlocks \(no conv3\): only Bottleneck ResNets/);
  // a complete backbone passes: exit 0, ok
  const good = await cli(["inspect", projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth"), "--json"]);
  assert.equal(good.code, 0, good.err);
  assert.deepEqual([JSON.parse(good.out.trim()).ok, JSON.parse(good.out.trim()).problem], [true, null]);
  await assert.rejects(weightsCommand.run(["inspect", fixture("malicious_os_system.pth")]), /refusing to load: the pickle references posix\.system/);
});
