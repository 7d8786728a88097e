/**
 * What a built-in service on a virtual port looks like to the node.
 *
 * @module
 */
import type { PortPacket } from "../wire/inner.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import type { Endpoint } from "../discovery/endpoint.ts";

/** Where a datagram came from, and how to answer it. */
export interface DatagramContext {
  /** The authenticated peer (the session's). */
  peer: PeerIdentity;
  /** Where the session's latest authenticated packet came from (as this node sees it). */
  endpoint: Endpoint;
  /** The handshake hash of the session it arrived on (channel binding). */
  binding: Uint8Array;
  /** Sends bytes back to the packet's source port over the same peer. */
  reply(payload: Uint8Array): Promise<void>;
}

/** A service bound to one virtual port. */
export interface PortService {
  /** The virtual port it serves. */
  port: number;
  /** Short name for logs and diagnostics. */
  name: string;
  /** Handles one datagram that passed authentication and the trust gate. */
  onDatagram(packet: PortPacket, ctx: DatagramContext): Promise<void>;
}
