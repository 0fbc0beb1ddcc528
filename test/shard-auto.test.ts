// `--shard i/n|auto` (src/cli/command.ts parseShard): the shard from a SLURM array task or a Kubernetes
// Indexed Job pod, and a clear error for every environment that does not give one.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as os from "node:os";
import { parseShard, SHARD_COUNT_ENV } from "../src/cli/command.js";
import { availableCpus } from "../src/cpus.js";

const slurm = (id: number, min: number, max: number, extra: Record<string, string> = {}) => ({
  SLURM_ARRAY_TASK_ID: String(id), SLURM_ARRAY_TASK_MIN: String(min), SLURM_ARRAY_TASK_MAX: String(max), ...extra,
});

test("--shard i/n and no flag", () => {
  assert.deepEqual(parseShard(undefined, undefined, {}), { index: 0, count: 1 });
  assert.deepEqual(parseShard("3/4", undefined, {}), { index: 3, count: 4 });
  for (const bad of ["4/4", "1/0", "-1/2", "1/2/3", "a/b", "auto/4"]) {
    assert.throws(() => parseShard(bad, undefined, {}), /--shard expects i\/n with 0 <= i < n \(e\.g\. 0\/4\) or auto/, bad);
  }
  assert.throws(() => parseShard("0/4", "4", {}), /--shard-count goes with --shard auto/);
});

test("--shard auto in a SLURM array: task id, count and range", () => {
  // sbatch --array=0-3: what slurmd exports to task 2
  assert.deepEqual(parseShard("auto", undefined, slurm(2, 0, 3, { SLURM_ARRAY_TASK_COUNT: "4", SLURM_ARRAY_TASK_STEP: "1" })), { index: 2, count: 4 });
  // --array=1-4 (1-based ids), without COUNT: the range gives the count
  assert.deepEqual(parseShard("auto", undefined, slurm(1, 1, 4)), { index: 0, count: 4 });
  assert.deepEqual(parseShard("auto", undefined, slurm(4, 1, 4)), { index: 3, count: 4 });
  // --array=0-6:2 → ids 0, 2, 4, 6
  assert.deepEqual(parseShard("auto", undefined, slurm(4, 0, 6, { SLURM_ARRAY_TASK_STEP: "2", SLURM_ARRAY_TASK_COUNT: "4" })), { index: 2, count: 4 });
  // only ID and COUNT (no range): the id is the index
  assert.deepEqual(parseShard("auto", undefined, { SLURM_ARRAY_TASK_ID: "1", SLURM_ARRAY_TASK_COUNT: "3" }), { index: 1, count: 3 });
  // an explicit count makes the id the index: a resubmitted single task (--array=2) keeps its shard
  assert.deepEqual(parseShard("auto", "4", slurm(2, 2, 2, { SLURM_ARRAY_TASK_COUNT: "1" })), { index: 2, count: 4 });
  assert.deepEqual(parseShard("auto", undefined, slurm(2, 2, 2, { [SHARD_COUNT_ENV]: "4" })), { index: 2, count: 4 });
  // --shard-count wins over the env var
  assert.deepEqual(parseShard("auto", "8", slurm(5, 0, 7, { [SHARD_COUNT_ENV]: "4" })), { index: 5, count: 8 });
});

test("--shard auto in a SLURM array: clear errors", () => {
  assert.throws(() => parseShard("auto", undefined, { SLURM_ARRAY_TASK_ID: "2" }),
    /SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN\/MAX is; pass --shard-count N/);
  // a list (--array=1,5): the range 1-5 holds 5 ids but the array has 2 tasks
  assert.throws(() => parseShard("auto", undefined, slurm(5, 1, 5, { SLURM_ARRAY_TASK_COUNT: "2" })),
    /the array is not the range 1-5:1 of 2 tasks \(SLURM_ARRAY_TASK_ID=5; a list such as --array=1,5 or a resubmission of some tasks\?\); pass --shard-count N/);
  // with an explicit count the 1-based ids of --array=1-4 are taken literally: id 4 is out of range
  assert.deepEqual(parseShard("auto", "4", slurm(1, 1, 4)), { index: 1, count: 4 });
  assert.throws(() => parseShard("auto", "4", slurm(4, 1, 4)),
    /--shard auto: SLURM_ARRAY_TASK_ID=4 with --shard-count 4 \(the task id is the shard index: submit --array=0-3\) gives shard 4, but there are 4 shards \(0\.\.3\)/);
  assert.throws(() => parseShard("auto", undefined, { SLURM_ARRAY_TASK_ID: "x", SLURM_ARRAY_TASK_COUNT: "4" }), /SLURM_ARRAY_TASK_ID='x' is not an integer >= 0/);
  assert.throws(() => parseShard("auto", "0", slurm(0, 0, 3)), /--shard-count='0' is not an integer >= 1/);
  assert.throws(() => parseShard("auto", undefined, slurm(0, 0, 3, { [SHARD_COUNT_ENV]: "four" })), /MASKDISTILL_SHARD_COUNT='four' is not an integer >= 1/);
});

test("--shard auto in a Kubernetes Indexed Job: JOB_COMPLETION_INDEX plus a count", () => {
  assert.deepEqual(parseShard("auto", "4", { JOB_COMPLETION_INDEX: "3" }), { index: 3, count: 4 });
  assert.deepEqual(parseShard("auto", undefined, { JOB_COMPLETION_INDEX: "0", [SHARD_COUNT_ENV]: "2" }), { index: 0, count: 2 });
  assert.throws(() => parseShard("auto", undefined, { JOB_COMPLETION_INDEX: "3" }),
    /JOB_COMPLETION_INDEX=3 \(a Kubernetes Indexed Job\) gives the shard index but not the count; pass --shard-count N or set MASKDISTILL_SHARD_COUNT to the Job's completions/);
  assert.throws(() => parseShard("auto", "2", { JOB_COMPLETION_INDEX: "2" }), /gives shard 2, but there are 2 shards \(0\.\.1\)/);
  // an empty variable counts as unset
  assert.throws(() => parseShard("auto", "2", { JOB_COMPLETION_INDEX: "", SLURM_ARRAY_TASK_ID: "" }), /--shard auto needs a scheduler's task index/);
});

test("--shard auto outside a scheduler", () => {
  assert.throws(() => parseShard("auto", undefined, {}),
    /--shard auto needs a scheduler's task index: SLURM_ARRAY_TASK_ID \(a job submitted with sbatch --array\) or JOB_COMPLETION_INDEX \(a Kubernetes Indexed Job\), and neither is set; outside an array give --shard i\/n/);
});

test("threads: MASKDISTILL_THREADS, else SLURM's --cpus-per-task, else every core", () => {
  assert.equal(availableCpus({ SLURM_CPUS_PER_TASK: "3" }), 3);
  assert.equal(availableCpus({ MASKDISTILL_THREADS: "2", SLURM_CPUS_PER_TASK: "3" }), 2);
  assert.equal(availableCpus({ MASKDISTILL_THREADS: "0", SLURM_CPUS_PER_TASK: "x" }), os.cpus().length);
  assert.equal(availableCpus({}), os.cpus().length);
});
