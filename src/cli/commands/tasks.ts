/**
 * `pilot task submit|list|accept|decline|progress|result|status|wait`:
 * durable tasks (issue 11 item 1). Every command is one call to
 * `/v1/tasks/*`; `wait` exits 0 with the result, 1 with the worker's
 * error (`task_failed`), 5 when time runs out (`timeout`).
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import {
  TASK_ACCEPT,
  TASK_DECLINE,
  TASK_LIST,
  TASK_PROGRESS,
  TASK_RESULT,
  TASK_STATES,
  TASK_STATUS,
  TASK_SUBMIT,
  TASK_WAIT,
} from "../../control/contract/mod.ts";
import type { Infer } from "../../control/schema.ts";
import type { TASK } from "../../control/contract/tasks.ts";
import { invalid } from "../../errors.ts";
import { command, type CommandContext, type CommandSpec } from "../command.ts";
import { durationFlag, numberFlag, optionalNumber, optionalString, PEER_ARG } from "../flags.ts";
import { keyValues, table } from "../output.ts";
import { peerText } from "../peer_text.ts";
import { DATA_FLAGS, messageData, typeFlag } from "./messages.ts";

type TaskData = Infer<typeof TASK>;

const ID_ARG = [{ name: "id", description: "the task id", required: true }];
const FROM_FLAG = {
  from: {
    type: "string",
    value: "PEER",
    description: "the peer, when tasks with several peers share the id",
  },
} as const satisfies CommandSpec["flags"];

/** The `from` of a worker's command, when given. */
function fromOf(ctx: CommandContext): Record<string, string> {
  const from = optionalString(ctx, "from");
  return from === undefined ? {} : { from };
}

/** One task, for people: its state, peer, and what came back. */
function taskText(t: TaskData): string {
  const who = t.peer.hostname === null
    ? t.peer.address
    : `${t.peer.address} (${peerText(t.peer.hostname)})`;
  const rows: [string, string][] = [
    ["task", peerText(t.id)],
    ["state", t.state + (t.pending > 0 ? ` (${t.pending} change(s) not yet confirmed)` : "")],
    [t.role === "submitter" ? "worker" : "from", who],
    ["input", `${t.type}, ${t.bytes} bytes`],
  ];
  if (t.deadline !== null) rows.push(["deadline", t.deadline]);
  if (t.reason !== "") rows.push(["reason", peerText(t.reason)]);
  if (t.error !== null) rows.push(["error", peerText(t.error)]);
  const last = t.progress.at(-1);
  if (last !== undefined) rows.push(["progress", `#${last.n}: ${peerText(last.data)}`]);
  if (t.result !== null) rows.push(["result", peerText(t.result.data)]);
  return keyValues(rows);
}

const timeoutOf = (ctx: CommandContext) => numberFlag(ctx, "timeout");

const submit = command({
  name: "task submit",
  routes: [TASK_SUBMIT.route],
  summary: "give a task to a trusted worker; returns its id once the worker stored it",
  args: [PEER_ARG],
  flags: {
    ...DATA_FLAGS,
    id: {
      type: "string",
      value: "ID",
      description: "task id: submitting again with the same id is the same task",
    },
    deadline: durationFlag(TASK_SUBMIT.input.deadline_ms, "give the task up after this long"),
    timeout: durationFlag(TASK_SUBMIT.input.timeout_ms, "keep trying to hand it over this long"),
  },
  output: TASK_SUBMIT.output,
  errors: [
    "not_running",
    "not_trusted",
    "unreachable",
    "timeout",
    "too_large",
    "conflict",
    "rate_limited",
    "rejected",
    "not_found",
  ],
  async run(ctx) {
    const type = typeFlag(ctx);
    const data = await messageData(ctx, type);
    const body: Record<string, unknown> = {
      peer: ctx.args.peer,
      type,
      data,
      timeout_ms: timeoutOf(ctx),
    };
    const id = optionalString(ctx, "id");
    if (id !== undefined) body.id = id;
    const deadline = optionalNumber(ctx, "deadline");
    if (deadline !== undefined) body.deadline_ms = deadline;
    const client = await PilotClient.open(ctx.home);
    return await client.call("POST", "/v1/tasks/submit", {
      body,
      timeoutMs: timeoutOf(ctx) + 5_000,
    }) as TaskData;
  },
  human: taskText,
});

const list = command({
  name: "task list",
  routes: [TASK_LIST.route],
  summary: "list tasks given to this node (--submitted: given by it), oldest first",
  args: [],
  flags: {
    state: {
      type: "string",
      value: "STATE",
      description: `only tasks in ${TASK_STATES.join("|")}`,
    },
    submitted: { type: "boolean", description: "the tasks this node gave to workers" },
    wait: { type: "boolean", description: "when there is none, wait for one" },
    timeout: durationFlag(TASK_LIST.input.wait, "how long --wait waits", {}),
  },
  output: TASK_LIST.output,
  errors: ["not_running", "invalid_argument"],
  async run(ctx) {
    const state = optionalString(ctx, "state");
    if (state !== undefined && !(TASK_STATES as readonly string[]).includes(state)) {
      throw invalid(`Unknown --state "${state}"`, `use ${TASK_STATES.join(", ")}`);
    }
    const wait = ctx.flags.wait === true ? optionalNumber(ctx, "timeout") ?? 30_000 : 0;
    const client = await PilotClient.open(ctx.home);
    return await client.call("GET", "/v1/tasks", {
      query: {
        role: ctx.flags.submitted === true ? "submitter" : "worker",
        ...(state === undefined ? {} : { state }),
        wait,
      },
      timeoutMs: wait + 10_000,
    }) as { tasks: TaskData[] };
  },
  human: ({ tasks }) => {
    if (tasks.length === 0) return "no tasks";
    return table(
      ["ID", "STATE", "PEER", "INPUT", "DEADLINE"],
      tasks.map((t) => [
        peerText(t.id),
        t.state,
        t.peer.hostname === null
          ? t.peer.address
          : `${t.peer.address} (${peerText(t.peer.hostname)})`,
        `${t.type}, ${t.bytes} bytes`,
        t.deadline ?? "-",
      ]),
    );
  },
});

