/**
 * One reliable byte stream: the connection state machine of RFC 9293
 * reduced to what a tunnel between authenticated peers needs (drawn and
 * tabled in `state.ts`; every change goes through `#setState`), with RFC 6298
 * retransmission timing, pluggable congestion control (NewReno by
 * default, `congestion.ts`), SACK-based loss
 * recovery, a capped receive window with zero-window probing, keepalives,
 * idle timeout, orderly close in both directions, reset and TIME_WAIT.
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
import type { AckEvent, CongestionControl, CongestionFactory, LossEvent } from "./congestion.ts";
import { Deadlines } from "./deadlines.ts";
import { StreamError } from "./error.ts";
import { NewReno } from "./new_reno.ts";
import type { StreamLimits, StreamTimers } from "./options.ts";
import { Insert, ReceiveBuffer } from "./receive_buffer.ts";
import { RtoEstimator } from "./rto.ts";
import { type AckResult, Scoreboard, type TxSegment } from "./scoreboard.ts";
import { SendBuffer } from "./send_buffer.ts";
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

interface PendingWrite {
  bytes: Uint8Array;
  resolve(): void;
  reject(e: StreamError): void;
}

interface Deferred<T> {
  resolve(v: T): void;
  reject(e: StreamError): void;
}

const ACK_EVERY = 2;
const DUP_THRESH = 3;
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
  #noDelay: boolean;
  #onOpen: ((error: StreamError | null) => void) | undefined;
  #resolveClosed!: (v: StreamError | null) => void;
  #error: StreamError | null = null;
  #busy = false;
  #released = false;
  #pumpLater = false;
  #growLater = false;

  // Sending.
  #sb = new SendBuffer(1);
  #board = new Scoreboard();
  #sndUna = 1;
  #sndNxt = 1;
  #peerRight = 1;
  #smss: number;
  #cc: CongestionControl;
  #newCc: CongestionFactory;
  #ackEvent: AckEvent = { acked: 0, una: 1, flight: 0, limited: false };
  #lossEvent: LossEvent = { una: 1, flight: 0, highSeq: 1 };
  #rto: RtoEstimator;
  #dupAcks = 0;
  #cwndLimited = false;
  #finQueued = false;
  #finSeq = -1;
  #writes: PendingWrite[] = [];
  #closeWaiters: Deferred<void>[] = [];
  #sendHeld = 0;
  #lastDataAt: number;
  #ack: AckResult = { acked: 0, sacked: 0, newest: -1 };

  // Receiving.
  #rb: ReceiveBuffer;
  #peerFin = -1;
  #finReceived = false;
  #advRight = 1;
  #sentRight = 1;
  #windowLimit: number;
  #recvHeld = 0;
  #ackPending = 0;
  #ackNow = false;
  #readers: Deferred<Uint8Array | null>[] = [];

  // Timers.
  #at = new Deadlines();
  #persistCount = 0;
  #lastRecvAt: number;
  #lastKeepaliveAt: number;
  #synAt: number;
  #synRetransmitted = false;

  // Counters.
  #retransmits = 0;
  #retransmittedBytes = 0;
  #probes = 0;
  #keepalives = 0;
  #sent = 0;
  #received = 0;
  #segmentsSent = 0;
  #segmentsReceived = 0;

  // Budget waiters: room came free in the peer's shared budget.
  #writeWaiter = this.#wakeLater(() => this.#pumpLater = true);
  #windowWaiter = this.#wakeLater(() => this.#growLater = true);

  /** Created by the mux only. @internal */
  constructor(init: ConnectionInit) {
    const h = init.host;
    this.#h = h;
    this.localPort = init.localPort;
    this.remotePort = init.remotePort;
    this.connId = init.connId;
    this.initiator = init.syn === undefined;
    this.#noDelay = init.noDelay ?? false;
    this.#onOpen = init.onOpen;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    const now = h.now();
    this.#lastRecvAt = now;
    this.#lastKeepaliveAt = now;
    this.#lastDataAt = now;
    this.#synAt = now;
    const t = h.timers;
    this.#rto = new RtoEstimator({
      initialMs: t.initialRtoMs,
      minMs: t.minRtoMs,
      maxMs: t.maxRtoMs,
      granularityMs: 1,
    });
    this.#smss = h.mss;
    this.#newCc = init.congestion ?? newReno;
    this.#cc = this.#newController();
    this.#rb = new ReceiveBuffer(1, h.limits.maxOutOfOrder);
    this.#windowLimit = Math.min(h.limits.receiveBuffer, Math.max(h.limits.reserve, 4 * h.mss));
    this.#growWindow(true);
    this.#at.open = now + t.connectTimeoutMs;
    this.#at.rto = now + this.#rto.rto;
    // The diagram's two entry points: set, not transitions.
    this.#state = init.syn === undefined ? "syn-sent" : "syn-received";
    if (init.syn !== undefined) this.#learnPeer(init.syn);
    this.#emitSyn();
  }

  #newController(): CongestionControl {
    return this.#newCc({
      mss: this.#smss,
      maxWindow: Math.max(this.#h.limits.sendBuffer, 4 * this.#smss),
    });
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
    let done = false;
    let pending: Promise<void> | undefined;
    this.#run((now) => {
      if (this.#writes.length === 0) {
        const room = this.#sendRoom();
        if (room >= bytes.length) {
          this.#accept(bytes);
          done = true;
        } else if (room > 0) {
          this.#accept(bytes.subarray(0, room));
          bytes = bytes.subarray(room);
        }
      }
      if (!done) {
        pending = settled(
          new Promise<void>((resolve, reject) => this.#writes.push({ bytes, resolve, reject })),
        );
        this.#h.sendBudget.wait(this.#writeWaiter);
      }
      this.#output(now);
    });
    return pending ?? Promise.resolve();
  }

  /**
   * The next chunk of received bytes in order (usually a view of the
   * segment, no copy), or null at the end of the stream (the peer closed its direction).
   * Rejects with a {@linkcode StreamError} when the connection was reset.
   */
  read(): Promise<Uint8Array | null> {
    if (this.#readers.length === 0) {
      if (this.#rb.readable > 0) {
        let chunk: Uint8Array | undefined;
        this.#run(() => {
          chunk = this.#rb.read();
          this.#consumed();
        });
        return Promise.resolve(chunk!);
      }
      if (this.#finReceived) return Promise.resolve(null);
      if (this.#error !== null) return settled(Promise.reject(this.#error));
      if (this.#state === "closed") return Promise.resolve(null);
    }
    return settled(new Promise((resolve, reject) => this.#readers.push({ resolve, reject })));
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
        this.#finQueued = true;
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
    return {
      state: this.#state,
      localPort: this.localPort,
      remotePort: this.remotePort,
      connId: this.connId,
      initiator: this.initiator,
      mss: this.#smss,
      cwnd: this.#cc.cwnd,
      ssthresh: Number.isFinite(this.#cc.ssthresh) ? this.#cc.ssthresh : null,
      inRecovery: this.#cc.inRecovery,
      srtt: this.#rto.srtt,
      rttvar: this.#rto.rttvar,
      rto: this.#rto.rto,
      bytesInFlight: this.#board.pipe,
      peerWindow: Math.max(0, this.#peerRight - this.#sndNxt),
      receiveWindow: Math.max(0, this.#advRight - this.#rb.next),
      retransmits: this.#retransmits,
      retransmittedBytes: this.#retransmittedBytes,
      fastRecoveries: this.#cc.recoveries,
      timeouts: this.#cc.timeouts,
      probes: this.#probes,
      keepalives: this.#keepalives,
      sent: this.#sent,
      received: this.#received,
      segmentsSent: this.#segmentsSent,
      segmentsReceived: this.#segmentsReceived,
      sendBuffered: this.#sb.size,
      receiveBuffered: this.#rb.readable + this.#rb.heldBytes,
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
        if (!this.#finReceived) this.reset(String(reason ?? "reader cancelled"));
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
    if (KEEPALIVE_STATES.has(s) && this.#board.length === 0 && this.#at.persist === Infinity) {
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
        if (this.#pumpLater) {
          this.#pumpLater = false;
          this.#pumpWrites();
          this.#output(now);
        }
        if (this.#growLater) {
          this.#growLater = false;
          this.#consumed();
        }
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

  #sendRoom(): number {
    const held = this.#sb.size;
    return Math.min(this.#h.limits.sendBuffer - held, this.#h.sendBudget.room(held));
  }

  #accept(bytes: Uint8Array): void {
    this.#sb.push(bytes);
    this.#syncSendHeld();
  }

  #syncSendHeld(): void {
    if (this.#released) return;
    const held = this.#sb.size;
    this.#h.sendBudget.charge(this.#sendHeld, held);
    this.#sendHeld = held;
  }

  #pumpWrites(): void {
    while (this.#writes.length > 0) {
      const room = this.#sendRoom();
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
    if (this.#writes.length === 0) this.#h.sendBudget.unwait(this.#writeWaiter);
  }

  /**
   * Recomputes what the receive side holds against the budget, then widens
   * the window; the peer hears of it at once only when the window it knows
   * of at least doubled by at least min(buffer / 2, 2 MSS) — otherwise the
   * next ACK carries it.
   */
  #consumed(): void {
    this.#syncRecvHeld();
    if (!this.#growWindow(false)) return;
    const s = this.#state;
    if (!SEND_STATES.has(s) && s !== "fin-wait-2") return;
    const known = Math.max(0, this.#sentRight - this.#rb.next);
    const open = this.#advRight - this.#rb.next;
    const threshold = Math.min(this.#windowLimit / 2, 2 * this.#h.mss);
    if (open - known >= threshold && open >= 2 * known) this.#ackNow = true;
  }

  #syncRecvHeld(): void {
    if (this.#released) return;
    const held = this.#advRight - this.#rb.consumed;
    this.#h.receiveBudget.charge(this.#recvHeld, held);
    this.#recvHeld = held;
  }

  /**
   * Moves the advertised right edge towards `consumed + windowLimit`,
   * within the peer's budget, in steps of at least min(buffer / 2, MSS)
   * (receiver silly-window avoidance, RFC 9293 3.8.6.2.2). The right edge
   * never moves left.
   */
  #growWindow(force: boolean): boolean {
    if (this.#finReceived || this.#released) return false;
    const consumed = this.#rb.consumed;
    const want = consumed + this.#windowLimit - this.#advRight;
    if (want <= 0) {
      this.#h.receiveBudget.unwait(this.#windowWaiter);
      return false;
    }
    const held = this.#advRight - consumed;
    const grow = Math.min(want, this.#h.receiveBudget.room(held));
    if (grow < want) this.#h.receiveBudget.wait(this.#windowWaiter);
    else this.#h.receiveBudget.unwait(this.#windowWaiter);
    if (grow <= 0) return false;
    if (!force && grow < Math.min(this.#windowLimit / 2, this.#h.mss)) return false;
    this.#advRight += grow;
    this.#syncRecvHeld();
    return true;
  }

  #learnPeer(syn: StreamSegment): void {
    this.#peerRight = 1 + syn.window;
    const view = new DataView(syn.data.buffer, syn.data.byteOffset, SYN_DATA_SIZE);
    const peerMss = view.getUint32(0);
    const smss = Math.min(this.#h.mss, Math.max(peerMss, 64));
    if (smss !== this.#smss) {
      this.#smss = smss;
      this.#cc = this.#newController();
    }
  }

  #emitSyn(): void {
    const data = new Uint8Array(SYN_DATA_SIZE);
    new DataView(data.buffer).setUint32(0, this.#h.mss);
    const flags = this.#state === "syn-sent" ? SEG_SYN : SEG_SYN | SEG_ACK;
    this.#emit(flags, 0, [data]);
  }

  #emit(flags: number, seq: number, parts: readonly Uint8Array[]): void {
    let ack = 0;
    let sack: readonly SackBlock[] = NO_SACK;
    if ((flags & SEG_ACK) !== 0) {
      ack = this.#rb.next;
      const pure = parts.length === 0 && (flags & (SEG_FIN | SEG_SYN)) === 0;
      if (pure && this.#rb.heldSegments > 0) sack = this.#rb.sackBlocks();
      // An ACK that owes SACK information but cannot carry it leaves the
      // obligation for a pure ACK.
      if (sack.length > 0 || this.#rb.heldSegments === 0) {
        this.#ackNow = false;
        this.#ackPending = 0;
        this.#at.ack = Infinity;
      }
    }
    const window = (flags & SEG_RST) !== 0 ? 0 : Math.max(0, this.#advRight - this.#rb.next);
    if ((flags & SEG_RST) === 0) this.#sentRight = this.#rb.next + window;
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
        if (!this.#synRetransmitted) this.#rto.sample(now - this.#synAt);
        this.#opened();
      } else if (s === "syn-received" && (f & SEG_ACK) === 0) {
        this.#emitSyn(); // our SYN-ACK was lost
      } else if (s !== "syn-sent" && s !== "syn-received") {
        this.#ackNow = true; // a late SYN or SYN-ACK: our ACK was lost
      }
      return;
    }
    if (s === "syn-sent") return;
    if (s === "syn-received") {
      if ((f & SEG_ACK) === 0 || seg.ack !== 1) return;
      if (!this.#synRetransmitted) this.#rto.sample(now - this.#synAt);
      this.#opened();
    }
    if ((f & SEG_ACK) !== 0) this.#onAck(seg, now);
    if (this.#state === "closed") return;
    if (seg.data.length > 0 || (f & SEG_FIN) !== 0) this.#onData(seg, now);
    if ((f & SEG_PROBE) !== 0) this.#ackNow = true;
    if (this.#pumpLater) {
      this.#pumpLater = false;
      this.#pumpWrites();
    }
    this.#output(now);
  }

  #opened(): void {
    this.#at.rto = Infinity;
    this.#at.open = Infinity;
    this.#ackNow = this.#state === "syn-sent";
    this.#setState("established");
    const cb = this.#onOpen;
    this.#onOpen = undefined;
    cb?.(null);
  }

  #onAck(seg: StreamSegment, now: number): void {
    const ack = seg.ack;
    if (ack > this.#sndNxt) {
      this.#ackNow = true; // acknowledges something never sent
      return;
    }
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
    if (ack > this.#sndUna) {
      board.ackTo(ack, out);
      this.#sndUna = ack;
      this.#dupAcks = 0;
      this.#sb.release(Math.min(ack, this.#sb.end));
      this.#syncSendHeld();
      if (this.#writes.length > 0) this.#pumpLater = true;
      // RFC 6298 (5.2), (5.3).
      this.#at.rto = board.length > 0 ? now + this.#rto.rto : Infinity;
      if (this.#finSeq >= 0 && ack > this.#finSeq) this.#onFinAcked(now);
      if (this.#state === "closed" || this.#state === "time-wait") return;
    } else if (
      ack === this.#sndUna && board.length > 0 && seg.data.length === 0 &&
      (seg.flags & (SEG_FIN | SEG_PROBE)) === 0 && !grew
    ) {
      this.#dupAcks++;
    }
    for (const b of seg.sack) {
      const s = Math.max(b.start, this.#sndUna);
      const e = Math.min(b.end, this.#sndNxt);
      if (e > s) board.sack(s, e, out);
    }
    // Karn: only segments sent once time a round trip (see AckResult). An
    // ACK riding on a probe or on a retransmission was sent by the peer's
    // timer, not by our data arriving: its delay says nothing of the path.
    const timerDriven = (seg.flags & SEG_PROBE) !== 0 ||
      (seg.data.length > 0 && seg.seq + seg.data.length <= this.#rb.next);
    if (out.newest >= 0 && !timerDriven) {
      this.#rto.sample(now - out.newest);
      board.delivered(out.newest, now);
    }
    const e = this.#ackEvent;
    e.acked = out.acked;
    e.una = this.#sndUna;
    e.flight = this.#sndNxt - this.#sndUna;
    e.limited = this.#cwndLimited;
    this.#cc.onAckReceived(e);
    this.#detectLosses(now);
  }

  /** The loss event of this moment (reused between calls). */
  #loss(): LossEvent {
    const e = this.#lossEvent;
    e.una = this.#sndUna;
    e.flight = this.#sndNxt - this.#sndUna;
    e.highSeq = this.#sndNxt;
    return e;
  }

  /**
   * Runs the loss rules; fast-retransmits the first lost segment, whatever
   * cwnd says, when they found a loss that starts a new recovery episode.
   */
  #detectLosses(now: number): void {
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

  #onFinAcked(now: number): void {
    const s = this.#state;
    if (s === "fin-wait-1") this.#setState("fin-wait-2");
    else if (s === "closing") this.#enterTimeWait(now);
    else if (s === "last-ack") this.#finish();
    for (const w of this.#closeWaiters.splice(0)) w.resolve();
  }

  #onData(seg: StreamSegment, now: number): void {
    if (this.#finReceived) {
      this.#ackNow = true; // a retransmission after the FIN: answer so the peer stops
      return;
    }
    const data = seg.data;
    if ((seg.flags & SEG_FIN) !== 0 && this.#peerFin < 0) {
      const fin = seg.seq + data.length;
      if (fin >= this.#rb.next) this.#peerFin = fin;
    }
    if (data.length > 0) {
      const limit = this.#peerFin >= 0 ? Math.min(this.#advRight, this.#peerFin) : this.#advRight;
      const before = this.#rb.next;
      const r = this.#rb.insert(seg.seq, data, limit);
      if (r === Insert.InOrder) {
        if (++this.#ackPending >= ACK_EVERY) this.#ackNow = true;
      } else {
        // Out of order, duplicate, gap filled or beyond the window: at once
        // (RFC 5681 4.2), so that the sender sees duplicate ACKs and SACKs.
        this.#ackNow = true;
      }
      if (this.#rb.next > before) {
        this.#received += this.#rb.next - before;
        this.#deliver();
      }
      this.#autotune();
    }
    if (this.#peerFin >= 0 && this.#rb.next === this.#peerFin) {
      this.#rb.consumeFin();
      this.#finReceived = true;
      this.#ackNow = true;
      this.#h.receiveBudget.unwait(this.#windowWaiter);
      const s = this.#state;
      if (s === "established") this.#setState("close-wait");
      else if (s === "fin-wait-1") this.#setState("closing");
      else if (s === "fin-wait-2") this.#enterTimeWait(now);
      this.#deliver();
    }
  }

  /**
   * Receive-window auto-tuning: a connection starts with a window of its
   * reserve (idle streams hold little of the peer's budget) and doubles it,
   * up to `receiveBuffer`, whenever more than a quarter of it is in use
   * (in flight or unread), so a busy stream's window stays well ahead of a
   * congestion window that doubles per round trip.
   */
  #autotune(): void {
    const cap = this.#h.limits.receiveBuffer;
    if (this.#windowLimit >= cap) return;
    if (this.#advRight - this.#rb.next >= (this.#windowLimit * 3) / 4) return;
    this.#windowLimit = Math.min(cap, 2 * this.#windowLimit);
    this.#growWindow(false);
  }

  /** Hands data (or the end of the stream) to waiting readers. */
  #deliver(): void {
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
    if (now >= this.#at.rto) this.#onRto(now);
    else if (now >= this.#at.loss) this.#detectLosses(now);
    if (now >= this.#at.persist) {
      this.#probes++;
      this.#persistCount++;
      this.#at.persist = now + this.#persistInterval();
      this.#emit(SEG_ACK | SEG_PROBE, this.#sndNxt, NONE);
    }
    if (now >= this.#at.ack) this.#ackNow = true;
    if (
      KEEPALIVE_STATES.has(this.#state) && this.#board.length === 0 &&
      this.#at.persist === Infinity &&
      now >= Math.max(this.#lastRecvAt, this.#lastKeepaliveAt) + t.keepaliveMs
    ) {
      this.#keepalives++;
      this.#lastKeepaliveAt = now;
      this.#emit(SEG_ACK | SEG_PROBE, this.#sndNxt, NONE);
    }
    this.#output(now);
  }

  #persistInterval(): number {
    return Math.min(this.#rto.rto * 2 ** this.#persistCount, this.#h.timers.persistMaxMs);
  }

  #onRto(now: number): void {
    const s = this.#state;
    if (s === "syn-sent" || s === "syn-received") {
      this.#synRetransmitted = true;
      this.#rto.backoff();
      this.#at.rto = now + this.#rto.rto;
      this.#emitSyn();
      return;
    }
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

  #retransmit(seg: TxSegment, now: number): void {
    const len = seg.end - seg.start;
    const parts = seg.fin ? NONE : this.#sb.views(seg.start, len);
    this.#emit(seg.fin ? SEG_ACK | SEG_FIN : SEG_ACK, seg.start, parts);
    this.#board.retransmitted(seg, now);
    this.#retransmits++;
    if (!seg.fin) this.#retransmittedBytes += len;
    // Retransmitting the oldest segment restarts the timer, so that a
    // recovery longer than one RTO does not also time out.
    if (this.#at.rto === Infinity || seg.start === this.#sndUna) this.#at.rto = now + this.#rto.rto;
  }

  /** Sends what cwnd, the peer's window and Nagle allow: lost segments first, then new data, then the FIN. */
  #output(now: number): void {
    if (!SEND_STATES.has(this.#state)) return;
    const cc = this.#cc;
    const board = this.#board;
    const sb = this.#sb;
    const smss = this.#smss;
    let blocked = false;
    while (board.lostCount > 0) {
      const seg = board.nextLost();
      if (seg === undefined) break;
      if (cc.cwnd - board.pipe < Math.min(seg.end - seg.start, smss)) {
        blocked = true;
        break;
      }
      this.#retransmit(seg, now);
    }
    if (!blocked && sb.end > this.#sndNxt) {
      if (board.length === 0 && now - this.#lastDataAt > this.#rto.rto) cc.onIdleRestart();
      for (;;) {
        const avail = sb.end - this.#sndNxt;
        if (avail <= 0) break;
        const wnd = this.#peerRight - this.#sndNxt;
        if (wnd <= 0) break;
        const len = Math.min(smss, avail, wnd);
        if (cc.cwnd - board.pipe < len) {
          blocked = true;
          break;
        }
        // Nagle (RFC 896) and sender silly-window avoidance: a short
        // segment waits while data is outstanding, unless we are closing.
        if (len < smss && board.length > 0 && !this.#noDelay && !this.#finQueued) break;
        const seq = this.#sndNxt;
        board.add(seq, seq + len, false, now);
        this.#emit(SEG_ACK, seq, sb.views(seq, len));
        this.#sndNxt = seq + len;
        this.#sent += len;
        this.#lastDataAt = now;
      }
    }
    this.#cwndLimited = blocked;
    if (
      this.#finQueued && this.#finSeq < 0 && this.#writes.length === 0 &&
      this.#sndNxt === sb.end
    ) {
      const seq = this.#sndNxt;
      this.#finSeq = seq;
      board.add(seq, seq + 1, true, now);
      this.#emit(SEG_ACK | SEG_FIN, seq, NONE);
      this.#sndNxt = seq + 1;
    }
    if (sb.end > this.#sndNxt && board.length === 0 && this.#peerRight <= this.#sndNxt) {
      if (this.#at.persist === Infinity) this.#at.persist = now + this.#persistInterval();
    } else {
      this.#at.persist = Infinity;
    }
    if (board.length > 0 && this.#at.rto === Infinity) this.#at.rto = now + this.#rto.rto;
  }

  #flushAck(now: number): void {
    const s = this.#state;
    if (s === "syn-sent" || s === "syn-received" || s === "closed") return;
    if (this.#ackNow) {
      this.#emit(SEG_ACK, this.#sndNxt, NONE);
    } else if (this.#ackPending > 0 && this.#at.ack === Infinity) {
      this.#at.ack = now + this.#h.timers.delayedAckMs;
    }
  }

  #enterTimeWait(now: number): void {
    this.#at.clearAll();
    this.#at.timeWait = now + this.#h.timers.timeWaitMs;
    this.#board.clear();
    this.#sb.clear();
    this.#syncSendHeld();
    this.#setState("time-wait");
  }

  /** Orderly end: nothing more to send or receive. Unread data stays readable. */
  #finish(): void {
    this.#release(false);
    this.#setState("closed");
    for (const r of this.#readers.splice(0)) r.resolve(null);
    this.#resolveClosed(null);
  }

  /** Abnormal end: optionally tells the peer, fails every pending operation. */
  #terminate(error: StreamError, rst: string | null): void {
    if (rst !== null) this.#emit(SEG_RST, this.#sndNxt, [reasonBytes(rst)]);
    this.#error = error;
    this.#release(true);
    const cb = this.#onOpen;
    this.#onOpen = undefined;
    this.#setState("closed");
    for (const r of this.#readers.splice(0)) r.reject(error);
    for (const w of this.#writes.splice(0)) w.reject(error);
    for (const w of this.#closeWaiters.splice(0)) w.reject(error);
    cb?.(error);
    this.#resolveClosed(error);
  }

  #release(discardReceived: boolean): void {
    this.#at.clearAll();
    this.#ackNow = false;
    this.#board.clear();
    this.#sb.clear();
    if (discardReceived) this.#rb.clear();
    // Unread data an orderly close leaves behind belongs to the reader now,
    // no longer to the peer's budget.
    this.#h.sendBudget.charge(this.#sendHeld, 0);
    this.#sendHeld = 0;
    this.#h.receiveBudget.charge(this.#recvHeld, 0);
    this.#recvHeld = 0;
    this.#released = true;
    this.#h.sendBudget.unwait(this.#writeWaiter);
    this.#h.receiveBudget.unwait(this.#windowWaiter);
  }
}

const NO_SACK: readonly SackBlock[] = [];
