// `maskdistill weights list|get|inspect`: the pretrained weights cache.
import { parseFlags, printJson, type Command } from "../command.js";
import { MaskdistillError } from "../../errors.js";

const usage = `usage: maskdistill weights list [--json]
       maskdistill weights get NAME [--url URL] [--force] [--json]
       maskdistill weights inspect NAME|FILE [--kind vit|resnet] [--json]

  list      every known weights name, whether it is downloaded, its size and path
  get       download NAME into the cache (resumes an interrupted download; verifies the file
            loads before putting it in place). Offline, download the URL shown by 'list' by hand
            and put it at the path shown.
  inspect   read a checkpoint (known name or any .pth/.pth.tar/.safetensors file) and print the
            detected layout and the backbone's tensors; exits non-zero with the reason when the
            backbone could not be used (missing or unexpected tensors, wrong shapes, NaN/Inf values)

flags:
  --url URL      download from this URL instead of the release URL (a mirror)
  --force        download again even if the file is present
  --kind K       expect this backbone (vit or resnet) when inspecting
  --json         print one JSON object as the last line`;

function humanBytes(n: number | null): string {
  if (n === null) return "-";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB"];
  let v = n / 1024, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v.toFixed(1)} ${units[u]}`;
}

const command: Command = {
  name: "weights",
  summary: "list, download (resumable) and inspect pretrained DINO / MoCo weights",
  usage,
  async run(argv) {
    const { values, positionals } = parseFlags("weights", argv, {
      url: { type: "string" },
      force: { type: "boolean" },
      kind: { type: "string" },
    }, true);
    const [sub, target, ...extra] = positionals;
    if (extra.length) throw new MaskdistillError(`weights ${sub}: unexpected arguments ${extra.join(" ")}. Run 'maskdistill weights --help'.`);
    const { listWeights, downloadWeights, requireWeights } = await import("../../modeling/weights.js");

    if (sub === "list") {
      const rows = listWeights();
      if (values.json) {
        printJson({ weights: rows });
        return 0;
      }
      const width = Math.max(...rows.map((r) => r.name.length));
      for (const r of rows) {
        const state = r.present ? `present ${humanBytes(r.bytes).padStart(9)}` : r.partialBytes !== null ? `partial ${humanBytes(r.partialBytes).padStart(9)}` : "missing          ";
        console.log(`${r.name.padEnd(width)}  ${state}  ${r.path}`);
        if (!r.present) console.log(`${"".padEnd(width)}  from ${r.url}`);
      }
      return 0;
    }

    if (sub === "get") {
      if (!target) throw new MaskdistillError("weights get: which weights? Run 'maskdistill weights list' for the names.");
      const r = await downloadWeights(target, { url: values.url, force: values.force });
      if (values.json) printJson(r);
      else if (r.alreadyPresent) console.log(`${target}: already present at ${r.path} (${humanBytes(r.bytes)}, ${r.layout}); --force downloads it again`);
      else console.log(`${target}: ${humanBytes(r.bytes)} saved to ${r.path} (${r.layout}${r.resumedFrom ? `, resumed from byte ${r.resumedFrom}` : ""})`);
      return 0;
    }

    if (sub === "inspect") {
      if (!target) throw new MaskdistillError("weights inspect: which file or name?");
      if (values.kind !== undefined && values.kind !== "vit" && values.kind !== "resnet") {
        throw new MaskdistillError(`--kind expects vit or resnet, got '${values.kind}'`);
      }
      const resolved = requireWeights(target);
      const kind = (values.kind as "vit" | "resnet" | undefined) ?? resolved.arch?.family;
      const { readStateDict } = await import("../../modeling/checkpoint/index.js");
      const t0 = Date.now();
      const { stateDict, layout, kind: detected } = await readStateDict(resolved.path, kind);
      const ms = Date.now() - t0;
      const tensors = [...stateDict].map(([key, t]) => ({ key, dtype: t.dtype, shape: t.shape }));
      // the checks gen-masks / cluster / DeepLab make before using the checkpoint: a file they refuse
      // must not pass inspection (missing tensors, wrong shapes, NaN/Inf weights)
      let problem: MaskdistillError | undefined;
      if (detected === "vit" || detected === "resnet") {
        const { checkVitStateDict, checkResNetStateDict } = await import("../../modeling/backbone.js");
        try {
          if (detected === "vit") checkVitStateDict(stateDict, resolved.path, { arch: resolved.arch?.family === "vit" ? resolved.arch.model : undefined });
          else checkResNetStateDict(stateDict, resolved.path);
        } catch (e) {
          if (!(e instanceof MaskdistillError)) throw e;
          problem = e;
        }
      }
      if (values.json) {
        printJson({ path: resolved.path, layout, kind: detected ?? null, tensors, ms, ok: !problem, problem: problem?.message ?? null });
      } else {
        console.log(`${resolved.path}: layout ${layout}, ${detected ?? "unknown architecture"}, ${tensors.length} tensors (read in ${ms} ms)`);
        for (const t of tensors) console.log(`  ${t.key}  ${t.dtype} [${t.shape.join(", ")}]`);
      }
      if (problem) throw problem;
      return 0;
    }

    throw new MaskdistillError(sub ? `weights: unknown subcommand '${sub}'.\n${usage}` : `weights: which subcommand?\n${usage}`);
  },
};

export default command;