const accept = command({
  name: "task accept",
  routes: [TASK_ACCEPT.route],
  summary: "take a task given to this node (its submitter is told)",
  args: ID_ARG,
  flags: { ...FROM_FLAG },
  output: TASK_ACCEPT.output,
  errors: ["not_running", "not_found", "conflict"],
  async run(ctx) {
    const client = await PilotClient.open(ctx.home);
    return await client.call("POST", "/v1/tasks/accept", {
      body: { id: ctx.args.id, ...fromOf(ctx) },
    }) as TaskData;
  },
  human: taskText,
});

const decline = command({
  name: "task decline",
  routes: [TASK_DECLINE.route],
  summary: "refuse a task given to this node",
  args: ID_ARG,
  flags: {
    ...FROM_FLAG,
    reason: { type: "string", value: "TEXT", description: "why (the submitter sees it)" },
  },
  output: TASK_DECLINE.output,
  errors: ["not_running", "not_found", "conflict", "too_large"],
  async run(ctx) {
    const client = await PilotClient.open(ctx.home);
    return await client.call("POST", "/v1/tasks/decline", {
      body: { id: ctx.args.id, reason: optionalString(ctx, "reason") ?? "", ...fromOf(ctx) },
    }) as TaskData;
  },
  human: taskText,
});

const progress = command({
  name: "task progress",
  routes: [TASK_PROGRESS.route],
  summary: "report progress on a task (at most 64 KiB; accepts it if it was not)",
  args: ID_ARG,
  flags: { ...DATA_FLAGS, ...FROM_FLAG },
  output: TASK_PROGRESS.output,
  errors: ["not_running", "not_found", "conflict", "too_large"],
  async run(ctx) {
    const type = typeFlag(ctx);
    const data = await messageData(ctx, type);
    const client = await PilotClient.open(ctx.home);
    return await client.call("POST", "/v1/tasks/progress", {
      body: { id: ctx.args.id, type, data, ...fromOf(ctx) },
    }) as TaskData;
  },
  human: taskText,
});

const result = command({
  name: "task result",
  routes: [TASK_RESULT.route],
  summary: "post a task's result (--data …) or its failure (--error MSG); the task ends",
  args: ID_ARG,
  flags: {
    ...DATA_FLAGS,
    error: { type: "string", value: "MSG", description: "the task failed: why" },
    ...FROM_FLAG,
  },
  output: TASK_RESULT.output,
  errors: ["not_running", "not_found", "conflict", "too_large", "invalid_argument"],
  async run(ctx) {
    const error = optionalString(ctx, "error");
    const body: Record<string, unknown> = { id: ctx.args.id, ...fromOf(ctx) };
    if (error !== undefined) {
      if (typeof ctx.flags.data === "string" || typeof ctx.flags["data-file"] === "string") {
        throw invalid("Give --error or the data, not both", "a result, or why the task failed");
      }
      body.error = error;
    } else {
      const type = typeFlag(ctx);
      body.type = type;
      body.data = await messageData(ctx, type);
    }
    const client = await PilotClient.open(ctx.home);
    return await client.call("POST", "/v1/tasks/result", { body }) as TaskData;
  },
  human: taskText,
});

const status = command({
  name: "task status",
  routes: [TASK_STATUS.route],
  summary: "show one task: its state, progress and result",
  args: ID_ARG,
  flags: { ...FROM_FLAG },
  output: TASK_STATUS.output,
  errors: ["not_running", "not_found", "conflict"],
  async run(ctx) {
    const client = await PilotClient.open(ctx.home);
    return await client.call("GET", "/v1/tasks/status", {
      query: { id: String(ctx.args.id), ...fromOf(ctx) },
    }) as TaskData;
  },
  human: taskText,
});

const wait = command({
  name: "task wait",
  routes: [TASK_WAIT.route],
  summary:
    "wait for a task to end: exit 0 with its result, 1 with the worker's error, 5 on timeout",
  args: ID_ARG,
  flags: {
    ...FROM_FLAG,
    timeout: durationFlag(TASK_WAIT.input.timeout_ms, "how long to wait"),
  },
  output: TASK_WAIT.output,
  errors: ["not_running", "not_found", "conflict", "task_failed", "timeout"],
  async run(ctx) {
    const client = await PilotClient.open(ctx.home);
    return await client.call("GET", "/v1/tasks/wait", {
      query: { id: String(ctx.args.id), timeout_ms: timeoutOf(ctx), ...fromOf(ctx) },
      timeoutMs: timeoutOf(ctx) + 5_000,
    }) as TaskData;
  },
  human: taskText,
});

/** The task commands. */
export const TASK_COMMANDS: CommandSpec[] = [
  submit,
  list,
  accept,
  decline,
  progress,
  result,
  status,
  wait,
];
