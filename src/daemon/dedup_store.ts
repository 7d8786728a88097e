/**
 * The idempotency store: which (sender key, message id) pairs were already
 * stored, under which inbox seq and with which content (size and content
 * digest), for a window (DESIGN.md, "Messages"). Kept in `HOME/dedup.log`,
 * apart from the inbox, so acking or clearing the inbox never lets a late
 * retransmission in twice — and new content under a used id is told apart
 * from a retry instead of being dropped as one.
 *
 * Log records: `{k: senderKeyHex, id, seq, at: msSinceEpoch, n: size,
 * d: digestHex}`; the last record for a pair wins. Records written before
 * content was kept lack `n` and `d`: their content is unknown. Entries leave
 * by age (the window) or, past the entry cap, oldest first.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../errors.ts";
import { ConflictRefusal } from "../services/refusal.ts";
import { type MessageContent, messageDigest } from "../wire/message_digest.ts";
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

/** What was stored under an id: size of the data and content digest (hex). */
export interface DedupContent {
  /** Size of the message data in bytes. */
  size: number;
  /** Content digest (`wire/message_digest.ts`), hex. */
  digest: string;
}

/** A remembered pair: its inbox seq and, when known, its content. */
export interface DedupEntry {
  /** The inbox seq it was stored under. */
  seq: number;
  /** The content stored under the id; undefined for records from before content was kept. */
  content: DedupContent | undefined;
}

interface Entry {
  key: string;
  id: string;
  seq: number;
  at: number;
  content: DedupContent | undefined;
}

const HEX64 = /^[0-9a-f]{64}$/;

function parseContent(n: unknown, d: unknown): DedupContent | undefined | null {
  if (n === undefined && d === undefined) return undefined;
  if (!isCount(n) || typeof d !== "string" || !HEX64.test(d)) return null;
  return { size: n, digest: d };
}

/** The content a message is remembered by: its data size and content digest. */
export function dedupContent(content: MessageContent): DedupContent {
  return { size: content.data.length, digest: messageDigest(content).toHex() };
}

function record(e: Entry): Record<string, unknown> {
  const r: Record<string, unknown> = { k: e.key, id: e.id, seq: e.seq, at: e.at };
  if (e.content !== undefined) {
    r.n = e.content.size;
    r.d = e.content.digest;
  }
  return r;
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
      const content = parseContent(o.n, o.d);
      if (
        typeof k !== "string" || typeof id !== "string" || !isCount(seq) || !isCount(at) ||
        content === null
      ) {
        throw new PilotError(
          "internal",
          `Log "${path}" is corrupt at line ${i + 1}: malformed entry`,
          "move the file away; the daemon will not overwrite it",
        );
      }
      const s = slot(k, id);
      store.#entries.delete(s);
      store.#entries.set(s, { key: k, id, seq, at, content });
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

  /** What a (sender key, message id) pair was stored as, if within the window. */
  check(keyHex: string, id: string): DedupEntry | undefined {
    const s = slot(keyHex, id);
    const e = this.#entries.get(s);
    if (e === undefined) return undefined;
    if (this.#expired(e, this.#now())) {
      this.#entries.delete(s);
      return undefined;
    }
    return { seq: e.seq, content: e.content === undefined ? undefined : { ...e.content } };
  }

  /**
   * The seq to answer with when this pair was stored with this content (a
   * retry), undefined when the pair is new; throws {@linkcode ConflictRefusal}
   * naming the stored content when the same sender stored other content
   * under the id. A pair remembered without content counts as the same.
   */
  retryOf(keyHex: string, id: string, content: DedupContent): number | undefined {
    const seen = this.check(keyHex, id);
    if (seen === undefined) return undefined;
    const stored = seen.content;
    if (stored === undefined || stored.digest === content.digest) return seen.seq;
    throw new ConflictRefusal(
      { size: stored.size, digest: Uint8Array.fromHex(stored.digest) },
      `Id ${JSON.stringify(id)} from ${keyHex.slice(0, 16)}… names other content ` +
        `(${stored.size} bytes stored, ${content.size} bytes offered)`,
    );
  }

  /**
   * Remembers a pair and its content durably (resolves after the fsync,
   * shared with concurrent calls). {@linkcode check} sees it at once.
   */
  async remember(keyHex: string, id: string, seq: number, content: DedupContent): Promise<void> {
    if (!/^[0-9a-f]+$/.test(keyHex)) {
      throw new TypeError(`Cannot remember sender key "${keyHex}": expected lowercase hex`);
    }
    if (!isCount(content.size) || !HEX64.test(content.digest)) {
      throw new TypeError(
        `Cannot remember content ${JSON.stringify(content)}: expected a size and a hex digest`,
      );
    }
    const now = Math.floor(this.#now());
    const e: Entry = { key: keyHex, id, seq, at: now, content: { ...content } };
    const s = slot(keyHex, id);
    this.#entries.delete(s);
    this.#entries.set(s, e);
    this.#evict(now);
    await this.#log.append(record(e));
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
      log(`dedup: compaction failed: ${e instanceof Error ? e.message : String(e)}`, {
        level: "error",
        event: "store.compaction_failed",
      });
    }
  }

  async #compact(): Promise<void> {
    this.#compacting = true;
    try {
      // Snapshot synchronously: ordered after every append already called.
      const records = [...this.#entries.values()].map(record);
      await this.#log.rewrite(records);
    } finally {
      this.#compacting = false;
    }
  }
}
