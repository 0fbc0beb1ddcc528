// COCOeval against pycocotools: every number of test/fixtures/pycocotools/eval_{good,noisy,agnostic}.json
// (segm and bbox, useCats 1 and 0) within 1e-9, plus hand-checked semantics and the printed summary.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { projectPath } from "../src/paths.js";
import { readCocoDataset, readCocoResults, type CocoDataset, type CocoResult } from "../src/data/coco.js";
import {
  defaultParams, evaluateResults, formatSummary, linspace, loadResults, pyFixed, type IouType,
} from "../src/evaluation/cocoeval.js";
import { rleArea, rleFromCoco, rleToBbox } from "../src/mask/rle.js";

const TOL = 1e-9;
const gt = readCocoDataset(projectPath("data", "coco-mini", "instances.json"));

interface EvalFixture { stats: number[]; ap50_per_category: number[] }

for (const name of ["good", "noisy", "agnostic"]) {
  test(`pycocotools parity: preds_${name} (segm/bbox x useCats 1/0)`, () => {
    const results = readCocoResults(projectPath("test", "fixtures", "pycocotools", `preds_${name}.json`), gt);
    const fx: Record<string, EvalFixture> = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "pycocotools", `eval_${name}.json`), "utf8"));
    for (const iouType of ["segm", "bbox"] as IouType[]) {
      for (const useCats of [true, false]) {
        const key = `${iouType}_usecats${useCats ? 1 : 0}`;
        const want = fx[key];
        const got = evaluateResults(gt, results, { iouType, useCats });
        assert.equal(got.stats.length, 12);
        got.stats.forEach((v, i) => assert.ok(Math.abs(v - want.stats[i]) <= TOL, `${name} ${key} stats[${i}] = ${v}, pycocotools ${want.stats[i]}`));
        assert.equal(got.ap50PerCategory.length, want.ap50_per_category.length, `${name} ${key} categories`);
        got.ap50PerCategory.forEach((v, k) => assert.ok(
          Math.abs(v - want.ap50_per_category[k]) <= TOL, `${name} ${key} AP50 of category ${k} = ${v}, pycocotools ${want.ap50_per_category[k]}`));
        // stats[1] is the mean of the per-category AP50 over categories with GT.
        const valid = got.ap50PerCategory.filter((v) => v > -1);
        assert.ok(Math.abs(valid.reduce((s, v) => s + v, 0) / valid.length - got.stats[1]) < 1e-12);
        // Array shapes as pycocotools: precision [T,R,K,A,M], recall [T,K,A,M].
        const K = useCats ? 80 : 1;
        assert.equal(got.precision.length, 10 * 101 * K * 4 * 3);
        assert.equal(got.recall.length, 10 * K * 4 * 3);
      }
    }
  });
}

test("parameters: iouThrs and recThrs as numpy.linspace, maxDets and area ranges", () => {
  const p = defaultParams(gt, "segm");
  assert.equal(p.iouThrs.length, 10);
  assert.equal(p.recThrs.length, 101);
  const step = (0.95 - 0.5) / 9;
  p.iouThrs.forEach((v, i) => assert.equal(v, i === 9 ? 0.95 : i * step + 0.5));
  assert.equal(p.iouThrs[5], 0.75, "stats[2] selects IoU .75 by equality, as pycocotools");
  p.recThrs.forEach((v, i) => assert.equal(v, i === 100 ? 1 : i * 0.01));
  assert.deepEqual(p.maxDets, [1, 10, 100]);
  assert.deepEqual(p.areaRng, [[0, 1e10], [0, 1024], [1024, 9216], [9216, 1e10]]);
  assert.equal(p.imgIds.length, 313);
  assert.deepEqual(p.catIds, [...p.catIds].sort((a, b) => a - b));
  assert.deepEqual(Array.from(linspace(0, 1, 3)), [0, 0.5, 1]);
});

