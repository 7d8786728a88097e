/**
 * Durable tasks (issue 11 item 1; PROTOCOL.md §17): `pilot task submit`
 * leaves a task with a trusted worker, which accepts or declines it,
 * reports progress and posts a result; both sides keep every transition
 * (`task_store.ts`) so a task and its result survive restarts of either.
 *
 * On the wire (virtual port 1003) each transition is one message of the
 * messages protocol (§9), so it gets its receipt — sent only once the
 * receiver stored the transition durably — and its dedup: the envelope id
 * is `task/<id>/<transition>`, and the receiver applies each (sender,
 * envelope id) once. A transition is kept as pending until its receipt
 * came back, and retried (on a timer and when the peer comes up), so each
 * arrives exactly once whatever restarts in between.
 *
 * | transition | from | meta | data |
 * |---|---|---|---|
 * | `submit` | submitter | `task`, `task-id`, `deadline`? | the input |
 * | `accept` | worker | `task`, `task-id` | empty |
 * | `decline` | worker | `task`, `task-id` | the reason (text) |
 * | `progress/N` | worker | `task`, `task-id`, `n` | the report |
 * | `result` | worker | `task`, `task-id` | the result |
 * | `error` | worker | `task`, `task-id` | the error (text) |
 *
 * Bounds: a worker keeps at most {@linkcode MAX_OPEN_TASKS_PER_PEER} open
 * tasks per submitter (`rate_limited`); data up to 16 MiB (a result is a
 * message); deadlines on both sides: a task not finished by its deadline
 * is `expired` there, and a result after it is refused. A finished task
 * with nothing left to tell is forgotten a week after its last change.
 *
 * @module
 */
import { compareBytes } from "../../bytes.ts";
import { invalid, PilotError } from "../../errors.ts";
import type { MessagesClient } from "../../services/messages/client.ts";
import { ConflictRefusal, Refusal } from "../../services/refusal.ts";
import { messageDigest } from "../../wire/message_digest.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import { peerRef } from "../../session/peer_ref.ts";
import type { Envelope, MessageType } from "../../wire/data_message.ts";
import type { NodeContext } from "../context.ts";
import type { EventType } from "../events.ts";
import { RetryBackoff } from "../../services/retry_backoff.ts";
import { log } from "../log.ts";
import { buildEnvelope } from "../outgoing_message.ts";
import {
  FINAL_STATES,
  MAX_PROGRESS_KEPT,
  type Task,
  type TaskRole,
  type TaskState,
  type TaskStore,
} from "../task_store.ts";

/** Open (not finished) tasks a worker keeps per submitter. */
export const MAX_OPEN_TASKS_PER_PEER = 256;
/** Longest task id, in bytes (the envelope id adds its transition). */
export const MAX_TASK_ID = 96;
/** Largest progress report kept (bytes of data). */
export const MAX_PROGRESS_DATA = 64 * 1024;
/** Longest decline reason or error text (bytes). */
export const MAX_TASK_TEXT = 4096;
/** How long a finished task (nothing left to tell) is kept after its last change (ms). */
export const TASK_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
/** How long one try of a pending transition may take (ms). */
const DELIVER_ATTEMPT_MS = 10_000;

/** A task as the commands return it (data read back). */
export interface TaskView extends Task {
  /** The input's data (text, JSON text, or base64). */
  inputData: string;
  /** The result's data (text, JSON text, or base64), when done. */
  resultData: string | null;
}

/** What `submit` takes. */
export interface TaskSubmission {
  /** Data type of the input. */
  type: string;
  /** Text, JSON text or base64. */
  data: string;
  /** Task id ("" for a random one). */
  id: string;
  /** Deadline from now (ms), or null for none. */
  deadlineMs: number | null;
}

const decoder = new TextDecoder();

/** Reads stored data as the API gives it: text, or base64 for binary. */
function dataText(type: MessageType, bytes: Uint8Array): string {
  return type === "binary" ? bytes.toBase64() : decoder.decode(bytes);
}

