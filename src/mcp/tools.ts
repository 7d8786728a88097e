/**
 * The MCP tools, generated from the command table and the route contracts:
 * a tool is a CLI command (its name and summary) calling its main route,
 * and its input schema is that route's input fields as JSON Schema, the
 * same fields `pilot help --json` publishes. Only what an MCP host needs
 * differs, and is stated here: streaming fields are left out, waits are
 * bounded so a call ends before a host gives up on it, and trust changes
 * are offered only when the server was started to allow them.
 *
 * @module
 */
import { type FieldSpec, ROUTES, type RouteSpec } from "../control/contract/mod.ts";

/**
 * The longest a tool call may wait (ms): `timeout_ms` and long-poll `wait`
 * fields are capped here, under the 60 s MCP hosts commonly allow a call.
 */
export const MCP_MAX_WAIT_MS = 50_000;

/** Events `pilot_subscribe` returns at most, and by default. */
export const MCP_SUBSCRIBE_MAX_COUNT = 100;
/** Default number of events `pilot_subscribe` waits for. */
export const MCP_SUBSCRIBE_COUNT = 10;
/** Default time `pilot_subscribe` listens (ms). */
export const MCP_SUBSCRIBE_TIMEOUT_MS = 10_000;

/** The commands offered as tools, in list order. */
export const TOOL_COMMANDS: readonly string[] = [
  "info",
  "peers",
  "find",
  "handshake",
  "pending",
  "send",
  "inbox",
  "inbox ack",
  "call",
  "task submit",
  "task list",
  "task accept",
  "task decline",
  "task progress",
  "task result",
  "task status",
  "task wait",
  "publish",
  "subscribe",
  "send-file",
  "received",
  "received ack",
];

/**
 * Trust changes, offered only with `--allow-trust-changes`: a peer's text
 * (a reason, a message) could otherwise talk the model into them. Daemon
 * control, configuration, static peers, webhooks and tunnels are never tools.
 */
export const TRUST_CHANGE_COMMANDS: readonly string[] = ["approve", "reject", "untrust"];

/** Input fields a tool does not take: they switch a route to streaming. */
const OMITTED: Readonly<Record<string, readonly string[]>> = {
  "GET /v1/inbox": ["follow", "heartbeat_ms"],
  "GET /v1/subscribe": ["heartbeat_ms"],
  "POST /v1/send-file": ["progress"],
};

/** Input fields a tool bounds more tightly than the route. */
const NARROWED: Readonly<Record<string, Readonly<Record<string, Partial<FieldSpec>>>>> = {
  "GET /v1/subscribe": {
    count: { default: MCP_SUBSCRIBE_COUNT, max: MCP_SUBSCRIBE_MAX_COUNT },
    timeout_ms: { default: MCP_SUBSCRIBE_TIMEOUT_MS },
  },
};

/** What a tool's description adds to the command's summary, where MCP differs from the CLI. */
const NOTES: Readonly<Record<string, string>> = {
  subscribe: "Returns the events that arrive within timeout_ms, at most count of them.",
  inbox: "With wait, waits that long for a message when there is none.",
};

/** What a tool needs of a CLI command (a structural view of cli's CommandSpec). */
export interface ToolCommand {
  /** Words that select it, e.g. `"task submit"`. */
  readonly name: string;
  /** Its routes, the main one first. */
  readonly routes: readonly string[];
  /** One line for help. */
  readonly summary: string;
}

/** A JSON Schema object, as MCP's `inputSchema` takes it. */
export interface ObjectSchema {
  /** Always `"object"`. */
  type: "object";
  /** One schema per field. */
  properties: Record<string, Record<string, unknown>>;
  /** Fields that must be given. */
  required: string[];
  /** Unknown fields are refused. */
  additionalProperties: false;
  [key: string]: unknown;
}

