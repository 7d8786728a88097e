/**
 * The sending half of a connection (quic-go's `SendStream`): the send
 * buffer and the writers waiting for room in it, the scoreboard of segments
 * in flight, the RTO estimator, loss detection and recovery, congestion
 * control (behind {@linkcode CongestionControl}), the peer's window and
 * zero-window probing, and our FIN. It never changes the connection's
 * state: it says when our FIN was acknowledged, and {@linkcode Connection}
 * moves; the connection also decides in which states it may send.
 *
 * @module
 */

import { SEG_ACK, SEG_FIN, SEG_PROBE, type StreamSegment } from "../wire/stream_segment.ts";
import type { Budget } from "./budget.ts";
import type { AckEvent, CongestionControl, CongestionFactory, LossEvent } from "./congestion.ts";
import type { Deadlines } from "./deadlines.ts";
import type { StreamError } from "./error.ts";
import type { StreamLimits, StreamTimers } from "./options.ts";
import { Pacer } from "./pacer.ts";
import { RtoEstimator } from "./rto.ts";
import { type AckResult, Scoreboard, type TxSegment } from "./scoreboard.ts";
import { SendBuffer } from "./send_buffer.ts";

/** What the sending half needs from its connection. @internal */
export interface SenderInit {
  /** Our maximum segment size (data bytes), before the peer's is known. */
  mss: number;
  /** Bytes in flight at most, whatever the congestion window (Infinity: no cap but the send buffer). */
  maxFlight: number;
  /** Caps. */
  limits: StreamLimits;
  /** Timers. */
  timers: StreamTimers;
  /** The peer's shared budget for bytes waiting to be sent. */
  budget: Budget;
  /** The connection's deadlines; this half keeps `rto`, `loss`, `persist` and `pace`. */
  at: Deadlines;
  /** Send partial segments at once instead of waiting for outstanding data (no Nagle). */
  noDelay: boolean;
  /** Creates the congestion controller. */
  congestion: CongestionFactory;
  /** The clock at creation (ms). */
  now: number;
  /** Sends one segment; the connection adds the ACK fields and the window. */
  emit(flags: number, seq: number, parts: readonly Uint8Array[]): void;
  /** Makes a budget waiter that runs `mark` inside the connection's next (or current) run. */
  wakeLater(mark: () => void): () => void;
}

/** The sending half's counters, for {@linkcode Connection.stats}. @internal */
export interface SenderStats {
  /** Data bytes per segment we send. */
  mss: number;
  /** Bytes sent and neither acknowledged, SACKed nor deemed lost. */
  bytesInFlight: number;
  /** Bytes the peer's window still admits beyond what we sent. */
  peerWindow: number;
  /** Segments retransmitted. */
  retransmits: number;
  /** Data bytes retransmitted. */
  retransmittedBytes: number;
  /** Zero-window probes sent. */
  probes: number;
  /** Data bytes sent once. */
  sent: number;
  /** Bytes written and not yet acknowledged. */
  sendBuffered: number;
}

interface PendingWrite {
  bytes: Uint8Array;
  resolve(): void;
  reject(e: StreamError): void;
}

const DUP_THRESH = 3;
const NONE: readonly Uint8Array[] = [];

/** Send buffer, retransmission and congestion state of one connection. @internal */
export class Sender {
  #h: SenderInit;
  #at: Deadlines;
  #sb = new SendBuffer(1);
  #board = new Scoreboard();
  #waiter: () => void;
  #released = false;
  #pumpLater = false;
  #una = 1;
  #nxt = 1;
  #peerRight = 1;
  #smss: number;
  #cc: CongestionControl;
  #pacer: Pacer;
  #rto: RtoEstimator;
  #dupAcks = 0;
  #cwndLimited = false;
  #finQueued = false;
  #finSeq = -1;
  #writes: PendingWrite[] = [];
  #held = 0;
  #lastDataAt: number;
  #persistCount = 0;
  #ack: AckResult = { acked: 0, sacked: 0, newest: -1 };
  #ackEvent: AckEvent = { acked: 0, una: 1, flight: 0, limited: false, highSeq: 1, rtt: -1 };
  #lossEvent: LossEvent = { una: 1, flight: 0, highSeq: 1 };
  #retransmits = 0;
  #retransmittedBytes = 0;
  #probes = 0;
  #sent = 0;

