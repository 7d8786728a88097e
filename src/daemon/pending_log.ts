/**
 * The durable log of pending trust requests (`HOME/trust_pending.log`): one
 * JSON record per change, so a stranger's request costs one appended line
 * and one fsync shared with every change made meanwhile, not a rewrite of
 * every pending request. Compaction replaces the log atomically.
 *
 * Parsing and torn-tail recovery are {@linkcode AppendLog.open}'s; the file
 * is opened only while a batch is written, so a store that is dropped
 * without closing leaks no handle.
 *
 * @module
 */
import { AppendLog, encodeRecord } from "./append_log.ts";
import { PilotError } from "../errors.ts";
import { writeFileAtomic } from "./home.ts";

interface Batch {
  lines: string[];
  done: PromiseWithResolvers<void>;
}

const encoder = new TextEncoder();

/** An append-only record file written in group commits, reopened per batch. */
export class PendingLog {
  #path: string;
  #count: number;
  #open: Batch | null = null;
  #tail: Promise<void> = Promise.resolve();
  #failure: PilotError | null = null;

  private constructor(path: string, count: number) {
    this.#path = path;
    this.#count = count;
  }

  /** Opens (or creates) the log at `path`; returns it with the records it holds, oldest first. */
  static async open(path: string): Promise<{ log: PendingLog; records: unknown[] }> {
    const { log, records } = await AppendLog.open(path);
    await log.close();
    return { log: new PendingLog(path, records.length), records };
  }

  /** Records in the file, counting every write that has completed. */
  get count(): number {
    return this.#count;
  }

  /** Appends a record; resolves once it is durable. Appends made during a write share the next one. */
  async append(record: unknown): Promise<void> {
    const line = encodeRecord(record);
    let batch = this.#open;
    if (batch === null) {
      batch = { lines: [], done: Promise.withResolvers<void>() };
      this.#open = batch;
      const b = batch;
      void this.#exclusive(() => this.#write(b));
    }
    batch.lines.push(line);
    await batch.done.promise;
  }

  /** Replaces the log with `records` atomically; earlier appends land before it, later ones after. */
  async rewrite(records: readonly unknown[]): Promise<void> {
    const text = records.map((r) => encodeRecord(r) + "\n").join("");
    this.#open = null;
    await this.#exclusive(async () => {
      if (this.#failure !== null) throw this.#failure;
      await writeFileAtomic(this.#path, text, 0o600);
      this.#count = records.length;
    });
  }

  #exclusive(fn: () => Promise<void>): Promise<void> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  async #write(batch: Batch): Promise<void> {
    if (this.#open === batch) this.#open = null;
    if (this.#failure !== null) {
      batch.done.reject(this.#failure);
      return;
    }
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(this.#path, { append: true, create: true, mode: 0o600 });
      const bytes = encoder.encode(batch.lines.join("\n") + "\n");
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.sync();
      this.#count += batch.lines.length;
      batch.done.resolve();
    } catch (e) {
      // The tail is unknown after a failed write or fsync: refuse further
      // appends; the next open drops a torn last line.
      const why = e instanceof Error ? e.message : String(e);
      this.#failure = new PilotError(
        "internal",
        `Cannot write log "${this.#path}": ${why}`,
        "restart the daemon; requests acknowledged so far are safe",
      );
      batch.done.reject(this.#failure);
    } finally {
      file?.close();
    }
  }
}
