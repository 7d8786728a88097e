/**
 * One reliable byte stream: the connection state machine of RFC 9293
 * reduced to what a tunnel between authenticated peers needs (drawn and
 * tabled in `state.ts`; every change goes through `#setState`), opening,
 * orderly close in both directions, reset, keepalives, idle timeout and
 * TIME_WAIT, and the public API. The two directions live in their own
 * files, as quic-go splits a stream: `sender.ts` (send buffer, RFC 6298
 * retransmission timing, SACK-based loss recovery, congestion control
 * behind `congestion.ts`, zero-window probing) and `receiver.ts`
 * (reassembly, the capped and auto-tuned receive window, ACKs).
 *
 * A connection does no I/O and reads no clock of its own: its
 * {@linkcode StreamMux} feeds it segments and timer ticks and carries its
 * segments away. See `mod.ts` for the protocol.
 *
 * @module
 */

import {
  encodeSegmentParts,
  MAX_RESET_REASON,
  type SackBlock,
  SEG_ACK,
  SEG_FIN,
  SEG_PROBE,
  SEG_RST,
  SEG_SYN,
  type StreamSegment,
  SYN_DATA_SIZE,
} from "../wire/stream_segment.ts";
import type { Budget } from "./budget.ts";
import type { CongestionFactory } from "./congestion.ts";
import { Deadlines } from "./deadlines.ts";
import { StreamError } from "./error.ts";
import { NewReno } from "./new_reno.ts";
import type { StreamLimits, StreamTimers } from "./options.ts";
import { Receiver } from "./receiver.ts";
import { Sender } from "./sender.ts";
import { assertTransition, type ConnectionState } from "./state.ts";

/** A connection's counters and estimator state, for diagnostics (`pilot connections`). */
export interface ConnectionStats {
  /** Current state. */
  state: ConnectionState;
  /** Our virtual port. */
  localPort: number;
  /** The peer's virtual port. */
  remotePort: number;
  /** Connection id. */
  connId: number;
  /** Whether we opened it. */
  initiator: boolean;
  /** Data bytes per segment we send (min of ours and the peer's). */
  mss: number;
  /** Congestion window (bytes). */
  cwnd: number;
  /** Slow-start threshold (bytes), null before the first loss. */
  ssthresh: number | null;
  /** Inside a loss-recovery episode (fast recovery). */
  inRecovery: boolean;
  /** Smoothed round-trip time (ms), null before the first sample. */
  srtt: number | null;
  /** Round-trip time variation (ms). */
  rttvar: number;
  /** Current retransmission timeout (ms). */
  rto: number;
  /** Bytes sent and neither acknowledged, SACKed nor deemed lost. */
  bytesInFlight: number;
  /** Bytes the peer's window still admits beyond what we sent. */
  peerWindow: number;
  /** Bytes our advertised window admits beyond what we received. */
  receiveWindow: number;
  /** Segments retransmitted. */
  retransmits: number;
  /** Data bytes retransmitted. */
  retransmittedBytes: number;
  /** Fast recoveries entered (losses found without a timeout). */
  fastRecoveries: number;
  /** Retransmission timeouts. */
  timeouts: number;
  /** Zero-window probes sent. */
  probes: number;
  /** Keepalive probes sent. */
  keepalives: number;
  /** Data bytes sent once (retransmissions not counted). */
  sent: number;
  /** Data bytes received in order. */
  received: number;
  /** Segments sent, of every kind. */
  segmentsSent: number;
  /** Segments received, of every kind. */
  segmentsReceived: number;
  /** Bytes written and not yet acknowledged. */
  sendBuffered: number;
  /** Bytes received and not yet read (in order or held above a gap). */
  receiveBuffered: number;
}

/** What a connection needs from its mux. @internal */
export interface ConnectionHost {
  /** Our maximum segment size (data bytes). */
  readonly mss: number;
  /** Bytes a connection keeps in flight at most (Infinity: no cap but the send buffer). */
  readonly maxFlight: number;
  /** Caps. */
  readonly limits: StreamLimits;
  /** Timers. */
  readonly timers: StreamTimers;
  /** The peer's shared budget for bytes waiting to be sent. */
  readonly sendBudget: Budget;
  /** The peer's shared budget for received bytes (advertised windows). */
  readonly receiveBudget: Budget;
  /** The clock (ms). */
  now(): number;
  /** Carries one encoded segment to the peer. */
  transmit(conn: Connection, segment: Uint8Array): void;
  /** The state changed (from `from` to `conn.state`). */
  changed(conn: Connection, from: ConnectionState): void;
  /** The connection's earliest deadline may have moved earlier. */
  reschedule(conn: Connection): void;
}

