/**
 * A rendezvous's mailboxes on disk (docs/design/offline.md §2): the sans-IO
 * {@linkcode MailboxStore}, with every item kept under a folder (for a
 * daemon, `HOME/mailboxes/`) so that a restart or a crash loses nothing a
 * depositor was told is stored.
 *
 * Layout, reusing the outbox's scheme: each sealed item is one data file
 * `items/<id>.bin`, written atomically, and `mailboxes.log` (an
 * {@linkcode AppendLog}) holds one record per change:
 *
 * - `{op: "add", id, recipient, sender, source, at, until, size}`: an item,
 *   with when it was deposited and when it expires (Unix ms);
 * - `{op: "ack", ids}`: items its recipient acknowledged;
 * - `{op: "next", id}`: the lowest id still unused (written first by a
 *   compaction, so ids keep increasing after every item was acknowledged).
 *
 * Durability:
 * - {@linkcode DurableMailboxes.deposit} resolves only once the data file
 *   and the `add` record are fsynced, so a deposit answered is there after
 *   `kill -9`. Until then the item is reserved against the quotas but not
 *   fetched, and a fetch stops before it (a recipient paging by id never
 *   skips it).
 * - {@linkcode DurableMailboxes.ack} resolves only once its `ack` record is
 *   fsynced: an ack answered never comes back. An ack cut short by a crash
 *   (no answer sent) may leave its items to be fetched once more, which the
 *   recipient's replay cache absorbs (each sealed item's ephemeral key is
 *   unique).
 * - Expiry needs no record: `until` is in the `add` record, and reopening
 *   drops what passed it.
 * - Reopening ignores a torn last record (`AppendLog.open`), and deletes
 *   data files no live record names (a crash between file and record, or
 *   after an ack). The log is compacted atomically once dead records
 *   outnumber live ones.
 *
 * Items are held in memory as well (the store's quotas bound them: 1 GiB in
 * all by default), read back from their files on open.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../errors.ts";
import {
  type Deposit,
  type HeldItem,
  MAILBOX_LIMITS,
  type MailboxLimits,
  type MailboxPage,
  type MailboxRefusal,
  type MailboxStats,
  MailboxStore,
} from "../services/rendezvous/mailbox.ts";
import { AppendLog, type AppendLogOptions } from "./append_log.ts";
import { writeFileAtomic } from "./home.ts";

/** Name of the log in a mailboxes folder. */
export const MAILBOX_LOG = "mailboxes.log";
/** Name of the folder of data files in a mailboxes folder. */
export const MAILBOX_ITEMS_DIR = "items";
/** Fewest records in the log before a compaction is worth it. */
const COMPACT_MIN_RECORDS = 64;

/** Options of {@linkcode DurableMailboxes.open}. */
export interface DurableMailboxesOptions {
  /** Wall clock in Unix ms (default `Date.now`): times outlive the process. */
  now?: () => number;
  /** Quotas (default {@linkcode MAILBOX_LIMITS}). */
  limits?: MailboxLimits;
  /** How the log makes bytes durable (tests count fsyncs). */
  sync?: AppendLogOptions["sync"];
}

/** Counters of durable mailboxes: the store's, and what reopening found. */
export interface DurableMailboxStats extends MailboxStats {
  /** Deposits not yet durable. */
  pending: number;
  /** Items whose record survived but whose data file did not (since open). */
  lost: number;
}

type AddRecord = {
  op: "add";
  id: number;
  recipient: string;
  sender: string;
  source: string;
  at: number;
  until: number;
  size: number;
};
type LogRecord = AddRecord | { op: "ack"; ids: number[] } | { op: "next"; id: number };

const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;

function isRecord(r: unknown): r is LogRecord {
  const o = r as Record<string, unknown> | null;
  if (typeof o !== "object" || o === null) return false;
  switch (o.op) {
    case "add":
      return isId(o.id) && typeof o.recipient === "string" && typeof o.sender === "string" &&
        typeof o.source === "string" && Number.isSafeInteger(o.at) &&
        Number.isSafeInteger(o.until) && Number.isSafeInteger(o.size);
    case "ack":
      return Array.isArray(o.ids) && o.ids.every(isId);
    case "next":
      return isId(o.id);
    default:
      return false;
  }
}

