/**
 * A running node: identity, UDP socket, session table, trust store,
 * resolver and built-in services, wired together. The control API calls the
 * methods here; nothing here speaks HTTP.
 *
 * @module
 */
import { MAX_INFLIGHT_DATAGRAMS, TIMER_TICK_MS } from "../constants.ts";
import { type Endpoint, formatEndpoint, resolveEndpoint } from "../discovery/endpoint.ts";
import {
  type PeerCandidate,
  Resolver,
  type ResolverSource,
  staticSource,
} from "../discovery/resolver.ts";
import { PilotError } from "../errors.ts";
import { addressToBytes } from "../identity/address.ts";
import type { Identity } from "../identity/identity.ts";
import { signSelfDescription } from "../identity/self_description.ts";
import { SessionManager } from "../session/manager.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { echoService } from "../services/echo.ts";
import type { PortService } from "../services/port_service.ts";
import { encodeHandshakePayload } from "../wire/handshake_payload.ts";
import type { DaemonConfig } from "./config.ts";
import { TrustStore } from "./trust_store.ts";
import { UdpSocket } from "./udp.ts";

/** A peer as every response names it. */
export interface PeerRef {
  /** Canonical address. */
  address: string;
  /** Self-claimed hostname, or null. */
  hostname: string | null;
  /** Key fingerprint. */
  fingerprint: string;
  /** Full Ed25519 key, hex. */
  public_key: string;
}

/** Turns an authenticated identity into the reference responses carry. */
export function peerRef(p: PeerIdentity): PeerRef {
  return {
    address: p.address,
    hostname: p.hostname === "" ? null : p.hostname,
    fingerprint: p.fingerprint,
    public_key: p.keyHex,
  };
}

/** A running node. */
export class Node {
  /** The node's identity. */
  readonly identity: Identity;
  /** Effective configuration. */
  readonly config: DaemonConfig;
  /** The trust store. */
  readonly trust: TrustStore;
  /** The session table. */
  readonly sessions: SessionManager;
  /** Monotonic start time (ms). */
  readonly startedAt = performance.now();
  #udp: UdpSocket;
  #resolver: Resolver;
  #services = new Map<number, PortService>();
  #timer: ReturnType<typeof setInterval>;
  #serving: Promise<void>;
  #inflight = 0;
  /** Datagrams to ports with no service, counted. */
  noService = 0;
  /** Datagrams dropped because too many were in flight. */
  overloaded = 0;