/** The commands of tasks, and the port-1003 sink. */
export class TasksFeature {
  #ctx: NodeContext;
  #store: TaskStore;
  #client: MessagesClient;
  #delivering = new Set<string>();
  /** Per peer: when its pending transitions are tried next (5 s doubling to 5 min). */
  #backoff = new RetryBackoff({ minMs: 5_000, maxMs: 5 * 60_000, giveUpMs: Infinity });
  #ticking = false;

  /** The feature over `ctx`, keeping tasks in `store`, sending on port 1003 with `client`. */
  constructor(ctx: NodeContext, store: TaskStore, client: MessagesClient) {
    this.#ctx = ctx;
    this.#store = store;
    this.#client = client;
  }

  // ---- the submitter's side ----

  /**
   * `pilot task submit`: leaves a task with a trusted worker; resolves once
   * the worker stored it durably. The same id again (a retry) answers the
   * task as it stands, never a second one; the same id with other input is
   * `conflict`.
   */
  async submit(text: string, s: TaskSubmission, timeoutMs: number): Promise<TaskView> {
    const id = s.id === "" ? crypto.randomUUID() : checkId(s.id);
    const built = buildEnvelope({ type: s.type, data: s.data, id: "x" });
    const deadline = s.deadlineMs === null
      ? null
      : new Date(Date.now() + s.deadlineMs).toISOString();
    const meta: Record<string, string> = { task: "submit", "task-id": id };
    if (deadline !== null) meta.deadline = deadline;
    const envelope: Envelope = { ...built, id: envelopeId(id, "submit"), meta };
    const { peer, receipt } = await this.#client.deliver(envelope, {
      reach: (ms) => this.#ctx.reach.reachTrusted(text, ms),
      timeoutMs,
    });
    if (receipt.status === "refused") {
      throw new PilotError(
        receipt.detail === "rate_limited"
          ? "rate_limited"
          : receipt.detail === "conflict"
          ? "conflict"
          : "rejected",
        `${peer.address} refused the task (${receipt.detail})`,
        receipt.detail === "rate_limited"
          ? "it holds too many open tasks from this node; wait for some to finish"
          : receipt.detail === "conflict"
          ? "this task id was used for other input: pick another --id"
          : "",
      );
    }
    const known = this.#store.get("submitter", peer.keyHex, id);
    if (known !== undefined) return await this.#view(known);
    const task = newTask(
      "submitter",
      id,
      peer,
      {
        type: built.type,
        bytes: built.data.length,
        file: await this.#store.writeData(built.data),
      },
      deadline,
      [],
    );
    await this.#store.put(task);
    return await this.#view(task);
  }

  /** `pilot task status`: one task, by id (`from` picks the peer when several used it). */
  async status(id: string, from?: string): Promise<TaskView> {
    return await this.#view(this.#one(id, from));
  }

  /**
   * `pilot task wait`: waits until the task is finished or `timeoutMs`
   * passes: the task when done; `task_failed` with the worker's error when
   * it failed or was declined; `timeout` when time ran out or it expired.
   */
  async wait(id: string, timeoutMs: number, from?: string): Promise<TaskView> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeoutMs);
    try {
      for (;;) {
        const after = this.#ctx.events.lastSeq;
        const t = this.#one(id, from);
        if (t.state === "done") return await this.#view(t);
        if (t.state === "failed" || t.state === "declined") {
          throw new PilotError(
            "task_failed",
            t.state === "failed"
              ? `Task ${id} failed at ${t.peer.address}: ${t.error}`
              : `Task ${id} was declined by ${t.peer.address}${t.reason ? `: ${t.reason}` : ""}`,
            "see `pilot task status ID`",
          );
        }
        if (t.state === "expired") {
          throw new PilotError("timeout", `Task ${id} expired at its deadline ${t.deadline}`, "");
        }
        if (ac.signal.aborted) {
          throw new PilotError(
            "timeout",
            `Task ${id} is still ${t.state} after ${timeoutMs} ms`,
            "wait again: `pilot task wait ID`",
          );
        }
        if (this.#ctx.events.lastSeq === after) await this.#ctx.events.next(ac.signal);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- the worker's side ----

  /**
   * `pilot task list`: tasks, newest last, of `role` (default: the ones
   * given to this node) in `state` (any when absent); with `waitMs`, waits
   * that long for one to exist.
   */
  async list(
    options: { role?: TaskRole; state?: TaskState; waitMs?: number; limit?: number } = {},
  ): Promise<TaskView[]> {
    const role = options.role ?? "worker";
    const pick = () =>
      this.#store.list().filter((t) =>
        t.role === role && (options.state === undefined || t.state === options.state)
      );
    let found = pick();
    if (found.length === 0 && (options.waitMs ?? 0) > 0) {
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), options.waitMs);
      try {
        while (found.length === 0 && !ac.signal.aborted) {
          await this.#ctx.events.next(ac.signal);
          found = pick();
        }
      } finally {
        clearTimeout(timer);
      }
    }
    return await Promise.all(found.slice(0, options.limit ?? 100).map((t) => this.#view(t)));
  }

  /** `pilot task accept`. */
  accept(id: string, from?: string): Promise<TaskView> {
    return this.#transition(id, from, ["submitted"], "accepted", true, (t) => {
      t.pending.push("accept");
      return t;
    });
  }

  /** `pilot task decline`. */
  decline(id: string, reason: string, from?: string): Promise<TaskView> {
    checkText(reason, "reason");
    return this.#transition(id, from, ["submitted"], "declined", true, (t) => {
      t.reason = reason;
      t.pending.push("decline");
      return t;
    });
  }

  /** `pilot task progress`: a report to the submitter (the task is accepted first if it was not). */
  progress(id: string, type: string, data: string, from?: string): Promise<TaskView> {
    const built = buildEnvelope({ type, data, id: "x" });
    if (built.data.length > MAX_PROGRESS_DATA) {
      throw new PilotError(
        "too_large",
        `A progress report carries at most ${MAX_PROGRESS_DATA} bytes`,
        "send the data as the result, or a file with send-file",
      );
    }
    return this.#transition(id, from, ["submitted", "accepted"], "accepted", false, (t) => {
      if (t.state === "submitted") t.pending.push("accept");
      const n = ++t.progressCount;
      t.progress = [...t.progress, {
        n,
        type: built.type,
        data: dataText(built.type, built.data),
        at: new Date().toISOString(),
      }].slice(-MAX_PROGRESS_KEPT);
      t.pending.push(`progress/${n}`);
      return t;
    });
  }

  /** `pilot task result`: the result (`error` null) or the worker's error; the task ends. */
  result(
    id: string,
    outcome: { type: string; data: string } | { error: string },
    from?: string,
  ): Promise<TaskView> {
    if ("error" in outcome) checkText(outcome.error, "error");
    const built = "error" in outcome
      ? null
      : buildEnvelope({ type: outcome.type, data: outcome.data, id: "x" });
    const state: TaskState = built === null ? "failed" : "done";
    return this.#transition(id, from, ["submitted", "accepted"], state, false, async (t) => {
      if (built === null) {
        t.error = (outcome as { error: string }).error;
        t.pending.push("error");
      } else {
        t.result = {
          type: built.type,
          bytes: built.data.length,
          file: await this.#store.writeData(built.data),
        };
        t.pending.push("result");
      }
      return t;
    });
  }

  /** Applies a worker's transition: checks the state, stores it, then tells the submitter. */
  async #transition(
    id: string,
    from: string | undefined,
    allowed: TaskState[],
    next: TaskState,
    repeatable: boolean,
    change: (t: Task) => Task | Promise<Task>,
  ): Promise<TaskView> {
    const t = this.#one(id, from, "worker");
    if (this.#expireIfDue(t)) {
      await this.#store.put(t);
      this.#ctx.events.publish("task.expired", this.#event(t));
    }
    // Accepting or declining again changes nothing (safe to repeat).
    if (repeatable && t.state === next) return await this.#view(t);
    if (!allowed.includes(t.state)) {
      throw new PilotError(
        "conflict",
        `Task ${id} is ${t.state}; it cannot become ${next}`,
        t.state === "expired" ? "its deadline passed" : "see `pilot task status ID`",
      );
    }
    const changed = await change(t);
    changed.state = next;
    changed.updatedAt = new Date().toISOString();
    await this.#store.put(changed);
    this.#ctx.events.publish(eventOf(next), this.#event(changed));
    // Told now when the submitter is there; otherwise later (retries, peer up).
    await this.#deliver(changed, 2_000).catch(() => {});
    return await this.#view(this.#store.get("worker", t.peer.public_key, t.id) ?? changed);
  }

  // ---- both sides: the port-1003 sink and delivery ----

  /**
   * Stores a transition from a trusted peer (port 1003), once per
   * (sender, envelope id): throws a Refusal to refuse it. Returns the
   * receipt's seq (a task's count of changes) and whether it was a retry.
   */
  async store(peer: PeerIdentity, e: Envelope): Promise<{ seq: number; duplicate: boolean }> {
    const kind = e.meta.task;
    const id = e.meta["task-id"] ?? "";
    if (
      id === "" ||
      e.id !== envelopeId(id, kind === "progress" ? `progress/${e.meta.n}` : kind ?? "")
    ) {
      throw new Refusal("invalid_argument", "not a task transition");
    }
    if (kind === "submit") return await this.#received(peer, id, e);
    const t = this.#store.get("submitter", peer.keyHex, id);
    if (t === undefined) throw new Refusal("invalid_argument", `no task ${id} from this node`);
    if (t.seen.includes(e.id)) return { seq: t.seen.length, duplicate: true };
    if (FINAL_STATES.has(t.state)) {
      // Finished here (expired at its deadline, say): taken, and nothing changes.
      t.seen = [...t.seen, e.id].slice(-64);
      await this.#store.put(t);
      return { seq: t.seen.length, duplicate: false };
    }
    const data = dataText(e.type, e.data);
    switch (kind) {
      case "accept":
        if (t.state === "submitted") t.state = "accepted";
        break;
      case "decline":
        t.state = "declined";
        t.reason = data;
        break;
      case "progress": {
        const n = Number(e.meta.n);
        if (!Number.isSafeInteger(n) || n < 1) throw new Refusal("invalid_argument", "bad n");
        if (t.state === "submitted") t.state = "accepted";
        t.progressCount = Math.max(t.progressCount, n);
        t.progress = [...t.progress, { n, type: e.type, data, at: new Date().toISOString() }]
          .sort((a, b) => a.n - b.n).slice(-MAX_PROGRESS_KEPT);
        break;
      }
      case "result":
        t.state = "done";
        t.result = {
          type: e.type,
          bytes: e.data.length,
          file: await this.#store.writeData(e.data),
        };
        break;
      case "error":
        t.state = "failed";
        t.error = data;
        break;
      default:
        throw new Refusal("invalid_argument", `unknown task transition ${kind}`);
    }
    t.seen = [...t.seen, e.id].slice(-64);
    t.updatedAt = new Date().toISOString();
    await this.#store.put(t);
    const ev = kind === "error"
      ? "result"
      : kind === "decline"
      ? "declined"
      : kind === "accept"
      ? "accepted"
      : kind;
    this.#ctx.events.publish(`task.${ev}` as EventType, {
      ...this.#event(t),
      ...(kind === "progress" ? { n: Number(e.meta.n), data } : {}),
    });
    return { seq: t.seen.length, duplicate: false };
  }

  /** A submitter's task arrives at this worker. */
  async #received(peer: PeerIdentity, id: string, e: Envelope) {
    const known = this.#store.get("worker", peer.keyHex, id);
    if (known !== undefined) {
      const input = await this.#store.readData(known.input);
      if (known.input.type !== e.type || compareBytes(input, e.data) !== 0) {
        // What is stored under the id, as a message conflict says it.
        const stored = { ...e, type: known.input.type, data: input };
        throw new ConflictRefusal(
          { size: input.length, digest: messageDigest(stored) },
          `task ${id} was given with other input`,
        );
      }
      return { seq: 1, duplicate: true };
    }
    const open = this.#store.list().filter((t) =>
      t.role === "worker" && t.peer.public_key === peer.keyHex && !FINAL_STATES.has(t.state)
    );
    if (open.length >= MAX_OPEN_TASKS_PER_PEER) {
      throw new Refusal("rate_limited", `${open.length} open tasks from this node`);
    }
    const deadline = e.meta.deadline ?? null;
    if (deadline !== null && !(Date.parse(deadline) > Date.now())) {
      throw new Refusal("invalid_argument", "the deadline has passed or is not a date");
    }
    const task = newTask(
      "worker",
      id,
      peer,
      {
        type: e.type,
        bytes: e.data.length,
        file: await this.#store.writeData(e.data),
      },
      deadline,
      [e.id],
    );
    try {
      await this.#store.put(task);
    } catch (err) {
      throw err instanceof PilotError && err.code === "rate_limited"
        ? new Refusal("rate_limited", err.message)
        : err;
    }
    this.#ctx.events.publish("task.received", this.#event(task));
    return { seq: 1, duplicate: false };
  }

  /** Sends a task's pending transitions in order until one fails; true when none is left. */
  async #deliver(t: Task, timeoutMs: number): Promise<boolean> {
    const key = `${t.role}\n${t.peer.public_key}\n${t.id}`;
    if (this.#delivering.has(key)) return false;
    this.#delivering.add(key);
    try {
      let task = t;
      while (task.pending.length > 0) {
        const transition = task.pending[0]!;
        const envelope = await this.#envelopeOf(task, transition);
        const { receipt } = await this.#client.deliver(envelope, {
          reach: (ms) => this.#ctx.reach.reachTrusted(task.peer.public_key, ms),
          timeoutMs,
        });
        if (receipt.status === "refused") {
          log(`task ${task.id}: ${task.peer.address} refused ${transition} (${receipt.detail})`, {
            level: "warn",
            event: "task.refused",
            fields: { id: task.id, peer: task.peer, transition, detail: receipt.detail },
          });
        }
        const now = this.#store.get(task.role, task.peer.public_key, task.id);
        if (now === undefined) return true;
        now.pending = now.pending.filter((p) => p !== transition);
        await this.#store.put(now);
        task = now;
      }
      return true;
    } finally {
      this.#delivering.delete(key);
    }
  }

  async #envelopeOf(t: Task, transition: string): Promise<Envelope> {
    const meta: Record<string, string> = { task: transition.split("/")[0]!, "task-id": t.id };
    let type: MessageType = "text";
    let data: Uint8Array = new Uint8Array();
    if (transition.startsWith("progress/")) {
      const n = Number(transition.slice("progress/".length));
      meta.n = String(n);
      const p = t.progress.find((x) => x.n === n);
      type = p?.type ?? "text";
      data = p === undefined
        ? new Uint8Array()
        : p.type === "binary"
        ? Uint8Array.fromBase64(p.data)
        : new TextEncoder().encode(p.data);
    } else if (transition === "decline") data = new TextEncoder().encode(t.reason);
    else if (transition === "error") data = new TextEncoder().encode(t.error ?? "");
    else if (transition === "result" && t.result !== null) {
      type = t.result.type;
      data = await this.#store.readData(t.result);
    }
    return {
      id: envelopeId(t.id, transition),
      type,
      correlationId: "",
      inReplyTo: "",
      expiresAt: 0,
      meta,
      data,
    };
  }

  /**
   * The node's timer: expires tasks past their deadline (`task.expired`) and
   * sends pending transitions of peers that are due (all when `peerKey` came
   * up). Never throws.
   */
  async tick(peerKey?: string): Promise<void> {
    if (peerKey !== undefined) this.#backoff.reset(peerKey);
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const failed = new Set<string>();
      const forgetBefore = Date.now() - TASK_RETENTION_MS;
      for (const t of this.#store.list()) {
        if (
          FINAL_STATES.has(t.state) && t.pending.length === 0 &&
          Date.parse(t.updatedAt) < forgetBefore
        ) {
          await this.#store.remove(t.role, t.peer.public_key, t.id).catch(() => {});
          continue;
        }
        if (this.#expireIfDue(t)) {
          await this.#store.put(t).catch(() => {});
          this.#ctx.events.publish("task.expired", this.#event(t));
        }
        const key = t.peer.public_key;
        if (t.pending.length === 0 || failed.has(key) || !this.#backoff.due(key)) continue;
        const done = await this.#deliver(t, DELIVER_ATTEMPT_MS).catch(() => false);
        if (!done) failed.add(key);
      }
      for (const key of failed) this.#backoff.failed(key);
    } finally {
      this.#ticking = false;
    }
  }

  /** Marks a task expired when its deadline passed before it finished; true when it changed. */
  #expireIfDue(t: Task): boolean {
    if (FINAL_STATES.has(t.state) || t.deadline === null) return false;
    if (Date.parse(t.deadline) > Date.now()) return false;
    t.state = "expired";
    t.updatedAt = new Date().toISOString();
    return true;
  }

  /** The one task `id` (of `role`, with the peer `from` names when several share the id). */
  #one(id: string, from?: string, role?: TaskRole): Task {
    const all = [
      ...(role === undefined || role === "submitter" ? this.#store.withId("submitter", id) : []),
      ...(role === undefined || role === "worker" ? this.#store.withId("worker", id) : []),
    ].filter((t) =>
      from === undefined || t.peer.public_key === from || t.peer.address === from ||
      t.peer.hostname === from
    );
    if (all.length === 0) {
      throw new PilotError("not_found", `No task "${id}"`, "see `pilot task list`");
    }
    if (all.length > 1) {
      throw new PilotError(
        "conflict",
        `Several tasks have the id "${id}": ${
          all.map((t) => `${t.role} with ${t.peer.address}`).join(", ")
        }`,
        "name the peer: --from PEER",
      );
    }
    return all[0]!;
  }

  async #view(t: Task): Promise<TaskView> {
    const resultData = t.result === null
      ? null
      : dataText(t.result.type, await this.#store.readData(t.result));
    const inputData = dataText(t.input.type, await this.#store.readData(t.input));
    return { ...t, inputData, resultData };
  }

  #event(t: Task): Record<string, unknown> {
    return { id: t.id, role: t.role, peer: t.peer, state: t.state };
  }
}

