// Mask R-CNN geometry (src/instance/{anchors,boxes,levels,transform,paste}.ts) against torchvision's
// own functions (test/fixtures/maskrcnn-geometry/geometry.json, made by
// tools/make-maskrcnn-geometry-fixtures.py with Debian's python3-torch 1.13 / python3-torchvision 0.14):
// exact indices for sort/top-k/NMS/levels/small boxes, identical binary masks, ≤ 1e-6 relative error
// for floats. detectron2-preset functions on hand-built cases (detectron2 is not installable),
// and its grid-sample paste against torch's grid_sample.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { projectPath } from "../src/paths.js";
import { cellAnchors, fpnAnchors, gridAnchors, levelAnchors, torchvisionStrides } from "../src/instance/anchors.js";
import {
  argsortDescending, batchedNms, expf32, batchedNmsLoop, batchedNmsOffset, BOX_HEAD_WEIGHTS, boxArea, boxIou, clipBoxes, decodeBoxes,
  encodeBoxes, nms, nonEmptyBoxes, removeSmallBoxes, RPN_WEIGHTS, topK, type BoxWeights,
} from "../src/instance/boxes.js";
import {
  batchImages, detectron2PostprocessBoxes, detectron2ResizedSize, detectron2Transform, postprocessBoxes, rcnnTransform, resizedSize, TORCHVISION_TRANSFORM,
} from "../src/instance/transform.js";
import type { RgbImage } from "../src/data/image.js";
import { detectron2PasteRegion, expandBox, pasteMaskBinary, pasteMaskDetectron2, pasteMaskTorchvision } from "../src/instance/paste.js";
import { detectron2Levels, inferScale, poolerLevels, torchvisionLevelMapper, torchvisionLevels } from "../src/instance/levels.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const fx: any = JSON.parse(fs.readFileSync(projectPath("test", "fixtures", "maskrcnn-geometry", "geometry.json"), "utf8"));

function fromB64(s: string): Float32Array {
  const buf = Buffer.from(s, "base64");
  const out = new Float32Array(buf.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = buf.readFloatLE(4 * i);
  return out;
}

/** Largest |a − b| / max(|b|, floor) over the arrays. */
function maxRel(a: ArrayLike<number>, b: ArrayLike<number>, floor = 1): number {
  assert.equal(a.length, b.length, "length");
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(b[i]) && Number.isNaN(a[i])) continue;
    m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor));
  }
  return m;
}

/** maxRel with, per box of 4 coordinates, the box's largest |coordinate| as the floor. */
function maxRelPerBox(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i += 4) {
    const floor = Math.max(1, ...[0, 1, 2, 3].map((k) => Math.abs(b[i + k])));
    for (let k = 0; k < 4; k++) m = Math.max(m, Math.abs(a[i + k] - b[i + k]) / floor);
  }
  return m;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, "length");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// ------------------------------------------------------------------------------------ anchors

test("torchvision cell anchors: float32 then torch.round (half to even)", () => {
  const cells = [32, 64, 128, 256, 512].map((s) => Array.from(cellAnchors("torchvision", [s])));
  assert.deepEqual(cells, fx.anchors.cell);
  // size 32, ratio 0.5: w = 45.25…, h = 22.62… → [−23, −11, 23, 11]
  assert.deepEqual(cells[0].slice(0, 4), [-23, -11, 23, 11]);
});

test("torchvision anchors per image size and FPN feature sizes (stride = image // feature)", () => {
  for (const c of fx.anchors.cases) {
    const [ih, iw] = c.image;
    const { anchors, perLevel } = fpnAnchors("torchvision", c.features.map(([featH, featW]: number[]) => ({ featH, featW })), ih, iw);
    assert.deepEqual(perLevel, c.features.map(([h, w]: number[]) => h * w * 3));
    assert.deepEqual(Array.from(anchors), c.anchors, `image ${ih}×${iw}`);
  }
  // 100×75 with p2 25×19: strides (4, 3) — 75 // 19 = 3
  assert.deepEqual(torchvisionStrides(100, 75, 25, 19), [4, 3]);
});

