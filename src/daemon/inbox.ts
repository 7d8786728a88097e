/**
 * The inbox: messages peers sent us, kept in `HOME/inbox.log` until the user
 * acknowledges or clears them (DESIGN.md, "Messages").
 *
 * Every message gets a `seq` that is never reused: the log records each
 * message's seq and, after compaction, the high-water mark. A message becomes
 * visible (to `list` and `waitFor`) only once it is durable, and in seq order,
 * so `clear(upTo)` with a seq some `list` returned can never remove a message
 * that list did not see.
 *
 * Log records: `{op:"msg", seq, ...message}`, `{op:"ack", seqs}`,
 * `{op:"clear", up_to}` and `{op:"hwm", seq}`. Acks name seqs, not ids, so
 * that replaying the log removes exactly what was removed in memory even when
 * two senders chose the same id.
 *
 * @module
 */
import { join } from "node:path";
import { invalid, PilotError } from "../errors.ts";
import { Refusal } from "../services/refusal.ts";
import { appendAcks, AppendLog, encodeRecord } from "./append_log.ts";
import { HOME_FILES } from "./home.ts";
import { log } from "./log.ts";
import { SeqWaiters } from "./_seq_waiters.ts";

/** Largest number of messages the inbox holds; beyond it `add` refuses. */
export const MAX_INBOX_MESSAGES = 10_000;
/** Largest total size of stored messages (bytes of log records); beyond it `add` refuses. */
export const MAX_INBOX_BYTES = 256 * 1024 * 1024;
/**
 * Largest inbox record: a 16 MiB message as base64 (binary) or as JSON text
 * with every character escaped still fits.
 */
export const MAX_INBOX_RECORD = 100 * 1024 * 1024;
/** Messages `list` returns when no limit is given. */
export const DEFAULT_LIST_LIMIT = 100;
/** Largest `limit` `list` accepts. */
export const MAX_LIST_LIMIT = 1000;
/** Dead records the log may hold beyond the live ones before it is compacted. */
export const INBOX_COMPACT_MARGIN = 1000;
/** Dead bytes the log may hold beyond the live ones before it is compacted. */
const COMPACT_MARGIN_BYTES = 16 * 1024 * 1024;

/** Message data types. */
export type InboxDataType = "text" | "json" | "binary";

/** One stored message. */
export interface InboxMessage {
  /** Position in the inbox: increases with every message, never reused. */
  seq: number;
  /** Message id (client-chosen idempotency id, or random). */
  id: string;
  /** Sender's address. */
  from: string;
  /** Sender's Ed25519 key, hex. */
  from_key: string;
  /** Sender's hostname when it was received, or null. */
  hostname: string | null;
  /** Sender's key fingerprint. */
  fingerprint: string;
  /** How `data` is to be read. */
  type: InboxDataType;
  /** The data: text, JSON text, or base64 for binary. */
  data: string;
  /** Size of the data in bytes as sent. */
  bytes: number;
  /** ISO time the message was stored. */
  received_at: string;
  /** Correlates a reply with its request. */
  correlation_id?: string;
  /** Id of the message this answers. */
  in_reply_to?: string;
  /** ISO time after which the sender considers the message stale. */
  expires_at?: string;
  /** Small string map from the sender. */
  meta?: Record<string, string>;
}

/** A message to store: everything but the seq the inbox assigns. */
export type NewInboxMessage = Omit<InboxMessage, "seq">;

/** Options of {@linkcode Inbox.list}. */
export interface InboxListOptions {
  /** Only messages with a greater seq (default 0: from the start). */
  after?: number;
  /** At most this many messages (default 100, at most 1000). */
  limit?: number;
  /** Only messages from this sender key (hex). */
  fromKey?: string;
}

/** A page of messages, oldest first. */
export interface InboxPage {
  /** The messages. */
  messages: InboxMessage[];
  /** The seq to pass as `after` to read on. */
  next: number;
}

/** Options of {@linkcode Inbox.open}; defaults are the published limits. */
export interface InboxOptions {
  /** Cap on stored messages. */
  maxMessages?: number;
  /** Cap on the total size of stored messages (bytes of log records). */
  maxBytes?: number;
  /** Dead records tolerated beyond the live ones before compaction. */
  compactMargin?: number;
}

interface Entry {
  msg: InboxMessage;
  /** Bytes of its log record, newline included. */
  size: number;
}

const TYPES: readonly string[] = ["text", "json", "binary"];
const HINT = "move the file away; the daemon will not overwrite it";