/** A task as its side first stores it: submitted, nothing told or taken but `seen`. */
function newTask(
  role: TaskRole,
  id: string,
  peer: PeerIdentity,
  input: Task["input"],
  deadline: string | null,
  seen: string[],
): Task {
  const now = new Date().toISOString();
  return {
    role,
    id,
    peer: peerRef(peer),
    input,
    deadline,
    state: "submitted",
    reason: "",
    error: null,
    result: null,
    progress: [],
    progressCount: 0,
    pending: [],
    seen,
    createdAt: now,
    updatedAt: now,
  };
}

/** The event a worker's transition to `state` publishes. */
function eventOf(state: TaskState): EventType {
  return state === "accepted"
    ? "task.accepted"
    : state === "declined"
    ? "task.declined"
    : state === "expired"
    ? "task.expired"
    : "task.result";
}

function envelopeId(id: string, transition: string): string {
  return `task/${id}/${transition}`;
}

function checkId(id: string): string {
  if (new TextEncoder().encode(id).length > MAX_TASK_ID || id.includes("/")) {
    throw invalid(
      `Invalid task id "${id}": at most ${MAX_TASK_ID} bytes, no "/"`,
      "pick a shorter id",
    );
  }
  return id;
}

function checkText(text: string, what: string): void {
  if (new TextEncoder().encode(text).length > MAX_TASK_TEXT) {
    throw new PilotError("too_large", `The ${what} is over ${MAX_TASK_TEXT} bytes`, "shorten it");
  }
}
