// `maskdistill demo` end to end on a few demo images: masks, clusters and a summary whose numbers are
// the library's (recomputed here), a rerun that resumes to the same files, and the overview picture and
// the self-contained HTML report.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import demo from "../src/cli/commands/demo.js";
import { runCommand, lastJson } from "./helpers.js";
import { readCocoDataset } from "../src/data/coco.js";
import { scoreDiscovery } from "../src/evaluation/discovery.js";
import { projectPath } from "../src/paths.js";
import { decodeRgb } from "../src/data/image.js";

test("demo: stage i + scoring + stage ii on 24 images, resumable", async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "md-demo-"));
  process.env.MASKDISTILL_QUIET = "1";
  // the test checkpoints, so the test does not depend on which weights this machine has
  const args = ["--limit", "24", "--resize", "256", "--out", out, "--json",
    "--weights", projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth"),
    "--cluster-weights", projectPath("test", "fixtures", "reference-vit", "vit_small8_depth2_seed1.pth")];
  const first = await runCommand(demo, args);
  assert.equal(first.code, 0);
  const summary = lastJson(first.stdout);
  assert.equal(summary.images, 24);
  assert.equal(summary.masks + summary.empty + summary.errors, 24);
  const masks = readCocoDataset(path.join(out, "masks.json"));
  assert.equal(masks.annotations.length, summary.masks);
  const gt = readCocoDataset(projectPath("data", "demo", "instances.json"));
  const again = scoreDiscovery(gt, masks.annotations, masks.images.map((i) => i.id));
  assert.equal(summary.results[0].corloc, again.corloc);
  assert.equal(summary.results[0].meanBestIou, again.meanBestIou);
  assert.ok(fs.existsSync(path.join(out, "clusters.json")));
  assert.equal(summary.clustering.clusters, 20);
  assert.ok(summary.clustering.acc >= 0 && summary.clustering.acc <= 100);
  const before = fs.readFileSync(path.join(out, "masks.json"), "utf8");
  const second = await runCommand(demo, args);
  assert.equal(second.code, 0);
  assert.equal(fs.readFileSync(path.join(out, "masks.json"), "utf8"), before);
  assert.deepEqual(lastJson(second.stdout).clustering, summary.clustering);

  // the picture: 4 best + 4 worst cases (24 images), two rows of 160 px panels with a caption strip each
  const printed = first.stdout.join("\n");
  assert.match(printed, /picture: .*overview\.png/);
  assert.match(printed, /report: +.*report\.html/);
  assert.match(printed, /best 1 +\S+\.jpg +mask IoU \d\.\d\d/);
  const overview = await decodeRgb(fs.readFileSync(path.join(out, "overview.png")), "overview.png");
  assert.ok(overview.width >= 4 * 160 && overview.width <= 4 * 400, `overview width ${overview.width}`);
  assert.ok(overview.height > 2 * 160 && overview.height < 2 * 260, `overview height ${overview.height}`);
  let nonWhite = 0;
  for (let i = 0; i < overview.data.length; i += 3) if (overview.data[i] + overview.data[i + 1] + overview.data[i + 2] < 700) nonWhite++;
  assert.ok(nonWhite > overview.width * overview.height * 0.5, "overview is mostly pictures, not background");

  // the page: self-contained, with the numbers of summary.json
  const html = fs.readFileSync(path.join(out, "report.html"), "utf8");
  const saved = JSON.parse(fs.readFileSync(path.join(out, "summary.json"), "utf8"));
  const shown = (v: number) => String(Number(v.toFixed(1)));
  for (const r of saved.results) {
    assert.ok(html.includes(r.method), r.method);
    for (const v of [r.corloc, r.meanBestIou, r.ap50Single, r.ap50Multi]) assert.ok(html.includes(`>${shown(v)}</td>`), `report shows ${shown(v)}`);
  }
  for (const v of [saved.clustering.acc, saved.clustering.nmi, saved.clustering.ari]) assert.ok(html.includes(`>${shown(v)}</td>`), `report shows ${shown(v)}`);
  assert.ok((html.match(/src="data:image\/png;base64,/g) ?? []).length >= 4, "overview and three charts embedded");
  assert.doesNotMatch(html, /<script|<link|src="http|href=/);
});

test("demo --world shapes: bad stage-v flags are refused before any work, and shapes-only flags need --world shapes", async () => {
  process.env.MASKDISTILL_QUIET = "1";
  const worldDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "md-shapes-flags-")), "world");
  for (const [flag, value, message] of [["--train-images", "-1", /--train-images expects a whole number ≥ 0, got '-1'/], ["--train-images", "2.5", /--train-images expects a whole number/],
    ["--rounds", "x", /--rounds expects a number, got 'x'/], ["--deeplab-init", "moco", /--deeplab-init expects maskrcnn, none or a ResNet-50 file; no such file/],
    ["--maskrcnn-init", "no-such.safetensors", /--maskrcnn-init expects none or a ResNet-50 file; no such file/]] as const) {
    await assert.rejects(runCommand(demo, ["--world", "shapes", "--world-dir", worldDir, `${flag}=${value}`]), message);
    assert.ok(!fs.existsSync(worldDir), "no world is made for a bad flag");
  }
  await assert.rejects(runCommand(demo, ["--rounds", "1"]), /--rounds applies to --world shapes only/);
  await assert.rejects(runCommand(demo, ["--deeplab-init", "none"]), /--deeplab-init applies to --world shapes only/);
  await assert.rejects(runCommand(demo, ["--maskrcnn-init", "none"]), /--maskrcnn-init applies to --world shapes only/);
});
