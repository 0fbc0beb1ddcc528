#!/usr/bin/env node
// Launcher, one process: runs the compiled CLI (dist/, made by `npm run build`, which `npm install`
// runs) when it is up to date with src/, else the TypeScript CLI through tsx's loader registered in
// this process — so signals such as Ctrl-C or a scheduler's SIGTERM reach the CLI itself.
const fs = require("node:fs");
const path = require("node:path");
const { pathToFileURL } = require("node:url");
const root = path.resolve(__dirname, "..");
process.env.MASKDISTILL_ROOT = root;

/** dist/ is used only when it holds exactly src/'s files and none was edited after the build. */
function distIsCurrent() {
  try {
    const built = JSON.parse(fs.readFileSync(path.join(root, "dist", "sources.json"), "utf8"));
    const files = [];
    const walk = (dir, rel) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(dir, e.name), rel + e.name + "/");
        else if (e.name.endsWith(".ts")) {
          if (fs.statSync(path.join(dir, e.name)).mtimeMs > built.builtAt) throw new Error("stale");
          files.push(rel + e.name);
        }
      }
    };
    walk(path.join(root, "src"), "");
    return files.sort().join("\n") === built.files.join("\n");
  } catch {
    return false;
  }
}

const fail = (e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
};
if (process.env.MASKDISTILL_NO_DIST !== "1" && distIsCurrent()) {
  process.env.MASKDISTILL_CLI = "dist";
  import(pathToFileURL(path.join(root, "dist", "cli", "main.js")).href).catch(fail);
} else {
  // importing tsx's ESM entry registers its loader hooks, as `node --import tsx/esm` does
  const tsx = pathToFileURL(require.resolve("tsx/esm", { paths: [root] })).href;
  import(tsx).then(() => import(pathToFileURL(path.join(root, "src", "cli", "main.ts")).href)).catch(fail);
}
