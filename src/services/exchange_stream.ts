/**
 * Data exchange on reliable streams (virtual port 1001): typed messages of
 * up to MAX_STREAM_MESSAGE bytes and files of any size, each answered by a
 * receipt that the receiver sends only once the message or file is durable.
 * Frames: `wire/exchange_frame.ts`.
 *
 * Receiving ({@linkcode ExchangeService.serve}): frames are handled in
 * order and receipts go back in the same order. Messages are pipelined — up
 * to `maxPipelined` stores run at once (so the inbox's grouped fsync
 * batches them) — and beyond that, or beyond the receipts one peer may owe
 * across its streams, the service stops reading, so a peer that never reads
 * its receipts stalls only itself: the stream's windows fill and its writes
 * block. A message body is buffered once, after its length was checked
 * against the cap; its bytes are charged as they arrive to the peer's share
 * of a byte budget (`messages/body_budget.ts`), so announcing a large
 * message costs nothing and a peer at its share waits alone. A body or file
 * that makes no progress for `stallMs` resets its stream, releasing what it
 * held (`messages/stall_watch.ts`). File content is never buffered whole: each FILE_DATA
 * chunk is hashed (SHA-256, incrementally) and handed to the
 * {@linkcode FileSink}; size and hash are checked at FILE_END before the
 * sink commits. A file that is refused early (a duplicate, too large, a
 * write error) gets its receipt at once and its remaining frames are
 * discarded up to FILE_END, so the stream stays usable. A frame that breaks
 * the protocol (unknown kind, over its cap, out of place, malformed) resets
 * the stream with `"<code>: <why>"`.
 *
 * Sending ({@linkcode ExchangeService.sendMessage},
 * {@linkcode ExchangeService.sendFile}): calls on one connection may
 * overlap; their frames go out one request at a time, in call order, and
 * each call gets its own receipt.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  EXCHANGE_MAX_PIPELINED,
  EXCHANGE_PEER_BUFFER,
  EXCHANGE_PEER_RECEIPTS,
  EXCHANGE_STALL_MS,
  EXCHANGE_TOTAL_BUFFER,
  MAX_FILE_CHUNK,
  MAX_FILE_NAME,
  MAX_STREAM_MESSAGE,
  PORT_MESSAGES,
} from "../constants.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { type Connection, StreamError } from "../stream/mod.ts";
import { concat, DecodeError } from "../bytes.ts";
import { BodyBudget } from "./messages/body_budget.ts";
import { REAL_CLOCK, type StallClock, StallWatch } from "./messages/stall_watch.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
  type ReceiptStatus,
} from "../wire/data_message.ts";
import {
  decodeFrameBody,
  encodeFrame,
  encodeFrameHeader,
  type FileOffer,
  type FileReceiptFrame,
  FRAME_FILE_BEGIN,
  FRAME_FILE_DATA,
  FRAME_FILE_END,
  FRAME_MESSAGE,
  frameCap,
  frameKindName,
  FrameReader,
  type MessageReceiptFrame,
  type ReceiptFrame,
  type StoredContent,
} from "../wire/exchange_frame.ts";
import { ConflictRefusal, type RefusalCode, refusalCodeOf } from "./refusal.ts";

export type { FileOffer } from "../wire/exchange_frame.ts";

/** Where received messages go; the answer is what the receipt reports. */
export interface MessageSink {
  /**
   * Stores a message durably (or recognises a retry) and returns its inbox
   * seq; throws a `Refusal` to refuse it (anything else refuses
   * it as `internal`).
   */
  store(sender: PeerIdentity, envelope: Envelope): Promise<{ seq: number; duplicate: boolean }>;
}

/** What a sender learns from the receipt. */
export interface Receipt {
  /** Stored now, stored before (a retry), or refused. */
  status: ReceiptStatus;
  /** The receiver's inbox seq (0 when refused). */
  seq: number;
  /** Refusal code when refused, else "". */
  detail: RefusalCode | "";
  /** What the receiver stored under the id, when `detail` is `conflict`. */
  stored?: StoredContent;
}

