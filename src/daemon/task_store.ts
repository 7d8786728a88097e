/**
 * Durable tasks (issue 11 item 1), the store of one node: the tasks it
 * submitted to workers and the tasks workers' submitters gave it, each with
 * its state, its input and result data, its progress, and (on either side)
 * the transitions still to tell the other side.
 *
 * Durable before acknowledged: every change is one record of the task's
 * whole state appended to `HOME/tasks.log` and fsynced (group commits) before
 * the call resolves; data (a task's input, a result) is written to its own
 * file in `HOME/tasks/` first. A crash at any moment loses nothing a caller
 * was told, and the log is replayed at open (the last record of a task wins).
 * It is compacted atomically once dead records outnumber live tasks.
 *
 * Bounded: at most {@linkcode MAX_TASKS} tasks (finished ones included,
 * until they are removed: the tasks feature removes a finished task a week
 * after its last change), `rate_limited` beyond.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../errors.ts";
import type { PeerRef } from "../session/peer_ref.ts";
import type { MessageType } from "../wire/data_message.ts";
import { writeFileAtomic } from "./home.ts";
import { PendingLog } from "./pending_log.ts";

/** Most tasks a node keeps, submitted and received together. */
export const MAX_TASKS = 10_000;
/** Progress reports kept per task (the latest). */
export const MAX_PROGRESS_KEPT = 32;

/** Which side of a task this node is. */
export type TaskRole = "submitter" | "worker";
/** Where a task stands. */
export type TaskState = "submitted" | "accepted" | "declined" | "done" | "failed" | "expired";
/** States a task never leaves. */
export const FINAL_STATES: ReadonlySet<TaskState> = new Set([
  "declined",
  "done",
  "failed",
  "expired",
]);

/** Data kept in a file of `HOME/tasks/`. */
export interface TaskData {
  /** How to read it. */
  type: MessageType;
  /** Its size in bytes. */
  bytes: number;
  /** Its file in `HOME/tasks/`. */
  file: string;
}

/** One progress report. */
export interface TaskProgress {
  /** 1 for the first report of the task, then 2, … */
  n: number;
  /** How to read `data`. */
  type: MessageType;
  /** UTF-8 text, or base64 for binary. */
  data: string;
  /** When the worker reported it (ISO). */
  at: string;
}

/** A task as one side keeps it. */
export interface Task {
  /** This node's side. */
  role: TaskRole;
  /** The task id (the submitter's `--id`, or random). */
  id: string;
  /** The other side: the worker (submitter role) or the submitter (worker role). */
  peer: PeerRef;
  /** The input. */
  input: TaskData;
  /** When the task is given up (ISO), or null. */
  deadline: string | null;
  /** Where it stands. */
  state: TaskState;
  /** Why the worker declined it ("" otherwise). */
  reason: string;
  /** The worker's error when it failed, else null. */
  error: string | null;
  /** The result when done, else null. */
  result: TaskData | null;
  /** The latest progress reports, oldest first. */
  progress: TaskProgress[];
  /** Progress reports so far. */
  progressCount: number;
  /** Transitions still to tell the other side, oldest first (`accept`, `progress/3`, …). */
  pending: string[];
  /** Transitions taken from the other side (their ids: a retry is recognised). */
  seen: string[];
  /** When this node first stored it (ISO). */
  createdAt: string;
  /** When it last changed here (ISO). */
  updatedAt: string;
}

type LogRecord = { op: "put"; task: Task } | {
  op: "remove";
  role: TaskRole;
  peer: string;
  id: string;
};

const keyOf = (role: TaskRole, peerKey: string, id: string) => `${role}\n${peerKey}\n${id}`;

/** The tasks of one node, durable. */
export class TaskStore {
  #log: PendingLog;
  #dir: string;
  #tasks = new Map<string, Task>();
  #nextFile: number;
  #dead = 0;

  private constructor(log: PendingLog, dir: string, nextFile: number) {
    this.#log = log;
    this.#dir = dir;
    this.#nextFile = nextFile;
  }

