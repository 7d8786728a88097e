/**
 * The idempotency store: which (sender key, message id) pairs were already
 * stored, and under which inbox seq, for a window (DESIGN.md, "Messages").
 * Kept in `HOME/dedup.log`, apart from the inbox, so acking or clearing the
 * inbox never lets a late retransmission in twice.
 *
 * Log records: `{k: senderKeyHex, id, seq, at: msSinceEpoch}`; the last
 * record for a pair wins. Entries leave by age (the window) or, past the
 * entry cap, oldest first.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../errors.ts";
import { AppendLog } from "./append_log.ts";
import { HOME_FILES } from "./home.ts";
import { log } from "./log.ts";

/** How long a (key, id) pair is remembered (ms). */
export const DEDUP_WINDOW_MS = 24 * 60 * 60 * 1000;
/** Most pairs remembered at once; beyond it the oldest are forgotten first. */
export const MAX_DEDUP_ENTRIES = 100_000;
/** Dead records the log may hold beyond the live ones before it is compacted. */
export const DEDUP_COMPACT_MARGIN = 10_000;

/** Options of {@linkcode DedupStore.open}; defaults are the published limits. */
export interface DedupStoreOptions {
  /** How long a pair is remembered (ms). */
  windowMs?: number;
  /** Most pairs remembered at once. */
  maxEntries?: number;
  /** Dead records tolerated beyond the live ones before compaction. */
  compactMargin?: number;
  /** The clock (ms since epoch); tests inject one. */
  now?: () => number;
}

interface Entry {
  key: string;
  id: string;
  seq: number;
  at: number;
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function slot(keyHex: string, id: string): string {
  // Unambiguous whatever either string holds.
  return JSON.stringify([keyHex, id]);
}

/** The idempotency store of one home. */
export class DedupStore {
  #log: AppendLog;
  /** Entries by slot; insertion order is the order they were remembered. */
  #entries = new Map<string, Entry>();
  #windowMs: number;
  #maxEntries: number;
  #compactMargin: number;
  #now: () => number;
  #compacting = false;

  private constructor(appendLog: AppendLog, options: DedupStoreOptions) {
    this.#log = appendLog;
    this.#windowMs = options.windowMs ?? DEDUP_WINDOW_MS;
    this.#maxEntries = options.maxEntries ?? MAX_DEDUP_ENTRIES;
    this.#compactMargin = options.compactMargin ?? DEDUP_COMPACT_MARGIN;
    this.#now = options.now ?? Date.now;
  }

  /** Opens the home's store, dropping expired entries (and compacting when any were). */
  static async open(home: string, options: DedupStoreOptions = {}): Promise<DedupStore> {
    const path = join(home, HOME_FILES.dedup);
    const { log: appendLog, records } = await AppendLog.open(path);
    const store = new DedupStore(appendLog, options);
    records.forEach((r, i) => {
      const o = (typeof r === "object" && r !== null ? r : {}) as Record<string, unknown>;
      const { k, id, seq, at } = o;
      if (typeof k !== "string" || typeof id !== "string" || !isCount(seq) || !isCount(at)) {
        throw new PilotError(
          "internal",
          `Log "${path}" is corrupt at line ${i + 1}: malformed entry`,
          "move the file away; the daemon will not overwrite it",
        );
      }
      const s = slot(k, id);
      store.#entries.delete(s);
      store.#entries.set(s, { key: k, id, seq, at });
    });
    const now = store.#now();
    for (const [s, e] of store.#entries) {
      if (store.#expired(e, now)) store.#entries.delete(s);
    }
    store.#evict(now);
    if (appendLog.count > store.#entries.size) await store.#compact();
    return store;
  }

  /** Pairs remembered now (expired ones may linger until the next write). */
  get size(): number {
    return this.#entries.size;
  }

  /** The seq a (sender key, message id) pair was stored under, if within the window. */
  check(keyHex: string, id: string): { seq: number } | undefined {
    const s = slot(keyHex, id);
    const e = this.#entries.get(s);
    if (e === undefined) return undefined;
    if (this.#expired(e, this.#now())) {
      this.#entries.delete(s);
      return undefined;
    }
    return { seq: e.seq };
  }

  /**
   * Remembers a pair durably (resolves after the fsync, shared with
   * concurrent calls). {@linkcode check} sees it at once.
   */
  async remember(keyHex: string, id: string, seq: number): Promise<void> {
    if (!/^[0-9a-f]+$/.test(keyHex)) {
      throw new TypeError(`Cannot remember sender key "${keyHex}": expected lowercase hex`);
    }
    const now = Math.floor(this.#now());
    const e: Entry = { key: keyHex, id, seq, at: now };
    const s = slot(keyHex, id);
    this.#entries.delete(s);
    this.#entries.set(s, e);
    this.#evict(now);
    await this.#log.append({ k: keyHex, id, seq, at: now });
    await this.#maybeCompact();
  }

  /** Flushes and closes the log. */
  async close(): Promise<void> {
    await this.#log.close();
  }

  #expired(e: Entry, now: number): boolean {
    return e.at + this.#windowMs <= now;
  }

  /** Forgets the oldest entries while they are expired or over the cap. */
  #evict(now: number): void {
    for (const [s, e] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && !this.#expired(e, now)) break;
      this.#entries.delete(s);
    }
  }

  async #maybeCompact(): Promise<void> {
    const dead = this.#log.count - this.#entries.size;
    if (this.#compacting || dead <= this.#entries.size + this.#compactMargin) return;
    try {
      await this.#compact();
    } catch (e) {
      // The old log is intact; try again after the next write.
      log(`dedup: compaction failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  async #compact(): Promise<void> {
    this.#compacting = true;
    try {
      // Snapshot synchronously: ordered after every append already called.
      const records = [...this.#entries.values()].map((e) => ({
        k: e.key,
        id: e.id,
        seq: e.seq,
        at: e.at,
      }));
      await this.#log.rewrite(records);
    } finally {
      this.#compacting = false;
    }
  }
}