  private constructor(identity: Identity, config: DaemonConfig, trust: TrustStore, udp: UdpSocket) {
    this.identity = identity;
    this.config = config;
    this.trust = trust;
    this.#udp = udp;
    const self = signSelfDescription(identity.seed, {
      stamp: identity.stamp,
      hostname: config.hostname,
    });
    const payload = encodeHandshakePayload({
      publicKey: identity.publicKey,
      stamp: identity.stamp,
      staticSerial: identity.binding.serial,
      staticCreated: identity.binding.created,
      bindingSignature: identity.binding.signature,
      hostname: config.hostname ?? "",
      selfTime: self.time,
      selfSignature: self.signature,
    });
    this.sessions = new SessionManager({
      local: {
        staticKey: identity.staticKey,
        payload,
        publicKey: identity.publicKey,
        addressBytes: addressToBytes(identity.address),
      },
      transmit: (bytes, to) => udp.send(bytes, to),
      isTrusted: (peer) => trust.has(peer.keyHex),
      deliver: (session, packet) => {
        const service = this.#services.get(packet.dstPort);
        if (service === undefined) {
          this.noService++;
          return;
        }
        const reply = async (payload: Uint8Array) => {
          await this.sessions.send(session.peer.keyHex, {
            kind: "datagram",
            srcPort: packet.dstPort,
            dstPort: packet.srcPort,
            payload,
          });
        };
        service.onDatagram(packet, reply, session.peer).catch(() => {});
      },
      requireMac1: config.requireMac1,
      ...(config.cookieThreshold === null ? {} : { cookieThreshold: config.cookieThreshold }),
      timers: config.timers,
    });
    this.#resolver = new Resolver([this.#learnedSource(), staticSource(config.peers)]);
    for (const s of [echoService()]) this.#services.set(s.port, s);
    let ticking = false;
    this.#timer = setInterval(() => {
      if (ticking) return;
      ticking = true;
      this.sessions.tick().catch(() => {}).finally(() => ticking = false);
    }, TIMER_TICK_MS);
    this.#serving = udp.serve((bytes, from) => {
      // Bounded work in flight: past the cap, datagrams are dropped (and counted)
      // instead of queuing memory without limit.
      if (this.#inflight >= MAX_INFLIGHT_DATAGRAMS) {
        this.overloaded++;
        return;
      }
      this.#inflight++;
      this.sessions.handle(bytes, from).catch(() => {}).finally(() => this.#inflight--);
    });
  }

  /** Binds the UDP socket and starts serving. */
  static async start(identity: Identity, config: DaemonConfig, home: string): Promise<Node> {
    const trust = await TrustStore.load(home);
    let udp: UdpSocket;
    try {
      udp = UdpSocket.open(config.listen);
    } catch (e) {
      const where = `${config.listen.hostname}:${config.listen.port}`;
      if (e instanceof Deno.errors.AddrInUse) {
        throw new PilotError(
          "already_running",
          `UDP ${where} is already in use`,
          "pass --listen IP:PORT with a free port",
        );
      }
      throw new PilotError(
        "invalid_argument",
        `Cannot listen on UDP ${where}: ${(e as Error).message}`,
        "pass --listen IP:PORT",
      );
    }
    return new Node(identity, config, trust, udp);
  }

  /** The bound UDP endpoint. */
  get listen(): Endpoint {
    return this.#udp.local;
  }

  #learnedSource(): ResolverSource {
    return {
      lookup: (query) => {
        const out: PeerCandidate[] = [];
        for (const p of this.sessions.peers()) {
          const id = p.identity;
          const match = query.kind === "address"
            ? id.address === query.address
            : query.kind === "hostname"
            ? id.hostname === query.hostname
            : false;
          if (!match) continue;
          out.push({
            source: "session",
            publicKey: id.publicKey,
            address: id.address,
            hostname: id.hostname,
            ...(p.endpoint
              ? { endpoint: { host: p.endpoint.hostname, port: p.endpoint.port } }
              : {}),
          });
        }
        return out;
      },
    };
  }

  /** `pilot info`. */
  info(): Record<string, unknown> {
    const peers = this.sessions.peers();
    return {
      address: this.identity.address,
      hostname: this.config.hostname,
      public_key: this.identity.publicKey.toHex(),
      fingerprint: this.identity.fingerprint,
      listen: formatEndpoint(this.listen),
      uptime_s: Math.floor((performance.now() - this.startedAt) / 1000),
      peers: peers.length,
      trusted: this.trust.list().length,
      sessions: this.sessions.sessionCount,
      drops: { ...this.sessions.drops, no_service: this.noService, overloaded: this.overloaded },
    };
  }

  /** `pilot peers`. */
  peers(): Record<string, unknown>[] {
    return this.sessions.peers().map((p) => ({
      ...peerRef(p.identity),
      endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
      trusted: p.trusted,
      path: "direct",
      rtt_ms: p.rttMs,
      session_age_s: p.sessionAgeS,
      dropped: p.dropped,
    }));
  }

  /** Opens (or reuses) a session with a peer named by address, hostname or endpoint. */
  async connect(text: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const r = this.#resolver.resolve(text);
    if (r.endpoint === undefined) {
      throw new PilotError(
        "not_found",
        `No endpoint known for "${text}"`,
        "give its endpoint (IP:PORT)",
      );
    }
    const endpoint = await resolveEndpoint(r.endpoint);
    const before = this.sessions.peers().length;
    const peer = await this.sessions.connect(endpoint, r.expected, timeoutMs);
    const status = this.sessions.peers().find((p) => p.identity.keyHex === peer.keyHex);
    return {
      peer: peerRef(peer),
      endpoint: formatEndpoint(status?.endpoint ?? endpoint),
      trusted: this.trust.has(peer.keyHex),
      changed: this.sessions.peers().length !== before,
    };
  }

  /** Stops timers and the socket. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#udp.close();
    await this.#serving.catch(() => {});
  }
}
