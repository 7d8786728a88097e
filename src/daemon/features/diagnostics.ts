/**
 * `pilot info`, `peers`, `connect PEER`, `ping` and `bench`: what
 * a person or agent asks to see how the node and its peers are doing.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { PORT_ECHO } from "../../constants.ts";
import { type Endpoint, formatEndpoint } from "../../discovery/endpoint.ts";
import { PilotError } from "../../errors.ts";
import { DROP_REASONS, type DropReason } from "../../session/drop_reason.ts";
import { peerRef } from "../../session/peer_ref.ts";
import type { NodeContext } from "../context.ts";
import { nameConflict } from "../name_claims.ts";

/** What only the running node knows about itself. */
export interface NodeRuntime {
  /** Monotonic start time (ms). */
  startedAt: number;
  /** The bound UDP endpoint. */
  listen(): Endpoint;
  /** Datagrams dropped because too many were in flight. */
  overloaded(): number;
  /** Names of the built-in services running. */
  services: readonly string[];
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
  info(): Record<string, unknown> {
    const { sessions, identity, config, trust, flow, trustService, datagrams } = this.#ctx;
    return {
      address: identity.address,
      hostname: config.hostname,
      public_key: identity.publicKey.toHex(),
      fingerprint: identity.fingerprint,
      listen: formatEndpoint(this.#runtime.listen()),
      uptime_s: Math.floor((performance.now() - this.#runtime.startedAt) / 1000),
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
      },
      trust_refused: { ...trustService.refused },
      services: this.#runtime.services,
    };
  }

  /** `pilot peers`: every peer with a session, flagged when it claims a name bound elsewhere. */
  peers(): Record<string, unknown>[] {
    const { sessions, trust, config } = this.#ctx;
    const trusted = trust.list();
    return sessions.peers().map((p) => ({
      ...peerRef(p.identity),
      endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
      trusted: p.trusted,
      path: "direct",
      rtt_ms: p.rttMs,
      session_age_s: p.sessionAgeS,
      dropped: p.dropped,
      name_conflict: nameConflict(
        { keyHex: p.identity.keyHex, hostname: p.identity.hostname, endpoint: p.endpoint },
        trusted,
        config.peers,
      ),
    }));
  }

  /** `pilot connect`: opens (or reuses) a session with a peer. */
  async connect(text: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const { sessions, reach, trust } = this.#ctx;
    const before = sessions.peers().length;
    const { peer } = await reach.reach(text, timeoutMs);
    const endpoint = reach.endpointOf(peer.keyHex);
    return {
      peer: peerRef(peer),
      endpoint: endpoint ? formatEndpoint(endpoint) : "",
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
  ): Promise<Record<string, unknown>> {
    const peer = await this.#ctx.reach.reachTrusted(text, timeoutMs);
    const waiting = new Map<string, (at: number) => void>();
    using client = this.#ctx.datagrams.client((packet, from) => {
      if (from.keyHex !== peer.keyHex || packet.payload.length !== 8) return;
      waiting.get(packet.payload.toHex())?.(performance.now());
    });
    const rtts: (number | null)[] = [];
    {
      for (let i = 0; i < count; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, intervalMs));
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
      rtt_ms: rtts,
      min_ms: ok.length ? round(Math.min(...ok)) : null,
      avg_ms: ok.length ? round(ok.reduce((a, b) => a + b, 0) / ok.length) : null,
      max_ms: ok.length ? round(Math.max(...ok)) : null,
    };
  }

  /** `pilot bench`: bytes through the peer's stream echo (port 7), hash-verified both ways. */
  async bench(text: string, bytes: number, timeoutMs: number): Promise<Record<string, unknown>> {
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
        mbps_one_way: Math.round((bytes * 8) / seconds / 1e4) / 100,
        sha256_verified: true,
        retransmits: conn.stats().retransmits,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}
