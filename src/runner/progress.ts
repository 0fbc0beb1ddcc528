// Progress with ETA for long loops (cli-progress). On a non-TTY (CI, logs) it prints a line every
// few seconds instead of redrawing, so logs stay readable.
import * as fs from "node:fs";
import cliProgress from "cli-progress";

export interface Progress {
  /** Advance by n items (default 1); `info` is shown next to the bar (e.g. the current file). */
  tick(n?: number, info?: string): void;
  stop(): void;
}

export function progress(label: string, total: number, opts: { quiet?: boolean } = {}): Progress {
  if (opts.quiet || process.env.MASKDISTILL_QUIET) return { tick() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {value}/{total} {percentage}% | ETA {eta_formatted} | {info}`, stream: process.stderr, hideCursor: true, etaBuffer: 50 },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { info: "" });
    return { tick: (n = 1, info = "") => bar.increment(n, { info }), stop: () => bar.stop() };
  }
  const t0 = Date.now();
  let done = 0, last = t0;
  return {
    tick(n = 1, info = "") {
      done += n;
      const now = Date.now();
      if (now - last < 5000 && done < total) return;
      last = now;
      const rate = done / Math.max(1e-9, (now - t0) / 1000);
      const eta = rate > 0 ? Math.round((total - done) / rate) : 0;
      process.stderr.write(`${label} ${done}/${total} (${((100 * done) / Math.max(1, total)).toFixed(0)}%) ${rate.toFixed(2)}/s ETA ${eta}s ${info}\n`);
    },
    stop() {},
  };
}

/** Files this large take seconds to parse: say so before reading, so a long silence is explained. */
export const LARGE_READ_BYTES = 32 * 1024 * 1024;

export function announceLargeRead(label: string, what: string, file: string, opts: { quiet?: boolean } = {}): void {
  if (opts.quiet || process.env.MASKDISTILL_QUIET) return;
  let size = 0;
  try { size = fs.statSync(file).size; } catch { return; } // the reader names a missing file
  if (size >= LARGE_READ_BYTES) process.stderr.write(`${label}: reading ${what} ${file} (${(size / 1e6).toFixed(0)} MB) ...\n`);
}
