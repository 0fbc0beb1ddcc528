// The notebooks' world switch (src/notebook/world.ts): the demo world's splits, a COCO-style folder, and a
// folder that is neither named in the error.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { notebookWorld, worldBackbone } from "../src/notebook/world.js";
import { writeCocoJson } from "../src/data/coco.js";

test("demo world: val split by default, all images with split all; the demo backbone, not the shapes one", async () => {
  const val = await notebookWorld("demo");
  assert.equal(val.kind, "demo");
  assert.equal(val.images.length, 63);
  assert.ok(val.images.every((im) => fs.existsSync(im.file)));
  const all = await notebookWorld("demo", { split: "all" });
  assert.equal(all.images.length, 313);
  assert.equal(all.gt.images.length, 313);
  const b = worldBackbone(val, "masks");
  assert.ok(!/shapes/i.test(b.label), b.label);
});

test("a COCO-style folder: its instances.json and images/; a folder without one is named in the error", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "md-nbworld-"));
  fs.mkdirSync(path.join(dir, "images"));
  fs.copyFileSync("data/demo/images/" + fs.readdirSync("data/demo/images").sort()[0], path.join(dir, "images", "a.jpg"));
  writeCocoJson(path.join(dir, "instances.json"), {
    images: [{ id: 5, file_name: "a.jpg", width: 10, height: 10 }], annotations: [], categories: [{ id: 1, name: "thing", supercategory: "" }],
  } as never);
  const w = await notebookWorld(dir);
  assert.deepEqual([w.kind, w.images.length, w.images[0].id, w.images[0].file], ["folder", 1, 5, path.join(dir, "images", "a.jpg")]);
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), "md-nbworld-empty-"));
  await assert.rejects(notebookWorld(empty), (e: Error) => e.message.includes(empty) && /shapes, demo or a folder with instances\.json/.test(e.message));
});
