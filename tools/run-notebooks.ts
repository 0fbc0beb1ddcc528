// `npm run notebooks [-- NAME...]`: executes notebooks/*.ipynb in name order, headless, with the
// project's tslab kernel; executed copies go to results/notebooks/. Exits non-zero on any failure.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { projectRoot } from "../src/paths.js";
import { checkNotebookChartsFile } from "../src/notebook/check.js";

const root = projectRoot();
const only = process.argv.slice(2);
const notebooks = fs.readdirSync(path.join(root, "notebooks"))
  .filter((f) => f.endsWith(".ipynb") && (only.length === 0 || only.some((o) => f.startsWith(o))))
  .sort()
  .map((f) => path.join("notebooks", f));
if (notebooks.length === 0) {
  console.error("no notebooks matched");
  process.exit(1);
}
const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
const check = spawnSync(python, ["-c", "import nbclient, nbformat"], { encoding: "utf8" });
if (check.status !== 0) {
  console.error(`${python} cannot import nbclient. Install: sudo apt-get install -y jupyter-nbconvert python3-nbclient jupyter-client`);
  process.exit(1);
}
const outDir = path.join(root, "results", "notebooks");
const res = spawnSync(python, [path.join(root, "tools", "run_notebook.py"), outDir, ...notebooks], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, JUPYTER_PATH: path.join(root, "kernel"), MASKDISTILL_ROOT: root, MASKDISTILL_QUIET: "1", PYTHONUNBUFFERED: "1" },
});
if (res.status !== 0) process.exit(res.status ?? 1);

// Every chart of every executed notebook carries a non-blank PNG (GitHub, nbconvert HTML and the classic
// Notebook show that; they render neither the vega-lite spec nor inline SVG).
let passed = 0, failed = 0;
for (const nb of notebooks) {
  const { charts, problems } = checkNotebookChartsFile(path.join(outDir, path.basename(nb)));
  for (const p of problems) console.error(`${nb}: ${p}`);
  if (problems.length) failed++; else passed++;
  console.log(`${nb}: ${charts} chart(s), ${charts - problems.length} with a non-blank PNG`);
}
console.log(`chart check: ${passed} of ${notebooks.length} notebooks have a non-blank PNG for every chart`);
process.exit(failed ? 1 : 0);