/** How the mux creates a connection. @internal */
export interface ConnectionInit {
  /** The mux. */
  host: ConnectionHost;
  /** Our virtual port. */
  localPort: number;
  /** The peer's virtual port. */
  remotePort: number;
  /** Connection id. */
  connId: number;
  /** For an accepted connection: the SYN that opened it. */
  syn?: StreamSegment;
  /** Send partial segments at once instead of waiting for outstanding data (no Nagle). */
  noDelay?: boolean;
  /** Called once when an outgoing connection opens (null) or fails. */
  onOpen?: (error: StreamError | null) => void;
  /** Creates the congestion controller (default: NewReno). */
  congestion?: CongestionFactory | undefined;
}

const newReno: CongestionFactory = (options) => new NewReno(options);

interface CloseWaiter {
  resolve(): void;
  reject(e: StreamError): void;
}

const SEND_STATES: ReadonlySet<ConnectionState> = new Set([
  "established",
  "close-wait",
  "fin-wait-1",
  "closing",
  "last-ack",
]);
const KEEPALIVE_STATES: ReadonlySet<ConnectionState> = new Set([
  "established",
  "close-wait",
  "fin-wait-1",
  "fin-wait-2",
  "closing",
  "last-ack",
]);
const NONE: readonly Uint8Array[] = [];
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const noop = () => {};

function settled<T>(p: Promise<T>): Promise<T> {
  // Callers may ignore a rejection (a fire-and-forget close()); it must
  // never become an unhandled rejection that ends the daemon.
  p.catch(noop);
  return p;
}

function reasonBytes(reason: string): Uint8Array {
  const b = encoder.encode(reason);
  if (b.length <= MAX_RESET_REASON) return b;
  let n = MAX_RESET_REASON;
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--; // keep UTF-8 whole
  return b.subarray(0, n);
}

/**
 * A reliable, ordered, flow- and congestion-controlled byte stream to one
 * port of one peer. Created by {@linkcode StreamMux.connect} and
 * {@linkcode StreamMux.listen}.
 */
export class Connection {
  /** Our virtual port. */
  readonly localPort: number;
  /** The peer's virtual port. */
  readonly remotePort: number;
  /** Connection id (chosen by the opener). */
  readonly connId: number;
  /** Whether we opened it. */
  readonly initiator: boolean;
  /**
   * Settles once the connection is gone (for the side that closed first,
   * after TIME_WAIT): null after an orderly close, else why it ended. Never
   * rejects.
   */
  readonly closed: Promise<StreamError | null>;

  #h: ConnectionHost;
  #state: ConnectionState;
  #onOpen: ((error: StreamError | null) => void) | undefined;
  #resolveClosed!: (v: StreamError | null) => void;
  #error: StreamError | null = null;
  #busy = false;
  #closeWaiters: CloseWaiter[] = [];

  // The two halves and the timers they share.
  #at = new Deadlines();
  #tx: Sender;
  #rx: Receiver;

  // Liveness.
  #lastRecvAt: number;
  #lastKeepaliveAt: number;
  #synAt: number;
  #synRetransmitted = false;

  // Counters.
  #keepalives = 0;
  #segmentsSent = 0;
  #segmentsReceived = 0;

