// The shape of one `npx maskdistill <command>`: a thin layer over library functions.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { MaskdistillError } from "../errors.js";

export interface Command {
  name: string;
  /** One line for `maskdistill --help`. */
  summary: string;
  /** Full `--help` text (usage line + flags). */
  usage: string;
  /** Runs the command; returns the process exit code. `--json` commands print one JSON object as the last stdout line. */
  run(argv: string[]): Promise<number>;
}

export type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * parseArgs with the conventions every command shares: `--help`, `--json`, unknown flags are an error
 * that names the flag and points at `--help`.
 */
export function parseFlags<T extends Options>(
  command: string,
  argv: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({
      args: argv,
      options: { help: { type: "boolean", short: "h" }, json: { type: "boolean" }, ...options },
      allowPositionals,
      strict: true,
    });
  } catch (e) {
    throw new MaskdistillError(`${(e as Error).message}. Run 'maskdistill ${command} --help' for the flags.`);
  }
}

/** Parses `--shard i/n` (0-based i). */
export function parseShard(spec: string | undefined): { index: number; count: number } {
  if (!spec) return { index: 0, count: 1 };
  const m = /^(\d+)\/(\d+)$/.exec(spec);
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 0 || index >= count) {
    throw new MaskdistillError(`--shard expects i/n with 0 <= i < n (e.g. 0/4), got '${spec}'`);
  }
  return { index, count };
}

/** Reads a numeric flag with a clear error. */
export function numberFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const v = Number(value);
  if (!Number.isFinite(v)) throw new MaskdistillError(`--${name} expects a number, got '${value}'`);
  return v;
}

/** Prints the final JSON line of a `--json` run (through console.log, which tests capture). */
export function printJson(obj: unknown): void {
  console.log(JSON.stringify(obj));
}

/** The signal that interrupted this run (SIGINT / SIGTERM), if any: main exits with 128 + its number. */
export let interruptedBy: NodeJS.Signals | undefined;

/**
 * Ctrl-C or a scheduler's SIGTERM: the first one aborts `controller` (the runner stops after the
 * current image, its journal keeps what is done for --resume); a second one exits at once.
 * Returns the function that removes the handlers.
 */
export function abortOnSignals(controller: AbortController, label: string): () => void {
  const handler = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(sig === "SIGINT" ? 130 : 143);
    interruptedBy = sig;
    console.error(`\n${label}: ${sig}, stopping after the current image (again to stop at once)…`);
    controller.abort();
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}
