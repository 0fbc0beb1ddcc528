// eval_instances.py: the multi and single protocols and the `eval-instances` command (run in-process).
// The single protocol's selection is checked against test/fixtures/cocoeval/single_selection.json,
// made by tools/cocoeval-single-selection.py with the reference's torch float32 box IoU.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { MaskdistillError } from "../src/errors.js";
import { readCocoDataset, readCocoResults, type CocoDataset, type CocoResult } from "../src/data/coco.js";
import { evaluateInstances, iouBoxFloat32, selectMostConfident } from "../src/evaluation/instances.js";
import evalInstancesCommand from "../src/cli/commands/evalInstances.js";

const gtFile = projectPath("data", "coco-mini", "instances.json");
const predFile = (name: string) => projectPath("test", "fixtures", "pycocotools", `preds_${name}.json`);
const gt = readCocoDataset(gtFile);
const selectionFx: {
  selection: Record<string, { image_id: number; pred_index: number; gt_id: number | null }[]>;
  iou_box: { b1: number[]; b2: number[][]; iou: number[] }[];
} = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "cocoeval", "single_selection.json"), "utf8"));
const evalFx = (name: string) => JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "pycocotools", `eval_${name}.json`), "utf8"));

test("float32 box IoU equals the reference torch iou_box bit for bit", () => {
  for (const [i, e] of selectionFx.iou_box.entries()) {
    assert.deepEqual(Array.from(iouBoxFloat32(e.b1, e.b2)), e.iou, `iou_box case ${i}`);
  }
});

test("single protocol selection: top prediction per image and its max-box-IoU GT object, as the reference", () => {
  for (const name of ["good", "noisy", "agnostic"]) {
    const sel = selectMostConfident(gt, readCocoResults(predFile(name), gt));
    const want = selectionFx.selection[name];
    assert.deepEqual(sel.detections.map((d) => [d.image_id, d.id]), want.map((r) => [r.image_id, r.pred_index]), `${name}: predictions`);
    assert.deepEqual(sel.gt.annotations.map((a) => a.id), want.map((r) => r.gt_id), `${name}: GT objects`);
    assert.deepEqual(sel.imagesWithoutGt, []);
    // Reference bookkeeping: id = index in the results list, area = int(w*h) of the box.
    for (const d of sel.detections) assert.equal(d.area, Math.trunc(d.bbox[2] * d.bbox[3]));
  }
});

test("single protocol edge cases: ties keep the first, images without GT keep their prediction as a false positive", () => {
  const ds: CocoDataset = {
    images: [{ id: 1, width: 50, height: 50, file_name: "a" }, { id: 2, width: 50, height: 50, file_name: "b" }],
    categories: [{ id: 1, name: "thing" }],
    annotations: [
      { id: 5, image_id: 1, category_id: 1, bbox: [30, 30, 10, 10], area: 100, iscrowd: 0 },
      { id: 6, image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], area: 100, iscrowd: 0 },
    ],
  };
  const results: CocoResult[] = [
    { image_id: 1, category_id: 1, score: 0.5, bbox: [20, 20, 5, 5] }, // overlaps neither GT: IoUs tie at 0
    { image_id: 1, category_id: 1, score: 0.5, bbox: [0, 0, 10, 10] }, // same score: not taken
    { image_id: 2, category_id: 1, score: 0.9, bbox: [0, 0, 10, 10] },
  ];
  const sel = selectMostConfident(ds, results);
  assert.deepEqual(sel.detections.map((d) => d.id), [0, 2]);
  assert.deepEqual(sel.gt.annotations.map((a) => a.id), [5], "tie at IoU 0 -> the image's first GT object");
  assert.deepEqual(sel.imagesWithoutGt, [2]);
  const rep = evaluateInstances(ds, results, { iouType: "bbox", mostConfident: true });
  // Two detections, one GT, no match (the image-1 prediction misses; the image-2 one has no GT).
  assert.equal(rep.ap50, 0);
  assert.equal(rep.numGtObjects, 1);
});

