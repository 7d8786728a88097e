/**
 * Contract of durable tasks (issue 11 item 1): submit, list, accept,
 * decline, progress, result, status, wait.
 *
 * @module
 */
import { arr, int, nullable, obj, oneOf, str } from "../schema.ts";
import {
  DELIVERY_TIMEOUT_MS,
  MAX_TIMEOUT_MS,
  PEER_FIELD,
  PEER_REF,
  timeoutField,
} from "./common.ts";
import { DATA, TYPE, TYPES } from "./messages.ts";
import { type FieldSpec, route } from "./spec.ts";

/** Where a task stands. */
export const TASK_STATES = [
  "submitted",
  "accepted",
  "declined",
  "done",
  "failed",
  "expired",
] as const;

/** One task state. */
export type TaskStateName = typeof TASK_STATES[number];

/** Default time `task wait` waits (ms). */
export const TASK_WAIT_MS = 60_000;

/** Schema of a task, as either side keeps it. */
export const TASK = obj({
  id: str,
  // submitter: this node gave it; worker: this node was given it.
  role: oneOf("submitter", "worker"),
  // The other side.
  peer: PEER_REF,
  state: oneOf(...TASK_STATES),
  // The input's data type and size, and the input (text, JSON text, or base64).
  type: oneOf(...TYPES),
  bytes: int,
  input: str,
  // When it is given up (ISO), or null.
  deadline: nullable(str),
  // Why the worker declined it ("" otherwise).
  reason: str,
  // The worker's error when it failed.
  error: nullable(str),
  // The result when done: its type, size, and data (text, JSON text, or base64).
  result: nullable(obj({ type: oneOf(...TYPES), bytes: int, data: str })),
  // The latest progress reports (at most 32), and how many there were.
  progress: arr(obj({ n: int, type: oneOf(...TYPES), data: str, at: str })),
  progress_count: int,
  // Transitions not yet confirmed by the other side.
  pending: int,
  created_at: str,
  updated_at: str,
});

const ID = {
  type: "string",
  required: true,
  description: "the task id",
} as const satisfies FieldSpec;
const FROM = {
  type: "string",
  description: "the peer, when tasks with several peers share the id",
} as const satisfies FieldSpec;

/** `POST /v1/tasks/submit`: give a task to a trusted worker; answered once it stored it. */
export const TASK_SUBMIT = route({
  route: "POST /v1/tasks/submit",
  input: {
    peer: PEER_FIELD,
    type: TYPE,
    data: DATA,
    id: {
      type: "string",
      description: "task id (at most 96 bytes, no /): a retry with the same id is one task",
      default: "",
    },
    deadline_ms: {
      type: "integer",
      description: "give the task up this long from now (ms); none when absent",
      min: 1000,
      max: 365 * 24 * 3_600_000,
    },
    timeout_ms: timeoutField(DELIVERY_TIMEOUT_MS, "keep trying to hand it over this long (ms)"),
  },
  output: TASK,
});

/** `GET /v1/tasks`: tasks given to this node (or given by it), newest last. */
export const TASK_LIST = route({
  route: "GET /v1/tasks",
  input: {
    role: {
      type: "string",
      description: "worker (given to this node) or submitter (given by it)",
      default: "worker",
      values: ["worker", "submitter"],
    },
    state: { type: "string", description: "only tasks in this state", values: TASK_STATES },
    wait: {
      type: "integer",
      description: "when there is none, wait this long for one (ms)",
      default: 0,
      min: 0,
      max: MAX_TIMEOUT_MS,
    },
    limit: {
      type: "integer",
      description: "at most this many tasks (the oldest)",
      default: 100,
      min: 1,
      max: 1000,
    },
  },
  output: obj({ tasks: arr(TASK) }),
});

/** `POST /v1/tasks/accept`: the worker takes a task. */
export const TASK_ACCEPT = route({
  route: "POST /v1/tasks/accept",
  input: { id: ID, from: FROM },
  output: TASK,
});

/** `POST /v1/tasks/decline`: the worker refuses a task. */
export const TASK_DECLINE = route({
  route: "POST /v1/tasks/decline",
  input: {
    id: ID,
    reason: { type: "string", description: "why (at most 4096 bytes)", default: "" },
    from: FROM,
  },
  output: TASK,
});

/** `POST /v1/tasks/progress`: the worker reports progress (at most 64 KiB). */
export const TASK_PROGRESS = route({
  route: "POST /v1/tasks/progress",
  input: { id: ID, type: TYPE, data: DATA, from: FROM },
  output: TASK,
});

/** `POST /v1/tasks/result`: the worker's result (`data`) or error (`error`); the task ends. */
export const TASK_RESULT = route({
  route: "POST /v1/tasks/result",
  input: {
    id: ID,
    type: TYPE,
    data: { type: "json", description: "the result (exactly one of data and error)" },
    error: { type: "string", description: "the task failed: why (at most 4096 bytes)" },
    from: FROM,
  },
  output: TASK,
});

/** `GET /v1/tasks/status`: one task. */
export const TASK_STATUS = route({
  route: "GET /v1/tasks/status",
  input: { id: ID, from: FROM },
  output: TASK,
});

/** `GET /v1/tasks/wait`: waits until a task ends: done, or task_failed / timeout. */
export const TASK_WAIT = route({
  route: "GET /v1/tasks/wait",
  input: { id: ID, from: FROM, timeout_ms: timeoutField(TASK_WAIT_MS, "wait this long (ms)") },
  output: TASK,
});
