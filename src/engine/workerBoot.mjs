// Starts a TypeScript worker module in a worker thread (engine/workers.ts): tsx's loader is registered in the
// thread, which Node does not carry over from the parent's --import, then the module named in workerData runs.
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.entry);
