// Shared test helpers. Never replace process.stdout.write in a test: node's test runner reports
// through the same stream, and swallowed reports make tests silently disappear from the count.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import { decode as decodePng } from "fast-png";
import type { Command } from "../src/cli/command.js";

/** Runs a command in-process, capturing console.log / console.error lines. */
export async function runCommand(cmd: Command, argv: string[]): Promise<{ code: number; stdout: string[]; stderr: string[] }> {
  const stdout: string[] = [], stderr: string[] = [];
  const log = console.log, error = console.error, warn = console.warn;
  console.log = (...a: unknown[]) => void stdout.push(a.map(String).join(" "));
  console.error = console.warn = (...a: unknown[]) => void stderr.push(a.map(String).join(" "));
  try {
    const code = await cmd.run(argv);
    return { code, stdout, stderr };
  } finally {
    console.log = log;
    console.error = error;
    console.warn = warn;
  }
}

/** The JSON object on the last stdout line of a `--json` run. */
export function lastJson(stdout: string[]): any {
  const lines = stdout.join("\n").trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/** Row-major runs [start, length] of the nonzero pixels of a mask (the fixtures' mask format). */
export function rowRuns(mask: Uint8Array): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    let j = i;
    while (j < mask.length && mask[j]) j++;
    out.push([i, j - i]);
    i = j;
  }
  return out;
}

/** max |got − want| / max |want| (the tolerance measure of the reference fixtures). */
export function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let err = 0, mag = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    mag = Math.max(mag, Math.abs(want[i]));
  }
  return err / mag;
}

/** A little-endian float32 fixture file (the reference dumps raw arrays) as a Float32Array. */
export function readF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** MD5 (hex) of the bytes of a typed array, e.g. to compare with a fixture's numpy `tobytes()` MD5. */
export function md5Hex(d: ArrayBufferView): string {
  return crypto.createHash("md5").update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)).digest("hex");
}

/** An 8-bit PNG's samples, interleaved (`channels` per pixel). */
export interface PngPixels { width: number; height: number; channels: number; data: Uint8Array }

export function readPngPixels(file: string): PngPixels {
  const png = decodePng(fs.readFileSync(file));
  if (png.depth !== 8) throw new Error(`${file}: expected an 8-bit PNG, got depth ${png.depth}`);
  return { width: png.width, height: png.height, channels: png.channels, data: Uint8Array.from(png.data as Uint8Array) };
}

/** How many values of two equal-length byte arrays differ, and by at most how much. */
export function diffCount(a: Uint8Array, b: Uint8Array): { count: number; max: number } {
  let count = 0, max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d) { count++; if (d > max) max = d; }
  }
  return { count, max };
}

/** Runs `fn` with extra environment variables (a SLURM array task), restoring the environment after. */
export async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
  }
}
