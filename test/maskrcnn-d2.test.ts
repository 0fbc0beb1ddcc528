// Mask R-CNN, detectron2 preset: detectron2-layout checkpoints (.pth {"model": …} and model-zoo style
// .pkl of numpy arrays) and detectron2's inference steps (mask_rcnn_R_50_FPN_3x test-time defaults at
// 320/512), against test/fixtures/maskrcnn-d2 — made by tools/make-maskrcnn-d2-fixtures.py, which
// RE-IMPLEMENTS detectron2's steps in plain torch/torchvision (detectron2 itself is not installable
// here), on a narrow network with the real structure (MSRA R-50: stride in the 1×1 convs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as fsp from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { projectPath } from "../src/paths.js";
import { initEngine } from "../src/engine/index.js";
import { readCheckpoint, readStateDict, toFloat32, type TensorData } from "../src/modeling/checkpoint/index.js";
import { maskRcnnFromAnyStateDict, maskRcnnFromDetectron2StateDict, maskRcnnLayout, maskRcnnVariables, type MaskRcnnNet } from "../src/engine/models/maskrcnn.js";
import { detectImage, detectron2Inference, type ImageDetections } from "../src/instance/maskrcnn.js";
import { loadRgb } from "../src/data/image.js";
import { compareDetections, matchBoxes } from "./maskrcnnParity.js";
import { readF32, relError } from "./helpers.js";

const DIR = projectPath("test", "fixtures", "maskrcnn-d2");
const manifest = JSON.parse(fs.readFileSync(`${DIR}/manifest.json`, "utf8"));
const fx = (name: string) => readF32(`${DIR}/${name}`);
const cfg = detectron2Inference({ minSize: 320, maxSize: 512 });

let net: MaskRcnnNet;
const results = new Map<string, ImageDetections>();

before(async () => {
  await initEngine({ backend: "wasm", threads: 1 });
  const { stateDict } = await readStateDict(`${DIR}/narrow_maskrcnn_d2.pth`);
  net = maskRcnnFromDetectron2StateDict(stateDict, "narrow_maskrcnn_d2.pth");
  for (const im of manifest.images) results.set(im.stem, await detectImage(net, await loadRgb(projectPath(im.file)), cfg, { keepSteps: true }));
});
after(() => tf.dispose(maskRcnnVariables(net)));

test("model-zoo style .pkl: numpy arrays (float32/64, Fortran order, big-endian, int64, 0-d, empty) read exactly, protocols 2 and 4", async () => {
  for (const f of ["tiny_p2.pkl", "tiny_p4.pkl"]) {
    const root = await readCheckpoint(`${DIR}/${f}`) as Map<string, unknown>;
    assert.equal(root.get("__author__"), "tools/make-maskrcnn-d2-fixtures.py");
    assert.equal(root.get("matching_heuristics"), true);
    const model = root.get("model") as Map<string, TensorData>;
    const want: Record<string, { dtype: string; shape: number[]; values: number[] }> = manifest.tiny_pickles;
    assert.deepEqual([...model.keys()], Object.keys(want));
    const dtypeOf: Record<string, string> = { float32: "float32", ">f4": "float32", float64: "float64", int64: "int64", uint8: "uint8" };
    for (const [k, w] of Object.entries(want)) {
      const t = model.get(k)!;
      assert.equal(t.dtype, dtypeOf[w.dtype], `${f} ${k} dtype`);
      assert.deepEqual(t.shape, w.shape, `${f} ${k} shape`);
      const got = Array.from(t.data as ArrayLike<number | bigint>, (v) => (typeof v === "bigint" ? Number(v) : v));
      assert.deepEqual(got, w.values, `${f} ${k} values`);
    }
  }
});