function addRecord(h: HeldItem): AddRecord {
  return {
    op: "add",
    id: h.id,
    recipient: h.recipient,
    sender: h.sender,
    source: h.source,
    at: h.depositedAt,
    until: h.expiresAt,
    size: h.sealed.length,
  };
}

/** Mailboxes kept in a folder; every answer given is durable. */
export class DurableMailboxes {
  #store: MailboxStore;
  #log: AppendLog;
  #dir: string;
  /** Deposits whose `add` record is not durable yet: hidden from fetch and ack. */
  #pending = new Set<number>();
  /** Pending deposits whose data file is still being written (no `add` appended yet). */
  #writing = new Set<number>();
  /** File removals in flight; `close()` waits for them. */
  #cleanup = new Set<Promise<void>>();
  #compacting = false;
  #lost = 0;

  private constructor(store: MailboxStore, log: AppendLog, dir: string) {
    this.#store = store;
    this.#log = log;
    this.#dir = dir;
  }

  /**
   * Opens (or creates) the mailboxes in `dir`: replays the log, drops items
   * past their expiry, reads each live item's data file back, and deletes
   * files no live item names. A record that is not a mailbox change (before
   * the last line) is `internal`, with the file named.
   *
   * @example
   * ```ts ignore
   * const boxes = await DurableMailboxes.open(join(home, "mailboxes"));
   * const r = await boxes.deposit({ recipient, sender, source, sealed, ttlMs: 86_400_000 });
   * ```
   */
  static async open(dir: string, options: DurableMailboxesOptions = {}): Promise<DurableMailboxes> {
    const itemsDir = join(dir, MAILBOX_ITEMS_DIR);
    await Deno.mkdir(itemsDir, { recursive: true, mode: 0o700 });
    const logPath = join(dir, MAILBOX_LOG);
    const { log, records } = await AppendLog.open(
      logPath,
      options.sync === undefined ? {} : { sync: options.sync },
    );
    const now = options.now ?? Date.now;
    const store = new MailboxStore({ now, limits: options.limits ?? MAILBOX_LIMITS });
    const boxes = new DurableMailboxes(store, log, dir);
    try {
      const adds = new Map<number, AddRecord>();
      let next = 1;
      for (const r of records) {
        if (!isRecord(r)) {
          throw new PilotError(
            "internal",
            `Cannot read ${logPath}: a record is not a mailbox change`,
            "move the folder away; the items in it are then lost",
          );
        }
        if (r.op === "add") {
          adds.set(r.id, r);
          next = Math.max(next, r.id + 1);
        } else if (r.op === "ack") { for (const id of r.ids) adds.delete(id); }
        else next = Math.max(next, r.id);
      }
      const live = new Set<string>();
      const at = now();
      for (const r of [...adds.values()].sort((a, b) => a.id - b.id)) {
        if (r.until <= at) continue;
        const sealed = await readItem(join(itemsDir, `${r.id}.bin`));
        if (sealed === null || sealed.length !== r.size) {
          boxes.#lost++;
          continue;
        }
        store.restore({
          id: r.id,
          recipient: r.recipient,
          sender: r.sender,
          source: r.source,
          sealed,
          depositedAt: r.at,
          expiresAt: r.until,
        });
        live.add(`${r.id}.bin`);
      }
      store.skipTo(next);
      for await (const e of Deno.readDir(itemsDir)) {
        if (!live.has(e.name)) await Deno.remove(join(itemsDir, e.name)).catch(() => {});
      }
      await boxes.#maybeCompact();
    } catch (e) {
      await log.close();
      throw e;
    }
    return boxes;
  }

  /** The folder the mailboxes live in. */
  get dir(): string {
    return this.#dir;
  }

