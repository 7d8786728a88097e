/**
 * Received files: what peers sent with `send-file`, stored under
 * `HOME/received/` (mode 0700) and indexed in `HOME/received.log`, with the
 * inbox's cursor and acknowledgement model (DESIGN.md, "Messages").
 *
 * Receiving (`incoming_file.ts`): content goes to a temp file; the messages
 * server verifies size and SHA-256, then the commit fsyncs it, links it
 * under a safe name (`safe_file_name.ts`) that exists nowhere yet, fsyncs
 * the folder and only then appends the index record. A stored file without
 * its record is possible only if the daemon dies between the link and the
 * append (it stays on disk, unindexed).
 *
 * Duplicates: the same content (SHA-256) from the same sender key is stored
 * once; offering it again returns the earlier receipt once the stored file
 * is found unchanged (a file the user deleted or changed is stored afresh).
 * A file's verified hash is remembered with its size, mtime, ctime and inode
 * and the file is re-hashed only when one of them changed: otherwise every
 * 60-byte offer would cost a read of the whole file. Offers of content a
 * peer already stored are rate-limited per peer (`rate_limited`).
 *
 * Index and acknowledgement ({@linkcode SeqIndex}, record
 * `{op:"file", ...entry, acked?}`): `ack(ids)` and `clear(upTo)` remove
 * entries from the listing. They do not delete files: files are the user's
 * once received, and an acknowledged entry is still remembered (up to
 * MAX_REMEMBERED_FILES) so that a resent copy is recognised.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { FILE_DUPLICATE_RATE } from "../constants.ts";
import { invalid, PilotError } from "../errors.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { RateLimiter } from "../session/rate_limit.ts";
import type { FileBegin, FileSink, StoredFile } from "../services/messages/file_receiver.ts";
import { Refusal } from "../services/refusal.ts";
import {
  hashFile,
  IncomingFile,
  linkUnique,
  storageRefusal,
  TEMP_PREFIX,
} from "./incoming_file.ts";
import { log } from "./log.ts";
import type { FileOffer } from "../wire/message_frame.ts";
import { safeFileName } from "./safe_file_name.ts";
import { isSeq, type SeqCodec, SeqIndex } from "./seq_index.ts";

/** Folder of received files inside the home. */
export const RECEIVED_DIR = "received";
/** Index of received files inside the home. */
export const RECEIVED_INDEX = "received.log";
/** Entries listed (not acknowledged) at most; beyond, new files are refused (`rate_limited`). */
export const MAX_RECEIVED_FILES = 10_000;
/** Entries remembered for duplicate detection, acknowledged ones included; the oldest acknowledged go first. */
export const MAX_REMEMBERED_FILES = 20_000;
/** Entries `list` returns when no limit is given. */
export const DEFAULT_RECEIVED_LIMIT = 100;
/** Largest `limit` `list` accepts. */
export const MAX_RECEIVED_LIMIT = 1000;

const COMPACT_MARGIN = 1000;
const HEX64 = /^[0-9a-f]{64}$/;
const HINT = "move the file away; the daemon will not overwrite it";

/** One received file as the index lists it. */
export interface ReceivedFile {
  /** Position in the index: increases with every file, never reused. */
  seq: number;
  /** Transfer id the sender chose. */
  id: string;
  /** Sender's address. */
  from: string;
  /** Sender's Ed25519 key, hex. */
  from_key: string;
  /** Sender's hostname when it was received, or null. */
  hostname: string | null;
  /** Sender's key fingerprint. */
  fingerprint: string;
  /** The name it is stored under (safe; unique in the folder). */
  name: string;
  /** The name the sender offered (untrusted text: escape before showing). */
  original_name: string;
  /** Absolute path of the stored file. */
  path: string;
  /** Size in bytes. */
  bytes: number;
  /** SHA-256 of the content, hex. */
  sha256: string;
  /** ISO time it was stored. */
  received_at: string;
}

/** Options of {@linkcode ReceivedFiles.list}. */
export interface ReceivedListOptions {
  /** Only entries with a greater seq (default 0: from the start). */
  after?: number;
  /** At most this many entries (default 100, at most 1000). */
  limit?: number;
  /** Only files from this sender key (hex). */
  fromKey?: string;
}