test("detectron2 anchors: unrounded float32 cell anchors, fixed strides, offset 0, same order", () => {
  const cell = cellAnchors("detectron2", [32]);
  // anchor_generator.py generate_cell_anchors: w = sqrt(32²/0.5) = 45.2548…, h = 0.5·w
  const w = Math.sqrt(2048);
  assert.deepEqual(Array.from(cell), [-w / 2, -w / 4, w / 2, w / 4, -16, -16, 16, 16, -w / 4, -w / 2, w / 4, w / 2].map(Math.fround));
  const p3 = levelAnchors("detectron2", 1, 2, 3, 999, 999); // stride 8 whatever the image size
  assert.equal(p3.length, 2 * 3 * 3 * 4);
  // location (row 1, col 2) is the 6th, shift (16, 8); its ratio-1 anchor is the 2nd of the 3
  const a = (5 * 3 + 1) * 4;
  assert.deepEqual(Array.from(p3.slice(a, a + 4)), [16 - 32, 8 - 32, 16 + 32, 8 + 32]);
  const ratio05 = Array.from(p3.slice(0, 4));
  const w64 = Math.sqrt(64 * 64 / 0.5);
  assert.deepEqual(ratio05, [-w64 / 2, -w64 / 4, w64 / 2, w64 / 4].map(Math.fround));
  // an offset of 0.5 moves every anchor by half a stride
  const off = gridAnchors(cellAnchors("detectron2", [32]), 1, 1, 4, 4, 0.5);
  assert.equal(off[4 + 0], -16 + 2);
});

// ------------------------------------------------------------------------------------ box coder

test("decode (BoxCoder.decode_single, weights 1,1,1,1 and 10,10,5,5, dw/dh clamp) = torchvision", () => {
  for (const c of fx.decode) {
    const weights = c.weights as BoxWeights;
    assert.deepEqual(weights, c.k === 1 ? RPN_WEIGHTS : BOX_HEAD_WEIGHTS);
    const got = decodeBoxes(Float32Array.from(c.deltas), Float32Array.from(c.boxes), weights);
    // bit for bit: exp is SLEEF's expf as in PyTorch (expf32); the brief's bound was 1e-6 relative
    assert.equal(maxRelPerBox(got, c.decoded), 0, `weights ${weights}`);
  }
});

test("expf32 = torch.exp on float32 (SLEEF expf): hand-checked values", () => {
  // values printed by torch.exp(torch.tensor([...])) on Debian's python3-torch 1.13
  assert.equal(expf32(1), 2.7182817459106445);
  assert.equal(expf32(Math.log(1000 / 16)), 62.500003814697266);
  assert.equal(expf32(-103.9), 1.401298464324817e-45);
  assert.equal(expf32(88.7), 3.325976864406685e38);
  assert.equal(expf32(99.9), Infinity);
  assert.equal(expf32(-0.5), 0.6065306663513184);
});

// torch.log is SLEEF's logf, reproduced only to 1 ulp here (Math.log): 3 of 640 targets differ in the last bit
test("encode (encode_boxes) = torchvision", () => {
  for (const c of fx.encode) {
    const got = encodeBoxes(Float32Array.from(c.gt), Float32Array.from(c.proposals), c.weights as BoxWeights);
    const rel = maxRel(got, c.targets, 1e-3);
    assert.ok(rel <= 1e-6, `weights ${c.weights}: max rel ${rel}`);
  }
});

test("clip, remove_small_boxes (≥ float32 min size), area, IoU = torchvision", () => {
  assert.deepEqual(Array.from(clipBoxes(fx.clip.boxes, fx.clip.size[0], fx.clip.size[1])), fx.clip.clipped);
  assert.deepEqual(Array.from(removeSmallBoxes(fx.small.boxes, 1e-3)), fx.small["keep_1e-3"]);
  assert.deepEqual(Array.from(removeSmallBoxes(fx.small.boxes, 1e-2)), fx.small["keep_1e-2"]);
  assert.deepEqual(Array.from(boxArea(fx.iou.a)), fx.iou.area_a);
  assert.ok(maxRel(boxIou(fx.iou.a, fx.iou.b), fx.iou.iou) <= 1e-6);
});

