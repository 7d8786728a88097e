/**
 * Help text and the machine-readable catalog, both generated from the command
 * table so they cannot drift from what the parser accepts.
 *
 * @module
 */
import { API_VERSION, VERSION } from "../constants.ts";
import { ROUTES } from "../control/contract/mod.ts";
import { ERROR_CODES } from "../errors.ts";
import { type CommandSpec, type FlagSpec, GLOBAL_ERRORS, GLOBAL_FLAGS } from "./command.ts";

function usage(c: CommandSpec): string {
  const args = c.args.map((a) => {
    const name = a.variadic ? `${a.name}...` : a.name;
    return a.required ? `<${name}>` : `[${name}]`;
  });
  return ["pilot", c.name, ...args, Object.keys(c.flags).length ? "[flags]" : ""]
    .filter((s) => s !== "")
    .join(" ");
}

function flagLine(name: string, f: FlagSpec): string {
  const value = f.type === "boolean" ? "" : ` ${f.value ?? f.type.toUpperCase()}`;
  const notes = [
    ...(f.multiple ? ["repeatable"] : []),
    ...(f.default !== undefined && f.default !== false ? [`default ${f.default}`] : []),
    ...(f.defaultWith ? [`${f.defaultWith.value} with --${f.defaultWith.flag}`] : []),
    ...(f.unlimited ? ["0 or none: no limit"] : []),
  ];
  const note = notes.length ? ` (${notes.join("; ")})` : "";
  return `  --${name}${value}`.padEnd(30) + ` ${f.description}${note}`;
}

/** The overview printed by `pilot` and `pilot help`. */
export function overview(table: readonly CommandSpec[]): string {
  const width = Math.max(...table.map((c) => c.name.length));
  return [
    `pilot ${VERSION}: encrypted peer-to-peer network for agents`,
    "",
    "Commands:",
    ...table.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Global flags:",
    ...Object.entries(GLOBAL_FLAGS).map(([n, f]) => flagLine(n, f)),
    "",
    "Run `pilot COMMAND --help` for one command, `pilot help --json` for the catalog.",
  ].join("\n");
}

/** The `--help` text of one command. */
export function commandHelp(c: CommandSpec): string {
  const lines = [`Usage: ${usage(c)}`, "", c.summary];
  if (c.aliases?.length) lines.push(`Aliases: ${c.aliases.join(", ")}`);
  if (c.args.length) {
    lines.push("", "Arguments:");
    for (const a of c.args) lines.push(`  ${a.name}`.padEnd(30) + ` ${a.description}`);
  }
  const flags = Object.entries(c.flags);
  if (flags.length) {
    lines.push("", "Flags:");
    for (const [n, f] of flags) lines.push(flagLine(n, f));
  }
  lines.push("", "Global flags:");
  for (const [n, f] of Object.entries(GLOBAL_FLAGS)) lines.push(flagLine(n, f));
  return lines.join("\n");
}

/**
 * The machine-readable catalog of `pilot help --json`: the commands, and the
 * contract of every API route (or, with `onlyUsed`, of the routes `table` calls).
 */
export function catalog(
  table: readonly CommandSpec[],
  options: { onlyUsed?: boolean } = {},
): Record<string, unknown> {
  const used = new Set(table.flatMap((c) => c.routes));
  return {
    version: VERSION,
    api_version: API_VERSION,
    global_flags: GLOBAL_FLAGS,
    commands: table.map((c) => ({
      name: c.name,
      aliases: c.aliases ?? [],
      route: c.routes[0] ?? null,
      routes: c.routes,
      summary: c.summary,
      usage: usage(c),
      args: c.args,
      flags: c.flags,
      output: c.output,
      errors: [...new Set([...GLOBAL_ERRORS, ...c.errors])],
    })),
    // The API's side of the same contract: each route's input fields
    // (type, default, bounds) and the schema of its data.
    routes: ROUTES.filter((r) => !options.onlyUsed || used.has(r.route)).map((r) => ({
      route: r.route,
      input: r.input,
      output: r.output,
    })),
    errors: Object.fromEntries(
      Object.entries(ERROR_CODES).map(([code, e]) => [code, {
        exit_code: e.exit,
        http_status: e.http,
        retryable: e.retryable,
      }]),
    ),
    exit_codes: {
      "0": "ok",
      "1": "other errors",
      "2": "usage / invalid_argument",
      "3": "not_running",
      "4": "trust errors: not_trusted, pending_approval, rejected, key_changed",
      "5": "retryable: timeout, unreachable, rate_limited",
    },
  };
}
