/**
 * `pilot send`, `call`, `reply`, `inbox ack` and `inbox --clear`, and the
 * receiving side's store: messages to and from port 1001 (the wire side is
 * services/messages/; the durable stores are inbox.ts and
 * dedup_store.ts). Each command returns a domain value; control/views.ts
 * shapes it into the API's JSON.
 *
 * @module
 */
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

/** What the messages feature owns besides the node's context. */
export interface MessagesParts {
  /** The durable inbox. */
  inbox: Inbox;
  /** Message ids seen per sender, apart from the inbox. */
  dedup: DedupStore;
  /** The port-1001 client. */
  client: MessagesClient;
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
  /** The receiver's receipt. */
  receipt: StoredReceipt;
}

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

  /** Creates the feature over `ctx` and its stores. */
  constructor(ctx: NodeContext, parts: MessagesParts) {
    this.#ctx = ctx;
    this.#inbox = parts.inbox;
    this.#dedup = parts.dedup;
    this.#client = parts.client;
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

  /** `pilot send`: delivers a typed message; returns once the peer stored it durably. */
  async send(
    text: string,
    m: OutgoingMessage,
    timeoutMs: number,
  ): Promise<SendResult> {
    const envelope = buildEnvelope(m);
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
      receipt: { status: receipt.status, seq: receipt.seq },
    };
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
