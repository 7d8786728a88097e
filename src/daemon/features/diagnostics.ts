/**
 * `pilot info`, `peers`, `connect PEER`, `ping` and `bench`: what
 * a person or agent asks to see how the node and its peers are doing. Each
 * returns a domain value; control/views.ts shapes it into the API's JSON.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { PORT_ECHO } from "../../constants.ts";
import { type Endpoint, relayPathOf } from "../../discovery/endpoint.ts";
import type { Address } from "../../identity/address.ts";
import { PilotError } from "../../errors.ts";
import type { TrustDropReason } from "../../services/trust_types.ts";
import { DROP_REASONS, type DropReason } from "../../session/drop_reason.ts";
import { type PeerRef, peerRef } from "../../session/peer_ref.ts";
import type { NodeContext } from "../context.ts";
import type { Reachability } from "./rendezvous_link.ts";
import type { LanStats } from "../lan.ts";
import type { MailboxCounters } from "./mailboxes.ts";
import type { DhtStats } from "../dht_link.ts";
import type { SocketBuffers } from "../socket_buffers.ts";
import type { MemorySettleCounts } from "../memory_settle.ts";
import { type NameConflict, nameConflict } from "../name_claims.ts";
import type { TunnelList } from "./tunnels.ts";

/** What only the running node knows about itself. */
export interface NodeRuntime {
  /** Monotonic start time (ms). */
  startedAt: number;
  /** The bound UDP endpoint. */
  listen(): Endpoint;
  /** The UDP socket's kernel buffers. */
  udpBuffers(): SocketBuffers;
  /** Datagrams dropped because too many were in flight. */
  overloaded(): number;
  /** Datagrams not sent: the send queue was full (`dropped`), or the system refused them (`failed`). */
  udpSends(): { dropped: number; failed: number };
  /** What the memory settle has done so far (`memory_settle.ts`). */
  memorySettle(): MemorySettleCounts;
  /** Names of the built-in services running. */
  services: readonly string[];
  /** What this node's rendezvous see of it, or null without any. */
  reachability(): Reachability | null;
  /** LAN discovery's counters, or null when it is off. */
  lan(): LanStats | null;
  /** Sealed mailbox counters, or null without a rendezvous. */
  mailboxes(): MailboxCounters | null;
  /** The DHT node's port, routing-table size and drops by reason, or null without `--dht`. */
  dht(): DhtStats | null;
  /** Exposures and forwards (`pilot expose`, `pilot forward`). */
  tunnels(): TunnelList;
}

/** This node as `pilot info` shows it. */
export interface NodeInfo {
  /** Our address. */
  address: string;
  /** Our self-claimed hostname, or null. */
  hostname: string | null;
  /** Our Ed25519 key, hex. */
  publicKey: string;
  /** Our key fingerprint. */
  fingerprint: string;
  /** The bound UDP endpoint. */
  listen: Endpoint;
  /** Its socket's kernel buffers (raised where the system allows, `socket_buffers.ts`). */
  udpBuffers: SocketBuffers;
  /** Whole seconds since the node started. */
  uptimeS: number;
  /** Peers with a session. */
  peers: number;
  /** Trusted peers. */
  trusted: number;
  /** Trust requests waiting for a decision. */
  pending: number;
  /** Live sessions. */
  sessions: number;
  /**
   * Datagrams dropped, by reason: every session drop reason from 0 (the set
   * is documented in PROTOCOL.md §5.11), then `no_service`, `overloaded`,
   * and of ours, `send_queue_full` and `send_failed`.
   */
  drops: Record<string, number>;
  /** Port-444 datagrams the trust service dropped or refused, by reason. */
  trustRefused: Record<TrustDropReason, number>;
  /** Names of the built-in services running. */
  services: readonly string[];
  /** What this node's rendezvous see of it (observed endpoint, NAT type), or null without any. */
  reachability: Reachability | null;
  /** LAN discovery's counters, or null when it is off. */
  lan: LanStats | null;
  /** Sealed mailbox counters, or null without a rendezvous. */
  mailboxes: MailboxCounters | null;
  /** The DHT node (`--dht`), or null. */
  dht: DhtStats | null;
  /** Exposures and forwards. */
  tunnels: TunnelList;
  /** What the memory settle has done so far: minor GCs, memory-reducing GCs, C heap trims. */
  memorySettle: MemorySettleCounts;
}

