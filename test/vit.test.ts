// DINO ViT parity with the reference MaskDistill model (shared/fixtures/reference-vit):
//  - qk: last-layer q and k [1, 6, N, 64] (before scaling) of the depth-2 ViT-S/16 for three images at
//    short side 256 — tolerance 1e-4 relative to the largest magnitude;
//  - cls: CLS after the final norm of the depth-2 ViT-S/8 on bounding-box crops of original images
//    (stage ii) — tolerance 1e-4 relative.
import { test, before, after } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import type { VitBackbone } from "../src/modeling/backbone.js";
import { loadRgb } from "../src/data/image.js";
import { cropNormalized, preprocess } from "../src/data/preprocess.js";
import { relError, readF32 } from "./helpers.js";

const ref = projectPath("test", "fixtures", "reference-vit");
const manifest = JSON.parse(fs.readFileSync(path.join(ref, "manifest.json"), "utf8"));
const f32 = (file: string): Float32Array => readF32(path.join(ref, file));
const cocoImage = (name: string): string => projectPath("data", "coco-mini", "images", name);


let home: string;
let vit16: VitBackbone;
let vit8: VitBackbone;
before(async () => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), "md-vit-"));
  process.env.MASKDISTILL_HOME = home;
  vit16 = await loadBackbone(path.join(ref, manifest.vit16), { arch: "vit_small" });
  vit8 = await loadBackbone(path.join(ref, manifest.vit8), { arch: "vit_small", patch: 8 });
});
after(async () => {
  await vit16?.dispose();
  await vit8?.dispose();
  fs.rmSync(home, { recursive: true, force: true });
});

test("architecture is read from the checkpoints (depth 2, dim 384, 6 heads, patch 16 / 8)", () => {
  assert.deepEqual([vit16.depth, vit16.dim, vit16.heads, vit16.patch], [2, 384, 6, 16]);
  assert.deepEqual([vit8.depth, vit8.dim, vit8.heads, vit8.patch], [2, 384, 6, 8]);
});

for (const [key, entry] of Object.entries(manifest.qk) as [string, { q: string; k: string; shape: number[] }][]) {
  test(`last-layer q, k for ${key} match the reference (1e-4 relative)`, async (t) => {
    const [image, side] = key.split("@");
    let input;
    if (image === manifest.input.image && Number(side) === manifest.input.resize) {
      // the reference's own preprocessed tensor: isolates the backbone from preprocessing
      const [, height, width] = manifest.input.shape;
      input = { data: f32(manifest.input.file), width, height };
    } else {
      input = preprocess(await loadRgb(cocoImage(image)), { resize: Number(side), multiple: 16 });
    }
    const out = await vit16.lastSelfAttention(input);
    assert.deepEqual([1, out.heads, out.tokens, out.headDim], entry.shape);
    assert.equal(out.tokens, 1 + out.rows * out.cols);
    const rq = relError(out.q, f32(entry.q)), rk = relError(out.k, f32(entry.k));
    t.diagnostic(`q ${rq.toExponential(2)}, k ${rk.toExponential(2)} (max |error| / max |value|)`);
    assert.ok(rq < 1e-4 && rk < 1e-4, `q ${rq}, k ${rk}`);
  });
}

test(`CLS embeddings of ${manifest.cls.length} bounding-box crops (ViT-S/8) match the reference (1e-4 relative)`, async (t) => {
  let worst = 0;
  for (const c of manifest.cls as { image: string; bbox: [number, number, number, number]; crop_hw: [number, number]; cls: number[] }[]) {
    const crop = cropNormalized(await loadRgb(cocoImage(c.image)), c.bbox, 8);
    assert.deepEqual([crop.validHeight, crop.validWidth], c.crop_hw, c.image);
    const rel = relError(await vit8.cls(crop), Float32Array.from(c.cls));
    worst = Math.max(worst, rel);
    assert.ok(rel < 1e-4, `${c.image}: relative error ${rel}`);
  }
  t.diagnostic(`worst max |error| / max |value| = ${worst.toExponential(2)}`);
});

test("clsBatch of equal-size crops equals one-by-one cls", async () => {
  const c = manifest.cls[0];
  const img = await loadRgb(cocoImage(c.image));
  const a = cropNormalized(img, c.bbox, 8);
  const b = cropNormalized(img, [c.bbox[0] + 5, c.bbox[1] + 3, c.bbox[2], c.bbox[3]], 8);
  assert.equal(a.width, b.width);
  assert.equal(a.height, b.height);
  const [ba, bb] = await vit8.clsBatch([a, b]);
  assert.ok(relError(ba, await vit8.cls(a)) < 1e-5);
  assert.ok(relError(bb, await vit8.cls(b)) < 1e-5);
});
