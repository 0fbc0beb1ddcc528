// The shape of one `npx maskdistill <command>`: a thin layer over library functions.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { MaskdistillError } from "../errors.js";
import type { Shard } from "../runner/perImage.js";

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

/**
 * Stops with one error naming every missing flag (and pointing at `--help`) when a flag the command cannot
 * run without is absent; afterwards TypeScript knows those flags are strings.
 */
export function requireFlags<V extends Record<string, unknown>, K extends keyof V & string>(command: string, values: V, names: readonly K[]): asserts values is V & { [P in K]-?: string } {
  const missing = names.filter((n) => values[n] === undefined || values[n] === "").map((n) => `--${n}`);
  if (missing.length === 0) return;
  const list = missing.length === 1 ? missing[0] : `${missing.slice(0, -1).join(", ")} and ${missing[missing.length - 1]}`;
  throw new MaskdistillError(`${list} ${missing.length === 1 ? "is" : "are"} required. Run 'maskdistill ${command} --help' for the flags.`);
}

export type { Shard };

/** Environment variable with the number of shards when the scheduler does not give it (Kubernetes). */
export const SHARD_COUNT_ENV = "MASKDISTILL_SHARD_COUNT";

/** The flags of every sharded command: spread into parseFlags' options, pass both to `parseShard`. */
export const SHARD_FLAGS = { shard: { type: "string" }, "shard-count": { type: "string" } } as const;

/** The usage lines of SHARD_FLAGS. */
export const SHARD_USAGE = `  --shard i/n|auto         process items j with j % n == i (0-based i); auto: i and n from the scheduler,
                           SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT (or _MIN/_MAX/_STEP) of
                           'sbatch --array', or JOB_COMPLETION_INDEX of a Kubernetes Indexed Job
  --shard-count N          with --shard auto: the number of shards (default \$${SHARD_COUNT_ENV}; needed
                           for Kubernetes); the scheduler's task id is then the shard index itself`;

/**
 * Parses `--shard i/n` (0-based i) or `--shard auto`, which reads the shard from the scheduler's
 * environment: a SLURM array task (SLURM_ARRAY_TASK_ID; the count from SLURM_ARRAY_TASK_COUNT, or the
 * range SLURM_ARRAY_TASK_MIN..MAX by SLURM_ARRAY_TASK_STEP) or a Kubernetes Indexed Job pod
 * (JOB_COMPLETION_INDEX; the count from `countFlag` or $MASKDISTILL_SHARD_COUNT). An explicit count
 * (`countFlag` / the env var) makes the task id the shard index, so a resubmitted single task
 * (`sbatch --array=2`) keeps its place.
 */
export function parseShard(spec: string | undefined, countFlag?: string, env: NodeJS.ProcessEnv = process.env): Shard {
  if (spec === "auto") return shardFromEnvironment(countFlag, env);
  if (countFlag !== undefined) throw new MaskdistillError(`--shard-count goes with --shard auto (with --shard i/n the count is n), got --shard ${spec ?? "(none)"} --shard-count ${countFlag}`);
  if (!spec) return { index: 0, count: 1 };
  const m = /^(\d+)\/(\d+)$/.exec(spec);
  const index = m ? Number(m[1]) : NaN, count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 0 || index >= count) {
    throw new MaskdistillError(`--shard expects i/n with 0 <= i < n (e.g. 0/4) or auto, got '${spec}'`);
  }
  return { index, count };
}

function shardFromEnvironment(countFlag: string | undefined, env: NodeJS.ProcessEnv): Shard {
  const integer = (name: string, value: string, min: number): number => {
    const v = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(v) || v < min) throw new MaskdistillError(`--shard auto: ${name}='${value}' is not an integer >= ${min}`);
    return v;
  };
  const set = (name: string): string | undefined => (env[name] !== undefined && env[name] !== "" ? env[name] : undefined);
  const countSource = countFlag !== undefined ? "--shard-count" : set(SHARD_COUNT_ENV) !== undefined ? SHARD_COUNT_ENV : undefined;
  const explicitCount = countSource === undefined ? undefined : integer(countSource, countFlag ?? env[SHARD_COUNT_ENV]!, 1);
  const checked = (index: number, count: number, what: string): Shard => {
    if (index >= count) throw new MaskdistillError(`--shard auto: ${what} gives shard ${index}, but there are ${count} shards (0..${count - 1})`);
    return { index, count };
  };

  const slurmId = set("SLURM_ARRAY_TASK_ID");
  if (slurmId !== undefined) {
    const id = integer("SLURM_ARRAY_TASK_ID", slurmId, 0);
    if (explicitCount !== undefined) {
      return checked(id, explicitCount, `SLURM_ARRAY_TASK_ID=${id} with ${countSource} ${explicitCount} (the task id is the shard index: submit --array=0-${explicitCount - 1})`);
    }
    const minText = set("SLURM_ARRAY_TASK_MIN"), maxText = set("SLURM_ARRAY_TASK_MAX"), countText = set("SLURM_ARRAY_TASK_COUNT");
    if (minText === undefined || maxText === undefined) {
      if (countText === undefined) {
        throw new MaskdistillError("--shard auto: SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN/MAX is; pass --shard-count N (the task id is then the shard index)");
      }
      return checked(id, integer("SLURM_ARRAY_TASK_COUNT", countText, 1), `SLURM_ARRAY_TASK_ID=${id} of SLURM_ARRAY_TASK_COUNT=${countText}`);
    }
    const min = integer("SLURM_ARRAY_TASK_MIN", minText, 0), max = integer("SLURM_ARRAY_TASK_MAX", maxText, min);
    const stepText = set("SLURM_ARRAY_TASK_STEP");
    const step = stepText === undefined ? 1 : integer("SLURM_ARRAY_TASK_STEP", stepText, 1);
    const span = Math.floor((max - min) / step) + 1;
    const count = countText === undefined ? span : integer("SLURM_ARRAY_TASK_COUNT", countText, 1);
    if (count !== span || id < min || id > max || (id - min) % step !== 0) {
      throw new MaskdistillError(
        `--shard auto: the array is not the range ${min}-${max}:${step} of ${count} tasks (SLURM_ARRAY_TASK_ID=${id}; a list such as --array=1,5 ` +
          "or a resubmission of some tasks?); pass --shard-count N so that the task id is the shard index",
      );
    }
    return { index: (id - min) / step, count };
  }
  const k8sIndex = set("JOB_COMPLETION_INDEX");
  if (k8sIndex !== undefined) {
    const index = integer("JOB_COMPLETION_INDEX", k8sIndex, 0);
    if (explicitCount === undefined) {
      throw new MaskdistillError(`--shard auto: JOB_COMPLETION_INDEX=${index} (a Kubernetes Indexed Job) gives the shard index but not the count; pass --shard-count N or set ${SHARD_COUNT_ENV} to the Job's completions`);
    }
    return checked(index, explicitCount, `JOB_COMPLETION_INDEX=${index} with ${countSource} ${explicitCount}`);
  }
  throw new MaskdistillError(
    "--shard auto needs a scheduler's task index: SLURM_ARRAY_TASK_ID (a job submitted with sbatch --array) or JOB_COMPLETION_INDEX " +
      "(a Kubernetes Indexed Job), and neither is set; outside an array give --shard i/n",
  );
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
