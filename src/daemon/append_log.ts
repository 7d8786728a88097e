/**
 * An append-only log of JSON records, one per line, mode 0600: the durable
 * half of the inbox and the dedup store.
 *
 * Crash safety (`kill -9` at any instant): an append resolves only after its
 * bytes are written and fsynced, so a crash can tear only the last,
 * unacknowledged line; {@linkcode AppendLog.open} drops and truncates that
 * line. Compaction ({@linkcode AppendLog.rewrite}) goes through
 * `writeFileAtomic`, so the file is always the old log or the new one.
 *
 * Records are written as pure ASCII (non-ASCII characters become `\uXXXX`
 * escapes): a byte offset is then a string index, and any non-ASCII byte in a
 * complete line is certain corruption.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { PilotError } from "../errors.ts";
import { createFileAtomic, readPrivateFile, writeFileAtomic } from "./home.ts";

/**
 * Default cap on one record's encoded size (bytes, newline excluded): room
 * for 64 KiB of message data even when JSON escaping grows it sixfold.
 */
export const MAX_RECORD_BYTES = 512 * 1024;

/** Options of {@linkcode AppendLog.open}. */
export interface AppendLogOptions {
  /** Largest encoded record in bytes; a bigger one throws RangeError. */
  maxRecordBytes?: number;
  /** Makes written bytes durable (default `file.sync()`); tests wrap it to count fsyncs. */
  sync?: (file: Deno.FsFile) => Promise<void>;
}

interface Batch {
  lines: string[];
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

const HINT = "move the file away; the daemon will not overwrite it";
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;
const encoder = new TextEncoder();

/**
 * Encodes a record as the single ASCII line (newline excluded) the log
 * stores; throws RangeError above `maxBytes`, TypeError for non-JSON values.
 */
export function encodeRecord(record: unknown, maxBytes: number = MAX_RECORD_BYTES): string {
  const json: string | undefined = JSON.stringify(record);
  if (typeof json !== "string") {
    throw new TypeError(`Cannot log a record of type ${typeof record}: expected a JSON value`);
  }
  const ascii = json.replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  if (ascii.length > maxBytes) {
    throw new RangeError(`Record is ${ascii.length} bytes; at most ${maxBytes}`);
  }
  return ascii;
}

function parseLine(line: string): { value: unknown } | undefined {
  if (!PRINTABLE_ASCII.test(line)) return undefined;
  try {
    return { value: JSON.parse(line) };
  } catch {
    return undefined;
  }
}

/**
 * Removes temp files a rewrite killed mid-way left beside the log
 * (`writeFileAtomic` names them `<path>.tmp-<uuid>`). Safe because one daemon
 * owns the home.
 */
async function removeStaleTemps(path: string): Promise<void> {
  const dir = dirname(path);
  const prefix = `${basename(path)}.tmp-`;
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.startsWith(prefix)) {
      await Deno.remove(join(dir, entry.name)).catch(() => {});
    }
  }
}

