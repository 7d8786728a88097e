/**
 * The node's event stream: trust.requested, trust.approved, trust.rejected,
 * trust.revoked, message.received, message.delivered, message.refused,
 * message.expired, peer.up, peer.down, peer.name_conflict,
 * peer.path_changed, and task.received, task.accepted, task.declined,
 * task.progress, task.result, task.expired. Events are numbered;
 * a reader resumes with `after=SEQ`. Kept in a bounded ring in memory.
 *
 * @module
 */

/** Every event type. */
export const EVENT_TYPES = [
  "trust.requested",
  "trust.approved",
  "trust.rejected",
  "trust.revoked",
  "message.received",
  "message.delivered",
  "message.refused",
  "message.expired",
  "peer.up",
  "peer.down",
  "peer.name_conflict",
  "peer.path_changed",
  "task.received",
  "task.accepted",
  "task.declined",
  "task.progress",
  "task.result",
  "task.expired",
] as const;

/** One event type. */
export type EventType = typeof EVENT_TYPES[number];

/** One event. */
export interface NodeEvent {
  /** Monotonic number, from 1. */
  seq: number;
  /** What happened. */
  type: EventType;
  /** ISO time. */
  time: string;
  /** Details (always names the peer where there is one). */
  data: Record<string, unknown>;
}

/** Events kept for readers that resume (at least; up to RING_SLACK more). */
const RING = 10_000;

/** Events dropped at once when the ring is over RING: one shift per this many events, not one each. */
const RING_SLACK = 1_024;

/** Publishes events and lets readers wait for new ones. */
export class EventBus {
  #ring: NodeEvent[] = [];
  #seq = 0;
  #waiters = new Set<() => void>();
  #listeners = new Set<(event: NodeEvent) => void>();

  /** The last event's seq (0 before any). */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Publishes an event. */
  publish(type: EventType, data: Record<string, unknown>): NodeEvent {
    const event = { seq: ++this.#seq, type, time: new Date().toISOString(), data };
    this.#ring.push(event);
    if (this.#ring.length > RING + RING_SLACK) this.#ring.splice(0, this.#ring.length - RING);
    for (const wake of this.#waiters) wake();
    this.#waiters.clear();
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // A listener's failure is its own; the event is published all the same.
      }
    }
    return event;
  }

  /**
   * Calls `listener` with every event published from now on, synchronously
   * inside `publish` (so it must only queue work, never wait); returns the
   * function that stops it.
   */
  listen(listener: (event: NodeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Events with seq > after, oldest first, at most `limit`. */
  since(after: number, limit = RING): NodeEvent[] {
    const oldest = this.#ring[0];
    if (oldest === undefined) return [];
    // Seqs in the ring are consecutive: the first one after `after` is found by arithmetic.
    const first = Math.max(0, Math.floor(after) + 1 - oldest.seq);
    return this.#ring.slice(first, first + limit);
  }

  /** Resolves at the next publish, or when the signal aborts. */
  next(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        signal.removeEventListener("abort", wake);
        this.#waiters.delete(wake);
        resolve();
      };
      this.#waiters.add(wake);
      signal.addEventListener("abort", wake, { once: true });
    });
  }
}