function isSeq(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

function corrupt(path: string, index: number, why: string): PilotError {
  return new PilotError("internal", `Log "${path}" is corrupt at line ${index + 1}: ${why}`, HINT);
}

function parseMessage(o: Record<string, unknown>): InboxMessage | undefined {
  const { seq, id, from, from_key, hostname, fingerprint, type, data, bytes, received_at } = o;
  if (!isSeq(seq) || seq === 0 || !isSeq(bytes)) return undefined;
  if (typeof id !== "string" || typeof from !== "string" || typeof from_key !== "string") {
    return undefined;
  }
  if (hostname !== null && typeof hostname !== "string") return undefined;
  if (typeof fingerprint !== "string" || typeof data !== "string") return undefined;
  if (typeof type !== "string" || !TYPES.includes(type)) return undefined;
  if (typeof received_at !== "string") return undefined;
  const msg: InboxMessage = {
    seq,
    id,
    from,
    from_key,
    hostname,
    fingerprint,
    type: type as InboxDataType,
    data,
    bytes,
    received_at,
  };
  for (const k of ["correlation_id", "in_reply_to", "expires_at"] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== "string") return undefined;
    msg[k] = v;
  }
  if (o.meta !== undefined) {
    const m = o.meta;
    if (typeof m !== "object" || m === null || Array.isArray(m)) return undefined;
    if (!Object.values(m).every((v) => typeof v === "string")) return undefined;
    msg.meta = m as Record<string, string>;
  }
  return msg;
}

/** A copy callers may change without changing the inbox. */
function copy(msg: InboxMessage): InboxMessage {
  return msg.meta === undefined ? { ...msg } : { ...msg, meta: { ...msg.meta } };
}

function messageRecord(msg: InboxMessage): Record<string, unknown> {
  return { op: "msg", ...msg };
}

/** The durable inbox of one home. */
export class Inbox {
  #log: AppendLog;
  /** Durable messages by seq; insertion order is seq order. */
  #live = new Map<number, Entry>();
  /** Messages whose append is in flight, by seq (all above `#visibleHigh`). */
  #pending = new Map<number, Entry>();
  /** Bytes of live and pending records. */
  #bytes = 0;
  #nextSeq: number;
  /** Highest seq made visible; every seq at or below it is durable. */
  #visibleHigh: number;
  #waiters = new SeqWaiters();
  #maxMessages: number;
  #maxBytes: number;
  #compactMargin: number;
  #compacting = false;
  #closed = false;

  private constructor(appendLog: AppendLog, high: number, options: InboxOptions) {
    this.#log = appendLog;
    this.#nextSeq = high + 1;
    this.#visibleHigh = high;
    this.#maxMessages = options.maxMessages ?? MAX_INBOX_MESSAGES;
    this.#maxBytes = options.maxBytes ?? MAX_INBOX_BYTES;
    this.#compactMargin = options.compactMargin ?? INBOX_COMPACT_MARGIN;
  }

