/**
 * The shape of one entry in the command table. `--help`, parsing and
 * `pilot help --json` are all generated from these entries; each entry names
 * the control API routes it calls, whose contract (input fields, defaults,
 * bounds, output schema) lives in `control/contract/`.
 *
 * @module
 */
import type { RouteKey } from "../control/contract/spec.ts";
import type { Infer, Schema } from "../control/schema.ts";
import type { ErrorCode } from "../errors.ts";

/** A flag's value type. Durations accept `500ms`, `10s`, `2m`, `1h` or bare seconds. */
export type FlagType = "string" | "boolean" | "integer" | "duration";

/** One flag of a command. */
export interface FlagSpec {
  /** Value type. */
  type: FlagType;
  /** One line for `--help`. */
  description: string;
  /** Name of the value in help, e.g. `IP:PORT`. */
  value?: string;
  /** May be given more than once. */
  multiple?: boolean;
  /** Value when the flag is absent, as typed on the command line (e.g. `"30s"`). */
  default?: string | boolean;
  /** A different default while another flag is given, e.g. `{ flag: "follow", value: "10m" }`. */
  defaultWith?: { flag: string; value: string };
  /** Smallest value (ms for durations). */
  min?: number;
  /** Largest value (ms for durations); over it, the error names the flag. */
  max?: number;
  /** A duration that also takes `0` or `none`: no limit (the CLI renews its long polls). */
  unlimited?: boolean;
}

/** One positional argument. */
export interface ArgSpec {
  /** Name shown in help. */
  name: string;
  /** One line for `--help`. */
  description: string;
  /** Must be given. */
  required: boolean;
  /** Takes all remaining positionals. */
  variadic?: boolean;
}

/** Parsed flag values: strings, booleans, numbers (durations in ms), or arrays of them. */
export type FlagValues = Record<string, string | boolean | number | string[] | undefined>;

/** What a command's `run` receives. */
export interface CommandContext {
  /** The node's home directory. */
  home: string;
  /** Positional arguments by name (variadic ones joined as arrays). */
  args: Record<string, string | string[] | undefined>;
  /** Flag values by name. */
  flags: FlagValues;
  /** Whether output is JSON. */
  json: boolean;
  /** Writes a progress line to stderr (never stdout). */
  progress(line: string): void;
  /** The whole command table (for `help`). */
  table: readonly CommandSpec[];
}

/** One command. */
export interface CommandSpec {
  /** Words that select it, e.g. `"daemon start"`. */
  name: string;
  /** Other names, e.g. `"send-message"` for `send`. */
  aliases?: string[];
  /** The control API routes it calls, its main one first (none for local commands). */
  routes: RouteKey[];
  /** One line for help. */
  summary: string;
  /** Positional arguments. */
  args: ArgSpec[];
  /** Flags (without the global ones). */
  flags: Record<string, FlagSpec>;
  /** Schema of `data` in the JSON output. */
  output: Schema;
  /** Error codes this command may return (besides the global ones). */
  errors: ErrorCode[];
  /** Does the work; returns `data`. */
  run(ctx: CommandContext): Promise<unknown>;
  /** Short human text for `data`. */
  human(data: unknown): string;
}

/**
 * Declares a command whose `human` reads its data typed by the output
 * schema (`Infer`), instead of casting. `human` is only called with what
 * `run` returned, which is the route's answer; the tests check every
 * answer against the same schema (cli_schema_test), so this one widening
 * rests on the contract.
 */
export function command<const S extends Schema>(
  spec: Omit<CommandSpec, "output" | "human"> & { output: S; human(data: Infer<S>): string },
): CommandSpec {
  const { human, ...rest } = spec;
  return { ...rest, human: (data: unknown) => human(data as Infer<S>) };
}

/** Flags every command takes. */
export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  json: { type: "boolean", description: "print the API's JSON on stdout (errors too)" },
  home: { type: "string", value: "DIR", description: "node home (else PILOT_HOME, else ~/.pilot)" },
  help: { type: "boolean", description: "show help for the command" },
};

/** Errors any command may return. */
export const GLOBAL_ERRORS: ErrorCode[] = ["invalid_argument", "internal"];
