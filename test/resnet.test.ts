// ResNet-50 graphs (BatchNorm folded, plain and dilated output stride 8) against torchvision.
// Fixtures: tools/make-resnet-fixtures.py (torch/torchvision forward of the same seeded weights).
//  - narrow ResNet-50 ([3, 4, 6, 3] Bottlenecks, stem width 4): checkpoints (MoCo v2 layout, zip and
//    legacy format) and full layer1..layer4 outputs are committed;
//  - real-width ResNet-50: see test/torch/resnet-full.test.ts (`npm run test:torch`).
import { test, before, after } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { loadResNet50 } from "../src/modeling/backbone.js";
import { RESNET_STAGES } from "../src/modeling/resnet.js";
import { MaskdistillError } from "../src/errors.js";
import { relError, readF32 } from "./helpers.js";

const dir = projectPath("test", "fixtures", "resnet");
const expected = JSON.parse(fs.readFileSync(path.join(dir, "expected.json"), "utf8"));
const input = { data: readF32(path.join(dir, "input.f32")), width: 64, height: 64 };

let home: string;
before(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), "md-resnet-"));
  process.env.MASKDISTILL_HOME = home;
});
after(() => fs.rmSync(home, { recursive: true, force: true }));


for (const checkpoint of expected.narrow.checkpoints as string[]) {
  for (const dilated of [false, true]) {
    test(`narrow ResNet-50 ${checkpoint} ${dilated ? "dilated OS8" : "OS32"}: layer1..4 match torchvision (1e-4 rel)`, async (t) => {
      const net = await loadResNet50(path.join(dir, checkpoint), { dilated });
      try {
        assert.deepEqual(net.config.blocks, [3, 4, 6, 3]);
        const feats = await net.features(input);
        const ref = expected.narrow.outputs[dilated ? "os8" : "os32"];
        const all = readF32(path.join(dir, ref.file));
        for (const stage of RESNET_STAGES) {
          const { shape, offset } = ref.stages[stage];
          assert.deepEqual(feats[stage].shape, shape, stage);
          const want = all.subarray(offset, offset + shape.reduce((a: number, b: number) => a * b, 1));
          const rel = relError(feats[stage].data, want);
          t.diagnostic(`${stage}: max |error| / max |value| = ${rel.toExponential(2)}`);
          assert.ok(rel < 1e-4, `${stage}: relative error ${rel}`);
        }
      } finally {
        await net.dispose();
      }
    });
  }
}

test("dilated OS8 keeps layer3/layer4 at 1/8 of the input, plain halves them", async () => {
  const plain = await loadResNet50(path.join(dir, "narrow-moco.pth.tar"), { dilated: false });
  const os8 = await loadResNet50(path.join(dir, "narrow-moco.pth.tar"), { dilated: true });
  const p = await plain.features(input), d = await os8.features(input);
  assert.deepEqual(RESNET_STAGES.map((s) => p[s].shape.slice(2)), [[16, 16], [8, 8], [4, 4], [2, 2]]);
  assert.deepEqual(RESNET_STAGES.map((s) => d[s].shape.slice(2)), [[16, 16], [8, 8], [8, 8], [8, 8]]);
  await plain.dispose();
  await os8.dispose();
});

test("a ViT checkpoint is refused by loadResNet50 with the file named", async () => {
  const vit = projectPath("test", "fixtures", "reference-vit", "vit_small16_depth2_seed0.pth");
  await assert.rejects(loadResNet50(vit, { dilated: false }), (e: unknown) => e instanceof MaskdistillError && e.message.includes(vit) && /ResNet/.test(e.message));
});

test("a wrongly sized input is refused", async () => {
  const net = await loadResNet50(path.join(dir, "narrow-moco.pth.tar"), { dilated: false });
  await assert.rejects(net.features({ data: new Float32Array(10), width: 64, height: 64 }), /needs 12288/);
  await net.dispose();
});
