/**
 * Trust requests waiting for their peer (`pilot handshake --queue`; issue
 * 10): a name that leads nowhere now (the peer is down, or its record is
 * not published yet) is kept here, durably, and asked again until its TTL
 * ends. Once the request reaches the peer it leaves the queue: from then on
 * it is an ordinary outgoing request (pending, approved or rejected).
 *
 * One JSON file, `HOME/handshake_queue.json`, replaced atomically on every
 * change: the queue is small (at most {@linkcode MAX_QUEUED_HANDSHAKES}) and
 * changes rarely.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../errors.ts";
import { HOME_FILES, readPrivateFile, writeFileAtomic } from "./home.ts";

/** Most handshakes queued at once. */
export const MAX_QUEUED_HANDSHAKES = 256;

/** A queued trust request. */
export interface QueuedHandshake {
  /** The peer as the user named it (hostname, address, key, endpoint). */
  name: string;
  /** The reason, as given (checked when queued). */
  reason: string;
  /** The fingerprint the peer must have, or "". */
  expect_fingerprint: string;
  /** When it was queued (ISO). */
  created_at: string;
  /** When it is given up (ISO). */
  expires_at: string;
  /** Tries so far. */
  attempts: number;
  /** The error code of the last try, or null. */
  last_error: string | null;
  /** The peer's key, once a sealed copy was left at its mailbox. */
  public_key?: string;
  /** The rendezvous (address) whose mailbox holds that copy. */
  mailbox?: string;
}

/** The durable queue of trust requests waiting for their peer. */
export class HandshakeQueue {
  #path: string;
  #items: QueuedHandshake[];
  /** Writes one after another, each the whole queue. */
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string, items: QueuedHandshake[]) {
    this.#path = path;
    this.#items = items;
  }

  /** Opens the queue of `home` (empty when the file does not exist). */
  static async open(home: string): Promise<HandshakeQueue> {
    const path = join(home, HOME_FILES.handshakeQueue);
    const text = await readPrivateFile(path);
    if (text === null) return new HandshakeQueue(path, []);
    let items: unknown;
    try {
      items = JSON.parse(text);
    } catch {
      items = null;
    }
    if (!Array.isArray(items) || !items.every((i) => typeof i?.name === "string")) {
      throw new PilotError(
        "internal",
        `Cannot read ${path}: not a list of queued handshakes`,
        "move the file away; the handshakes in it are then given up",
      );
    }
    return new HandshakeQueue(path, items as QueuedHandshake[]);
  }

  /** Queued handshakes, oldest first. */
  list(): QueuedHandshake[] {
    return this.#items.map((i) => ({ ...i }));
  }

  /** The handshake queued for `name`, if any. */
  get(name: string): QueuedHandshake | undefined {
    const i = this.#items.find((x) => x.name === name);
    return i === undefined ? undefined : { ...i };
  }

  /** Queues a handshake (one per name); durable when it resolves. `rate_limited` when full. */
  async add(item: Omit<QueuedHandshake, "attempts" | "last_error">): Promise<QueuedHandshake> {
    const existing = this.get(item.name);
    if (existing !== undefined) return existing;
    if (this.#items.length >= MAX_QUEUED_HANDSHAKES) {
      throw new PilotError(
        "rate_limited",
        `${MAX_QUEUED_HANDSHAKES} handshakes are queued already`,
        "wait for them to reach their peers or expire",
      );
    }
    const queued = { ...item, attempts: 0, last_error: null };
    this.#items.push(queued);
    await this.#save();
    return { ...queued };
  }

  /** Counts a try of `name` and why it failed (null: it went through); durable when it resolves. */
  async attempt(name: string, error: string | null): Promise<void> {
    const i = this.#items.find((x) => x.name === name);
    if (i === undefined) return;
    i.attempts++;
    i.last_error = error;
    await this.#save();
  }

  /** Records that `name`'s request, for the key `publicKey`, waits at the mailbox `via` too; durable when it resolves. */
  async relayed(name: string, publicKey: string, via: string): Promise<void> {
    const i = this.#items.find((x) => x.name === name);
    if (i === undefined) return;
    i.public_key = publicKey;
    i.mailbox = via;
    await this.#save();
  }

  /** Removes `name`'s handshake (delivered, expired or cancelled); true when one was queued. */
  async remove(name: string): Promise<boolean> {
    const before = this.#items.length;
    this.#items = this.#items.filter((x) => x.name !== name);
    if (this.#items.length === before) return false;
    await this.#save();
    return true;
  }

  #save(): Promise<void> {
    const text = JSON.stringify(this.#items, null, 2) + "\n";
    const write = this.#writing.then(() => writeFileAtomic(this.#path, text, 0o600));
    this.#writing = write.catch(() => {});
    return write;
  }
}
