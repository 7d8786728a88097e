/**
 * The inbox: messages peers sent us, kept in `HOME/inbox.log` until the user
 * acknowledges or clears them (DESIGN.md, "Messages").
 *
 * The seq, visibility, ack/clear, wait and compaction rules are those of
 * {@linkcode SeqIndex} (`seq_index.ts`); this file owns the message record:
 * `{op:"msg", seq, ...message}`. Acknowledged messages are forgotten at once.
 *
 * A record costs about what its message costs: text or JSON data whose JSON
 * escaping would take more room than base64 (control characters, non-ASCII
 * text) is stored as `data64` (base64 of its UTF-8) instead of `data`, so a
 * 16 MiB message takes at most about 22 MiB of log, never six times its
 * size. Binary data is base64 in `data`, as the API returns it. The byte cap
 * counts each message's data bytes plus its record's other fields.
 *
 * @module
 */
import { join } from "node:path";
import { invalid } from "../errors.ts";
import type { MessageContent } from "../wire/message_digest.ts";
import { HOME_FILES } from "./home.ts";
import { isSeq, type SeqCodec, SeqIndex } from "./seq_index.ts";

/** Largest number of messages the inbox holds; beyond it `add` refuses. */
export const MAX_INBOX_MESSAGES = 10_000;
/**
 * Largest total size of stored messages (data bytes plus the other fields of
 * their records); beyond it `add` refuses.
 */
export const MAX_INBOX_BYTES = 256 * 1024 * 1024;
/** Largest inbox record: a 16 MiB message as base64 plus the largest envelope fields. */
export const MAX_INBOX_RECORD = 24 * 1024 * 1024;
/** Messages `list` returns when no limit is given. */
export const DEFAULT_LIST_LIMIT = 100;
/** Largest `limit` `list` accepts. */
export const MAX_LIST_LIMIT = 1000;
/** Dead records the log may hold beyond the live ones before it is compacted. */
export const INBOX_COMPACT_MARGIN = 1000;

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

const TYPES: readonly string[] = ["text", "json", "binary"];

/** `jsonLength` of stored messages' data, measured once per message (it scans the data). */
const measured = new WeakMap<InboxMessage, number>();

/** Bytes a string takes as a JSON string in the log (ASCII only: see `append_log.ts`). */
function jsonLength(s: string): number {
  let n = 2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (
      c === 0x22 || c === 0x5c || c === 0x08 || c === 0x0c || (c >= 0x09 && c <= 0x0d && c !== 0x0b)
    ) {
      n += 2;
    } else if (c < 0x20 || c > 0x7e) n += 6;
    else n += 1;
  }
  return n;
}

/** Bytes the data field takes in the message's record (as `storedFields` writes it). */
function storedLength(msg: InboxMessage): number {
  if (msg.type === "binary") return msg.data.length + 2;
  let json = measured.get(msg);
  if (json === undefined) {
    json = jsonLength(msg.data);
    measured.set(msg, json);
  }
  return Math.min(json, 4 * Math.ceil(msg.bytes / 3) + 2);
}

/** The record fields of a message: its data as `data`, or as `data64` where that is shorter. */
function storedFields(msg: InboxMessage): Record<string, unknown> {
  if (msg.type === "binary" || storedLength(msg) < 4 * Math.ceil(msg.bytes / 3) + 2) {
    return { ...msg };
  }
  const { data, ...rest } = msg;
  return { ...rest, data64: new TextEncoder().encode(data).toBase64() };
}

/** The data of a record: `data` as is, or `data64` decoded (strict UTF-8); undefined when malformed. */
function storedData(o: Record<string, unknown>): string | undefined {
  if (typeof o.data === "string") return o.data64 === undefined ? o.data : undefined;
  if (typeof o.data64 !== "string" || o.type === "binary") return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      Uint8Array.fromBase64(o.data64),
    );
  } catch {
    return undefined;
  }
}

