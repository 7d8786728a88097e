/**
 * Sealed mailboxes, the node's side (issue 10 item 2; design:
 * docs/design/offline.md §2): leaving items for an offline peer at the
 * rendezvous its record names as its mailboxes, and fetching this node's
 * own items when its rendezvous sessions come up.
 *
 * Leaving an item: the peer's record (live, or the last one its mailbox
 * rendezvous keeps for a week) gives its static key and its mailboxes. The
 * item is sealed to that key (`session/seal.ts`), so the rendezvous learns
 * neither content nor type, and deposited over a stream on port 447 at the
 * first of its mailboxes this node has a session with.
 *
 * Taking items: each is checked as if it had arrived directly and handed
 * to the messages feature or the trust service by `services/sealed_inbox.ts`;
 * it is acknowledged (removed at the rendezvous) once it needs nothing more.
 *
 * @module
 */
import { PORT_MAILBOX } from "../../constants.ts";
import { MailboxClient, MailboxRefused } from "../../services/rendezvous/mailbox_client.ts";
import type { Address } from "../../identity/address.ts";
import { classifyPeer, type PeerQuery } from "../../discovery/resolver.ts";
import { fingerprint, fingerprintMatches } from "../../identity/fingerprint.ts";
import { type PeerRef, refOf } from "../../session/peer_ref.ts";
import { PilotError } from "../../errors.ts";
import { KeyedLock } from "../../services/keyed_lock.ts";
import { SealedInbox, type SealedItemDrop, type SealedSinks } from "../../services/sealed_inbox.ts";
import { localNodeIdentity } from "../../session/local_identity.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import { seal, type SealingIdentity } from "../../session/seal.ts";
import { type Connection, StreamError } from "../../stream/mod.ts";
import type { PresenceRecord } from "../../wire/presence_record.ts";
import { encodeSealedContent, type SealedContent } from "../../wire/sealed_item.ts";
import type { NodeContext } from "../context.ts";
import { codeOf, log } from "../log.ts";
import type { RendezvousLink } from "./rendezvous_link.ts";

/** How often this node asks its mailboxes for items while nothing tells it to (ms). */
export const MAILBOX_POLL_MS = 60_000;
/** How long a receipt waits at the sender's mailbox (ms): what a mailbox keeps at most. */
const RECEIPT_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** Longest one deposit or one fetch round may take (ms). */
const MAILBOX_TIMEOUT_MS = 10_000;
/** Least time between two fetches that notices start (ms). */
const NOTICE_GAP_MS = 1_000;
/** Refusals that say a mailbox holds its share: try again once items are fetched. */
const QUOTA_REFUSALS = new Set([
  "mailbox_full",
  "pair_quota",
  "sender_quota",
  "source_quota",
  "full",
]);
/** Items asked for per fetch. */
const FETCH_BATCH = 32;
/** Counters of this node's mailbox traffic. */
export interface MailboxCounters {
  /** Items this node left at peers' mailboxes. */
  deposited: number;
  /** Deposits that found no mailbox or were refused, by the refusal code. */
  depositFailed: Record<string, number>;
  /** Items this node fetched from its own mailboxes. */
  fetched: number;
  /** Fetched items taken (handed on), and dropped by reason (every reason from 0). */
  taken: number;
  dropped: Record<SealedItemDrop, number>;
}

/** The node's mailbox client: leaving items for peers, fetching its own. */
export class MailboxesFeature {
  #ctx: NodeContext;
  #link: RendezvousLink;
  #inbox: SealedInbox;
  #sealer: SealingIdentity;
  #fetching: Promise<void> | null = null;
  #again = false;
  #lastFetch = -Infinity;
  #noticeTimer: ReturnType<typeof setTimeout> | undefined;
  #deposited = 0;
  #depositFailed: Record<string, number> = {};
  #fetched = 0;
  /**
   * Deposits at one rendezvous go one stream at a time: a rendezvous
   * serves two streams per peer (MAILBOX_SERVER_LIMITS), one for a fetch
   * and one for deposits, and resets the streams past that.
   */
  #depositing = new KeyedLock();

