// Dense CRF (issue 16): .npy I/O, torch bilinear upsampling, and parity with pydensecrf on the
// fixtures in test/fixtures/densecrf (README.md there: parameters, reference steps, tolerances).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { encodeNpy, floatToHalf, halfToFloat, parseNpy, readNpy, writeNpy } from "../src/data/npy.js";
import { loadRgb } from "../src/data/image.js";
import { readLabelPng } from "../src/data/png.js";
import { MaskdistillError } from "../src/errors.js";
import { projectPath } from "../src/paths.js";
import { denseCrfFromLogits, MASKDISTILL_CRF } from "../src/refine/crf.js";
import { addPairwiseBilateral, addPairwiseGaussian, createDenseCrf, inference, qToPlanes, setUnaryEnergy } from "../src/refine/densecrf.js";
import { buildLattice, latticeFilter, latticeOnes } from "../src/refine/permutohedral.js";
import { softmaxChannels, unaryFromSoftmax, upsampleBilinear } from "../src/refine/unary.js";
import { wasmAvailable } from "../src/refine/latticeWasm.js";

const DIR = projectPath("test", "fixtures", "densecrf");
const manifest = JSON.parse(fs.readFileSync(path.join(DIR, "manifest.json"), "utf8")) as {
  params: { MAX_ITER: number; POS_W: number; POS_XY_STD: number; Bi_W: number; Bi_XY_STD: number; Bi_RGB_STD: number };
  images: { id: string; H: number; W: number; logits_shape: number[] }[];
};
const F16_ROUNDING = 2 ** -12; // the fixtures store Q as float16: |error| <= 2^-12 for values <= 1

// --- .npy ----------------------------------------------------------------------------------------

test("npy: float16 conversion rounds to nearest even and is exact on the way back", () => {
  assert.equal(floatToHalf(1), 0x3c00);
  assert.equal(floatToHalf(-2), 0xc000);
  assert.equal(floatToHalf(65504), 0x7bff);
  assert.equal(floatToHalf(1e6), 0x7c00);
  assert.equal(floatToHalf(2 ** -24), 0x0001);
  assert.equal(floatToHalf(2 ** -25), 0x0000); // halfway to the smallest subnormal: to even (0)
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // halfway between 1 and 1+2^-10: to even
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(floatToHalf(0.1), 0x2e66);
  for (const h of [0x0001, 0x03ff, 0x0400, 0x3555, 0x3c01, 0x7bff, 0x8400, 0xfbff]) assert.equal(floatToHalf(halfToFloat(h)), h);
  assert.equal(halfToFloat(0x3555), 0.333251953125);
});

test("npy: round trips float32/float16/uint8 and reads the fixture header", () => {
  const f = new Float32Array([0.5, -1.25, 3.1415927, 1e-8, 65000, -0]);
  const back = parseNpy(encodeNpy(f, [2, 3]), "x.npy");
  assert.equal(back.dtype, "float32");
  assert.deepEqual(back.shape, [2, 3]);
  assert.deepEqual(Array.from(back.data), Array.from(f));
  const h = parseNpy(encodeNpy(f, [6], "float16"), "h.npy");
  assert.deepEqual(Array.from(h.data), [0.5, -1.25, 3.140625, 0, 64992, -0]); // 65000: nearest float16 is 64992 (spacing 32)
  const u = parseNpy(encodeNpy(new Uint8Array([0, 7, 255]), [3]), "u.npy");
  assert.equal(u.dtype, "uint8");
  assert.deepEqual(Array.from(u.data), [0, 7, 255]);
  // header padded so the data start at a multiple of 64 (NumPy writes 128 for these shapes)
  const bytes = encodeNpy(new Float32Array(21 * 107 * 160), [21, 107, 160]);
  assert.equal(bytes.length - 21 * 107 * 160 * 4, 128);
  const fixture = readNpy(path.join(DIR, "000000000294.logits.npy"));
  assert.equal(fixture.dtype, "float32");
  assert.deepEqual(fixture.shape, [21, 14, 20]);
  assert.equal(fs.statSync(path.join(DIR, "000000000294.logits.npy")).size - 21 * 14 * 20 * 4, 128);
  const q16 = readNpy(path.join(DIR, "000000000294.q.npy"));
  assert.equal(q16.dtype, "float16");
  assert.deepEqual(q16.shape, [21, 107, 160]);
  // written by us, read by us: same bytes as NumPy would lay out
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "md-npy-"));
  writeNpy(path.join(tmp, "a.npy"), fixture.data, fixture.shape);
  assert.deepEqual(fs.readFileSync(path.join(tmp, "a.npy")), fs.readFileSync(path.join(DIR, "000000000294.logits.npy")));
  fs.rmSync(tmp, { recursive: true });
});