/** A peer with a session, as `pilot peers` lists it. */
export interface SessionPeer {
  /** The peer. */
  peer: PeerRef;
  /** Where its last authenticated packet came from (a UDP endpoint), or null (none, or relayed). */
  endpoint: Endpoint | null;
  /** Whether it is trusted right now. */
  trusted: boolean;
  /** How packets reach it: straight over UDP, or through a rendezvous. */
  path: "direct" | "relay";
  /** The rendezvous that relays them (its address), or null on a direct path. */
  via: Address | null;
  /** Round-trip time of the last handshake we initiated (ms), or null. */
  rttMs: number | null;
  /** Age of the current session (seconds), or null. */
  sessionAgeS: number | null;
  /** Packets from it dropped by the trust gate. */
  dropped: number;
  /** Wall-clock ms of its last authenticated frame, or null. */
  lastSeen: number | null;
  /** Which binding its hostname collides with, or null. */
  nameConflict: NameConflict;
}

/** What `pilot connect` did. */
export interface ConnectResult {
  /** The peer reached. */
  peer: PeerRef;
  /** Where it was reached, or null when unknown. */
  endpoint: Endpoint | null;
  /** Whether it is trusted. */
  trusted: boolean;
  /** Whether a new session was opened. */
  changed: boolean;
}

/** What `pilot ping` measured. */
export interface PingResult {
  /** The peer pinged. */
  peer: PeerRef;
  /** Probes sent. */
  sent: number;
  /** Replies received. */
  received: number;
  /** Each probe's round trip (ms, to the microsecond), null when lost. */
  rttMs: (number | null)[];
  /** Shortest round trip (ms), null when none came back. */
  minMs: number | null;
  /** Mean round trip (ms), null when none came back. */
  avgMs: number | null;
  /** Longest round trip (ms), null when none came back. */
  maxMs: number | null;
}

/** What `pilot bench` measured. */
export interface BenchResult {
  /** The peer whose echo served. */
  peer: PeerRef;
  /** Bytes sent (and echoed back). */
  bytes: number;
  /** Wall time of the round trip (s, to the ms). */
  seconds: number;
  /** Throughput counting both directions (Mbit/s, two decimals). */
  mbps: number;
  /** Throughput of one direction (Mbit/s, two decimals). */
  mbpsOneWay: number;
  /** The echo matched the bytes sent (a mismatch is an error instead). */
  sha256Verified: true;
  /** Segments the stream retransmitted. */
  retransmits: number;
}

/** The diagnostic commands over a node's context. */
export class DiagnosticsFeature {
  #ctx: NodeContext;
  #runtime: NodeRuntime;

  /** Creates the feature over `ctx`. */
  constructor(ctx: NodeContext, runtime: NodeRuntime) {
    this.#ctx = ctx;
    this.#runtime = runtime;
  }

