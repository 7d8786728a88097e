/**
 * The receiving half of messages on reliable streams (virtual port 1001):
 * typed messages of up to MAX_STREAM_MESSAGE bytes and files of any size,
 * each answered by a receipt sent only once the message or file is durable.
 * Frames: `wire/message_frame.ts`; the sending half: `client.ts`.
 *
 * Frames are handled in order and receipts go back in the same order.
 * Messages are pipelined — up to `maxPipelined` stores run at once (so the
 * inbox's grouped fsync batches them) — and beyond that, or beyond the
 * receipts one peer may owe across its streams, the service stops reading,
 * so a peer that never reads its receipts stalls only itself: the stream's
 * windows fill and its writes block. A message body is buffered once, after
 * its length was checked against the cap; its bytes are charged as they
 * arrive to the peer's share of a byte budget (`_body_budget.ts`), so
 * announcing a large message costs nothing and a peer at its share waits
 * alone. A body or file that makes no progress for `stallMs` resets its
 * stream, releasing what it held (`_stall_watch.ts`). Files are received
 * by `file_receiver.ts`, never buffered whole. A frame that breaks the
 * protocol (unknown kind, over its cap, out of place, malformed) resets the
 * stream with `"<code>: <why>"`.
 *
 * @module
 */
import {
  MAX_STREAM_MESSAGE,
  MESSAGES_MAX_PIPELINED,
  MESSAGES_PEER_BUFFER,
  MESSAGES_PEER_RECEIPTS,
  MESSAGES_STALL_MS,
  MESSAGES_TOTAL_BUFFER,
  PORT_MESSAGES,
} from "../../constants.ts";
import { DecodeError } from "../../bytes.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import { type Connection, StreamError } from "../../stream/mod.ts";
import { decodeEnvelope, type Envelope } from "../../wire/data_message.ts";
import { FrameReader } from "../../wire/framing.ts";
import {
  FRAME_FILE_BEGIN,
  FRAME_MESSAGE,
  frameCap,
  type FrameKind,
  frameKindName,
  MESSAGE_FRAMES,
  type MessageReceiptFrame,
} from "../../wire/message_frame.ts";
import { ConflictRefusal, refusalCodeOf } from "../refusal.ts";
import { BodyBudget } from "./_body_budget.ts";
import { ReceiptQueue } from "./_receipt_queue.ts";
import { REAL_CLOCK, type StallClock, StallWatch } from "./_stall_watch.ts";
import { FileReceiver, type FileSink } from "./file_receiver.ts";

/** Where received messages go; the answer is what the receipt reports. */
export interface MessageSink {
  /**
   * Stores a message durably (or recognises a retry) and returns its inbox
   * seq; throws a `Refusal` to refuse it (anything else refuses
   * it as `internal`).
   */
  store(sender: PeerIdentity, envelope: Envelope): Promise<{ seq: number; duplicate: boolean }>;
}

/** Options of {@linkcode MessagesServer}. */
export interface MessagesServerOptions {
  /** Stores received messages (dedup, then the durable inbox). */
  sink: MessageSink;
  /** Stores received files. */
  files: FileSink;
  /** Receipts one stream may owe before the service stops reading it. */
  maxPipelined?: number;
  /** Message bytes buffered per peer, at most (at least one largest message frame). */
  peerBuffer?: number;
  /** Message bytes buffered across all peers, at most (at least `peerBuffer`). */
  totalBuffer?: number;
  /** Receipts one peer may owe across its streams before they stop being read. */
  peerReceipts?: number;
  /** A body or file with no progress this long resets its stream (ms). */
  stallMs?: number;
  /** Monotonic clock of the stall timeout; `performance.now` by default. */
  now?: () => number;
  /** Timer of the stall timeout: calls `fn` after `ms`, returns a cancel function; `setTimeout` by default. */
  after?: (ms: number, fn: () => void) => () => void;
}

/** Counters of the messages server, for diagnostics and tests. */
export interface MessagesStats {
  /** Streams being served. */
  streams: number;
  /** Receipts owed (stores in flight or receipts not yet written), all streams. */
  pendingReceipts: number;
  /** Message bytes buffered now, all peers. */
  bufferedBytes: number;
  /** Times a stream stopped being read because its peer owed too many receipts. */
  throttled: number;
}

const noop = () => {};

