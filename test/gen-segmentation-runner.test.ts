// The shared per-image runner (src/runner/perImage.ts) that gen-masks and gen-segmentation use:
// journal header and config check, torn lines, recorded bad items, shards, errors file.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runPerImage, finishRun, journalPath, errorsPath, shardImages, type EntryBase } from "../src/runner/perImage.js";
import { MaskdistillError } from "../src/errors.js";

interface Entry extends EntryBase { square?: number }
const items = [5, 3, 9, 1, 7].map((id) => ({ id, file: `img${id}.jpg` }));

let tmp = "";
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), "runner-")); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(out: string, extra: Partial<Parameters<typeof runPerImage<{ id: number; file: string }, Entry, number>>[0]> = {}) {
  return runPerImage<{ id: number; file: string }, Entry, number>({
    label: "square", items, out, config: { power: 2 }, quiet: true,
    process: (item, index) => {
      if (item.id === 9) throw new MaskdistillError("cannot be read", item.file);
      return { index, image_id: item.id, file: item.file, square: item.id * item.id };
    },
    summarize: (e) => e.square ?? -1,
    ...extra,
  });
}

test("records computed entries, bad items as problems, errors file sorted by image id", async () => {
  const out = path.join(tmp, "a.json");
  const r = await run(out);
  assert.deepEqual(r.records.map((x) => [x.image_id, x.info, x.problem ?? null]), [[5, 25, null], [3, 9, null], [9, -1, "error"], [1, 1, null], [7, 49, null]]);
  assert.deepEqual(r.readEntry(r.records[4]), { index: 4, image_id: 7, file: "img7.jpg", square: 49 });
  assert.equal(r.readEntry(r.records[2]).reason, "cannot be read");
  assert.deepEqual([r.resumed, r.computed], [0, 5]);
  assert.equal(finishRun(out, r), 1);
  assert.equal(fs.readFileSync(errorsPath(out), "utf8"), '{"file":"img9.jpg","image_id":9,"reason":"cannot be read"}\n');
  assert.ok(!fs.existsSync(journalPath(out)));
});

test("resume skips journalled items, drops a torn line, checks the header", async () => {
  const out = path.join(tmp, "b.json");
  const controller = new AbortController();
  await assert.rejects(run(out, { signal: controller.signal, onItem: (i) => { if (i === 2) controller.abort(); } }), /interrupted after 3 of 5 images; rerun with --resume/);
  fs.appendFileSync(journalPath(out), '{"index":3,"image_id":1,"fi');
  const seen: number[] = [];
  const r = await run(out, { resume: true, onItem: (i) => seen.push(i) });
  assert.deepEqual(seen, [3, 4]);
  assert.equal(r.resumed, 3);
  assert.deepEqual(r.records.map((x) => x.info), [25, 9, -1, 1, 49]);
  // the journal holds one clean line per item
  const lines = fs.readFileSync(journalPath(out), "utf8").trim().split("\n");
  assert.equal(lines.length, 6);
  await assert.rejects(run(out, { resume: true, config: { power: 3 }, settingsHint: "power" }), /journal was written with other settings \(power\); rerun without --resume/);
  await assert.rejects(run(out, { resume: true, label: "cube" }), /not a cube journal \(bad header line\)/);
});

test("a bug (not a MaskdistillError) stops the run, naming the item", async () => {
  await assert.rejects(run(path.join(tmp, "c.json"), { process: () => { throw new TypeError("boom"); } }), /img5\.jpg: square failed on this image \(boom\)/);
});

test("shards take positions j % n == i", async () => {
  assert.deepEqual(shardImages(items, { index: 1, count: 2 }).map((i) => i.id), [3, 1]);
  const r = await run(path.join(tmp, "d.json"), { shard: { index: 0, count: 2 } });
  assert.deepEqual(r.items.map((i) => i.id), [5, 9, 7]);
  assert.deepEqual(r.records.map((x) => x.index), [0, 1, 2]);
});
