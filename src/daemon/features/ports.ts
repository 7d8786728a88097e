/**
 * Virtual ports of trusted peers: `pilot dgram` (one unreliable datagram),
 * `pilot connect PEER PORT` (a reliable stream; `listen` is the control
 * API's, over daemon/streams.ts) and `pilot connections`. Each returns a
 * domain value; control/views.ts shapes it into the API's JSON.
 *
 * @module
 */
import { MAX_PORT_DATAGRAM } from "../../constants.ts";
import { PilotError } from "../../errors.ts";
import { type PeerRef, peerRef } from "../../session/peer_ref.ts";
import type { Connection, ConnectionStats } from "../../stream/mod.ts";
import type { NodeContext } from "../context.ts";
import { checkPort } from "../user_ports.ts";

/** A datagram sent by `pilot dgram`. */
export interface DatagramSent {
  /** The receiver. */
  to: PeerRef;
  /** The virtual port it went to (and came from). */
  port: number;
  /** Size of the data in bytes. */
  bytes: number;
}

/** A reliable stream opened to a peer. */
export interface OpenedStream {
  /** The peer. */
  peer: PeerRef;
  /** The stream. */
  conn: Connection;
}

/** One reliable stream as `pilot connections` lists it. */
export interface PeerConnection {
  /** The peer at the other end. */
  peer: PeerRef;
  /** The stream's counters and estimator state. */
  stats: ConnectionStats;
}

/** The port commands over a node's context. */
export class PortsFeature {
  #ctx: NodeContext;

  /** Creates the feature over `ctx`. */
  constructor(ctx: NodeContext) {
    this.#ctx = ctx;
  }

  /** `pilot dgram`: one unreliable datagram to a trusted peer's virtual port. */
  async dgram(
    text: string,
    port: number,
    data: Uint8Array,
    timeoutMs: number,
  ): Promise<DatagramSent> {
    checkPort(port);
    if (data.length > MAX_PORT_DATAGRAM) {
      throw new PilotError(
        "too_large",
        `Datagram of ${data.length} bytes is over ${MAX_PORT_DATAGRAM}`,
        "datagrams must fit one UDP packet; use send for larger data",
      );
    }
    const peer = await this.#ctx.reach.reachTrusted(text, timeoutMs);
    const sent = await this.#ctx.sessions.send(peer.keyHex, {
      kind: "datagram",
      srcPort: port,
      dstPort: port,
      payload: data,
    });
    if (!sent) throw new PilotError("unreachable", `No session with ${peer.address}`, "retry");
    return { to: peerRef(peer), port, bytes: data.length };
  }

  /** Opens a reliable stream to a trusted peer's virtual port. */
  async openStream(
    text: string,
    port: number,
    timeoutMs: number,
  ): Promise<OpenedStream> {
    checkPort(port);
    const { reach, streams } = this.#ctx;
    const deadline = Date.now() + timeoutMs;
    const peer = await reach.reachTrusted(text, timeoutMs);
    const conn = await streams.open(
      peer,
      reach.endpointOf(peer.keyHex),
      port,
      Math.max(1, deadline - Date.now()),
    );
    return { peer: peerRef(peer), conn };
  }

  /** Whether a port is taken by a built-in service. */
  isServicePort(port: number): boolean {
    return this.#ctx.datagrams.isServicePort(port);
  }

  /** `pilot connections`. */
  connections(): PeerConnection[] {
    return this.#ctx.streams.connections().map(({ peer, conn }) => ({
      peer: peerRef(peer),
      stats: conn.stats(),
    }));
  }
}
