// `npm run build` (also run by `npm install` / `npm ci` through "prepare"): transpiles src/**/*.ts to
// dist/**/*.js with esbuild (tsx's own compiler; no bundling, no type check — `npm test` type-checks),
// so that `npx maskdistill` starts without compiling TypeScript. bin/maskdistill.cjs uses dist/ only
// while it is newer than every file of src/; otherwise it runs src/ through tsx, so an edit is never
// served stale. Notebooks import src/ directly (tslab compiles it).
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const src = path.join(root, "src"), out = path.join(root, "dist");

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.name.endsWith(".ts") ? [p] : [];
  });
}

const t0 = Date.now();
const tmp = `${out}.tmp-${process.pid}`;
fs.rmSync(tmp, { recursive: true, force: true });
const files = walk(src);
await Promise.all(files.map(async (file) => {
  const code = fs.readFileSync(file, "utf8");
  const res = await transform(code, { loader: "ts", format: "esm", target: "node20", sourcemap: "inline", sourcefile: path.relative(root, file) });
  const dest = path.join(tmp, path.relative(src, file)).replace(/\.ts$/, ".js");
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.writeFileSync(dest, res.code);
}));
fs.writeFileSync(path.join(tmp, "package.json"), '{ "type": "module" }\n');
// what the launcher compares with src/ before using dist/: the same files, none edited since
fs.writeFileSync(path.join(tmp, "sources.json"), JSON.stringify({ builtAt: t0, files: files.map((f) => path.relative(src, f)).sort() }));
fs.rmSync(out, { recursive: true, force: true });
fs.renameSync(tmp, out);
console.log(`build: ${files.length} files of src/ → dist/ in ${Date.now() - t0} ms`);
