/**
 * The sending half of messages on reliable streams (virtual port 1001):
 * {@linkcode MessagesClient.deliver} keeps one stream per peer for every
 * message and replaces a broken one once; {@linkcode MessagesClient.sendMessage}
 * and {@linkcode MessagesClient.sendFile} work on a given stream. Calls on
 * one stream may overlap: their frames go out one request at a time, in
 * call order, and each call gets its own receipt (`../stream_rpc.ts`).
 * Frames: `wire/message_frame.ts`; the receiving half: `server.ts`.
 *
 * @module
 */
import { MAX_FILE_CHUNK, MAX_FILE_NAME, MAX_STREAM_MESSAGE } from "../../constants.ts";
import { concat, constantTimeEqual, DecodeError } from "../../bytes.ts";
import { PilotError } from "../../errors.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import { type Connection, StreamError } from "../../stream/mod.ts";
import { encodeEnvelope, type Envelope, type ReceiptStatus } from "../../wire/data_message.ts";
import { FrameReader } from "../../wire/framing.ts";
import {
  decodeFrameBody,
  encodeFrame,
  encodeFrameHeader,
  type FileOffer,
  FRAME_MESSAGE,
  type FrameKind,
  RECEIPT_FRAMES,
  type ReceiptFrame,
  type StoredContent,
} from "../../wire/message_frame.ts";
import type { RefusalCode } from "../refusal.ts";
import { type Settled, StreamRpc } from "../stream_rpc.ts";
import { withTimeout } from "../../with_timeout.ts";

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

/** A file to send with {@linkcode MessagesClient.sendFile}. */
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

/** How {@linkcode MessagesClient.deliver} reaches a peer. */
export interface Delivery {
  /**
   * The peer, reached and trust-checked by the caller; asked again before
   * the one retry, since its session may have gone meanwhile (a restart,
   * or its endpoint now answers with another key).
   */
  reach(timeoutMs: number): Promise<PeerIdentity>;
  /** Milliseconds the whole delivery may take, reaching included. */
  timeoutMs: number;
}

/** Options of {@linkcode MessagesClient}. */
export interface MessagesClientOptions {
  /** Opens a port-1001 stream to a reached peer; the daemon's stream table. */
  open(peer: PeerIdentity, timeoutMs: number): Promise<Connection>;
}

const encoder = new TextEncoder();
const noop = () => {};
/** Messages up to this size are framed with one copy into a single write. */
const SMALL_MESSAGE = 16 * 1024;

/** The settle rule of a request: its receipt must answer the same subject. */
function expecting(subject: ReceiptFrame["subject"]) {
  return (r: ReceiptFrame): Settled<ReceiptFrame> => {
    if (r.subject !== subject) {
      throw new DecodeError(
        "unexpected_receipt",
        `Peer sent a ${r.subject} receipt for a ${subject}`,
      );
    }
    return { value: r };
  };
}

/** The channel of one stream: reads receipts, resets the stream when the peer breaks the protocol. */
function channelOf(conn: Connection): StreamRpc<ReceiptFrame> {
  const reader = new FrameReader(RECEIPT_FRAMES, conn);
  return new StreamRpc<ReceiptFrame>({
    read: async () => {
      const raw = await reader.next();
      if (raw === null) return null;
      const frame = decodeFrameBody(raw.kind as FrameKind, raw.body);
      if (frame.kind !== "receipt") {
        throw new DecodeError("unexpected_frame", `Peer sent a ${frame.kind} frame, not a receipt`);
      }
      return frame.receipt;
    },
    ended: () => new StreamError("closed", "the peer closed the stream before every receipt came"),
    failed: (e) => {
      if (e instanceof DecodeError) conn.reset(`${e.reason}: ${e.message}`);
      return e;
    },
  });
}

/** The sending side of port 1001. */
export class MessagesClient {
  #open: MessagesClientOptions["open"];
  /** The reused stream per peer key. */
  #conns = new Map<string, Promise<Connection>>();
  #channels = new WeakMap<Connection, StreamRpc<ReceiptFrame>>();

  /** A client opening streams with `options.open`. */
  constructor(options: MessagesClientOptions) {
    this.#open = options.open;
  }

  /**
   * Delivers a message on the peer's reused stream and resolves with the
   * peer it went to and its receipt. A broken stream is replaced once
   * (safe: the receiver deduplicates by id), reaching the peer again first.
   * Throws PilotError `timeout` when no receipt came within the time,
   * `unreachable` when both attempts failed, and what `reach` throws.
   */
  async deliver(
    envelope: Envelope,
    delivery: Delivery,
  ): Promise<{ peer: PeerIdentity; receipt: Receipt }> {
    const { timeoutMs } = delivery;
    const deadline = Date.now() + timeoutMs;
    const left = () => Math.max(1, deadline - Date.now());
    let peer = await delivery.reach(timeoutMs);
    for (let attempt = 0;; attempt++) {
      if (attempt > 0) peer = await delivery.reach(left());
      let conn: Connection | undefined;
      try {
        conn = await this.#stream(peer, left());
        const receipt = await withTimeout(this.sendMessage(conn, envelope), left(), "delivery");
        return { peer, receipt };
      } catch (e) {
        this.#conns.delete(peer.keyHex);
        conn?.reset("delivery failed");
        if (e instanceof PilotError && e.code === "timeout" && conn !== undefined) {
          throw new PilotError(
            "timeout",
            `${peer.address} did not confirm the message within ${timeoutMs} ms`,
            `retry with --id ${envelope.id}: it is never stored twice`,
          );
        }
        if (attempt >= 1 || Date.now() >= deadline) {
          if (e instanceof PilotError) throw e;
          throw new PilotError(
            "unreachable",
            `Delivery to ${peer.address} failed: ${(e as Error).message}`,
            `retry with --id ${envelope.id}`,
          );
        }
      }
    }
  }

  /** The open port-1001 stream to a peer, opened when there is none. */
  #stream(peer: PeerIdentity, timeoutMs: number): Promise<Connection> {
    const key = peer.keyHex;
    const open = this.#conns.get(key);
    if (open !== undefined) return open;
    const pending: Promise<Connection> = this.#open(peer, timeoutMs).then((conn) => {
      void conn.closed.then(() => {
        if (this.#conns.get(key) === pending) this.#conns.delete(key);
      });
      return conn;
    });
    pending.catch(() => {
      if (this.#conns.get(key) === pending) this.#conns.delete(key);
    });
    this.#conns.set(key, pending);
    return pending;
  }

  #channel(conn: Connection): StreamRpc<ReceiptFrame> {
    let ch = this.#channels.get(conn);
    if (ch === undefined) {
      ch = channelOf(conn);
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
    const { answer: receipt } = ch.expect(expecting("message"));
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
    const { answer: receipt, settled } = ch.expect(expecting("file"));
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
    if (
      r.status !== "refused" &&
      (!constantTimeEqual(r.sha256, offer.sha256) || r.size !== offer.size)
    ) {
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
