/**
 * `pilot send`, `call`, `reply`, `inbox ack` and `inbox --clear`, and the
 * receiving side's store: messages to and from port 1001 (the wire side is
 * services/messages/; the durable stores are inbox.ts and
 * dedup_store.ts). Each command returns a domain value; control/views.ts
 * shapes it into the API's JSON.
 *
 * @module
 */
import { DEFAULT_QUEUE_TTL_MS } from "../../constants.ts";
import { matchOne } from "../../discovery/match.ts";
import { PilotError } from "../../errors.ts";
import { Refusal } from "../../services/refusal.ts";
import { messageRefusalError } from "../errors_map.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import { type PeerRef, peerRef, refOf } from "../../session/peer_ref.ts";
import type { MessagesClient } from "../../services/messages/client.ts";
import type { Envelope, MessageType, ReceiptStatus } from "../../wire/data_message.ts";
import type { NodeContext } from "../context.ts";
import { dedupContent, type DedupStore } from "../dedup_store.ts";
import type { Inbox, InboxMessage } from "../inbox.ts";
import { log } from "../log.ts";
import { buildEnvelope, type OutgoingMessage } from "../outgoing_message.ts";
import { RetryBackoff } from "../../services/retry_backoff.ts";
import { type Outbox, type QueuedMessage, queuedPeer } from "../outbox.ts";
import { compareBytes } from "../../bytes.ts";
import { withTimeout } from "../../with_timeout.ts";
import { MAILBOX_MESSAGE_MAX, type SealedContent } from "../../wire/sealed_item.ts";

/** What the messages feature owns besides the node's context. */
export interface MessagesParts {
  /** The durable inbox. */
  inbox: Inbox;
  /** Message ids seen per sender, apart from the inbox. */
  dedup: DedupStore;
  /** The port-1001 client. */
  client: MessagesClient;
  /** Messages waiting for their peer (`send --queue`). */
  outbox: Outbox;
}

/** How the message sink took a received message. */
export interface StoreOutcome {
  /** Its inbox seq (that of the first copy for a duplicate). */
  seq: number;
  /** Whether it was a retry of a message already stored. */
  duplicate: boolean;
}

/** What the receiver's receipt said of a stored message. */
export interface StoredReceipt {
  /** Stored now, or stored before (a retry). */
  status: Exclude<ReceiptStatus, "refused">;
  /** The receiver's inbox seq. */
  seq: number;
}

/** A message delivered by `pilot send` or `pilot reply` (or a call's request). */
export interface SendResult {
  /** The receiver. */
  to: PeerRef;
  /** The message id. */
  id: string;
  /** How its data is to be read. */
  type: MessageType;
  /** Size of the data in bytes. */
  bytes: number;
  /**
   * Stored at the peer (fsynced there); kept in the local outbox to retry;
   * or kept there and a sealed copy left at the peer's mailbox.
   */
  delivery: "stored" | "queued_local" | "queued_relay";
  /** The receiver's receipt; null while queued. */
  receipt: StoredReceipt | null;
  /** When a queued message is given up (ISO); null when stored. */
  expiresAt: string | null;
}

/** Options of {@linkcode MessagesFeature.send}. */
export interface SendOptions {
  /** Keep the message in the outbox when it cannot be delivered in time. */
  queue?: boolean;
  /** How long a queued message is retried (ms). */
  ttlMs?: number;
}

/** First wait before a queued message is tried again (ms); it doubles. */
export const QUEUE_RETRY_MS = 5_000;
/** Longest wait between two tries of a queued message (ms). */
export const QUEUE_RETRY_MAX_MS = 5 * 60_000;
/** How long one try of a queued message may take (ms). */
const QUEUE_ATTEMPT_MS = 15_000;
/** Peers tried at once by the outbox. */
const QUEUE_PARALLEL = 4;
/** Longest a send waits for a mailbox to take its queued message (ms); later, the outbox's retries try again. */
const RELAY_WAIT_MS = 10_000;

/** Leaves sealed content at a peer's mailbox for `ttlMs`; resolves to the address of the rendezvous holding it. */
export type MailboxDeposit = (
  keyHex: string,
  content: SealedContent,
  ttlMs: number,
) => Promise<string>;