/** A page of received files, oldest first. */
export interface ReceivedPage {
  /** The entries. */
  files: ReceivedFile[];
  /** The seq to pass as `after` to read on. */
  next: number;
}

/** Options of {@linkcode ReceivedFiles.open}; defaults are the published limits. */
export interface ReceivedFilesOptions {
  /** Cap on listed (unacknowledged) entries. */
  maxFiles?: number;
  /** Largest file accepted, in bytes (default: no limit but the disk). */
  maxFileBytes?: number;
  /** Cap on remembered entries (for duplicate detection). */
  maxRemembered?: number;
  /** Offers of already-stored content one peer may make: a burst, then so many per second. */
  duplicateRate?: { burst: number; perSecond: number };
  /** Monotonic clock of the duplicate rate (ms); `performance.now` by default. */
  now?: () => number;
}

/** What a stored file looked like when its content was last verified. */
interface Verified {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: bigint;
  sha256: string;
}

/** The stat fields that change whenever a file's content may have. */
async function stamp(path: string): Promise<Omit<Verified, "sha256"> & { isFile: boolean }> {
  // node:fs (for the nanosecond times Deno.lstat lacks) loads on the first file.
  const { lstat } = await import("node:fs/promises");
  const st = await lstat(path, { bigint: true });
  return {
    isFile: st.isFile(),
    size: st.size,
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    ino: st.ino,
  };
}

function parseFile(o: Record<string, unknown>): ReceivedFile | undefined {
  const { seq, id, from, from_key, hostname, fingerprint, name, original_name, path, bytes } = o;
  const { sha256, received_at } = o;
  if (!isSeq(seq) || !isSeq(bytes)) return undefined;
  for (const v of [id, from, from_key, fingerprint, name, original_name, path, received_at]) {
    if (typeof v !== "string") return undefined;
  }
  if (hostname !== null && typeof hostname !== "string") return undefined;
  if (typeof sha256 !== "string" || !HEX64.test(sha256)) return undefined;
  return {
    seq,
    id: id as string,
    from: from as string,
    from_key: from_key as string,
    hostname,
    fingerprint: fingerprint as string,
    name: name as string,
    original_name: original_name as string,
    path: path as string,
    bytes,
    sha256,
    received_at: received_at as string,
  };
}

const CODEC: SeqCodec<ReceivedFile> = {
  op: "file",
  what: "file entry",
  parse: parseFile,
  fields: (f) => ({ ...f }),
  copy: (f) => ({ ...f }),
};

/** The duplicate-detection key of a sender's content. */
function contentKey(fromKey: string, sha256Hex: string): string {
  return `${fromKey}:${sha256Hex}`;
}

function stored(f: ReceivedFile): StoredFile {
  return {
    id: f.id,
    seq: f.seq,
    name: f.name,
    size: f.bytes,
    sha256: Uint8Array.fromHex(f.sha256),
  };
}

/** The received files of one home: a {@linkcode FileSink} plus the index with cursor and acks. */
export class ReceivedFiles implements FileSink {
  #dir: string;
  #index: SeqIndex<ReceivedFile>;
  /** `from_key:sha256` → seq of the stored copy (remembered entries only). */
  #bySha: Map<string, number>;
  /** Commits in progress by `from_key:sha256`: one at a time per content. */
  #committing = new Map<string, Promise<void>>();
  /** Stored files whose content was verified, by path (remembered entries only). */
  #verified: Map<string, Verified>;
  #duplicates: RateLimiter;
  #maxFileBytes: number;
  #closed = false;

