/**
 * The CLI's entry: parse with the table, run the command, print, and map the
 * outcome to the published exit code. Only bugs print stack traces.
 *
 * @module
 */
import { PilotError } from "../errors.ts";
import { resolveHome } from "../daemon/boot.ts";
import { parseCommandLine } from "./parse.ts";
import { printError, printOk } from "./output.ts";
import { commandHelp, overview } from "./help.ts";
import { COMMANDS } from "./table.ts";

/** Runs the CLI on `argv` and returns the process exit code. */
export async function runCli(argv: string[]): Promise<number> {
  const json = argv.includes("--json");
  try {
    const { command, args, flags } = parseCommandLine(COMMANDS, versionAlias(argv));
    if (command === undefined) {
      printOk(json, { commands: COMMANDS.map((c) => c.name) }, overview(COMMANDS));
      return 0;
    }
    if (flags.help === true) {
      printOk(json, { help: commandHelp(command) }, commandHelp(command));
      return 0;
    }
    const home = resolveHome(typeof flags.home === "string" ? flags.home : undefined);
    const data = await command.run({
      home,
      args,
      flags,
      json,
      progress: (line) => console.error(line),
      table: COMMANDS,
    });
    // Follow streams print as they go and return nothing more.
    if (data !== undefined) printOk(json, data, command.human(data));
    return 0;
  } catch (e) {
    if (e instanceof PilotError) {
      printError(json, e);
      return e.exitCode;
    }
    console.error(e);
    printError(json, new PilotError("internal", `Internal error: ${(e as Error).message}`));
    return 1;
  }
}

// `pilot --version` and `pilot -V`, alone or with global flags, are `pilot version`, as in most CLIs.
function versionAlias(argv: string[]): string[] {
  const rest = argv.filter((a, i) =>
    a !== "--json" && a !== "--home" && argv[i - 1] !== "--home" && !a.startsWith("--home=")
  );
  if (rest.length !== 1 || (rest[0] !== "--version" && rest[0] !== "-V")) return argv;
  return argv.map((a) => a === rest[0] ? "version" : a);
}