  /**
   * Opens the tasks of `home`: replays the log (the last record of each task
   * wins) and deletes data files no task names. A record that does not parse
   * is `internal`, with the file named.
   */
  static async open(home: string): Promise<TaskStore> {
    const dir = join(home, "tasks");
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(home, "tasks.log");
    const { log, records } = await PendingLog.open(path);
    const tasks = new Map<string, Task>();
    for (const r of records as LogRecord[]) {
      if (r?.op === "put" && typeof r.task?.id === "string") {
        tasks.set(keyOf(r.task.role, r.task.peer.public_key, r.task.id), r.task);
      } else if (r?.op === "remove") tasks.delete(keyOf(r.role, r.peer, r.id));
      else {
        throw new PilotError(
          "internal",
          `Cannot read ${path}: a record is not a task change`,
          "move the file away; the tasks in it are then forgotten",
        );
      }
    }
    const live = new Set<string>();
    for (const t of tasks.values()) {
      live.add(t.input.file);
      if (t.result !== null) live.add(t.result.file);
    }
    let last = 0;
    for await (const e of Deno.readDir(dir)) {
      const n = Number(/^(\d+)\.bin$/.exec(e.name)?.[1] ?? NaN);
      if (live.has(e.name)) last = Math.max(last, n);
      else await Deno.remove(join(dir, e.name)).catch(() => {});
    }
    const store = new TaskStore(log, dir, last + 1);
    store.#tasks = tasks;
    store.#dead = records.length - tasks.size;
    return store;
  }

  /** Every task, oldest first (copies). */
  list(): Task[] {
    return [...this.#tasks.values()].map(copy);
  }

  /** The task `id` of `role` with the peer `peerKey`, if any (a copy). */
  get(role: TaskRole, peerKey: string, id: string): Task | undefined {
    const t = this.#tasks.get(keyOf(role, peerKey, id));
    return t === undefined ? undefined : copy(t);
  }

  /** Tasks of `role` with id `id`, with any peer (copies). */
  withId(role: TaskRole, id: string): Task[] {
    return [...this.#tasks.values()].filter((t) => t.role === role && t.id === id).map(copy);
  }

  /** How many tasks are kept. */
  get size(): number {
    return this.#tasks.size;
  }

  /** Writes `bytes` to a new data file, durably; returns its name. */
  async writeData(bytes: Uint8Array): Promise<string> {
    const file = `${this.#nextFile++}.bin`;
    await writeFileAtomic(join(this.#dir, file), bytes, 0o600);
    return file;
  }

  /** The bytes of a data file. */
  async readData(d: TaskData): Promise<Uint8Array> {
    return await Deno.readFile(join(this.#dir, d.file));
  }

  /**
   * Stores a task's new state; resolves once durable. `rate_limited` when
   * it is a new task and the store is full.
   */
  async put(task: Task): Promise<void> {
    const key = keyOf(task.role, task.peer.public_key, task.id);
    const known = this.#tasks.has(key);
    if (!known && this.#tasks.size >= MAX_TASKS) {
      throw new PilotError(
        "rate_limited",
        `${MAX_TASKS} tasks are kept already`,
        "finished tasks are kept 7 days; wait for some to finish and age out",
      );
    }
    const stored = copy(task);
    this.#tasks.set(key, stored);
    if (known) this.#dead++;
    await this.#log.append({ op: "put", task: stored } satisfies LogRecord);
    if (this.#dead > 64 && this.#dead > 2 * this.#tasks.size) await this.#compact();
  }

  /** Forgets a task and its data; resolves once durable. False when none was kept. */
  async remove(role: TaskRole, peerKey: string, id: string): Promise<boolean> {
    const key = keyOf(role, peerKey, id);
    const t = this.#tasks.get(key);
    if (t === undefined) return false;
    this.#tasks.delete(key);
    this.#dead += 2;
    await this.#log.append({ op: "remove", role, peer: peerKey, id } satisfies LogRecord);
    for (const d of [t.input, t.result]) {
      if (d !== null) await Deno.remove(join(this.#dir, d.file)).catch(() => {});
    }
    return true;
  }

  async #compact(): Promise<void> {
    await this.#log.rewrite([...this.#tasks.values()].map((task) => ({ op: "put", task })));
    this.#dead = 0;
  }
}

function copy(t: Task): Task {
  return structuredClone(t);
}