async function openForAppend(path: string): Promise<Deno.FsFile> {
  return await Deno.open(path, { append: true, mode: 0o600 });
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/** An append-only file of newline-terminated JSON records with group commit. */
export class AppendLog {
  #path: string;
  #file: Deno.FsFile;
  #maxRecordBytes: number;
  #sync: (file: Deno.FsFile) => Promise<void>;
  #size: number;
  #count: number;
  /** The batch new appends join; null once its write has started. */
  #open: Batch | null = null;
  /** Tail of the queue of writes and rewrites, which run one at a time. */
  #tail: Promise<void> = Promise.resolve();
  #failure: PilotError | null = null;
  #closed = false;

  private constructor(
    path: string,
    file: Deno.FsFile,
    size: number,
    count: number,
    options: AppendLogOptions,
  ) {
    this.#path = path;
    this.#file = file;
    this.#size = size;
    this.#count = count;
    this.#maxRecordBytes = options.maxRecordBytes ?? MAX_RECORD_BYTES;
    this.#sync = options.sync ?? ((f) => f.sync());
  }

  /**
   * Opens (or creates) the log at `path` and replays its records. A torn last
   * line is dropped and truncated away; a bad line before it is corruption
   * (PilotError "internal" naming the line). Leftovers of a killed rewrite go.
   */
  static async open(
    path: string,
    options: AppendLogOptions = {},
  ): Promise<{ log: AppendLog; records: unknown[] }> {
    await removeStaleTemps(path);
    let text = await readPrivateFile(path);
    if (text === null) {
      text = (await createFileAtomic(path, "", 0o600)) ? "" : (await readPrivateFile(path)) ?? "";
    }
    const end = text.lastIndexOf("\n") + 1;
    const lines = end === 0 ? [] : text.slice(0, end - 1).split("\n");
    const records: unknown[] = [];
    let keep = end;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] ?? "";
      const parsed = parseLine(line);
      if (parsed !== undefined) {
        records.push(parsed.value);
        continue;
      }
      if (i === lines.length - 1 && end === text.length) {
        keep = end - line.length - 1;
        break;
      }
      throw new PilotError(
        "internal",
        `Log "${path}" is corrupt at line ${i + 1}: not a JSON record`,
        HINT,
      );
    }
    const file = await openForAppend(path);
    try {
      if (keep < text.length) {
        await file.truncate(keep);
        await file.sync();
      }
    } catch (e) {
      file.close();
      throw e;
    }
    return { log: new AppendLog(path, file, keep, records.length, options), records };
  }

  /** The log's path. */
  get path(): string {
    return this.#path;
  }

  /** Bytes in the file, counting every write that has completed. */
  get size(): number {
    return this.#size;
  }

  /** Records in the file, counting every write that has completed. */
  get count(): number {
    return this.#count;
  }

  /**
   * Appends a record; resolves once it is written and fsynced. Appends made
   * while a write is in flight share the next single write and fsync.
   */
  async append(record: unknown): Promise<void> {
    this.#assertOpen();
    const line = encodeRecord(record, this.#maxRecordBytes);
    let batch = this.#open;
    if (batch === null) {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      batch = { lines: [], promise, resolve, reject };
      this.#open = batch;
      const b = batch;
      void this.#exclusive(() => this.#flush(b));
    }
    batch.lines.push(line);
    await batch.promise;
  }

  /**
   * Replaces the whole log with `records` atomically (compaction). Appends
   * called before it land before it (and are replaced); later ones after it.
   */
  async rewrite(records: readonly unknown[]): Promise<void> {
    this.#assertOpen();
    const lines = records.map((r) => encodeRecord(r, this.#maxRecordBytes) + "\n");
    const text = lines.join("");
    this.#open = null;
    await this.#exclusive(async () => {
      if (this.#failure !== null) throw this.#failure;
      await writeFileAtomic(this.#path, text, 0o600);
      const old = this.#file;
      try {
        this.#file = await openForAppend(this.#path);
      } catch (e) {
        this.#failure = this.#broken(e);
        throw this.#failure;
      } finally {
        old.close();
      }
      this.#size = text.length;
      this.#count = lines.length;
    });
  }

  /** Waits for queued appends, then closes the file; later appends throw. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#exclusive(() => {
      this.#file.close();
      return Promise.resolve();
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`Log "${this.#path}" is closed`);
  }

  #exclusive(fn: () => Promise<void>): Promise<void> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  async #flush(batch: Batch): Promise<void> {
    if (this.#open === batch) this.#open = null;
    if (this.#failure !== null) {
      batch.reject(this.#failure);
      return;
    }
    try {
      const bytes = encoder.encode(batch.lines.join("\n") + "\n");
      await writeAll(this.#file, bytes);
      await this.#sync(this.#file);
      this.#size += bytes.length;
      this.#count += batch.lines.length;
      batch.resolve();
    } catch (e) {
      // After a failed write or fsync the file's tail is unknown (fsyncgate):
      // refuse further appends; reopening truncates any torn line.
      this.#failure = this.#broken(e);
      batch.reject(this.#failure);
    }
  }

  #broken(e: unknown): PilotError {
    const why = e instanceof Error ? e.message : String(e);
    return new PilotError(
      "internal",
      `Cannot write log "${this.#path}": ${why}`,
      "restart the daemon; records acknowledged so far are safe",
    );
  }
}

/** Seqs per `ack` record, so one record stays far under the record cap. */
const ACK_CHUNK = 10_000;

/** Appends `{op: "ack", seqs}` records for `seqs` (chunked) and waits until they are durable. */
export async function appendAcks(log: AppendLog, seqs: readonly number[]): Promise<void> {
  const writes: Promise<void>[] = [];
  for (let i = 0; i < seqs.length; i += ACK_CHUNK) {
    writes.push(log.append({ op: "ack", seqs: seqs.slice(i, i + ACK_CHUNK) }));
  }
  await Promise.all(writes);
}
