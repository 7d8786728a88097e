/**
 * The mailbox service of a rendezvous on stream port 447
 * (docs/design/offline.md §2; frames: `wire/mailbox_frame.ts`): depositors
 * leave sealed items for recipients the rendezvous hosts, recipients fetch
 * and acknowledge their own.
 *
 * Every peer is a stranger here, so everything is bounded before any work:
 * streams per peer (an extra one is reset), requests per stream, a deadline
 * on reading each request and on writing its answer, and each frame's cap,
 * checked from its header before the body is buffered. Requests on a
 * stream are served one at a time, each answered once, in order.
 *
 * The session is the authentication: FETCH and ACK act on the mailbox of
 * the session's own key, never one named in a frame. Only DEPOSIT names a
 * recipient, and only one that `hosts()` accepts.
 *
 * @module
 */
import { DecodeError } from "../../bytes.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import { type Connection, StreamError } from "../../stream/mod.ts";
import { FrameReader } from "../../wire/framing.ts";
import {
  decodeMailboxBody,
  encodeMailboxFrame,
  MAILBOX_REQUESTS,
  type MailboxAnswer,
  type MailboxRequest,
  MAX_ITEMS_BYTES,
} from "../../wire/mailbox_frame.ts";
import type { Deposit, MailboxPage, MailboxRefusal } from "./mailbox.ts";

/** Where the server keeps items: `daemon/mailbox_disk.ts`'s DurableMailboxes, or a test's. */
export interface MailboxBackend {
  /** Stores an item; resolves once it is durable, or with why it was refused. */
  deposit(
    d: Deposit,
  ): Promise<{ ok: true; id: number } | { ok: false; reason: MailboxRefusal }>;
  /** A page of `recipient`'s items above `afterId`: at most `max` items and `maxBytes` sealed bytes. */
  fetch(
    recipient: string,
    afterId: number,
    max: number,
    maxBytes: number,
  ): MailboxPage | Promise<MailboxPage>;
  /** Removes `recipient`'s items `ids`; resolves with how many it held, once durable. */
  ack(recipient: string, ids: readonly number[]): Promise<number>;
}

/** Default bounds of the mailbox server. */
export const MAILBOX_SERVER_LIMITS = {
  /** Streams one peer holds open at once. */
  maxStreamsPerPeer: 2,
  /** Longest wait for a whole request, and for its answer to be written (ms). */
  idleMs: 10_000,
  /** Requests one stream serves. */
  maxRequestsPerStream: 256,
} as const;

/** Options of {@linkcode MailboxServer}. */
export interface MailboxServerOptions {
  /** The mailboxes. */
  store: MailboxBackend;
  /** Whether this rendezvous keeps a mailbox for the identity key `recipientKeyHex`. */
  hosts(recipientKeyHex: string): boolean;
  /** Streams one peer holds open at once; an extra one is reset. */
  maxStreamsPerPeer?: number;
  /** Longest wait for a whole request, and for writing its answer (ms); past it the stream is reset. */
  idleMs?: number;
  /** Requests one stream serves; the next one resets it. */
  maxRequestsPerStream?: number;
  /** Timer of the deadlines: calls `fn` after `ms`, returns a cancel function; `setTimeout` by default. */
  after?: (ms: number, fn: () => void) => () => void;
}

/** Counters of the mailbox server. */
export interface MailboxServerStats {
  /** Streams being served. */
  streams: number;
  /** Requests answered, by kind. */
  served: { deposit: number; fetch: number; ack: number };
  /** Requests answered with REFUSED, by code. */
  refused: Record<string, number>;
  /** Streams reset, by reason (`too_many_streams`, `idle`, `too_many_requests`, a decode reason, …). */
  dropped: Record<string, number>;
}

const realAfter = (ms: number, fn: () => void): () => void => {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
};

/** Why a stream is reset: its counter name and the RST reason. */
class Drop extends Error {
  readonly reason: string;
  constructor(reason: string, rst: string) {
    super(rst);
    this.reason = reason;
  }
}

/** Serves port-447 streams against one mailbox backend. */
export class MailboxServer {
  #store: MailboxBackend;
  #hosts: (recipientKeyHex: string) => boolean;
  #maxStreams: number;
  #idleMs: number;
  #maxRequests: number;
  #after: (ms: number, fn: () => void) => () => void;
  #streams = new Map<string, number>();
  #served = { deposit: 0, fetch: 0, ack: 0 };
  #refused: Record<string, number> = {};
  #dropped: Record<string, number> = {};

