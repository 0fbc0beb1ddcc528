// Stage ii CLS embeddings against the reference, measured as the figure the README quotes: the
// relative L2 difference ||a − b||₂ / ||b||₂ of our embedding a and the reference's b (manifest `cls`:
// ViT-S/8 depth-2 fixture checkpoint, the 12 fixture box crops of COCO images, after the final norm).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { loadBackbone, type VitBackbone } from "../src/modeling/backbone.js";
import { embedCrops } from "../src/cluster/embed.js";

const REF = projectPath("test", "fixtures", "reference-vit");
const manifest = JSON.parse(fs.readFileSync(path.join(REF, "manifest.json"), "utf8"));
const IMAGES = projectPath("data", "coco-mini", "images");
const cases: { image: string; bbox: number[]; cls: number[] }[] = manifest.cls;

// The bound asserted on every crop. Measured (onnxruntime CPU, any batch size): max 1.196e-6
// (000000000490.jpg), median 8.0e-7; the max |a − b| / max |b| on the same crops is at most 1.49e-6.
const CLS_RELATIVE_L2_BOUND = 2e-6;

/** ||a − b||₂ / ||b||₂, accumulated in double precision. */
function relativeL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`lengths ${a.length} and ${b.length}`);
  let d = 0, n = 0;
  for (let j = 0; j < b.length; j++) {
    const e = a[j] - b[j];
    d += e * e;
    n += b[j] * b[j];
  }
  return Math.sqrt(d / n);
}

let vit: VitBackbone;
before(async () => {
  vit = await loadBackbone(path.join(REF, manifest.vit8), { patch: 8, device: "cpu" });
});
after(async () => {
  await vit.dispose();
});

test(`CLS embeddings: relative L2 difference to the reference ≤ ${CLS_RELATIVE_L2_BOUND.toExponential(0)} on each of the 12 fixture crops`, async () => {
  assert.equal(cases.length, 12);
  const res = await embedCrops(cases.map((c) => ({ file: path.join(IMAGES, c.image), bbox: c.bbox })), { backbone: vit });
  assert.equal(res.problems.length, 0);
  const dim = res.dim;
  assert.equal(dim, 384);
  const rel = cases.map((c, i) => relativeL2(res.features.subarray(i * dim, (i + 1) * dim), c.cls));
  const worst = Math.max(...rel);
  console.log(`CLS relative L2 ||a-b||/||b|| over ${cases.length} crops: max ${worst.toExponential(3)}, median ${[...rel].sort((x, y) => x - y)[6].toExponential(3)}`);
  // a meaningful comparison: the embeddings are far from each other, so a tiny difference is parity
  assert.ok(relativeL2(cases[0].cls, cases[1].cls) > 0.01);
  rel.forEach((r, i) => assert.ok(r <= CLS_RELATIVE_L2_BOUND, `${cases[i].image} ${JSON.stringify(cases[i].bbox)}: relative L2 ${r}`));
});

test("relativeL2 by hand", () => {
  assert.equal(relativeL2([3, 4], [3, 4]), 0);
  assert.ok(Math.abs(relativeL2([3, 4 + 2.5e-5], [3, 4]) - 5e-6) < 1e-15);
  assert.ok(Math.abs(relativeL2([0, 0], [3, 4]) - 1) < 1e-15);
});
