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
    if (
      typeof v !== "object" || v === null || v.version !== 1 || !Array.isArray(v.pending) ||
      !Array.isArray(v.outgoing) || !Array.isArray(v.outbox) || typeof v.suppressed !== "object" ||
      typeof v.replay !== "object"
    ) {
      throw bad(path, "unexpected structure");
    }
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

  /** Records an offline message's (sender, nonce); false when it was seen before. */
  async rememberOffline(replayKey: string, expiresAt: number, now: number): Promise<boolean> {
    for (const [k, until] of Object.entries(this.#s.replay)) {
      if (until < now) delete this.#s.replay[k];
    }
    if (replayKey in this.#s.replay) return false;
    this.#s.replay[replayKey] = expiresAt;
    await this.#save();
    return true;
  }

  async #save(): Promise<void> {
    await this.#file.write(this.#s);
  }
}

function bad(path: string, why: string): PilotError {
  return new PilotError(
    "invalid_argument",
    `Trust flow file "${path}" is unusable: ${why}`,
    "fix or restore it; the daemon does not overwrite it",
  );
}
