// Type-checks src/ the way the notebooks' kernel compiles it: tslab 1.0.22 bundles TypeScript 5.0 and
// compiles imported src files with its own options (ESNext modules, Node10 resolution, ES2022 lib, not
// strict). `tsc --noEmit` (5.9, strict) does not catch what 5.0 rejects — e.g. a type-guard narrowing
// that 5.0 does not keep — and such an error only showed when a notebook ran. Part of `npm test`.
const path = require("node:path");
const fs = require("node:fs");
const ts = require("@tslab/typescript-for-tslab");

const root = path.resolve(__dirname, "..");
const files = [];
const walk = (dir) => {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.name.endsWith(".ts")) files.push(p);
  }
};
walk(path.join(root, "src"));
const program = ts.createProgram(files, {
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Node10,
  esModuleInterop: true,
  target: ts.ScriptTarget.ES2022,
  lib: ["lib.es2022.d.ts"],
  experimentalDecorators: true,
  resolveJsonModule: true,
  skipLibCheck: true,
  noEmit: true,
  types: ["node"],
  typeRoots: [path.join(root, "node_modules", "@types")],
});
const diags = ts.getPreEmitDiagnostics(program).filter((d) => !d.file || !d.file.fileName.includes("node_modules"));
for (const d of diags) {
  const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n");
  if (d.file) {
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    console.error(`${path.relative(root, d.file.fileName)}:${line + 1}:${character + 1} - ${msg}`);
  } else console.error(msg);
}
console.log(`tslab typecheck (TypeScript ${ts.version}): ${files.length} files of src/, ${diags.length} error(s)`);
process.exit(diags.length ? 1 : 0);
