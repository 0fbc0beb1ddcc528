// Image path speed on a real VOC image (500×375): JPEG decode, the stage-i PIL-bilinear resize to
// short side 640 (853×640 RGB), the full stage-i preprocessing (resize + normalise + pad to 864×640),
// and the mask back-projection (mode L, PIL bicubic from the resized size to the original size).
// Medians over several runs after a warm-up.
import * as fs from "node:fs";
import { projectPath } from "../src/paths.js";
import { decodeRgb } from "../src/data/image.js";
import { resizeImage, resizeU8 } from "../src/data/resize.js";
import { preprocess } from "../src/data/preprocess.js";

const RUNS = 15;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function timeMs(fn: () => unknown | Promise<unknown>, runs = RUNS): Promise<number> {
  await fn(); // warm-up (JIT)
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return Math.round(median(t) * 100) / 100;
}

/** A 0/255 blob mask of the given size (an ellipse), like a back-projected object mask. */
function blobMask(w: number, h: number): Uint8Array {
  const m = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const dx = (x - w * 0.55) / (w * 0.3), dy = (y - h * 0.5) / (h * 0.35);
    m[y * w + x] = dx * dx + dy * dy < 1 ? 255 : 0;
  }
  return m;
}

export async function benchResize(): Promise<object> {
  const file = projectPath("data", "voc-mini", "JPEGImages", "2007_000039.jpg");
  const jpeg = fs.readFileSync(file);
  const img = await decodeRgb(jpeg, file);
  const mask853 = blobMask(853, 640), mask864 = blobMask(864, 640);
  return {
    image: `voc 2007_000039.jpg ${img.width}×${img.height}`,
    runs: RUNS,
    decodeJpegMs: await timeMs(() => decodeRgb(jpeg, file)),
    bilinearRgb500x375to853x640Ms: await timeMs(() => resizeImage(img, 853, 640, "bilinear")),
    preprocessShortSide640Pad16Ms: await timeMs(() => preprocess(img, { resize: 640, multiple: 16 })),
    bicubicMask853x640to500x375Ms: await timeMs(() => resizeU8(mask853, 853, 640, 1, 500, 375, "bicubic")),
    bicubicMask864x640to500x375Ms: await timeMs(() => resizeU8(mask864, 864, 640, 1, 500, 375, "bicubic")),
    nearestMask54x40x16Ms: await timeMs(() => resizeU8(new Uint8Array(54 * 40), 54, 40, 1, 864, 640, "nearest")),
  };
}

// `node --import tsx bench/resize.ts` runs it alone
if (process.argv[1] && /bench[\\/]resize\.ts$/.test(process.argv[1])) {
  benchResize().then((r) => console.log(JSON.stringify(r, null, 2)));
}