test("plain pickles stay safe: a non-allowed global is refused, object arrays and unknown dtypes are errors naming the file", async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "d2pkl-"));
  try {
    const write = async (name: string, body: number[]) => { const f = path.join(dir, name); await fsp.writeFile(f, Uint8Array.from([0x80, 2, ...body, 0x2e])); return f; };
    const g = (m: string, n: string) => [0x63, ...Buffer.from(`${m}\n${n}\n`, "latin1")];
    const sys = await write("evil.pkl", [...g("posix", "system"), 0x8c, 4, ...Buffer.from("true"), 0x85, 0x52]);
    await assert.rejects(readCheckpoint(sys), /evil\.pkl: refusing to load: the pickle references posix\.system/);
    const obj = await write("object.pkl", [...g("numpy", "dtype"), 0x8c, 2, ...Buffer.from("O8"), 0x89, 0x88, 0x87, 0x52]);
    await assert.rejects(readCheckpoint(obj), /object\.pkl: numpy\.dtype: unsupported numpy dtype O8/);
    // an ndarray whose data is a list (object array)
    const list = await write("list.pkl", [...g("numpy.core.multiarray", "_reconstruct"), ...g("numpy", "ndarray"), 0x4b, 0, 0x85, 0x43, 1, 0x62, 0x87, 0x52,
      0x28, 0x4b, 1, 0x4b, 1, 0x85, ...g("numpy", "dtype"), 0x8c, 2, ...Buffer.from("f4"), 0x89, 0x88, 0x87, 0x52, 0x89, 0x5d, 0x74, 0x62]);
    await assert.rejects(readCheckpoint(list), /list\.pkl: numpy array: array data is not bytes/);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("a .pkl of a detectron2 state dict loads into the same network as the .pth (layout recognised from the keys)", async () => {
  const { stateDict } = await readStateDict(`${DIR}/narrow_maskrcnn_d2.pth`);
  assert.equal(maskRcnnLayout(stateDict), "detectron2");
  // the same tensors as a plain pickle of numpy arrays, written here as Python 2 numpy did (data as str)
  const pkl = await writeNumpyPickle(stateDict);
  try {
    const { stateDict: fromPkl, layout } = await readStateDict(pkl);
    assert.equal(layout, "model");
    const { net: n2, layout: l2 } = maskRcnnFromAnyStateDict(fromPkl, pkl);
    assert.equal(l2, "detectron2");
    const a = maskRcnnVariables(net), b = maskRcnnVariables(n2);
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) assert.deepEqual(a[i].dataSync(), b[i].dataSync());
    tf.dispose(b);
  } finally {
    await fsp.rm(path.dirname(pkl), { recursive: true, force: true });
  }
});

test("detectron2 classes: background (last row) moves to label 0, bbox/mask predictors get a zero background slot", async () => {
  const { stateDict } = await readStateDict(`${DIR}/narrow_maskrcnn_d2.pth`);
  assert.equal(net.numClasses, 21);
  assert.equal(net.fpnChannels, 16);
  assert.deepEqual([net.body.layer1.length, net.body.layer2.length, net.body.layer3.length, net.body.layer4.length], [3, 4, 6, 3]);
  // MSRA R-50: the stride of res3..res5's first block sits in the 1×1 conv1
  for (const st of [net.body.layer2, net.body.layer3, net.body.layer4]) {
    assert.deepEqual([st[0].conv1.stride, st[0].conv2.stride, st[0].downsample!.stride], [2, 1, 2]);
  }
  const cb = toFloat32(stateDict.get("roi_heads.box_predictor.cls_score.bias")!);
  const ours = await net.clsScore.b.data();
  assert.equal(ours[0], cb[20]);
  for (let c = 1; c <= 20; c++) assert.equal(ours[c], cb[c - 1]);
  const bb = toFloat32(stateDict.get("roi_heads.box_predictor.bbox_pred.bias")!), ob = await net.bboxPred.b.data();
  assert.deepEqual(Array.from(ob.subarray(0, 4)), [0, 0, 0, 0]);
  assert.deepEqual(Array.from(ob.subarray(4)), Array.from(bb));
  const mb = toFloat32(stateDict.get("roi_heads.mask_head.predictor.bias")!), om = await net.maskLogits.bias.data();
  assert.equal(om[0], 0);
  assert.deepEqual(Array.from(om.subarray(1)), Array.from(mb));
});

test("a torchvision checkpoint is recognised as such; other files get a clear message naming the file", async () => {
  const tv = await readStateDict(projectPath("test", "fixtures", "maskrcnn", "narrow_maskrcnn.pth"));
  assert.equal(maskRcnnLayout(tv.stateDict), "torchvision");
  const tiny = await readStateDict(`${DIR}/tiny_p4.pkl`);
  assert.throws(() => maskRcnnFromAnyStateDict(tiny.stateDict, "tiny_p4.pkl"), /tiny_p4\.pkl.*not a Mask R-CNN R50-FPN checkpoint|not a Mask R-CNN R50-FPN checkpoint.*tiny_p4/s);
  const broken = new Map(tv.stateDict);
  broken.delete("backbone.body.conv1.weight");
  broken.set("backbone.bottom_up.stem.conv1.weight", tv.stateDict.get("backbone.body.conv1.weight")!);
  assert.throws(() => maskRcnnFromAnyStateDict(broken, "mixed.pth"), (e: Error) => /mixed\.pth/.test(String((e as { file?: string }).file ?? e.message)) && /detectron2 Mask R-CNN checkpoint/.test(e.message));
});

