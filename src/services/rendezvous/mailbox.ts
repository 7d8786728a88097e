/**
 * Mailboxes at a rendezvous (issue 10 item 2; docs/design/offline.md),
 * sans-IO: sealed items (`session/seal.ts`) left for a node while it is
 * offline, fetched and acknowledged by that node when it is back.
 *
 * The rendezvous cannot read an item, nor tell its type or its sealer. It
 * does know who deposited for whom, when and how much: depositors come over
 * their authenticated session, which is what the quotas count against.
 *
 * Every table is bounded, and checked before anything is stored, cheapest
 * first:
 * - an item's size;
 * - items and bytes per recipient, where a full mailbox refuses with
 *   `mailbox_full`, never evicting;
 * - items and bytes per depositing key in one recipient's mailbox, so no
 *   one sender fills it;
 * - items and bytes per depositing key, across all recipients;
 * - items per depositor's source address;
 * - items and bytes in all.
 *
 * Items expire after their TTL, which is capped. Each refusal is counted by
 * reason.
 *
 * Times are the store's `now`: Unix milliseconds wherever items outlive the
 * process (`daemon/mailbox_disk.ts` persists them and puts them back with
 * {@linkcode MailboxStore.restore}), since a monotonic clock restarts.
 *
 * @module
 */
import { MAX_SEALED_ITEM, SEAL_OVERHEAD } from "../../session/seal.ts";
import { MAX_HANDSHAKE_PAYLOAD_SIZE } from "../../wire/handshake_payload.ts";

/** Largest sealed item a mailbox takes (bytes): a 64 KiB item, sealed. */
export const MAX_MAILBOX_ITEM = MAX_SEALED_ITEM + MAX_HANDSHAKE_PAYLOAD_SIZE + SEAL_OVERHEAD;

/** Bounds of a rendezvous's mailboxes. */
export interface MailboxLimits {
  /** Per recipient. */
  perRecipient: { items: number; bytes: number };
  /** Per depositing key in one recipient's mailbox: no one sender fills it. */
  perPair: { items: number; bytes: number };
  /** Per depositing key, across recipients. */
  perSender: { items: number; bytes: number };
  /** Items per depositor's source address. */
  perSource: number;
  /** In all. */
  total: { items: number; bytes: number };
  /** Longest TTL an item may ask for (ms). */
  maxTtlMs: number;
}

/** Default bounds: 256 items / 4 MiB per recipient, 1 GiB and 100,000 items in all, 7 days. */
export const MAILBOX_LIMITS: MailboxLimits = {
  perRecipient: { items: 256, bytes: 4 * 1024 * 1024 },
  perPair: { items: 64, bytes: 1024 * 1024 },
  perSender: { items: 512, bytes: 8 * 1024 * 1024 },
  perSource: 2048,
  total: { items: 100_000, bytes: 1024 * 1024 * 1024 },
  maxTtlMs: 7 * 24 * 60 * 60 * 1000,
};

/** The tally key of one depositing key's items in one recipient's mailbox. */
const pairKey = (sender: string, recipient: string) => `${sender}>${recipient}`;

/** Why a deposit was refused. */
export const MAILBOX_REFUSALS = {
  too_large: "a sealed item over MAX_MAILBOX_ITEM",
  mailbox_full: "the recipient's mailbox holds its items or bytes already",
  pair_quota: "the depositing key holds its share of the recipient's mailbox already",
  sender_quota: "the depositing key holds its items or bytes across mailboxes already",
  source_quota: "the depositor's source address holds its items already",
  full: "the rendezvous holds its items or bytes in all already",
} as const satisfies Record<string, string>;

/** One reason a deposit was refused. */
export type MailboxRefusal = keyof typeof MAILBOX_REFUSALS;

/** A deposit to make. */
export interface Deposit {
  /** The recipient's identity key (hex). */
  recipient: string;
  /** The depositing session's identity key (hex). */
  sender: string;
  /** The depositor's source IP, as the session sees it. */
  source: string;
  /** The sealed item. */
  sealed: Uint8Array;
  /** How long to keep it (ms), capped at `maxTtlMs`. */
  ttlMs: number;
}

/** An item as its recipient fetches it. */
export interface MailboxItem {
  /** Its id in this mailbox (increasing). */
  id: number;
  /** The sealed item, as deposited. */
  sealed: Uint8Array;
  /** When it was deposited (ms, the store's clock). */
  depositedAt: number;
}

/** An item as the store holds it: what a durable copy must keep to restore it. */
export interface HeldItem extends MailboxItem {
  /** The recipient's identity key (hex). */
  recipient: string;
  /** The depositing key (hex). */
  sender: string;
  /** The depositor's source IP. */
  source: string;
  /** When it expires (ms, the store's clock). */
  expiresAt: number;
}

