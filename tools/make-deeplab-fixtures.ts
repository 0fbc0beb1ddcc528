// DeepLab-v3 parity fixtures (test/deeplab.test.ts): writes the seeded fixture model of
// test/deeplabFixture.ts (reference keys, PyTorch layout, ~160 MB) and the inputs to a temporary
// folder, runs tools/make-deeplab-fixtures.py (Debian's python3-torch + torchvision's
// deeplabv3_resnet50) on them, and removes the folder. Only the small outputs are committed
// (test/fixtures/deeplab/, about 3 MB).
//
//   node --import tsx tools/make-deeplab-fixtures.ts
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import * as tf from "@tensorflow/tfjs";
import { writeSafetensors } from "../src/modeling/checkpoint/index.js";
import { deepLabStateDict } from "../src/segmentation/model.js";
import { dropoutMask } from "../src/engine/models/deeplab.js";
import { seededRng } from "../src/engine/models/params.js";
import { fixtureDeepLab, fixtureImages, fixtureLabels, nhwcToNchw, stepImages, FIXTURE_DIR, FORWARD_INPUTS, STEP_FIXTURE } from "../test/deeplabFixture.js";

async function main() {
  await tf.setBackend("cpu");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "deeplab-fixture-"));
  try {
    const m = fixtureDeepLab();
    writeSafetensors(path.join(tmp, "weights.safetensors"), await deepLabStateDict(m));
    const manifest: Record<string, unknown> = { forward: [], step: { ...STEP_FIXTURE } };
    for (const [seed, n, h, w] of FORWARD_INPUTS) {
      const file = `x_${n}x${h}x${w}.f32`;
      fs.writeFileSync(path.join(tmp, file), fixtureImages(seed, n, h, w));
      (manifest.forward as unknown[]).push({ file, shape: [n, 3, h, w], stride: h * w > 64 * 64 * 2 ? 4 : 1 });
    }
    const { batch, size, labelSeed, dropoutSeeds } = STEP_FIXTURE;
    fs.writeFileSync(path.join(tmp, "step_x.f32"), stepImages());
    fs.writeFileSync(path.join(tmp, "step_labels.u8"), fixtureLabels(labelSeed, batch * size * size));
    // the dropout masks our training forward draws (NHWC over the 1/8 map), handed to PyTorch as NCHW
    const f = size / 8;
    dropoutSeeds.forEach((s, i) => {
      fs.writeFileSync(path.join(tmp, `step_mask${i + 1}.f32`), nhwcToNchw(dropoutMask(seededRng(s), batch * f * f * 256), batch, f, f, 256));
    });
    fs.writeFileSync(path.join(tmp, "manifest.json"), JSON.stringify(manifest));
    const out = path.resolve(FIXTURE_DIR);
    fs.mkdirSync(out, { recursive: true });
    const py = spawnSync("/usr/bin/python3", [path.resolve("tools/make-deeplab-fixtures.py"), tmp, out], { stdio: "inherit" });
    if (py.status !== 0) throw new Error(`make-deeplab-fixtures.py failed (exit ${py.status})`);
  } finally {
    if (process.env.KEEP_TMP) console.log(`inputs kept in ${tmp}`); else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
