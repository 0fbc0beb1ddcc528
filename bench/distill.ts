// Stage (i) speed per image at --resize 640 on the four voc-mini images (500×375 and similar → about
// 864×640, 2160 patches): JPEG decode, preprocessing, ViT-S/16 q/k (12 blocks, random weights — only the
// speed matters), the mask algorithm, back-projection and the RLE annotation; then the same images
// through genMasks() (journal, output JSON) for the end-to-end figure.
// Targets (issue "Stage i"): ≤ 1.2 s per image on 2 cores, of which ≤ 10 % outside the backbone.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { projectPath } from "../src/paths.js";
import { loadRgb } from "../src/data/image.js";
import { preprocess } from "../src/data/preprocess.js";
import { loadBackbone } from "../src/modeling/backbone.js";
import { writeSafetensors, type StateDict } from "../src/modeling/checkpoint/index.js";
import { syntheticVitStateDict } from "../src/modeling/vit.js";
import { maskFromAttention } from "../src/distill/maskFromAttention.js";
import { backProject } from "../src/distill/backProject.js";
import { genMasks } from "../src/distill/genMasks.js";
import { folderImages } from "../src/distill/imageList.js";
import { rleArea, rleFromMask, rleToBbox, rleToCoco } from "../src/mask/rle.js";
import { polygonsFromMask } from "../src/mask/polygon.js";

const PASSES = 2;
const STAGES = ["decode", "preprocess", "backbone", "mask", "backProject", "encodeRle", "polygon"] as const;
type Stage = (typeof STAGES)[number];

export async function benchDistill(): Promise<object> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "md-bench-distill-"));
  const savedHome = process.env.MASKDISTILL_HOME;
  process.env.MASKDISTILL_HOME = path.join(tmp, "home"); // graphs of the random checkpoint stay in tmp
  try {
    const ckpt = path.join(tmp, "vit_s16_depth12.safetensors");
    writeSafetensors(ckpt, syntheticVitStateDict({ patch: 16, dim: 384, depth: 12, mlpHidden: 1536, posGrid: 14 }, 16));
    const tLoad = performance.now();
    const backbone = await loadBackbone(ckpt, { arch: "vit_small" });
    const images = folderImages(projectPath("data", "voc-mini", "JPEGImages"));

    const times: Record<Stage, number[]> = { decode: [], preprocess: [], backbone: [], mask: [], backProject: [], encodeRle: [], polygon: [] };
    let grid = "", exactColumns = 0, firstImageMs = 0;
    for (let pass = 0; pass <= PASSES; pass++) {
      for (const item of images) {
        const t: number[] = [performance.now()];
        const img = await loadRgb(item.file);
        t.push(performance.now());
        const pre = preprocess(img, { resize: 640, multiple: 16 });
        t.push(performance.now());
        const qk = await backbone.lastSelfAttention(pre);
        t.push(performance.now());
        const m = maskFromAttention(qk.q, qk.k, qk);
        t.push(performance.now());
        const full = backProject(m.patchMask, qk.rows, qk.cols, 16, pre.validWidth, pre.validHeight, img.width, img.height);
        t.push(performance.now());
        const rle = rleFromMask(full, img.height, img.width);
        JSON.stringify({ area: rleArea(rle), bbox: rleToBbox(rle), segmentation: rleToCoco(rle) });
        t.push(performance.now());
        polygonsFromMask(full, img.height, img.width, 2);
        t.push(performance.now());
        if (pass === 0) {
          if (!firstImageMs) firstImageMs = t[t.length - 2] - t[0]; // includes graph build + session start
          continue; // warm-up pass
        }
        STAGES.forEach((s, i) => times[s].push(t[i + 1] - t[i]));
        grid = `${qk.cols}x${qk.rows}`;
        exactColumns += m.exactColumns;
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const perStage = Object.fromEntries(STAGES.map((s) => [s, round(median(times[s]))])) as Record<Stage, number>;
    // the default output is RLE: the polygon export is reported but not part of the per-image total
    const totalMs = STAGES.filter((s) => s !== "polygon").reduce((a, s) => a + perStage[s], 0);
    const outsideMs = totalMs - perStage.backbone;

    // genMasks over the same images: journal, annotations, atomic JSON
    const predJson = path.join(tmp, "pred.json");
    const summary = await genMasks({ images, predJson, backbone, resize: 640, quiet: true });
    await backbone.dispose();

    return {
      images: images.length,
      grid,
      threads: os.cpus().length,
      medianMsPerStage: perStage,
      totalMsPerImage: round(totalMs),
      outsideBackboneMs: round(outsideMs),
      outsideBackboneShare: Math.round((outsideMs / totalMs) * 1000) / 1000,
      genMasksSecondsPerImage: Math.round(summary.secondsPerImage * 1000) / 1000,
      exactExpansionColumnsPerImage: exactColumns / (PASSES * images.length),
      firstImageMsWithGraphBuild: round(firstImageMs),
      loadAndFirstPassS: round((performance.now() - tLoad) / 1000),
      targetTotalMs: 1200,
      targetOutsideBackboneShare: 0.1,
    };
  } finally {
    if (savedHome === undefined) delete process.env.MASKDISTILL_HOME;
    else process.env.MASKDISTILL_HOME = savedHome;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function round(v: number): number {
  return Math.round(v * 10) / 10;
}

