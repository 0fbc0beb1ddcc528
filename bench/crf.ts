// Dense CRF speed (issue 16): MaskDistill's dense_crf on a 500×375 VOC image with 21-class logits at
// stride 8 (63×47), 10 mean-field iterations, one thread. Logits: 4 on the ground-truth class of each
// cell, 2 on background elsewhere, + Gaussian noise (std 1.5, seeded), as the fixtures make them.
// pydensecrf (C++/SSE) on the same kind of machine (test/fixtures/densecrf/README.md, median of 5):
// inference(10) 1.84 s, CRF setup + inference(10) 2.42 s, whole dense_crf 2.40 s. Medians of RUNS
// after a warm-up; memory = the typed arrays and wasm memory a CRF and its inference state hold (the
// 21-class float32 image is W·H·21·4 bytes), and the process's peak RSS (after all runs).
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { loadRgb } from "../src/data/image.js";
import { readLabelPng } from "../src/data/png.js";
import { mulberry32 } from "../src/random.js";
import { denseCrfFromLogits, unaryFromLogits, MASKDISTILL_CRF } from "../src/refine/crf.js";
import { addPairwiseBilateral, addPairwiseGaussian, createDenseCrf, crfMemoryBytes, inference, startInference } from "../src/refine/densecrf.js";

const RUNS = 3;
const PYDENSECRF = { inference10S: 1.84, setupAndInference10S: 2.42, wholeS: 2.4 };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Synthetic logits [21, ceil(H/8), ceil(W/8)] from a VOC label map. */
function logitsFromGt(gt: Uint8Array, W: number, H: number, seed: number): { data: Float32Array; h: number; w: number } {
  const C = 21, h = Math.ceil(H / 8), w = Math.ceil(W / 8);
  const rnd = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  const data = new Float32Array(C * h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const px = Math.min(W - 1, x * 8 + 4), py = Math.min(H - 1, y * 8 + 4);
      let cls = gt[py * W + px];
      if (cls === 255) cls = 0;
      for (let c = 0; c < C; c++) {
        const base = c === cls ? (c === 0 ? 2 : 4) : 0;
        data[(c * h + y) * w + x] = base + 1.5 * gauss();
      }
    }
  }
  return { data, h, w };
}

/** The bench input: VOC 2007_000039 (500×375), its BGR pixels and synthetic 21-class logits. */
export async function crfBenchInput() {
  const file = projectPath("data", "voc-mini", "JPEGImages", "2007_000039.jpg");
  const img = await loadRgb(file);
  const gt = readLabelPng(projectPath("data", "voc-mini", "SegmentationClass", "2007_000039.png"));
  const { width: W, height: H } = img;
  const C = 21;
  const lg = logitsFromGt(gt.data, W, H, 39);
  const bgr = new Uint8Array(img.data.length);
  for (let i = 0; i < bgr.length; i += 3) { bgr[i] = img.data[i + 2]; bgr[i + 1] = img.data[i + 1]; bgr[i + 2] = img.data[i]; }
  return { file, img, W, H, C, lg, bgr };
}

export async function benchCrf(): Promise<object> {
  const { file, img, W, H, C, lg, bgr } = await crfBenchInput();

  const P = MASKDISTILL_CRF;
  const t = { unary: [] as number[], setup: [] as number[], inference: [] as number[], whole: [] as number[] };
  let bytes = 0, lattice = { gaussianPoints: 0, bilateralPoints: 0 };
  for (let r = 0; r <= RUNS; r++) {
    let t0 = performance.now();
    const { unary } = unaryFromLogits(lg.data, C, lg.h, lg.w, H, W, P.clip, false);
    const tUnary = performance.now() - t0;
    t0 = performance.now();
    const crf = createDenseCrf(W, H, C);
    crf.unary = unary; // pixel-major already
    const g = addPairwiseGaussian(crf, P.gaussian);
    const b = addPairwiseBilateral(crf, bgr, P.bilateral);
    const tSetup = performance.now() - t0;
    t0 = performance.now();
    inference(crf, P.iterations);
    const tInf = performance.now() - t0;
    t0 = performance.now();
    denseCrfFromLogits(lg.data, C, lg.h, lg.w, img);
    const tWhole = performance.now() - t0;
    if (r === 0) { // warm-up; memory of a CRF with its inference state
      bytes = crfMemoryBytes(crf, startInference(crf));
      lattice = { gaussianPoints: g.lattice.m, bilateralPoints: b.lattice.m };
      continue;
    }
    t.unary.push(tUnary); t.setup.push(tSetup); t.inference.push(tInf); t.whole.push(tWhole);
  }
  const s = (xs: number[]) => Math.round(median(xs)) / 1000;
  const inf = s(t.inference), setupInf = s(t.setup.map((v, i) => v + t.inference[i])), whole = s(t.whole);
  return {
    input: `${path.basename(file)} ${W}×${H}, ${C} classes, logits ${lg.w}×${lg.h}, ${P.iterations} iterations, 1 thread`,
    runs: RUNS,
    unaryS: s(t.unary),
    setupS: s(t.setup),
    inference10S: inf,
    setupAndInference10S: setupInf,
    wholeS: whole,
    pydensecrf: PYDENSECRF,
    ratioInference10: Math.round((inf / PYDENSECRF.inference10S) * 100) / 100,
    ratioSetupAndInference10: Math.round((setupInf / PYDENSECRF.setupAndInference10S) * 100) / 100,
    ratioWhole: Math.round((whole / PYDENSECRF.wholeS) * 100) / 100,
    target: "≤ 1.0× pydensecrf",
    lattice,
    crfMB: Math.round(bytes / 2 ** 20),
    crfBytesPerPixelClass: Math.round((bytes / (W * H * C)) * 10) / 10,
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    loadAverage1m: Math.round(os.loadavg()[0] * 100) / 100, // other work on the machine slows every figure
  };
}

// `node --import tsx bench/crf.ts` runs it alone
if (process.argv[1] && /bench[\\/]crf\.ts$/.test(process.argv[1])) {
  benchCrf().then((r) => console.log(JSON.stringify(r, null, 2)));
}