  private constructor(
    dir: string,
    index: SeqIndex<ReceivedFile>,
    maps: { bySha: Map<string, number>; verified: Map<string, Verified> },
    options: ReceivedFilesOptions,
  ) {
    this.#dir = dir;
    this.#index = index;
    this.#bySha = maps.bySha;
    this.#verified = maps.verified;
    this.#maxFileBytes = options.maxFileBytes ?? Number.MAX_SAFE_INTEGER;
    this.#duplicates = new RateLimiter({
      ...(options.duplicateRate ?? FILE_DUPLICATE_RATE),
      maxKeys: 4096,
      ...(options.now ? { now: options.now } : {}),
    });
  }

  /**
   * Opens the home's received files: creates `received/` (mode 0700),
   * removes temp files a crash left, replays (and compacts) the index.
   */
  static async open(home: string, options: ReceivedFilesOptions = {}): Promise<ReceivedFiles> {
    const dir = resolve(home, RECEIVED_DIR);
    try {
      await Deno.mkdir(dir, { mode: 0o700 });
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const info = await Deno.stat(dir);
    if (!info.isDirectory) {
      throw new PilotError("internal", `"${dir}" is not a directory`, HINT);
    }
    if (info.mode !== null && (info.mode & 0o077) !== 0) await Deno.chmod(dir, 0o700);
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.startsWith(TEMP_PREFIX)) {
        await Deno.remove(join(dir, entry.name)).catch(() => {});
      }
    }
    const maxFiles = options.maxFiles ?? MAX_RECEIVED_FILES;
    const maxRemembered = Math.max(options.maxRemembered ?? MAX_REMEMBERED_FILES, maxFiles);
    const bySha = new Map<string, number>();
    const verified = new Map<string, Verified>();
    const index = await SeqIndex.open(join(home, RECEIVED_INDEX), CODEC, {
      label: "Received files",
      maxListed: maxFiles,
      maxRemembered,
      compactMargin: COMPACT_MARGIN,
      onForget: (f) => {
        const key = contentKey(f.from_key, f.sha256);
        if (bySha.get(key) === f.seq) bySha.delete(key);
        verified.delete(f.path);
      },
    });
    for (const f of index.remembered()) bySha.set(contentKey(f.from_key, f.sha256), f.seq);
    return new ReceivedFiles(dir, index, { bySha, verified }, options);
  }

  /** Absolute path of the `received/` folder. */
  get dir(): string {
    return this.#dir;
  }

  /** Entries listed now (not acknowledged). */
  get size(): number {
    return this.#index.listed;
  }

  // ---- FileSink ----

  /**
   * Starts receiving a file: the earlier receipt when this sender's same
   * content is stored already, else a writer to a temp file. Throws a
   * Refusal (`too_large`, `rate_limited`, `disk_full`, `io_error`, `not_running`).
   */
  async begin(sender: PeerIdentity, offer: FileOffer): Promise<FileBegin> {
    if (this.#closed) throw new Refusal("not_running");
    if (offer.size > this.#maxFileBytes) {
      throw new Refusal("too_large", `File of ${offer.size} bytes; at most ${this.#maxFileBytes}`);
    }
    const key = contentKey(sender.keyHex, offer.sha256.toHex());
    // Checked before any disk work: answering a duplicate is what an offer flood would cost.
    if (this.#bySha.has(key) && !this.#duplicates.allow(sender.keyHex)) {
      throw new Refusal("rate_limited", "Too many offers of files already stored");
    }
    const existing = await this.#existing(key);
    if (existing !== undefined) return { existing: stored(existing) };
    this.#index.assertRoom();
    const temp = join(this.#dir, `${TEMP_PREFIX}${crypto.randomUUID()}`);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    } catch (e) {
      throw storageRefusal(e);
    }
    return { writer: new IncomingFile(temp, file, () => this.#commitLocked(sender, offer, temp)) };
  }

  /** The stored entry for this sender's content, if it is still on disk unchanged. */
  async #existing(key: string): Promise<ReceivedFile | undefined> {
    const seq = this.#bySha.get(key);
    const f = seq === undefined ? undefined : this.#index.get(seq)?.entry;
    if (f === undefined) return undefined;
    try {
      // Only a regular file of the right size is worth hashing (never a FIFO the user put there).
      const st = await stamp(f.path);
      if (!st.isFile || st.size !== BigInt(f.bytes)) throw new Error("changed");
      const v = this.#verified.get(f.path);
      if (
        v !== undefined && v.sha256 === f.sha256 && v.size === st.size &&
        v.mtimeNs === st.mtimeNs && v.ctimeNs === st.ctimeNs && v.ino === st.ino
      ) return f;
      const now = await hashFile(f.path);
      if (now.bytes === f.bytes && now.sha256 === f.sha256) {
        // Stamped as before hashing: a change during the read shows at the next offer.
        this.#verified.set(f.path, { ...st, sha256: f.sha256 });
        return f;
      }
    } catch {
      // Gone or unreadable: store the new copy instead.
    }
    if (this.#bySha.get(key) === seq) this.#bySha.delete(key);
    return undefined;
  }

  /** Commits a verified temp file, one commit at a time per sender and content. */
  #commitLocked(
    sender: PeerIdentity,
    offer: FileOffer,
    temp: string,
  ): Promise<{ file: StoredFile; duplicate: boolean }> {
    const key = contentKey(sender.keyHex, offer.sha256.toHex());
    const before = this.#committing.get(key) ?? Promise.resolve();
    const run = before.then(() => this.#commit(key, sender, offer, temp));
    const done = run.then(() => {}, () => {});
    this.#committing.set(key, done);
    void done.then(() => {
      if (this.#committing.get(key) === done) this.#committing.delete(key);
    });
    return run;
  }

  async #commit(
    key: string,
    sender: PeerIdentity,
    offer: FileOffer,
    temp: string,
  ): Promise<{ file: StoredFile; duplicate: boolean }> {
    if (this.#closed) {
      await Deno.remove(temp).catch(() => {});
      throw new Refusal("not_running");
    }
    const existing = await this.#existing(key);
    if (existing !== undefined) {
      await Deno.remove(temp).catch(() => {});
      return { file: stored(existing), duplicate: true };
    }
    const name = await linkUnique(this.#dir, temp, safeFileName(offer.name));
    const path = join(this.#dir, name);
    if (this.#closed) {
      await Deno.remove(path).catch(() => {});
      throw new Refusal("not_running");
    }
    let file: ReceivedFile;
    try {
      file = await this.#index.add({
        id: offer.id,
        from: sender.address,
        from_key: sender.keyHex,
        hostname: sender.hostname === "" ? null : sender.hostname,
        fingerprint: sender.fingerprint,
        name,
        original_name: offer.name,
        path,
        bytes: offer.size,
        sha256: offer.sha256.toHex(),
        received_at: new Date().toISOString(),
      });
    } catch (e) {
      // Without its record the file would be invisible: take it back and refuse.
      await Deno.remove(path).catch(() => {});
      if (e instanceof Refusal) throw e;
      log(`received files: index append failed: ${e instanceof Error ? e.message : String(e)}`, {
        level: "error",
        event: "store.write_failed",
      });
      throw new Refusal("io_error", "Cannot append to the received files index");
    }
    this.#bySha.set(key, file.seq);
    try {
      // Its content was verified on the way in: the first duplicate offer need not read it.
      const { isFile: _, ...st } = await stamp(path);
      this.#verified.set(path, { ...st, sha256: file.sha256 });
    } catch {
      // Gone already: the next offer finds out.
    }
    return { file: stored(file), duplicate: false };
  }

  // ---- Index: list, ack, clear, wait ----

  /** Returns listed (unacknowledged) entries oldest first, and the seq to read on from. */
  list(options: ReceivedListOptions = {}): ReceivedPage {
    const { limit = DEFAULT_RECEIVED_LIMIT } = options;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_RECEIVED_LIMIT) {
      throw invalid(`Cannot list ${limit} files: expected 1 to ${MAX_RECEIVED_LIMIT}`);
    }
    const { entries, next } = this.#index.list({ ...options, limit });
    return { files: entries, next };
  }

  /**
   * Removes the entries with these ids (from `fromKey`, if given) from the
   * listing; returns how many. Files stay on disk. An id two senders chose
   * is a `conflict` unless `fromKey` scopes it. Unknown ids are not an error.
   */
  ack(ids: readonly string[], options: { fromKey?: string } = {}): Promise<number> {
    return this.#index.ackIds(ids, options);
  }

  /**
   * Removes every entry with seq <= `upTo` from the listing; returns how
   * many. Files stay on disk; entries stored after the call stay listed.
   */
  clear(upTo: number): Promise<number> {
    return this.#index.clear(upTo);
  }

  /**
   * Resolves once a file with seq > `after` (from `fromKey`, if given) is
   * listed; rejects with the signal's reason when it aborts first.
   */
  waitFor(after: number, signal: AbortSignal, options: { fromKey?: string } = {}): Promise<void> {
    return this.#index.waitFor(after, signal, options);
  }

  /** Flushes and closes the index; pending `waitFor` calls reject, later transfers are refused. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#index.close();
  }
}
