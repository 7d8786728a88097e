/**
 * The bounded queue between port 444 and the trust service's verifiers.
 * Two lanes: `known` (trusted keys and keys we sent a request to: their
 * accepts and revokes) and `stranger`. Strangers may hold all but a reserve
 * of the places, and any one key only a few, so a flood is dropped at the
 * door instead of growing memory, and a known peer's message always finds a
 * place. The known lane is served first. Items of a key being processed
 * wait in the queue, so a worker never idles behind another's key.
 * Sans-IO: the service decides what an item is and when work runs.
 *
 * @module
 */

/** Which lane an item waits in. */
export type TrustLane = "known" | "stranger";

/** Limits of a {@linkcode TrustQueue}. */
export interface TrustQueueLimits {
  /** Items waiting, at most. */
  max: number;
  /** Of `max`, places only the known lane may take. */
  reserved: number;
  /** Items of one key waiting, at most. */
  perKey: number;
}

interface Entry<T> {
  key: string;
  item: T;
}

/** A two-lane bounded queue keyed by peer key; see the module doc. */
export class TrustQueue<T> {
  #limits: TrustQueueLimits;
  #lanes: Record<TrustLane, Entry<T>[]> = { known: [], stranger: [] };
  #perKey = new Map<string, number>();
  #busy = new Set<string>();

  /** Creates an empty queue with the given limits. */
  constructor(limits: TrustQueueLimits) {
    this.#limits = limits;
  }

  /** Items waiting (not counting those being processed). */
  get size(): number {
    return this.#lanes.known.length + this.#lanes.stranger.length;
  }

  /** Keys whose item is being processed. */
  get busy(): number {
    return this.#busy.size;
  }

  /** Queues `item` for `key`; returns false (nothing queued) when the key's share or the lane is full. */
  admit(key: string, lane: TrustLane, item: T): boolean {
    const { max, reserved, perKey } = this.#limits;
    const mine = this.#perKey.get(key) ?? 0;
    if (mine >= perKey) return false;
    const room = lane === "known" ? max : max - reserved;
    if (this.size >= max || (lane === "stranger" && this.#lanes.stranger.length >= room)) {
      return false;
    }
    this.#lanes[lane].push({ key, item });
    this.#perKey.set(key, mine + 1);
    return true;
  }

  /**
   * Takes the oldest item (known lane first) whose key is not being
   * processed, and marks its key busy until {@linkcode done}.
   */
  take(): { key: string; item: T } | undefined {
    for (const lane of ["known", "stranger"] as const) {
      const entries = this.#lanes[lane];
      const i = entries.findIndex((e) => !this.#busy.has(e.key));
      if (i < 0) continue;
      const [entry] = entries.splice(i, 1) as [Entry<T>];
      const left = (this.#perKey.get(entry.key) ?? 1) - 1;
      if (left === 0) this.#perKey.delete(entry.key);
      else this.#perKey.set(entry.key, left);
      this.#busy.add(entry.key);
      return entry;
    }
    return undefined;
  }

  /** Marks `key` idle again after its item was processed. */
  done(key: string): void {
    this.#busy.delete(key);
  }
}