  /** `pilot info`. */
  info(): NodeInfo {
    const { sessions, identity, config, trust, flow, trustService, datagrams } = this.#ctx;
    const sends = this.#runtime.udpSends();
    return {
      address: identity.address,
      hostname: config.hostname,
      publicKey: identity.publicKey.toHex(),
      fingerprint: identity.fingerprint,
      listen: this.#runtime.listen(),
      udpBuffers: this.#runtime.udpBuffers(),
      uptimeS: Math.floor((performance.now() - this.#runtime.startedAt) / 1000),
      peers: sessions.peers().length,
      trusted: trust.list().length,
      pending: flow.pending.length,
      sessions: sessions.sessionCount,
      // Every reason, from 0: the set is documented (PROTOCOL.md §5.11), not discovered.
      drops: {
        ...Object.fromEntries(
          Object.keys(DROP_REASONS).map((r) => [r, sessions.drops[r as DropReason] ?? 0]),
        ),
        no_service: datagrams.noService,
        overloaded: this.#runtime.overloaded(),
        send_queue_full: sends.dropped,
        send_failed: sends.failed,
      },
      trustRefused: { ...trustService.refused },
      services: this.#runtime.services,
      reachability: this.#runtime.reachability(),
      lan: this.#runtime.lan(),
      mailboxes: this.#runtime.mailboxes(),
      dht: this.#runtime.dht(),
      tunnels: this.#runtime.tunnels(),
      memorySettle: this.#runtime.memorySettle(),
    };
  }

  /** `pilot peers`: every peer with a session, flagged when it claims a name bound elsewhere. */
  peers(): SessionPeer[] {
    const { sessions, trust, config } = this.#ctx;
    const trusted = trust.list();
    const wallNow = Date.now();
    return sessions.peers().map((p) => {
      const relay = p.endpoint === null ? null : relayPathOf(p.endpoint);
      return {
        peer: peerRef(p.identity),
        endpoint: relay === null ? p.endpoint : null,
        trusted: p.trusted,
        path: relay === null ? "direct" as const : "relay" as const,
        via: relay?.via ?? null,
        rttMs: p.rttMs,
        sessionAgeS: p.sessionAgeS,
        dropped: p.dropped,
        lastSeen: p.idleMs === null ? null : wallNow - p.idleMs,
        nameConflict: nameConflict(
          { keyHex: p.identity.keyHex, hostname: p.identity.hostname, endpoint: p.endpoint },
          trusted,
          config.peers,
        ),
      };
    });
  }

  /** `pilot connect`: opens (or reuses) a session with a peer. */
  async connect(text: string, timeoutMs: number): Promise<ConnectResult> {
    const { sessions, reach, trust } = this.#ctx;
    const before = sessions.peers().length;
    const { peer } = await reach.reach(text, timeoutMs);
    return {
      peer: peerRef(peer),
      endpoint: reach.endpointOf(peer.keyHex),
      trusted: trust.has(peer.keyHex),
      changed: sessions.peers().length !== before,
    };
  }

  /** `pilot ping`: round trips through the peer's echo service (port 7). */
  async ping(
    text: string,
    count: number,
    intervalMs: number,
    timeoutMs: number,
  ): Promise<PingResult> {
    const peer = await this.#ctx.reach.reachTrusted(text, timeoutMs);
    const waiting = new Map<string, (at: number) => void>();
    using client = this.#ctx.datagrams.client((packet, from) => {
      if (from.keyHex !== peer.keyHex || packet.payload.length !== 8) return;
      waiting.get(packet.payload.toHex())?.(performance.now());
    });
    const rtts: (number | null)[] = [];
    {
      for (let i = 0; i < count; i++) {
        // Interval 0 is back to back: even a 0 ms timer lets the threads
        // that carry a probe go idle, and a wake-up costs more than the probe.
        if (i > 0 && intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs));
        const probe = crypto.getRandomValues(new Uint8Array(8));
        const { promise, resolve } = Promise.withResolvers<number | null>();
        waiting.set(probe.toHex(), resolve);
        const timer = setTimeout(() => resolve(null), timeoutMs);
        const sentAt = performance.now();
        await this.#ctx.sessions.send(peer.keyHex, {
          kind: "datagram",
          srcPort: client.port,
          dstPort: PORT_ECHO,
          payload: probe,
        });
        const at = await promise;
        clearTimeout(timer);
        waiting.delete(probe.toHex());
        rtts.push(at === null ? null : Math.round((at - sentAt) * 1000) / 1000);
      }
    }
    const ok = rtts.filter((r): r is number => r !== null);
    const round = (v: number) => Math.round(v * 1000) / 1000;
    return {
      peer: peerRef(peer),
      sent: count,
      received: ok.length,
      rttMs: rtts,
      minMs: ok.length ? round(Math.min(...ok)) : null,
      avgMs: ok.length ? round(ok.reduce((a, b) => a + b, 0) / ok.length) : null,
      maxMs: ok.length ? round(Math.max(...ok)) : null,
    };
  }

  /** `pilot bench`: bytes through the peer's stream echo (port 7), hash-verified both ways. */
  async bench(text: string, bytes: number, timeoutMs: number): Promise<BenchResult> {
    const peer = await this.#ctx.reach.reachTrusted(text, timeoutMs);
    const conn = await this.#ctx.streams.open(
      peer,
      this.#ctx.reach.endpointOf(peer.keyHex),
      PORT_ECHO,
      timeoutMs,
    );
    const chunk = 64 * 1024;
    const sentHash = createHash("sha256");
    const gotHash = createHash("sha256");
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        conn.reset("bench timed out");
        reject(
          new PilotError(
            "timeout",
            `Bench did not finish within ${timeoutMs} ms`,
            "use a smaller --size",
          ),
        );
      }, timeoutMs);
    });
    const writer = (async () => {
      for (let sent = 0; sent < bytes; sent += chunk) {
        const piece = crypto.getRandomValues(new Uint8Array(Math.min(chunk, bytes - sent)));
        sentHash.update(piece);
        await conn.write(piece);
      }
      await conn.close();
    })();
    const reader = (async () => {
      let got = 0;
      for (;;) {
        const piece = await conn.read();
        if (piece === null) return got;
        gotHash.update(piece);
        got += piece.length;
      }
    })();
    try {
      const [, received] = await Promise.race([Promise.all([writer, reader]), timeout]);
      const seconds = (performance.now() - started) / 1000;
      const match = sentHash.digest("hex") === gotHash.digest("hex") && received === bytes;
      if (!match) {
        throw new PilotError("internal", "Echoed bytes differ from the bytes sent", "report this");
      }
      return {
        peer: peerRef(peer),
        bytes,
        seconds: Math.round(seconds * 1000) / 1000,
        mbps: Math.round((bytes * 8 * 2) / seconds / 1e4) / 100,
        mbpsOneWay: Math.round((bytes * 8) / seconds / 1e4) / 100,
        sha256Verified: true,
        retransmits: conn.stats().retransmits,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}