test("detectron2 nonempty (> threshold) and pairwise_iou (0 where disjoint)", () => {
  const b = [0, 0, 0, 5, 0, 0, 1e-3, 1e-3, 1, 1, 2, 2, 5, 5, 4, 9];
  assert.deepEqual(Array.from(nonEmptyBoxes(b)), [1, 2]); // structures/boxes.py: widths > 0 & heights > 0
  assert.deepEqual(Array.from(nonEmptyBoxes(b, 1e-3)), [2]);
  assert.deepEqual(Array.from(removeSmallBoxes(b, 1e-3)), [1, 2]); // torchvision keeps the 1e-3 box (≥)
  const iou = boxIou([0, 0, 0, 0], [0, 0, 0, 0], true);
  assert.deepEqual(Array.from(iou), [0]);
  assert.ok(Number.isNaN(boxIou([0, 0, 0, 0], [0, 0, 0, 0])[0])); // torchvision: 0/0
});

// ------------------------------------------------------------------------------------ sort / top-k / NMS

test("argsortDescending = Tensor.sort(descending=True) on the CPU, ties included (libstdc++ introsort)", () => {
  for (const c of fx.sort) assert.deepEqual(Array.from(argsortDescending(c.values)), c.order, `n = ${c.values.length}`);
});

test("topK = torch.topk order, ties included (partial_sort / nth_element + sort)", () => {
  for (const c of fx.topk) {
    for (const [k, idx] of Object.entries(c.topk)) assert.deepEqual(Array.from(topK(c.values, Number(k))), idx, `n = ${c.values.length}, k = ${k}`);
  }
});

test("nms = torchvision.ops.nms (exact indices, equal scores and duplicate boxes)", () => {
  for (const c of fx.nms) assert.deepEqual(Array.from(nms(c.boxes, c.scores, c.threshold)), c.keep, c.name);
});

test("nms on many boxes (the grid path from 64 boxes) keeps exactly what the all-pairs greedy loop keeps", () => {
  // the all-pairs loop of torchvision's CPU kernel, written out plainly: visiting order = stable descending score
  const greedy = (b: Float32Array, s: Float32Array, thr: number): number[] => {
    const f = Math.fround, n = s.length;
    const order = Array.from({ length: n }, (_, i) => i).sort((p, q) => (s[q] - s[p]) || (p - q));
    const area = (i: number) => f(f(b[4 * i + 2] - b[4 * i]) * f(b[4 * i + 3] - b[4 * i + 1]));
    const gone = new Uint8Array(n), keep: number[] = [];
    for (let a = 0; a < n; a++) {
      const i = order[a];
      if (gone[i]) continue;
      keep.push(i);
      for (let c = a + 1; c < n; c++) {
        const j = order[c];
        const w = f(Math.min(b[4 * i + 2], b[4 * j + 2]) - Math.max(b[4 * i], b[4 * j]));
        const h = f(Math.min(b[4 * i + 3], b[4 * j + 3]) - Math.max(b[4 * i + 1], b[4 * j + 1]));
        const inter = f((w > 0 ? w : 0) * (h > 0 ? h : 0));
        if (f(inter / f(f(area(i) + area(j)) - inter)) > thr) gone[j] = 1;
      }
    }
    return keep;
  };
  let seed = 3;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let t = 0; t < 40; t++) {
    const n = [64, 65, 300, 1200][t % 4], clustered = t % 3 === 0, big = t % 5 === 0;
    const b = new Float32Array(4 * n), s = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const cx = clustered ? 80 + rnd() * 20 : rnd() * 176, cy = clustered ? 70 + rnd() * 20 : rnd() * 176;
      const w = (big ? 400 : 64) * rnd(), h = (big ? 400 : 64) * rnd();
      b.set([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 4 * i);
      if (t % 4 === 1 && i % 9 === 0) b[4 * i + 2] = b[4 * i];             // zero width: never overlaps
      if (t % 4 === 2 && i % 13 === 0) b[4 * i + 3] = b[4 * i + 1] - 5;    // negative height
      if (t % 8 === 3 && i % 31 === 0) b[4 * i] = NaN;
      if (t % 2 === 0) { b[4 * i] = Math.round(b[4 * i]); b[4 * i + 2] = Math.round(b[4 * i + 2]); }   // shared edges
      s[i] = t % 4 === 0 ? Math.round(rnd() * 5) : rnd();                  // ties
    }
    for (const thr of [0, 0.3, 0.5, 0.7, 1]) assert.deepEqual(Array.from(nms(b, s, thr)), greedy(b, s, thr), `case ${t}, ${n} boxes, threshold ${thr}`);
  }
});

