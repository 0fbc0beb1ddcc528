// The lattice's three hot loops (splat, one blur direction, slice + normalise + Potts accumulate) as
// a tiny WebAssembly SIMD module, assembled here byte by byte (no toolchain, no binary in the repo).
// f32x4 add/mul are IEEE float32 operations, lane by lane — the same as densecrf's SSE `addps`/
// `mulps` on its 4-float blocks — and every lane accumulates in the same order as the C++ and as
// the TypeScript loops in permutohedral.ts, so the results are bit-identical to both (the tests
// check it against the TypeScript path). Values are stored per pixel/lattice point in rows of Cp
// floats (C rounded up to a multiple of 4, the padding lanes zero), as densecrf's SSE code does.
//
// Exports (all pointers are byte offsets into the imported memory; rowBytes = 4·Cp):
//   splat(off, w, in, val, n, dp1, rowBytes)          val[off[e]] += w[e]·in[i]        (e = i·dp1 + j)
//   blur(nb, val, next, m, rowBytes)                  next[i] = val[i] + 0.5·(val[nb1] + val[nb2])
//   slice(off, wa, val, norm, acc, n, dp1, rowBytes, wc, useNorm)
//        acc[i] += wc · (useNorm ? (Σ_j wa[e]·val[off[e]])·norm[i] : Σ_j wa[e]·val[off[e]])
//   splatNorm(off, w, q, val, n, dp1, rowBytes, norm, scratch)
//        splat of q[i]·norm[i] (the product formed once per pixel in a one-row scratch)
//   softmax(in, out, n, rowBytes, mask)                out[i] = exp(in[i] − max)/Σ, the lanes past C
//        (mask = 4 int32 lane flags of the last vector) excluded and written as 0. exp is the Cephes
//        float polynomial (the one Eigen's SSE `pexp` uses), max relative error ≈ 1 float32 ulp; the
//        sum's order differs from Eigen's, so Q differs from densecrf in the last bits only.

/* eslint-disable @typescript-eslint/no-explicit-any */
interface WasmMemory { buffer: ArrayBuffer }
interface WasmApi {
  Memory: new (d: { initial: number; maximum?: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
}

export interface LatticeKernels {
  memory: WasmMemory;
  splat(off: number, w: number, inp: number, val: number, n: number, dp1: number, rowBytes: number): void;
  blur(nb: number, val: number, next: number, m: number, rowBytes: number): void;
  slice(off: number, wa: number, val: number, norm: number, acc: number, n: number, dp1: number, rowBytes: number, wc: number, useNorm: number): void;
  softmax(inp: number, out: number, n: number, rowBytes: number, mask: number): void;
  splatNorm(off: number, w: number, q: number, val: number, n: number, dp1: number, rowBytes: number, norm: number, scratch: number): void;
}

// --- a minimal assembler -------------------------------------------------------------------------
const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

function uleb(v: number): number[] {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
  return out;
}

function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) { out.push(b); return out; }
    out.push(b | 0x80);
  }
}

const str = (s: string) => [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];

