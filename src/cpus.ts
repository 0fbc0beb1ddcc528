// How many CPU cores this process should use: the allocation a scheduler gives (MASKDISTILL_THREADS,
// e.g. set from a Kubernetes CPU limit, or SLURM's --cpus-per-task), else every core of the machine —
// so that the tasks of an array job that share a node do not each start one thread per core.
import * as os from "node:os";

export function availableCpus(env: NodeJS.ProcessEnv = process.env): number {
  for (const name of ["MASKDISTILL_THREADS", "SLURM_CPUS_PER_TASK"]) {
    const v = Number(env[name]);
    if (env[name] && Number.isInteger(v) && v >= 1) return v;
  }
  return os.cpus().length;
}
