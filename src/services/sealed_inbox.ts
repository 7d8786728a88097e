/**
 * Taking sealed items out of a mailbox (issue 10; design:
 * docs/design/offline.md §2): each item fetched from this node's mailbox at
 * a rendezvous is checked as if it had arrived directly, cheapest check
 * first, and handed on or dropped (counted by reason):
 *
 * 1. the seal: only this node's static key opens it, and the handshake
 *    payload inside must hold for the static key that sealed it (who sent
 *    it, proven; `session/seal.ts`);
 * 2. replays: an item whose sealing key was seen already (each item has its
 *    own) is dropped; the cache is bounded and in memory, which is enough
 *    because what it protects is idempotent behind it (messages are stored
 *    once per sender and id, trust messages have their own persisted replay
 *    cache, a receipt ends a queued message once);
 * 3. the content decodes;
 * 4. the trust gate: a stranger's item is dropped unless it is a trust
 *    message (what port 444 lets a stranger send);
 * 5. a message's expiry.
 *
 * A stored message's receipt goes back to its sender through `reply` (its
 * mailbox). An item is done — the mailbox may forget it — once it needs
 * nothing more: taken, or dropped for good. A message whose receipt could
 * not be left is not done: the next fetch takes it again, the store sees a
 * duplicate, and the receipt is tried again.
 *
 * @module
 */
import type { X25519KeyPair } from "../session/crypto.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { openSealed } from "../session/seal.ts";
import { decodeSealedContent, type SealedContent } from "../wire/sealed_item.ts";
import { refusalCodeOf } from "./refusal.ts";

/** Sealing keys remembered against replays, by default. */
export const SEALED_REPLAY_CACHE = 4096;

/** Why a fetched item was dropped. */
export const SEALED_ITEM_DROPS = {
  unopenable: "not sealed to this node's static key, altered, or its sender's identity fails",
  replayed: "an item whose sealing key was seen already",
  malformed: "opened, but the content does not decode",
  not_trusted: "a message or receipt from a sender this node does not trust",
  expired: "a message past its expiry",
} as const satisfies Record<string, string>;

/** One reason an item was dropped. */
export type SealedItemDrop = keyof typeof SEALED_ITEM_DROPS;

/** A message item, a receipt item. */
export type MessageItem = Extract<SealedContent, { kind: "message" }>;
/** A receipt item. */
export type ReceiptItem = Extract<SealedContent, { kind: "receipt" }>;

/** Where taken items go. */
export interface SealedSinks {
  /** Stores a message from a trusted sender: dedup, then the inbox (throws a Refusal to refuse). */
  message(sender: PeerIdentity, item: MessageItem): Promise<{ seq: number; duplicate: boolean }>;
  /** A receipt for a message this node left at the sender's mailbox. */
  receipt(sender: PeerIdentity, item: ReceiptItem): Promise<void>;
  /** A signed trust message carried offline (the trust service's offline path). */
  trust(sender: PeerIdentity, signed: Uint8Array): Promise<void>;
}

/** Options of {@linkcode SealedInbox}. */
export interface SealedInboxOptions {
  /** This node's static key pair: what items are sealed to. */
  staticKey: X25519KeyPair;
  /** Whether this node trusts the key (hex). */
  isTrusted(keyHex: string): boolean;
  /** Where taken items go. */
  sinks: SealedSinks;
  /** Leaves a receipt for the sender (its mailbox); throws when it cannot. */
  reply(sender: PeerIdentity, receipt: ReceiptItem): Promise<void>;
  /** Wall clock in Unix ms (message expiry), `Date.now` by default. */
  now?: () => number;
  /** Sealing keys remembered, at most. */
  replayCache?: number;
}

/** Takes sealed items out of this node's mailboxes. */
export class SealedInbox {
  #o: SealedInboxOptions;
  #now: () => number;
  #seen = new Set<string>();
  #dropped = Object.fromEntries(
    Object.keys(SEALED_ITEM_DROPS).map((k) => [k, 0]),
  ) as Record<SealedItemDrop, number>;
  #taken = 0;

  /** An inbox for items sealed to `options.staticKey`. */
  constructor(options: SealedInboxOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Items taken, and items dropped by reason (every reason from 0); copies. */
  stats(): { taken: number; dropped: Record<SealedItemDrop, number> } {
    return { taken: this.#taken, dropped: { ...this.#dropped } };
  }

  /**
   * Checks one sealed item and hands it on; true when it needs nothing more
   * (taken, or dropped for good), false when the mailbox should keep it for
   * the next fetch. Rejects only when a sink fails.
   */
  async take(sealed: Uint8Array): Promise<boolean> {
    let opened;
    try {
      opened = await openSealed(this.#o.staticKey, sealed);
    } catch {
      return this.#drop("unopenable");
    }
    if (this.#seen.has(opened.ephemeral)) return this.#drop("replayed");
    let content: SealedContent;
    try {
      content = decodeSealedContent(opened.item);
    } catch {
      return this.#drop("malformed");
    }
    const sender = opened.sender;
    if (content.kind !== "trust" && !this.#o.isTrusted(sender.keyHex)) {
      return this.#drop("not_trusted");
    }
    switch (content.kind) {
      case "trust":
        await this.#o.sinks.trust(sender, content.signed);
        break;
      case "receipt":
        await this.#o.sinks.receipt(sender, content);
        break;
      case "message": {
        const { expiresAt, id } = content.envelope;
        if (expiresAt !== 0 && expiresAt <= this.#now()) return this.#drop("expired");
        let receipt: ReceiptItem;
        try {
          const stored = await this.#o.sinks.message(sender, content);
          const status = stored.duplicate ? "duplicate" : "stored";
          receipt = { kind: "receipt", id, status, seq: stored.seq, code: "" };
        } catch (e) {
          receipt = { kind: "receipt", id, status: "refused", seq: 0, code: refusalCodeOf(e) };
        }
        try {
          await this.#o.reply(sender, receipt);
        } catch {
          // Kept at the mailbox: the next fetch stores it as a duplicate and tries again.
          return false;
        }
        break;
      }
    }
    this.#remember(opened.ephemeral);
    this.#taken++;
    return true;
  }

  #remember(ephemeral: string): void {
    this.#seen.add(ephemeral);
    if (this.#seen.size > (this.#o.replayCache ?? SEALED_REPLAY_CACHE)) {
      this.#seen.delete(this.#seen.values().next().value!);
    }
  }

  #drop(reason: SealedItemDrop): true {
    this.#dropped[reason]++;
    return true;
  }
}
