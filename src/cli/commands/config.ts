/**
 * `pilot config list|get|set|unset`: reads and edits the home's
 * `config.json` safely (docs/CONFIG.md is the reference of every key). A
 * change is checked exactly as the daemon reads the file (`configOf`), then
 * written atomically (mode 0600, other keys kept); a value the daemon would
 * refuse is never written. Changes apply at the next daemon start (`peer`,
 * `webhook`, `expose` and `forward` also change a running daemon).
 *
 * @module
 */
import { join } from "node:path";
import {
  CONFIG_KEYS,
  configOf,
  HOME_FILES,
  readConfigFile,
  writeFileAtomic,
} from "../../daemon/boot.ts";
import { invalid, PilotError } from "../../errors.ts";
import { anyJson, arr, bool, obj, record, str } from "../../control/schema.ts";
import { command, type CommandContext, type CommandSpec } from "../command.ts";

const KEY_ARG = {
  name: "key",
  description: "a config.json key (see docs/CONFIG.md)",
  required: true,
} as const;

function keyOf(ctx: CommandContext): string {
  const key = String(ctx.args.key);
  if (!CONFIG_KEYS.includes(key)) {
    throw invalid(`Unknown config key "${key}"`, `known keys: ${CONFIG_KEYS.join(", ")}`);
  }
  return key;
}

/** A value as typed: JSON when it parses (true, 7440, ["a"], {…}), else the text itself. */
function valueOf(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Checks `file` as the daemon would read it, then writes it; nothing is written when it fails. */
async function save(home: string, file: Record<string, unknown>): Promise<string> {
  configOf(file, {});
  const path = join(home, HOME_FILES.config);
  await writeFileAtomic(path, JSON.stringify(file, null, 2) + "\n", 0o600);
  return path;
}

const list = command({
  name: "config list",
  routes: [],
  summary: "show this home's config.json (the keys set there)",
  args: [],
  flags: {},
  output: obj({ path: str, config: record(anyJson), keys: arr(str) }),
  errors: ["invalid_argument"],
  async run(ctx) {
    return {
      path: join(ctx.home, HOME_FILES.config),
      config: await readConfigFile(ctx.home),
      keys: [...CONFIG_KEYS],
    };
  },
  human: ({ path, config }) => {
    const keys = Object.keys(config);
    if (keys.length === 0) return `${path}: nothing set (every key at its default)`;
    return [`${path}:`, ...keys.map((k) => `  ${k} = ${JSON.stringify(config[k])}`)].join("\n");
  },
});

const get = command({
  name: "config get",
  routes: [],
  summary: "show one key of config.json (not_found when it is not set)",
  args: [KEY_ARG],
  flags: {},
  output: obj({ key: str, value: anyJson }),
  errors: ["invalid_argument", "not_found"],
  async run(ctx) {
    const key = keyOf(ctx);
    const file = await readConfigFile(ctx.home);
    if (!(key in file)) {
      throw new PilotError("not_found", `"${key}" is not set in config.json`, "it has its default");
    }
    return { key, value: file[key] };
  },
  human: ({ value }) => JSON.stringify(value),
});

const set = command({
  name: "config set",
  routes: [],
  summary: "set one key of config.json, checked as the daemon reads it (applies at next start)",
  args: [KEY_ARG, {
    name: "value",
    description: 'JSON (true, 7440, ["a"], {...}) or plain text',
    required: true,
  }],
  flags: {},
  output: obj({ key: str, value: anyJson, changed: bool, path: str }),
  errors: ["invalid_argument"],
  async run(ctx) {
    const key = keyOf(ctx);
    const value = valueOf(String(ctx.args.value));
    const file = await readConfigFile(ctx.home);
    const changed = JSON.stringify(file[key]) !== JSON.stringify(value);
    const path = changed
      ? await save(ctx.home, { ...file, [key]: value })
      : join(ctx.home, HOME_FILES.config);
    return { key, value, changed, path };
  },
  human: ({ key, value, changed }) =>
    changed
      ? `${key} = ${JSON.stringify(value)} (restart the daemon to apply it)`
      : `${key} is already ${JSON.stringify(value)}`,
});

const unset = command({
  name: "config unset",
  routes: [],
  summary: "remove one key from config.json (back to its default at next start)",
  args: [KEY_ARG],
  flags: {},
  output: obj({ key: str, changed: bool }),
  errors: ["invalid_argument"],
  async run(ctx) {
    const key = keyOf(ctx);
    const file = await readConfigFile(ctx.home);
    if (!(key in file)) return { key, changed: false };
    const { [key]: _, ...rest } = file;
    await save(ctx.home, rest);
    return { key, changed: true };
  },
  human: ({ key, changed }) => changed ? `${key} removed` : `${key} was not set`,
});

/** The config commands. */
export const CONFIG_COMMANDS: CommandSpec[] = [list, get, set, unset];
