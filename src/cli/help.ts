/**
 * Help text and the machine-readable catalog, both generated from the command
 * table so they cannot drift from what the parser accepts.
 *
 * @module
 */
import { API_VERSION, VERSION } from "../constants.ts";
import { type FieldSpec, ROUTES } from "../control/contract/mod.ts";
import {
  anyJson,
  anyOf,
  arr,
  bool,
  type Infer,
  int,
  nullable,
  num,
  obj,
  oneOf,
  record,
  str,
} from "../control/schema.ts";
import { ERROR_CODES } from "../errors.ts";
import { type CommandSpec, type FlagSpec, GLOBAL_ERRORS, GLOBAL_FLAGS } from "./command.ts";

/**
 * A schema published in the catalog. The schema kinds nest, which this
 * subset cannot describe, so the catalog's own schema takes any object here;
 * each one's kinds are documented in control/schema.ts.
 */
const SCHEMA = record(anyJson);

/** Schema of a flag in the catalog: a FlagSpec (cli/command.ts). */
const FLAG = obj({
  type: oneOf("string", "boolean", "integer", "duration"),
  description: str,
}, {
  value: str,
  multiple: bool,
  default: anyOf(str, bool),
  defaultWith: obj({ flag: str, value: str }),
  min: num,
  max: num,
  unlimited: bool,
});

/** Schema of a route's input field in the catalog: a FieldSpec (control/contract/spec.ts). */
const FIELD = obj({
  type: oneOf("string", "boolean", "integer", "number", "strings", "json"),
  description: str,
}, {
  required: oneOf(true),
  default: anyOf(str, num, bool),
  min: num,
  max: num,
  values: arr(str),
});

/** A route's input field as the catalog publishes it (its `values` as a plain list). */
function fieldOf(f: FieldSpec): Infer<typeof FIELD> {
  const { values, ...rest } = f;
  return values === undefined ? rest : { ...f, values: [...values] };
}

/** The fields of `pilot help --json`'s data; the help command adds `text`. */
export const CATALOG_FIELDS = {
  version: str,
  api_version: int,
  global_flags: record(FLAG),
  commands: arr(obj({
    name: str,
    aliases: arr(str),
    // The main route, or null for a local command.
    route: nullable(str),
    routes: arr(str),
    summary: str,
    usage: str,
    args: arr(obj({ name: str, description: str, required: bool }, { variadic: bool })),
    flags: record(FLAG),
    output: SCHEMA,
    errors: arr(str),
  })),
  routes: arr(obj({ route: str, input: record(FIELD), output: SCHEMA }, { lines: SCHEMA })),
  errors: record(obj({ exit_code: int, http_status: int, retryable: bool })),
  exit_codes: record(str),
};

/** Schema of the catalog {@linkcode catalog} returns. */
export const CATALOG = obj(CATALOG_FIELDS);

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
): Infer<typeof CATALOG> {
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
    // (type, default, bounds), the schema of its data and, when it streams, of each line.
    routes: ROUTES.filter((r) => !options.onlyUsed || used.has(r.route)).map((r) => ({
      route: r.route,
      input: Object.fromEntries(Object.entries(r.input).map(([k, f]) => [k, fieldOf(f)])),
      output: r.output,
      ...(r.lines === undefined ? {} : { lines: r.lines }),
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