// instructions
const get = (i: number) => [0x20, ...uleb(i)];
const set = (i: number) => [0x21, ...uleb(i)];
const tee = (i: number) => [0x22, ...uleb(i)];
const i32c = (v: number) => [0x41, ...sleb(v)];
const add = [0x6a], mul = [0x6c], ltu = [0x49];
const loadI32 = (offset = 0) => [0x28, 2, ...uleb(offset)];
const loadF32 = (offset = 0) => [0x2a, 2, ...uleb(offset)];
const simd = (op: number) => [0xfd, ...uleb(op)];
const v128load = [...simd(0x00), 4, 0];
const v128store = [...simd(0x0b), 4, 0];
const f4splat = simd(0x13), f4add = simd(0xe4), f4mul = simd(0xe6);
const v128zero = [...simd(0x0c), ...new Array(16).fill(0)];
const f4min = simd(0xe8), f4max = simd(0xe9), f4sub = simd(0xe5), f4div = simd(0xe7), f4floor = simd(0x68);
const i4truncSat = simd(0xf8), i4add = simd(0xae), i4shl = simd(0xab), i4splat = simd(0x11);
const vand = simd(0x4e), bitselect = simd(0x52);
const extract = (lane: number) => [...simd(0x1f), lane];
const fmax = [0x97], fadd = [0x92];
/** v128.const of one float32 in all four lanes. */
function f4const(v: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, v, true);
  return [...simd(0x0c), ...b, ...b, ...b, ...b];
}
/** exp of the f32x4 on the stack (Cephes expf as in Eigen's SSE pexp); uses v128 locals x0, x, fx, z. */
function expF4(x0: number, x: number, fx: number, z: number): number[] {
  const P = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];
  return [
    ...tee(x0), ...f4const(88.3762626647950), ...f4min, ...f4const(-88.3762626647949), ...f4max, ...tee(x),
    ...f4const(1.44269504088896341), ...f4mul, ...f4const(0.5), ...f4add, ...f4floor, ...set(fx),
    ...get(x), ...get(fx), ...f4const(0.693359375), ...f4mul, ...f4sub,
    ...get(fx), ...f4const(-2.12194440e-4), ...f4mul, ...f4sub, ...tee(x),
    ...get(x), ...f4mul, ...set(z),
    ...f4const(P[0]),
    ...P.slice(1).flatMap((p) => [...get(x), ...f4mul, ...f4const(p), ...f4add]),
    ...get(z), ...f4mul, ...get(x), ...f4add, ...f4const(1), ...f4add,
    ...get(fx), ...i4truncSat, ...i32c(127), ...i4splat, ...i4add, ...i32c(23), ...i4shl,
    ...f4mul, ...get(x0), ...f4max,
  ];
}
/** do { body } while (local[i] (+= step) < local[limit]) */
function doWhile(counter: number, step: number, limit: number, body: number[]): number[] {
  return [0x03, 0x40, ...body, ...get(counter), ...i32c(step), ...add, ...tee(counter), ...get(limit), ...ltu, 0x0d, 0, 0x0b];
}
const incr = (local: number, byLocal: number) => [...get(local), ...get(byLocal), ...add, ...set(local)];
const ifNonZero = (local: number, body: number[]) => [...get(local), 0x04, 0x40, ...body, 0x0b];
const guard = (local: number, body: number[]) => [0x02, 0x40, ...get(local), 0x45, 0x0d, 0, ...body, 0x0b];

function func(locals: [count: number, type: number][], code: number[]): number[] {
  const body = [...vec(locals.map(([c, t]) => [...uleb(c), t])), ...code, 0x0b];
  return [...uleb(body.length), ...body];
}