test("batched_nms = torchvision (coordinate trick ≤ 4000 coordinates, per-class loop above)", () => {
  for (const c of fx.batched_nms) {
    assert.deepEqual(Array.from(batchedNms(c.boxes, c.scores, c.groups, c.threshold)), c.keep, c.name);
  }
  const big = fx.batched_nms.find((c: { boxes: number[] }) => c.boxes.length > 4000);
  const small = fx.batched_nms.find((c: { boxes: number[] }) => c.boxes.length <= 4000);
  assert.ok(big && small);
  // the two variants keep the same set here; the order of equal scores may differ
  const sorted = (a: Int32Array) => Array.from(a).sort((x, y) => x - y);
  assert.deepEqual(sorted(batchedNmsOffset(big.boxes, big.scores, big.groups, big.threshold)), sorted(batchedNmsLoop(big.boxes, big.scores, big.groups, big.threshold)));
});

// ------------------------------------------------------------------------------------ levels

test("torchvision level mapper: scales inferred as 2^round(log2), k_min/k_max, levels = LevelMapper", () => {
  for (const c of fx.levels.cases) {
    const { scales, mapper } = torchvisionLevelMapper(c.features.map((f: number[]) => f[0]), c.image_sizes);
    assert.deepEqual(scales, c.scales);
    assert.equal(mapper.kMin, c.k_min);
    assert.equal(mapper.kMax, c.k_max);
    assert.deepEqual(Array.from(torchvisionLevels(fx.levels.boxes, mapper)), c.levels);
  }
  assert.equal(inferScale(25, 100), 0.25);
});

test("detectron2 assign_boxes_to_levels (eps 1e-8 inside the log2)", () => {
  assert.deepEqual(Array.from(detectron2Levels(fx.levels.boxes)), fx.levels.detectron2);
  // hand-built: sqrt(area) = 224 → p4 (index 2); 223.99 → p3; 112 → p3; 111.99 → p2; huge → p5
  const sq = (s: number) => [0, 0, s, s];
  assert.deepEqual(Array.from(detectron2Levels([...sq(224), ...sq(223.99), ...sq(112), ...sq(111.99), ...sq(5000), ...sq(1)])), [2, 1, 1, 0, 3, 0]);
});

test("poolerLevels: each preset's assignment, and a canonical box side other than 224 moves the boxes up a level per halving", () => {
  const sq = (s: number) => [0, 0, s, s];
  const boxes = Float32Array.from([...sq(224), ...sq(112), ...sq(56), ...sq(28)]);
  const d2 = poolerLevels("detectron2", [200, 100, 50, 25], [[800, 800]]);
  assert.deepEqual([d2.scales, Array.from(d2.levelsOf(boxes))], [[1 / 4, 1 / 8, 1 / 16, 1 / 32], [2, 1, 0, 0]]);
  assert.deepEqual(Array.from(poolerLevels("detectron2", [200, 100, 50, 25], [[800, 800]], 56).levelsOf(boxes)), [3, 3, 2, 1]);
  const tv = poolerLevels("torchvision", [200, 100, 50, 25], [[800, 800]]);
  assert.deepEqual([tv.scales, Array.from(tv.levelsOf(boxes))], [[1 / 4, 1 / 8, 1 / 16, 1 / 32], Array.from(torchvisionLevels(boxes))]);
  assert.deepEqual(Array.from(poolerLevels("torchvision", [200, 100, 50, 25], [[800, 800]], 56).levelsOf(boxes)), [3, 3, 2, 1]);
});

