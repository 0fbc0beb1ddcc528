// A config sidecar next to a checkpoint (<stem>.json, as `maskdistill pretrain` writes) tells the
// loader how many heads the width is split into; the tensors alone cannot.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadBackbone } from "../src/modeling/backbone.js";
import { writeSafetensors } from "../src/modeling/checkpoint/index.js";
import { syntheticVitStateDict } from "../src/modeling/vit.js";

test("heads come from the sidecar; without one, width/64; a bad sidecar names its file", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "md-sidecar-"));
  process.env.MASKDISTILL_HOME = path.join(dir, "home");
  const file = path.join(dir, "tiny.safetensors");
  writeSafetensors(file, syntheticVitStateDict({ patch: 16, dim: 128, depth: 1, mlpHidden: 256, posGrid: 2 }, 3));
  const plain = await loadBackbone(file);
  assert.equal(plain.heads, 2);
  await plain.dispose();
  fs.writeFileSync(path.join(dir, "tiny.json"), JSON.stringify({ heads: 4, patch: 16 }));
  const vit = await loadBackbone(file);
  assert.equal(vit.heads, 4);
  const img = { data: new Float32Array(3 * 32 * 48).fill(0.1), width: 48, height: 32 };
  const att = await vit.lastSelfAttention(img);
  assert.deepEqual([att.heads, att.tokens, att.headDim], [4, 1 + 2 * 3, 32]);
  await vit.dispose();
  fs.writeFileSync(path.join(dir, "tiny.json"), JSON.stringify({ heads: 0 }));
  await assert.rejects(loadBackbone(file), (e: Error) => e.message.includes(path.join(dir, "tiny.json")) && /"heads" must be a positive integer/.test(e.message));
});

test("a width that is not a multiple of 64 loads with its sidecar's heads (a first load, nothing cached)", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "md-sidecar96-"));
  process.env.MASKDISTILL_HOME = path.join(dir, "home");
  const file = path.join(dir, "small.safetensors");
  writeSafetensors(file, syntheticVitStateDict({ patch: 16, dim: 96, depth: 1, mlpHidden: 192, posGrid: 2 }, 5));
  await assert.rejects(loadBackbone(file), /cannot split width 96 into 0 heads/);
  fs.writeFileSync(path.join(dir, "small.json"), JSON.stringify({ heads: 6, patch: 16 }));
  const vit = await loadBackbone(file);
  const att = await vit.lastSelfAttention({ data: new Float32Array(3 * 32 * 32).fill(0.2), width: 32, height: 32 });
  assert.deepEqual([att.heads, att.headDim], [6, 16]);
  await vit.dispose();
});