  /** A server over `options.store`. */
  constructor(options: MailboxServerOptions) {
    this.#store = options.store;
    this.#hosts = options.hosts;
    this.#maxStreams = options.maxStreamsPerPeer ?? MAILBOX_SERVER_LIMITS.maxStreamsPerPeer;
    this.#idleMs = options.idleMs ?? MAILBOX_SERVER_LIMITS.idleMs;
    this.#maxRequests = options.maxRequestsPerStream ?? MAILBOX_SERVER_LIMITS.maxRequestsPerStream;
    this.#after = options.after ?? realAfter;
  }

  /** Counters (a copy). */
  stats(): MailboxServerStats {
    let streams = 0;
    for (const n of this.#streams.values()) streams += n;
    return {
      streams,
      served: { ...this.#served },
      refused: { ...this.#refused },
      dropped: { ...this.#dropped },
    };
  }

  /**
   * Serves one incoming port-447 stream from `peer` (whose session's source
   * IP is `source`) until it ends. Never rejects: a broken protocol, a
   * deadline or a limit resets the stream with a short reason.
   */
  async serve(conn: Connection, peer: PeerIdentity, source: string): Promise<void> {
    const key = peer.keyHex;
    const open = this.#streams.get(key) ?? 0;
    if (open >= this.#maxStreams) {
      this.#count(this.#dropped, "too_many_streams");
      conn.reset("mailbox: too many streams");
      return;
    }
    this.#streams.set(key, open + 1);
    const reader = new FrameReader(MAILBOX_REQUESTS, conn);
    try {
      for (let served = 0;; served++) {
        const request = await this.#deadline(conn, () => this.#read(reader, served));
        if (request === null) break;
        const answer = await this.#answer(request, peer, source);
        await this.#deadline(conn, () => conn.write(encodeMailboxFrame(answer)));
      }
      await conn.close();
    } catch (e) {
      if (e instanceof Drop) {
        this.#count(this.#dropped, e.reason);
        conn.reset(e.message);
      } else if (e instanceof DecodeError) {
        this.#count(this.#dropped, e.reason);
        conn.reset(`mailbox: ${e.reason}`);
      } else if (e instanceof StreamError) {
        this.#count(this.#dropped, "stream");
      } else {
        this.#count(this.#dropped, "internal");
        conn.reset("mailbox: internal error");
      }
    } finally {
      const n = (this.#streams.get(key) ?? 1) - 1;
      if (n > 0) this.#streams.set(key, n);
      else this.#streams.delete(key);
    }
  }

  /** The next request, or null at a clean end; the header is checked before the body is read. */
  async #read(reader: FrameReader, served: number): Promise<MailboxRequest | null> {
    const h = await reader.header();
    if (h === null) return null;
    if (served >= this.#maxRequests) {
      throw new Drop("too_many_requests", "mailbox: too many requests");
    }
    const body = await reader.body(h.length);
    return decodeMailboxBody(h.kind, body) as MailboxRequest;
  }

  async #answer(r: MailboxRequest, peer: PeerIdentity, source: string): Promise<MailboxAnswer> {
    this.#served[r.kind]++;
    try {
      switch (r.kind) {
        case "deposit": {
          const recipient = r.recipient.toHex();
          if (!this.#hosts(recipient)) return this.#refuse("no_mailbox");
          const d = await this.#store.deposit({
            recipient,
            sender: peer.keyHex,
            source,
            sealed: r.sealed,
            ttlMs: r.ttlMs,
          });
          return d.ok ? { kind: "deposited", id: d.id } : this.#refuse(d.reason);
        }
        case "fetch": {
          const page = await this.#store.fetch(peer.keyHex, r.after, r.max, MAX_ITEMS_BYTES);
          return { kind: "items", more: page.more, items: page.items };
        }
        case "ack":
          return { kind: "acked", count: await this.#store.ack(peer.keyHex, r.ids) };
      }
    } catch {
      // The disk failed: this request is refused, the stream stays in step.
      return this.#refuse("unavailable");
    }
  }

  #refuse(code: string): MailboxAnswer {
    this.#count(this.#refused, code);
    return { kind: "refused", code };
  }

  /** Runs `fn`, resetting the stream when it takes longer than `idleMs`. */
  async #deadline<T>(conn: Connection, fn: () => Promise<T>): Promise<T> {
    let late = false;
    const cancel = this.#after(this.#idleMs, () => {
      late = true;
      conn.reset("mailbox: idle");
    });
    try {
      return await fn();
    } catch (e) {
      if (late) throw new Drop("idle", "mailbox: idle");
      throw e;
    } finally {
      cancel();
    }
  }

  #count(table: Record<string, number>, reason: string): void {
    table[reason] = (table[reason] ?? 0) + 1;
  }
}
