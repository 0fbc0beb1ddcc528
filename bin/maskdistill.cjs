#!/usr/bin/env node
// Launcher: registers tsx's loader in this process and runs the TypeScript CLI, so the package needs no
// build step and there is one process (signals such as Ctrl-C or a scheduler's SIGTERM reach the CLI itself).
const path = require("node:path");
const { pathToFileURL } = require("node:url");
const root = path.resolve(__dirname, "..");
process.env.MASKDISTILL_ROOT = root;
// importing tsx's ESM entry registers its loader hooks, as `node --import tsx/esm` does
const tsx = pathToFileURL(require.resolve("tsx/esm", { paths: [root] })).href;
import(tsx).then(() => import(pathToFileURL(path.join(root, "src", "cli", "main.ts")).href)).catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
