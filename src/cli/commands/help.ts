/**
 * `pilot help [COMMAND] [--json]`: the overview or one command's help; with
 * `--json`, the machine-readable catalog agents read.
 *
 * @module
 */
import { invalid } from "../../errors.ts";
import { command } from "../command.ts";
import { catalog, CATALOG_FIELDS, commandHelp, overview } from "../help.ts";
import { obj, str } from "../../control/schema.ts";

/** The `help` command. */
export const HELP_COMMAND = command({
  name: "help",
  routes: [],
  summary: "show help; with --json, the machine-readable command catalog",
  args: [{
    name: "command",
    description: "a command to describe",
    required: false,
    variadic: true,
  }],
  flags: {},
  // The catalog, and the help text a person would read.
  output: obj({ ...CATALOG_FIELDS, text: str }),
  errors: [],
  run(ctx) {
    const words = (ctx.args.command as string[] | undefined) ?? [];
    if (words.length === 0) {
      return Promise.resolve({ ...catalog(ctx.table), text: overview(ctx.table) });
    }
    const name = words.join(" ");
    const c = ctx.table.find((c) => c.name === name || c.aliases?.includes(name));
    if (c === undefined) {
      throw invalid(`Unknown command "${name}"`, "run `pilot help` to list the commands");
    }
    return Promise.resolve({ ...catalog([c], { onlyUsed: true }), text: commandHelp(c) });
  },
  human: (d) => d.text,
});
