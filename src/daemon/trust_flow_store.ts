/**
 * State of the trust flow that must survive restarts: requests waiting for
 * a decision here (pending), requests we sent (outgoing), answers not yet
 * delivered (outbox), keys suppressed after a rejection, and the replay
 * cache of offline-carried trust messages. All of it keyed by full Ed25519
 * keys.
 *
 * Pending requests arrive from strangers, so they live in an append-only
 * log (`trust_pending.log`, one line per change, group commit, compacted now
 * and then); everything else changes only by local decision or a known
 * peer's answer and sits in `trust_flow.json`, rewritten atomically. A
 * version-1 flow file still holding `pending` is read, and its requests
 * move to the log.
 *
 * @module
 */
import { join } from "node:path";
import { MAX_OFFLINE_REPLAY, PENDING_LOG_SLACK } from "../constants.ts";
import { PilotError } from "../errors.ts";
import { readPrivateFile, StateFile } from "./home.ts";
import { PendingLog } from "./pending_log.ts";
import type {
  FlowBook,
  OutboxItem,
  OutgoingRequest,
  PendingRequest,
} from "../services/trust_types.ts";

interface FlowFile {
  version: 2;
  outgoing: OutgoingRequest[];
  outbox: OutboxItem[];
  suppressed: Record<string, number>;
  replay: Record<string, number>;
}

/** A line of the pending log. */
type PendingRecord =
  | { op: "put"; request: PendingRequest }
  | { op: "remove"; public_key: string };

function empty(): FlowFile {
  return { version: 2, outgoing: [], outbox: [], suppressed: {}, replay: {} };
}

/** The persisted trust-flow state of one home. */
export class TrustFlowStore implements FlowBook {
  #file: StateFile;
  #s: FlowFile;
  #log: PendingLog;
  /** In arrival order; a replaced request moves to the end. */
  #pending: Map<string, PendingRequest>;
  #pendingList: readonly PendingRequest[] | null = null;

  private constructor(
    path: string,
    state: FlowFile,
    log: PendingLog,
    pending: Map<string, PendingRequest>,
  ) {
    this.#file = new StateFile(path);
    this.#s = state;
    this.#log = log;
    this.#pending = pending;
  }

