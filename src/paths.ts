// Where things live. No import.meta (tslab compiles src to CommonJS), so the project root is found
// from MASKDISTILL_ROOT (set by bin/maskdistill.cjs) or by walking up from the working directory.
import * as fs from "node:fs";
import * as path from "node:path";
import * as os from "node:os";

let cachedRoot: string | undefined;

/** The project root: the nearest folder upwards from cwd whose package.json is named "maskdistill". */
export function projectRoot(): string {
  if (cachedRoot) return cachedRoot;
  if (process.env.MASKDISTILL_ROOT) return (cachedRoot = path.resolve(process.env.MASKDISTILL_ROOT));
  let dir = process.cwd();
  for (;;) {
    const pj = path.join(dir, "package.json");
    if (fs.existsSync(pj)) {
      try {
        if (JSON.parse(fs.readFileSync(pj, "utf8")).name === "maskdistill") return (cachedRoot = dir);
      } catch { /* not ours */ }
    }
    const up = path.dirname(dir);
    if (up === dir) return (cachedRoot = process.cwd());
    dir = up;
  }
}

/** A path inside the project. */
export function projectPath(...parts: string[]): string {
  return path.join(projectRoot(), ...parts);
}

/** Cache for downloaded weights and generated graphs: MASKDISTILL_HOME or ~/.cache/maskdistill. */
export function cacheHome(...parts: string[]): string {
  const base = process.env.MASKDISTILL_HOME ?? path.join(os.homedir(), ".cache", "maskdistill");
  return path.join(base, ...parts);
}
