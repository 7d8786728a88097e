/**
 * Turns argv into a command and its values, driven only by the command table.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { invalid } from "../errors.ts";
import { type CommandSpec, type FlagSpec, type FlagValues, GLOBAL_FLAGS } from "./command.ts";

/** The result of parsing argv. */
export interface Parsed {
  /** The selected command, or undefined when argv names none. */
  command: CommandSpec | undefined;
  /** Positional arguments by name. */
  args: Record<string, string | string[] | undefined>;
  /** Flag values by name, global flags included. */
  flags: FlagValues;
}

/** Finds the command: its first word, plus a second when that forms a longer name. */
export function findCommand(
  table: readonly CommandSpec[],
  words: string[],
): { command: CommandSpec | undefined; used: number } {
  const names = (c: CommandSpec) => [c.name, ...(c.aliases ?? [])];
  if (words.length >= 2) {
    const two = `${words[0]} ${words[1]}`;
    const c = table.find((c) => names(c).includes(two));
    if (c) return { command: c, used: 2 };
  }
  if (words.length >= 1) {
    const c = table.find((c) => names(c).includes(words[0]!));
    if (c) return { command: c, used: 1 };
    throw unknownCommand(table, words);
  }
  return { command: undefined, used: 0 };
}

/** Parses a duration such as `500ms`, `10s`, `2m`, `1h` or bare seconds into ms. */
export function parseDuration(text: string, flag = "duration"): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) {
    throw invalid(
      `Cannot parse --${flag} "${text}": expected a duration like 500ms, 10s, 2m`,
      "bare numbers are seconds",
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
  const ms = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(ms)) throw invalid(`--${flag} "${text}" is out of range`);
  return ms;
}