// ------------------------------------------------------------------------------------ transform

test("resized sizes (min 800, max 1333) and padded batch sizes = GeneralizedRCNNTransform", () => {
  for (const c of fx.transform.sizes_800_1333) {
    const [h, w] = c.input;
    const r = resizedSize(h, w, 800, 1333);
    assert.deepEqual([r.height, r.width], c.resized, `${h}×${w}`);
    const b = batchImages([{ channels: 1, height: r.height, width: r.width, data: new Float32Array(r.height * r.width) }], 32);
    assert.deepEqual(b.shape.slice(2), c.batch, `${h}×${w} batch`);
  }
});

const rgbOf = (width: number, height: number, px: number[]): RgbImage => ({ width, height, data: Uint8Array.from(px) });

// bit for bit on this machine's PyTorch (AVX2 kernels: fused multiply-adds in the bilinear kernel);
// the brief's bound is |Δ| ≤ 1e-6, the committed fixture is matched exactly
test("the transformed batch of a small real image (normalise, bilinear resize up and down) = torchvision, bit for bit", () => {
  const t = fx.transform;
  const img = rgbOf(t.image.width, t.image.height, t.image.rgb);
  for (const c of t.image_cases) {
    const out = rcnnTransform([img], { ...TORCHVISION_TRANSFORM, minSize: c.min_size, maxSize: c.max_size });
    assert.deepEqual(out.imageSizes, [c.resized]);
    assert.deepEqual(out.shape, c.batch);
    const d = maxAbs(out.data, fromB64(c.b64));
    assert.equal(d, 0, `min ${c.min_size} max ${c.max_size}: max |Δ| ${d}`);
  }
  const p = t.pair;
  const out = rcnnTransform([img, rgbOf(40, 52, p.rgb2)], { ...TORCHVISION_TRANSFORM, minSize: p.min_size, maxSize: p.max_size });
  assert.deepEqual(out.imageSizes, p.sizes);
  assert.deepEqual(out.shape, p.batch);
  assert.equal(maxAbs(out.data, fromB64(p.b64)), 0);
});

test("postprocess box rescale = resize_boxes (float32 ratios)", () => {
  for (const c of fx.transform.postprocess) {
    assert.ok(maxRel(postprocessBoxes(c.boxes, c.resized, c.original), c.out) <= 1e-7);
  }
});

// ------------------------------------------------------------------------------------ paste

function pasteCase() {
  const p = fx.paste;
  const M = p.mask_size, n = p.boxes.length / 4;
  const masks = Array.from({ length: n }, (_, k) => Float32Array.from(p.masks.slice(k * M * M, (k + 1) * M * M)));
  const boxes = Array.from({ length: n }, (_, k) => p.boxes.slice(4 * k, 4 * k + 4) as number[]);
  return { p, M, n, masks, boxes, H: p.height as number, W: p.width as number };
}

test("torchvision paste_masks_in_image (padding 1, boxes partly outside) = torchvision; binary > 0.5 identical", () => {
  const { p, M, n, masks, boxes, H, W } = pasteCase();
  const want = fromB64(p.torchvision_b64);
  for (let k = 0; k < n; k++) {
    const got = pasteMaskTorchvision(masks[k], M, boxes[k], H, W);
    const ref = want.subarray(k * H * W, (k + 1) * H * W);
    assert.equal(maxAbs(got, ref), 0, `box ${k}: soft mask differs`); // bit for bit (brief: ≤ 1e-6)
    const bin = pasteMaskBinary("torchvision", masks[k], M, boxes[k], H, W);
    assert.deepEqual(bin, Uint8Array.from(ref, (v) => (v > 0.5 ? 1 : 0)), `box ${k} binary`);
    assert.equal(bin.reduce((s, v) => s + v, 0), p.torchvision_binary[k]);
  }
});

