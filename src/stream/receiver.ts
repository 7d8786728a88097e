/**
 * The receiving half of a connection (quic-go's `ReceiveStream`): the
 * reassembly buffer, the window we advertise and its auto-tuning within the
 * peer's shared budget, delayed and immediate ACKs, the peer's FIN, and the
 * readers waiting for data. It never changes the connection's state: it
 * says when the peer's FIN is complete, and {@linkcode Connection} moves.
 *
 * @module
 */

import { STREAM_ACK_BYTES } from "../constants.ts";
import { type SackBlock, SEG_FIN, type StreamSegment } from "../wire/stream_segment.ts";
import type { Budget } from "./budget.ts";
import type { Deadlines } from "./deadlines.ts";
import type { StreamError } from "./error.ts";
import type { StreamLimits, StreamTimers } from "./options.ts";
import { Insert, ReceiveBuffer } from "./receive_buffer.ts";

/** What the receiving half needs from its connection. @internal */
export interface ReceiverInit {
  /** Our maximum segment size (data bytes). */
  mss: number;
  /** Caps. */
  limits: StreamLimits;
  /** Timers. */
  timers: StreamTimers;
  /** The peer's shared budget for received bytes (advertised windows). */
  budget: Budget;
  /** The connection's deadlines; this half keeps `ack`. */
  at: Deadlines;
  /** Makes a budget waiter that runs `mark` inside the connection's next (or current) run. */
  wakeLater(mark: () => void): () => void;
  /** The clock at creation (ms). */
  now: number;
}

/** The receiving half's counters, for {@linkcode Connection.stats}. @internal */
export interface ReceiverStats {
  /** Bytes our advertised window admits beyond what we received. */
  receiveWindow: number;
  /** Data bytes received in order. */
  received: number;
  /** Bytes received and not yet read (in order or held above a gap). */
  receiveBuffered: number;
}

interface Reader {
  resolve(v: Uint8Array | null): void;
  reject(e: StreamError): void;
}

const NO_SACK: readonly SackBlock[] = [];

/** Reassembly, receive window and ACK obligations of one connection. @internal */
export class Receiver {
  #h: ReceiverInit;
  #at: Deadlines;
  #rb: ReceiveBuffer;
  #waiter: () => void;
  #open = false;
  #released = false;
  #growLater = false;
  #peerFin = -1;
  #finReceived = false;
  #advRight = 1;
  #sentRight = 1;
  /** `next` and the time when a whole window had last arrived (or the start). */
  #windowMark = 0;
  #windowMarkTime: number;
  #windowLimit: number;
  #held = 0;
  #ackPendingBytes = 0;
  /** The most data one segment brought in order: every second such segment is acknowledged at once. */
  #largestSegment = 0;
  #ackNow = false;
  #readers: Reader[] = [];
  #received = 0;