  /**
   * Stores a sealed item for its recipient; resolves once it is durable, or
   * with the reason it was refused (quotas, as {@linkcode MailboxStore}).
   * Rejects (with nothing stored) when the disk fails.
   */
  async deposit(
    d: Deposit,
  ): Promise<{ ok: true; id: number } | { ok: false; reason: MailboxRefusal }> {
    const r = this.#store.deposit(d);
    if (!r.ok) return r;
    const id = r.id;
    const file = this.#file(id);
    this.#pending.add(id);
    this.#writing.add(id);
    try {
      await writeFileAtomic(file, d.sealed, 0o600);
      this.#writing.delete(id);
      await this.#log.append(
        addRecord({ ...d, id, depositedAt: r.depositedAt, expiresAt: r.expiresAt }),
      );
    } catch (e) {
      this.#store.withdraw(d.recipient, id);
      this.#remove([id]);
      throw e;
    } finally {
      this.#pending.delete(id);
      this.#writing.delete(id);
    }
    // Expired while it was being written: its file would outlive it.
    if (this.#store.held(d.recipient, id) === undefined) this.#remove([id]);
    return { ok: true, id };
  }

  /**
   * A page of `recipient`'s durable items with ids above `afterId`, oldest
   * first: at most `max` items and `maxBytes` sealed bytes (an item that
   * would pass it ends the page, with `more`). Expired items are gone.
   */
  fetch(recipient: string, afterId: number, max: number, maxBytes: number): MailboxPage {
    this.#expire();
    const below = this.#pending.size === 0 ? Infinity : Math.min(...this.#pending);
    return this.#store.page(recipient, { after: afterId, max, maxBytes, below });
  }

  /**
   * Removes `recipient`'s items `ids` (it has them); resolves with how many
   * it held once that is durable. Ids of other recipients, unknown ids and
   * deposits not yet durable are ignored.
   */
  async ack(recipient: string, ids: readonly number[]): Promise<number> {
    const gone = [...new Set(ids)].filter((id) =>
      !this.#pending.has(id) && this.#store.held(recipient, id) !== undefined
    );
    if (gone.length === 0) return 0;
    this.#store.ack(recipient, gone);
    await this.#log.append({ op: "ack", ids: gone } satisfies LogRecord);
    this.#remove(gone);
    await this.#maybeCompact();
    return gone.length;
  }

  /** Drops items past their expiry, and their files; returns how many. */
  async expire(): Promise<number> {
    const n = this.#expire();
    await Promise.all(this.#cleanup);
    await this.#maybeCompact();
    return n;
  }

  /** Counters (a copy). */
  stats(): DurableMailboxStats {
    return { ...this.#store.stats(), pending: this.#pending.size, lost: this.#lost };
  }

  /** Waits for writes and file removals in flight, then closes the log. */
  async close(): Promise<void> {
    await Promise.all(this.#cleanup);
    await this.#log.close();
  }

  #file(id: number): string {
    return join(this.#dir, MAILBOX_ITEMS_DIR, `${id}.bin`);
  }

  #expire(): number {
    const gone = this.#store.expire().map((h) => h.id).filter((id) => !this.#pending.has(id));
    this.#remove(gone);
    return gone.length;
  }

  /** Deletes data files in the background (a leftover is deleted at the next open anyway). */
  #remove(ids: readonly number[]): void {
    if (ids.length === 0) return;
    const p: Promise<void> = (async () => {
      for (const id of ids) await Deno.remove(this.#file(id)).catch(() => {});
    })().finally(() => this.#cleanup.delete(p));
    this.#cleanup.add(p);
  }

  /** Rewrites the log as its live records once dead ones outnumber them. */
  async #maybeCompact(): Promise<void> {
    const live = this.#store.stats().items;
    if (this.#compacting || this.#log.count < COMPACT_MIN_RECORDS || this.#log.count <= 2 * live) {
      return;
    }
    this.#compacting = true;
    try {
      // Built and handed over in one turn: appends called before the rewrite
      // are replaced by it, so it keeps every item whose `add` is under way.
      const records: LogRecord[] = [{ op: "next", id: this.#store.nextId }];
      for (const h of this.#store.items()) {
        if (!this.#writing.has(h.id)) records.push(addRecord(h));
      }
      await this.#log.rewrite(records);
    } finally {
      this.#compacting = false;
    }
  }
}

async function readItem(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}