/** A deposit stored: its id and times. */
export interface Deposited {
  /** Stored. */
  ok: true;
  /** Its id (increasing across the store). */
  id: number;
  /** When it was stored (ms, the store's clock). */
  depositedAt: number;
  /** When it expires (ms, the store's clock). */
  expiresAt: number;
}

/** A page of a recipient's items. */
export interface MailboxPage {
  /** Oldest first. */
  items: MailboxItem[];
  /** Whether the mailbox holds more items after the last one (below `below`). */
  more: boolean;
}

/** Which items {@linkcode MailboxStore.page} returns. */
export interface PageOptions {
  /** Items with a larger id only (default 0). */
  after?: number;
  /** Most items (default 64). */
  max?: number;
  /** Most sealed bytes over the page's items (default no cap); an item that would pass it ends the page. */
  maxBytes?: number;
  /** Items with a smaller id only (default none): the first item not yet durable. */
  below?: number;
}

type Held = HeldItem;

interface Tally {
  items: number;
  bytes: number;
}

/** Counters of the mailboxes. */
export interface MailboxStats {
  /** Items held, and their bytes. */
  items: number;
  bytes: number;
  /** Mailboxes with at least one item. */
  mailboxes: number;
  /** Deposits refused, by reason (every reason from 0). */
  refused: Record<MailboxRefusal, number>;
  /** Items that expired before their recipient acknowledged them. */
  expired: number;
}