  /** Opens the home's inbox, replaying (and compacting) its log. */
  static async open(home: string, options: InboxOptions = {}): Promise<Inbox> {
    const path = join(home, HOME_FILES.inbox);
    const { log: appendLog, records } = await AppendLog.open(path, {
      maxRecordBytes: MAX_INBOX_RECORD,
    });
    const live = new Map<number, InboxMessage>();
    let high = 0;
    records.forEach((r, i) => {
      if (typeof r !== "object" || r === null || Array.isArray(r)) {
        throw corrupt(path, i, "not an object");
      }
      const o = r as Record<string, unknown>;
      switch (o.op) {
        case "msg": {
          const msg = parseMessage(o);
          if (msg === undefined) throw corrupt(path, i, "malformed message");
          if (msg.seq <= high) throw corrupt(path, i, `seq ${msg.seq} does not increase`);
          live.set(msg.seq, msg);
          high = msg.seq;
          break;
        }
        case "ack":
          if (!Array.isArray(o.seqs) || !o.seqs.every(isSeq)) {
            throw corrupt(path, i, "malformed ack");
          }
          for (const s of o.seqs) live.delete(s);
          break;
        case "clear": {
          const upTo = o.up_to;
          if (!isSeq(upTo)) throw corrupt(path, i, "malformed clear");
          for (const s of live.keys()) if (s <= upTo) live.delete(s);
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
    const inbox = new Inbox(appendLog, high, options);
    for (const msg of live.values()) {
      const size = encodeRecord(messageRecord(msg), MAX_INBOX_RECORD).length + 1;
      inbox.#live.set(msg.seq, { msg, size });
      inbox.#bytes += size;
    }
    // The high-water mark takes one record in a compacted log.
    if (appendLog.count > live.size + 1) await inbox.#compact();
    return inbox;
  }

  /** Messages stored now. */
  get size(): number {
    return this.#live.size;
  }

  /** Bytes the stored messages take in the log. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Stores a message durably and returns it with its new seq. Refuses
   * (`Refusal` "rate_limited") when the inbox is full; never evicts.
   */
  async add(message: NewInboxMessage): Promise<InboxMessage> {
    if (this.#closed) throw new Error("Inbox is closed");
    const msg = copy({ ...message, seq: this.#nextSeq });
    const record = messageRecord(msg);
    let size: number;
    try {
      size = encodeRecord(record, MAX_INBOX_RECORD).length + 1;
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      throw new Refusal("too_large", `Message "${msg.id}" is too large to store: ${e.message}`);
    }
    const count = this.#live.size + this.#pending.size;
    if (count >= this.#maxMessages || this.#bytes + size > this.#maxBytes) {
      throw new Refusal("rate_limited", `Inbox is full: ${count} messages, ${this.#bytes} bytes`);
    }
    this.#nextSeq++;
    const entry = { msg, size };
    this.#pending.set(msg.seq, entry);
    this.#bytes += size;
    try {
      await this.#log.append(record);
    } catch (e) {
      this.#pending.delete(msg.seq);
      this.#bytes -= size;
      throw e;
    }
    this.#pending.delete(msg.seq);
    this.#live.set(msg.seq, entry);
    this.#visibleHigh = msg.seq;
    this.#waiters.wake(msg.seq, msg.from_key);
    return copy(msg);
  }

  /** Returns stored messages oldest first, and the seq to read on from. */
  list(options: InboxListOptions = {}): InboxPage {
    const { after = 0, limit = DEFAULT_LIST_LIMIT, fromKey } = options;
    if (!isSeq(after)) throw invalid(`Cannot list after seq ${after}: expected an integer >= 0`);
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw invalid(`Cannot list ${limit} messages: expected 1 to ${MAX_LIST_LIMIT}`);
    }
    const messages: InboxMessage[] = [];
    let next = after;
    for (const [seq, { msg }] of this.#live) {
      if (seq <= after || (fromKey !== undefined && msg.from_key !== fromKey)) continue;
      messages.push(copy(msg));
      next = seq;
      if (messages.length === limit) break;
    }
    return { messages, next };
  }

  /**
   * Removes the messages with these ids (every message bearing one, when
   * senders reused an id); returns how many. Unknown ids are not an error.
   */
  async ack(ids: readonly string[]): Promise<number> {
    if (this.#closed) throw new Error("Inbox is closed");
    const wanted = new Set(ids);
    const seqs: number[] = [];
    for (const [seq, { msg }] of this.#live) if (wanted.has(msg.id)) seqs.push(seq);
    if (seqs.length === 0) return 0;
    this.#remove(seqs);
    await appendAcks(this.#log, seqs);
    await this.#maybeCompact();
    return seqs.length;
  }

  /**
   * Removes every message with seq <= `upTo`; returns how many. Messages not
   * yet visible when it is called are never removed.
   */
  async clear(upTo: number): Promise<number> {
    if (this.#closed) throw new Error("Inbox is closed");
    if (!isSeq(upTo)) throw invalid(`Cannot clear up to seq ${upTo}: expected an integer >= 0`);
    const limit = Math.min(upTo, this.#visibleHigh);
    const seqs: number[] = [];
    for (const seq of this.#live.keys()) {
      if (seq > limit) break;
      seqs.push(seq);
    }
    if (seqs.length === 0) return 0;
    this.#remove(seqs);
    await this.#log.append({ op: "clear", up_to: limit });
    await this.#maybeCompact();
    return seqs.length;
  }

  /**
   * Resolves once a message with seq > `after` (from `fromKey`, if given) is
   * stored; rejects with the signal's reason when it aborts first.
   */
  waitFor(after: number, signal: AbortSignal, options: { fromKey?: string } = {}): Promise<void> {
    const { fromKey } = options;
    if (!isSeq(after)) {
      return Promise.reject(invalid(`Cannot wait after seq ${after}: expected an integer >= 0`));
    }
    if (this.#visibleHigh > after) {
      for (const [seq, { msg }] of this.#live) {
        if (seq > after && (fromKey === undefined || msg.from_key === fromKey)) {
          return Promise.resolve();
        }
      }
    }
    if (signal.aborted) return Promise.reject(signal.reason);
    if (this.#closed) return Promise.reject(new Error("Inbox is closed"));
    return this.#waiters.wait(after, fromKey, signal);
  }

  /** Flushes and closes the log; pending `waitFor` calls reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const stopping = new PilotError("not_running", "The inbox is closed: the daemon is stopping");
    this.#waiters.failAll(stopping);
    await this.#log.close();
  }

  #remove(seqs: readonly number[]): void {
    for (const seq of seqs) {
      const entry = this.#live.get(seq);
      if (entry === undefined) continue;
      this.#live.delete(seq);
      this.#bytes -= entry.size;
    }
  }

  async #maybeCompact(): Promise<void> {
    const held = this.#live.size + this.#pending.size;
    const deadRecords = this.#log.count - held;
    const deadBytes = this.#log.size - this.#bytes;
    if (
      this.#compacting ||
      (deadRecords <= held + this.#compactMargin && deadBytes <= this.#bytes + COMPACT_MARGIN_BYTES)
    ) return;
    try {
      await this.#compact();
    } catch (e) {
      // The old log is intact and the removal already durable: try again later.
      log(`inbox: compaction failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Rewrites the log as every live and pending message plus the high-water mark. */
  async #compact(): Promise<void> {
    this.#compacting = true;
    try {
      // Snapshot synchronously: the rewrite is ordered after every append
      // already called (pending messages included) and before later ones.
      // The mark goes last: replay insists that message seqs increase.
      const records: unknown[] = [];
      for (const { msg } of this.#live.values()) records.push(messageRecord(msg));
      for (const { msg } of this.#pending.values()) records.push(messageRecord(msg));
      records.push({ op: "hwm", seq: this.#nextSeq - 1 });
      await this.#log.rewrite(records);
    } finally {
      this.#compacting = false;
    }
  }
}