test("multi protocol equals COCOeval on the full set (pycocotools fixtures)", () => {
  const results = readCocoResults(predFile("noisy"), gt);
  const fx = evalFx("noisy");
  const rep = evaluateInstances(gt, results);
  assert.equal(rep.protocol, "multi");
  rep.stats.forEach((v, i) => assert.ok(Math.abs(v - fx.segm_usecats1.stats[i]) <= 1e-9));
  assert.equal(rep.ap50, rep.stats[1]);
  assert.equal(rep.perCategory.length, 80);
  assert.equal(rep.perCategory[0].name, "person");
  assert.ok(Math.abs(rep.perCategory[0].ap50 - fx.segm_usecats1.ap50_per_category[0]) <= 1e-9);
  const agn = evaluateInstances(gt, results, { agnostic: true, iouType: "bbox" });
  agn.stats.forEach((v, i) => assert.ok(Math.abs(v - fx.bbox_usecats0.stats[i]) <= 1e-9));
  assert.deepEqual(agn.perCategory.map((c) => c.name), ["all"]);
});

/**
 * Runs the command in-process and returns [exit code, stdout lines]. Only text writes are captured:
 * the test runner reports to its parent through the same stdout in binary chunks, which pass through.
 */
async function runCli(argv: string[]): Promise<[number, string[]]> {
  const chunks: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (typeof chunk === "string") { chunks.push(chunk); return true; }
    return (write as (...a: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    const code = await evalInstancesCommand.run(argv);
    return [code, chunks.join("").trimEnd().split("\n")];
  } finally {
    process.stdout.write = write;
  }
}

test("eval-instances command: summary table and --json line (multi, agnostic, bbox, single)", async () => {
  assert.equal(evalInstancesCommand.name, "eval-instances");
  const good = evalFx("good");
  const [code, lines] = await runCli(["--gt-file", gtFile, "--input-file", predFile("good"), "--json"]);
  assert.equal(code, 0);
  assert.ok(lines.includes(" Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.838"), lines.join("\n"));
  const out = JSON.parse(lines[lines.length - 1]);
  out.stats.forEach((v: number, i: number) => assert.ok(Math.abs(v - good.segm_usecats1.stats[i]) <= 1e-9));
  assert.equal(out.ap50, out.stats[1]);
  assert.equal(Object.keys(out.per_category).length, 80);
  assert.ok(Math.abs(out.per_category.person - good.segm_usecats1.ap50_per_category[0]) <= 1e-9);

  const agn = evalFx("agnostic");
  const [, l2] = await runCli(["--gt-file", gtFile, "--input-file", predFile("agnostic"), "--agnostic", "--iou-type", "bbox", "--json"]);
  const o2 = JSON.parse(l2[l2.length - 1]);
  o2.stats.forEach((v: number, i: number) => assert.ok(Math.abs(v - agn.bbox_usecats0.stats[i]) <= 1e-9));
  assert.deepEqual(Object.keys(o2.per_category), ["all"]);

  const [, l3] = await runCli(["--gt-file", gtFile, "--input-file", predFile("good"), "--eval-most-confident", "--json"]);
  const o3 = JSON.parse(l3[l3.length - 1]);
  const direct = evaluateInstances(gt, readCocoResults(predFile("good"), gt), { mostConfident: true });
  assert.deepEqual(o3.stats, direct.stats);
  assert.ok(l3[0].startsWith("single protocol, iouType segm, class-aware: 308 predictions, 308 GT objects"), l3[0]);
});

test("eval-instances command: clear errors for missing flags, bad iou type and bad files", async () => {
  await assert.rejects(runCli(["--gt-file", gtFile]), (e: unknown) => e instanceof MaskdistillError && /--input-file is required/.test(e.message));
  await assert.rejects(runCli(["--gt-file", gtFile, "--input-file", predFile("good"), "--iou-type", "keypoints"]), /--iou-type expects segm or bbox/);
  await assert.rejects(runCli(["--gt-file", gtFile, "--input-file", predFile("good"), "--bogus"]), /Run 'maskdistill eval-instances --help'/);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "eval-instances-"));
  try {
    const bad = path.join(tmp, "preds.json");
    fs.writeFileSync(bad, JSON.stringify([{ image_id: 123456789, category_id: 1, score: 1, bbox: [0, 0, 1, 1] }]));
    await assert.rejects(runCli(["--gt-file", gtFile, "--input-file", bad]), (e: unknown) =>
      e instanceof MaskdistillError && e.message.includes(bad) && /image_id 123456789 is not an image of the ground truth/.test(e.message));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