/** The mailboxes of one rendezvous. */
export class MailboxStore {
  #now: () => number;
  #limits: MailboxLimits;
  #byRecipient = new Map<string, Map<number, Held>>();
  #recipients = new Map<string, Tally>();
  #senders = new Map<string, Tally>();
  #pairs = new Map<string, Tally>();
  #sources = new Map<string, number>();
  #total: Tally = { items: 0, bytes: 0 };
  #nextId = 1;
  #expired = 0;
  #refused = Object.fromEntries(
    Object.keys(MAILBOX_REFUSALS).map((k) => [k, 0]),
  ) as Record<MailboxRefusal, number>;

  /** Mailboxes on the clock `now` (ms) within `limits`. */
  constructor(options: { now: () => number; limits?: MailboxLimits }) {
    this.#now = options.now;
    this.#limits = options.limits ?? MAILBOX_LIMITS;
  }

  /** Stores a sealed item for its recipient, or says why not (counted). */
  deposit(d: Deposit): Deposited | { ok: false; reason: MailboxRefusal } {
    const size = d.sealed.length;
    const l = this.#limits;
    if (size > MAX_MAILBOX_ITEM) return this.#refuse("too_large");
    const r = this.#recipients.get(d.recipient) ?? { items: 0, bytes: 0 };
    if (r.items >= l.perRecipient.items || r.bytes + size > l.perRecipient.bytes) {
      return this.#refuse("mailbox_full");
    }
    const p = this.#pairs.get(pairKey(d.sender, d.recipient)) ?? { items: 0, bytes: 0 };
    if (p.items >= l.perPair.items || p.bytes + size > l.perPair.bytes) {
      return this.#refuse("pair_quota");
    }
    const s = this.#senders.get(d.sender) ?? { items: 0, bytes: 0 };
    if (s.items >= l.perSender.items || s.bytes + size > l.perSender.bytes) {
      return this.#refuse("sender_quota");
    }
    if ((this.#sources.get(d.source) ?? 0) >= l.perSource) return this.#refuse("source_quota");
    if (this.#total.items >= l.total.items || this.#total.bytes + size > l.total.bytes) {
      return this.#refuse("full");
    }
    const now = this.#now();
    const held: Held = {
      id: this.#nextId++,
      sealed: d.sealed.slice(),
      depositedAt: now,
      recipient: d.recipient,
      sender: d.sender,
      source: d.source,
      expiresAt: now + Math.max(0, Math.min(d.ttlMs, l.maxTtlMs)),
    };
    this.#insert(held);
    return { ok: true, id: held.id, depositedAt: held.depositedAt, expiresAt: held.expiresAt };
  }

  /**
   * Puts back an item a durable copy kept (on reopen), with its id and
   * times, whatever the quotas say now (they count it). Ids must come in
   * increasing order, above every id the store gave; RangeError otherwise.
   */
  restore(held: HeldItem): void {
    if (!Number.isSafeInteger(held.id) || held.id < this.#nextId) {
      throw new RangeError(`Cannot restore item ${held.id}: expected an id from ${this.#nextId}`);
    }
    this.#nextId = held.id + 1;
    this.#insert({ ...held });
  }

  /** The id the next deposit gets. */
  get nextId(): number {
    return this.#nextId;
  }

  /** Makes the next ids start at `id` at least (ids given before a restart stay unused). */
  skipTo(id: number): void {
    if (id > this.#nextId) this.#nextId = id;
  }

  /** The recipient's items after `afterId`, oldest first, at most `max`; expired ones are gone. */
  fetch(recipient: string, afterId = 0, max = 64): MailboxItem[] {
    return this.page(recipient, { after: afterId, max }).items;
  }

  /** A page of the recipient's items, oldest first, within `options`; expired ones are gone. */
  page(recipient: string, options: PageOptions = {}): MailboxPage {
    this.expire();
    const { after = 0, max = 64, maxBytes = Infinity, below = Infinity } = options;
    const items: MailboxItem[] = [];
    let bytes = 0;
    for (const h of this.#byRecipient.get(recipient)?.values() ?? []) {
      if (h.id <= after) continue;
      if (h.id >= below) break;
      if (items.length >= max || bytes + h.sealed.length > maxBytes) {
        return { items, more: true };
      }
      items.push({ id: h.id, sealed: h.sealed, depositedAt: h.depositedAt });
      bytes += h.sealed.length;
    }
    return { items, more: false };
  }

  /** The held item `id` of `recipient`, if any. */
  held(recipient: string, id: number): HeldItem | undefined {
    const h = this.#byRecipient.get(recipient)?.get(id);
    return h === undefined ? undefined : { ...h };
  }

  /** Takes back a deposit that could not be made durable (not counted as expired nor refused). */
  withdraw(recipient: string, id: number): boolean {
    const box = this.#byRecipient.get(recipient);
    const h = box?.get(id);
    if (box === undefined || h === undefined) return false;
    this.#remove(box, h);
    return true;
  }

  /** Removes the recipient's items `ids` (it has them now); returns how many it held. */
  ack(recipient: string, ids: readonly number[]): number {
    const box = this.#byRecipient.get(recipient);
    if (box === undefined) return 0;
    let n = 0;
    for (const id of ids) {
      const h = box.get(id);
      if (h === undefined) continue;
      this.#remove(box, h);
      n++;
    }
    return n;
  }

  /** Drops items past their TTL (each counted as expired); returns them. */
  expire(): HeldItem[] {
    const now = this.#now();
    const gone: HeldItem[] = [];
    for (const box of this.#byRecipient.values()) {
      for (const h of box.values()) {
        if (h.expiresAt > now) continue;
        this.#remove(box, h);
        this.#expired++;
        gone.push(h);
      }
    }
    return gone;
  }

  /** Every held item, by recipient and then id (what compaction writes). */
  *items(): IterableIterator<HeldItem> {
    for (const box of this.#byRecipient.values()) {
      for (const h of box.values()) yield { ...h };
    }
  }

  /** Counters (a copy). */
  stats(): MailboxStats {
    return {
      items: this.#total.items,
      bytes: this.#total.bytes,
      mailboxes: this.#byRecipient.size,
      refused: { ...this.#refused },
      expired: this.#expired,
    };
  }

  #insert(held: Held): void {
    let box = this.#byRecipient.get(held.recipient);
    if (box === undefined) this.#byRecipient.set(held.recipient, box = new Map());
    box.set(held.id, held);
    this.#count(held, +1);
  }

  #remove(box: Map<number, Held>, h: Held): void {
    box.delete(h.id);
    if (box.size === 0) this.#byRecipient.delete(h.recipient);
    this.#count(h, -1);
  }

  #count(h: Held, sign: 1 | -1): void {
    const size = h.sealed.length * sign;
    const bump = (map: Map<string, Tally>, key: string) => {
      const t = map.get(key) ?? { items: 0, bytes: 0 };
      t.items += sign;
      t.bytes += size;
      if (t.items === 0) map.delete(key);
      else map.set(key, t);
    };
    bump(this.#recipients, h.recipient);
    bump(this.#senders, h.sender);
    bump(this.#pairs, pairKey(h.sender, h.recipient));
    const sources = (this.#sources.get(h.source) ?? 0) + sign;
    if (sources === 0) this.#sources.delete(h.source);
    else this.#sources.set(h.source, sources);
    this.#total.items += sign;
    this.#total.bytes += size;
  }

  #refuse(reason: MailboxRefusal): { ok: false; reason: MailboxRefusal } {
    this.#refused[reason]++;
    return { ok: false, reason };
  }
}
