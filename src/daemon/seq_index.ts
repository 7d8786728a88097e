/**
 * A durable, seq-numbered index over an {@linkcode AppendLog}: what the inbox
 * and the received files share (DESIGN.md, "Messages"). Its owner supplies
 * the record type; the index owns the rest:
 *
 * - every entry gets a `seq` that is never reused: the log records each
 *   entry's seq and, after compaction, the high-water mark;
 * - an entry becomes visible (to `list` and `waitFor`) only once it is
 *   durable, and in seq order, so `clear(upTo)` with a seq some `list`
 *   returned can never remove an entry that list did not see;
 * - entries leave the listing by `ack(seqs)` or `clear(upTo)`; an owner may
 *   keep acknowledged entries in memory (up to `maxRemembered` entries in
 *   all, oldest acknowledged forgotten first), e.g. to recognise a resent
 *   file;
 * - caps refuse (`Refusal` "rate_limited") instead of evicting;
 * - the log is compacted (atomically) once dead records pile up.
 *
 * Log records: `{op: <owner's op>, seq, ...fields, acked?: true}`,
 * `{op: "ack", seqs}`, `{op: "clear", up_to}` and `{op: "hwm", seq}`. Acks
 * name seqs, not ids, so that replaying the log removes exactly what was
 * removed in memory.
 *
 * @module
 */
import { invalid, PilotError } from "../errors.ts";
import { Refusal } from "../services/refusal.ts";
import { appendAcks, AppendLog, encodeRecord } from "./append_log.ts";
import { log } from "./log.ts";
import { SeqWaiters } from "./_seq_waiters.ts";

/** Dead bytes the log may hold beyond the live ones before it is compacted. */
const COMPACT_MARGIN_BYTES = 16 * 1024 * 1024;
const HINT = "move the file away; the daemon will not overwrite it";

/** What every entry of a {@linkcode SeqIndex} has. */
export interface SeqEntry {
  /** Position in the index: increases with every entry, never reused. */
  seq: number;
  /** The id its sender chose; ids are per sender. */
  id: string;
  /** Sender's Ed25519 key, hex (the `fromKey` filter). */
  from_key: string;
  /** Sender's address (names the sender in errors). */
  from: string;
  /** Sender's key fingerprint (names the sender in errors). */
  fingerprint: string;
}

/** How an owner's entries are read from and written to the log. */
export interface SeqCodec<T extends SeqEntry> {
  /** The `op` of entry records (`"msg"`, `"file"`). */
  op: string;
  /** What an entry is called in corruption errors (`"message"`, `"file entry"`). */
  what: string;
  /** The entry a record holds (seq included), or undefined when it is malformed. */
  parse(record: Record<string, unknown>): T | undefined;
  /** The record fields of an entry, seq included (the index adds `op` and `acked`). */
  fields(entry: T): Record<string, unknown>;
  /** A copy callers may change without changing the index. */
  copy(entry: T): T;
  /** What an entry counts against `maxBytes` (default: its record's bytes). */
  weigh?(entry: T, recordBytes: number): number;
}

/** Options of {@linkcode SeqIndex.open}. */
export interface SeqIndexOptions<T> {
  /** Name in errors and logs (`"Inbox"`, `"Received files"`). */
  label: string;
  /** Cap on listed entries (appends in flight included); default none. */
  maxListed?: number;
  /** Cap on the weight of listed entries (their records' bytes unless the codec weighs them); default none. */
  maxBytes?: number;
  /** Largest record in bytes (see {@linkcode AppendLog}). */
  maxRecordBytes?: number;
  /**
   * Entries remembered at most, listed ones included: acknowledged entries
   * beyond it are forgotten, oldest first. Default 0: forgotten at once.
   */
  maxRemembered?: number;
  /** Dead records tolerated beyond the live ones before compaction. */
  compactMargin?: number;
  /** Called when an entry is forgotten (acknowledged and beyond `maxRemembered`). */
  onForget?: (entry: T) => void;
}

/** Options of {@linkcode SeqIndex.list}. */
export interface SeqListOptions {
  /** Only entries with a greater seq (default 0: from the start). */
  after?: number;
  /** At most this many entries. */
  limit: number;
  /** Only entries from this sender key (hex). */
  fromKey?: string;
}

/** A page of entries, oldest first. */
export interface SeqPage<T> {
  /** The entries. */
  entries: T[];
  /** The seq to pass as `after` to read on. */
  next: number;
}

interface Slot<T> {
  entry: T;
  acked: boolean;
  /** Bytes of its log record, newline included. */
  size: number;
  /** What it counts against `maxBytes`. */
  weight: number;
}

