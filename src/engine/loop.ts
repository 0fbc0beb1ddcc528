// Pieces every training loop shares (DINO pretraining, Mask R-CNN): seeds mixed from integers, the
// seeded image order of an epoch, and the JSONL log cut back to the checkpoint's step on resume.
import * as fs from "node:fs";
import { mulberry32 } from "../random.js";

/** Mixes integers into a 32-bit seed. */
export function mixSeed(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** The image order of an epoch (Fisher–Yates with a PRNG seeded by seed and epoch). */
export function epochOrder(seed: number, epoch: number, n: number): number[] {
  const rng = mulberry32(mixSeed(seed, epoch, 1));
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** Keeps a JSONL log's lines with `step` ≤ `step` (work after the last checkpoint is redone, not duplicated). */
export function truncateLog(file: string, step: number): void {
  if (!fs.existsSync(file)) return;
  const keep = fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim() && (JSON.parse(l) as { step: number }).step <= step);
  fs.writeFileSync(file, keep.map((l) => l + "\n").join(""));
}

/** The files every trainer writes in its output folder (pretrain, train-maskrcnn, train-deeplab, linear-probe). */
export const CHECKPOINT_FILE = "checkpoint.safetensors";
export const MODEL_FILE = "model.safetensors";
export const LOG_FILE = "train_log.jsonl";