/** A file as the sink stored it: what its receipt reports. */
export interface StoredFile {
  /** The transfer id it was stored with. */
  id: string;
  /** Its seq in the received-files index. */
  seq: number;
  /** The (sanitised, unique) name it was stored under. */
  name: string;
  /** Content size in bytes. */
  size: number;
  /** SHA-256 of the content. */
  sha256: Uint8Array;
}

/**
 * Receives one file's content. Methods throw a `Refusal`
 * (`disk_full`, `io_error`, …) to refuse the file.
 */
export interface FileWriter {
  /** Appends content; the bytes are not kept after it resolves. */
  write(bytes: Uint8Array): Promise<void>;
  /**
   * Makes the (verified) content durable under its final name; `duplicate`
   * when the same content from the same sender was stored meanwhile. On
   * failure it has discarded the partial content.
   */
  commit(): Promise<{ file: StoredFile; duplicate: boolean }>;
  /** Discards the partial content; idempotent, never throws. */
  abort(): Promise<void>;
}

/** What {@linkcode FileSink.begin} decided: the content is stored already, or here is a writer. */
export type FileBegin = { existing: StoredFile } | { writer: FileWriter };

/** Where received files go (the daemon's `ReceivedFiles`). */
export interface FileSink {
  /**
   * Starts receiving `offer` from `sender`; throws a `Refusal`
   * (`too_large`, `rate_limited`, …) to refuse it.
   */
  begin(sender: PeerIdentity, offer: FileOffer): Promise<FileBegin>;
}

/** What a file's sender learns from the receipt. */
export interface FileReceipt {
  /** Stored now, the same content stored before, or refused. */
  status: Receipt["status"];
  /** The receiver's received-files seq (0 when refused). */
  seq: number;
  /** The transfer id (that of the earlier transfer for a duplicate). */
  id: string;
  /** The name the receiver stored it under ("" when refused). */
  name: string;
  /** Content size in bytes. */
  size: number;
  /** SHA-256 of the content, hex. */
  sha256: string;
  /** Refusal code when refused (`hash_mismatch`, `size_mismatch`, `too_large`, `disk_full`, …), else "". */
  detail: RefusalCode | "";
}

/** A file to send with {@linkcode ExchangeService.sendFile}. */
export interface OutgoingFile {
  /** Name offered to the receiver (not empty; cut to 255 bytes of UTF-8; the receiver sanitises it). */
  name: string;
  /** Exact content size in bytes. */
  size: number;
  /** SHA-256 of the content (32 bytes), computed beforehand. */
  sha256: Uint8Array;
  /** The content, in chunks of any size; buffers may be reused after each step. */
  read: AsyncIterable<Uint8Array>;
  /** Transfer id (1–128 bytes of UTF-8); random when absent. */
  id?: string;
  /** Called after each chunk is queued: bytes sent so far and the total. */
  onProgress?: (sent: number, size: number) => void;
}

/** Options of {@linkcode ExchangeService}. */
export interface ExchangeServiceOptions {
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

/** Counters of the exchange service, for diagnostics and tests. */
export interface ExchangeStats {
  /** Streams being served. */
  streams: number;
  /** Receipts owed (stores in flight or receipts not yet written), all streams. */
  pendingReceipts: number;
  /** Message bytes buffered now, all peers. */
  bufferedBytes: number;
  /** Times a stream stopped being read because its peer owed too many receipts. */
  throttled: number;
}

const encoder = new TextEncoder();
const noop = () => {};

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function fileReceipt(offer: FileOffer, detail: RefusalCode): FileReceiptFrame {
  return {
    subject: "file",
    status: "refused",
    seq: 0,
    id: offer.id,
    detail,
    name: "",
    size: offer.size,
    sha256: offer.sha256,
  };
}

function storedReceipt(file: StoredFile, duplicate: boolean): FileReceiptFrame {
  return {
    subject: "file",
    status: duplicate ? "duplicate" : "stored",
    seq: file.seq,
    id: file.id,
    detail: "",
    name: file.name,
    size: file.size,
    sha256: file.sha256,
  };
}

/** Receipts a serving stream owes, written in request order as their results arrive. */
class ReceiptQueue {
  #conn: Connection;
  #max: number;
  #queue: Promise<ReceiptFrame>[] = [];
  #pumping = false;
  #failure: unknown = null;
  #wakers: (() => void)[] = [];
  #count: (delta: number) => void;

