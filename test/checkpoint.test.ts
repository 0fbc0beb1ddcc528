// Checkpoint reading: every value of the fixtures made by tools/make-checkpoint-fixtures.py (torch 1.13)
// compared exactly, the layouts of released checkpoints, and refusal of bad and malicious files.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import {
  checkKeys, readCheckpoint, readStateDict, toFloat32, isTensorData,
  type StateDict, type TensorData,
} from "../src/modeling/checkpoint/index.js";
import { writeSafetensors } from "../src/modeling/checkpoint/safetensors.js";
import { unpickle, type UnpickleHooks } from "../src/modeling/checkpoint/pickle.js";
import { readTorchLegacy } from "../src/modeling/checkpoint/torch.js";
import { MaskdistillError } from "../src/errors.js";
import { projectPath } from "../src/paths.js";

const FIX = projectPath("test", "fixtures", "checkpoint");
const fx = (name: string) => path.join(FIX, name);

interface Spec { dtype: string; shape: number[]; values: (number | string)[]; bits?: number[] }
const expected = JSON.parse(fs.readFileSync(fx("expected.json"), "utf8")) as {
  tensors: Record<string, Spec | Record<string, Spec>>;
  layouts: Record<string, Record<string, Spec> & Record<string, unknown>>;
  safetensors: Record<string, Spec>;
  reference_vit: Record<string, Record<string, { shape: number[]; first: number[]; last: number; sum: number }>>;
  pwned_marker: string;
};

function specNumber(v: number | string): number {
  if (v === "nan") return NaN;
  if (v === "inf") return Infinity;
  if (v === "-inf") return -Infinity;
  return Number(v);
}

/** Exact comparison of a tensor with its Python-side spec (dtype, shape, every element). */
function assertTensor(t: unknown, spec: Spec, name: string): void {
  assert.ok(isTensorData(t), `${name} is a tensor`);
  const tensor = t as TensorData;
  assert.equal(tensor.dtype, spec.dtype, `${name} dtype`);
  assert.deepEqual(tensor.shape, spec.shape, `${name} shape`);
  assert.equal(tensor.data.length, spec.values.length, `${name} length`);
  if (spec.dtype === "int64") {
    assert.deepEqual([...(tensor.data as BigInt64Array)], spec.values.map((v) => BigInt(v)), `${name} values`);
  } else if (spec.dtype === "float16" || spec.dtype === "bfloat16") {
    assert.deepEqual([...(tensor.data as Uint16Array)], spec.bits, `${name} raw bits`);
    assert.deepEqual([...toFloat32(tensor)], spec.values.map(specNumber), `${name} widened values`);
  } else {
    assert.deepEqual([...(tensor.data as Float64Array)], spec.values.map(specNumber), `${name} values`);
  }
}

/** toFloat32 of any dtype equals float32 rounding of the exact values. */
function assertFloat32(t: TensorData, spec: Spec, name: string): void {
  const want = spec.values.map((v) => Math.fround(spec.dtype === "int64" ? Number(BigInt(v)) : specNumber(v)));
  assert.deepEqual([...toFloat32(t)], want, `${name} toFloat32`);
}

const asMap = (x: unknown) => {
  assert.ok(x instanceof Map, "a dict");
  return x as Map<unknown, unknown>;
};

async function assertRejects(file: string, pattern: RegExp): Promise<MaskdistillError> {
  let caught: unknown;
  try {
    await readCheckpoint(file);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof MaskdistillError, `${file}: expected a MaskdistillError, got ${String(caught)}`);
  assert.ok(caught.message.startsWith(`${file}: `), `message names the file: ${caught.message}`);
  assert.match(caught.message, pattern);
  return caught;
}

// ---------------------------------------------------------------------------------------------

