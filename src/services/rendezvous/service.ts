/**
 * The rendezvous role's request handler (issue 9; design:
 * `docs/design/rendezvous.md`), sans-IO: it takes one port-445 datagram
 * from a peer whose session authenticated it, and answers it, forwards a
 * relayed frame, or tells a peer that another wants to punch to it. The
 * record table is `store.ts`; the session layer and the socket are the
 * caller's, behind {@linkcode RendezvousLink}.
 *
 * Every peer is a stranger here. What each may cost is bounded before the
 * work: lookups per peer, relayed bytes per peer and in all. Every message
 * dropped is counted by reason.
 *
 * @module
 */
import type { Address } from "../../identity/address.ts";
import { constantTimeEqual, DecodeError } from "../../bytes.ts";
import type { Endpoint } from "../../discovery/endpoint.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import { RateLimiter } from "../../session/rate_limit.ts";
import { PRESENCE_RECORD_VERSION } from "../../wire/presence_record.ts";
import {
  decodeRendezvousMessage,
  encodeRendezvousMessage,
  RENDEZVOUS_MESSAGE_TYPES,
  type RendezvousMessage,
} from "../../wire/rendezvous_message.ts";
import type { RecordStore } from "./store.ts";

/** What the handler needs from the node around it. */
export interface RendezvousLink {
  /** The key (hex) of the peer at `address` with a live session here, if any. */
  peerAt(address: Address): string | undefined;
  /** Sends a port-445 datagram to that peer; false when it has no session any more. */
  send(keyHex: string, bytes: Uint8Array): boolean;
}

/** Limits of the handler. */
export interface RendezvousLimits {
  /** Lookups, observes and punches per peer key. */
  requests: { burst: number; perSecond: number };
  /** Relayed frame bytes per sending peer key. */
  relayPerPeer: { burst: number; perSecond: number };
  /** Relayed frame bytes in all. */
  relayTotal: { burst: number; perSecond: number };
  /** Peers tracked by each limiter, at most. */
  maxPeers: number;
}

/** Relayed bytes per second forwarded by default: for each sending node, and in all. */
export const DEFAULT_RELAY_QUOTA = { perPeer: 1_000_000, total: 50_000_000 } as const;

/** Relay limits for a quota in bytes per second, with bursts of two seconds' worth. */
export function relayLimits(
  quota: { perPeer: number; total: number },
): Pick<RendezvousLimits, "relayPerPeer" | "relayTotal"> {
  return {
    relayPerPeer: { burst: 2 * quota.perPeer, perSecond: quota.perPeer },
    relayTotal: { burst: 2 * quota.total, perSecond: quota.total },
  };
}

/** Default limits: 20 requests/s per peer; 1 MB/s relayed per peer, 50 MB/s in all. */
export const RENDEZVOUS_LIMITS: RendezvousLimits = {
  requests: { burst: 40, perSecond: 20 },
  ...relayLimits(DEFAULT_RELAY_QUOTA),
  maxPeers: 65_536,
};

/** Why a port-445 datagram got no answer and went nowhere. */
export const RENDEZVOUS_DROPS = {
  malformed: "not a rendezvous message",
  unexpected: "an answer-only message (ok, found, …) sent to the rendezvous",
  rate_limited: "over the peer's request rate",
  relay_no_target: "a relayed frame for an address with no session here",
  relay_quota: "a relayed frame over the sender's or the total byte quota",
} as const satisfies Record<string, string>;

/** One reason a datagram was dropped. */
export type RendezvousDrop = keyof typeof RENDEZVOUS_DROPS;

/** Counters of the handler. */
export interface RendezvousStats {
  /** Frames relayed, and their bytes. */
  relayed: { frames: number; bytes: number };
  /** Datagrams dropped, by reason, every reason from 0. */
  dropped: Record<RendezvousDrop, number>;
}

/** Whether `record` is a presence record's version byte and then `key` (its signer's). */
function isOwnRecord(record: Uint8Array, key: Uint8Array): boolean {
  return record.length >= 1 + key.length && record[0] === PRESENCE_RECORD_VERSION &&
    constantTimeEqual(record.subarray(1, 1 + key.length), key);
}