  /** Loads `HOME/trust_flow.json` and `HOME/trust_pending.log` (absent = empty). */
  static async load(home: string): Promise<TrustFlowStore> {
    const path = join(home, "trust_flow.json");
    const text = await readPrivateFile(path);
    let v: Omit<FlowFile, "version"> & { version: 1 | 2; pending?: PendingRequest[] } = empty();
    if (text !== null) {
      try {
        v = JSON.parse(text);
      } catch {
        throw bad(path, "not valid JSON");
      }
      const problem = flowProblem(v);
      if (problem !== undefined) throw bad(path, problem);
    }
    const logPath = join(home, "trust_pending.log");
    const { log, records } = await PendingLog.open(logPath);
    // The log was written after the flow file's pending list (version 1), so
    // it is replayed on top; replaying it twice gives the same state.
    const pending = new Map<string, PendingRequest>();
    for (const p of v.pending ?? []) pending.set(p.public_key, p);
    for (const [i, r] of records.entries()) {
      const problem = recordProblem(r);
      if (problem !== undefined) throw bad(logPath, `record ${i + 1} ${problem}`);
      const rec = r as PendingRecord;
      const key = rec.op === "put" ? rec.request.public_key : rec.public_key;
      pending.delete(key);
      if (rec.op === "put") pending.set(key, rec.request);
    }
    const { pending: _, ...rest } = v;
    const store = new TrustFlowStore(path, { ...rest, version: 2 }, log, pending);
    if (v.version === 1) {
      // Log first: a crash before the flow file is rewritten replays the same requests.
      await log.rewrite(store.#snapshot());
      await store.#save();
    }
    return store;
  }

  /** Requests waiting for a decision, oldest first. */
  get pending(): readonly PendingRequest[] {
    this.#pendingList ??= [...this.#pending.values()];
    return this.#pendingList;
  }

  /** Requests we sent. */
  get outgoing(): readonly OutgoingRequest[] {
    return this.#s.outgoing;
  }

  /** Answers not yet delivered. */
  get outbox(): readonly OutboxItem[] {
    return this.#s.outbox;
  }

  /** The pending request from a key. */
  pendingFrom(key: string): PendingRequest | undefined {
    return this.#pending.get(key);
  }

  /**
   * Adds or replaces (one per key) a pending request. The change is made
   * before the first await, so a caller's count-then-put cannot be raced.
   */
  async putPending(p: PendingRequest): Promise<void> {
    this.#pending.delete(p.public_key);
    this.#pending.set(p.public_key, p);
    this.#pendingList = null;
    await this.#appendPending({ op: "put", request: p });
  }

  /** Removes the pending request from a key; false when there was none. */
  async removePending(key: string): Promise<boolean> {
    if (!this.#pending.delete(key)) return false;
    this.#pendingList = null;
    await this.#appendPending({ op: "remove", public_key: key });
    return true;
  }

  async #appendPending(record: PendingRecord): Promise<void> {
    await this.#log.append(record);
    if (this.#log.count > this.#pending.size + PENDING_LOG_SLACK) {
      await this.#log.rewrite(this.#snapshot());
    }
  }

  #snapshot(): PendingRecord[] {
    return [...this.#pending.values()].map((request) => ({ op: "put", request }));
  }

  /** Our request to a key. */
  outgoingTo(key: string): OutgoingRequest | undefined {
    return this.#s.outgoing.find((o) => o.public_key === key);
  }

  /** Adds or replaces our request to a key. */
  async putOutgoing(o: OutgoingRequest): Promise<void> {
    this.#s.outgoing = [...this.#s.outgoing.filter((x) => x.public_key !== o.public_key), o];
    await this.#save();
  }

  /** Removes our request to a key. */
  async removeOutgoing(key: string): Promise<void> {
    this.#s.outgoing = this.#s.outgoing.filter((x) => x.public_key !== key);
    await this.#save();
  }

  /** Queues an answer (replacing one of the same kind to the same key). */
  async putOutbox(item: OutboxItem): Promise<void> {
    this.#s.outbox = [
      ...this.#s.outbox.filter((x) => !(x.public_key === item.public_key && x.kind === item.kind)),
      item,
    ];
    await this.#save();
  }

  /** Removes a delivered (or abandoned) answer. */
  async removeOutbox(item: OutboxItem): Promise<void> {
    this.#s.outbox = this.#s.outbox.filter((x) => x !== item);
    await this.#save();
  }

  /** Until when (wall-clock ms) a key is suppressed, or 0. */
  suppressedUntil(key: string, now: number): number {
    const until = this.#s.suppressed[key] ?? 0;
    return until > now ? until : 0;
  }

  /** Suppresses a key's requests until `until` (wall-clock ms). */
  async suppress(key: string, until: number): Promise<void> {
    this.#s.suppressed[key] = until;
    await this.#save();
  }