  /** The feature over `ctx`, reaching mailboxes through `link`, handing items to `sinks`. */
  constructor(ctx: NodeContext, link: RendezvousLink, sinks: SealedSinks) {
    this.#ctx = ctx;
    this.#link = link;
    this.#inbox = new SealedInbox({
      staticKey: ctx.identity.staticKey,
      isTrusted: (key) => ctx.trust.has(key),
      sinks,
      reply: async (sender, receipt) => {
        await this.deposit(sender.keyHex, receipt, RECEIPT_TTL_MS);
      },
    });
    const local = localNodeIdentity(ctx.identity, ctx.config.hostname);
    this.#sealer = { staticKey: local.staticKey, payload: local.payload };
  }

  /** Counters (a copy). */
  counters(): MailboxCounters {
    return {
      deposited: this.#deposited,
      depositFailed: { ...this.#depositFailed },
      fetched: this.#fetched,
      ...this.#inbox.stats(),
    };
  }

  /**
   * Leaves `content` for the peer `keyHex` at one of its mailboxes, for
   * `ttlMs`; returns the address of the rendezvous that holds it. Throws
   * `unreachable` when the peer names no mailbox this node can reach,
   * `rate_limited` when its mailbox is full, `too_large` for content a
   * mailbox does not carry.
   */
  async deposit(keyHex: string, content: SealedContent, ttlMs: number): Promise<Address> {
    let bytes: Uint8Array;
    try {
      bytes = encodeSealedContent(content);
    } catch (e) {
      throw new PilotError("too_large", (e as Error).message, "it waits in the local outbox");
    }
    try {
      const record = await this.#recordOf(keyHex);
      const sealed = await seal(this.#sealer, record.staticKey, bytes);
      let refused: MailboxRefused | undefined;
      for (const via of record.mailboxes) {
        const rendezvous = this.#rendezvousAt(via);
        if (rendezvous === undefined) continue;
        try {
          await this.#depositing.run(
            rendezvous.keyHex,
            () =>
              this.#withMailbox(
                rendezvous,
                (client) => client.deposit(record.publicKey, sealed, ttlMs),
              ),
          );
          this.#deposited++;
          return via;
        } catch (e) {
          if (!(e instanceof MailboxRefused)) throw e;
          refused = e;
        }
      }
      if (refused !== undefined) {
        throw new PilotError(
          QUOTA_REFUSALS.has(refused.code) ? "rate_limited" : "unreachable",
          `The peer's mailbox refused the item (${refused.code})`,
          "it waits in the local outbox",
        );
      }
      throw new PilotError(
        "unreachable",
        `${
          record.mailboxes.length === 0
            ? "The peer names no mailbox"
            : "No mailbox of the peer is connected here"
        }`,
        "share a rendezvous with the peer; the item waits in the local outbox",
      );
    } catch (e) {
      // Counted by cause: a stream that failed (the rendezvous went away,
      // reset or did not answer) is no internal error.
      const code = e instanceof MailboxRefused || e instanceof PilotError
        ? e.code
        : e instanceof StreamError
        ? `stream_${e.code}`
        : "internal";
      this.#depositFailed[code] = (this.#depositFailed[code] ?? 0) + 1;
      if (e instanceof PilotError) throw e;
      throw new PilotError(
        "unreachable",
        `Cannot reach the peer's mailbox: ${(e as Error).message}`,
      );
    }
  }

  /**
   * `pilot handshake --queue` for a peer that is offline: a trust request
   * signed for offline delivery, left at its mailbox. The peer is the one
   * key its rendezvous know for `text` (never another than a trusted
   * binding or the name itself pins, nor one whose fingerprint differs from
   * `expectFingerprint`). Throws like {@linkcode deposit}, and
   * `conflict`/`key_changed`/`not_found` for a name that does not lead to
   * one such key.
   */
  async requestTrust(
    text: string,
    reason: string,
    ttlMs: number,
    expectFingerprint: string,
  ): Promise<{ peer: PeerRef; via: Address }> {
    // A name bound here (trust, --peer) pins its key; any other is asked of the rendezvous.
    let query: PeerQuery;
    let expected: Uint8Array | undefined;
    try {
      const resolution = this.#ctx.reach.resolve(text);
      query = resolution.query;
      expected = resolution.expected.publicKey;
    } catch (e) {
      if (!(e instanceof PilotError) || e.code !== "not_found") throw e;
      query = classifyPeer(text);
    }
    if (query.kind === "endpoint") {
      throw new PilotError("unreachable", "An endpoint names no mailbox", "name the peer instead");
    }
    const found = await this.#link.lookup(query, MAILBOX_TIMEOUT_MS, { stale: true });
    if (found.records.length === 0) {
      throw new PilotError("not_found", `No rendezvous here knows "${text}"`, "check the name");
    }
    if (found.records.length > 1 || found.conflicts.length > 0) {
      throw new PilotError(
        "conflict",
        `"${text}" is claimed by more than one key`,
        "name the peer by its address or full key instead",
      );
    }
    const { record, address } = found.records[0]!;
    if (expected !== undefined && expected.toHex() !== record.publicKey.toHex()) {
      throw new PilotError(
        "key_changed",
        `"${text}" is bound to another key here than its rendezvous names`,
        "nothing was sent; check the peer's key with its owner",
      );
    }
    if (expectFingerprint !== "" && !fingerprintMatches(record.publicKey, expectFingerprint)) {
      throw new PilotError(
        "key_changed",
        `"${text}" has fingerprint ${
          fingerprint(record.publicKey)
        }, not the expected ${expectFingerprint}`,
        "nothing was sent; check the fingerprint with the peer's owner (its `pilot info`)",
      );
    }
    const peer = refOf({
      public_key: record.publicKey.toHex(),
      address,
      hostname: record.hostname === "" ? null : record.hostname,
    });
    const signed = await this.#ctx.trustService.offlineRequest(peer, reason, ttlMs);
    const via = await this.deposit(peer.public_key, { kind: "trust", signed }, ttlMs);
    return { peer, via };
  }

  /** The peer's freshest record: its static key and mailboxes (kept by its rendezvous a week past expiry). */
  async #recordOf(keyHex: string): Promise<PresenceRecord> {
    const found = await this.#link.lookup(
      { kind: "key", keyHex },
      MAILBOX_TIMEOUT_MS,
      { stale: true },
    );
    const record = found.records.find((r) => r.record.publicKey.toHex() === keyHex)?.record;
    if (record === undefined) {
      throw new PilotError(
        "unreachable",
        "No rendezvous here holds the peer's record",
        "the item waits in the local outbox",
      );
    }
    // Never seal to an older static key than a handshake with this peer proved.
    const floor = this.#ctx.trust.get(keyHex)?.static_serial ?? 0;
    if (record.staticSerial < floor) {
      throw new PilotError(
        "unreachable",
        "The peer's record names an older static key than it last used",
        "the item waits in the local outbox",
      );
    }
    return record;
  }

  /** The session peer of this node's rendezvous at `address`, when one is up. */
  #rendezvousAt(address: Address): PeerIdentity | undefined {
    const key = this.#link.rendezvousAt(address);
    return key === null ? undefined : this.#ctx.sessions.peer(key);
  }

  async #withMailbox<T>(rendezvous: PeerIdentity, use: (c: MailboxClient) => Promise<T>) {
    const conn: Connection = await this.#ctx.streams.open(
      rendezvous,
      this.#ctx.reach.endpointOf(rendezvous.keyHex),
      PORT_MAILBOX,
      MAILBOX_TIMEOUT_MS,
    );
    const client = new MailboxClient(conn, MAILBOX_TIMEOUT_MS);
    try {
      return await use(client);
    } finally {
      await client.close().catch(() => conn.reset("mailbox: closing"));
    }
  }

  /** Fetches now (or once the fetch in progress ends). Never throws. */
  fetchSoon(): void {
    if (this.#fetching !== null) {
      this.#again = true;
      return;
    }
    this.#fetching = this.#fetchAll()
      .catch((e) =>
        log(`mailbox fetch failed: ${(e as Error).message}`, {
          level: "warn",
          event: "mailbox.fetch_failed",
          ...codeOf(e),
        })
      )
      .finally(() => {
        this.#fetching = null;
        if (this.#again) {
          this.#again = false;
          this.fetchSoon();
        }
      });
  }

  /**
   * A rendezvous says an item arrived: fetch, at most once a second
   * however often it says so (a later notice within the second is served
   * by one fetch when the second is over).
   */
  notified(now = performance.now()): void {
    if (this.#fetching !== null) {
      this.#again = true;
      return;
    }
    const wait = this.#lastFetch + NOTICE_GAP_MS - now;
    if (wait <= 0) return this.fetchSoon();
    if (this.#noticeTimer !== undefined) return;
    this.#noticeTimer = setTimeout(() => {
      this.#noticeTimer = undefined;
      this.fetchSoon();
    }, wait);
  }

  /** Stops the notice timer and waits for the fetch in progress (shutdown). */
  async close(): Promise<void> {
    clearTimeout(this.#noticeTimer);
    this.#noticeTimer = undefined;
    await this.settled();
  }

  /** Waits for the fetch in progress, if any (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#fetching !== null) await this.#fetching;
  }

  /** The node's timer: a fetch every MAILBOX_POLL_MS. */
  tick(now = performance.now()): void {
    if (now - this.#lastFetch < MAILBOX_POLL_MS) return;
    this.fetchSoon();
  }

  async #fetchAll(): Promise<void> {
    this.#lastFetch = performance.now();
    for (const key of this.#link.connectedRendezvous()) {
      const rendezvous = this.#ctx.sessions.peer(key);
      if (rendezvous === undefined) continue;
      try {
        await this.#withMailbox(rendezvous, (client) => this.#drain(client));
      } catch (e) {
        log(`mailbox at ${rendezvous.address}: ${(e as Error).message}`, {
          level: "warn",
          event: "mailbox.fetch_failed",
          ...codeOf(e),
          fields: { rendezvous: rendezvous.address },
        });
      }
    }
  }

  /** Takes every item of one mailbox, acknowledging those that need nothing more. */
  async #drain(client: MailboxClient): Promise<void> {
    let after = 0;
    for (;;) {
      const { items, more } = await client.fetch(after, FETCH_BATCH);
      const done: number[] = [];
      for (const item of items) {
        after = Math.max(after, item.id);
        this.#fetched++;
        if (await this.#inbox.take(item.sealed)) done.push(item.id);
      }
      if (done.length > 0) await client.ack(done);
      if (!more || items.length === 0) return;
    }
  }
}