  /** `count` hears of every receipt queued (+1) and written or forgotten (−n). */
  constructor(conn: Connection, max: number, count: (delta: number) => void) {
    this.#conn = conn;
    this.#max = max;
    this.#count = count;
  }

  /** Queues a receipt; `p` must never reject. */
  push(p: Promise<ReceiptFrame>): void {
    this.#queue.push(p);
    this.#count(1);
    if (!this.#pumping) void this.#pump();
  }

  /** Resolves once another receipt may be queued; rejects when writing failed. */
  async room(): Promise<void> {
    while (this.#failure === null && this.#queue.length >= this.#max) await this.#wait();
    if (this.#failure !== null) throw this.#failure;
  }

  /** Resolves once every queued receipt is written; rejects when writing failed. */
  async drain(): Promise<void> {
    while (this.#failure === null && this.#queue.length > 0) await this.#wait();
    if (this.#failure !== null) throw this.#failure;
  }

  /** Forgets the receipts not yet written (the stream is gone). */
  abandon(): void {
    this.#failure ??= new StreamError("closed", "stream ended");
    // Stores still in flight finish on their own; only the count goes.
    const forgotten = this.#queue.length;
    this.#queue = [];
    this.#count(-forgotten);
    this.#signal();
  }

  #wait(): Promise<void> {
    return new Promise((resolve) => this.#wakers.push(resolve));
  }

  #signal(): void {
    const w = this.#wakers;
    this.#wakers = [];
    for (const wake of w) wake();
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && this.#failure === null) {
        const head = this.#queue[0]!;
        const receipt = await head;
        if (this.#queue[0] !== head) break; // abandoned meanwhile
        await this.#conn.write(encodeFrame({ kind: "receipt", receipt }));
        if (this.#queue[0] !== head) break;
        this.#queue.shift();
        this.#count(-1);
        this.#signal();
      }
    } catch (e) {
      this.#failure ??= e;
      this.#signal();
    } finally {
      this.#pumping = false;
    }
  }
}

interface Waiter {
  subject: ReceiptFrame["subject"];
  resolve(r: ReceiptFrame): void;
  reject(e: unknown): void;
}

/** The sending side of one connection: writes requests in call order, matches receipts in order. */
class Channel {
  #conn: Connection;
  #reader: FrameReader;
  #waiters: Waiter[] = [];
  #reading = false;
  #failure: unknown = null;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(conn: Connection) {
    this.#conn = conn;
    this.#reader = new FrameReader(conn);
  }

  /** The receipt of the next request written (call in write order); never an unhandled rejection. */
  expect(subject: ReceiptFrame["subject"]): { receipt: Promise<ReceiptFrame>; settled(): boolean } {
    let done = false;
    const receipt = new Promise<ReceiptFrame>((resolve, reject) => {
      if (this.#failure !== null) return reject(this.#failure);
      this.#waiters.push({ subject, resolve, reject });
    });
    receipt.then(() => done = true, () => done = true);
    if (!this.#reading && this.#failure === null) void this.#readLoop();
    return { receipt, settled: () => done };
  }

  /** Runs `fn` after every earlier request's frames were written. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(noop);
    return run;
  }

  async #readLoop(): Promise<void> {
    this.#reading = true;
    try {
      while (this.#waiters.length > 0) {
        const frame = await this.#reader.next();
        if (frame === null) {
          throw new StreamError("closed", "the peer closed the stream before every receipt came");
        }
        if (frame.kind !== "receipt") {
          throw new DecodeError(
            "unexpected_frame",
            `Peer sent a ${frame.kind} frame, not a receipt`,
          );
        }
        const w = this.#waiters[0]!;
        if (frame.receipt.subject !== w.subject) {
          throw new DecodeError(
            "unexpected_receipt",
            `Peer sent a ${frame.receipt.subject} receipt for a ${w.subject}`,
          );
        }
        this.#waiters.shift();
        w.resolve(frame.receipt);
      }
    } catch (e) {
      this.#failure = e;
      if (e instanceof DecodeError) this.#conn.reset(`${e.reason}: ${e.message}`);
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const w of waiters) w.reject(e);
    } finally {
      this.#reading = false;
    }
  }
}

/** The data-exchange service on port 1001 streams: both the receiving and the sending side. */
/** Messages up to this size are framed with one copy into a single write. */
const SMALL_MESSAGE = 16 * 1024;

export class ExchangeService {
  /** Port 1001. */
  readonly port = PORT_MESSAGES;
  /** Service name. */
  readonly name = "exchange";
  /** Refused messages, files and streams, by code. */
  readonly refused: Record<string, number> = {};
  #sink: MessageSink;
  #files: FileSink;
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
  #channels = new WeakMap<Connection, Channel>();

  /** Creates the service; throws RangeError for budgets too small for one largest message. */
  constructor(options: ExchangeServiceOptions) {
    this.#sink = options.sink;
    this.#files = options.files;
    this.#maxPipelined = options.maxPipelined ?? EXCHANGE_MAX_PIPELINED;
    this.#peerReceipts = options.peerReceipts ?? EXCHANGE_PEER_RECEIPTS;
    this.#stallMs = options.stallMs ?? EXCHANGE_STALL_MS;
    this.#clock = {
      now: options.now ?? REAL_CLOCK.now,
      after: options.after ?? REAL_CLOCK.after,
    };
    const peer = options.peerBuffer ?? EXCHANGE_PEER_BUFFER;
    const total = options.totalBuffer ?? EXCHANGE_TOTAL_BUFFER;
    const largest = frameCap(FRAME_MESSAGE);
    if (!(this.#maxPipelined >= 1)) {
      throw new RangeError(`maxPipelined is ${this.#maxPipelined}; expected at least 1`);
    }
    if (!(peer >= largest && total >= peer)) {
      throw new RangeError(
        `Exchange buffers of ${peer} per peer and ${total} in total cannot hold one message ` +
          `frame of ${largest} bytes`,
      );
    }
    this.#budget = new BodyBudget({ perPeer: peer, reserve: largest, total });
  }

  /** Current counters. */
  stats(): ExchangeStats {
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
    const reader = new FrameReader(conn);
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
        if (h.kind === FRAME_MESSAGE) await this.#message(peer, reader, h.length, out, watch);
        else if (h.kind === FRAME_FILE_BEGIN) {
          await this.#file(peer, reader, h.length, out, watch);
        } else {
          throw new DecodeError(
            "unexpected_frame",
            `${frameKindName(h.kind)} frame outside a file`,
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
          // never lets a store finish is reset like a silent one.
          const wait = this.#budget.wait(key);
          try {
            await wait.ready;
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
    peer: PeerIdentity,
    reader: FrameReader,
    length: number,
    out: ReceiptQueue,
    watch: StallWatch,
  ): Promise<void> {
    // The length is within the cap (the reader checked it); its bytes stay
    // charged until the store answers.
    const body = await this.#receiveBody(peer.keyHex, reader, length, watch);
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

  async #file(
    peer: PeerIdentity,
    reader: FrameReader,
    length: number,
    out: ReceiptQueue,
    watch: StallWatch,
  ): Promise<void> {
    // The whole file is one body for the stall watch: a sender that stops
    // between chunks would otherwise hold a temp file open for ever.
    watch.arm();
    try {
      await this.#fileFrames(peer, reader, length, out, watch);
    } finally {
      watch.disarm();
    }
  }

  async #fileFrames(
    peer: PeerIdentity,
    reader: FrameReader,
    length: number,
    out: ReceiptQueue,
    watch: StallWatch,
  ): Promise<void> {
    const begin = decodeFrameBody(FRAME_FILE_BEGIN, await reader.body(length));
    if (begin.kind !== "file_begin") throw new Error("unreachable");
    const offer = begin.file;
    let started: FileBegin;
    try {
      started = await this.#files.begin(peer, offer);
    } catch (e) {
      return await this.#refuseFile(reader, out, offer, refusalCodeOf(e), watch);
    }
    if ("existing" in started) {
      out.push(Promise.resolve(storedReceipt(started.existing, true)));
      return await this.#discardFile(reader, watch);
    }
    const writer = started.writer;
    const hash = createHash("sha256");
    let received = 0;
    try {
      for (;;) {
        const h = await reader.header();
        if (h === null) throw new DecodeError("truncated", "Stream ended inside a file");
        if (h.kind === FRAME_FILE_DATA) {
          const frame = decodeFrameBody(h.kind, await reader.body(h.length));
          if (frame.kind !== "file_data") throw new Error("unreachable");
          if (received + frame.data.length > offer.size) {
            await writer.abort();
            return await this.#refuseFile(reader, out, offer, "too_large", watch);
          }
          hash.update(frame.data);
          received += frame.data.length;
          watch.progress();
          try {
            await writer.write(frame.data);
            watch.progress();
          } catch (e) {
            await writer.abort();
            return await this.#refuseFile(reader, out, offer, refusalCodeOf(e), watch);
          }
        } else if (h.kind === FRAME_FILE_END) {
          const end = decodeFrameBody(h.kind, await reader.body(h.length));
          if (end.kind !== "file_end") throw new Error("unreachable");
          out.push(
            Promise.resolve(await this.#finish(writer, offer, end.cancelled, received, hash)),
          );
          return;
        } else {
          throw new DecodeError("unexpected_frame", `${frameKindName(h.kind)} frame inside a file`);
        }
      }
    } catch (e) {
      await writer.abort();
      throw e;
    }
  }

  async #finish(
    writer: FileWriter,
    offer: FileOffer,
    cancelled: boolean,
    received: number,
    hash: ReturnType<typeof createHash>,
  ): Promise<FileReceiptFrame> {
    let code: RefusalCode | "" = "";
    if (cancelled) code = "cancelled";
    else if (received !== offer.size) code = "size_mismatch";
    else if (!sameBytes(new Uint8Array(hash.digest()), offer.sha256)) code = "hash_mismatch";
    if (code === "") {
      try {
        const { file, duplicate } = await writer.commit();
        return storedReceipt(file, duplicate);
      } catch (e) {
        code = refusalCodeOf(e);
      }
    }
    await writer.abort();
    this.#refuse(code);
    return fileReceipt(offer, code);
  }

  async #refuseFile(
    reader: FrameReader,
    out: ReceiptQueue,
    offer: FileOffer,
    code: RefusalCode,
    watch: StallWatch,
  ): Promise<void> {
    this.#refuse(code);
    out.push(Promise.resolve(fileReceipt(offer, code)));
    await this.#discardFile(reader, watch);
  }

  /** Skips the rest of a file the receipt already answered, up to its FILE_END. */
  async #discardFile(reader: FrameReader, watch: StallWatch): Promise<void> {
    for (;;) {
      const h = await reader.header();
      if (h === null) throw new DecodeError("truncated", "Stream ended inside a file");
      if (h.kind === FRAME_FILE_DATA) {
        await reader.skip(h.length);
        watch.progress();
      } else if (h.kind === FRAME_FILE_END) {
        decodeFrameBody(h.kind, await reader.body(h.length));
        return;
      } else {
        throw new DecodeError("unexpected_frame", `${frameKindName(h.kind)} frame inside a file`);
      }
    }
  }

  // ---- Sending side ----

  #channel(conn: Connection): Channel {
    let ch = this.#channels.get(conn);
    if (ch === undefined) {
      ch = new Channel(conn);
      this.#channels.set(conn, ch);
    }
    return ch;
  }

  /**
   * Sends a message on an open port-1001 stream and resolves with its
   * receipt once the peer stored it (or refused it). Throws RangeError for
   * an envelope out of range (data over MAX_STREAM_MESSAGE), StreamError
   * when the stream fails, DecodeError when the peer breaks the protocol.
   */
  async sendMessage(conn: Connection, envelope: Envelope): Promise<Receipt> {
    const body = encodeEnvelope(envelope, MAX_STREAM_MESSAGE);
    const ch = this.#channel(conn);
    const { receipt } = ch.expect("message");
    const header = encodeFrameHeader(FRAME_MESSAGE, body.length);
    // A small message goes as one write (one segment, not two); a large one
    // as two writes back to back, so its body is not copied.
    const wrote = ch.exclusive(() =>
      body.length <= SMALL_MESSAGE
        ? conn.write(concat(header, body))
        : Promise.all([conn.write(header), conn.write(body)]).then(noop)
    );
    wrote.catch(noop); // a failed write also fails the receipt; report that one
    const r = await receipt;
    if (r.subject !== "message") throw new Error("unreachable");
    const stored = r.stored === undefined ? {} : { stored: r.stored };
    return { status: r.status, seq: r.seq, detail: r.detail, ...stored };
  }

  /**
   * Streams a file on an open port-1001 stream and resolves with its
   * receipt once the peer verified and stored it (or refused it). Stops
   * sending as soon as an early receipt (a duplicate, a refusal) arrives.
   * Throws RangeError for bad fields, the source's error (after cancelling
   * the transfer) when reading fails or yields other than `size` bytes,
   * StreamError when the stream fails, DecodeError when the peer breaks the
   * protocol.
   */
  async sendFile(conn: Connection, file: OutgoingFile): Promise<FileReceipt> {
    const offer: FileOffer = {
      id: file.id ?? crypto.randomUUID(),
      name: offeredName(file.name),
      size: file.size,
      sha256: file.sha256,
    };
    const begin = encodeFrame({ kind: "file_begin", file: offer });
    const ch = this.#channel(conn);
    const { receipt, settled } = ch.expect("file");
    let local: { error: unknown } | undefined;
    const wrote = ch.exclusive(async () => {
      await conn.write(begin);
      let sent = 0;
      const it = file.read[Symbol.asyncIterator]();
      let finished = false;
      try {
        while (!settled()) {
          let step: IteratorResult<Uint8Array>;
          try {
            step = await it.next();
          } catch (e) {
            local = { error: e };
            break;
          }
          if (step.done) {
            finished = true;
            break;
          }
          const chunk = step.value;
          if (sent + chunk.length > file.size) {
            local = { error: changed(file, sent + chunk.length) };
            break;
          }
          for (let o = 0; o < chunk.length && !settled(); o += MAX_FILE_CHUNK) {
            // encodeFrame copies: the source may reuse its buffer once we move on.
            const data = chunk.subarray(o, Math.min(chunk.length, o + MAX_FILE_CHUNK));
            await conn.write(encodeFrame({ kind: "file_data", data }));
            sent += data.length;
            file.onProgress?.(sent, file.size);
          }
        }
      } finally {
        if (!finished) await Promise.resolve(it.return?.()).catch(noop);
      }
      if (finished && sent !== file.size && !settled()) local = { error: changed(file, sent) };
      const cancelled = local !== undefined || settled();
      await conn.write(encodeFrame({ kind: "file_end", cancelled }));
    });
    wrote.catch(noop);
    const r = await receipt;
    if (local !== undefined) throw local.error;
    if (r.subject !== "file") throw new Error("unreachable");
    if (r.status !== "refused" && (!sameBytes(r.sha256, offer.sha256) || r.size !== offer.size)) {
      const e = new DecodeError("bad_receipt", "Peer confirmed a file other than the one sent");
      conn.reset(`${e.reason}: ${e.message}`);
      throw e;
    }
    return {
      status: r.status,
      seq: r.seq,
      id: r.id,
      name: r.name,
      size: r.size,
      sha256: r.sha256.toHex(),
      detail: r.detail,
    };
  }
}

/**
 * The name as offered: a name over MAX_FILE_NAME bytes loses the end of its
 * stem (whole characters), keeping a short extension; the receiver
 * sanitises whatever it gets.
 */
function offeredName(name: string): string {
  if (encoder.encode(name).length <= MAX_FILE_NAME) return name;
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : "";
  let stem = "";
  let room = MAX_FILE_NAME - encoder.encode(ext).length;
  for (const ch of name.slice(0, name.length - ext.length)) {
    room -= encoder.encode(ch).length;
    if (room < 0) break;
    stem += ch;
  }
  return stem + ext;
}

function changed(file: OutgoingFile, got: number): Error {
  return new Error(
    `File "${file.name}" changed while it was sent: read ${got} bytes, expected ${file.size}`,
  );
}
