/**
 * Trust answers (accept, reject, revoke) waiting to be delivered: queued in
 * the persisted outbox, sent over the peer's session until acknowledged.
 * A peer without a session is reconnected and retried with backoff per
 * peer ({@linkcode RetryBackoff}); after a few minutes of silence it is
 * left alone, and its answers go out when it next connects
 * ({@linkcode TrustOutbox.peerUp}), so a stranger that left costs a handful
 * of handshakes, not one every few seconds for a week.
 *
 * @module
 */
import {
  OUTBOX_ACTIVE_RETRY_MS,
  OUTBOX_BACKOFF_MAX_MS,
  OUTBOX_BACKOFF_MIN_MS,
  OUTBOX_RETRY_MS,
  OUTBOX_TTL_MS,
} from "../constants.ts";
import { RetryBackoff } from "./retry_backoff.ts";
import type { FlowBook, OutboxItem } from "./trust_types.ts";

/** What the outbox needs from the trust service and the node. */
export interface OutboxOptions {
  /** The persisted outbox. */
  flow: FlowBook;
  /** The handshake hash of the peer's current session, if it has one. */
  binding(peerKeyHex: string): Uint8Array | undefined;
  /** Where the peer was last reached (IP:PORT), if known. */
  endpointOf(peerKeyHex: string): string | undefined;
  /** Opens a session to a peer expecting its full key. */
  reconnect(peerKeyHex: string, endpoint: string): Promise<void>;
  /** Signs and sends one answer until acknowledged; true when it was. */
  exchange(item: OutboxItem, timeoutMs: number): Promise<boolean>;
  /**
   * Leaves one answer, signed for offline delivery, at the peer's mailbox
   * while it has no session; true when a mailbox took it. Without it,
   * answers wait for a session.
   */
  leave?(item: OutboxItem): Promise<boolean>;
  /** Wall clock in ms (expiry of queued answers). */
  now: () => number;
  /** Monotonic clock in ms for the backoff (default `performance.now`). */
  monotonic?: () => number;
  /** Random number in [0, 1) for jitter (default `Math.random`). */
  random?: () => number;
}

/** The queue of undelivered trust answers and its retry policy; see the module doc. */
export class TrustOutbox {
  #o: OutboxOptions;
  #backoff: RetryBackoff;
  #delivering = new Map<OutboxItem, Promise<boolean>>();

  /** Creates the outbox over the persisted items of `options.flow`. */
  constructor(options: OutboxOptions) {
    this.#o = options;
    this.#backoff = new RetryBackoff({
      minMs: OUTBOX_BACKOFF_MIN_MS,
      maxMs: OUTBOX_BACKOFF_MAX_MS,
      giveUpMs: OUTBOX_ACTIVE_RETRY_MS,
      ...(options.monotonic === undefined ? {} : { now: options.monotonic }),
      ...(options.random === undefined ? {} : { random: options.random }),
    });
  }

  /**
   * Queues an answer to `key` (its kind, the hash it names, a reject's
   * reason), noting where the peer was last reached so it can be reached
   * again.
   */
  async enqueue(key: string, answer: Pick<OutboxItem, "kind" | "ref_hash" | "reason">) {
    // A new answer is worth new tries, even to a peer we stopped trying.
    this.#backoff.reset(key);
    const endpoint = this.#o.endpointOf(key);
    await this.#o.flow.putOutbox({
      public_key: key,
      ...answer,
      expires_at: this.#o.now() + OUTBOX_TTL_MS,
      ...(endpoint === undefined ? {} : { endpoint }),
    });
  }

  /** Drops queued answers of one kind to a key. */
  async drop(key: string, kind: OutboxItem["kind"]): Promise<void> {
    for (const item of this.#o.flow.outbox.filter((i) => i.public_key === key && i.kind === kind)) {
      await this.#o.flow.removeOutbox(item);
    }
  }

  /** One round of active retries; see {@linkcode TrustService.retryOutbox}. */
  async retry(): Promise<void> {
    const byKey = new Map<string, OutboxItem[]>();
    for (const item of await this.#live()) {
      byKey.set(item.public_key, [...(byKey.get(item.public_key) ?? []), item]);
    }
    this.#backoff.retain(new Set(byKey.keys()));
    for (const [key, items] of byKey) {
      if (!this.#backoff.due(key)) continue;
      const endpoint = items.find((i) => i.endpoint !== undefined)?.endpoint;
      if (this.#o.binding(key) === undefined && endpoint !== undefined) {
        await this.#o.reconnect(key, endpoint).catch(() => {});
      }
      let delivered = true;
      for (const item of items) {
        if (!(await this.#deliver(item, OUTBOX_RETRY_MS))) delivered = false;
      }
      if (delivered) this.#backoff.reset(key);
      else this.#backoff.failed(key);
    }
  }

  /** A session with `key` came up: retries start over and its answers go out now. */
  peerUp(key: string): Promise<boolean> {
    this.#backoff.reset(key);
    return this.flush(key);
  }

  /** Whether active retries to `key` have stopped. */
  retriesStopped(key: string): boolean {
    return this.#backoff.gaveUp(key);
  }

  /** Delivers queued answers to `key` (or everyone) over live sessions; true when none is left for it. */
  async flush(key?: string, timeoutMs = 5_000): Promise<boolean> {
    let allDone = true;
    for (const item of await this.#live()) {
      if (key !== undefined && item.public_key !== key) continue;
      if (!(await this.#deliver(item, timeoutMs))) allDone = false;
    }
    return allDone;
  }

  /** The queued answers not yet expired; expired ones are removed. */
  async #live(): Promise<OutboxItem[]> {
    const now = this.#o.now();
    const live = [];
    for (const item of this.#o.flow.outbox) {
      if (item.expires_at < now) await this.#o.flow.removeOutbox(item);
      else live.push(item);
    }
    return live;
  }

  /** Delivers one queued answer; concurrent calls for the same item share one exchange. */
  #deliver(item: OutboxItem, timeoutMs: number): Promise<boolean> {
    const running = this.#delivering.get(item);
    if (running !== undefined) return running;
    const run = (async () => {
      if (this.#o.binding(item.public_key) !== undefined) {
        if (!(await this.#o.exchange(item, timeoutMs))) return false;
      } else if (!(await (this.#o.leave?.(item) ?? Promise.resolve(false)))) return false;
      await this.#o.flow.removeOutbox(item);
      return true;
    })().finally(() => this.#delivering.delete(item));
    this.#delivering.set(item, run);
    return run;
  }
}