/** The receiving side of port 1001: serves each incoming stream, storing what arrives. */
export class MessagesServer {
  /** Port 1001. */
  readonly port = PORT_MESSAGES;
  /** Service name. */
  readonly name = "messages";
  /** Refused messages, files and streams, by code. */
  readonly refused: Record<string, number> = {};
  #sink: MessageSink;
  #files: FileReceiver;
  #maxPipelined: number;
  #peerReceipts: number;
  #stallMs: number;
  #clock: StallClock;
  #budget: BodyBudget;
  #streams = 0;
  #pending = 0;
  #throttled = 0;
  /** Receipts owed per peer, across its streams. */
  #owed = new Map<string, number>();
  /** Streams waiting for their peer to owe fewer receipts. */
  #owedWaits = new Map<string, Set<() => void>>();
  /** Stores in flight by `peer:id`, so that two copies of one message store once. */
  #storing = new Map<string, Promise<void>>();

  /** Creates the service; throws RangeError for budgets too small for one largest message. */
  constructor(options: MessagesServerOptions) {
    this.#sink = options.sink;
    this.#files = new FileReceiver(options.files, (code) => this.#refuse(code));
    this.#maxPipelined = options.maxPipelined ?? MESSAGES_MAX_PIPELINED;
    this.#peerReceipts = options.peerReceipts ?? MESSAGES_PEER_RECEIPTS;
    this.#stallMs = options.stallMs ?? MESSAGES_STALL_MS;
    this.#clock = {
      now: options.now ?? REAL_CLOCK.now,
      after: options.after ?? REAL_CLOCK.after,
    };
    const peer = options.peerBuffer ?? MESSAGES_PEER_BUFFER;
    const total = options.totalBuffer ?? MESSAGES_TOTAL_BUFFER;
    const largest = frameCap(FRAME_MESSAGE);
    if (!(this.#maxPipelined >= 1)) {
      throw new RangeError(`maxPipelined is ${this.#maxPipelined}; expected at least 1`);
    }
    if (!(peer >= largest && total >= peer)) {
      throw new RangeError(
        `Message buffers of ${peer} per peer and ${total} in total cannot hold one message ` +
          `frame of ${largest} bytes`,
      );
    }
    this.#budget = new BodyBudget({ perPeer: peer, reserve: largest, total });
  }

  /** Current counters. */
  stats(): MessagesStats {
    return {
      streams: this.#streams,
      pendingReceipts: this.#pending,
      bufferedBytes: this.#budget.used,
      throttled: this.#throttled,
    };
  }