test("npy: clear errors naming the file on unsupported input", () => {
  const good = encodeNpy(new Float32Array(4), [4]);
  const withHeader = (fn: (s: string) => string) => {
    const hl = good[8] | (good[9] << 8);
    const header = fn(Buffer.from(good.subarray(10, 10 + hl)).toString("latin1")).padEnd(hl, " ");
    const out = new Uint8Array(good);
    out.set(Buffer.from(header.slice(0, hl), "latin1"), 10);
    return out;
  };
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), /bad\.npy: not a NumPy \.npy file/],
    [withHeader((s) => s.replace("<f4", "<f8")), /bad\.npy: unsupported \.npy dtype '<f8'/],
    [withHeader((s) => s.replace("<f4", ">f4")), /unsupported \.npy dtype '>f4'.*little endian/],
    [withHeader((s) => s.replace("False", "True")), /Fortran-order/],
    [good.subarray(0, good.length - 4), /bad\.npy: \.npy data have 12 bytes, expected 16/],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(() => parseNpy(bytes, "bad.npy"), (e: unknown) => e instanceof MaskdistillError && re.test(e.message));
  }
  assert.throws(() => readNpy("/nonexistent/x.npy"), /x\.npy: \.npy file not found/);
});

// --- unary ---------------------------------------------------------------------------------------

test("bilinear upsampling matches torch F.interpolate(align_corners=False)", () => {
  // torch.nn.functional.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), size=(4, 4), mode="bilinear")
  const up = upsampleBilinear(new Float32Array([1, 2, 3, 4]), 1, 2, 2, 4, 4);
  assert.deepEqual(Array.from(up), [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4]);
  // non-integer ratio 3 -> 5 along x, 1 row: src = (x + 0.5)·0.6 − 0.5 clamped at 0
  const r = upsampleBilinear(new Float32Array([0, 10, 20]), 1, 1, 3, 1, 5);
  // src = 0 (clamped), 0.4, 1.0, 1.6, 2.2 (index 2 = last: no right neighbour); linear data, value = 10·src
  const want = [0, 4, 10, 16, 20];
  r.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `x=${i}: ${v} vs ${want[i]}`));
  // softmax and unary
  // [C=2, N=2]: pixel 0 has logits (0, ln 3) -> (1/4, 3/4), pixel 1 (1, 1) -> (1/2, 1/2)
  const p = softmaxChannels(new Float32Array([0, 1, Math.log(3), 1]), 2, 2);
  assert.ok(Math.abs(p[0] - 0.25) < 1e-7 && Math.abs(p[2] - 0.75) < 1e-7 && p[1] === 0.5 && p[3] === 0.5, `softmax ${Array.from(p)}`);
  const u = unaryFromSoftmax(new Float32Array([1, 0.5, 1e-9, 0]));
  assert.deepEqual(Array.from(u), [-0, Math.fround(Math.LN2), Math.fround(-Math.log(Math.fround(1e-5))), Math.fround(-Math.log(Math.fround(1e-5)))]);
});

// --- lattice -------------------------------------------------------------------------------------

test("lattice: barycentric weights sum to 1, neighbours are symmetric, the filter is symmetric", () => {
  const W = 23, H = 17, n = W * H;
  const f = new Float32Array(n * 5);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    const i = y * W + x;
    f.set([x / 5, y / 5, ((x * 7) % 11) / 3, ((y * 5) % 13) / 3, ((x + y) % 4) / 3], 5 * i);
  }
  const lat = buildLattice(f, n, 5);
  assert.ok(lat.m > 0 && lat.m <= 6 * n, `${lat.m} lattice points`);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < 6; j++) { s += lat.weight[i * 6 + j]; assert.ok(lat.weight[i * 6 + j] >= -1e-6, `weight ${lat.weight[i * 6 + j]}`); }
    assert.ok(Math.abs(s - 1) < 1e-5, `pixel ${i}: weights sum ${s}`);
  }
  for (let j = 0; j <= 5; j++) for (let i = 0; i < lat.m; i++) {
    const a = lat.neighbors[2 * (j * lat.m + i)];
    if (a > 0) assert.equal(lat.neighbors[2 * (j * lat.m + a - 1) + 1], i + 1, "n1 of i has i as its n2");
  }
  // K is symmetric: e_a·K·e_b == e_b·K·e_a (up to float32 rounding)
  const ea = new Float32Array(n), eb = new Float32Array(n), ka = new Float32Array(n), kb = new Float32Array(n);
  ea[40] = 1; eb[45] = 1;
  latticeFilter(lat, ea, ka, 1);
  latticeFilter(lat, eb, kb, 1);
  assert.ok(ka[45] > 1e-4 && Math.abs(ka[45] - kb[40]) < 1e-7, `${ka[45]} vs ${kb[40]}`);
  assert.ok(ka[40] > ka[45], "the self term is the largest");
  // the normaliser's K·1 (its own loops) is latticeFilter on ones, bit for bit
  const ones = new Float32Array(n).fill(1), k1 = new Float32Array(n);
  latticeFilter(lat, ones, k1, 1);
  assert.deepEqual(latticeOnes(lat), k1);
});