  /** Created by the mux only. @internal */
  constructor(init: ConnectionInit) {
    const h = init.host;
    this.#h = h;
    this.localPort = init.localPort;
    this.remotePort = init.remotePort;
    this.connId = init.connId;
    this.initiator = init.syn === undefined;
    this.#onOpen = init.onOpen;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    const now = h.now();
    this.#lastRecvAt = now;
    this.#lastKeepaliveAt = now;
    this.#synAt = now;
    const wakeLater = (mark: () => void) => this.#wakeLater(mark);
    this.#tx = new Sender({
      mss: h.mss,
      maxFlight: h.maxFlight,
      limits: h.limits,
      timers: h.timers,
      budget: h.sendBudget,
      at: this.#at,
      noDelay: init.noDelay ?? false,
      congestion: init.congestion ?? newReno,
      now,
      emit: (flags, seq, parts) => this.#emit(flags, seq, parts),
      wakeLater,
    });
    this.#rx = new Receiver({
      mss: h.mss,
      limits: h.limits,
      timers: h.timers,
      budget: h.receiveBudget,
      at: this.#at,
      wakeLater,
      now,
    });
    this.#at.open = now + h.timers.connectTimeoutMs;
    this.#at.rto = now + this.#tx.rto.rto;
    // The diagram's two entry points: set, not transitions.
    this.#state = init.syn === undefined ? "syn-sent" : "syn-received";
    if (init.syn !== undefined) this.#learnPeer(init.syn);
    this.#emitSyn();
  }

  /** Current state. */
  get state(): ConnectionState {
    return this.#state;
  }

  // ---- Public API ----

  /**
   * Queues `bytes` for sending. Resolves once all of them are in the send
   * buffer (backpressure: not before there is room); rejects with a
   * {@linkcode StreamError} when the connection is reset or this direction
   * was closed. The connection keeps a reference to `bytes` until the peer
   * acknowledges them: do not modify them after the call.
   */
  write(bytes: Uint8Array): Promise<void> {
    const err = this.#writeError();
    if (err !== null) return settled(Promise.reject(err));
    if (bytes.length === 0) return Promise.resolve();
    let pending: Promise<void> | null = null;
    this.#run((now) => {
      pending = this.#tx.write(bytes);
      this.#output(now);
    });
    return pending === null ? Promise.resolve() : settled(pending);
  }

  /**
   * The next chunk of received bytes in order (usually a view of the
   * segment, no copy), or null at the end of the stream (the peer closed
   * its direction). Rejects with a {@linkcode StreamError} when the
   * connection was reset.
   */
  read(): Promise<Uint8Array | null> {
    const rx = this.#rx;
    if (!rx.waiting) {
      if (rx.readable > 0) {
        let chunk: Uint8Array | undefined;
        this.#run(() => chunk = rx.read());
        return Promise.resolve(chunk!);
      }
      if (rx.finReceived) return Promise.resolve(null);
      if (this.#error !== null) return settled(Promise.reject(this.#error));
      if (this.#state === "closed") return Promise.resolve(null);
    }
    return settled(new Promise((resolve, reject) => rx.wait({ resolve, reject })));
  }

  /**
   * Closes our direction (half-close): everything written is still
   * delivered, then a FIN. Reading goes on until the peer closes too.
   * Resolves when the peer acknowledged the FIN; rejects with a
   * {@linkcode StreamError} if the connection is reset first.
   */
  close(): Promise<void> {
    const s = this.#state;
    if (s === "syn-sent" || s === "syn-received") {
      this.reset("closed before open");
      return Promise.resolve();
    }
    if (s === "closed" || s === "time-wait" || s === "fin-wait-2") {
      return this.#error === null ? Promise.resolve() : settled(Promise.reject(this.#error));
    }
    const p = settled(
      new Promise<void>((resolve, reject) => {
        this.#closeWaiters.push({ resolve, reject });
      }),
    );
    if (s === "established" || s === "close-wait") {
      this.#run((now) => {
        this.#setState(s === "established" ? "fin-wait-1" : "last-ack");
        this.#tx.queueFin();
        this.#output(now);
      });
    }
    return p;
  }

  /** Aborts the connection: sends a reset with `reason` and fails every pending operation. */
  reset(reason = "reset"): void {
    if (this.#state === "closed") return;
    this.#run(() => {
      const sendRst = this.#state !== "time-wait";
      this.#terminate(new StreamError("reset", reason), sendRst ? reason : null);
    });
  }

  /** Counters and estimator state. */
  stats(): ConnectionStats {
    const tx = this.#tx.stats();
    const rx = this.#rx.stats();
    const cc = this.#tx.cc;
    const rto = this.#tx.rto;
    return {
      state: this.#state,
      localPort: this.localPort,
      remotePort: this.remotePort,
      connId: this.connId,
      initiator: this.initiator,
      mss: tx.mss,
      cwnd: cc.cwnd,
      ssthresh: Number.isFinite(cc.ssthresh) ? cc.ssthresh : null,
      inRecovery: cc.inRecovery,
      srtt: rto.srtt,
      rttvar: rto.rttvar,
      rto: rto.rto,
      bytesInFlight: tx.bytesInFlight,
      peerWindow: tx.peerWindow,
      receiveWindow: rx.receiveWindow,
      retransmits: tx.retransmits,
      retransmittedBytes: tx.retransmittedBytes,
      fastRecoveries: cc.recoveries,
      timeouts: cc.timeouts,
      probes: tx.probes,
      keepalives: this.#keepalives,
      sent: tx.sent,
      received: rx.received,
      segmentsSent: this.#segmentsSent,
      segmentsReceived: this.#segmentsReceived,
      sendBuffered: tx.sendBuffered,
      receiveBuffered: rx.receiveBuffered,
    };
  }

  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  /** The receiving direction as a web stream (pull-based: unread data stays in the window). */
  get readable(): ReadableStream<Uint8Array> {
    this.#readable ??= new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const chunk = await this.read();
        if (chunk === null) controller.close();
        else controller.enqueue(chunk);
      },
      cancel: (reason) => {
        if (!this.#rx.finReceived) this.reset(String(reason ?? "reader cancelled"));
      },
    }, { highWaterMark: 0 });
    return this.#readable;
  }

  /** The sending direction as a web stream: `close()` half-closes, `abort()` resets. */
  get writable(): WritableStream<Uint8Array> {
    this.#writable ??= new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.close(),
      abort: (reason) => this.reset(String(reason ?? "writer aborted")),
    });
    return this.#writable;
  }

  // ---- Mux-facing ----

  /** The earliest time `tick()` has work to do (Infinity: none). @internal */
  deadline(): number {
    const s = this.#state;
    if (s === "closed") return Infinity;
    if (s === "time-wait") return this.#at.timeWait;
    let d = Math.min(this.#at.earliest(), this.#lastRecvAt + this.#h.timers.idleTimeoutMs);
    if (KEEPALIVE_STATES.has(s) && this.#tx.quiet) {
      d = Math.min(
        d,
        Math.max(this.#lastRecvAt, this.#lastKeepaliveAt) + this.#h.timers.keepaliveMs,
      );
    }
    return d;
  }

  /** Handles one decoded segment addressed to this connection. @internal */
  receive(seg: StreamSegment): void {
    if (this.#state === "closed") return;
    this.#run((now) => this.#onSegment(seg, now));
  }

  /** Runs due timers. @internal */
  tick(): void {
    if (this.#state === "closed") return;
    this.#run((now) => this.#onTick(now));
  }

  /** Ends the connection without telling the peer (the session is gone, or TIME_WAIT overflow). @internal */
  abort(error: StreamError | null): void {
    if (this.#state === "closed") return;
    this.#run(() => {
      if (error === null) this.#finish();
      else this.#terminate(error, null);
    });
  }

  // ---- Internals ----

  /**
   * Runs `fn` as one step of the connection, then does what the step left
   * for its end: writes the budget let in, a window the budget let grow,
   * and the ACK owed (at once or delayed). Steps nest (a budget waiter
   * called from inside one) without running the end twice.
   */
  #run(fn: (now: number) => void): void {
    if (this.#busy) {
      fn(this.#h.now());
      return;
    }
    this.#busy = true;
    const now = this.#h.now();
    try {
      fn(now);
      if (this.#state !== "closed") {
        if (this.#tx.pump()) this.#output(now);
        this.#rx.grow();
        this.#flushAck(now);
      }
    } finally {
      this.#busy = false;
    }
    this.#h.reschedule(this);
  }

  /**
   * A budget waiter that leaves a mark for the end of the current run (see
   * `#run`), starting a run when none is active: the budget calls it from
   * another connection's run, or from this one's.
   */
  #wakeLater(mark: () => void): () => void {
    return () => {
      if (this.#busy) mark();
      else this.#run(mark);
    };
  }

  /** The one place the state changes: checked against the table in `state.ts`. */
  #setState(next: ConnectionState): void {
    const from = this.#state;
    assertTransition(from, next);
    this.#state = next;
    this.#h.changed(this, from);
  }

  #writeError(): StreamError | null {
    if (this.#error !== null) return this.#error;
    const s = this.#state;
    if (s === "established" || s === "close-wait") return null;
    return new StreamError("closed", `cannot write in state ${s}`);
  }

  #learnPeer(syn: StreamSegment): void {
    const view = new DataView(syn.data.buffer, syn.data.byteOffset, SYN_DATA_SIZE);
    this.#tx.learnPeer(syn.window, view.getUint32(0));
  }

  #emitSyn(): void {
    const data = new Uint8Array(SYN_DATA_SIZE);
    new DataView(data.buffer).setUint32(0, this.#h.mss);
    const flags = this.#state === "syn-sent" ? SEG_SYN : SEG_SYN | SEG_ACK;
    this.#emit(flags, 0, [data]);
  }

  /** Encodes and sends one segment: the receiving half fills in the ACK, SACK and window. */
  #emit(flags: number, seq: number, parts: readonly Uint8Array[]): void {
    const rx = this.#rx;
    let ack = 0;
    let sack: readonly SackBlock[] = NO_SACK;
    if ((flags & SEG_ACK) !== 0) {
      ack = rx.next;
      sack = rx.sackFor(parts.length === 0 && (flags & (SEG_FIN | SEG_SYN)) === 0);
    }
    const window = (flags & SEG_RST) !== 0 ? 0 : rx.announceWindow();
    const bytes = encodeSegmentParts({ flags, connId: this.connId, seq, ack, window, sack }, parts);
    this.#segmentsSent++;
    this.#h.transmit(this, bytes);
  }

  #onSegment(seg: StreamSegment, now: number): void {
    this.#lastRecvAt = now;
    this.#segmentsReceived++;
    const f = seg.flags;
    if ((f & SEG_RST) !== 0) {
      const reason = decoder.decode(seg.data);
      const code = this.#state === "syn-sent" ? "refused" : "reset";
      this.#terminate(new StreamError(code, reason, true), null);
      return;
    }
    const s = this.#state;
    if ((f & SEG_SYN) !== 0) {
      if (s === "syn-sent" && (f & SEG_ACK) !== 0 && seg.ack === 1) {
        this.#learnPeer(seg);
        if (!this.#synRetransmitted) this.#tx.rto.sample(now - this.#synAt);
        this.#opened();
      } else if (s === "syn-received" && (f & SEG_ACK) === 0) {
        this.#emitSyn(); // our SYN-ACK was lost
      } else if (s !== "syn-sent" && s !== "syn-received") {
        this.#rx.requestAck(); // a late SYN or SYN-ACK: our ACK was lost
      }
      return;
    }
    if (s === "syn-sent") return;
    if (s === "syn-received") {
      if ((f & SEG_ACK) === 0 || seg.ack !== 1) return;
      if (!this.#synRetransmitted) this.#tx.rto.sample(now - this.#synAt);
      this.#opened();
    }
    if ((f & SEG_ACK) !== 0) this.#onAck(seg, now);
    if (this.#state === "closed") return;
    if (seg.data.length > 0 || (f & SEG_FIN) !== 0) this.#onData(seg, now);
    if ((f & SEG_PROBE) !== 0) this.#rx.requestAck();
    this.#tx.pump();
    this.#output(now);
  }

  #opened(): void {
    this.#at.rto = Infinity;
    this.#at.open = Infinity;
    this.#rx.open(this.#state === "syn-sent");
    this.#setState("established");
    const cb = this.#onOpen;
    this.#onOpen = undefined;
    cb?.(null);
  }

  #onAck(seg: StreamSegment, now: number): void {
    const tx = this.#tx;
    if (seg.ack > tx.nxt) {
      this.#rx.requestAck(); // acknowledges something never sent
      return;
    }
    if (tx.onCumulativeAck(seg, now)) {
      this.#onFinAcked(now);
      if (this.#state === "closed" || this.#state === "time-wait") return;
    }
    // An ACK riding on a probe or on a retransmission was sent by the
    // peer's timer, not by our data arriving: its delay says nothing of
    // the path.
    const timerDriven = (seg.flags & SEG_PROBE) !== 0 ||
      (seg.data.length > 0 && seg.seq + seg.data.length <= this.#rx.next);
    tx.onAckInfo(seg, now, timerDriven);
  }

  #onFinAcked(now: number): void {
    const s = this.#state;
    if (s === "fin-wait-1") this.#setState("fin-wait-2");
    else if (s === "closing") this.#enterTimeWait(now);
    else if (s === "last-ack") this.#finish();
    for (const w of this.#closeWaiters.splice(0)) w.resolve();
  }

  #onData(seg: StreamSegment, now: number): void {
    if (!this.#rx.onData(seg, now)) return;
    const s = this.#state;
    if (s === "established") this.#setState("close-wait");
    else if (s === "fin-wait-1") this.#setState("closing");
    else if (s === "fin-wait-2") this.#enterTimeWait(now);
    this.#rx.deliver();
  }

  #onTick(now: number): void {
    if (this.#state === "time-wait") {
      if (now >= this.#at.timeWait) this.#finish();
      return;
    }
    const t = this.#h.timers;
    if (now >= this.#at.open) {
      this.#terminate(new StreamError("timeout", "connect timeout"), "connect timeout");
      return;
    }
    // Deadlines are compared exactly as deadline() computes them: with
    // floating-point times, now - a >= b and now >= a + b can disagree.
    if (now >= this.#lastRecvAt + t.idleTimeoutMs) {
      this.#terminate(new StreamError("timeout", "idle timeout"), "idle timeout");
      return;
    }
    const tx = this.#tx;
    if (now >= this.#at.rto) this.#onRto(now);
    else if (now >= this.#at.loss) tx.detectLosses(now);
    tx.probe(now);
    this.#rx.tick(now);
    if (
      KEEPALIVE_STATES.has(this.#state) && tx.quiet &&
      now >= Math.max(this.#lastRecvAt, this.#lastKeepaliveAt) + t.keepaliveMs
    ) {
      this.#keepalives++;
      this.#lastKeepaliveAt = now;
      this.#emit(SEG_ACK | SEG_PROBE, tx.nxt, NONE);
    }
    this.#output(now);
  }

  #onRto(now: number): void {
    const s = this.#state;
    if (s === "syn-sent" || s === "syn-received") {
      this.#synRetransmitted = true;
      const rto = this.#tx.rto;
      rto.backoff();
      this.#at.rto = now + rto.rto;
      this.#emitSyn();
      return;
    }
    this.#tx.onRto(now);
  }

  /** Lets the sending half send, in the states that send. */
  #output(now: number): void {
    if (SEND_STATES.has(this.#state)) this.#tx.output(now);
  }

  #flushAck(now: number): void {
    const s = this.#state;
    if (s === "syn-sent" || s === "syn-received" || s === "closed") return;
    if (this.#rx.ackNow) this.#emit(SEG_ACK, this.#tx.nxt, NONE);
    else this.#rx.delayAck(now);
  }

  #enterTimeWait(now: number): void {
    this.#at.clearAll();
    this.#at.timeWait = now + this.#h.timers.timeWaitMs;
    this.#tx.clear();
    this.#setState("time-wait");
  }

  /** Orderly end: nothing more to send or receive. Unread data stays readable. */
  #finish(): void {
    this.#release(false);
    this.#setState("closed");
    this.#rx.end();
    this.#resolveClosed(null);
  }

  /** Abnormal end: optionally tells the peer, fails every pending operation. */
  #terminate(error: StreamError, rst: string | null): void {
    if (rst !== null) this.#emit(SEG_RST, this.#tx.nxt, [reasonBytes(rst)]);
    this.#error = error;
    this.#release(true);
    const cb = this.#onOpen;
    this.#onOpen = undefined;
    this.#setState("closed");
    this.#rx.fail(error);
    this.#tx.fail(error);
    for (const w of this.#closeWaiters.splice(0)) w.reject(error);
    cb?.(error);
    this.#resolveClosed(error);
  }

  /** Stops every timer and gives both halves' shares of the peer's budgets back. */
  #release(discardReceived: boolean): void {
    this.#at.clearAll();
    this.#tx.release();
    this.#rx.release(discardReceived);
  }
}

const NO_SACK: readonly SackBlock[] = [];