for (const [k, im] of (manifest.images as any[]).entries()) {
  test(`image ${k + 1} (${im.stem}): proposals, box-head logits, detections and masks match the re-implemented detectron2 steps`, (t) => {
    const r = results.get(im.stem)!, s = r.steps!;
    assert.deepEqual(s.imageSize, im.image_size);
    assert.deepEqual(s.batchShape, im.batched_shape);
    const refProps = fx(im.proposals.file), refLogits = fx(im.proposal_logits.file);
    assert.equal(s.proposals.length, refProps.length, "proposal count");
    const pp = matchBoxes(s.proposals, refProps, 0.99);
    const inOrder = pp.filter(([a, b]) => a === b).length;
    let objErr = 0;
    for (const [a, b] of pp) objErr = Math.max(objErr, Math.abs(s.proposalScores[a] - refLogits[b]));
    assert.ok(pp.length / (refProps.length / 4) >= 0.95, `proposals matched ${pp.length}`);
    assert.ok(objErr <= 1e-3, `objectness logits max diff ${objErr}`);
    const refCls = fx(im.class_logits.file);
    // fixture rows: detectron2's order (20 classes, background last) → ours (background first)
    let logitErr = 0, mag = 0;
    for (const [a, b] of pp) for (let c = 0; c < 21; c++) {
      const ref = refCls[b * 21 + (c === 0 ? 20 : c - 1)];
      logitErr = Math.max(logitErr, Math.abs(s.classLogits[a * 21 + c] - ref));
      mag = Math.max(mag, Math.abs(ref));
    }
    assert.ok(logitErr / mag <= 1e-4, `class logits relative error ${logitErr / mag}`);
    const ref = im.detections;
    const { pairs, worstMaskIou: worstMask, identicalMasks: exact } = compareDetections(r, ref);
    t.diagnostic(`proposals ${pp.length}/${refProps.length / 4} matched (${inOrder} at the same rank), objectness ≤ ${objErr.toExponential(1)}; ` +
      `class logits ${(logitErr / mag).toExponential(1)}; detections ${pairs.length}/${ref.scores.length} matched; worst mask IoU ${worstMask.toFixed(4)}; ${exact} masks pixel-identical`);
    assert.equal(r.scores.length, ref.scores.length);
    assert.ok(pairs.length / ref.scores.length >= 0.95, `detections matched ${pairs.length}/${ref.scores.length}`);
    assert.ok(worstMask >= 0.98, `worst mask IoU ${worstMask}`);
  });
}

/** A state dict as a protocol-2 pickle {"model": {name: numpy array}} the way Python 2's numpy pickled arrays. */
async function writeNumpyPickle(sd: Map<string, TensorData>): Promise<string> {
  const out: number[] = [0x80, 2];
  const u32 = (n: number) => out.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  const str = (s: string) => { const b = Buffer.from(s, "utf8"); out.push(0x58); u32(b.length); out.push(...b); };
  const glob = (m: string, n: string) => out.push(0x63, ...Buffer.from(`${m}\n${n}\n`, "latin1"));
  out.push(0x7d, 0x28);                 // {  MARK
  str("model");
  out.push(0x7d, 0x28);
  for (const [k, t] of sd) {
    str(k);
    glob("numpy.core.multiarray", "_reconstruct");
    glob("numpy", "ndarray");
    out.push(0x4b, 0, 0x85);            // (0,)
    out.push(0x43, 1, 0x62, 0x87, 0x52); // b'b' TUPLE3 REDUCE
    out.push(0x28, 0x4b, 1);            // MARK 1 (version)
    out.push(0x28); for (const d of t.shape) { out.push(0x4a); u32(d); } out.push(0x74);
    glob("numpy", "dtype");
    out.push(0x8c, 2, ...Buffer.from("f4"), 0x89, 0x88, 0x87, 0x52);
    out.push(0x28, 0x4b, 3, 0x8c, 1, 0x3c, 0x4e, 0x4e, 0x4e, 0x4a); u32(0xffffffff); out.push(0x4a); u32(0xffffffff); out.push(0x4b, 0, 0x74, 0x62);
    out.push(0x89);                     // is_fortran False
    // the data as a Python 2 str (BINSTRING), which detectron2 reads with encoding="latin1"
    const bytes = new Uint8Array(toFloat32(t).slice().buffer);
    out.push(0x54); u32(bytes.length); for (const b of bytes) out.push(b);
    out.push(0x74, 0x62);               // TUPLE BUILD
  }
  out.push(0x75);                       // SETITEMS (model)
  str("__author__"); str("test");
  out.push(0x75, 0x2e);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "d2pkl-"));
  const file = path.join(dir, "model_final.pkl");
  await fsp.writeFile(file, Uint8Array.from(out));
  return file;
}