test("lattice: like densecrf's SSE build, a pixel count not divisible by 4 adds the origin's simplex", () => {
  // 9 pixels far from the origin; the 9th repeats the 8th, so it adds no lattice point of its own
  const f = new Float32Array(18);
  for (let i = 0; i < 9; i++) { f[2 * i] = 50 + Math.min(i, 7); f[2 * i + 1] = 80 + 2 * Math.min(i, 7); }
  const eight = buildLattice(f, 8, 2), nine = buildLattice(f, 9, 2);
  // the SSE loop pads the last block of 4 with zero features and inserts their d+1 = 3 points
  assert.equal(nine.m, eight.m + 3);
  assert.deepEqual(Array.from(nine.offset.subarray(0, 24)), Array.from(eight.offset));
});

test("wasm SIMD lattice and TypeScript loops agree (same lattice sums; exp differs by ~1 ulp)", { skip: !wasmAvailable() && "no WebAssembly SIMD" }, async () => {
  const id = "000000415748";
  const lg = readNpy(path.join(DIR, `${id}.logits.npy`));
  const img = await loadRgb(path.join(DIR, `${id}.png`));
  const [c, h, w] = lg.shape;
  const a = denseCrfFromLogits(lg.data as Float32Array, c, h, w, img, { iterations: 3, backend: "auto" });
  const b = denseCrfFromLogits(lg.data as Float32Array, c, h, w, img, { iterations: 3, backend: "js" });
  // the lattice sums are the same float32 operations; only the softmax's exp differs (a polynomial
  // vs Math.exp, ~1 ulp), so compare to 1e-6
  let mx = 0;
  for (let i = 0; i < a.q.length; i++) mx = Math.max(mx, Math.abs(a.q[i] - b.q[i]));
  assert.ok(mx < 1e-6, `max |ΔQ| ${mx}`);
  assert.deepEqual(a.labels, b.labels);
});

// --- parity with pydensecrf ----------------------------------------------------------------------

test("the defaults are the reference's parameters", () => {
  const p = manifest.params;
  assert.equal(MASKDISTILL_CRF.iterations, p.MAX_ITER);
  assert.deepEqual(MASKDISTILL_CRF.gaussian, { sxy: p.POS_XY_STD, compat: p.POS_W });
  assert.deepEqual(MASKDISTILL_CRF.bilateral, { sxy: p.Bi_XY_STD, srgb: p.Bi_RGB_STD, compat: p.Bi_W });
  assert.equal(MASKDISTILL_CRF.channelOrder, "bgr");
});

function qStats(got: Float32Array, want: Float32Array) {
  let max = 0, over = 0, f16Diff = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (d > max) max = d;
    if (d > 1e-3) over++;
    if (floatToHalf(got[i]) !== floatToHalf(want[i])) f16Diff++;
  }
  return { max, over, f16Diff };
}

