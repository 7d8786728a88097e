/**
 * The depositing and fetching side of a rendezvous's mailboxes (stream port
 * 447; frames: `wire/mailbox_frame.ts`; the server:
 * `mailbox_server.ts`). One client per stream, opened
 * inside the session with the rendezvous: that session is what FETCH and
 * ACK act for. Several calls may be in flight; the server answers them in
 * order (`../stream_rpc.ts` matches the answers).
 *
 * @module
 */
import { DecodeError } from "../../bytes.ts";
import { PilotError } from "../../errors.ts";
import { type Settled, StreamRpc } from "../stream_rpc.ts";
import { type Connection, StreamError } from "../../stream/mod.ts";
import { FrameReader } from "../../wire/framing.ts";
import {
  encodeMailboxFrame,
  MAILBOX_ANSWERS,
  type MailboxAnswer,
  type MailboxRequest,
  MAX_MAILBOX_BATCH,
  nextMailboxFrame,
} from "../../wire/mailbox_frame.ts";

/** Default bound on one call (ms). */
export const MAILBOX_CALL_TIMEOUT_MS = 30_000;

/** A request the rendezvous refused, with its code (`no_mailbox`, `mailbox_full`, `sender_quota`, …). */
export class MailboxRefused extends Error {
  /** The REFUSED frame's code. */
  readonly code: string;
  /** Creates a refusal with its code. */
  constructor(code: string) {
    super(`The rendezvous refused the request: ${code}`);
    this.name = "MailboxRefused";
    this.code = code;
  }
}

/** One item fetched from the session's mailbox. */
export interface FetchedItem {
  /** Its id (acknowledge it with this). */
  id: number;
  /** The sealed item (`session/seal.ts`). */
  sealed: Uint8Array;
  /** When the rendezvous took it (Unix ms, its clock). */
  depositedAt: number;
}

const noop = () => {};

/** Calls on one port-447 stream to a rendezvous. */
export class MailboxClient {
  #conn: Connection;
  #rpc: StreamRpc<MailboxAnswer>;
  #timeoutMs: number;

  /**
   * A client on `conn`, a fresh stream to the rendezvous's port 447. A call
   * not answered within `timeoutMs` rejects with `timeout` and resets the
   * stream, which fails every other call in flight.
   *
   * @example
   * ```ts ignore
   * const client = new MailboxClient(await mux.connect(PORT_MAILBOX), 10_000);
   * const { items, more } = await client.fetch(0);
   * await client.ack(items.map((i) => i.id));
   * ```
   */
  constructor(conn: Connection, timeoutMs: number = MAILBOX_CALL_TIMEOUT_MS) {
    if (!(timeoutMs > 0)) throw new RangeError(`Invalid timeout ${timeoutMs} ms: expected above 0`);
    this.#conn = conn;
    this.#timeoutMs = timeoutMs;
    const reader = new FrameReader(MAILBOX_ANSWERS, conn);
    this.#rpc = new StreamRpc<MailboxAnswer>({
      read: () => nextMailboxFrame(reader) as Promise<MailboxAnswer | null>,
      ended: () => new StreamError("closed", "the rendezvous closed the stream before answering"),
      failed: (e) => {
        if (e instanceof DecodeError) conn.reset(`mailbox: ${e.reason}`);
        return e;
      },
    });
  }

  /**
   * Leaves `sealed` for the holder of `recipientKey` (32 bytes) for at most
   * `ttlMs`; resolves with its id once the rendezvous stored it durably.
   * RangeError for bad fields; {@linkcode MailboxRefused} when refused.
   */
  deposit(recipientKey: Uint8Array, sealed: Uint8Array, ttlMs: number): Promise<number> {
    return this.#call(
      { kind: "deposit", recipient: recipientKey, ttlMs, sealed },
      (a) => a.kind === "deposited" ? { value: a.id } : undefined,
    );
  }

  /**
   * Up to `max` (1–64) of the session's own items with ids above `after`,
   * oldest first; `more` when the mailbox holds more after them.
   */
  fetch(
    after: number,
    max: number = MAX_MAILBOX_BATCH,
  ): Promise<{ items: FetchedItem[]; more: boolean }> {
    return this.#call({ kind: "fetch", after, max }, (a) =>
      a.kind === "items"
        ? {
          value: {
            more: a.more,
            items: a.items.map((i) => ({
              id: i.id,
              sealed: i.sealed.slice(),
              depositedAt: i.depositedAt,
            })),
          },
        }
        : undefined);
  }

  /** Removes the session's own items `ids` (1–64); resolves with how many the rendezvous held. */
  ack(ids: number[]): Promise<number> {
    return this.#call(
      { kind: "ack", ids },
      (a) => a.kind === "acked" ? { value: a.count } : undefined,
    );
  }

  /** Closes our direction and waits for the rendezvous to close its own. */
  async close(): Promise<void> {
    await this.#conn.close().catch(noop);
  }

  async #call<R>(
    request: MailboxRequest,
    match: (a: MailboxAnswer) => { value: R } | undefined,
  ): Promise<R> {
    const bytes = encodeMailboxFrame(request); // RangeError before anything is sent
    const { answer } = this.#rpc.expect<R>((a): Settled<R> => {
      if (a.kind === "refused") return { error: new MailboxRefused(a.code) };
      const s = match(a);
      if (s === undefined) {
        throw new DecodeError(
          "unexpected_frame",
          `The rendezvous answered ${request.kind} with ${a.kind}`,
        );
      }
      return s;
    });
    this.#rpc.exclusive(() => this.#conn.write(bytes)).catch(noop);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const e = new PilotError(
          "timeout",
          `The rendezvous did not answer ${request.kind} within ${this.#timeoutMs} ms`,
          "retry",
        );
        this.#conn.reset("mailbox: timed out");
        reject(e);
      }, this.#timeoutMs);
    });
    try {
      return await Promise.race([answer, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}
