// Copies the current state of a pretraining run into data/backbones: the teacher backbone in the DINO
// layout (float16 safetensors, < 10 MB), its config sidecar, and the training log.
//   node --import tsx tools/pretrain-export.ts [--out-dir .cache/pretrain/demo] [--name demo_vit]
//        [--log train_log.jsonl] [--world shapes] [--use masks|cluster] [--resize 160] [--command "npx maskdistill pretrain …"] [--label TEXT]
// --world, --use, --resize and --command go into the sidecar: the data world the backbone is the default for,
// the one stage it is for (absent: both), the stage-i short side it works at, and the command that trained it.
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { initEngine } from "../src/engine/index.js";
import { projectPath } from "../src/paths.js";
import { CHECKPOINT_FILE, LOG_FILE, disposeState, exportTeacher, loadCheckpoint } from "../src/pretrain/trainer.js";

async function main() {
  const { values } = parseArgs({ options: {
    "out-dir": { type: "string", default: projectPath(".cache", "pretrain", "demo") },
    name: { type: "string", default: "demo_vit" },
    dest: { type: "string", default: projectPath("data", "backbones") },
    log: { type: "string", default: "train_log.jsonl" },
    world: { type: "string" },
    use: { type: "string" },
    resize: { type: "string" },
    command: { type: "string" },
    label: { type: "string" },
  } });
  await initEngine({ backend: "wasm", threads: 1 });
  const state = await loadCheckpoint(path.join(values["out-dir"]!, CHECKPOINT_FILE));
  const file = path.join(values.dest!, `${values.name}.safetensors`);
  const sidecar = await exportTeacher(state, file, { dtype: "float16", label: values.label });
  if (values.use !== undefined && values.use !== "masks" && values.use !== "cluster") throw new Error(`--use expects masks or cluster, got '${values.use}'`);
  if (values.world || values.use || values.resize || values.command) {
    const sidecarFile = file.replace(/\.safetensors$/, ".json");
    const extra = { world: values.world, use: values.use, resize: values.resize ? Number(values.resize) : undefined, command: values.command };
    fs.writeFileSync(sidecarFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(sidecarFile, "utf8")), ...extra }, null, 2) + "\n");
  }
  const log = fs.readFileSync(path.join(values["out-dir"]!, LOG_FILE), "utf8").split("\n").filter((l) => l.trim() && JSON.parse(l).step <= state.step);
  fs.writeFileSync(path.join(values.dest!, values.log!), log.map((l) => l + "\n").join(""));
  console.log(`${file}: ${(fs.statSync(file).size / 1e6).toFixed(2)} MB, iteration ${state.step}, ${sidecar.training.epochs_done} epochs`);
  disposeState(state);
}
main().catch((e) => { console.error(e); process.exit(1); });
