/**
 * The rendezvous role (issue 9; design: `docs/design/rendezvous.md`):
 * `pilot rendezvous` runs a node whose port 445 serves anyone with a
 * session — strangers included — through the sans-IO handler of
 * `services/rendezvous/service.ts` over the record table of `store.ts`.
 * This module wires them to the node: which peers have a live session (the
 * targets of relayed frames and punch requests), and how datagrams reach
 * them.
 *
 * @module
 */
import { PORT_RENDEZVOUS } from "../../constants.ts";
import type { Connection } from "../../stream/mod.ts";
import { encodeRendezvousMessage } from "../../wire/rendezvous_message.ts";
import {
  MailboxServer,
  type MailboxServerStats,
} from "../../services/rendezvous/mailbox_server.ts";
import type { DurableMailboxes, DurableMailboxStats } from "../mailbox_disk.ts";
import type { Address } from "../../identity/address.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import type { PortService } from "../../services/port_service.ts";
import {
  relayLimits,
  RENDEZVOUS_LIMITS,
  RendezvousService,
  type RendezvousStats,
} from "../../services/rendezvous/service.ts";
import { RecordStore, type RecordStoreStats } from "../../services/rendezvous/store.ts";
import type { NodeContext } from "../context.ts";

/** How often expired mailbox items are swept (ms). */
const MAILBOX_EXPIRE_EVERY_MS = 60_000;

/** What `pilot rendezvous status` shows. */
export interface RendezvousStatus {
  /** The record table: records, hostnames, refusals by reason. */
  records: RecordStoreStats;
  /** Relayed frames and bytes, and datagrams dropped by reason. */
  service: RendezvousStats;
  /** The mailboxes: items held, refusals and expiries; and their streams. */
  mailboxes: DurableMailboxStats & { server: MailboxServerStats };
}

/** The rendezvous role of a node. */
export class RendezvousFeature {
  #store: RecordStore;
  #service: RendezvousService;
  /** Peers with a live session, by address, and their keys. */
  #peers = new Map<Address, string>();
  #keys = new Set<string>();
  #mailboxes: DurableMailboxes;
  #mailboxServer: MailboxServer;
  #ctx: NodeContext;
  #expiredAt = -Infinity;
  #expiring = false;

  /** Serves port 445 over `ctx`'s sessions, and mailboxes (port 447) from `mailboxes`. */
  constructor(ctx: NodeContext, mailboxes: DurableMailboxes) {
    this.#ctx = ctx;
    this.#mailboxes = mailboxes;
    // Records naming this rendezvous as a mailbox outlive their expiry here.
    this.#store = new RecordStore({ self: ctx.identity.address });
    this.#service = new RendezvousService(
      this.#store,
      {
        peerAt: (address) => this.#peers.get(address),
        send: (keyHex, payload) => this.#send(keyHex, payload),
      },
      () => performance.now(),
      { ...RENDEZVOUS_LIMITS, ...relayLimits(ctx.config.relayQuota) },
    );
    this.#mailboxServer = new MailboxServer({
      store: {
        deposit: async (d) => {
          const r = await mailboxes.deposit(d);
          if (r.ok) this.#tellRecipient(d.recipient);
          return r;
        },
        fetch: (recipient, after, max, maxBytes) =>
          mailboxes.fetch(recipient, after, max, maxBytes),
        ack: (recipient, ids) => mailboxes.ack(recipient, ids),
      },
      // Only for nodes whose record names this rendezvous as a mailbox.
      hosts: (key) => this.#store.hostsMailbox(key),
    });
  }

  /**
   * The node's timer, once a second: the rates of peers and sources whose
   * buckets are full again are forgotten; items whose TTL ran out leave the
   * mailboxes (and the disk) once a minute, fetched or not.
   */
  tick(now = performance.now()): void {
    this.#service.forgetFull();
    if (now - this.#expiredAt < MAILBOX_EXPIRE_EVERY_MS || this.#expiring) return;
    this.#expiredAt = now;
    this.#expiring = true;
    this.#mailboxes.expire().catch(() => {}).finally(() => this.#expiring = false);
  }

  /** Serves one mailbox stream (port 447) from `peer`, a stranger like every peer here. */
  serveMailbox(conn: Connection, peer: PeerIdentity): Promise<void> {
    const source = this.#ctx.reach.endpointOf(peer.keyHex)?.hostname ?? "unknown";
    return this.#mailboxServer.serve(conn, peer, source);
  }

  /** A recipient with a session here hears at once that an item waits (it fetches over its session). */
  #tellRecipient(keyHex: string): void {
    this.#send(keyHex, encodeRendezvousMessage({ type: "mail", id: 0 }));
  }

  /** Sends a port-445 datagram to a peer with a live session here; false when it has none. */
  #send(keyHex: string, payload: Uint8Array): boolean {
    if (!this.#keys.has(keyHex)) return false;
    void this.#ctx.sessions.send(keyHex, {
      kind: "datagram",
      srcPort: PORT_RENDEZVOUS,
      dstPort: PORT_RENDEZVOUS,
      payload,
    });
    return true;
  }

  /** The datagram service on port 445. */
  portService(): PortService {
    return {
      port: PORT_RENDEZVOUS,
      name: "rendezvous",
      onDatagram: async (packet, ctx) => {
        const answer = this.#service.handle(ctx.peer, ctx.endpoint, packet.payload);
        if (answer !== null) await ctx.reply(answer);
      },
    };
  }

  /** A peer got its first session. */
  peerUp(peer: PeerIdentity): void {
    this.#peers.set(peer.address, peer.keyHex);
    this.#keys.add(peer.keyHex);
  }

  /** A peer lost its last session. */
  peerDown(peer: PeerIdentity): void {
    if (this.#peers.get(peer.address) === peer.keyHex) this.#peers.delete(peer.address);
    this.#keys.delete(peer.keyHex);
  }

  /** Counters of the table and the handler. */
  status(): RendezvousStatus {
    return {
      records: this.#store.stats(),
      service: this.#service.stats(),
      mailboxes: { ...this.#mailboxes.stats(), server: this.#mailboxServer.stats() },
    };
  }
}
