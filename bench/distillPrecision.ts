// Stage i in fp32 and int8 (`gen-masks --precision int8`, issue 22 item 3), in the same run.
//
// Speed: ViT-S/16, 12 blocks (random weights: only the speed matters) at --resize 640 on the four
// voc-mini images (≈ 864×640, 2160 patches): decode, preprocessing, q/k, mask, back-projection per
// image; fp32 and int8 alternate image by image (fp32, int8, fp32, int8 …) so that load from other
// users of the machine falls on both alike; medians of wall time and of process CPU time.
// Agreement with the fp32 masks: the bundled demo backbone (DINO-pretrained, 96 px) on the 63 demo val
// images, and the reference-vit checkpoint on the 20 reference-vit cases (coco-mini images at 256/640):
// mask IoU (mean, 5th percentile, share identical), CorLoc of both, the CLS attention map's largest
// difference and the q/k relative error.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { loadRgb } from "../src/data/image.js";
import { shortSideSize } from "../src/data/resize.js";
import { readCocoDataset } from "../src/data/coco.js";
import { readSplit } from "../src/data/voc.js";
import { loadBackbone, type VitBackbone } from "../src/modeling/backbone.js";
import type { VitPrecision } from "../src/modeling/vit.js";
import { writeSafetensors } from "../src/modeling/checkpoint/index.js";
import { syntheticVitStateDict } from "../src/modeling/vit.js";
import { folderImages, cocoImages } from "../src/distill/imageList.js";
import { maskAgreement, maskIou, relativeError, stageOneMask, type StageOneMask } from "../src/distill/agreement.js";
import { scoreDiscovery } from "../src/evaluation/discovery.js";
import { rleFromMask, rleToBbox, rleToCoco } from "../src/mask/rle.js";
import type { CocoResult } from "../src/data/coco.js";

const PASSES = 3;
const PRECISIONS: VitPrecision[] = ["fp32", "int8"];

