// The whole stage-(i) chain (image decode -> PIL-exact resize/normalise/pad -> ViT q/k -> mask ->
// back-projection) against the reference generator's output for all 20 reference-vit manifest cases
// (16 images at short side 256, 4 at 640; backbone vit_small16_depth2_seed0.pth).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { loadRgb } from "../src/data/image.js";
import { preprocess } from "../src/data/preprocess.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { maskFromAttention } from "../src/distill/maskFromAttention.js";
import { backProject } from "../src/distill/backProject.js";
import { projectPath } from "../src/paths.js";
import { rowRuns } from "./helpers.js";

const REF = projectPath("test", "fixtures", "reference-vit");
const manifest = JSON.parse(fs.readFileSync(`${REF}/manifest.json`, "utf8"));
const runsOf = (v: unknown): number[][] => (typeof v === "string" ? JSON.parse(v) : v) as number[][];

test("all 20 reference cases: same seed, kept count, k, patch mask and full-size mask", async () => {
  const backbone = await loadBackbone(`${REF}/${manifest.vit16}`, { device: "cpu" });
  const cases = Object.entries<any>(manifest.masks);
  assert.equal(cases.length, 20);
  const mismatches: string[] = [];
  for (const [key, ref] of cases) {
    const [file, side] = key.split("@");
    const img = await loadRgb(projectPath("data", "coco-mini", "images", file));
    const pre = preprocess(img, { resize: Number(side), multiple: 16 });
    assert.deepEqual([pre.validHeight, pre.validWidth], ref.resized_hw, `${key}: resized size`);
    const qk = await backbone.lastSelfAttention(pre);
    assert.deepEqual([qk.rows, qk.cols], ref.grid, `${key}: grid`);
    const m = maskFromAttention(qk.q, qk.k, qk, { avgHeads: manifest.heads, topk: manifest.topk });
    const full = backProject(m.patchMask, qk.rows, qk.cols, 16, pre.validWidth, pre.validHeight, img.width, img.height);
    const same =
      m.seedPatch === ref.seed_patch && m.keptAfterThreshold === ref.kept_after_threshold && m.k === ref.k &&
      JSON.stringify(rowRuns(m.patchMask)) === JSON.stringify(runsOf(ref.patch_mask_runs)) &&
      JSON.stringify(rowRuns(full)) === JSON.stringify(runsOf(ref.full_mask_runs));
    if (!same) mismatches.push(`${key} (seed ${m.seedPatch}/${ref.seed_patch}, kept ${m.keptAfterThreshold}/${ref.kept_after_threshold})`);
  }
  assert.deepEqual(mismatches, [], `cases that differ from the reference: ${mismatches.join(", ")}`);
});