test("loadRes semantics: the first result decides how area and box are derived", () => {
  const results = readCocoResults(projectPath("test", "fixtures", "pycocotools", "preds_good.json"), gt).slice(0, 20);
  // With boxes: area = w*h of the box, ids 1..n.
  const withBox = loadResults(gt, results);
  withBox.forEach((d, i) => {
    assert.equal(d.id, i + 1);
    assert.equal(d.area, results[i].bbox![2] * results[i].bbox![3]);
  });
  // Masks only: area = mask area, bbox = the mask's tight box.
  const masksOnly: CocoResult[] = results.map(({ bbox: _b, ...r }) => r);
  loadResults(gt, masksOnly).forEach((d, i) => {
    const rle = rleFromCoco(results[i].segmentation!, 0, 0);
    assert.equal(d.area, rleArea(rle));
    assert.deepEqual(d.bbox, rleToBbox(rle));
  });
  // Boxes only: the segmentation is the box polygon.
  const boxesOnly: CocoResult[] = results.map(({ segmentation: _s, ...r }) => r);
  const [x, y, w, h] = results[0].bbox!;
  assert.deepEqual(loadResults(gt, boxesOnly)[0].segmentation, [[x, y, x, y + h, x + w, y + h, x + w, y]]);
  assert.deepEqual(loadResults(gt, []), []);
});

test("hand-checked case: TP, FP, TP on one image", () => {
  // Two 10x10 GT boxes (area 100: 'small'); detections: exact hit (0.9), miss (0.8), exact hit (0.7).
  const ds: CocoDataset = {
    images: [{ id: 1, width: 64, height: 64, file_name: "x.png" }],
    categories: [{ id: 1, name: "thing" }, { id: 2, name: "other" }],
    annotations: [
      { id: 1, image_id: 1, category_id: 1, bbox: [0, 0, 10, 10], area: 100, iscrowd: 0 },
      { id: 2, image_id: 1, category_id: 1, bbox: [20, 20, 10, 10], area: 100, iscrowd: 0 },
    ],
  };
  const results: CocoResult[] = [
    { image_id: 1, category_id: 1, score: 0.9, bbox: [0, 0, 10, 10] },
    { image_id: 1, category_id: 1, score: 0.8, bbox: [45, 45, 10, 10] },
    { image_id: 1, category_id: 1, score: 0.7, bbox: [20, 20, 10, 10] },
  ];
  const ev = evaluateResults(ds, results, { iouType: "bbox" });
  // recall 0.5, 0.5, 1 and envelope precision 1, 2/3, 2/3: 51 recall points at 1, 50 at 2/3.
  const ap = (51 * 1 + 50 * (2 / 3)) / 101;
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-12;
  assert.ok(close(ev.stats[0], ap) && close(ev.stats[1], ap) && close(ev.stats[2], ap) && close(ev.stats[3], ap));
  assert.equal(ev.stats[4], -1, "no medium GT");
  assert.equal(ev.stats[5], -1, "no large GT");
  assert.equal(ev.stats[6], 0.5, "AR@1: only the top detection counts");
  assert.equal(ev.stats[7], 1);
  assert.deepEqual(ev.ap50PerCategory.map((v) => Math.round(v * 1e12) / 1e12), [Math.round(ap * 1e12) / 1e12, -1]);
  // A crowd GT absorbs the miss: it is then ignored rather than a false positive.
  const crowd = structuredClone(ds);
  crowd.annotations.push({ id: 3, image_id: 1, category_id: 1, bbox: [40, 40, 20, 20], area: 400, iscrowd: 1 });
  const ev2 = evaluateResults(crowd, results, { iouType: "bbox" });
  assert.ok(close(ev2.stats[1], 1), `AP50 with the crowd region = ${ev2.stats[1]}`);
});

test("formatSummary prints pycocotools' 12 lines exactly", () => {
  const stats = [0.6179927681623067, 0.837917103914853, 0.6622865563379923, 0.43745213597952626, 0.7365759423976784,
    0.8253314368469379, 0.42763762630422986, 0.6865410136656993, 0.6932232667899635, 0.48563984047778763, -1, 0.0625];
  assert.equal(formatSummary(stats, "segm"), [
    " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.618",
    " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.838",
    " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.662",
    " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.437",
    " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.737",
    " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.825",
    " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.428",
    " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.687",
    " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.693",
    " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.486",
    " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000",
    " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.062",
  ].join("\n"));
  // Python rounds exact binary ties half to even; JS toFixed would round them up.
  assert.equal(pyFixed(0.0625, 3), "0.062");
  assert.equal(pyFixed(0.1875, 3), "0.188");
  assert.equal(pyFixed(0.3125, 3), "0.312");
  assert.equal(pyFixed(0.8125, 3), "0.812");
  assert.equal(pyFixed(0.0005, 3), (0.0005).toFixed(3), "0.0005 is not an exact tie in binary");
});