function parseMessage(o: Record<string, unknown>): InboxMessage | undefined {
  const { seq, id, from, from_key, hostname, fingerprint, type, bytes, received_at } = o;
  const data = storedData(o);
  if (!isSeq(seq) || !isSeq(bytes)) return undefined;
  if (typeof id !== "string" || typeof from !== "string" || typeof from_key !== "string") {
    return undefined;
  }
  if (hostname !== null && typeof hostname !== "string") return undefined;
  if (typeof fingerprint !== "string" || data === undefined) return undefined;
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

const CODEC: SeqCodec<InboxMessage> = {
  op: "msg",
  what: "message",
  parse: parseMessage,
  fields: storedFields,
  copy: (msg) => msg.meta === undefined ? { ...msg } : { ...msg, meta: { ...msg.meta } },
  // The data as sent, plus the other fields as stored: what the message costs.
  weigh: (msg, recordBytes) => recordBytes - storedLength(msg) + msg.bytes,
};

/** The durable inbox of one home. */
export class Inbox {
  #index: SeqIndex<InboxMessage>;

  private constructor(index: SeqIndex<InboxMessage>) {
    this.#index = index;
  }

  /** Opens the home's inbox, replaying (and compacting) its log. */
  static async open(home: string, options: InboxOptions = {}): Promise<Inbox> {
    const index = await SeqIndex.open(join(home, HOME_FILES.inbox), CODEC, {
      label: "Inbox",
      maxListed: options.maxMessages ?? MAX_INBOX_MESSAGES,
      maxBytes: options.maxBytes ?? MAX_INBOX_BYTES,
      maxRecordBytes: MAX_INBOX_RECORD,
      compactMargin: options.compactMargin ?? INBOX_COMPACT_MARGIN,
    });
    return new Inbox(index);
  }

  /** Messages stored now. */
  get size(): number {
    return this.#index.listed;
  }

  /** Bytes the stored messages take in the log. */
  get bytes(): number {
    return this.#index.listedBytes;
  }

  /**
   * Stores a message durably and returns it with its new seq. Refuses
   * (`Refusal` "rate_limited") when the inbox is full; never evicts.
   */
  add(message: NewInboxMessage): Promise<InboxMessage> {
    return this.#index.add(message);
  }

  /** Returns stored messages oldest first, and the seq to read on from. */
  list(options: InboxListOptions = {}): InboxPage {
    const { limit = DEFAULT_LIST_LIMIT } = options;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw invalid(`Cannot list ${limit} messages: expected 1 to ${MAX_LIST_LIMIT}`);
    }
    const { entries, next } = this.#index.list({ ...options, limit });
    return { messages: entries, next };
  }

  /**
   * Removes the messages with these ids from `fromKey` (if given); returns
   * how many. Ids are chosen per sender: an id that names messages from more
   * than one sender is a `conflict` (naming them) unless `fromKey` scopes
   * it, and then nothing is removed. Unknown ids are not an error.
   */
  ack(ids: readonly string[], options: { fromKey?: string } = {}): Promise<number> {
    return this.#index.ackIds(ids, options);
  }

  /**
   * Removes every message with seq <= `upTo`; returns how many. Messages not
   * yet visible when it is called are never removed.
   */
  clear(upTo: number): Promise<number> {
    return this.#index.clear(upTo);
  }

  /**
   * Resolves once a message with seq > `after` (from `fromKey`, if given) is
   * stored; rejects with the signal's reason when it aborts first.
   */
  waitFor(after: number, signal: AbortSignal, options: { fromKey?: string } = {}): Promise<void> {
    return this.#index.waitFor(after, signal, options);
  }

  /** Flushes and closes the log; pending `waitFor` calls reject. */
  close(): Promise<void> {
    return this.#index.close();
  }
}

/** A stored message's content as its sender built it (for its content digest). */
export function messageContent(m: InboxMessage): MessageContent {
  return {
    type: m.type,
    correlationId: m.correlation_id ?? "",
    inReplyTo: m.in_reply_to ?? "",
    expiresAt: m.expires_at === undefined ? 0 : Date.parse(m.expires_at),
    meta: m.meta ?? {},
    data: m.type === "binary" ? Uint8Array.fromBase64(m.data) : new TextEncoder().encode(m.data),
  };
}