function moduleBytes(): Uint8Array {
  // splat(off0, w1, in2, val3, n4, dp1 5, rowBytes6); locals: i7 j8 v9 eb10 o11 wv12(v128)
  const splat = func([[5, I32], [1, V128]], [
    ...i32c(0), ...set(7), ...i32c(0), ...set(10),
    ...guard(4, doWhile(7, 1, 4, [
      ...i32c(0), ...set(8),
      ...doWhile(8, 1, 5, [
        ...get(3), ...get(0), ...get(10), ...add, ...loadI32(), ...get(6), ...mul, ...add, ...set(11),
        ...get(1), ...get(10), ...add, ...loadF32(), ...f4splat, ...set(12),
        ...i32c(0), ...set(9),
        ...doWhile(9, 16, 6, [
          ...get(11), ...get(9), ...add, // address for the store
          ...get(11), ...get(9), ...add, ...v128load,
          ...get(12), ...get(2), ...get(9), ...add, ...v128load, ...f4mul,
          ...f4add, ...v128store,
        ]),
        ...get(10), ...i32c(4), ...add, ...set(10),
      ]),
      ...incr(2, 6),
    ])),
  ]);
  // splatNorm(off0, w1, q2, val3, n4, dp1 5, rowBytes6, norm7, scratch8): splat of q[i]·norm[i], the
  // product formed once per pixel in a one-row scratch (the same float32 products as the C++: in·norm, then w·that)
  // locals: i9 j10 v11 eb12 o13 | wv14 s15 (v128)
  const splatNorm = func([[5, I32], [2, V128]], [
    ...i32c(0), ...set(9), ...i32c(0), ...set(12),
    ...guard(4, doWhile(9, 1, 4, [
      ...get(7), ...loadF32(), ...f4splat, ...set(15),
      ...i32c(0), ...set(11),
      ...doWhile(11, 16, 6, [
        ...get(8), ...get(11), ...add,
        ...get(2), ...get(11), ...add, ...v128load, ...get(15), ...f4mul, ...v128store,
      ]),
      ...i32c(0), ...set(10),
      ...doWhile(10, 1, 5, [
        ...get(3), ...get(0), ...get(12), ...add, ...loadI32(), ...get(6), ...mul, ...add, ...set(13),
        ...get(1), ...get(12), ...add, ...loadF32(), ...f4splat, ...set(14),
        ...i32c(0), ...set(11),
        ...doWhile(11, 16, 6, [
          ...get(13), ...get(11), ...add,
          ...get(13), ...get(11), ...add, ...v128load,
          ...get(14), ...get(8), ...get(11), ...add, ...v128load, ...f4mul,
          ...f4add, ...v128store,
        ]),
        ...get(12), ...i32c(4), ...add, ...set(12),
      ]),
      ...incr(2, 6),
      ...get(7), ...i32c(4), ...add, ...set(7),
    ])),
  ]);
  // blur(nb0, val1, next2, m3, rowBytes4); locals: i5 o6 a7 b8 v9 half10(v128)
  const blur = func([[5, I32], [1, V128]], [
    ...i32c(0), ...set(5), ...get(4), ...set(6),
    ...[0x43, 0, 0, 0, 0x3f], ...f4splat, ...set(10), // f32.const 0.5
    ...guard(3, doWhile(5, 1, 3, [
      ...get(1), ...get(0), ...loadI32(0), ...get(4), ...mul, ...add, ...set(7),
      ...get(1), ...get(0), ...loadI32(4), ...get(4), ...mul, ...add, ...set(8),
      ...i32c(0), ...set(9),
      ...doWhile(9, 16, 4, [
        ...get(2), ...get(6), ...add, ...get(9), ...add,
        ...get(1), ...get(6), ...add, ...get(9), ...add, ...v128load,
        ...get(10),
        ...get(7), ...get(9), ...add, ...v128load,
        ...get(8), ...get(9), ...add, ...v128load,
        ...f4add, ...f4mul, ...f4add, ...v128store,
      ]),
      ...get(0), ...i32c(8), ...add, ...set(0),
      ...incr(6, 4),
    ])),
  ]);
  // slice(off0, wa1, val2, norm3, acc4, n5, dp1 6, rowBytes7, wc8(f32), useNorm9)
  // locals: i10 j11 v12 eb13 ej14 o15 px16(v128) wcv17(v128)
  const slice = func([[6, I32], [2, V128]], [
    ...i32c(0), ...set(10), ...i32c(0), ...set(13),
    ...get(8), ...f4splat, ...set(17),
    ...guard(5, doWhile(10, 1, 5, [
      ...i32c(0), ...set(12),
      ...doWhile(12, 16, 7, [
        ...v128zero, ...set(16),
        ...i32c(0), ...set(11), ...get(13), ...set(14),
        ...doWhile(11, 1, 6, [
          ...get(2), ...get(0), ...get(14), ...add, ...loadI32(), ...get(7), ...mul, ...add, ...get(12), ...add, ...set(15),
          ...get(16),
          ...get(1), ...get(14), ...add, ...loadF32(), ...f4splat,
          ...get(15), ...v128load, ...f4mul, ...f4add, ...set(16),
          ...get(14), ...i32c(4), ...add, ...set(14),
        ]),
        ...ifNonZero(9, [...get(16), ...get(3), ...loadF32(), ...f4splat, ...f4mul, ...set(16)]),
        ...get(4), ...get(12), ...add,
        ...get(4), ...get(12), ...add, ...v128load,
        ...get(17), ...get(16), ...f4mul, ...f4add, ...v128store,
      ]),
      ...get(14), ...set(13),
      ...get(3), ...i32c(4), ...add, ...set(3),
      ...incr(4, 7),
    ])),
  ]);
  // softmax(in0, out1, n2, rowBytes3, mask4); locals: i5 v6 last7 | mx8 sum9 maskv10 ninf11 x0 12 x13 fx14 z15 e16 (v128)
  const IN = 0, OUT = 1, N = 2, RB = 3, MASK = 4, I = 5, V = 6, LAST = 7, MX = 8, SUM = 9, MV = 10, NINF = 11, E = 16;
  const ex = expF4(12, 13, 14, 15);
  const softmax = func([[3, I32], [9, V128]], [
    ...get(MASK), ...v128load, ...set(MV),
    ...f4const(-Infinity), ...set(NINF),
    ...get(RB), ...i32c(16), ...[0x6b], ...set(LAST), // last = rowBytes - 16
    ...i32c(0), ...set(I),
    ...guard(N, doWhile(I, 1, N, [
      // max over the valid lanes
      ...get(NINF), ...set(MX),
      ...i32c(0), ...set(V),
      ...guard(LAST, doWhile(V, 16, LAST, [...get(MX), ...get(IN), ...get(V), ...add, ...v128load, ...f4max, ...set(MX)])),
      ...get(MX), ...get(IN), ...get(LAST), ...add, ...v128load, ...get(NINF), ...get(MV), ...bitselect, ...f4max, ...set(MX),
      ...get(MX), ...extract(0), ...get(MX), ...extract(1), ...fmax, ...get(MX), ...extract(2), ...get(MX), ...extract(3), ...fmax, ...fmax,
      ...f4splat, ...set(MX),
      // exp and sum
      ...v128zero, ...set(SUM),
      ...i32c(0), ...set(V),
      ...guard(LAST, doWhile(V, 16, LAST, [
        ...get(IN), ...get(V), ...add, ...v128load, ...get(MX), ...f4sub, ...ex, ...set(E),
        ...get(OUT), ...get(V), ...add, ...get(E), ...v128store,
        ...get(SUM), ...get(E), ...f4add, ...set(SUM),
      ])),
      ...get(IN), ...get(LAST), ...add, ...v128load, ...get(MX), ...f4sub, ...ex, ...get(MV), ...vand, ...set(E),
      ...get(OUT), ...get(LAST), ...add, ...get(E), ...v128store,
      ...get(SUM), ...get(E), ...f4add, ...set(SUM),
      ...get(SUM), ...extract(0), ...get(SUM), ...extract(1), ...fadd, ...get(SUM), ...extract(2), ...get(SUM), ...extract(3), ...fadd, ...fadd,
      ...f4splat, ...set(SUM),
      // normalise
      ...i32c(0), ...set(V),
      ...doWhile(V, 16, RB, [
        ...get(OUT), ...get(V), ...add,
        ...get(OUT), ...get(V), ...add, ...v128load, ...get(SUM), ...f4div, ...v128store,
      ]),
      ...incr(IN, RB), ...incr(OUT, RB),
    ])),
  ]);
  const types = [
    [0x60, ...vec([I32, I32, I32, I32, I32, I32, I32].map((t) => [t])), 0], // splat
    [0x60, ...vec([I32, I32, I32, I32, I32].map((t) => [t])), 0], // blur
    [0x60, ...vec([I32, I32, I32, I32, I32, I32, I32, I32, F32, I32].map((t) => [t])), 0], // slice
    [0x60, ...vec([I32, I32, I32, I32, I32].map((t) => [t])), 0], // softmax
    [0x60, ...vec([I32, I32, I32, I32, I32, I32, I32, I32, I32].map((t) => [t])), 0], // splatNorm
  ];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(2, vec([[...str("env"), ...str("mem"), 0x02, 0x00, 0x01]])), // memory, min 1 page
    ...section(3, vec([[0], [1], [2], [3], [4]])),
    ...section(7, vec([[...str("splat"), 0, 0], [...str("blur"), 0, 1], [...str("slice"), 0, 2], [...str("softmax"), 0, 3], [...str("splatNorm"), 0, 4]])),
    ...section(10, vec([splat, blur, slice, softmax, splatNorm])),
  ];
  return new Uint8Array(bytes);
}