  /** Records an offline message's (sender, nonce); false when seen before; `rate_limited` when full. */
  async rememberOffline(replayKey: string, expiresAt: number, now: number): Promise<boolean> {
    for (const [k, until] of Object.entries(this.#s.replay)) {
      if (until < now) delete this.#s.replay[k];
    }
    if (replayKey in this.#s.replay) return false;
    if (Object.keys(this.#s.replay).length >= MAX_OFFLINE_REPLAY) {
      // Forgetting one would let it be replayed: refuse new ones instead.
      throw new PilotError(
        "rate_limited",
        "Too many offline trust messages remembered",
        "retry later",
      );
    }
    this.#s.replay[replayKey] = expiresAt;
    await this.#save();
    return true;
  }

  async #save(): Promise<void> {
    await this.#file.write(this.#s);
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
type Check = (v: unknown) => boolean;
const isStr: Check = (v) => typeof v === "string";
const isNum: Check = (v) => typeof v === "number" && Number.isFinite(v);
const isKey: Check = (v) => typeof v === "string" && HEX64.test(v);
const orNull = (c: Check): Check => (v) => v === null || c(v);
const optional = (c: Check): Check => (v) => v === undefined || c(v);

const SHAPES: Record<"pending" | "outgoing" | "outbox", Record<string, Check>> = {
  pending: {
    public_key: isKey,
    stamp: isStr,
    address: isStr,
    hostname: orNull(isStr),
    fingerprint: isStr,
    reason: isStr,
    received_at: isStr,
    request_hash: isKey,
    source: optional(isStr),
  },
  outgoing: {
    public_key: isKey,
    address: isStr,
    hostname: orNull(isStr),
    reason: isStr,
    created_at: isStr,
    expires_at: isNum,
    status: (v) => v === "pending" || v === "approved" || v === "rejected",
    hashes: (v) => Array.isArray(v) && v.every(isKey),
    reject_reason: optional(isStr),
    pinned: optional((v) => typeof v === "boolean"),
  },
  outbox: {
    public_key: isKey,
    kind: (v) => v === "accept" || v === "reject" || v === "revoke",
    ref_hash: isKey,
    reason: isStr,
    expires_at: isNum,
    endpoint: optional(isStr),
  },
};

/** Says what is wrong with one record, or undefined when it matches `shape`. */
function shapeProblem(item: unknown, shape: Record<string, Check>, at: string): string | undefined {
  if (typeof item !== "object" || item === null) return `${at} is not an object`;
  const rec = item as Record<string, unknown>;
  const extra = Object.keys(rec).find((k) => !(k in shape));
  if (extra !== undefined) return `${at} has unknown key "${extra}"`;
  const wrong = Object.entries(shape).find(([k, check]) => !check(rec[k]));
  return wrong === undefined ? undefined : `${at}.${wrong[0]} is missing or malformed`;
}

/** Says what is wrong with a parsed flow file, or undefined when it is well-formed. */
function flowProblem(v: unknown): string | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "not a JSON object";
  const o = v as Record<string, unknown>;
  if (o.version !== 1 && o.version !== 2) return `unknown version ${JSON.stringify(o.version)}`;
  // Version 1 kept pending requests here; version 2 keeps them in the log.
  const lists = o.version === 1 ? Object.keys(SHAPES) : ["outgoing", "outbox"];
  for (const list of lists) {
    const items = o[list];
    if (!Array.isArray(items)) return `"${list}" is not a list`;
    const shape = SHAPES[list as keyof typeof SHAPES];
    for (const [i, item] of items.entries()) {
      const problem = shapeProblem(item, shape, `${list}[${i}]`);
      if (problem !== undefined) return problem;
    }
  }
  for (const map of ["suppressed", "replay"]) {
    const m = o[map];
    if (typeof m !== "object" || m === null || Array.isArray(m)) return `"${map}" is not an object`;
    if (!Object.values(m).every(isNum)) return `"${map}" holds a non-number`;
  }
  const extra = Object.keys(o).find((k) =>
    !["version", "suppressed", "replay", ...lists].includes(k)
  );
  return extra === undefined ? undefined : `unknown key "${extra}"`;
}

/** Says what is wrong with a pending-log record, or undefined when it is well-formed. */
function recordProblem(r: unknown): string | undefined {
  if (typeof r !== "object" || r === null || Array.isArray(r)) return "is not an object";
  const o = r as Record<string, unknown>;
  if (o.op === "put" && Object.keys(o).length === 2) {
    return shapeProblem(o.request, SHAPES.pending, "request");
  }
  if (o.op === "remove" && Object.keys(o).length === 2 && isKey(o.public_key)) return undefined;
  return "is neither a put nor a remove";
}

function bad(path: string, why: string): PilotError {
  return new PilotError(
    "invalid_argument",
    `Trust flow file "${path}" is unusable: ${why}`,
    "fix or restore it; the daemon does not overwrite it",
  );
}