  /** Starts with our MSS and the initial RTO; {@linkcode Sender.learnPeer} adjusts both. */
  constructor(init: SenderInit) {
    this.#h = init;
    this.#at = init.at;
    this.#waiter = init.wakeLater(() => this.#pumpLater = true);
    this.#lastDataAt = init.now;
    const t = init.timers;
    this.#rto = new RtoEstimator({
      initialMs: t.initialRtoMs,
      minMs: t.minRtoMs,
      maxMs: t.maxRtoMs,
      granularityMs: 1,
    });
    this.#smss = init.mss;
    this.#cc = this.#newController();
    this.#pacer = new Pacer(this.#smss);
  }

  /** The RTO estimator (the connection times its SYN with it too). */
  get rto(): RtoEstimator {
    return this.#rto;
  }

  /** The congestion controller. */
  get cc(): CongestionControl {
    return this.#cc;
  }

  /** Next sequence number to send (SND.NXT). */
  get nxt(): number {
    return this.#nxt;
  }

  /** Nothing in flight and no zero-window probing: keepalives may run. */
  get quiet(): boolean {
    return this.#board.length === 0 && this.#at.persist === Infinity;
  }

  /** The peer's window and MSS from its SYN (or SYN-ACK). */
  learnPeer(window: number, peerMss: number): void {
    this.#peerRight = 1 + window;
    const smss = Math.min(this.#h.mss, Math.max(peerMss, 64));
    if (smss !== this.#smss) {
      this.#smss = smss;
      this.#cc = this.#newController();
      this.#pacer = new Pacer(smss);
    }
  }

  /**
   * Takes what fits of `bytes` into the send buffer; the rest waits for
   * room, behind earlier writes. Returns null when all of it was taken,
   * else a promise that resolves once it was.
   */
  write(bytes: Uint8Array): Promise<void> | null {
    if (this.#writes.length === 0) {
      const room = this.#room();
      if (room >= bytes.length) {
        this.#accept(bytes);
        return null;
      }
      if (room > 0) {
        this.#accept(bytes.subarray(0, room));
        bytes = bytes.subarray(room);
      }
    }
    const pending = new Promise<void>((resolve, reject) => {
      this.#writes.push({ bytes, resolve, reject });
    });
    this.#h.budget.wait(this.#waiter);
    return pending;
  }

  /**
   * If room may have come free (an ACK, the budget), moves waiting writes
   * into the send buffer. Returns whether it looked, so that the
   * connection sends what it can.
   */
  pump(): boolean {
    if (!this.#pumpLater) return false;
    this.#pumpLater = false;
    while (this.#writes.length > 0) {
      const room = this.#room();
      if (room <= 0) break;
      const w = this.#writes[0]!;
      if (w.bytes.length <= room) {
        this.#accept(w.bytes);
        this.#writes.shift();
        w.resolve();
      } else {
        this.#accept(w.bytes.subarray(0, room));
        w.bytes = w.bytes.subarray(room);
      }
    }
    if (this.#writes.length === 0) this.#h.budget.unwait(this.#waiter);
    return true;
  }

  /** Sends our FIN once everything written went out. */
  queueFin(): void {
    this.#finQueued = true;
  }

  /**
   * The cumulative part of an ACK that acknowledges nothing beyond what we
   * sent: the peer's window, newly acknowledged data, duplicate ACKs and
   * the RTO timer. Returns whether it acknowledged our FIN.
   */
  onCumulativeAck(seg: StreamSegment, now: number): boolean {
    const ack = seg.ack;
    // Receivers never move their right edge left, so the largest one seen
    // is current even when ACKs arrive out of order.
    const right = ack + seg.window;
    const grew = right > this.#peerRight;
    if (grew) {
      this.#peerRight = right;
      this.#persistCount = 0;
    }
    const out = this.#ack;
    out.acked = 0;
    out.sacked = 0;
    out.newest = -1;
    const board = this.#board;
    if (ack > this.#una) {
      board.ackTo(ack, out);
      this.#una = ack;
      this.#dupAcks = 0;
      this.#sb.release(Math.min(ack, this.#sb.end));
      this.#syncHeld();
      if (this.#writes.length > 0) this.#pumpLater = true;
      // RFC 6298 (5.2), (5.3).
      this.#at.rto = board.length > 0 ? now + this.#rto.rto : Infinity;
      return this.#finSeq >= 0 && ack > this.#finSeq;
    }
    if (
      ack === this.#una && board.length > 0 && seg.data.length === 0 &&
      (seg.flags & (SEG_FIN | SEG_PROBE)) === 0 && !grew
    ) {
      this.#dupAcks++;
    }
    return false;
  }

  /**
   * The rest of the same ACK: its SACK blocks, an RTT sample unless the
   * peer's timer sent it (`timerDriven`), congestion control and the loss
   * rules.
   */
  onAckInfo(seg: StreamSegment, now: number, timerDriven: boolean): void {
    const out = this.#ack;
    const board = this.#board;
    for (const b of seg.sack) {
      const s = Math.max(b.start, this.#una);
      const e = Math.min(b.end, this.#nxt);
      if (e > s) board.sack(s, e, out);
    }
    const e = this.#ackEvent;
    e.rtt = -1;
    // Karn: only segments sent once time a round trip (see AckResult).
    if (out.newest >= 0 && !timerDriven) {
      e.rtt = now - out.newest;
      this.#rto.sample(e.rtt);
      board.delivered(out.newest, now);
    }
    e.acked = out.acked;
    e.una = this.#una;
    e.flight = this.#nxt - this.#una;
    e.limited = this.#cwndLimited;
    e.highSeq = this.#nxt;
    this.#cc.onAckReceived(e);
    this.detectLosses(now);
  }

  /**
   * Runs the loss rules; fast-retransmits the first lost segment, whatever
   * cwnd says, when they found a loss that starts a new recovery episode.
   */
  detectLosses(now: number): void {
    const board = this.#board;
    if (board.length === 0) {
      this.#at.loss = Infinity;
      return;
    }
    const srtt = this.#rto.srtt ?? this.#rto.rto;
    this.#at.loss = board.detectLosses(
      DUP_THRESH * this.#smss,
      this.#dupAcks,
      Math.max(1, srtt / 4),
      now,
    );
    if (board.lostCount === 0 || !this.#cc.onLossDetected(this.#loss())) return;
    const first = board.nextLost();
    if (first !== undefined) this.#retransmit(first, now);
  }

  /** The retransmission timer expired once the connection is open. */
  onRto(now: number): void {
    const board = this.#board;
    if (board.length === 0) {
      this.#at.rto = Infinity;
      return;
    }
    // RFC 6298 (5.4)-(5.6), RFC 5681 (4) loss window, RFC 6582 recover.
    this.#cc.onRetransmissionTimeout(this.#loss());
    board.markAllLost();
    this.#at.loss = Infinity;
    this.#dupAcks = 0;
    this.#rto.backoff();
    this.#at.rto = now + this.#rto.rto;
    const first = board.nextLost();
    if (first !== undefined) this.#retransmit(first, now);
  }

  /** Sends a zero-window probe when the persist timer ran out. */
  probe(now: number): void {
    if (now < this.#at.persist) return;
    this.#probes++;
    this.#persistCount++;
    this.#at.persist = now + this.#persistInterval();
    this.#h.emit(SEG_ACK | SEG_PROBE, this.#nxt, NONE);
  }

  /**
   * Sends what cwnd, the peer's window, the pacer and Nagle allow: lost
   * segments first, then new data, then the FIN.
   */
  output(now: number): void {
    const cc = this.#cc;
    const board = this.#board;
    const sb = this.#sb;
    const smss = this.#smss;
    const pacer = this.#pacer;
    const rate = Pacer.rate(cc.cwnd, cc.ssthresh, this.#rto.srtt);
    let blocked = false;
    let paceAt = Infinity;
    while (board.lostCount > 0) {
      const seg = board.nextLost();
      if (seg === undefined) break;
      const len = seg.end - seg.start;
      if (cc.cwnd - board.pipe < Math.min(len, smss)) {
        blocked = true;
        break;
      }
      const wait = pacer.delay(len, rate, now);
      if (wait > 0) {
        paceAt = now + wait;
        blocked = true;
        break;
      }
      this.#retransmit(seg, now);
    }
    if (!blocked && sb.end > this.#nxt) {
      if (board.length === 0 && now - this.#lastDataAt > this.#rto.rto) cc.onIdleRestart();
      for (;;) {
        const avail = sb.end - this.#nxt;
        if (avail <= 0) break;
        const wnd = this.#peerRight - this.#nxt;
        if (wnd <= 0) break;
        const len = Math.min(smss, avail, wnd);
        if (cc.cwnd - board.pipe < len) {
          blocked = true;
          break;
        }
        // Nagle (RFC 896) and sender silly-window avoidance: a short
        // segment waits while data is outstanding, unless we are closing.
        if (len < smss && board.length > 0 && !this.#h.noDelay && !this.#finQueued) break;
        // Paced: the window is not filled yet, only spread over the round trip.
        const wait = pacer.delay(len, rate, now);
        if (wait > 0) {
          paceAt = now + wait;
          blocked = true;
          break;
        }
        pacer.spend(len);
        const seq = this.#nxt;
        board.add(seq, seq + len, false, now);
        this.#h.emit(SEG_ACK, seq, sb.views(seq, len));
        this.#nxt = seq + len;
        this.#sent += len;
        this.#lastDataAt = now;
      }
    }
    this.#cwndLimited = blocked;
    this.#at.pace = paceAt;
    if (this.#finQueued && this.#finSeq < 0 && this.#writes.length === 0 && this.#nxt === sb.end) {
      const seq = this.#nxt;
      this.#finSeq = seq;
      board.add(seq, seq + 1, true, now);
      this.#h.emit(SEG_ACK | SEG_FIN, seq, NONE);
      this.#nxt = seq + 1;
    }
    if (sb.end > this.#nxt && board.length === 0 && this.#peerRight <= this.#nxt) {
      if (this.#at.persist === Infinity) this.#at.persist = now + this.#persistInterval();
    } else {
      this.#at.persist = Infinity;
    }
    if (board.length > 0 && this.#at.rto === Infinity) this.#at.rto = now + this.#rto.rto;
  }

  /** Fails every waiting write with `error`. */
  fail(error: StreamError): void {
    for (const w of this.#writes.splice(0)) w.reject(error);
  }

  /** Forgets everything in flight and buffered (TIME_WAIT: nothing is left to send). */
  clear(): void {
    this.#board.clear();
    this.#sb.clear();
    this.#syncHeld();
  }

  /** Forgets everything and gives our share of the peer's budget back. */
  release(): void {
    this.#board.clear();
    this.#sb.clear();
    this.#h.budget.charge(this.#held, 0);
    this.#held = 0;
    this.#released = true;
    this.#h.budget.unwait(this.#waiter);
  }

  /** Counters for diagnostics. */
  stats(): SenderStats {
    return {
      mss: this.#smss,
      bytesInFlight: this.#board.pipe,
      peerWindow: Math.max(0, this.#peerRight - this.#nxt),
      retransmits: this.#retransmits,
      retransmittedBytes: this.#retransmittedBytes,
      probes: this.#probes,
      sent: this.#sent,
      sendBuffered: this.#sb.size,
    };
  }

  #newController(): CongestionControl {
    return this.#h.congestion({
      mss: this.#smss,
      maxWindow: Math.min(Math.max(this.#h.limits.sendBuffer, 4 * this.#smss), this.#h.maxFlight),
    });
  }

  /** The loss event of this moment (reused between calls). */
  #loss(): LossEvent {
    const e = this.#lossEvent;
    e.una = this.#una;
    e.flight = this.#nxt - this.#una;
    e.highSeq = this.#nxt;
    return e;
  }

  #room(): number {
    const held = this.#sb.size;
    return Math.min(this.#h.limits.sendBuffer - held, this.#h.budget.room(held));
  }

  #accept(bytes: Uint8Array): void {
    this.#sb.push(bytes);
    this.#syncHeld();
  }

  #syncHeld(): void {
    if (this.#released) return;
    const held = this.#sb.size;
    this.#h.budget.charge(this.#held, held);
    this.#held = held;
  }

  #retransmit(seg: TxSegment, now: number): void {
    const len = seg.end - seg.start;
    const parts = seg.fin ? NONE : this.#sb.views(seg.start, len);
    this.#pacer.spend(len);
    this.#h.emit(seg.fin ? SEG_ACK | SEG_FIN : SEG_ACK, seg.start, parts);
    this.#board.retransmitted(seg, now);
    this.#retransmits++;
    if (!seg.fin) this.#retransmittedBytes += len;
    // Retransmitting the oldest segment restarts the timer, so that a
    // recovery longer than one RTO does not also time out.
    if (this.#at.rto === Infinity || seg.start === this.#una) this.#at.rto = now + this.#rto.rto;
  }

  #persistInterval(): number {
    return Math.min(this.#rto.rto * 2 ** this.#persistCount, this.#h.timers.persistMaxMs);
  }
}