let compiled: object | null | undefined;

/** The compiled module, or null where WebAssembly SIMD is unavailable (or MASKDISTILL_CRF_WASM=0). */
function wasmModule(): object | null {
  if (compiled !== undefined) return compiled;
  const W = (globalThis as any).WebAssembly as WasmApi | undefined;
  if (!W || process.env.MASKDISTILL_CRF_WASM === "0") return (compiled = null);
  try {
    compiled = new W.Module(moduleBytes());
  } catch (e) {
    if (process.env.MASKDISTILL_CRF_WASM === "1") throw e;
    compiled = null;
  }
  return compiled;
}

export function wasmAvailable(): boolean {
  return wasmModule() !== null;
}

/** Instantiates the kernels over a fresh memory of at least `bytes` bytes; null without wasm SIMD. */
export function latticeKernels(bytes: number): LatticeKernels | null {
  const mod = wasmModule();
  if (!mod) return null;
  const W = (globalThis as any).WebAssembly as WasmApi;
  const pages = Math.ceil(bytes / 65536) + 1;
  if (pages > 65536) return null; // beyond 4 GiB: fall back to the TypeScript loops
  let memory: WasmMemory;
  try {
    memory = new W.Memory({ initial: pages });
  } catch {
    return null; // the allocation failed: the TypeScript loops need less memory at once
  }
  const inst = new W.Instance(mod, { env: { mem: memory } });
  const e = inst.exports as any;
  return { memory, splat: e.splat, blur: e.blur, slice: e.slice, softmax: e.softmax, splatNorm: e.splatNorm };
}
