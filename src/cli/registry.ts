// The command registry: every file in src/cli/commands/ default-exports a Command. Command modules
// import heavy libraries (onnxruntime, tfjs) inside run(), so listing them stays fast.
import * as fs from "node:fs";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { projectRoot } from "../paths.js";
import type { Command } from "./command.js";

export async function loadCommands(): Promise<Command[]> {
  // the launcher runs the compiled copy in dist/ when it is current (MASKDISTILL_CLI=dist), else src/
  const compiled = process.env.MASKDISTILL_CLI === "dist";
  const dir = path.join(projectRoot(), compiled ? "dist" : "src", "cli", "commands");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(compiled ? ".js" : ".ts")).sort();
  const commands: Command[] = [];
  for (const f of files) {
    const mod = await import(pathToFileURL(path.join(dir, f)).href);
    const cmd = (mod.default ?? mod.command) as Command | undefined;
    if (cmd && typeof cmd.run === "function") commands.push(cmd);
  }
  return commands.sort((a, b) => a.name.localeCompare(b.name));
}

export function mainHelp(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length), 8);
  return [
    "maskdistill — MaskDistill (arXiv 2206.06363) in TypeScript",
    "",
    "usage: maskdistill <command> [flags]      maskdistill <command> --help",
    "",
    "commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Flags shared by all commands: --help, --json (the last stdout line is one JSON object).",
  ].join("\n");
}
