/**
 * The local outbox (issue 10): messages `pilot send --queue` could not
 * deliver in time, kept until the peer stores them or their TTL ends.
 *
 * Durable before acknowledged: {@linkcode Outbox.add} resolves only once the
 * message's data file (`HOME/outbox/<n>.bin`) and its `add` record in
 * `HOME/outbox.log` are fsynced, so `kill -9` at any moment loses nothing
 * the caller was told is queued. Every later change is one appended record
 * (`attempt`, `done`), written in group commits; the log is compacted
 * atomically once finished messages outnumber live ones. Exactly-once at
 * the peer does not depend on this file: a message is retried with its id,
 * and the peer stores a (sender, id) at most once.
 *
 * Bounded: at most {@linkcode MAX_OUTBOX_MESSAGES} messages and
 * {@linkcode MAX_OUTBOX_BYTES} of data; past either, `add` refuses with
 * `rate_limited` (never evicts).
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../errors.ts";
import type { PeerRef } from "../session/peer_ref.ts";
import type { MessageType } from "../wire/data_message.ts";
import { HOME_FILES, writeFileAtomic } from "./home.ts";
import { PendingLog } from "./pending_log.ts";

/** Most messages the outbox holds. */
export const MAX_OUTBOX_MESSAGES = 10_000;
/** Most data bytes the outbox holds, over all messages. */
export const MAX_OUTBOX_BYTES = 256 * 1024 * 1024;

/** Bounds of an outbox (tests make them small). */
export interface OutboxLimits {
  /** Most messages. */
  messages: number;
  /** Most data bytes over all messages. */
  bytes: number;
}

/** A queued message, as the outbox keeps and lists it. */
export interface QueuedMessage {
  /** The message id (the peer stores each id of ours once). */
  id: string;
  /** The peer's full key, hex. */
  to: string;
  /** The peer as the sender named it (hostname, address, endpoint): where retries look first. */
  name: string;
  /** The peer's address. */
  address: string;
  /** The peer's hostname as known when queued, or null. */
  hostname: string | null;
  /** The peer's fingerprint. */
  fingerprint: string;
  /** Data type. */
  type: MessageType;
  /** Data size in bytes. */
  bytes: number;
  /** Envelope fields, as given. */
  correlation_id: string;
  /** Id of the message this answers, or "". */
  in_reply_to: string;
  /** Small string map. */
  meta: Record<string, string>;
  /** When it was queued (ISO). */
  created_at: string;
  /** When it is given up (ISO). */
  expires_at: string;
  /** Delivery attempts so far. */
  attempts: number;
  /** Why the last attempt failed, or null. */
  last_error: string | null;
  /** The rendezvous (address) whose mailbox holds a sealed copy, or null: then it waits here only. */
  relayed_via: string | null;
  /** Its data file in `HOME/outbox/`. */
  file: string;
}

/** The peer a queued message is for, as a reference (events, `pilot outbox`). */
export function queuedPeer(m: QueuedMessage): PeerRef {
  return { public_key: m.to, address: m.address, hostname: m.hostname, fingerprint: m.fingerprint };
}

/** How a queued message ended. */
export type OutboxEnd = "delivered" | "expired" | "refused" | "cancelled";

type LogRecord =
  | { op: "add"; message: QueuedMessage }
  | { op: "attempt"; to: string; id: string; error: string | null }
  | { op: "relayed"; to: string; id: string; via: string }
  | { op: "done"; to: string; id: string; how: OutboxEnd };

const keyOf = (to: string, id: string) => `${to}\n${id}`;

/** The durable queue of messages waiting for their peer. */
export class Outbox {
  #log: PendingLog;
  #dir: string;
  #messages = new Map<string, QueuedMessage>();
  #bytes = 0;
  #nextFile: number;
  /** Records in the log that describe finished messages (compaction trigger). */
  #dead = 0;
  #limits: OutboxLimits;

  private constructor(log: PendingLog, dir: string, nextFile: number, limits: OutboxLimits) {
    this.#log = log;
    this.#dir = dir;
    this.#nextFile = nextFile;
    this.#limits = limits;
  }

  /**
   * Opens the outbox of `home`: replays its log, and deletes data files that
   * no live message names (a crash between a file and its record, or after
   * a message ended). A record that does not parse is `internal`, with the
   * file named: nothing is dropped silently.
   */
  static async open(
    home: string,
    limits: OutboxLimits = { messages: MAX_OUTBOX_MESSAGES, bytes: MAX_OUTBOX_BYTES },
  ): Promise<Outbox> {
    const dir = join(home, HOME_FILES.outboxDir);
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const { log, records } = await PendingLog.open(join(home, HOME_FILES.outbox));
    const messages = new Map<string, QueuedMessage>();
    for (const r of records as LogRecord[]) {
      if (r?.op === "add" && typeof r.message?.id === "string") {
        // Logs written before mailboxes have no relayed_via: the message waits here only.
        messages.set(keyOf(r.message.to, r.message.id), {
          ...r.message,
          relayed_via: r.message.relayed_via ?? null,
        });
      } else if (r?.op === "relayed") {
        const m = messages.get(keyOf(r.to, r.id));
        if (m !== undefined) m.relayed_via = r.via;
      } else if (r?.op === "attempt") {
        const m = messages.get(keyOf(r.to, r.id));
        if (m !== undefined) {
          m.attempts++;
          m.last_error = r.error;
        }
      } else if (r?.op === "done") messages.delete(keyOf(r.to, r.id));
      else {
        throw new PilotError(
          "internal",
          `Cannot read ${join(home, HOME_FILES.outbox)}: a record is not an outbox change`,
          "move the file away; queued messages in it are then given up",
        );
      }
    }
    let last = 0;
    const live = new Set([...messages.values()].map((m) => m.file));
    for await (const e of Deno.readDir(dir)) {
      const n = Number(/^(\d+)\.bin$/.exec(e.name)?.[1] ?? NaN);
      if (live.has(e.name)) last = Math.max(last, n);
      else await Deno.remove(join(dir, e.name)).catch(() => {});
    }
    const box = new Outbox(log, dir, last + 1, limits);
    box.#messages = messages;
    box.#bytes = [...messages.values()].reduce((sum, m) => sum + m.bytes, 0);
    box.#dead = records.length - messages.size;
    return box;
  }

