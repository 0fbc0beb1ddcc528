// `npx maskdistill <command> [flags]` (bin/maskdistill.cjs runs this file, compiled in dist/ or through tsx).
import { MaskdistillError } from "../errors.js";
import { loadCommands, mainHelp } from "./registry.js";
import { interruptedBy } from "./command.js";

export async function main(argv: string[]): Promise<number> {
  const commands = await loadCommands();
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log(mainHelp(commands));
    return name ? 0 : 1;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    console.error(`maskdistill: unknown command '${name}'.\n\n${mainHelp(commands)}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(cmd.usage);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof MaskdistillError) {
      console.error(`maskdistill ${name}: ${e.message}`);
      // interrupted by a signal: the conventional 128 + signal number (130 Ctrl-C, 143 SIGTERM)
      if (interruptedBy) return interruptedBy === "SIGINT" ? 130 : 143;
      return 2;
    }
    // an I/O fault no check caught (a disk filling up mid-run, a folder removed, ...): say what and where
    const sys = e as { code?: unknown; syscall?: unknown; path?: unknown };
    if (e instanceof Error && typeof sys.code === "string" && /^E[A-Z]+$/.test(sys.code) && typeof sys.syscall === "string") {
      console.error(`maskdistill ${name}: ${typeof sys.path === "string" ? `${sys.path}: ` : ""}${e.message} (an I/O fault; what was finished is kept, rerun with --resume where the command has it)`);
      return 1;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  },
);