/** A `pilot call`: the request delivered and the reply it got (taken out of the inbox). */
export interface CallResult {
  /** The request as delivered. */
  request: SendResult;
  /** The reply. */
  reply: InboxMessage;
}

/** A call waiting for its reply: replies to its id, as they arrive. */
interface ReplyWait {
  arrived: InboxMessage[];
  wake: () => void;
}

/** The message commands over a node's context. */
export class MessagesFeature {
  #ctx: NodeContext;
  #inbox: Inbox;
  #dedup: DedupStore;
  #client: MessagesClient;
  /** Dedup entries not yet durable: inbox removals wait for them. */
  #dedupPending = new Set<Promise<void>>();
  /** Calls waiting for a reply, by the id of their request. */
  #replyWaits = new Map<string, Set<ReplyWait>>();
  #outbox: Outbox;
  /** Per peer key: when its queued messages are tried next, and the wait after. */
  #backoff = new RetryBackoff({
    minMs: QUEUE_RETRY_MS,
    maxMs: QUEUE_RETRY_MAX_MS,
    // Queued messages end with their TTL, not with the backoff.
    giveUpMs: Infinity,
  });
  /** Peers whose queued messages are being tried now. */
  #trying = new Set<string>();
  /** Leaves queued messages at peers' mailboxes, when this node has rendezvous. */
  #mailbox: MailboxDeposit | undefined;

  /** Creates the feature over `ctx` and its stores. */
  constructor(ctx: NodeContext, parts: MessagesParts) {
    this.#ctx = ctx;
    this.#inbox = parts.inbox;
    this.#dedup = parts.dedup;
    this.#client = parts.client;
    this.#outbox = parts.outbox;
  }

  /** Queued messages also go to the peer's mailbox, through `deposit` (the mailboxes feature). */
  useMailbox(deposit: MailboxDeposit): void {
    this.#mailbox = deposit;
  }

  /**
   * Leaves a queued message at its peer's mailbox, once: true when a
   * mailbox holds it (now or before). A message over MAILBOX_MESSAGE_MAX
   * waits in the outbox only. Never throws.
   */
  async #relay(m: QueuedMessage, envelope: Envelope): Promise<boolean> {
    if (m.relayed_via !== null) return true;
    const ttlMs = Date.parse(m.expires_at) - Date.now();
    if (this.#mailbox === undefined || envelope.data.length > MAILBOX_MESSAGE_MAX || ttlMs <= 0) {
      return false;
    }
    try {
      const via = await this.#mailbox(m.to, { kind: "message", envelope }, ttlMs);
      await this.#outbox.relayed(m.to, m.id, via);
      return true;
    } catch (e) {
      log(`message ${JSON.stringify(m.id)} not left at a mailbox: ${(e as Error).message}`);
      return false;
    }
  }

  /**
   * A receipt that came back through this node's mailbox for a message it
   * left at a peer's: ends the queued message as a direct receipt would.
   */
  async mailboxReceipt(
    sender: PeerIdentity,
    r: Extract<SealedContent, { kind: "receipt" }>,
  ): Promise<void> {
    const m = this.#outbox.get(sender.keyHex, r.id);
    if (m === undefined) return; // delivered directly meanwhile, or not ours
    if (r.status === "refused") await this.#end(m, "refused", { code: r.code });
    else await this.#end(m, "delivered", { receipt: { status: r.status, seq: r.seq } });
  }

  /** The message sink: stores a received message once: dedup by (sender key, id), then the durable inbox. */
  async store(peer: PeerIdentity, e: Envelope): Promise<StoreOutcome> {
    const content = dedupContent(e);
    const seen = this.#dedup.retryOf(peer.keyHex, e.id, content);
    if (seen !== undefined) return { seq: seen, duplicate: true };
    let data: string;
    if (e.type === "binary") data = e.data.toBase64();
    else {
      try {
        data = new TextDecoder("utf-8", { fatal: true }).decode(e.data);
        if (e.type === "json") JSON.parse(data);
      } catch {
        throw new Refusal("invalid_argument", `${e.type} data that does not decode`);
      }
    }
    let message: InboxMessage;
    try {
      message = await this.#inbox.add({
        id: e.id,
        from: peer.address,
        from_key: peer.keyHex,
        hostname: peer.hostname === "" ? null : peer.hostname,
        fingerprint: peer.fingerprint,
        type: e.type,
        data,
        bytes: e.data.length,
        received_at: new Date().toISOString(),
        ...(e.correlationId ? { correlation_id: e.correlationId } : {}),
        ...(e.inReplyTo ? { in_reply_to: e.inReplyTo } : {}),
        ...(e.expiresAt ? { expires_at: new Date(e.expiresAt).toISOString() } : {}),
        ...(Object.keys(e.meta).length ? { meta: e.meta } : {}),
      });
    } catch (err) {
      throw err instanceof Refusal ? err : new Refusal("internal", String(err));
    }
    // The receipt need not wait for this fsync: while the message is in the
    // inbox, a restart rebuilds its dedup entry from it (reseedDedup). Only
    // removing it from the inbox waits until the entry is durable.
    const remembered = this.#dedup.remember(peer.keyHex, e.id, message.seq, content).catch(
      (err) => {
        // Only a retry arriving after this message left the inbox could be stored twice.
        log(
          `dedup store failed for ${peer.address} id ${JSON.stringify(e.id)}: ${
            (err as Error).message
          }`,
        );
      },
    );
    this.#dedupPending.add(remembered);
    remembered.finally(() => this.#dedupPending.delete(remembered));
    this.#offerReply(message);
    this.#ctx.events.publish("message.received", {
      peer: peerRef(peer),
      seq: message.seq,
      id: message.id,
      type: message.type,
      bytes: message.bytes,
    });
    return { seq: message.seq, duplicate: false };
  }

  /**
   * `pilot send`: delivers a typed message; returns once the peer stored it
   * durably. With `queue`, a message the peer cannot take in time (it is
   * unreachable, or did not answer) is kept in the outbox instead, durably,
   * and retried until `ttlMs` ends; the answer then says `queued_local`.
   * Only a trusted peer's messages are queued: its key is known now.
   */
  async send(
    text: string,
    m: OutgoingMessage,
    timeoutMs: number,
    options: SendOptions = {},
  ): Promise<SendResult> {
    return await this.sendEnvelope(text, buildEnvelope(m), timeoutMs, options);
  }

  /** {@linkcode send} for an envelope already built (and so checked): a batch checks all first. */
  async sendEnvelope(
    text: string,
    envelope: Envelope,
    timeoutMs: number,
    options: SendOptions = {},
  ): Promise<SendResult> {
    const queuedFor = options.queue ? this.#queueTarget(text) : undefined;
    if (queuedFor !== undefined) {
      const queued = this.#outbox.get(queuedFor.public_key, envelope.id);
      // The same message queued already (a retried send): the same answer, never a second copy.
      if (queued !== undefined) return await this.#alreadyQueued(queued, envelope, queuedFor);
    }
    try {
      // The client keeps one stream per peer and replaces a broken one once,
      // reaching the peer again first (its session may have gone meanwhile).
      const { peer, receipt } = await this.#client.deliver(envelope, {
        reach: (ms) => this.#ctx.reach.reachTrusted(text, ms),
        timeoutMs,
      });
      if (receipt.status === "refused") throw messageRefusalError(peer.address, envelope, receipt);
      return {
        to: peerRef(peer),
        id: envelope.id,
        type: envelope.type,
        bytes: envelope.data.length,
        delivery: "stored",
        receipt: { status: receipt.status, seq: receipt.seq },
        expiresAt: null,
      };
    } catch (e) {
      const retryable = e instanceof PilotError &&
        (e.code === "unreachable" || e.code === "timeout");
      if (queuedFor === undefined || !retryable) throw e;
      const ttlMs = options.ttlMs ?? DEFAULT_QUEUE_TTL_MS;
      const now = Date.now();
      const queued = await this.#outbox.add({
        id: envelope.id,
        to: queuedFor.public_key,
        name: text,
        address: queuedFor.address,
        hostname: queuedFor.hostname,
        fingerprint: queuedFor.fingerprint,
        type: envelope.type,
        correlation_id: envelope.correlationId,
        in_reply_to: envelope.inReplyTo,
        meta: envelope.meta,
        created_at: new Date(now).toISOString(),
        expires_at: new Date(now + ttlMs).toISOString(),
      }, envelope.data);
      await this.#outbox.attempt(queued.to, queued.id, (e as PilotError).code);
      // A peer already waiting out a backoff keeps its schedule.
      if (this.#backoff.due(queued.to)) this.#backoff.failed(queued.to);
      // A mailbox that takes longer than this still gets it: the answer just says queued_local.
      const relayed = await withTimeout(this.#relay(queued, envelope), RELAY_WAIT_MS, "mailbox")
        .catch(() => false); // #relay never throws: only the wait ran out
      return this.#queuedResult(
        this.#outbox.get(queued.to, queued.id) ?? queued,
        queuedFor,
        relayed,
      );
    }
  }

  /** The trusted peer `text` names, for queueing; none when it names no trusted key here. */
  #queueTarget(text: string): PeerRef | undefined {
    let key: string | undefined;
    try {
      key = this.#ctx.reach.resolve(text).expected.publicKey?.toHex();
    } catch {
      return undefined;
    }
    const entry = key === undefined ? undefined : this.#ctx.trust.get(key);
    return entry === undefined ? undefined : refOf(entry);
  }

  async #alreadyQueued(queued: QueuedMessage, envelope: Envelope, to: PeerRef) {
    const data = await this.#outbox.data(queued);
    if (queued.type !== envelope.type || compareBytes(data, envelope.data) !== 0) {
      throw new PilotError(
        "conflict",
        `Message "${envelope.id}" is queued for ${to.address} with other content`,
        "use another --id, or cancel the queued one: pilot outbox cancel ID",
      );
    }
    return this.#queuedResult(queued, to, queued.relayed_via !== null);
  }

  #queuedResult(queued: QueuedMessage, to: PeerRef, relayed: boolean): SendResult {
    return {
      to,
      id: queued.id,
      type: queued.type,
      bytes: queued.bytes,
      delivery: relayed ? "queued_relay" : "queued_local",
      receipt: null,
      expiresAt: queued.expires_at,
    };
  }

  /** `pilot outbox`: queued messages, oldest first. */
  outbox(): QueuedMessage[] {
    return this.#outbox.list();
  }

  /**
   * `pilot outbox cancel`: gives up queued messages with `id` (to `toText`'s
   * peer only, when given); returns how many. A message being delivered at
   * this moment may still arrive.
   */
  async outboxCancel(id: string, toText?: string): Promise<number> {
    const to = toText === undefined ? undefined : this.#queueTarget(toText)?.public_key;
    if (toText !== undefined && to === undefined) {
      throw new PilotError("not_found", `No trusted peer "${toText}"`, "see `pilot outbox`");
    }
    let n = 0;
    for (const m of this.#outbox.list()) {
      if (m.id !== id || (to !== undefined && m.to !== to)) continue;
      if (await this.#outbox.finish(m.to, m.id, "cancelled")) n++;
    }
    return n;
  }

  /** A peer came up: its queued messages are tried now. */
  peerUp(keyHex: string): void {
    this.#backoff.reset(keyHex);
  }

  /**
   * One round of the outbox, for the node's timer: expired messages end
   * (`message.expired`), and peers whose wait is over get their queued
   * messages in order, oldest first, until one fails (then the peer waits
   * twice as long, up to 5 min, plus up to a quarter of jitter: RetryBackoff).
   * Never throws.
   */
  async retryOutbox(): Promise<void> {
    const now = Date.now();
    const byPeer = new Map<string, QueuedMessage[]>();
    for (const m of this.#outbox.list()) {
      if (Date.parse(m.expires_at) <= now) {
        await this.#end(m, "expired").catch(() => {});
        continue;
      }
      const list = byPeer.get(m.to) ?? [];
      list.push(m);
      byPeer.set(m.to, list);
    }
    this.#backoff.retain(new Set(byPeer.keys()));
    const due = [...byPeer.entries()].filter(([key]) =>
      !this.#trying.has(key) && this.#backoff.due(key)
    );
    for (let i = 0; i < due.length; i += QUEUE_PARALLEL) {
      await Promise.all(
        due.slice(i, i + QUEUE_PARALLEL).map(([key, list]) => this.#tryPeer(key, list)),
      );
    }
  }

  async #tryPeer(key: string, list: QueuedMessage[]): Promise<void> {
    this.#trying.add(key);
    try {
      for (const m of list) {
        if (this.#outbox.get(m.to, m.id) === undefined) continue; // cancelled meanwhile
        const failed = await this.#tryOne(m);
        if (failed !== null) {
          await this.#outbox.attempt(m.to, m.id, failed).catch(() => {});
          this.#backoff.failed(key);
          return;
        }
      }
      this.#backoff.reset(key);
    } finally {
      this.#trying.delete(key);
    }
  }

  /** Tries one queued message; null when it ended (delivered or refused), else why it failed. */
  async #tryOne(m: QueuedMessage): Promise<string | null> {
    const data = await this.#outbox.data(m);
    const envelope = buildEnvelope({
      type: m.type,
      data: m.type === "binary" ? data.toBase64() : new TextDecoder().decode(data),
      id: m.id,
      correlationId: m.correlation_id,
      inReplyTo: m.in_reply_to,
      meta: m.meta,
    });
    try {
      const { receipt } = await this.#client.deliver(envelope, {
        reach: (ms) => this.#reachQueued(m, ms),
        timeoutMs: QUEUE_ATTEMPT_MS,
      });
      if (receipt.status === "refused") {
        await this.#end(m, "refused", { code: receipt.detail || "refused" });
      } else {
        await this.#end(m, "delivered", { receipt: { status: receipt.status, seq: receipt.seq } });
      }
      return null;
    } catch (e) {
      const code = e instanceof PilotError ? e.code : "internal";
      // The peer is away: its mailbox keeps a sealed copy meanwhile.
      if (code === "unreachable" || code === "timeout") await this.#relay(m, envelope);
      return code;
    }
  }

  /**
   * Reaches the peer a queued message is for: by the name the sender used
   * (its `--peer` endpoint, say), which must still lead to the same key, and
   * by the key itself when the name leads nowhere.
   */
  async #reachQueued(m: QueuedMessage, timeoutMs: number): Promise<PeerIdentity> {
    let peer: PeerIdentity;
    try {
      peer = await this.#ctx.reach.reachTrusted(m.name, timeoutMs);
    } catch (e) {
      if (!(e instanceof PilotError) || e.code === "key_changed") throw e;
      return await this.#ctx.reach.reachTrusted(m.to, timeoutMs);
    }
    if (peer.keyHex !== m.to) {
      throw new PilotError(
        "key_changed",
        `"${m.name}" now leads to ${peer.address}, not ${m.address} the message was queued for`,
        "cancel it (pilot outbox cancel) or let it expire",
      );
    }
    return peer;
  }

  /** Ends a queued message and says so on the event stream (`message.delivered|refused|expired`). */
  async #end(
    m: QueuedMessage,
    how: "delivered" | "refused" | "expired",
    data: Record<string, unknown> = {},
  ): Promise<void> {
    if (await this.#outbox.finish(m.to, m.id, how) === undefined) return;
    this.#ctx.events.publish(`message.${how}`, {
      peer: queuedPeer(m),
      id: m.id,
      ...data,
    });
  }

  /**
   * `pilot call`: sends a request and waits for the reply that names it
   * (`in_reply_to`); the reply is taken out of the inbox and returned.
   */
  async call(
    text: string,
    m: OutgoingMessage,
    timeoutMs: number,
  ): Promise<CallResult> {
    const deadline = Date.now() + timeoutMs;
    const id = m.id === "" ? crypto.randomUUID() : m.id;
    // Listening before sending: the reply may land before the receipt does.
    const wait: ReplyWait = { arrived: [], wake: () => {} };
    const waits = this.#replyWaits.get(id) ?? new Set();
    waits.add(wait);
    this.#replyWaits.set(id, waits);
    const ac = new AbortController();
    ac.signal.addEventListener("abort", () => wait.wake(), { once: true });
    const timer = setTimeout(() => ac.abort(), Math.max(0, deadline - Date.now()));
    try {
      const sent = await this.send(
        text,
        { ...m, id, correlationId: m.correlationId || id },
        timeoutMs,
      );
      const peerKey = sent.to.public_key;
      // A reply to an earlier attempt with this id may already be stored.
      let reply = this.#findReply(peerKey, id);
      while (reply === undefined) {
        reply = wait.arrived.find((x) => x.from_key === peerKey);
        if (reply !== undefined) break;
        if (ac.signal.aborted) {
          throw new PilotError(
            "timeout",
            `No reply to ${id} within ${timeoutMs} ms`,
            `the request was delivered; a late reply still lands in the inbox (in_reply_to ${id})`,
          );
        }
        await new Promise<void>((resolve) => wait.wake = resolve);
      }
      // Handed to the caller: it does not stay in the inbox as well.
      await this.inboxAck([reply.id], reply.from_key).catch(() => 0);
      return { request: sent, reply };
    } finally {
      clearTimeout(timer);
      waits.delete(wait);
      if (waits.size === 0) this.#replyWaits.delete(id);
    }
  }

  /** Hands a stored reply to the calls waiting for it: one map lookup per message. */
  #offerReply(message: InboxMessage): void {
    if (message.in_reply_to === undefined) return;
    for (const wait of this.#replyWaits.get(message.in_reply_to) ?? []) {
      wait.arrived.push(message);
      wait.wake();
    }
  }

  #findReply(fromKey: string, id: string): InboxMessage | undefined {
    let after = 0;
    for (;;) {
      const page = this.#inbox.list({ after, limit: 1000, fromKey });
      const hit = page.messages.find((x) => x.in_reply_to === id);
      if (hit !== undefined || page.messages.length === 0) return hit;
      after = page.next;
    }
  }

  /**
   * `pilot reply`: answers a message in the inbox, to its sender, naming it.
   * Ids are per sender: `fromKey` picks the sender when several used `id`.
   */
  async reply(
    id: string,
    m: OutgoingMessage,
    timeoutMs: number,
    fromKey?: string,
  ): Promise<SendResult> {
    const matches: InboxMessage[] = [];
    let after = 0;
    for (;;) {
      const page = this.#inbox.list({ after, limit: 1000, ...(fromKey ? { fromKey } : {}) });
      matches.push(...page.messages.filter((x) => x.id === id));
      if (page.messages.length === 0) break;
      after = page.next;
    }
    if (matches.length === 0) {
      throw new PilotError(
        "not_found",
        `No message "${id}" in the inbox`,
        "see `pilot inbox` for ids",
      );
    }
    const senders = new Set(matches.map((x) => x.from_key));
    if (senders.size > 1) {
      throw new PilotError(
        "conflict",
        `Several senders used the id "${id}": ${
          [...new Map(matches.map((x) => [x.from_key, `${x.from} (${x.fingerprint})`])).values()]
            .join(", ")
        }`,
        "name the sender: pilot reply ID --from PEER",
      );
    }
    const request = matches[0]!;
    // Addressed by the full key: the address is only a name.
    return await this.send(request.from_key, {
      ...m,
      inReplyTo: id,
      correlationId: request.correlation_id ?? id,
    }, timeoutMs);
  }

  /**
   * `pilot inbox ack`: removes messages by id (from `fromKey`, if given: an
   * id two senders used is a conflict otherwise), once their dedup entries
   * are durable.
   */
  async inboxAck(ids: string[], fromKey?: string): Promise<number> {
    await Promise.all([...this.#dedupPending]);
    return await this.#inbox.ack(ids, fromKey === undefined ? {} : { fromKey });
  }

  /** `pilot inbox --clear`: removes messages up to a seq, once their dedup entries are durable. */
  async inboxClear(upTo: number): Promise<number> {
    await Promise.all([...this.#dedupPending]);
    return await this.#inbox.clear(upTo);
  }

  /** Finds the sender key a `--from` filter names (among trusted peers and inbox senders). */
  senderKey(text: string): string {
    const senders = new Map<string, PeerRef>();
    for (const e of this.#ctx.trust.list()) senders.set(e.public_key, refOf(e));
    for (const m of this.#inbox.list({ limit: 1000 }).messages) {
      senders.set(m.from_key, {
        public_key: m.from_key,
        address: m.from,
        hostname: m.hostname,
        fingerprint: m.fingerprint,
      });
    }
    return matchOne(text, [...senders.values()], "sender").public_key;
  }
}