test("reference ViT fixtures load with the DINO backbone layout, exact shapes and values", async (t) => {
  for (const [name, patch] of [["vit_small16_depth2_seed0.pth", 16], ["vit_small8_depth2_seed1.pth", 8]] as const) {
    const file = projectPath("test", "fixtures", "reference-vit", name);
    const t0 = performance.now();
    const { stateDict, layout, kind } = await readStateDict(file, "vit");
    const ms = performance.now() - t0;
    t.diagnostic(`${name} (${(fs.statSync(file).size / 1e6).toFixed(1)} MB): readStateDict ${ms.toFixed(1)} ms`);
    assert.equal(layout, "dino-backbone");
    assert.equal(kind, "vit");
    assert.deepEqual(stateDict.get("patch_embed.proj.weight")!.shape, [384, 3, patch, patch]);
    assert.deepEqual(stateDict.get("blocks.0.attn.qkv.weight")!.shape, [1152, 384]);
    const depth = new Set([...stateDict.keys()].filter((k) => k.startsWith("blocks.")).map((k) => k.split(".")[1])).size;
    assert.equal(depth, 2);
    const summary = expected.reference_vit[name];
    assert.deepEqual([...stateDict.keys()], Object.keys(summary));
    for (const [key, s] of Object.entries(summary)) {
      const tensor = stateDict.get(key)!;
      assert.equal(tensor.dtype, "float32");
      assert.deepEqual(tensor.shape, s.shape, key);
      assert.deepEqual([...tensor.data.subarray(0, 4)], s.first, `${key} first values`);
      assert.equal(tensor.data[tensor.data.length - 1], s.last, `${key} last value`);
      let sum = 0;
      for (const v of tensor.data as Float32Array) sum += v;
      assert.ok(Math.abs(sum - s.sum) <= 1e-9 * Math.max(1, Math.abs(s.sum)), `${key} sum ${sum} vs ${s.sum}`);
    }
  }
});

for (const [file, what] of [
  ["tensors.pth", "zip format, protocol 2"],
  ["tensors_legacy.pth", "legacy format"],
  ["tensors_proto4.pth", "zip format, protocol 4"],
  ["tensors_deflated.pth", "zip re-compressed with deflate"],
]) {
  test(`every dtype, view and Python value round-trips exactly (${what})`, async () => {
    const root = asMap(await readCheckpoint(fx(file)));
    const tensors = asMap(root.get("tensors"));
    const specs = expected.tensors as Record<string, Spec>;
    for (const name of Object.keys(specs)) {
      if (name === "module" || name === "param") continue;
      assertTensor(tensors.get(name), specs[name], name);
      assertFloat32(tensors.get(name) as TensorData, specs[name], name);
    }
    // The same Python tensor pickled twice is one object (memo); a row view shares its memory.
    const shared = tensors.get("shared") as TensorData, row = tensors.get("shared_row") as TensorData;
    assert.equal(tensors.get("shared_again"), shared);
    assert.equal(row.data.buffer, shared.data.buffer, "a view shares the storage");
    assert.equal(row.data.byteOffset - shared.data.byteOffset, 4 * 4, "row 1 of a 3×4 float32 tensor");
    // nn.Parameter and a module state_dict (an OrderedDict carrying _metadata).
    assertTensor(root.get("param"), specs.param as unknown as Spec, "param");
    const moduleSpecs = expected.tensors.module as Record<string, Spec>;
    const module = asMap(root.get("module"));
    assert.deepEqual([...module.keys()], Object.keys(moduleSpecs));
    for (const [k, s] of Object.entries(moduleSpecs)) assertTensor(module.get(k), s, k);
    // Plain Python values.
    const meta = asMap(root.get("meta"));
    assert.equal(meta.get("int"), 7);
    assert.equal(meta.get("neg"), -300000);
    assert.equal(meta.get("big"), 2n ** 70n);
    assert.equal(meta.get("float"), 0.1);
    assert.equal(meta.get("str"), "héllo ✓");
    assert.equal(meta.get("none"), null);
    assert.equal(meta.get("yes"), true);
    assert.equal(meta.get("no"), false);
    assert.deepEqual(meta.get("list"), [1, 2.5, "x"]);
    assert.deepEqual(meta.get("tuple"), [1, [2, 3]]);
    assert.deepEqual(meta.get("bytes"), new Uint8Array([0, 255, 97, 98]));
    assert.deepEqual(meta.get("int_keys"), new Map([[1, "one"], [2, "two"]]));
  });
}

