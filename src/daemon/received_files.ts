/**
 * Received files: what peers sent with `send-file`, stored under
 * `HOME/received/` (mode 0700) and indexed in `HOME/received.log`, with the
 * inbox's cursor and acknowledgement model (DESIGN.md, "Messages").
 *
 * Receiving: content goes to a temp file `received/.incoming-<uuid>` (mode
 * 0600); the exchange service verifies size and SHA-256, then `commit()`
 * fsyncs it, links it under a safe name that exists nowhere yet (never an
 * overwrite: `name (1).ext`, `name (2).ext`, …), removes the temp name,
 * fsyncs the directory and only then appends the index record. A crash
 * leaves either a temp file (removed at the next open) or a stored file;
 * a stored file without its record is possible only if the daemon dies
 * between the link and the append (it stays on disk, unindexed).
 *
 * Names: the sender's name is untrusted. {@linkcode safeFileName} keeps the
 * last path component only, replaces control and invisible formatting
 * characters, strips leading dots, spaces and dashes (no hidden files, no
 * `.`/`..`, no option-like names) and trailing dots and spaces, and limits
 * the result to MAX_STORED_NAME bytes, keeping a short extension.
 *
 * Duplicates: the same content (SHA-256) from the same sender key is stored
 * once; offering it again returns the earlier receipt, after re-hashing the
 * stored file (a file the user deleted or changed is stored afresh).
 *
 * Index and acknowledgement: each stored file has a `seq` that is never
 * reused; `list` pages by seq, `ack(ids)` and `clear(upTo)` remove entries
 * from the listing. They do not delete files: files are the user's once
 * received, and an acknowledged entry is still remembered (up to
 * MAX_REMEMBERED_FILES) so that a resent copy is recognised. Log records:
 * `{op:"file", ...entry, acked?}`, `{op:"ack", seqs}`, `{op:"clear", up_to}`,
 * `{op:"hwm", seq}`.
 *
 * Errors: I/O failures become a thrown `Refusal` (`disk_full`, `io_error`),
 * which the exchange service sends back as a refused receipt; nothing here
 * crashes the daemon.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, join, resolve } from "node:path";
import { invalid, PilotError } from "../errors.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import type {
  FileBegin,
  FileOffer,
  FileSink,
  FileWriter,
  StoredFile,
} from "../services/exchange_stream.ts";
import { Refusal } from "../services/refusal.ts";
import { appendAcks, AppendLog } from "./append_log.ts";
import { log } from "./log.ts";
import { SeqWaiters } from "./_seq_waiters.ts";

/** Folder of received files inside the home. */
export const RECEIVED_DIR = "received";
/** Index of received files inside the home. */
export const RECEIVED_INDEX = "received.log";
/** Entries listed (not acknowledged) at most; beyond, new files are refused (`rate_limited`). */
export const MAX_RECEIVED_FILES = 10_000;
/** Entries remembered for duplicate detection, acknowledged ones included; the oldest acknowledged go first. */
export const MAX_REMEMBERED_FILES = 20_000;
/** Longest stored file name in bytes of UTF-8 (leaves room for ` (n)` within NAME_MAX). */
export const MAX_STORED_NAME = 200;
/** Entries `list` returns when no limit is given. */
export const DEFAULT_RECEIVED_LIMIT = 100;
/** Largest `limit` `list` accepts. */
export const MAX_RECEIVED_LIMIT = 1000;

const TEMP_PREFIX = ".incoming-";
const MAX_EXTENSION = 16;
const NAME_ATTEMPTS = 1000;
const COMPACT_MARGIN = 1000;
const HEX64 = /^[0-9a-f]{64}$/;
const HINT = "move the file away; the daemon will not overwrite it";
// C0, DEL, C1 controls; zero-width and bidi formatting; line/paragraph separators; BOM;
// interlinear annotations. Control characters are exactly what this pattern is for.
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/gu;
const encoder = new TextEncoder();

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
}

interface Entry {
  file: ReceivedFile;
  acked: boolean;
}

/**
 * The short error code for a storage failure: `disk_full` for ENOSPC and
 * EDQUOT, `io_error` for anything else.
 */
