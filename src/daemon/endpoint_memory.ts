/**
 * Remembers where trusted peers were last authenticated, so that after a
 * restart `send <trusted peer>` knows where to handshake before the peer
 * calls. The endpoint is only a hint: the handshake there must prove the
 * trusted key (another key answering is `key_changed`, never a switch).
 *
 * The node reports what the session layer authenticated (a session coming
 * up, and its current endpoint sampled while it roams); writes are
 * coalesced: at most one per peer per `REMEMBER_MIN_INTERVAL_MS`, every peer
 * due in one write of the trust file, never a write per packet.
 *
 * @module
 */
import type { SeenAt, TrustRecord } from "./trust_store.ts";

/** The shortest time between two writes of one peer's remembered endpoint (ms). */
export const REMEMBER_MIN_INTERVAL_MS = 60_000;

/** How old `last_seen` may get, while a peer stays at one endpoint, before it is rewritten (ms). */
export const LAST_SEEN_REFRESH_MS = 10 * 60_000;

/** How often the node samples its trusted peers' live endpoints (ms). */
export const ENDPOINT_SAMPLE_MS = 5_000;

/** What the memory needs from the trust store. */
export interface RememberedStore {
  /** The trusted entry of a key, or undefined. */
  get(keyHex: string): TrustRecord | undefined;
  /** Writes the peers' endpoints in one file write. */
  remember(updates: ReadonlyMap<string, SeenAt>): Promise<void>;
}

/** Clocks, injectable for tests. */
export interface EndpointMemoryOptions {
  /** Monotonic ms, for the spacing of writes (default `performance.now`). */
  now?: () => number;
  /** Wall-clock ms, for `last_seen` (default `Date.now`). */
  wallNow?: () => number;
}

/** Coalesces remembered-endpoint writes for the trust store. */
export class EndpointMemory {
  #store: RememberedStore;
  #now: () => number;
  #wallNow: () => number;
  /** Latest observation per key, not written yet. */
  #seen = new Map<string, { endpoint: string; wall: number }>();
  /** When each key was last written (monotonic ms). */
  #writtenAt = new Map<string, number>();

  /** Creates the memory over a trust store. */
  constructor(store: RememberedStore, options: EndpointMemoryOptions = {}) {
    this.#store = store;
    this.#now = options.now ?? (() => performance.now());
    this.#wallNow = options.wallNow ?? Date.now;
  }

  /** Notes that a peer was authenticated at `endpoint` just now; untrusted keys are ignored. */
  observe(keyHex: string, endpoint: string): void {
    if (this.#store.get(keyHex) === undefined) return;
    this.#seen.set(keyHex, { endpoint, wall: this.#wallNow() });
  }

  /**
   * Writes every peer whose endpoint moved (or whose `last_seen` got old)
   * and whose last write is a minute old, in one write; with `force`, the
   * minute is not waited for (the daemon is stopping). Returns how many
   * peers were written.
   */
  async flush(options: { force?: boolean } = {}): Promise<number> {
    const now = this.#now();
    for (const [key, at] of this.#writtenAt) {
      if (now - at >= REMEMBER_MIN_INTERVAL_MS) this.#writtenAt.delete(key);
    }
    const due = new Map<string, SeenAt>();
    for (const [key, seen] of this.#seen) {
      const entry = this.#store.get(key);
      const stored = entry?.last_seen === undefined ? NaN : Date.parse(entry.last_seen);
      const needed = entry !== undefined &&
        (entry.endpoint !== seen.endpoint || !(seen.wall - stored < LAST_SEEN_REFRESH_MS));
      if (!needed) {
        this.#seen.delete(key);
        continue;
      }
      // Held back, not dropped: the latest endpoint lands once the minute is over.
      if (options.force !== true && this.#writtenAt.has(key)) continue;
      due.set(key, { endpoint: seen.endpoint, last_seen: new Date(seen.wall).toISOString() });
      this.#seen.delete(key);
      this.#writtenAt.set(key, now);
    }
    if (due.size === 0) return 0;
    await this.#store.remember(due);
    return due.size;
  }
}