  #refuse(code: string): void {
    this.refused[code] = (this.refused[code] ?? 0) + 1;
  }

  // ---- Receiving side ----

  /**
   * Serves one incoming port-1001 stream from `peer` until it ends: stores
   * what arrives and answers each request with a receipt. Never rejects; a
   * protocol error resets the stream with its reason.
   */
  async serve(conn: Connection, peer: PeerIdentity): Promise<void> {
    this.#streams++;
    const reader = new FrameReader(MESSAGE_FRAMES, conn);
    const key = peer.keyHex;
    const out = new ReceiptQueue(conn, this.#maxPipelined, (delta) => this.#countOwed(key, delta));
    const watch = new StallWatch(this.#stallMs, this.#clock, () => {
      this.#refuse("stalled");
      conn.reset(`stalled: no progress for ${this.#stallMs} ms`);
    });
    try {
      for (;;) {
        await out.room();
        await this.#owedRoom(key);
        const h = await reader.header();
        if (h === null) break;
        if (h.kind === FRAME_MESSAGE) await this.#message(conn, peer, reader, h.length, out, watch);
        else if (h.kind === FRAME_FILE_BEGIN) {
          await this.#files.receive(peer, reader, h.length, out, watch);
        } else {
          throw new DecodeError(
            "unexpected_frame",
            `${frameKindName(h.kind as FrameKind)} frame outside a file`,
          );
        }
      }
      await out.drain();
      await conn.close();
    } catch (e) {
      if (e instanceof DecodeError) {
        this.#refuse(e.reason);
        conn.reset(`${e.reason}: ${e.message}`);
      } else if (!(e instanceof StreamError)) {
        this.#refuse("internal");
        conn.reset("internal: the receiver failed");
      }
    } finally {
      watch.disarm();
      out.abandon();
      this.#streams--;
    }
  }

  #countOwed(peer: string, delta: number): void {
    this.#pending += delta;
    const n = (this.#owed.get(peer) ?? 0) + delta;
    if (n > 0) this.#owed.set(peer, n);
    else this.#owed.delete(peer);
    if (delta < 0 && n < this.#peerReceipts) {
      const waits = this.#owedWaits.get(peer);
      this.#owedWaits.delete(peer);
      for (const wake of waits ?? []) wake();
    }
  }

  /** Resolves once `peer` owes fewer receipts than its cap; only that peer's streams wait. */
  async #owedRoom(peer: string): Promise<void> {
    while ((this.#owed.get(peer) ?? 0) >= this.#peerReceipts) {
      this.#throttled++;
      let set = this.#owedWaits.get(peer);
      if (set === undefined) this.#owedWaits.set(peer, set = new Set());
      const wait = set;
      await new Promise<void>((resolve) => wait.add(resolve));
    }
  }

  /**
   * Receives a body of `length` bytes, charging them to the peer as they
   * arrive and pausing (this stream only) while the peer is at its share.
   * Throws what reading throws, having released what it charged.
   */
  async #receiveBody(
    conn: Connection,
    key: string,
    reader: FrameReader,
    length: number,
    watch: StallWatch,
  ): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let got = 0;
    watch.arm();
    try {
      for await (const part of reader.bodyParts(length)) {
        this.#budget.charge(key, part.length);
        got += part.length;
        parts.push(part);
        watch.progress();
        if (got < length && !this.#budget.open(key)) {
          // The stall watch keeps running: a peer that fills its share and
          // never lets a store finish is reset like a silent one, and the
          // reset ends the wait at once, releasing what this body held.
          const wait = this.#budget.wait(key);
          try {
            const gone = await Promise.race([
              wait.ready.then(() => false),
              conn.closed.then(() => true),
            ]);
            if (gone) throw new StreamError("reset", "the stream ended while its body waited");
          } finally {
            wait.cancel();
          }
        }
      }
    } catch (e) {
      this.#budget.release(key, got);
      throw e;
    } finally {
      watch.disarm();
    }
    if (parts.length === 1) return parts[0]!;
    const body = new Uint8Array(length);
    let o = 0;
    for (const p of parts) {
      body.set(p, o);
      o += p.length;
    }
    return body;
  }

  async #message(
    conn: Connection,
    peer: PeerIdentity,
    reader: FrameReader,
    length: number,
    out: ReceiptQueue,
    watch: StallWatch,
  ): Promise<void> {
    // The length is within the cap (the reader checked it); its bytes stay
    // charged until the store answers.
    const body = await this.#receiveBody(conn, peer.keyHex, reader, length, watch);
    let held = true;
    const release = () => {
      if (held) this.#budget.release(peer.keyHex, length);
      held = false;
    };
    try {
      let envelope: Envelope;
      try {
        envelope = decodeEnvelope(body, MAX_STREAM_MESSAGE);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        // The frame itself was whole, so the stream stays in step: refuse just this message.
        release();
        this.#refuse("invalid_argument");
        out.push(Promise.resolve({
          subject: "message",
          status: "refused",
          seq: 0,
          id: "",
          detail: "invalid_argument",
        }));
        return;
      }
      out.push(this.#store(peer, envelope).finally(release));
    } catch (e) {
      release();
      throw e;
    }
  }

  /** Stores one message; a second copy of a message still being stored waits for the first. */
  #store(peer: PeerIdentity, envelope: Envelope): Promise<MessageReceiptFrame> {
    const key = `${peer.keyHex}:${envelope.id}`;
    const before = this.#storing.get(key);
    const run = (async (): Promise<MessageReceiptFrame> => {
      if (before !== undefined) await before;
      const base = { subject: "message" as const, id: envelope.id };
      try {
        const { seq, duplicate } = await this.#sink.store(peer, envelope);
        return { ...base, status: duplicate ? "duplicate" : "stored", seq, detail: "" };
      } catch (e) {
        const code = refusalCodeOf(e);
        this.#refuse(code);
        const stored = code === "conflict" && e instanceof ConflictRefusal
          ? { stored: e.stored }
          : {};
        return { ...base, status: "refused", seq: 0, detail: code, ...stored };
      }
    })();
    const done = run.then(noop);
    this.#storing.set(key, done);
    void done.then(() => {
      if (this.#storing.get(key) === done) this.#storing.delete(key);
    });
    return run;
  }
}
