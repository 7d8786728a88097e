/**
 * Delivers authenticated datagrams to virtual ports: replies to this node's
 * own requests (ephemeral client ports, e.g. ping), built-in services (trust
 * 444, echo 7), then ports bound by API clients; anything else is dropped
 * and counted. The twin of `streams.ts` for the unreliable half.
 *
 * @module
 */
import { PORT_ECHO, PORT_MESSAGES, PORT_PUBSUB, PORT_STDIO, PORT_TRUST } from "../constants.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { peerRef } from "../session/peer_ref.ts";
import type { Session } from "../session/session.ts";
import type { PortService } from "../services/port_service.ts";
import type { PortPacket } from "../wire/inner.ts";
import { UserPorts } from "./user_ports.ts";

/** Sends a datagram over a peer's session; false when there is none. */
export type DatagramSend = (
  peerKeyHex: string,
  p: { srcPort: number; dstPort: number; payload: Uint8Array },
) => Promise<boolean>;

/** Handles replies that arrive on a client's ephemeral port. */
export type ClientHandler = (packet: PortPacket, peer: PeerIdentity) => void;

/** Ports of the built-in services, stream or datagram: never bindable by clients. */
const BUILT_IN_PORTS: ReadonlySet<number> = new Set([
  PORT_TRUST,
  PORT_ECHO,
  PORT_MESSAGES,
  PORT_PUBSUB,
  PORT_STDIO,
]);

/** First and size of the ephemeral range for client ports (RFC 6335's dynamic range). */
const EPHEMERAL_FIRST = 49_152;
const EPHEMERAL_COUNT = 16_384;

/** Routes datagrams to services, clients and bound ports. */
export class DatagramRouter {
  /** Ports bound by API clients (`pilot recv`). */
  readonly userPorts = new UserPorts();
  /** Datagrams to ports with nothing behind them, counted. */
  noService = 0;
  #services = new Map<number, PortService>();
  #clients = new Map<number, ClientHandler>();
  #send: DatagramSend;

  /** Creates a router that answers through `send`. */
  constructor(send: DatagramSend) {
    this.#send = send;
  }

  /** Serves a built-in datagram service on its port. */
  serve(service: PortService): void {
    this.#services.set(service.port, service);
  }

  /** Whether a port belongs to a built-in service. */
  isServicePort(port: number): boolean {
    return BUILT_IN_PORTS.has(port) || this.#services.has(port);
  }

  /** Takes a free ephemeral port for replies to this node's own requests; dispose to free it. */
  client(handler: ClientHandler): { port: number } & Disposable {
    let port: number;
    do port = EPHEMERAL_FIRST + Math.floor(Math.random() * EPHEMERAL_COUNT); while (
      this.#clients.has(port)
    );
    this.#clients.set(port, handler);
    return { port, [Symbol.dispose]: () => this.#clients.delete(port) };
  }

  /** Delivers one datagram that passed authentication and the trust gate. */
  deliver(session: Session, packet: PortPacket): void {
    const client = this.#clients.get(packet.dstPort);
    if (client !== undefined) return client(packet, session.peer);
    const service = this.#services.get(packet.dstPort);
    if (service !== undefined) {
      const reply = async (payload: Uint8Array) => {
        await this.#send(session.peer.keyHex, {
          srcPort: packet.dstPort,
          dstPort: packet.srcPort,
          payload,
        });
      };
      service.onDatagram(packet, {
        peer: session.peer,
        endpoint: session.endpoint,
        binding: session.handshakeHash,
        reply,
      })
        .catch(() => {});
      return;
    }
    const bound = this.userPorts.get(packet.dstPort);
    if (bound === undefined) {
      this.noService++;
      return;
    }
    const p = peerRef(session.peer);
    bound.push({
      from: p.address,
      from_key: p.public_key,
      hostname: p.hostname,
      fingerprint: p.fingerprint,
      src_port: packet.srcPort,
      data: packet.payload.toBase64(),
      bytes: packet.payload.length,
      received_at: new Date().toISOString(),
    });
  }
}