  /** Queued messages, oldest first. */
  list(): QueuedMessage[] {
    return [...this.#messages.values()].map((m) => ({ ...m, meta: { ...m.meta } }));
  }

  /** The queued message `id` to `to`, if any. */
  get(to: string, id: string): QueuedMessage | undefined {
    const m = this.#messages.get(keyOf(to, id));
    return m === undefined ? undefined : { ...m, meta: { ...m.meta } };
  }

  /** Queued messages. */
  get size(): number {
    return this.#messages.size;
  }

  /**
   * Queues a message with its data; resolves once both are durable.
   * `rate_limited` when the outbox is full; `conflict` when `id` is queued
   * for `to` already (the caller compares contents first).
   */
  async add(
    m: Omit<QueuedMessage, "attempts" | "last_error" | "file" | "bytes" | "relayed_via">,
    data: Uint8Array,
  ): Promise<QueuedMessage> {
    const key = keyOf(m.to, m.id);
    if (this.#messages.has(key)) {
      throw new PilotError("conflict", `Message "${m.id}" is already queued for this peer`);
    }
    if (
      this.#messages.size >= this.#limits.messages ||
      this.#bytes + data.length > this.#limits.bytes
    ) {
      throw new PilotError(
        "rate_limited",
        `The outbox is full (${this.#messages.size} messages, ${this.#bytes} bytes)`,
        "wait for queued messages to be delivered or expire, or cancel some: pilot outbox",
      );
    }
    const file = `${this.#nextFile++}.bin`;
    const message: QueuedMessage = {
      ...m,
      meta: { ...m.meta },
      bytes: data.length,
      attempts: 0,
      last_error: null,
      relayed_via: null,
      file,
    };
    // Reserved before the awaits, so concurrent adds respect the bounds.
    this.#messages.set(key, message);
    this.#bytes += data.length;
    try {
      await writeFileAtomic(join(this.#dir, file), data, 0o600);
      await this.#log.append({ op: "add", message } satisfies LogRecord);
    } catch (e) {
      this.#messages.delete(key);
      this.#bytes -= data.length;
      await Deno.remove(join(this.#dir, file)).catch(() => {});
      throw e;
    }
    return { ...message, meta: { ...message.meta } };
  }

  /** The data of a queued message. */
  async data(m: QueuedMessage): Promise<Uint8Array> {
    return await Deno.readFile(join(this.#dir, m.file));
  }

  /** Counts one delivery attempt (and why it failed, or null); durable when it resolves. */
  async attempt(to: string, id: string, error: string | null): Promise<void> {
    const m = this.#messages.get(keyOf(to, id));
    if (m === undefined) return;
    m.attempts++;
    m.last_error = error;
    await this.#log.append({ op: "attempt", to, id, error } satisfies LogRecord);
  }

  /** Records that the mailbox at `via` holds a sealed copy; durable when it resolves. */
  async relayed(to: string, id: string, via: string): Promise<void> {
    const m = this.#messages.get(keyOf(to, id));
    if (m === undefined) return;
    m.relayed_via = via;
    this.#dead++;
    await this.#log.append({ op: "relayed", to, id, via } satisfies LogRecord);
  }

  /**
   * Ends a queued message (`how`); durable when it resolves, then its data
   * file goes. Returns the message, or undefined when none was queued.
   */
  async finish(to: string, id: string, how: OutboxEnd): Promise<QueuedMessage | undefined> {
    const key = keyOf(to, id);
    const m = this.#messages.get(key);
    if (m === undefined) return undefined;
    this.#messages.delete(key);
    this.#bytes -= m.bytes;
    await this.#log.append({ op: "done", to, id, how } satisfies LogRecord);
    await Deno.remove(join(this.#dir, m.file)).catch(() => {});
    this.#dead += 2 + m.attempts;
    if (this.#dead > 64 && this.#dead > 2 * this.#messages.size) await this.#compact();
    return m;
  }

  async #compact(): Promise<void> {
    const live = [...this.#messages.values()];
    await this.#log.rewrite(live.map((message) => ({ op: "add", message } satisfies LogRecord)));
    this.#dead = 0;
  }
}