export function storageErrorCode(e: unknown): "disk_full" | "io_error" {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") return "disk_full";
  const message = e instanceof Error ? e.message : "";
  if (/os error (28|122)\)|no space left|quota exceeded/i.test(message)) return "disk_full";
  return "io_error";
}

function refusal(e: unknown): Refusal {
  return new Refusal(storageErrorCode(e), e instanceof Error ? e.message : String(e));
}

function truncateUtf8(s: string, max: number): string {
  let out = "";
  let n = 0;
  for (const ch of s) {
    const len = encoder.encode(ch).length;
    if (n + len > max) break;
    out += ch;
    n += len;
  }
  return out;
}

function splitExtension(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf(".");
  if (dot <= 0 || encoder.encode(name.slice(dot)).length > MAX_EXTENSION) {
    return { stem: name, ext: "" };
  }
  return { stem: name.slice(0, dot), ext: name.slice(dot) };
}

/**
 * Turns an untrusted file name into one that is safe as a single name in
 * one folder: never empty, never `.`/`..`, no path separator, no control
 * or invisible formatting characters, no leading dot or dash, at most
 * MAX_STORED_NAME bytes.
 *
 * @example
 * ```ts
 * import { safeFileName } from "./received_files.ts";
 * safeFileName("../../etc/passwd"); // "passwd"
 * safeFileName(".hidden"); // "hidden"
 * ```
 */
export function safeFileName(name: string): string {
  let s = name.normalize("NFC");
  const slash = Math.max(s.lastIndexOf("/"), s.lastIndexOf("\\"));
  s = s.slice(slash + 1);
  s = s.replace(UNSAFE, "_");
  s = s.replace(/^[\s.\-]+/u, "").replace(/[\s.]+$/u, "");
  if (s === "") s = "file";
  if (encoder.encode(s).length <= MAX_STORED_NAME) return s;
  const { stem, ext } = splitExtension(s);
  const kept = truncateUtf8(stem, MAX_STORED_NAME - encoder.encode(ext).length).replace(
    /[\s.]+$/u,
    "",
  );
  return (kept === "" ? "file" : kept) + ext;
}

/** The n-th candidate for a stored name: `name`, `name (1).ext`, `name (2).ext`, … */
function candidate(name: string, n: number | string): string {
  if (n === 0) return name;
  const { stem, ext } = splitExtension(name);
  return `${stem} (${n})${ext}`;
}

function isSeq(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function corrupt(path: string, index: number, why: string): PilotError {
  return new PilotError("internal", `Log "${path}" is corrupt at line ${index + 1}: ${why}`, HINT);
}

function parseFile(o: Record<string, unknown>): ReceivedFile | undefined {
  const { seq, id, from, from_key, hostname, fingerprint, name, original_name, path, bytes } = o;
  const { sha256, received_at } = o;
  if (!isSeq(seq) || seq === 0 || !isSeq(bytes)) return undefined;
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

function record(e: Entry): Record<string, unknown> {
  return e.acked ? { op: "file", ...e.file, acked: true } : { op: "file", ...e.file };
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

async function hashFile(path: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(256 * 1024);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      bytes += n;
    }
  } finally {
    file.close();
  }
  return { bytes, sha256: hash.digest("hex") };
}

async function syncDirectory(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } catch {
    // Some platforms refuse fsync on a directory; the link itself is atomic.
  } finally {
    d.close();
  }
}

/** The received files of one home: a {@linkcode FileSink} plus the index with cursor and acks. */
export class ReceivedFiles implements FileSink {
  #dir: string;
  #log: AppendLog;
  /** Every remembered entry by seq, in seq order (acknowledged ones included). */
  #all = new Map<number, Entry>();
  /** Unacknowledged entries. */
  #live = 0;
  /** `from_key:sha256` → seq of the stored copy. */
  #bySha = new Map<string, number>();
  /** Commits in progress by `from_key:sha256`: one at a time per content. */
  #committing = new Map<string, Promise<void>>();
  #nextSeq: number;
  /** Highest seq in the index; every lower one is in it too (appends complete in order). */
  #visibleHigh: number;
  #waiters = new SeqWaiters();
  #maxFiles: number;
  #maxFileBytes: number;
  #maxRemembered: number;
  #compacting = false;
  #closed = false;