/** Writes ms as the shortest duration text that parses back to it (`30000` → `30s`). */
export function formatDuration(ms: number): string {
  if (ms !== 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

function shown(spec: FlagSpec, n: number): string {
  return spec.type === "duration" ? formatDuration(n) : String(n);
}

function convert(name: string, spec: FlagSpec, raw: string | boolean): string | boolean | number {
  if (spec.type === "boolean" || typeof raw === "boolean") return raw;
  if (spec.type === "string") return raw;
  let n: number;
  if (spec.type === "duration") {
    // 0 and "none" mean no limit only where the command can renew its waits.
    if (spec.unlimited && (raw === "none" || /^0+(\.0+)?(ms|s|m|h)?$/.test(raw))) return 0;
    n = parseDuration(raw, name);
  } else {
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
      throw invalid(`Cannot parse --${name} "${raw}": expected a whole number`);
    }
    n = Number(raw);
  }
  if (spec.min !== undefined && n < spec.min) {
    throw invalid(
      `--${name} ${raw} is below the least allowed, ${shown(spec, spec.min)}`,
      spec.unlimited ? `give --${name} 0 (or none) for no limit` : "",
    );
  }
  if (spec.max !== undefined && n > spec.max) {
    throw invalid(
      `--${name} ${raw} is over the most allowed, ${shown(spec, spec.max)}`,
      `give at most --${name} ${shown(spec, spec.max)}`,
    );
  }
  return n;
}

/** Parses argv against the command table. Throws `invalid_argument` on any usage error. */
export function parseCommandLine(table: readonly CommandSpec[], argv: string[]): Parsed {
  const at = commandWordIndices(argv);
  const { command, used } = findCommand(table, at.map((i) => argv[i]!));
  const flagsSpec = { ...GLOBAL_FLAGS, ...(command?.flags ?? {}) };
  const options: NonNullable<ParseArgsConfig["options"]> = {};
  for (const [name, spec] of Object.entries(flagsSpec)) {
    options[name] = {
      type: spec.type === "boolean" ? "boolean" : "string",
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  const skip = new Set(at.slice(0, used));
  const withoutCommand = argv.filter((_, i) => !skip.has(i));
  checkFlags(withoutCommand, flagsSpec, command);
  let parsed;
  try {
    parsed = parseArgs({ args: withoutCommand, options, allowPositionals: true, strict: true });
  } catch (e) {
    // What checkFlags did not name: said in our words, never the parser's.
    const where = command ? ` for \`pilot ${command.name}\`` : "";
    throw invalid(`Cannot read the flags${where}: ${parserWords(e)}`, helpHint(command));
  }
  const flags: FlagValues = {};
  for (const [name, raw] of Object.entries(parsed.values)) {
    const spec = flagsSpec[name]!;
    if (Array.isArray(raw)) {
      flags[name] = raw.map((r) => String(convert(name, spec, r)));
    } else if (raw !== undefined) {
      flags[name] = convert(name, spec, raw);
    }
  }
  // Defaults come from the table, so help, parsing and the catalog agree.
  for (const [name, spec] of Object.entries(flagsSpec)) {
    if (flags[name] !== undefined) continue;
    const when = spec.defaultWith;
    const raw = when !== undefined && flags[when.flag] !== undefined && flags[when.flag] !== false
      ? when.value
      : spec.default;
    if (raw !== undefined) flags[name] = convert(name, spec, raw);
  }
  const args: Record<string, string | string[] | undefined> = {};
  const positionals = [...parsed.positionals];
  if (command) {
    for (const spec of command.args) {
      if (spec.variadic) {
        args[spec.name] = positionals.splice(0);
        if (spec.required && (args[spec.name] as string[]).length === 0 && !flags.help) {
          throw invalid(`Missing <${spec.name}> for \`pilot ${command.name}\``, helpHint(command));
        }
      } else {
        args[spec.name] = positionals.shift();
        if (spec.required && args[spec.name] === undefined && !flags.help) {
          throw invalid(`Missing <${spec.name}> for \`pilot ${command.name}\``, helpHint(command));
        }
      }
    }
    if (positionals.length > 0) {
      throw invalid(
        `Unexpected argument "${positionals[0]}" for \`pilot ${command.name}\``,
        helpHint(command),
      );
    }
  } else if (positionals.length > 0) {
    throw unknownCommand(table, positionals);
  }
  return { command, args, flags };
}

/**
 * Indices of the command words: the first positional (skipping flags and the
 * value of --home) and the token right after it when that is not a flag.
 */
function commandWordIndices(argv: string[]): number[] {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--home") {
      i++;
      continue;
    }
    if (a.startsWith("-")) continue;
    const next = argv[i + 1];
    return next !== undefined && !next.startsWith("-") ? [i, i + 1] : [i];
  }
  return [];
}

/** `Unknown command`, with the nearest command when one is close (`did you mean send?`). */
function unknownCommand(table: readonly CommandSpec[], words: string[]): Error {
  const names = table.flatMap((c) => [c.name, ...(c.aliases ?? [])]);
  // A group's first word (`task`, `outbox`): the second word is what was mistyped.
  const group = names.filter((n) => n.startsWith(`${words[0]} `));
  if (group.length > 0 && words[1] === undefined) {
    return invalid(
      `\`pilot ${words[0]}\` needs one of: ${group.map((n) => n.split(" ")[1]).join(", ")}`,
      `e.g. \`pilot ${group[0]}\`; run \`pilot help\` to list the commands`,
    );
  }
  let typed = words[0]!;
  let guess: string | undefined;
  if (group.length > 0) {
    typed = `${words[0]} ${words[1]}`;
    guess = nearest(typed, group);
  } else {
    const first = nearest(typed, names.map((n) => n.split(" ")[0]!));
    const two = first === undefined || words[1] === undefined ? undefined : `${first} ${words[1]}`;
    guess = two !== undefined && names.includes(two) ? two : first;
  }
  return invalid(
    `Unknown command "${typed}"`,
    guess === undefined
      ? "run `pilot help` to list the commands"
      : `did you mean \`pilot ${guess}\`? run \`pilot help\` to list the commands`,
  );
}

/**
 * Refuses a flag the command does not take, or one missing its value,
 * naming the nearest flag it does take; stops at `--`.
 */
function checkFlags(
  args: string[],
  spec: Record<string, FlagSpec>,
  command: CommandSpec | undefined,
): void {
  const where = command ? ` for \`pilot ${command.name}\`` : "";
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") return;
    if (!a.startsWith("--")) continue;
    const name = a.slice(2).split("=")[0]!;
    const flag = spec[name];
    if (flag === undefined) {
      const guess = nearest(name, Object.keys(spec));
      throw invalid(
        `Unknown flag --${name}${where}`,
        guess === undefined ? helpHint(command) : `did you mean --${guess}? ${helpHint(command)}`,
      );
    }
    if (flag.type !== "boolean" && !a.includes("=")) {
      const value = args[i + 1];
      if (value === undefined) throw invalid(`--${name} needs a value${where}`, helpHint(command));
      i++;
    }
  }
}

/** The parser's complaint, in our words (its own text names its internals). */
function parserWords(e: unknown): string {
  const text = (e as Error).message.split("\n")[0] ?? "";
  const option = /'(-{1,2}[^' ]+)/.exec(text)?.[1];
  return option === undefined ? "unexpected input" : `unexpected ${option}`;
}

/** The candidate nearest to `word` within two edits (or the one it starts), if any. */
function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const name of new Set(candidates)) {
    const d = name.startsWith(word) && word.length >= 3 ? 1 : distance(word, name);
    if (d <= 2 && (best === undefined || d < best.d)) best = { name, d };
  }
  return best?.name;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(
        prev[j]! + 1,
        row[j - 1]! + 1,
        prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    prev = row;
  }
  return prev[b.length]!;
}

function helpHint(command: CommandSpec | undefined): string {
  return command ? `run \`pilot ${command.name} --help\`` : "run `pilot help`";
}