export async function benchDistillPrecision(): Promise<object[]> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "md-bench-precision-"));
  const savedHome = process.env.MASKDISTILL_HOME;
  process.env.MASKDISTILL_HOME = path.join(tmp, "home"); // graphs stay in tmp
  try {
    return [await speed(tmp), await demoAgreement(), await referenceAgreement()];
  } finally {
    if (savedHome === undefined) delete process.env.MASKDISTILL_HOME;
    else process.env.MASKDISTILL_HOME = savedHome;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function both(file: string, opts: { heads?: number } = {}): Promise<Record<VitPrecision, VitBackbone>> {
  return { fp32: await loadBackbone(file, { device: "cpu", ...opts }), int8: await loadBackbone(file, { device: "cpu", precision: "int8", ...opts }) };
}

async function speed(tmp: string): Promise<object> {
  const ckpt = path.join(tmp, "vit_s16_depth12.safetensors");
  writeSafetensors(ckpt, syntheticVitStateDict({ patch: 16, dim: 384, depth: 12, mlpHidden: 1536, posGrid: 14 }, 16));
  const backbones = await both(ckpt, { heads: 6 });
  const images = folderImages(projectPath("data", "voc-mini", "JPEGImages"));
  const wall: Record<VitPrecision, number[]> = { fp32: [], int8: [] };
  const cpu: Record<VitPrecision, number[]> = { fp32: [], int8: [] };
  let grid = "";
  for (let pass = 0; pass <= PASSES; pass++) {
    for (const item of images) {
      for (const p of PRECISIONS) {
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const img = await loadRgb(item.file);
        const m = await stageOneMask(backbones[p], img, { resize: 640 });
        const t1 = performance.now();
        const c = process.cpuUsage(c0);
        const [w, h] = shortSideSize(img.width, img.height, 640);
        grid = `${Math.ceil(w / 16)}x${Math.ceil(h / 16)} patches (${m.full.length} pixels)`;
        if (pass === 0) continue; // warm-up: graph build, session start
        wall[p].push(t1 - t0);
        cpu[p].push((c.user + c.system) / 1000);
      }
    }
  }
  for (const b of Object.values(backbones)) await b.dispose();
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const perSecond = (p: VitPrecision) => round(1000 / med(wall[p]), 3);
  return {
    case: "speed: ViT-S/16 depth 12 at --resize 640, voc-mini, fp32 and int8 interleaved",
    images: images.length,
    samplesPerPrecision: wall.fp32.length,
    grid,
    threads: os.cpus().length,
    medianMsPerImage: { fp32: round(med(wall.fp32), 1), int8: round(med(wall.int8), 1) },
    imagesPerSecond: { fp32: perSecond("fp32"), int8: perSecond("int8") },
    int8SpeedupWall: round(med(wall.fp32) / med(wall.int8), 2),
    medianCpuMsPerImage: { fp32: round(med(cpu.fp32), 1), int8: round(med(cpu.int8), 1) },
    int8SpeedupCpuTime: round(med(cpu.fp32) / med(cpu.int8), 2),
    loadAverage1m: round(os.loadavg()[0], 2),
    target: "int8 ≥ 2× fp32 images/s on 2 cores",
    command: "npm run bench -- distill-precision",
  };
}

interface Compared {
  ious: number[];
  clsMaxDiff: number; // largest |Δs| over images, relative to that image's largest |s|
  qkRelError: number[];
  masks: Record<VitPrecision, { imageId: number; mask: StageOneMask; width: number; height: number }[]>;
}

async function compare(backbones: Record<VitPrecision, VitBackbone>, items: { id: number; file: string; resize: number }[]): Promise<Compared> {
  const out: Compared = { ious: [], clsMaxDiff: 0, qkRelError: [], masks: { fp32: [], int8: [] } };
  for (const item of items) {
    const img = await loadRgb(item.file);
    const a = await stageOneMask(backbones.fp32, img, { resize: item.resize });
    const b = await stageOneMask(backbones.int8, img, { resize: item.resize });
    out.ious.push(maskIou(a.full, b.full));
    let diff = 0, scale = 0;
    for (let i = 0; i < a.clsScore.length; i++) {
      diff = Math.max(diff, Math.abs(a.clsScore[i] - b.clsScore[i]));
      scale = Math.max(scale, Math.abs(a.clsScore[i]));
    }
    out.clsMaxDiff = Math.max(out.clsMaxDiff, scale ? diff / scale : diff);
    out.qkRelError.push(Math.max(relativeError(a.q, b.q), relativeError(a.k, b.k)));
    out.masks.fp32.push({ imageId: item.id, mask: a, width: img.width, height: img.height });
    out.masks.int8.push({ imageId: item.id, mask: b, width: img.width, height: img.height });
  }
  for (const b of Object.values(backbones)) await b.dispose();
  return out;
}

function summary(c: Compared) {
  const a = maskAgreement(c.ious);
  return {
    maskIou: { mean: round(a.meanIou, 4), p5: round(a.p5Iou, 4), min: round(a.minIou, 4) },
    identicalMasksPercent: round(100 * a.identicalShare, 1),
    clsAttentionMaxAbsDiffRelative: round(c.clsMaxDiff, 4),
    qkRelativeErrorMean: round(c.qkRelError.reduce((x, y) => x + y, 0) / c.qkRelError.length, 4),
  };
}

async function demoAgreement(): Promise<object> {
  const gtFile = projectPath("data", "demo", "instances.json");
  const stems = new Set(readSplit(projectPath("data", "demo", "sets", "val.txt")));
  const items = cocoImages(gtFile, projectPath("data", "demo", "images")).filter((i) => stems.has(path.parse(i.fileName).name));
  const sidecar = JSON.parse(fs.readFileSync(projectPath("data", "backbones", "demo_vit.json"), "utf8")) as { resize: number };
  const c = await compare(await both(projectPath("data", "backbones", "demo_vit.safetensors")), items.map((i) => ({ id: i.id, file: i.file, resize: sidecar.resize })));
  const gt = readCocoDataset(gtFile);
  const ids = items.map((i) => i.id);
  const corloc = (p: VitPrecision) => {
    const preds: CocoResult[] = c.masks[p].map(({ imageId, mask, width, height }) => {
      const rle = rleFromMask(mask.full, height, width);
      return { image_id: imageId, category_id: 0, score: 1, bbox: rleToBbox(rle), segmentation: rleToCoco(rle) } as CocoResult;
    });
    return scoreDiscovery(gt, preds, ids).corloc;
  };
  const fp32 = corloc("fp32"), int8 = corloc("int8");
  return {
    case: `agreement: demo backbone (${sidecar.resize} px) on the ${items.length} demo val images`,
    images: items.length,
    ...summary(c),
    corloc: { fp32: round(fp32, 2), int8: round(int8, 2), difference: round(int8 - fp32, 2) },
  };
}

async function referenceAgreement(): Promise<object> {
  const ref = projectPath("test", "fixtures", "reference-vit");
  const manifest = JSON.parse(fs.readFileSync(path.join(ref, "manifest.json"), "utf8"));
  const items = Object.keys(manifest.masks).map((key, id) => {
    const [file, side] = key.split("@");
    return { id, file: projectPath("data", "coco-mini", "images", file), resize: Number(side) };
  });
  const c = await compare(await both(path.join(ref, manifest.vit16)), items);
  return { case: `agreement: reference-vit ${manifest.vit16} on its ${items.length} cases (coco-mini at 256/640)`, images: items.length, ...summary(c) };
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