/** Answers, forwards and relays port-445 datagrams for one rendezvous. */
export class RendezvousService {
  #store: RecordStore;
  #link: RendezvousLink;
  #requests: RateLimiter;
  #relayPeer: RateLimiter;
  #relayTotal: RateLimiter;
  #relayed = { frames: 0, bytes: 0 };
  #dropped = Object.fromEntries(
    Object.keys(RENDEZVOUS_DROPS).map((k) => [k, 0]),
  ) as Record<RendezvousDrop, number>;

  /** A handler over `store`, reaching peers through `link`; `now` is monotonic ms. */
  constructor(
    store: RecordStore,
    link: RendezvousLink,
    now: () => number,
    limits: RendezvousLimits = RENDEZVOUS_LIMITS,
  ) {
    this.#store = store;
    this.#link = link;
    const limiter = (rate: { burst: number; perSecond: number }, maxKeys: number) =>
      new RateLimiter({ ...rate, maxKeys, now });
    this.#requests = limiter(limits.requests, limits.maxPeers);
    this.#relayPeer = limiter(limits.relayPerPeer, limits.maxPeers);
    this.#relayTotal = limiter(limits.relayTotal, 1);
  }

  /**
   * Handles one datagram from `peer`, whose latest authenticated packet came
   * from `endpoint`: returns the answer to send back to it, or null.
   */
  handle(peer: PeerIdentity, endpoint: Endpoint, bytes: Uint8Array): Uint8Array | null {
    let m: RendezvousMessage;
    try {
      m = decodeRendezvousMessage(bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      return this.#drop("malformed");
    }
    switch (m.type) {
      case "publish":
        return encodeRendezvousMessage(this.#publish(peer, endpoint, m.id, m.record));
      case "relay":
        return this.#relay(peer, m.to, m.frame.length, bytes);
      case "lookup":
      case "observe":
      case "punch": {
        if (!this.#requests.allow(peer.keyHex)) return this.#drop("rate_limited");
        const answer = m.type === "observe"
          ? { type: "observed" as const, id: m.id, endpoint }
          : m.type === "punch"
          ? this.#punch(peer, endpoint, m.id, m.to)
          : this.#lookup(m);
        return encodeRendezvousMessage(answer);
      }
      default:
        return this.#drop("unexpected");
    }
  }

  /**
   * Forgets the request and relay rates of peers that are full again, and
   * the table's publish rates (see `RateLimiter.forgetFull`), for the
   * owner's timer; returns how many.
   */
  forgetFull(): number {
    return this.#requests.forgetFull() + this.#relayPeer.forgetFull() +
      this.#relayTotal.forgetFull() + this.#store.forgetFull();
  }

  /** Relay and drop counters (a copy). */
  stats(): RendezvousStats {
    return { relayed: { ...this.#relayed }, dropped: { ...this.#dropped } };
  }

  #drop(reason: RendezvousDrop): null {
    this.#dropped[reason]++;
    return null;
  }

  #publish(peer: PeerIdentity, endpoint: Endpoint, id: number, record: Uint8Array) {
    // A node publishes its own record only: the table's per-key state, and
    // the relay to the record's owner, follow the session that published it.
    // The key's place is all this reads (the table decodes and checks the rest).
    if (!isOwnRecord(record, peer.publicKey)) {
      return { type: "error" as const, id, code: "not_your_record" };
    }
    const r = this.#store.publish(record, endpoint.hostname);
    if (!r.ok) return { type: "error" as const, id, code: r.reason };
    return {
      type: "ok" as const,
      id,
      changed: r.changed,
      observed: endpoint,
      conflict: r.conflict,
    };
  }

  #lookup(m: Extract<RendezvousMessage, { type: "lookup" }>): RendezvousMessage {
    if (m.by === "hostname") {
      const hit = this.#store.lookupByHostname(m.hostname);
      return hit === null ? { type: "not_found", id: m.id } : {
        type: "found",
        id: m.id,
        record: hit.bound.record,
        conflicts: hit.conflicts.map((c) => c.address),
      };
    }
    const hit = m.by === "address"
      ? this.#store.lookupByAddress(m.address)
      : this.#store.lookupByKey(m.key.toHex());
    return hit === null
      ? { type: "not_found", id: m.id }
      : { type: "found", id: m.id, record: hit.record, conflicts: [] };
  }

  /**
   * Tells the node at `to` that `peer` wants a direct path and where it is
   * seen from here; the target decides whether to punch back (it does only
   * for peers it trusts). Nothing about the target goes to the requester.
   */
  #punch(peer: PeerIdentity, endpoint: Endpoint, id: number, to: Address): RendezvousMessage {
    const target = this.#link.peerAt(to);
    if (target === undefined || target === peer.keyHex) return { type: "not_found", id };
    const told = this.#link.send(
      target,
      encodeRendezvousMessage({ type: "punch_from", id: 0, from: peer.address, endpoint }),
    );
    return told ? { type: "observed", id, endpoint } : { type: "not_found", id };
  }

  /**
   * Forwards one session frame to the node at `to`, within the byte quotas;
   * never answers. `relay` is the decoded relay message, of `size` frame bytes.
   */
  #relay(peer: PeerIdentity, to: Address, size: number, relay: Uint8Array): null {
    const target = this.#link.peerAt(to);
    if (target === undefined || target === peer.keyHex) return this.#drop("relay_no_target");
    const cost = Math.max(1, size);
    if (!this.#relayPeer.allow(peer.keyHex, cost) || !this.#relayTotal.allow("all", cost)) {
      return this.#drop("relay_quota");
    }
    // A relayed message is laid out as the relay message it answers, its
    // type and address aside (wire/rendezvous_message.ts), and the decode
    // above checked every byte: one copy per frame, no re-encode.
    const relayed = relay.slice();
    relayed[0] = RENDEZVOUS_MESSAGE_TYPES.relayed;
    relayed.set(peer.addressBytes, 1);
    if (!this.#link.send(target, relayed)) return this.#drop("relay_no_target");
    this.#relayed.frames++;
    this.#relayed.bytes += size;
    return null;
  }
}