for (const im of manifest.images) {
  test(`pydensecrf parity ${im.id} (${im.W}×${im.H})`, async (t) => {
    const lg = readNpy(path.join(DIR, `${im.id}.logits.npy`));
    assert.deepEqual(lg.shape, im.logits_shape);
    const img = await loadRgb(path.join(DIR, `${im.id}.png`));
    assert.deepEqual([img.width, img.height], [im.W, im.H]);
    const [c, h, w] = lg.shape, n = im.W * im.H;
    const detail = fs.existsSync(path.join(DIR, `${im.id}.q1.npy`));
    const snaps = new Map<number, Float32Array>();
    const r = denseCrfFromLogits(lg.data as Float32Array, c, h, w, img, {
      keepProbs: detail,
      onIteration: detail ? (it, q) => { if (it === 1 || it === 3) snaps.set(it, qToPlanes(q, n, c)); } : undefined,
    });

    // Labels: identical to pydensecrf's on >= 99.5 % of the pixels (we measure 100 %).
    const ref = readLabelPng(path.join(DIR, `${im.id}.labels.png`));
    let same = 0;
    for (let i = 0; i < n; i++) if (ref.data[i] === r.labels[i]) same++;
    t.diagnostic(`labels identical on ${((100 * same) / n).toFixed(3)} % (${n - same} px differ)`);
    assert.ok(same / n >= 0.995, `labels agree on ${((100 * same) / n).toFixed(3)} %`);

    // Q: "where the lattice is reproduced exactly" means every pixel falls in the same simplex of the
    // permutohedral lattice with the same float32 barycentric weights, and splat/blur/slice add the
    // same float32 products in the same order — then K·Q is the same bits as pydensecrf's, and what is
    // left is the softmax's exp/sum (Eigen's SSE exp vs ours: the fixtures' noise floor for 1-ulp input
    // changes is 1.3e-5) plus the float16 storage of q.npy (<= 2^-12 = 2.44e-4). Our lattice is exact
    // on every pixel of these images, so the 1e-3 bound holds on every entry, and the error is the
    // float16 rounding alone (max <= 2^-12 + 2e-5).
    const q = qToPlanes(r.q, n, c);
    const s = qStats(q, readNpy(path.join(DIR, `${im.id}.q.npy`)).data as Float32Array);
    t.diagnostic(`Q: max |ΔQ| ${s.max.toExponential(3)}, entries > 1e-3: ${s.over}, float16 values differing: ${s.f16Diff} of ${q.length}`);
    assert.equal(s.over, 0);
    assert.ok(s.max <= F16_ROUNDING + 2e-5, `max |ΔQ| ${s.max}`);
    assert.ok(s.f16Diff <= q.length * 1e-3, `${s.f16Diff} float16 values differ`);

    if (detail) {
      // the softmax input of unary_from_softmax, and Q after 1 and 3 iterations
      const sp = qStats(r.probs!, readNpy(path.join(DIR, `${im.id}.softmax.npy`)).data as Float32Array);
      assert.ok(sp.max <= F16_ROUNDING + 1e-6, `softmax max diff ${sp.max}`);
      for (const it of [1, 3]) {
        const si = qStats(snaps.get(it)!, readNpy(path.join(DIR, `${im.id}.q${it}.npy`)).data as Float32Array);
        t.diagnostic(`Q after ${it}: max |ΔQ| ${si.max.toExponential(3)}, float16 values differing: ${si.f16Diff}`);
        assert.equal(si.over, 0);
        assert.ok(si.max <= F16_ROUNDING + 2e-5, `Q${it} max |ΔQ| ${si.max}`);
      }
    }
  });
}

test("the bilateral feature order matters: RGB instead of the reference's BGR changes Q", async () => {
  const id = "000000370162";
  const lg = readNpy(path.join(DIR, `${id}.logits.npy`));
  const img = await loadRgb(path.join(DIR, `${id}.png`));
  const [c, h, w] = lg.shape, n = img.width * img.height;
  const rgb = denseCrfFromLogits(lg.data as Float32Array, c, h, w, img, { channelOrder: "rgb" });
  const want = readNpy(path.join(DIR, `${id}.q.npy`)).data as Float32Array;
  const s = qStats(qToPlanes(rgb.q, n, c), want);
  assert.ok(s.max > 1e-3, `RGB order should move Q beyond 1e-3, got ${s.max}`);
});

test("low-level API: options reach the kernels (no pairwise term = softmax of −U)", () => {
  const crf = createDenseCrf(3, 2, 3);
  const u = new Float32Array([1, 2, 3, 1, 2, 3, 3, 2, 1, 3, 2, 1, 2, 2, 2, 0, 0, 0]);
  setUnaryEnergy(crf, u);
  const q = inference(crf, 5);
  const e = [Math.exp(-1), Math.exp(-3), Math.exp(-2)];
  const z = e[0] + e[1] + e[2];
  assert.ok(Math.abs(q[0] - e[0] / z) < 1e-6, `${q[0]} vs ${e[0] / z}`);
  const g = addPairwiseGaussian(crf, { sxy: 2, compat: 5 });
  assert.equal(g.compat, 5);
  assert.equal(g.lattice.d, 2);
  const b = addPairwiseBilateral(crf, new Uint8Array(18).fill(9), { sxy: [4, 5], srgb: [1, 2, 3], compat: 2, normalization: "none" });
  assert.equal(b.lattice.d, 5);
  // NO_NORMALIZATION: norm = N / Σ K·1 on every pixel
  assert.ok(b.norm.every((v) => v === b.norm[0]) && b.norm[0] > 0, `norm ${b.norm}`);
  const q2 = inference(crf, 2);
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(q2[i * 3] + q2[i * 3 + 1] + q2[i * 3 + 2] - 1) < 1e-6, `pixel ${i} sums to 1`);
});
