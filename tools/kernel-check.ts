// `npm run kernel`: how to open the notebooks with the project's tslab kernel, for what is installed here.
// The kernel is not installed anywhere: Jupyter finds it through JUPYTER_PATH=<repo>/kernel, and its
// start script runs tslab from the repo (cells import "./src/…").
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { projectRoot } from "../src/paths.js";

const root = projectRoot();
const kernelDir = path.join(root, "kernel");
const env = { ...process.env, JUPYTER_PATH: kernelDir };
const version = (cmd: string, args: string[]): string | null => {
  const r = spawnSync(cmd, args, { env, encoding: "utf8" });
  return r.error || r.status !== 0 ? null : (r.stdout || r.stderr).trim().split("\n").pop()!.trim();
};

const lab = version("jupyter", ["lab", "--version"]);
const classic = version("jupyter", ["notebook", "--version"]);
const code = version("code", ["--version"]);
const cd = path.relative(process.cwd(), root) ? `cd ${root} && ` : "";
const routes = [
  { name: "JupyterLab", have: lab, install: "pip install jupyterlab   (not a Debian 12 package)",
    run: `${cd}JUPYTER_PATH=$PWD/kernel jupyter lab notebooks/` },
  { name: "classic Jupyter Notebook", have: classic, install: "sudo apt-get install -y jupyter-notebook   (Debian: Notebook 6.4)",
    run: `${cd}JUPYTER_PATH=$PWD/kernel jupyter notebook notebooks/` },
  { name: "VS Code + Jupyter extension", have: code, install: "VS Code with the 'Jupyter' extension (ms-toolsai.jupyter)",
    run: `${cd}JUPYTER_PATH=$PWD/kernel code .   # open notebooks/*.ipynb, pick the kernel "TypeScript (maskdistill)"` },
];

console.log(`The notebooks run on the project's own Jupyter kernel, ${path.join(kernelDir, "kernels", "tslab")}`);
console.log(`("TypeScript (maskdistill)"). Jupyter finds it through JUPYTER_PATH; nothing is installed globally.\n`);
for (const r of routes) {
  console.log(`${r.have ? "✓" : "·"} ${r.name}${r.have ? ` (${r.have})` : " — not installed: " + r.install}`);
  console.log(`    ${r.run}`);
}
console.log(`· headless, no browser: npm run notebooks   (executed copies in results/notebooks/)`);

const specs = spawnSync("jupyter", ["kernelspec", "list", "--json"], { env, encoding: "utf8" });
if (specs.error || specs.status !== 0) {
  console.error("\njupyter is not installed. The lightest route: sudo apt-get install -y jupyter-notebook (classic Notebook),");
  console.error("or only headless runs: sudo apt-get install -y jupyter-nbconvert python3-nbclient jupyter-client");
  process.exit(1);
}
const found = (JSON.parse(specs.stdout).kernelspecs as Record<string, { resource_dir: string }>).tslab?.resource_dir;
const ok = found === path.join(kernelDir, "kernels", "tslab");
const best = routes.find((r) => r.have);
console.log(ok ? `\nok: with JUPYTER_PATH set, jupyter finds the kernel 'tslab' at ${found}` : `\njupyter does not find the project kernel (found: ${found ?? "none"})`);
if (ok && best) console.log(`\nrun this:\n  ${best.run}`);
else if (ok) console.log(`\nno notebook front end is installed; the lightest: sudo apt-get install -y jupyter-notebook`);
process.exit(ok ? 0 : 1);
