/**
 * Receiving one file on a served port-1001 stream, FILE_BEGIN to FILE_END,
 * and the {@linkcode FileSink} the daemon's received files implement.
 * Content is never buffered whole: each FILE_DATA chunk is hashed (SHA-256,
 * incrementally) and handed to the sink's writer; size and hash are checked
 * at FILE_END before the sink commits. A file refused early (a duplicate,
 * too large, a write error) gets its receipt at once and its remaining
 * frames are discarded up to FILE_END, so the stream stays usable. The whole
 * file is one body for the stall watch: a sender that stops between chunks
 * would otherwise hold a temp file open for ever.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { constantTimeEqual, DecodeError } from "../../bytes.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import type { FrameReader } from "../../wire/framing.ts";
import {
  decodeFrameBody,
  type FileOffer,
  type FileReceiptFrame,
  FRAME_FILE_BEGIN,
  FRAME_FILE_DATA,
  FRAME_FILE_END,
  type FrameKind,
  frameKindName,
} from "../../wire/message_frame.ts";
import { type RefusalCode, refusalCodeOf } from "../refusal.ts";
import type { ReceiptQueue } from "./_receipt_queue.ts";
import type { StallWatch } from "./_stall_watch.ts";

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

/** Receives the files of a server's streams into its sink, counting refusals. */
export class FileReceiver {
  #files: FileSink;
  #refuse: (code: RefusalCode) => void;

  /** Stores into `files`; `refuse` counts each refusal by code. */
  constructor(files: FileSink, refuse: (code: RefusalCode) => void) {
    this.#files = files;
    this.#refuse = refuse;
  }

  /** Receives one file whose FILE_BEGIN header was just read; throws DecodeError when the peer breaks the protocol. */
  async receive(
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
      await this.#frames(peer, reader, length, out, watch);
    } finally {
      watch.disarm();
    }
  }

  async #frames(
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
          throw new DecodeError(
            "unexpected_frame",
            `${frameKindName(h.kind as FrameKind)} frame inside a file`,
          );
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
    else if (!constantTimeEqual(new Uint8Array(hash.digest()), offer.sha256)) {
      code = "hash_mismatch";
    }
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
        throw new DecodeError(
          "unexpected_frame",
          `${frameKindName(h.kind as FrameKind)} frame inside a file`,
        );
      }
    }
  }
}
