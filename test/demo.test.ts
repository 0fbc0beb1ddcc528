// `maskdistill demo` end to end on a few demo images: masks, clusters and a summary whose numbers are
// the library's (recomputed here), and a rerun that resumes to the same files.
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
});