test("a big-endian zip checkpoint (byteorder 'big') is byte-swapped to the same values", async () => {
  const root = asMap(await readCheckpoint(fx("tensors_bigendian.pth")));
  assert.deepEqual([...root.keys()], ["f32", "f64", "f16", "bf16", "i64", "i32", "i16", "u8"]);
  for (const [name, t] of root) assertTensor(t, (expected.tensors as Record<string, Spec>)[name as string], name as string);
});

test("safetensors: every dtype exactly, in the writer's order", async () => {
  const sd = asMap(await readCheckpoint(fx("tensors.safetensors")));
  // JSON.parse lists the integer-like name "0" first; the file stores it last.
  const writerOrder = [...Object.keys(expected.safetensors).filter((k) => k !== "0"), "0"];
  assert.deepEqual([...sd.keys()], writerOrder);
  for (const [name, s] of Object.entries(expected.safetensors)) {
    assertTensor(sd.get(name), s, name);
    assertFloat32(sd.get(name) as TensorData, s, name);
  }
});

test("safetensors whose header length's low byte is a pickle opening (0x28 '(' ; 0x80 then a protocol byte) are still safetensors", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckpt-"));
  const sd: StateDict = new Map([["w", { dtype: "float32", shape: [2], data: Float32Array.from([1.5, -2]) }]]);
  // header lengths 0x0128 (first byte 0x28) and 0x0280 (0x80 0x02: a protocol-2 pickle's opening)
  for (const target of [0x0128, 0x0280]) {
    const file = path.join(dir, `header-${target.toString(16)}.safetensors`);
    for (let pad = 0; ; pad++) {
      writeSafetensors(file, sd, { pad: "x".repeat(pad) });
      if (fs.readFileSync(file).readUInt32LE(0) >= target) break;
    }
    assert.equal(fs.readFileSync(file).readUInt32LE(0), target);
    const read = asMap(await readCheckpoint(file));
    assert.deepEqual(Array.from(toFloat32(read.get("w") as TensorData)), [1.5, -2], `header length 0x${target.toString(16)}`);
  }
});

test("layouts: DINO backbone, DINO full (teacher / student), MoCo v2 (legacy), torchvision ResNet, model wrapper", async () => {
  const cases: [file: string, spec: string, layout: string, kind: "vit" | "resnet"][] = [
    ["dino_backbone.pth", "dino_backbone", "dino-backbone", "vit"],
    ["dino_full.pth", "dino_full_teacher", "dino-full:teacher", "vit"],
    ["dino_student_only.pth", "dino_full_student", "dino-full:student", "vit"],
    ["moco_v2.pth.tar", "moco_v2", "moco-v2", "resnet"],
    ["resnet_plain.pth", "resnet_plain", "torchvision-resnet", "resnet"],
    ["model_wrapper.pth", "model_wrapper", "model", "vit"],
  ];
  for (const [file, specName, layout, kind] of cases) {
    const specs = expected.layouts[specName] as Record<string, Spec>;
    for (const asked of [undefined, kind]) {
      const got = await readStateDict(fx(file), asked);
      assert.equal(got.layout, layout, file);
      assert.equal(got.kind, kind, file);
      assert.deepEqual([...got.stateDict.keys()], Object.keys(specs), `${file} keys`);
      for (const [k, s] of Object.entries(specs)) assertTensor(got.stateDict.get(k), s, `${file} ${k}`);
    }
  }
});

