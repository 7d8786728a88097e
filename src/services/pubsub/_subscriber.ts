/**
 * One subscriber at the broker (a subscription stream) and the bounded
 * queue in front of its stream. Fan-out never waits for it: a frame goes
 * into the queue if the queue's caps and the shared budget allow, else the
 * event is dropped and counted; as soon as there is room again an OVERFLOW frame with the exact
 * count and seq range goes in, ahead of any later EVENT. Its own writer
 * drains the queue as fast as the stream's backpressure allows.
 *
 * @module
 */
import type { PeerIdentity } from "../../session/peer_identity.ts";
import type { Budget, Connection } from "../../stream/mod.ts";
import { encodeFrame, OVERFLOW_FRAME_SIZE } from "../../wire/pubsub_frame.ts";

/** Caps of one subscription's queue. */
export interface QueueCaps {
  /** Frames queued at most. */
  queueFrames: number;
  /** Bytes queued at most. */
  queueBytes: number;
}

interface Drop {
  count: number;
  first: number;
  last: number;
}

const EMPTY = new Uint8Array(0);

/** One subscriber: its stream, its queue, and what it took or lost. */
export class Subscriber {
  /** Its stream. */
  readonly conn: Connection;
  /** The subscriber. */
  readonly peer: PeerIdentity;
  /** The pattern it subscribed with. */
  readonly pattern: string;
  /** Events queued for it so far. */
  delivered = 0;
  /** Events dropped for it so far. */
  dropped = 0;
  #caps: QueueCaps;
  #budget: Budget;
  #onFailed: () => void;
  #queue: Uint8Array[] = [];
  #head = 0;
  #bytes = 0;
  #pumping = false;
  #closed = false;
  #drop: Drop | null = null;

  /** A subscription whose queue draws on `budget`; `onFailed` hears of a failed write. */
  constructor(
    conn: Connection,
    peer: PeerIdentity,
    pattern: string,
    shared: { caps: QueueCaps; budget: Budget; onFailed: () => void },
  ) {
    this.conn = conn;
    this.peer = peer;
    this.pattern = pattern;
    this.#caps = shared.caps;
    this.#budget = shared.budget;
    this.#onFailed = shared.onFailed;
  }

  /** Frames waiting (the one being written included). */
  get frames(): number {
    return this.#queue.length - this.#head;
  }

  /** Bytes waiting. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether it has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Queues a frame whatever the caps (the confirmation, ahead of every event). */
  push(frame: Uint8Array): void {
    this.#queue.push(frame);
    this.#budget.charge(this.#bytes, this.#bytes + frame.length);
    this.#bytes += frame.length;
    this.#kick();
  }

  /** Queues event `seq` if there is room; else drops and counts it, and returns false. */
  offer(frame: Uint8Array, seq: number): boolean {
    if (this.#drop !== null) this.#flushOverflow();
    if (this.#drop !== null || !this.#room(frame.length)) {
      if (this.#drop === null) this.#drop = { count: 1, first: seq, last: seq };
      else {
        this.#drop.count++;
        this.#drop.last = seq;
      }
      this.dropped++;
      return false;
    }
    this.delivered++;
    this.push(frame);
    return true;
  }

  /** Ends it: forgets the queue and gives its bytes back to the budget. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.charge(this.#bytes, 0);
    this.#queue = [];
    this.#head = 0;
    this.#bytes = 0;
  }

  #room(n: number): boolean {
    return this.frames < this.#caps.queueFrames && this.#bytes + n <= this.#caps.queueBytes &&
      n <= this.#budget.room(this.#bytes);
  }

  /** Queues the pending OVERFLOW notice if it fits now. */
  #flushOverflow(): void {
    const d = this.#drop;
    if (d === null || !this.#room(OVERFLOW_FRAME_SIZE)) return;
    this.#drop = null;
    this.push(
      encodeFrame({ kind: "overflow", dropped: d.count, firstSeq: d.first, lastSeq: d.last }),
    );
  }

  #kick(): void {
    if (this.#pumping || this.#closed) return;
    this.#pumping = true;
    void this.#pump();
  }

  /** Writes the queue to the stream, one frame at a time, as backpressure allows. */
  async #pump(): Promise<void> {
    try {
      while (!this.#closed && this.#head < this.#queue.length) {
        const frame = this.#queue[this.#head]!;
        await this.conn.write(frame);
        if (this.#closed) return;
        this.#queue[this.#head++] = EMPTY; // written: the stream holds it now, not us
        this.#budget.charge(this.#bytes, this.#bytes - frame.length);
        this.#bytes -= frame.length;
        const q = this.#queue;
        if (this.#head === q.length || (this.#head >= 64 && this.#head * 2 >= q.length)) {
          this.#queue = q.slice(this.#head);
          this.#head = 0;
        }
        this.#flushOverflow();
      }
    } catch {
      // The stream failed (reset, or closed by us): the subscription is over.
      this.#onFailed();
    } finally {
      this.#pumping = false;
    }
  }
}