  private constructor(dir: string, appendLog: AppendLog, high: number, o: ReceivedFilesOptions) {
    this.#dir = dir;
    this.#log = appendLog;
    this.#nextSeq = high + 1;
    this.#visibleHigh = high;
    this.#maxFiles = o.maxFiles ?? MAX_RECEIVED_FILES;
    this.#maxFileBytes = o.maxFileBytes ?? Number.MAX_SAFE_INTEGER;
    this.#maxRemembered = Math.max(o.maxRemembered ?? MAX_REMEMBERED_FILES, this.#maxFiles);
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
    const path = join(home, RECEIVED_INDEX);
    const { log: appendLog, records } = await AppendLog.open(path);
    const all = new Map<number, Entry>();
    let high = 0;
    records.forEach((r, i) => {
      if (typeof r !== "object" || r === null || Array.isArray(r)) {
        throw corrupt(path, i, "not an object");
      }
      const o = r as Record<string, unknown>;
      switch (o.op) {
        case "file": {
          const file = parseFile(o);
          if (file === undefined || (o.acked !== undefined && o.acked !== true)) {
            throw corrupt(path, i, "malformed file entry");
          }
          if (file.seq <= high) throw corrupt(path, i, `seq ${file.seq} does not increase`);
          all.set(file.seq, { file, acked: o.acked === true });
          high = file.seq;
          break;
        }
        case "ack":
          if (!Array.isArray(o.seqs) || !o.seqs.every(isSeq)) {
            throw corrupt(path, i, "malformed ack");
          }
          for (const s of o.seqs) {
            const e = all.get(s);
            if (e !== undefined) e.acked = true;
          }
          break;
        case "clear": {
          if (!isSeq(o.up_to)) throw corrupt(path, i, "malformed clear");
          for (const [s, e] of all) if (s <= (o.up_to as number)) e.acked = true;
          break;
        }
        case "hwm":
          if (!isSeq(o.seq) || o.seq < high) throw corrupt(path, i, "malformed high-water mark");
          high = o.seq;
          break;
        default:
          throw corrupt(path, i, `unknown op ${JSON.stringify(o.op)}`);
      }
    });
    const files = new ReceivedFiles(dir, appendLog, high, options);
    for (const [seq, entry] of all) files.#remember(seq, entry);
    if (appendLog.count > files.#all.size + 1) await files.#compact();
    return files;
  }

  /** Absolute path of the `received/` folder. */
  get dir(): string {
    return this.#dir;
  }

  /** Entries listed now (not acknowledged). */
  get size(): number {
    return this.#live;
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
    const existing = await this.#existing(`${sender.keyHex}:${offer.sha256.toHex()}`);
    if (existing !== undefined) return { existing: stored(existing) };
    if (this.#live >= this.#maxFiles) {
      throw new Refusal("rate_limited", `${this.#live} received files are listed`);
    }
    const temp = join(this.#dir, `${TEMP_PREFIX}${crypto.randomUUID()}`);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    } catch (e) {
      throw refusal(e);
    }
    return { writer: new Incoming(temp, file, () => this.#commitLocked(sender, offer, temp)) };
  }

  /** The stored entry for this sender's content, if it is still on disk unchanged. */
  async #existing(key: string): Promise<ReceivedFile | undefined> {
    const seq = this.#bySha.get(key);
    const entry = seq === undefined ? undefined : this.#all.get(seq);
    if (entry === undefined) return undefined;
    const f = entry.file;
    try {
      // Only a regular file of the right size is worth hashing (never a FIFO the user put there).
      const info = await Deno.lstat(f.path);
      if (!info.isFile || info.size !== f.bytes) throw new Error("changed");
      const now = await hashFile(f.path);
      if (now.bytes === f.bytes && now.sha256 === f.sha256) return f;
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
    const key = `${sender.keyHex}:${offer.sha256.toHex()}`;
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
    const name = safeFileName(offer.name);
    let finalName = "";
    try {
      for (let n = 0; finalName === ""; n++) {
        const c = candidate(name, n < NAME_ATTEMPTS ? n : crypto.randomUUID());
        const path = join(this.#dir, c);
        // Belt and braces: a sanitised name is one component, but never trust it blindly.
        if (dirname(path) !== this.#dir || basename(path) !== c) {
          throw new Error(`Unsafe stored name ${JSON.stringify(c)}`);
        }
        try {
          await Deno.link(temp, path);
          finalName = c;
        } catch (e) {
          if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
          if (n > NAME_ATTEMPTS + 10) throw e;
        }
      }
      await Deno.remove(temp);
      await syncDirectory(this.#dir);
    } catch (e) {
      if (finalName !== "") await Deno.remove(join(this.#dir, finalName)).catch(() => {});
      await Deno.remove(temp).catch(() => {});
      throw refusal(e);
    }
    const path = join(this.#dir, finalName);
    if (this.#closed) {
      await Deno.remove(path).catch(() => {});
      throw new Refusal("not_running");
    }
    const file: ReceivedFile = {
      seq: this.#nextSeq++,
      id: offer.id,
      from: sender.address,
      from_key: sender.keyHex,
      hostname: sender.hostname === "" ? null : sender.hostname,
      fingerprint: sender.fingerprint,
      name: finalName,
      original_name: offer.name,
      path,
      bytes: offer.size,
      sha256: offer.sha256.toHex(),
      received_at: new Date().toISOString(),
    };
    const entry: Entry = { file, acked: false };
    try {
      // Seqs are taken right before the append, so the log holds them in order.
      await this.#log.append(record(entry));
    } catch (e) {
      // Without its record the file would be invisible: take it back and refuse.
      await Deno.remove(path).catch(() => {});
      log(`received files: index append failed: ${e instanceof Error ? e.message : String(e)}`);
      throw new Refusal("io_error", "Cannot append to the received files index");
    }
    this.#remember(file.seq, entry);
    this.#waiters.wake(file.seq, file.from_key);
    return { file: stored(file), duplicate: false };
  }

  #remember(seq: number, entry: Entry): void {
    this.#all.set(seq, entry);
    this.#visibleHigh = Math.max(this.#visibleHigh, seq);
    if (!entry.acked) this.#live++;
    this.#bySha.set(`${entry.file.from_key}:${entry.file.sha256}`, seq);
    if (this.#all.size <= this.#maxRemembered) return;
    for (const [s, e] of this.#all) {
      if (this.#all.size <= this.#maxRemembered) break;
      if (!e.acked) continue;
      this.#all.delete(s);
      const key = `${e.file.from_key}:${e.file.sha256}`;
      if (this.#bySha.get(key) === s) this.#bySha.delete(key);
    }
  }

  // ---- Index: list, ack, clear, wait ----

  /** Returns listed (unacknowledged) entries oldest first, and the seq to read on from. */
  list(options: ReceivedListOptions = {}): ReceivedPage {
    const { after = 0, limit = DEFAULT_RECEIVED_LIMIT, fromKey } = options;
    if (!isSeq(after)) throw invalid(`Cannot list after seq ${after}: expected an integer >= 0`);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_RECEIVED_LIMIT) {
      throw invalid(`Cannot list ${limit} files: expected 1 to ${MAX_RECEIVED_LIMIT}`);
    }
    const files: ReceivedFile[] = [];
    let next = after;
    for (const [seq, e] of this.#all) {
      if (seq <= after || e.acked) continue;
      if (fromKey !== undefined && e.file.from_key !== fromKey) continue;
      files.push({ ...e.file });
      next = seq;
      if (files.length === limit) break;
    }
    return { files, next };
  }

  /**
   * Removes the entries with these ids from the listing (every entry bearing
   * one); returns how many. Files stay on disk. Unknown ids are not an error.
   */
  async ack(ids: readonly string[]): Promise<number> {
    if (this.#closed) throw new Error("Received files are closed");
    const wanted = new Set(ids);
    const seqs: number[] = [];
    for (const [seq, e] of this.#all) if (!e.acked && wanted.has(e.file.id)) seqs.push(seq);
    if (seqs.length === 0) return 0;
    this.#ackSeqs(seqs);
    await appendAcks(this.#log, seqs);
    await this.#maybeCompact();
    return seqs.length;
  }

  /**
   * Removes every entry with seq <= `upTo` from the listing; returns how
   * many. Files stay on disk; entries stored after the call stay listed.
   */
  async clear(upTo: number): Promise<number> {
    if (this.#closed) throw new Error("Received files are closed");
    if (!isSeq(upTo)) throw invalid(`Cannot clear up to seq ${upTo}: expected an integer >= 0`);
    const limit = Math.min(upTo, this.#visibleHigh);
    const seqs: number[] = [];
    for (const [seq, e] of this.#all) {
      if (seq > limit) break;
      if (!e.acked) seqs.push(seq);
    }
    if (seqs.length === 0) return 0;
    this.#ackSeqs(seqs);
    // Only seqs already in the index: any later append lands after this record.
    await this.#log.append({ op: "clear", up_to: Math.min(upTo, this.#visibleHigh) });
    await this.#maybeCompact();
    return seqs.length;
  }

  /**
   * Resolves once a file with seq > `after` (from `fromKey`, if given) is
   * listed; rejects with the signal's reason when it aborts first.
   */
  waitFor(after: number, signal: AbortSignal, options: { fromKey?: string } = {}): Promise<void> {
    const { fromKey } = options;
    if (!isSeq(after)) {
      return Promise.reject(invalid(`Cannot wait after seq ${after}: expected an integer >= 0`));
    }
    for (const [seq, e] of this.#all) {
      if (seq > after && !e.acked && (fromKey === undefined || e.file.from_key === fromKey)) {
        return Promise.resolve();
      }
    }
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.#closed) return Promise.reject(new Error("Received files are closed"));
    return this.#waiters.wait(after, fromKey, signal);
  }

  /** Flushes and closes the index; pending `waitFor` calls reject, later transfers are refused. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const stopping = new PilotError(
      "not_running",
      "Received files are closed: the daemon is stopping",
    );
    this.#waiters.failAll(stopping);
    await this.#log.close();
  }

  #ackSeqs(seqs: readonly number[]): void {
    for (const s of seqs) {
      const e = this.#all.get(s);
      if (e === undefined || e.acked) continue;
      e.acked = true;
      this.#live--;
    }
  }

  async #maybeCompact(): Promise<void> {
    if (this.#compacting || this.#log.count <= this.#all.size + 1 + COMPACT_MARGIN) return;
    try {
      await this.#compact();
    } catch (e) {
      // The old log is intact and the change already durable: try again later.
      log(`received files: compaction failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Rewrites the index as every remembered entry plus the high-water mark. */
  async #compact(): Promise<void> {
    this.#compacting = true;
    try {
      // Snapshot synchronously; the mark goes last because replay insists seqs increase.
      const records: unknown[] = [];
      for (const e of this.#all.values()) records.push(record(e));
      records.push({ op: "hwm", seq: this.#nextSeq - 1 });
      await this.#log.rewrite(records);
    } finally {
      this.#compacting = false;
    }
  }
}

/** A file being received into a temp file. */
class Incoming implements FileWriter {
  #temp: string;
  #file: Deno.FsFile | null;
  #commit: () => Promise<{ file: StoredFile; duplicate: boolean }>;
  #done = false;

  constructor(
    temp: string,
    file: Deno.FsFile,
    commit: () => Promise<{ file: StoredFile; duplicate: boolean }>,
  ) {
    this.#temp = temp;
    this.#file = file;
    this.#commit = commit;
  }

  async write(bytes: Uint8Array): Promise<void> {
    const file = this.#file;
    if (file === null || this.#done) {
      throw new Refusal("internal", "The file was already committed or aborted");
    }
    try {
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
    } catch (e) {
      throw refusal(e);
    }
  }

  async commit(): Promise<{ file: StoredFile; duplicate: boolean }> {
    const file = this.#file;
    if (file === null || this.#done) {
      throw new Refusal("internal", "The file was already committed or aborted");
    }
    this.#done = true;
    try {
      await file.sync();
    } catch (e) {
      this.#close();
      await Deno.remove(this.#temp).catch(() => {});
      throw refusal(e);
    }
    this.#close();
    // From here on the commit removes the temp file whatever happens.
    return await this.#commit();
  }

  async abort(): Promise<void> {
    this.#close();
    if (this.#done) return;
    this.#done = true;
    await Deno.remove(this.#temp).catch(() => {});
  }

  #close(): void {
    try {
      this.#file?.close();
    } catch {
      // Already closed.
    }
    this.#file = null;
  }
}