test("layouts: a torchvision-layout detector (train-maskrcnn's model file) gives its ResNet body when a ResNet is asked for", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckpt-det-"));
  const t = (v: number[]): TensorData => ({ dtype: "float32", shape: [v.length], data: Float32Array.from(v) });
  const file = path.join(dir, "maskrcnn.safetensors");
  writeSafetensors(file, new Map([
    ["backbone.body.conv1.weight", t([1, 2])], ["backbone.body.bn1.weight", t([3])], ["backbone.body.layer1.0.conv1.weight", t([4])],
    ["backbone.fpn.inner_blocks.0.weight", t([5])], ["rpn.head.conv.weight", t([6])], ["roi_heads.box_predictor.cls_score.weight", t([7])],
  ]));
  const got = await readStateDict(file, "resnet");
  assert.equal(got.layout, "torchvision-detection");
  assert.equal(got.kind, "resnet");
  assert.deepEqual([...got.stateDict.keys()], ["conv1.weight", "bn1.weight", "layer1.0.conv1.weight"]);
  assert.deepEqual(Array.from(toFloat32(got.stateDict.get("conv1.weight")!)), [1, 2]);
  // asked for nothing, the whole detector is returned as it is
  assert.equal((await readStateDict(file)).stateDict.size, 6);
  fs.rmSync(dir, { recursive: true });
});

test("DINO full checkpoint: args become a plain record, numpy scalars numbers", async () => {
  const root = asMap(await readCheckpoint(fx("dino_full.pth")));
  assert.deepEqual(root.get("args"), expected.layouts.dino_full_args);
  assert.equal(root.get("epoch"), 100);
  assert.equal(root.get("train_loss"), 3.25);
  assert.equal(root.get("step"), 12);
  assert.equal(root.get("acc"), 0.5);
  assert.equal(root.get("fp16_scaler"), null);
  const optimizer = asMap(root.get("optimizer"));
  assert.deepEqual(asMap(asMap(optimizer.get("state")).get(0)).get("exp_avg"), { dtype: "float32", shape: [2], data: new Float32Array(2) });
  const moco = asMap(await readCheckpoint(fx("moco_v2.pth.tar")));
  assert.equal(moco.get("epoch"), 800);
  assert.equal(moco.get("arch"), "resnet50");
});

test("readStateDict with the wrong kind names the file and what it found", async () => {
  await assert.rejects(readStateDict(fx("moco_v2.pth.tar"), "vit"), (e: unknown) =>
    e instanceof MaskdistillError && e.message.startsWith(fx("moco_v2.pth.tar")) && /expected a ViT .* is a resnet/.test(e.message));
  await assert.rejects(readStateDict(fx("tensors.pth")), (e: unknown) =>
    e instanceof MaskdistillError && e.message === `${fx("tensors.pth")}: unrecognised checkpoint layout: the top-level dict mixes tensors with other entries (tensors, module, meta)`);
  await assert.rejects(readStateDict(fx("malicious_os_system.pth")), /refusing to load/);
});