/** One tool. */
export interface Tool {
  /** `pilot_` and the command's words joined by `_`, e.g. `pilot_task_submit`. */
  readonly name: string;
  /** The command's summary. */
  readonly description: string;
  /** The route's input as the tool takes it; `parseInput` checks calls against it. */
  readonly spec: RouteSpec;
  /** `spec.input` as JSON Schema. */
  readonly inputSchema: ObjectSchema;
}

/** The tool name of a command: `send-file` → `pilot_send_file`. */
export function toolName(command: string): string {
  return `pilot_${command.replace(/[ -]/g, "_")}`;
}

/** A field as a tool takes it: waits bounded by {@linkcode MCP_MAX_WAIT_MS}. */
function bounded(name: string, f: FieldSpec): FieldSpec {
  const isWait = (name === "timeout_ms" || name === "wait") && f.type === "integer";
  if (!isWait || (f.max !== undefined && f.max <= MCP_MAX_WAIT_MS)) return f;
  const capped = typeof f.default === "number" && f.default > MCP_MAX_WAIT_MS
    ? { default: MCP_MAX_WAIT_MS }
    : {};
  return { ...f, max: MCP_MAX_WAIT_MS, ...capped };
}

/** The route's contract as the tool takes it. */
function toolSpec(route: RouteSpec): RouteSpec {
  const omitted = OMITTED[route.route] ?? [];
  const narrowed = NARROWED[route.route] ?? {};
  const input: Record<string, FieldSpec> = {};
  for (const [name, f] of Object.entries(route.input)) {
    if (omitted.includes(name)) continue;
    input[name] = bounded(name, { ...f, ...narrowed[name] });
  }
  return { ...route, input };
}

/** One input field as JSON Schema: type, enum, bounds, default. */
export function fieldSchema(f: FieldSpec): Record<string, unknown> {
  const s: Record<string, unknown> = {};
  switch (f.type) {
    case "string":
      s.type = "string";
      if (f.required) s.minLength = 1;
      if (f.values !== undefined) s.enum = [...f.values];
      break;
    case "boolean":
    case "integer":
    case "number":
      s.type = f.type;
      break;
    case "strings":
      Object.assign(s, { type: "array", items: { type: "string" }, minItems: 1 });
      break;
    case "json":
      // Any JSON value: the description says what each type means.
      break;
  }
  s.description = f.description;
  if (f.min !== undefined) s.minimum = f.min;
  if (f.max !== undefined) s.maximum = f.max;
  if (f.default !== undefined) s.default = f.default;
  return s;
}

/** A route's input fields as one JSON Schema object. */
export function inputSchema(input: RouteSpec["input"]): ObjectSchema {
  const properties: Record<string, Record<string, unknown>> = {};
  const required: string[] = [];
  for (const [name, f] of Object.entries(input)) {
    properties[name] = fieldSchema(f);
    if (f.required) required.push(name);
  }
  return { type: "object", properties, required, additionalProperties: false };
}

/**
 * The tools of `commands` (the CLI's table): the default set, and the
 * trust changes when `allowTrustChanges` is set. Throws a TypeError when a
 * command or its route is missing, which is a bug in the table.
 */
export function buildTools(
  commands: readonly ToolCommand[],
  options: { allowTrustChanges?: boolean } = {},
): Tool[] {
  const names = [
    ...TOOL_COMMANDS,
    ...(options.allowTrustChanges ? TRUST_CHANGE_COMMANDS : []),
  ];
  return names.map((name) => {
    const command = commands.find((c) => c.name === name);
    if (command === undefined) throw new TypeError(`No command "${name}" for an MCP tool`);
    const route = ROUTES.find((r) => r.route === command.routes[0]);
    if (route === undefined) throw new TypeError(`Command "${name}" has no route for an MCP tool`);
    const spec = toolSpec(route);
    return {
      name: toolName(name),
      description: NOTES[name] === undefined
        ? command.summary
        : `${command.summary}. ${NOTES[name]}`,
      spec,
      inputSchema: inputSchema(spec.input),
    };
  });
}