/** Whether `v` can be a seq (a safe integer >= 0). */
export function isSeq(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function corrupt(path: string, index: number, why: string): PilotError {
  return new PilotError("internal", `Log "${path}" is corrupt at line ${index + 1}: ${why}`, HINT);
}

/** A durable seq-numbered index of `T` with cursor reads, acks, clears and waits. */
export class SeqIndex<T extends SeqEntry> {
  #log: AppendLog;
  #codec: SeqCodec<T>;
  #label: string;
  /** Durable entries by seq, acknowledged ones kept included; insertion order is seq order. */
  #slots = new Map<number, Slot<T>>();
  /** Entries whose append is in flight, by seq (all above `#visibleHigh`). */
  #pending = new Map<number, Slot<T>>();
  /** Listed entries (durable, not acknowledged) plus pending ones. */
  #listed = 0;
  /** Weight of listed and pending entries. */
  #listedBytes = 0;
  /** Bytes of the records of every held entry (remembered and pending). */
  #heldBytes = 0;
  #acked = 0;
  #nextSeq: number;
  /** Highest seq made visible; every seq at or below it is durable. */
  #visibleHigh: number;
  #waiters = new SeqWaiters();
  #maxListed: number;
  #maxBytes: number;
  #maxRecordBytes: number | undefined;
  #maxRemembered: number;
  #compactMargin: number;
  #onForget: (entry: T) => void;
  #compacting = false;
  #closed = false;

  private constructor(
    appendLog: AppendLog,
    codec: SeqCodec<T>,
    high: number,
    options: SeqIndexOptions<T>,
  ) {
    this.#log = appendLog;
    this.#codec = codec;
    this.#label = options.label;
    this.#nextSeq = high + 1;
    this.#visibleHigh = high;
    this.#maxListed = options.maxListed ?? Infinity;
    this.#maxBytes = options.maxBytes ?? Infinity;
    this.#maxRecordBytes = options.maxRecordBytes;
    this.#maxRemembered = options.maxRemembered ?? 0;
    this.#compactMargin = options.compactMargin ?? 1000;
    this.#onForget = options.onForget ?? (() => {});
  }

  /**
   * Opens the index at `path`, replaying (and compacting) its log; throws
   * PilotError "internal" naming the line of a malformed record.
   */
  static async open<T extends SeqEntry>(
    path: string,
    codec: SeqCodec<T>,
    options: SeqIndexOptions<T>,
  ): Promise<SeqIndex<T>> {
    const { log: appendLog, records } = await AppendLog.open(
      path,
      options.maxRecordBytes === undefined ? {} : { maxRecordBytes: options.maxRecordBytes },
    );
    const all = new Map<number, { entry: T; acked: boolean }>();
    let high = 0;
    records.forEach((r, i) => {
      if (typeof r !== "object" || r === null || Array.isArray(r)) {
        throw corrupt(path, i, "not an object");
      }
      const o = r as Record<string, unknown>;
      switch (o.op) {
        case codec.op: {
          const entry = codec.parse(o);
          if (entry === undefined || !isSeq(entry.seq) || entry.seq === 0) {
            throw corrupt(path, i, `malformed ${codec.what}`);
          }
          if (o.acked !== undefined && o.acked !== true) {
            throw corrupt(path, i, `malformed ${codec.what}`);
          }
          if (entry.seq <= high) throw corrupt(path, i, `seq ${entry.seq} does not increase`);
          all.set(entry.seq, { entry, acked: o.acked === true });
          high = entry.seq;
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
          const upTo = o.up_to;
          if (!isSeq(upTo)) throw corrupt(path, i, "malformed clear");
          for (const [s, e] of all) if (s <= upTo) e.acked = true;
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
    const index = new SeqIndex(appendLog, codec, high, options);
    for (const { entry, acked } of all.values()) {
      const size = index.#sizeOf(entry, acked);
      const slot = { entry, acked, size, weight: index.#weigh(entry, size) };
      index.#slots.set(entry.seq, slot);
      index.#count(slot, 1);
    }
    index.#forgetBeyondCap();
    // The high-water mark takes one record in a compacted log.
    if (appendLog.count > index.#slots.size + 1) await index.#compact();
    return index;
  }

  /** Listed entries (not acknowledged), appends in flight included. */
  get listed(): number {
    return this.#listed;
  }

  /** Weight of the listed entries (see {@linkcode SeqCodec.weigh}). */
  get listedBytes(): number {
    return this.#listedBytes;
  }

  /** Every remembered entry (acknowledged ones kept included), oldest first. */
  *remembered(): IterableIterator<T> {
    for (const slot of this.#slots.values()) yield slot.entry;
  }

  /** The remembered entry with this seq, and whether it is acknowledged. */
  get(seq: number): { entry: T; acked: boolean } | undefined {
    const slot = this.#slots.get(seq);
    return slot === undefined ? undefined : { entry: slot.entry, acked: slot.acked };
  }

  /**
   * Refuses (`Refusal` "rate_limited") when `weight` more would take the
   * listing past its caps; an owner calls it before work the cap must spare.
   */
  assertRoom(weight = 0): void {
    if (this.#listed >= this.#maxListed || this.#listedBytes + weight > this.#maxBytes) {
      throw new Refusal(
        "rate_limited",
        `${this.#label}: full, ${this.#listed} entries, ${this.#listedBytes} bytes`,
      );
    }
  }

  /**
   * Stores an entry durably and returns it with its new seq; refuses with
   * `Refusal` "too_large" (record over its cap), "rate_limited" (full) or
   * "not_running" (closed). Never evicts.
   */
  async add(fields: Omit<T, "seq">): Promise<T> {
    if (this.#closed) throw new Refusal("not_running", `${this.#label}: closed`);
    const entry = this.#codec.copy({ ...fields, seq: this.#nextSeq } as T);
    let size: number;
    try {
      size = this.#sizeOf(entry, false);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      throw new Refusal("too_large", `${this.#label}: entry too large to store: ${e.message}`);
    }
    const weight = this.#weigh(entry, size);
    this.assertRoom(weight);
    this.#nextSeq++;
    const slot: Slot<T> = { entry, acked: false, size, weight };
    this.#pending.set(entry.seq, slot);
    this.#count(slot, 1);
    try {
      await this.#log.append(this.#record(slot));
    } catch (e) {
      this.#pending.delete(entry.seq);
      this.#count(slot, -1);
      throw e;
    }
    this.#pending.delete(entry.seq);
    // Appends complete in call order, hence in seq order: insertion order stays seq order.
    this.#slots.set(entry.seq, slot);
    this.#visibleHigh = entry.seq;
    this.#waiters.wake(entry.seq, entry.from_key);
    return this.#codec.copy(entry);
  }

  /** Listed entries oldest first, and the seq to read on from; `after` and `limit` are checked. */
  list(options: SeqListOptions): SeqPage<T> {
    const { after = 0, limit, fromKey } = options;
    if (!isSeq(after)) throw invalid(`Cannot list after seq ${after}: expected an integer >= 0`);
    const entries: T[] = [];
    let next = after;
    for (const [seq, slot] of this.#slots) {
      if (seq <= after || slot.acked) continue;
      if (fromKey !== undefined && slot.entry.from_key !== fromKey) continue;
      entries.push(this.#codec.copy(slot.entry));
      next = seq;
      if (entries.length === limit) break;
    }
    return { entries, next };
  }

  /** The seqs of listed entries `match` accepts, oldest first. */
  find(match: (entry: T) => boolean): number[] {
    const seqs: number[] = [];
    for (const [seq, slot] of this.#slots) if (!slot.acked && match(slot.entry)) seqs.push(seq);
    return seqs;
  }

  /**
   * Takes the listed entries with these ids (from `fromKey`, if given) off
   * the listing; returns how many. Ids are chosen per sender: an id that
   * names entries from more than one sender is a `conflict` naming them
   * unless `fromKey` scopes it, and then nothing is taken.
   */
  async ackIds(ids: readonly string[], options: { fromKey?: string } = {}): Promise<number> {
    const { fromKey } = options;
    const wanted = new Set(ids);
    const seqs = this.find((e) =>
      wanted.has(e.id) && (fromKey === undefined || e.from_key === fromKey)
    );
    if (fromKey === undefined) this.#assertOneSender(seqs);
    return await this.ack(seqs);
  }

  /** Takes these seqs off the listing, durably; returns how many were listed. */
  async ack(seqs: readonly number[]): Promise<number> {
    this.#assertOpen();
    const done = seqs.filter((s) => this.#markAcked(s));
    if (done.length === 0) return 0;
    this.#forgetBeyondCap();
    await appendAcks(this.#log, done);
    await this.#maybeCompact();
    return done.length;
  }

  /**
   * Takes every entry with seq <= `upTo` off the listing; returns how many.
   * Entries not yet visible when it is called are never taken.
   */
  async clear(upTo: number): Promise<number> {
    this.#assertOpen();
    if (!isSeq(upTo)) throw invalid(`Cannot clear up to seq ${upTo}: expected an integer >= 0`);
    const limit = Math.min(upTo, this.#visibleHigh);
    let n = 0;
    for (const seq of this.#slots.keys()) {
      if (seq > limit) break;
      if (this.#markAcked(seq)) n++;
    }
    if (n === 0) return 0;
    this.#forgetBeyondCap();
    // Only seqs already visible: any later append lands after this record.
    await this.#log.append({ op: "clear", up_to: limit });
    await this.#maybeCompact();
    return n;
  }

  /**
   * Resolves once a listed entry with seq > `after` (from `fromKey`, if
   * given) exists; rejects with the signal's reason when it aborts first.
   */
  waitFor(after: number, signal: AbortSignal, options: { fromKey?: string } = {}): Promise<void> {
    const { fromKey } = options;
    if (!isSeq(after)) {
      return Promise.reject(invalid(`Cannot wait after seq ${after}: expected an integer >= 0`));
    }
    if (this.#visibleHigh > after) {
      for (const [seq, slot] of this.#slots) {
        if (seq <= after || slot.acked) continue;
        if (fromKey === undefined || slot.entry.from_key === fromKey) return Promise.resolve();
      }
    }
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.#closed) {
      return Promise.reject(new PilotError("not_running", `${this.#label}: closed`));
    }
    return this.#waiters.wait(after, fromKey, signal);
  }

  /** Flushes and closes the log; pending `waitFor` calls reject, later changes throw. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiters.failAll(
      new PilotError("not_running", `${this.#label}: closed, the daemon is stopping`),
    );
    await this.#log.close();
  }

  #assertOneSender(seqs: readonly number[]): void {
    const byId = new Map<string, Map<string, T>>();
    for (const seq of seqs) {
      const e = this.#slots.get(seq)?.entry;
      if (e === undefined) continue;
      const senders = byId.get(e.id) ?? new Map<string, T>();
      senders.set(e.from_key, e);
      byId.set(e.id, senders);
    }
    for (const [id, senders] of byId) {
      if (senders.size < 2) continue;
      const names = [...senders.values()].map((e) => `${e.from} (${e.fingerprint})`);
      throw new PilotError(
        "conflict",
        `Id ${JSON.stringify(id)} is used by ${senders.size} senders: ${names.join(", ")}`,
        "name the sender with --from PEER",
      );
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error(`${this.#label}: closed`);
  }

  #record(slot: Slot<T>): Record<string, unknown> {
    const fields = { op: this.#codec.op, ...this.#codec.fields(slot.entry) };
    return slot.acked ? { ...fields, acked: true } : fields;
  }

  #sizeOf(entry: T, acked: boolean): number {
    const slot = { entry, acked, size: 0, weight: 0 };
    return encodeRecord(this.#record(slot), this.#maxRecordBytes).length + 1;
  }

  #weigh(entry: T, recordBytes: number): number {
    return this.#codec.weigh?.(entry, recordBytes) ?? recordBytes;
  }

  /** Adds (`sign` 1) or removes (-1) a slot's share of the counters. */
  #count(slot: Slot<T>, sign: 1 | -1): void {
    this.#heldBytes += sign * slot.size;
    if (slot.acked) this.#acked += sign;
    else {
      this.#listed += sign;
      this.#listedBytes += sign * slot.weight;
    }
  }

  #markAcked(seq: number): boolean {
    const slot = this.#slots.get(seq);
    if (slot === undefined || slot.acked) return false;
    this.#count(slot, -1);
    slot.acked = true;
    this.#count(slot, 1);
    return true;
  }

  /** Forgets the oldest acknowledged entries while more than `maxRemembered` are held. */
  #forgetBeyondCap(): void {
    for (const [seq, slot] of this.#slots) {
      if (this.#slots.size <= this.#maxRemembered || this.#acked === 0) break;
      if (!slot.acked) continue;
      this.#slots.delete(seq);
      this.#count(slot, -1);
      this.#onForget(slot.entry);
    }
  }

  async #maybeCompact(): Promise<void> {
    const held = this.#slots.size + this.#pending.size;
    const deadRecords = this.#log.count - held;
    const deadBytes = this.#log.size - this.#heldBytes;
    if (
      this.#compacting ||
      (deadRecords <= held + this.#compactMargin &&
        deadBytes <= this.#heldBytes + COMPACT_MARGIN_BYTES)
    ) return;
    try {
      await this.#compact();
    } catch (e) {
      // The old log is intact and the change already durable: try again later.
      log(`${this.#label}: compaction failed: ${e instanceof Error ? e.message : String(e)}`, {
        level: "error",
        event: "store.compaction_failed",
      });
    }
  }

  /** Rewrites the log as every held entry (pending ones included) plus the high-water mark. */
  async #compact(): Promise<void> {
    this.#compacting = true;
    try {
      // Snapshot synchronously: the rewrite is ordered after every append
      // already called (pending entries included) and before later ones.
      // The mark goes last: replay insists that entry seqs increase.
      const records: unknown[] = [];
      for (const slot of this.#slots.values()) records.push(this.#record(slot));
      for (const slot of this.#pending.values()) records.push(this.#record(slot));
      records.push({ op: "hwm", seq: this.#nextSeq - 1 });
      await this.#log.rewrite(records);
    } finally {
      this.#compacting = false;
    }
  }
}
