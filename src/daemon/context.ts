/**
 * What every feature module of the daemon works over: the node's parts,
 * wired once by `node.ts`. Features take the context, never the `Node`.
 *
 * @module
 */
import type { LookupResult } from "../discovery/rendezvous_client.ts";
import type { PeerQuery } from "../discovery/resolver.ts";
import type { Identity } from "../identity/identity.ts";
import type { SessionManager } from "../session/manager.ts";
import type { TrustService } from "../services/trust.ts";
import type { DaemonConfig } from "./config.ts";
import type { DatagramRouter } from "./datagrams.ts";
import type { EventBus } from "./events.ts";
import type { Reach } from "./reach.ts";
import type { Streams } from "./streams.ts";
import type { TrustFlowStore } from "./trust_flow_store.ts";
import type { TrustStore } from "./trust_store.ts";

/** The parts of a running node that features use. */
export interface NodeContext {
  /** The node's identity. */
  readonly identity: Identity;
  /** Effective configuration. */
  readonly config: DaemonConfig;
  /** The session table. */
  readonly sessions: SessionManager;
  /** Reliable streams, one mux per peer. */
  readonly streams: Streams;
  /** Datagrams to virtual ports. */
  readonly datagrams: DatagramRouter;
  /** From peer text to an authenticated (and trusted) peer. */
  readonly reach: Reach;
  /** Trusted peers. */
  readonly trust: TrustStore;
  /** Pending, outgoing and undelivered trust messages. */
  readonly flow: TrustFlowStore;
  /** The trust service (port 444). */
  readonly trustService: TrustService;
  /** The event stream. */
  readonly events: EventBus;
  /**
   * Asks this node's rendezvous about a name, address or key without
   * contacting the peer; null when the node has no rendezvous.
   */
  lookup(query: PeerQuery, timeoutMs: number): Promise<LookupResult | null>;
}