test("checkKeys: missing and unexpected keys returned, shape mismatches thrown naming file and key", async () => {
  const { stateDict } = await readStateDict(fx("dino_backbone.pth"), "vit");
  const expectedShapes = new Map<string, number[]>([
    ["cls_token", [1, 1, 8]], ["pos_embed", [1, 5, 8]], ["blocks.0.attn.proj.weight", [8, 8]],
  ]);
  const r = checkKeys(stateDict, expectedShapes, "dino_backbone.pth");
  assert.deepEqual(r.missing, ["blocks.0.attn.proj.weight"]);
  assert.deepEqual(r.unexpected, ["patch_embed.proj.weight", "patch_embed.proj.bias", "blocks.0.norm1.weight",
    "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "norm.weight", "norm.bias"]);
  assert.throws(() => checkKeys(stateDict, new Map([["pos_embed", [1, 197, 384]]]), "x.pth"),
    (e: unknown) => e instanceof MaskdistillError && e.message === "x.pth: shape mismatch for 1 tensor(s): pos_embed: checkpoint [1, 5, 8] vs model [1, 197, 384]");
});

test("malicious pickles are refused by name, and nothing runs", async () => {
  const marker = expected.pwned_marker;
  fs.rmSync(marker, { force: true });
  for (const [file, global] of [
    ["malicious_os_system.pth", "posix.system"],
    ["malicious_eval_legacy.pth", "builtins.eval"],
    ["malicious_popen_proto4.pth", "subprocess.Popen"],
    ["malicious_load_from_bytes.pth", "torch.storage._load_from_bytes"],
  ]) {
    const e = await assertRejects(fx(file), /refusing to load/);
    assert.equal(e.message, `${fx(file)}: refusing to load: the pickle references ${global}, which is not on the allow-list; loading never executes code`);
  }
  // A hand-assembled protocol-0 pickle: eval("__import__('os').system('touch <marker>')").
  const evil = new TextEncoder().encode(`c__builtin__\neval\n(V__import__('os').system('touch ${marker}')\ntR.`);
  const tmp = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ckpt-")), "evil.pkl");
  assert.throws(() => unpickle(evil, 0, tmp, refuseAll), /refusing: builtins\.eval/);
  assert.equal(fs.existsSync(marker), false, "no payload ran");
});

const refuseAll: UnpickleHooks = {
  findGlobal(m, n) { throw new Error(`refusing: ${m === "__builtin__" ? "builtins" : m}.${n}`); },
  call() { throw new Error("no calls"); },
  build() { throw new Error("no build"); },
};

test("bad input: truncated, corrupt, not a checkpoint, missing — a MaskdistillError naming the file", async () => {
  await assertRejects(fx("truncated.pth"), /end-of-central-directory record is missing \(the file is truncated or corrupt\)/);
  await assertRejects(fx("truncated_legacy.pth.tar"), /corrupt pickle: needs \d+ more bytes but the data ends|truncated checkpoint/);
  await assertRejects(fx("truncated.safetensors"), /truncated safetensors: tensor 0 ends at data byte 105, but only 95 data bytes are present/);
  await assertRejects(fx("corrupt_crc.pth"), /CRC-32 mismatch in dino_backbone\/data\/0/);
  await assertRejects(fx("not_a_checkpoint.pth"), /not a PyTorch checkpoint \(zip or legacy pickle\) nor a safetensors file \(first bytes: 54 68 69 73/);
  await assertRejects(fx("plain_pickle.pkl"), /a pickle, but not a PyTorch checkpoint/);
  await assertRejects(fx("expand_bomb.pth"), /corrupt checkpoint: a float32 tensor of shape \[1000000000\] expands a 1-element storage more than 64-fold/);
  await assertRejects(fx("does_not_exist.pth"), /cannot open the checkpoint \(ENOENT/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ckpt-"));
  fs.writeFileSync(path.join(dir, "empty.pth"), "");
  await assertRejects(path.join(dir, "empty.pth"), /empty file/);
  const st = fs.readFileSync(fx("tensors.safetensors"));
  fs.writeFileSync(path.join(dir, "cut.safetensors"), st.subarray(0, 100));
  await assertRejects(path.join(dir, "cut.safetensors"), /truncated safetensors: the header of \d+ bytes does not fit in the 100-byte file/);
  // Legacy file cut inside the storages (after the pickles) rather than inside a pickle.
  const legacy = fs.readFileSync(fx("tensors_legacy.pth"));
  fs.writeFileSync(path.join(dir, "cut.pth"), legacy.subarray(0, legacy.length - 10));
  await assertRejects(path.join(dir, "cut.pth"),
    new RegExp(`truncated checkpoint: storage \\d+ (needs \\d+ bytes at byte \\d+, but|is missing:) the file ends at byte ${legacy.length - 10}$`));
  // A zip that is not a torch checkpoint.
  const zipped = fs.readFileSync(fx("tensors.pth"));
  const renamed = Buffer.from(zipped.toString("latin1").replaceAll("tensors/data.pkl", "tensors/data.xyz"), "latin1");
  fs.writeFileSync(path.join(dir, "other.zip"), renamed);
  await assertRejects(path.join(dir, "other.zip"), /a zip archive without data\.pkl/);
});

test("pickle VM: protocol 0 text opcodes and protocol 5 opcodes; corrupt streams are errors", () => {
  const p0 = Buffer.from("(dp0\nVa\np1\n(lp2\nI1\naF2.5\naVx\np3\naNaI01\nasVb\np4\n(I1\nL-1180591620717411303424L\ntp5\nsVc\np6\nVh\xe9\np7\ns.", "latin1");
  const v0 = unpickle(p0, 0, "p0.pkl", refuseAll);
  assert.deepEqual(v0.value, new Map<string, unknown>([["a", [1, 2.5, "x", null, true]], ["b", [1, -(2n ** 70n)]], ["c", "hé"]]));
  assert.equal(v0.end, p0.length);
  const p5 = Buffer.from(
    "\x80\x05\x95Q\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x01a\x94]\x94(K\x01G@\x04\x00\x00\x00\x00\x00\x00\x8c\x01x\x94N\x88e" +
    "\x8c\x01b\x94K\x01\x8a\t\x00\x00\x00\x00\x00\x00\x00\x00\xc0\x86\x94\x8c\x01c\x94\x8c\x03h\xc3\xa9\x94\x8c\x01s\x94\x8f\x94(K\x01K\x02\x90" +
    "\x8c\x02by\x94C\x02ab\x94u.", "latin1");
  assert.deepEqual(unpickle(p5, 0, "p5.pkl", refuseAll).value, new Map<string, unknown>([
    ["a", [1, 2.5, "x", null, true]], ["b", [1, -(2n ** 70n)]], ["c", "hé"], ["s", new Set([1, 2])], ["by", new Uint8Array([97, 98])],
  ]));
  const bad = (bytes: string, pattern: RegExp) =>
    assert.throws(() => unpickle(Buffer.from(bytes, "latin1"), 0, "bad.pkl", refuseAll),
      (e: unknown) => e instanceof MaskdistillError && e.message.startsWith("bad.pkl: corrupt pickle: ") && pattern.test(e.message));
  bad("\x80\x02t.", /no MARK on the stack \(at byte 2\)/);
  bad("\x80\x020", /stack underflow/);
  bad("\x80\x02\xff", /unknown pickle opcode 0xff \(at byte 2\)/);
  bad("\x80\x02X\x10\x00\x00\x00ab", /needs 16 more bytes but the data ends at byte 9 \(truncated\?\)/);
  bad("\x80\x02h\x05.", /memo key 5 was never stored/);
  bad("\x80\x02\x82\x01.", /extension-registry codes/);
  bad("\x80\x09.", /unsupported pickle protocol 9/);
});

test("random byte corruption of legacy checkpoints only ever yields values or MaskdistillErrors", async () => {
  for (const name of ["tensors_legacy.pth", "moco_v2.pth.tar"]) {
    const original = new Uint8Array(fs.readFileSync(fx(name)));
    let seed = 12345;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    let loaded = 0, refused = 0;
    for (let it = 0; it < 300; it++) {
      const bytes = original.slice();
      for (let j = 0, k = 1 + Math.floor(rnd() * 3); j < k; j++) bytes[Math.floor(rnd() * Math.min(bytes.length, 3000))] = Math.floor(rnd() * 256);
      try {
        await readTorchLegacy(name, bytes);
        loaded++;
      } catch (e) {
        assert.ok(e instanceof MaskdistillError && e.message.startsWith(`${name}: `), `iteration ${it}: ${String(e)}`);
        refused++;
      }
    }
    assert.ok(refused > 150 && loaded > 20, `${name}: ${loaded} loaded, ${refused} refused`);
  }
});