test("detectron2 paste (grid_sample on the box's region, ≥ 0.5) = torch's grid_sample; binary identical", () => {
  const { p, M, n, masks, boxes, H, W } = pasteCase();
  const want = fromB64(p.detectron2_b64);
  for (let k = 0; k < n; k++) {
    const got = pasteMaskDetectron2(masks[k], M, boxes[k], H, W);
    const ref = want.subarray(k * H * W, (k + 1) * H * W);
    assert.equal(maxAbs(got, ref), 0, `box ${k}: soft mask differs`); // bit for bit (brief: ≤ 1e-6)
    const bin = pasteMaskBinary("detectron2", masks[k], M, boxes[k], H, W);
    assert.deepEqual(bin, Uint8Array.from(ref, (v) => (v >= 0.5 ? 1 : 0)), `box ${k} binary`);
    assert.equal(bin.reduce((s, v) => s + v, 0), p.detectron2_binary_count[k]);
  }
});

test("paste by hand: expand_boxes, a box wholly outside, detectron2's region bounds", () => {
  // (28 + 2)/28 about the centre: [10, 10, 38, 38] → [9, 9, 39, 39]
  assert.deepEqual(expandBox([10, 10, 38, 38], 30 / 28), [9, 9, 39, 39]);
  const ones = new Float32Array(28 * 28).fill(1);
  assert.equal(pasteMaskTorchvision(ones, 28, [100, 100, 120, 120], 20, 20).reduce((s, v) => s + v, 0), 0);
  assert.equal(pasteMaskDetectron2(ones, 28, [100, 100, 120, 120], 20, 20).reduce((s, v) => s + v, 0), 0);
  // mask_ops.py: x0_int = max(floor(x0) − 1, 0), x1_int = min(ceil(x1) + 1, W)
  assert.deepEqual(detectron2PasteRegion([2.5, 0.2, 7.1, 9.9], 10, 8), [1, 0, 8, 10]);
  // an all-ones mask pasted by detectron2 covers exactly the pixels whose centres are inside the box
  const bin = pasteMaskBinary("detectron2", ones, 28, [2, 3, 6, 5], 8, 8);
  const rows = Array.from({ length: 8 }, (_, y) => Array.from(bin.subarray(y * 8, y * 8 + 8)).join(""));
  assert.deepEqual(rows, ["00000000", "00000000", "00000000", "00111100", "00111100", "00000000", "00000000", "00000000"]);
});

// ------------------------------------------------------------------------------------ detectron2 preprocessing

test("detectron2 ResizeShortestEdge sizes (800, 1333; int(x + 0.5))", () => {
  for (const c of fx.detectron2_transform.sizes_800_1333) assert.deepEqual(detectron2ResizedSize(c.input[0], c.input[1], 800, 1333), c.resized, `${c.input}`);
  // by hand: 480×640 → 800×1066.67 → 800×1067 (torchvision floors to 1066)
  assert.deepEqual(detectron2ResizedSize(480, 640), [800, 1067]);
  assert.deepEqual(resizedSize(480, 640), { height: 800, width: 1066, scale: Math.fround(Math.fround(1 / 480) * 800) });
});

test("detectron2 preprocessing (PIL bilinear on uint8, BGR/RGB mean/std, pad to 32) = its PIL/torch re-expression, bit for bit", () => {
  const t = fx.transform;
  const img = rgbOf(t.image.width, t.image.height, t.image.rgb);
  for (const c of fx.detectron2_transform.image_cases) {
    const out = detectron2Transform([img], { shortEdge: c.short, maxSize: c.max_size, format: c.format, pixelMean: c.mean, pixelStd: c.std, sizeDivisible: 32 });
    assert.deepEqual(out.imageSizes, [c.resized]);
    assert.deepEqual(out.shape, c.batch);
    assert.equal(maxAbs(out.data, fromB64(c.b64)), 0, c.format);
  }
});

test("detectron2 detector_postprocess boxes: scale, clip, nonempty", () => {
  const p = fx.detectron2_transform.postprocess;
  const r = detectron2PostprocessBoxes(p.boxes, p.resized, p.output);
  assert.deepEqual(Array.from(r.keep), p.keep);
  assert.ok(maxRel(r.boxes, p.out) <= 1e-7);
});
