/**
 * State of the trust flow that must survive restarts: requests waiting for
 * a decision here (pending), requests we sent (outgoing), answers not yet
 * delivered (outbox), keys suppressed after a rejection, and the replay
 * cache of offline-carried trust messages. One JSON file, rewritten
 * atomically on every change. All of it keyed by full Ed25519 keys.
 *
 * @module
 */
import { join } from "node:path";
import { MAX_OFFLINE_REPLAY } from "../constants.ts";
import { PilotError } from "../errors.ts";
import { readPrivateFile, StateFile } from "./home.ts";
import type {
  FlowBook,
  OutboxItem,
  OutgoingRequest,
  PendingRequest,
} from "../services/trust_types.ts";

interface FlowFile {
  version: 1;
  pending: PendingRequest[];
  outgoing: OutgoingRequest[];
  outbox: OutboxItem[];
  suppressed: Record<string, number>;
  replay: Record<string, number>;
}

function empty(): FlowFile {
  return { version: 1, pending: [], outgoing: [], outbox: [], suppressed: {}, replay: {} };
}

/** The persisted trust-flow state of one home. */
export class TrustFlowStore implements FlowBook {
  #file: StateFile;
  #s: FlowFile;

  private constructor(path: string, state: FlowFile) {
    this.#file = new StateFile(path);
    this.#s = state;
  }

  /** Loads `HOME/trust_flow.json` (absent = empty). */
  static async load(home: string): Promise<TrustFlowStore> {
    const path = join(home, "trust_flow.json");
    const text = await readPrivateFile(path);
    if (text === null) return new TrustFlowStore(path, empty());
    let v: FlowFile;
    try {
      v = JSON.parse(text);
    } catch {
      throw bad(path, "not valid JSON");
    }
    const problem = flowProblem(v);
    if (problem !== undefined) throw bad(path, problem);
    return new TrustFlowStore(path, v);
  }

  /** Requests waiting for a decision. */
  get pending(): readonly PendingRequest[] {
    return this.#s.pending;
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
    return this.#s.pending.find((p) => p.public_key === key);
  }

  /** Adds or replaces (one per key) a pending request. */
  async putPending(p: PendingRequest): Promise<void> {
    this.#s.pending = [...this.#s.pending.filter((x) => x.public_key !== p.public_key), p];
    await this.#save();
  }

  /** Removes the pending request from a key; false when there was none. */
  async removePending(key: string): Promise<boolean> {
    const before = this.#s.pending.length;
    this.#s.pending = this.#s.pending.filter((x) => x.public_key !== key);
    if (this.#s.pending.length === before) return false;
    await this.#save();
    return true;
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

/** Says what is wrong with a parsed flow file, or undefined when it is well-formed. */
function flowProblem(v: unknown): string | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "not a JSON object";
  const o = v as Record<string, unknown>;
  if (o.version !== 1) return `unknown version ${JSON.stringify(o.version)}`;
  for (const [list, shape] of Object.entries(SHAPES)) {
    const items = o[list];
    if (!Array.isArray(items)) return `"${list}" is not a list`;
    for (const [i, item] of items.entries()) {
      if (typeof item !== "object" || item === null) return `${list}[${i}] is not an object`;
      const rec = item as Record<string, unknown>;
      const extra = Object.keys(rec).find((k) => !(k in shape));
      if (extra !== undefined) return `${list}[${i}] has unknown key "${extra}"`;
      const wrong = Object.entries(shape).find(([k, check]) => !check(rec[k]));
      if (wrong !== undefined) return `${list}[${i}].${wrong[0]} is missing or malformed`;
    }
  }
  for (const map of ["suppressed", "replay"]) {
    const m = o[map];
    if (typeof m !== "object" || m === null || Array.isArray(m)) return `"${map}" is not an object`;
    if (!Object.values(m).every(isNum)) return `"${map}" holds a non-number`;
  }
  const extra = Object.keys(o).find((k) =>
    !["version", "suppressed", "replay", ...Object.keys(SHAPES)].includes(k)
  );
  return extra === undefined ? undefined : `unknown key "${extra}"`;
}

function bad(path: string, why: string): PilotError {
  return new PilotError(
    "invalid_argument",
    `Trust flow file "${path}" is unusable: ${why}`,
    "fix or restore it; the daemon does not overwrite it",
  );
}