  /** Starts with a window of the reserve (at least 4 MSS, at most the cap). */
  constructor(init: ReceiverInit) {
    this.#h = init;
    this.#at = init.at;
    this.#rb = new ReceiveBuffer(1, init.limits.maxOutOfOrder);
    this.#windowMarkTime = init.now;
    this.#waiter = init.wakeLater(() => this.#growLater = true);
    this.#windowLimit = Math.min(
      init.limits.receiveBuffer,
      Math.max(init.limits.reserve, 4 * init.mss),
    );
    this.#growWindow(true);
  }

  /** Next sequence number expected in order (RCV.NXT). */
  get next(): number {
    return this.#rb.next;
  }

  /** Whether everything up to and including the peer's FIN arrived. */
  get finReceived(): boolean {
    return this.#finReceived;
  }

  /** Whether an ACK is owed at once. */
  get ackNow(): boolean {
    return this.#ackNow;
  }

  /** Bytes in order, not yet read. */
  get readable(): number {
    return this.#rb.readable;
  }

  /** Whether readers wait for data. */
  get waiting(): boolean {
    return this.#readers.length > 0;
  }

  /** The connection opened: from now on window updates may ask for an ACK. */
  open(ackNow: boolean): void {
    this.#open = true;
    this.#ackNow = ackNow;
  }

  /** An ACK is owed at once (a probe, a late SYN, an ACK of something never sent). */
  requestAck(): void {
    this.#ackNow = true;
  }

  /** Takes the next chunk in order for the API's `read()`; undefined when none is ready. */
  read(): Uint8Array | undefined {
    const chunk = this.#rb.read();
    this.#consumed();
    return chunk;
  }

  /** Queues a reader for the next chunk (or the end of the stream). */
  wait(reader: Reader): void {
    this.#readers.push(reader);
  }

  /**
   * Takes a segment's data and FIN. Returns true when the peer's FIN is now
   * complete (every byte before it arrived): the connection then changes
   * state and calls {@linkcode Receiver.deliver}.
   */
  onData(seg: StreamSegment, now: number): boolean {
    if (this.#finReceived) {
      this.#ackNow = true; // a retransmission after the FIN: answer so the peer stops
      return false;
    }
    const rb = this.#rb;
    const data = seg.data;
    if ((seg.flags & SEG_FIN) !== 0 && this.#peerFin < 0) {
      const fin = seg.seq + data.length;
      if (fin >= rb.next) this.#peerFin = fin;
    }
    if (data.length > 0) {
      const limit = this.#peerFin >= 0 ? Math.min(this.#advRight, this.#peerFin) : this.#advRight;
      const before = rb.next;
      const r = rb.insert(seg.seq, data, limit);
      if (r === Insert.InOrder) {
        this.#ackPendingBytes += data.length;
        if (data.length > this.#largestSegment) this.#largestSegment = data.length;
        // Every second full-sized segment (RFC 5681 4.2), or a stretch ACK's
        // worth of small ones.
        const due = Math.max(STREAM_ACK_BYTES, 2 * this.#largestSegment);
        if (this.#ackPendingBytes >= due) this.#ackNow = true;
      } else {
        // Out of order, duplicate, gap filled or beyond the window: at once
        // (RFC 5681 4.2), so that the sender sees duplicate ACKs and SACKs.
        this.#ackNow = true;
      }
      if (rb.next > before) {
        this.#received += rb.next - before;
        this.deliver();
      }
      this.#autotune(now);
    }
    if (this.#peerFin < 0 || rb.next !== this.#peerFin) return false;
    rb.consumeFin();
    this.#finReceived = true;
    this.#ackNow = true;
    this.#h.budget.unwait(this.#waiter);
    return true;
  }

  /** Hands data (or the end of the stream) to waiting readers. */
  deliver(): void {
    while (this.#readers.length > 0) {
      const chunk = this.#rb.read();
      if (chunk === undefined) break;
      this.#readers.shift()!.resolve(chunk);
      this.#consumed();
    }
    if (this.#readers.length > 0 && this.#finReceived && this.#rb.readable === 0) {
      for (const r of this.#readers.splice(0)) r.resolve(null);
    }
  }

  /** Widens the window if the budget woke us during the run (see `wakeLater`). */
  grow(): void {
    if (!this.#growLater) return;
    this.#growLater = false;
    this.#consumed();
  }

  /** Marks the delayed ACK due when its timer ran out. */
  tick(now: number): void {
    if (now >= this.#at.ack) this.#ackNow = true;
  }

  /** Arms the delayed-ACK timer for data acknowledged by nothing yet. */
  delayAck(now: number): void {
    if (this.#ackPendingBytes > 0 && this.#at.ack === Infinity) {
      this.#at.ack = now + this.#h.timers.delayedAckMs;
    }
  }

  /**
   * SACK blocks for an ACK we send now (only a pure ACK carries them).
   * An ACK that owes SACK information but cannot carry it leaves the
   * obligation for a pure ACK; any other settles what we owed.
   */
  sackFor(pure: boolean): readonly SackBlock[] {
    const rb = this.#rb;
    const sack = pure && rb.heldSegments > 0 ? rb.sackBlocks() : NO_SACK;
    if (sack.length > 0 || rb.heldSegments === 0) {
      this.#ackNow = false;
      this.#ackPendingBytes = 0;
      this.#at.ack = Infinity;
    }
    return sack;
  }

  /** The window to advertise in a segment we send now; the peer will know of it. */
  announceWindow(): number {
    const window = Math.max(0, this.#advRight - this.#rb.next);
    this.#sentRight = this.#rb.next + window;
    return window;
  }

  /** Fails every waiting reader with `error`. */
  fail(error: StreamError): void {
    for (const r of this.#readers.splice(0)) r.reject(error);
  }

  /** Ends every waiting reader's stream. */
  end(): void {
    for (const r of this.#readers.splice(0)) r.resolve(null);
  }

  /**
   * Gives our share of the peer's budget back. An orderly close keeps the
   * unread data readable: it belongs to the reader now, no longer to the
   * peer's budget.
   */
  release(discardReceived: boolean): void {
    this.#ackNow = false;
    if (discardReceived) this.#rb.clear();
    this.#h.budget.charge(this.#held, 0);
    this.#held = 0;
    this.#released = true;
    this.#h.budget.unwait(this.#waiter);
  }

  /** Counters for diagnostics. */
  stats(): ReceiverStats {
    const rb = this.#rb;
    return {
      receiveWindow: Math.max(0, this.#advRight - rb.next),
      received: this.#received,
      receiveBuffered: rb.readable + rb.heldBytes,
    };
  }

  /**
   * Receive-window auto-tuning: a connection starts with a window of its
   * reserve (idle streams hold little of the peer's budget) and doubles it,
   * up to `receiveBuffer`, whenever it may limit the sender: more than a
   * quarter of it is unread (the reader is behind), or a whole window
   * arrived within `windowGrowthMs` (a bulk transfer, however fast
   * the reader; the receiver cannot see the sender's round trip). A busy
   * stream's window so stays ahead of its congestion window, and a stream
   * of requests and answers keeps its reserve.
   */
  #autotune(now: number): void {
    const cap = this.#h.limits.receiveBuffer;
    if (this.#windowLimit >= cap) return;
    const next = this.#rb.next;
    const unread = next - this.#rb.consumed;
    let bulk = false;
    if (next - this.#windowMark >= this.#windowLimit) {
      // A whole window since the mark: quickly (bulk), or not (start again).
      bulk = now - this.#windowMarkTime < this.#h.timers.windowGrowthMs;
      this.#windowMark = next;
      this.#windowMarkTime = now;
    }
    if (unread <= this.#windowLimit / 4 && !bulk) return;
    this.#windowLimit = Math.min(cap, 2 * this.#windowLimit);
    this.#growWindow(false);
  }

  /**
   * Recomputes what the receive side holds against the budget, then widens
   * the window; the peer hears of it at once only when the window it knows
   * of at least doubled by at least min(buffer / 2, 2 MSS) — otherwise the
   * next ACK carries it.
   */
  #consumed(): void {
    this.#syncHeld();
    if (!this.#growWindow(false) || !this.#open) return;
    const next = this.#rb.next;
    const known = Math.max(0, this.#sentRight - next);
    const open = this.#advRight - next;
    const threshold = Math.min(this.#windowLimit / 2, 2 * this.#h.mss);
    if (open - known >= threshold && open >= 2 * known) this.#ackNow = true;
  }

  #syncHeld(): void {
    if (this.#released) return;
    const held = this.#advRight - this.#rb.consumed;
    this.#h.budget.charge(this.#held, held);
    this.#held = held;
  }

  /**
   * Moves the advertised right edge towards `consumed + windowLimit`,
   * within the peer's budget, in steps of at least min(buffer / 2, MSS)
   * (receiver silly-window avoidance, RFC 9293 3.8.6.2.2). The right edge
   * never moves left.
   */
  #growWindow(force: boolean): boolean {
    if (this.#finReceived || this.#released) return false;
    const budget = this.#h.budget;
    const consumed = this.#rb.consumed;
    const want = consumed + this.#windowLimit - this.#advRight;
    if (want <= 0) {
      budget.unwait(this.#waiter);
      return false;
    }
    const held = this.#advRight - consumed;
    const grow = Math.min(want, budget.room(held));
    if (grow < want) budget.wait(this.#waiter);
    else budget.unwait(this.#waiter);
    if (grow <= 0) return false;
    if (!force && grow < Math.min(this.#windowLimit / 2, this.#h.mss)) return false;
    this.#advRight += grow;
    this.#syncHeld();
    return true;
  }
}
