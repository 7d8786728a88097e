/**
 * A running node: identity, UDP socket, session table, trust store and
 * trust flow, resolver, events and built-in services, wired together. The
 * control API calls the methods here; nothing here speaks HTTP.
 *
 * @module
 */
import {
  MAX_INFLIGHT_DATAGRAMS,
  MAX_PORT_DATAGRAM,
  OUTBOX_RETRY_MS,
  PORT_ECHO,
  PORT_MESSAGES,
  PORT_PUBSUB,
  PORT_STDIO,
  PORT_TRUST,
  TIMER_TICK_MS,
} from "../constants.ts";
import {
  type Endpoint,
  formatEndpoint,
  parseEndpoint,
  resolveEndpoint,
} from "../discovery/endpoint.ts";
import { matches, matchOne } from "../discovery/match.ts";
import { Resolver, staticSource } from "../discovery/resolver.ts";
import { sessionSource, trustSource } from "./peer_sources.ts";
import { type ErrorCode, invalid, PilotError } from "../errors.ts";
import { addressToBytes } from "../identity/address.ts";
import type { Identity } from "../identity/identity.ts";
import { signSelfDescription } from "../identity/self_description.ts";
import { SessionManager } from "../session/manager.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { echoService, echoStream } from "../services/echo.ts";
import type { PortService } from "../services/port_service.ts";
import type { PortPacket } from "../wire/inner.ts";
import { TrustService } from "../services/trust.ts";
import { ExchangeService } from "../services/exchange_stream.ts";
import type { Receipt } from "../services/exchange_stream.ts";
import { ReceivedFiles } from "./received_files.ts";
import type { Envelope } from "../wire/data_message.ts";
import { DedupStore } from "./dedup_store.ts";
import { Inbox, type InboxMessage } from "./inbox.ts";
import { encodeHandshakePayload } from "../wire/handshake_payload.ts";
import type { DaemonConfig } from "./config.ts";
import { EventBus } from "./events.ts";
import { TrustFlowStore } from "./trust_flow_store.ts";
import { TrustStore } from "./trust_store.ts";
import { UdpSocket } from "./udp.ts";
import { notTrusted } from "./peer_ref.ts";
import { type PeerRef, peerRef, refOf } from "../session/peer_ref.ts";
import { buildEnvelope, checkReason, type OutgoingMessage } from "./outgoing_message.ts";
import { withTimeout } from "./with_timeout.ts";
import { pubsubError, pubsubInput } from "./pubsub_errors.ts";

import { publishTo, PubSubBroker, subscribe } from "../services/pubsub.ts";
import { checkPattern, checkTopic } from "../wire/pubsub_frame.ts";
import { createHash } from "node:crypto";
import { basename } from "node:path";
import { log } from "./log.ts";
import { UserPorts } from "./user_ports.ts";
import { Streams } from "./streams.ts";
import type { Connection } from "../stream/mod.ts";

/**
 * Records every inbox message's (sender, id) that the dedup store lacks: a
 * crash between the inbox append and the dedup append must not let a retry
 * of that message be stored a second time.
 */
async function reseedDedup(inbox: Inbox, dedup: DedupStore): Promise<void> {
  let after = 0;
  for (;;) {
    const page = inbox.list({ after, limit: 1000 });
    if (page.messages.length === 0) return;
    await Promise.all(
      page.messages
        .filter((m) => dedup.check(m.from_key, m.id) === undefined)
        .map((m) => dedup.remember(m.from_key, m.id, m.seq)),
    );
    after = page.next;
  }
}

/** A running node. */
export class Node {
  /** The node's identity. */
  readonly identity: Identity;
  /** Effective configuration. */
  readonly config: DaemonConfig;
  /** The trust store. */
  readonly trust: TrustStore;
  /** The persisted trust flow (pending, outgoing, outbox). */
  readonly flow: TrustFlowStore;
  /** The session table. */
  readonly sessions: SessionManager;
  /** The event stream. */
  readonly events = new EventBus();
  /** The trust service (port 444). */
  readonly trustService: TrustService;
  /** Messages and files over streams (port 1001). */
  readonly exchange: ExchangeService;
  /** Files received from peers. */
  readonly receivedFiles: ReceivedFiles;
  /** Dedup entries not yet durable: inbox removals wait for them. */
  #dedupPending = new Set<Promise<void>>();
  /** The reused port-1001 stream per peer. */
  #exchangeConns = new Map<string, Promise<Connection>>();
  /** The durable inbox. */
  readonly inbox: Inbox;
  /** The pub/sub broker for this node's topics (port 1002). */
  readonly broker: PubSubBroker;
  /** Message ids seen per sender (idempotent retries), apart from the inbox. */
  readonly dedup: DedupStore;
  /** Monotonic start time (ms). */
  readonly startedAt = performance.now();
  #udp: UdpSocket;
  #resolver: Resolver;
  #services = new Map<number, PortService>();
  /** Reliable streams, one mux per peer. */
  readonly streams: Streams;
  /** Ports bound by API clients (`pilot recv`). */
  readonly userPorts = new UserPorts();
  /** Replies to requests this node made from an ephemeral port (e.g. ping). */
  #clients = new Map<number, (packet: PortPacket, peer: PeerIdentity) => void>();
  #timer: ReturnType<typeof setInterval>;
  #flushTimer: ReturnType<typeof setInterval>;
  #serving: Promise<void>;
  #inflight = 0;
  /** Datagrams to ports with no service, counted. */
  noService = 0;
  /** Datagrams dropped because too many were in flight. */
  overloaded = 0;

  private constructor(
    identity: Identity,
    config: DaemonConfig,
    trust: TrustStore,
    flow: TrustFlowStore,
    inbox: Inbox,
    dedup: DedupStore,
    receivedFiles: ReceivedFiles,
    udp: UdpSocket,
  ) {
    this.identity = identity;
    this.receivedFiles = receivedFiles;
    this.streams = new Streams((key, p) => {
      this.sessions.send(key, { kind: "stream", ...p }).catch(() => {});
    }, config.streamTimers);
    this.inbox = inbox;
    this.dedup = dedup;
    this.config = config;
    this.trust = trust;
    this.flow = flow;
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
      serialFloor: (key) => trust.get(key)?.static_serial ?? 0,
      deliver: (session, packet) => {
        if (packet.kind === "stream") {
          this.streams.receive(session.peer, session.endpoint, packet);
          return;
        }
        const client = this.#clients.get(packet.dstPort);
        if (client !== undefined) {
          client(packet, session.peer);
          return;
        }
        const service = this.#services.get(packet.dstPort);
        if (service === undefined) {
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
        service.onDatagram(packet, { peer: session.peer, binding: session.handshakeHash, reply })
          .catch(() => {});
      },
      onPeerUp: (peer) => this.#onPeerUp(peer),
      onPeerDown: (peer) => {
        this.streams.closePeer(peer.keyHex, "peer gone");
        this.events.publish("peer.down", { peer: peerRef(peer) });
      },
      requireMac1: config.requireMac1,
      ...(config.cookieThreshold === null ? {} : { cookieThreshold: config.cookieThreshold }),
      timers: config.timers,
    });
    this.trustService = new TrustService({
      seed: identity.seed,
      publicKey: identity.publicKey,
      stamp: identity.stamp,
      hostname: config.hostname,
      trust,
      flow,
      send: (key, payload) =>
        this.sessions.send(key, { kind: "datagram", srcPort: 444, dstPort: 444, payload }),
      binding: (key) => this.sessions.binding(key),
      endpointOf: (key) => {
        const live = this.sessions.peers().find((p) => p.identity.keyHex === key)?.endpoint;
        return live ? formatEndpoint(live) : this.trust.get(key)?.endpoint;
      },
      autoApprove: (peer) => config.autoApprove.some((a) => matches(a, peerRef(peer))),
      publish: (type, data) => this.events.publish(type, data),
      onUntrusted: (key) => {
        this.streams.closePeer(key, "untrusted");
        this.sessions.closePeer(key);
      },
    });
    this.#resolver = new Resolver([
      sessionSource(() => this.sessions.peers()),
      trustSource(() => this.trust.list()),
      staticSource(config.peers),
    ]);
    this.exchange = new ExchangeService({
      sink: { store: (peer, envelope) => this.#store(peer, envelope) },
      files: receivedFiles,
    });
    if (!config.disable.includes("data")) {
      this.streams.serve(PORT_MESSAGES, (conn, peer) => void this.exchange.serve(conn, peer));
    }
    for (const s of [echoService(), this.trustService]) {
      // The trust service cannot be turned off: it is how peers become trusted.
      if (s !== this.trustService && config.disable.includes(s.name)) continue;
      this.#services.set(s.port, s);
    }
    if (!config.disable.includes("echo")) {
      this.streams.serve(PORT_ECHO, (conn) => void echoStream(conn));
    }
    this.broker = new PubSubBroker({
      self: { address: identity.address, publicKey: identity.publicKey },
    });
    if (!config.disable.includes("events")) {
      this.streams.serve(PORT_PUBSUB, (conn, peer) => void this.broker.serve(conn, peer));
    }
    let ticking = false;
    this.#timer = setInterval(() => {
      if (ticking) return;
      ticking = true;
      this.sessions.tick().catch(() => {}).finally(() => ticking = false);
    }, TIMER_TICK_MS);
    let flushing = false;
    this.#flushTimer = setInterval(() => {
      if (flushing || this.flow.outbox.length === 0) return;
      flushing = true;
      this.#redeliver().catch(() => {}).finally(() => flushing = false);
    }, OUTBOX_RETRY_MS);
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

  /** Loads the trust state, binds the UDP socket and starts serving. */
  static async start(identity: Identity, config: DaemonConfig, home: string): Promise<Node> {
    const trust = await TrustStore.load(home);
    const flow = await TrustFlowStore.load(home);
    const inbox = await Inbox.open(home);
    const dedup = await DedupStore.open(home);
    await reseedDedup(inbox, dedup);
    const receivedFiles = await ReceivedFiles.open(home);
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
    return new Node(identity, config, trust, flow, inbox, dedup, receivedFiles, udp);
  }

  /** The bound UDP endpoint. */
  get listen(): Endpoint {
    return this.#udp.local;
  }

  /** Reconnects to peers with undelivered trust answers, then delivers them. */
  async #redeliver(): Promise<void> {
    for (const item of this.flow.outbox) {
      if (this.sessions.binding(item.public_key) !== undefined || !item.endpoint) continue;
      const endpoint = await resolveEndpoint(parseEndpoint(item.endpoint)).catch(() => undefined);
      if (endpoint === undefined) continue;
      const expected = { publicKey: Uint8Array.fromHex(item.public_key) };
      await this.sessions.connect(endpoint, expected, OUTBOX_RETRY_MS).catch(() => {});
    }
    await this.trustService.flush();
  }

  #onPeerUp(peer: PeerIdentity): void {
    this.events.publish("peer.up", { peer: peerRef(peer) });
    const entry = this.trust.get(peer.keyHex);
    const status = this.sessions.peers().find((p) => p.identity.keyHex === peer.keyHex);
    const endpoint = status?.endpoint ? formatEndpoint(status.endpoint) : undefined;
    // Remember where a trusted peer is, and the newest static key it proved
    // (so a rollback to an older one is refused after a restart too).
    const serial = Math.max(entry?.static_serial ?? 0, peer.staticSerial);
    if (
      entry !== undefined &&
      ((endpoint !== undefined && entry.endpoint !== endpoint) ||
        serial !== (entry.static_serial ?? 0))
    ) {
      this.trust.put({
        ...entry,
        ...(endpoint === undefined ? {} : { endpoint }),
        static_serial: serial,
      })
        .catch(() => {});
    }
    this.trustService.flush(peer.keyHex).catch(() => {});
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
      pending: this.flow.pending.length,
      sessions: this.sessions.sessionCount,
      drops: { ...this.sessions.drops, no_service: this.noService, overloaded: this.overloaded },
      trust_refused: { ...this.trustService.refused },
      services: this.services,
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

  /** Resolves a peer and opens (or reuses) a session with it. */
  async #reach(text: string, timeoutMs: number): Promise<PeerIdentity> {
    const r = this.#resolver.resolve(text);
    if (r.endpoint === undefined) {
      throw new PilotError(
        "unreachable",
        `No endpoint known for "${text}"`,
        "give its endpoint (IP:PORT), or add --peer NAME=ENDPOINT to the daemon",
      );
    }
    const endpoint = await resolveEndpoint(r.endpoint);
    return await this.sessions.connect(endpoint, r.expected, timeoutMs);
  }

  /** `pilot connect`: opens (or reuses) a session with a peer. */
  async connect(text: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const before = this.sessions.peers().length;
    const peer = await this.#reach(text, timeoutMs);
    const status = this.sessions.peers().find((p) => p.identity.keyHex === peer.keyHex);
    return {
      peer: peerRef(peer),
      endpoint: status?.endpoint ? formatEndpoint(status.endpoint) : "",
      trusted: this.trust.has(peer.keyHex),
      changed: this.sessions.peers().length !== before,
    };
  }

  /** `pilot handshake`: asks a peer to trust us; with `wait`, until it decides or time runs out. */
  async handshake(
    text: string,
    reason: string,
    wait: boolean,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    checkReason(reason);
    const deadline = Date.now() + timeoutMs;
    const peer = await this.#reach(text, timeoutMs);
    if (peer.keyHex === this.identity.publicKey.toHex()) {
      throw invalid("Cannot handshake with this node itself");
    }
    const outcome = await this.trustService.request(
      peer,
      reason,
      Math.max(1, deadline - Date.now()),
    );
    let status: string = outcome.status;
    let timedOut = false;
    if (status === "trusted" || (wait && status === "pending")) {
      // "Approved" by the peer is "trusted" here only once its accept arrived.
      const settled = await this.#waitForDecision(peer.keyHex, deadline);
      status = settled ?? "pending";
      timedOut = settled === undefined;
    }
    return { peer: peerRef(peer), status, changed: outcome.changed, timed_out: timedOut };
  }

  /** Waits until our request to `key` is decided: "trusted", "rejected", or undefined at the deadline. */
  async #waitForDecision(key: string, deadline: number): Promise<string | undefined> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.max(0, deadline - Date.now()));
    try {
      for (;;) {
        const out = this.flow.outgoingTo(key);
        if (this.trust.get(key)?.mutual || out?.status === "approved") return "trusted";
        if (out?.status === "rejected") return "rejected";
        if (ac.signal.aborted) return undefined;
        await this.events.next(ac.signal);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** `pilot pending`. */
  pending(): Record<string, unknown> {
    return {
      pending: this.flow.pending.map((p) => ({
        address: p.address,
        hostname: p.hostname,
        fingerprint: p.fingerprint,
        public_key: p.public_key,
        reason: p.reason,
        received_at: p.received_at,
      })),
    };
  }

  /** `pilot approve`. */
  async approve(text: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const candidates = [
      ...this.flow.pending,
      ...this.trust.list().map((e) => refOf(e)).filter((e) => !this.flow.pendingFrom(e.public_key)),
    ];
    const p = matchOne(text, candidates, "pending request");
    const outcome = await this.trustService.approve(p.public_key, timeoutMs);
    return {
      peer: refOf(p),
      status: outcome.status,
      changed: outcome.changed,
      delivered: outcome.delivered,
    };
  }

  /** `pilot reject`. */
  async reject(text: string, reason: string, timeoutMs: number): Promise<Record<string, unknown>> {
    checkReason(reason);
    const p = matchOne(text, this.flow.pending, "pending request");
    const outcome = await this.trustService.reject(p.public_key, reason, timeoutMs);
    return {
      peer: refOf(p),
      status: outcome.status,
      changed: outcome.changed,
      delivered: outcome.delivered,
    };
  }

  /** `pilot trust`. */
  trusted(): Record<string, unknown> {
    return {
      trusted: this.trust.list().map((e) => ({
        ...refOf(e),
        since: e.since,
        mutual: e.mutual,
      })),
    };
  }

  /** `pilot untrust`: at once; sessions closed, the peer told. Unknown peers answer changed: false. */
  async untrust(text: string, timeoutMs: number): Promise<Record<string, unknown>> {
    let entry;
    try {
      entry = matchOne(text, this.trust.list().map((e) => refOf(e)), "trusted peer");
    } catch (e) {
      if (e instanceof PilotError && e.code === "not_found") {
        return { peer: null, changed: false, delivered: true };
      }
      throw e;
    }
    const outcome = await this.trustService.untrust(entry.public_key, timeoutMs);
    return { peer: entry, changed: outcome.changed, delivered: outcome.delivered };
  }

  /** Stores a received message once: dedup by (sender key, id), then the durable inbox. */
  async #store(peer: PeerIdentity, e: Envelope): Promise<{ seq: number; duplicate: boolean }> {
    const seen = this.dedup.check(peer.keyHex, e.id);
    if (seen !== undefined) return { seq: seen.seq, duplicate: true };
    let data: string;
    if (e.type === "binary") data = e.data.toBase64();
    else {
      try {
        data = new TextDecoder("utf-8", { fatal: true }).decode(e.data);
        if (e.type === "json") JSON.parse(data);
      } catch {
        throw new Error("invalid_argument");
      }
    }
    let message: InboxMessage;
    try {
      message = await this.inbox.add({
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
      throw new Error(err instanceof PilotError ? err.code : "internal");
    }
    // The receipt need not wait for this fsync: while the message is in the
    // inbox, a restart rebuilds its dedup entry from it (reseedDedup). Only
    // removing it from the inbox waits until the entry is durable.
    const remembered = this.dedup.remember(peer.keyHex, e.id, message.seq).catch((err) => {
      // Only a retry arriving after this message left the inbox could be stored twice.
      log(
        `dedup store failed for ${peer.address} id ${JSON.stringify(e.id)}: ${
          (err as Error).message
        }`,
      );
    });
    this.#dedupPending.add(remembered);
    remembered.finally(() => this.#dedupPending.delete(remembered));
    this.events.publish("message.received", {
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
  ): Promise<Record<string, unknown>> {
    const envelope = buildEnvelope(m);
    const deadline = Date.now() + timeoutMs;
    const known = this.#resolver.resolve(text).expected.publicKey;
    if (known !== undefined && !this.trust.has(known.toHex())) throw notTrusted(text);
    const peer = await this.#reach(text, timeoutMs);
    if (!this.trust.has(peer.keyHex)) throw notTrusted(text);
    // One reused stream per peer carries every message; a broken one is
    // replaced once (retrying is safe: the peer deduplicates by id).
    let receipt: Receipt | undefined;
    for (let attempt = 0; receipt === undefined; attempt++) {
      const conn = await this.#exchangeStream(peer, text, Math.max(1, deadline - Date.now()));
      try {
        receipt = await withTimeout(
          this.exchange.sendMessage(conn, envelope),
          Math.max(1, deadline - Date.now()),
          "delivery",
        );
      } catch (e) {
        this.#exchangeConns.delete(peer.keyHex);
        conn.reset("delivery failed");
        if (e instanceof PilotError && e.code === "timeout") {
          throw new PilotError(
            "timeout",
            `${peer.address} did not confirm the message within ${timeoutMs} ms`,
            `retry with --id ${envelope.id}: it is never stored twice`,
          );
        }
        if (attempt >= 1 || Date.now() >= deadline) {
          throw new PilotError(
            "unreachable",
            `Delivery to ${peer.address} failed: ${(e as Error).message}`,
            `retry with --id ${envelope.id}`,
          );
        }
      }
    }
    if (receipt.status === "refused") {
      const known = ["rate_limited", "too_large", "invalid_argument"];
      const code = known.includes(receipt.detail) ? receipt.detail as ErrorCode : "internal";
      throw new PilotError(
        code,
        `${peer.address} refused the message (${receipt.detail})`,
        code === "rate_limited" ? "its inbox is full; retry later" : "",
      );
    }
    return {
      to: peerRef(peer),
      id: envelope.id,
      type: envelope.type,
      bytes: envelope.data.length,
      receipt: { status: receipt.status, seq: receipt.seq },
    };
  }

  /** `pilot send-file`: streams a file of any size; SHA-256 verified at the peer. */
  async sendFile(
    text: string,
    path: string,
    timeoutMs: number,
    onProgress?: (sent: number, size: number) => void,
  ): Promise<Record<string, unknown>> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch (e) {
      throw invalid(`Cannot read "${path}": ${(e as Error).message}`, "check the path");
    }
    if (!info.isFile) throw invalid(`"${path}" is not a regular file`, "send files one at a time");
    const hash = createHash("sha256");
    try {
      using file = await Deno.open(path, { read: true });
      for await (const chunk of file.readable) hash.update(chunk);
    } catch (e) {
      throw invalid(`Cannot read "${path}": ${(e as Error).message}`, "check its permissions");
    }
    const sha256 = new Uint8Array(hash.digest());
    const peer = await this.#reach(text, timeoutMs);
    if (!this.trust.has(peer.keyHex)) throw notTrusted(text);
    const { conn } = await this.openStream(text, PORT_MESSAGES, timeoutMs);
    const file = await Deno.open(path, { read: true });
    try {
      const receipt = await withTimeout(
        this.exchange.sendFile(conn, {
          name: basename(path),
          size: info.size,
          sha256,
          read: file.readable,
          ...(onProgress ? { onProgress } : {}),
        }),
        timeoutMs,
        "file transfer",
      );
      await conn.close().catch(() => {});
      if (receipt.status === "refused") {
        const code: ErrorCode = receipt.detail === "too_large" || receipt.detail === "disk_full"
          ? "too_large"
          : receipt.detail === "rate_limited"
          ? "rate_limited"
          : "internal";
        throw new PilotError(code, `${peer.address} refused the file (${receipt.detail})`, "");
      }
      return {
        to: peerRef(peer),
        name: basename(path),
        stored_as: receipt.name,
        bytes: receipt.size,
        sha256: receipt.sha256,
        receipt: { status: receipt.status, seq: receipt.seq, id: receipt.id },
      };
    } catch (e) {
      conn.reset("file transfer failed");
      throw e;
    } finally {
      try {
        file.close();
      } catch {
        // already closed by its stream
      }
    }
  }

  /**
   * `pilot call`: sends a request and waits for the reply that names it
   * (`in_reply_to`); the reply is taken out of the inbox and returned.
   */
  async call(
    text: string,
    m: OutgoingMessage,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    const id = m.id === "" ? crypto.randomUUID() : m.id;
    const sent = await this.send(
      text,
      { ...m, id, correlationId: m.correlationId || id },
      timeoutMs,
    );
    const peerKey = (sent.to as PeerRef).public_key;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.max(0, deadline - Date.now()));
    try {
      for (;;) {
        const reply = this.#findReply(peerKey, id);
        if (reply !== undefined) {
          // Handed to the caller: it does not stay in the inbox as well.
          await this.inboxAck([reply.id]).catch(() => 0);
          return { request: sent, reply };
        }
        if (ac.signal.aborted) {
          throw new PilotError(
            "timeout",
            `No reply to ${id} within ${timeoutMs} ms`,
            `the request was delivered; a late reply still lands in the inbox (in_reply_to ${id})`,
          );
        }
        await this.inbox.waitFor(this.#inboxHigh(), ac.signal, { fromKey: peerKey }).catch(
          () => {},
        );
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #findReply(fromKey: string, id: string): InboxMessage | undefined {
    let after = 0;
    for (;;) {
      const page = this.inbox.list({ after, limit: 1000, fromKey });
      const hit = page.messages.find((x) => x.in_reply_to === id);
      if (hit !== undefined || page.messages.length === 0) return hit;
      after = page.next;
    }
  }

  #inboxHigh(): number {
    let after = 0;
    for (;;) {
      const page = this.inbox.list({ after, limit: 1000 });
      if (page.messages.length === 0) return after;
      after = page.next;
    }
  }

  /** `pilot reply`: answers a message in the inbox, to its sender, naming it. */
  async reply(id: string, m: OutgoingMessage, timeoutMs: number): Promise<Record<string, unknown>> {
    const matches: InboxMessage[] = [];
    let after = 0;
    for (;;) {
      const page = this.inbox.list({ after, limit: 1000 });
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
        `Several senders used the id "${id}"`,
        "answer through the API with the sender named",
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

  /** The open port-1001 stream to a peer, opened when there is none. */
  #exchangeStream(peer: PeerIdentity, text: string, timeoutMs: number): Promise<Connection> {
    let conn = this.#exchangeConns.get(peer.keyHex);
    if (conn === undefined) {
      conn = this.openStream(text, PORT_MESSAGES, timeoutMs).then(({ conn }) => {
        conn.closed.then(() => {
          if (this.#exchangeConns.get(peer.keyHex) === pending) {
            this.#exchangeConns.delete(peer.keyHex);
          }
        });
        return conn;
      });
      const pending = conn;
      pending.catch(() => this.#exchangeConns.delete(peer.keyHex));
      this.#exchangeConns.set(peer.keyHex, pending);
    }
    return conn;
  }

  /** `pilot dgram`: one unreliable datagram to a trusted peer's virtual port. */
  async dgram(
    text: string,
    port: number,
    data: Uint8Array,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      throw invalid(`Port ${port} is out of range`, "use 1-65535");
    }
    if (data.length > MAX_PORT_DATAGRAM) {
      throw new PilotError(
        "too_large",
        `Datagram of ${data.length} bytes is over ${MAX_PORT_DATAGRAM}`,
        "datagrams must fit one UDP packet; use send for larger data",
      );
    }
    const peer = await this.#reach(text, timeoutMs);
    if (!this.trust.has(peer.keyHex)) throw notTrusted(text);
    const sent = await this.sessions.send(peer.keyHex, {
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
  ): Promise<{ peer: PeerRef; conn: Connection }> {
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      throw invalid(`Port ${port} is out of range`, "use 1-65535");
    }
    const deadline = Date.now() + timeoutMs;
    const peer = await this.#reach(text, timeoutMs);
    if (!this.trust.has(peer.keyHex)) throw notTrusted(text);
    const endpoint =
      this.sessions.peers().find((p) => p.identity.keyHex === peer.keyHex)?.endpoint ?? null;
    const mux = this.streams.muxFor(peer, endpoint);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new PilotError(
              "timeout",
              `No stream to ${peer.address}:${port} within ${timeoutMs} ms`,
              "retry",
            ),
          ),
        Math.max(1, deadline - Date.now()),
      );
    });
    try {
      const conn = await Promise.race([mux.connect(port), timeout]);
      return { peer: peerRef(peer), conn };
    } catch (e) {
      if (e instanceof PilotError) throw e;
      const code = (e as { code?: string }).code;
      throw new PilotError(
        code === "refused" ? "not_found" : "unreachable",
        `Cannot open a stream to ${peer.address}:${port}: ${(e as Error).message}`,
        code === "refused" ? "nothing listens on that port" : "retry",
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** `pilot bench`: bytes through the peer's stream echo (port 7), hash-verified both ways. */
  async bench(text: string, bytes: number, timeoutMs: number): Promise<Record<string, unknown>> {
    const { peer, conn } = await this.openStream(text, PORT_ECHO, timeoutMs);
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
        peer,
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

  /** `pilot connections`. */
  connections(): Record<string, unknown>[] {
    return this.streams.connections().map(({ peer, conn }) => {
      const s = conn.stats();
      return {
        peer: peerRef(peer),
        local_port: s.localPort,
        remote_port: s.remotePort,
        state: s.state,
        cwnd: s.cwnd,
        srtt_ms: s.srtt === null ? null : Math.round(s.srtt * 1000) / 1000,
        rto_ms: Math.round(s.rto),
        bytes_in_flight: s.bytesInFlight,
        retransmits: s.retransmits,
        sent: s.sent,
        received: s.received,
      };
    });
  }

  /** Names of the built-in services this node runs. */
  get services(): string[] {
    const optional = ["echo", "data", "events"].filter((s) => !this.config.disable.includes(s));
    return ["trust", ...optional];
  }

  /** Whether a port is taken by a built-in service. */
  isServicePort(port: number): boolean {
    return this.#services.has(port) || port === PORT_TRUST || port === PORT_PUBSUB ||
      port === PORT_ECHO || port === PORT_MESSAGES || port === PORT_STDIO;
  }

  /** `pilot publish`: an event to a trusted peer's broker, fanned out to its subscribers. */
  async publish(text: string, topic: string, data: Uint8Array, timeoutMs: number) {
    pubsubInput(() => checkTopic(topic));
    const { peer, conn } = await this.openStream(text, PORT_PUBSUB, timeoutMs);
    try {
      const r = await withTimeout(publishTo(conn, topic, data), timeoutMs, "publish");
      return {
        to: peer,
        topic,
        bytes: data.length,
        seq: r.seq,
        delivered: r.delivered,
        dropped: r.dropped,
      };
    } catch (e) {
      throw pubsubError(e);
    } finally {
      conn.close().catch(() => {});
    }
  }

  /**
   * `pilot subscribe`: events matching `pattern` at a trusted peer's broker,
   * until `count` events or the deadline. Opening and subscribing happen
   * before the first line, so refusals are ordinary errors; a heartbeat line
   * is yielded when nothing came for `heartbeatMs`.
   */
  async subscribe(
    text: string,
    pattern: string,
    timeoutMs: number,
  ): Promise<
    (
      count: number,
      heartbeatMs: number,
      signal: AbortSignal,
    ) => AsyncGenerator<Record<string, unknown>>
  > {
    pubsubInput(() => checkPattern(pattern));
    const deadline = Date.now() + timeoutMs;
    const { conn } = await this.openStream(text, PORT_PUBSUB, timeoutMs);
    let sub: Awaited<ReturnType<typeof subscribe>>;
    try {
      sub = await withTimeout(subscribe(conn, pattern), timeoutMs, "subscribe");
    } catch (e) {
      conn.reset("subscribe failed");
      throw pubsubError(e);
    }
    return async function* (count, heartbeatMs, signal) {
      const stop = () => void sub.close().catch(() => {});
      const timer = setTimeout(stop, Math.max(0, deadline - Date.now()));
      signal.addEventListener("abort", stop, { once: true });
      try {
        yield { kind: "subscribed", pattern, since: sub.since };
        let events = 0;
        while (events < count) {
          const pending = sub.next().catch(() => null);
          let n;
          for (;;) {
            let beat: ReturnType<typeof setTimeout> | undefined;
            const tick = new Promise<"beat">((r) =>
              beat = setTimeout(() => r("beat"), heartbeatMs)
            );
            n = await Promise.race([pending, tick]);
            clearTimeout(beat);
            if (n !== "beat") break;
            yield { kind: "heartbeat", time: new Date().toISOString() };
          }
          if (n === null) break;
          if (n.kind === "event") {
            events++;
            yield {
              kind: "event",
              seq: n.seq,
              topic: n.topic,
              from: n.from,
              from_key: n.fromKey.toHex(),
              time: new Date(n.time).toISOString(),
              data: n.data.toBase64(),
              bytes: n.data.length,
            };
          } else {
            yield {
              kind: "overflow",
              dropped: n.dropped,
              first_seq: n.firstSeq,
              last_seq: n.lastSeq,
            };
          }
        }
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", stop);
        stop();
      }
    };
  }

  /** `pilot ping`: round trips through the peer's echo service (port 7). */
  async ping(
    text: string,
    count: number,
    intervalMs: number,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    const peer = await this.#reach(text, timeoutMs);
    if (!this.trust.has(peer.keyHex)) throw notTrusted(text);
    let port: number;
    do port = 49_152 + Math.floor(Math.random() * 16_384); while (this.#clients.has(port));
    const waiting = new Map<string, (at: number) => void>();
    this.#clients.set(port, (packet, from) => {
      if (from.keyHex !== peer.keyHex || packet.payload.length !== 8) return;
      waiting.get(packet.payload.toHex())?.(performance.now());
    });
    const rtts: (number | null)[] = [];
    try {
      for (let i = 0; i < count; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, intervalMs));
        const probe = crypto.getRandomValues(new Uint8Array(8));
        const { promise, resolve } = Promise.withResolvers<number | null>();
        waiting.set(probe.toHex(), resolve);
        const timer = setTimeout(() => resolve(null), timeoutMs);
        const sentAt = performance.now();
        await this.sessions.send(peer.keyHex, {
          kind: "datagram",
          srcPort: port,
          dstPort: PORT_ECHO,
          payload: probe,
        });
        const at = await promise;
        clearTimeout(timer);
        waiting.delete(probe.toHex());
        rtts.push(at === null ? null : Math.round((at - sentAt) * 1000) / 1000);
      }
    } finally {
      this.#clients.delete(port);
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

  /** `pilot inbox ack`: removes messages by id, once their dedup entries are durable. */
  async inboxAck(ids: string[]): Promise<number> {
    await Promise.all([...this.#dedupPending]);
    return await this.inbox.ack(ids);
  }

  /** `pilot inbox --clear`: removes messages up to a seq, once their dedup entries are durable. */
  async inboxClear(upTo: number): Promise<number> {
    await Promise.all([...this.#dedupPending]);
    return await this.inbox.clear(upTo);
  }

  /** Finds the sender key a `--from` filter names (among trusted peers and inbox senders). */
  senderKey(text: string): string {
    const senders = new Map<
      string,
      { public_key: string; address: string; hostname: string | null; fingerprint: string }
    >();
    for (const e of this.trust.list()) senders.set(e.public_key, refOf(e));
    for (const m of this.inbox.list({ limit: 1000 }).messages) {
      senders.set(m.from_key, {
        public_key: m.from_key,
        address: m.from,
        hostname: m.hostname,
        fingerprint: m.fingerprint,
      });
    }
    return matchOne(text, [...senders.values()], "sender").public_key;
  }

  /** Stops timers, the socket and the stores. */
  async close(): Promise<void> {
    this.broker.close("daemon stopping");
    this.streams.close();
    clearInterval(this.#timer);
    clearInterval(this.#flushTimer);
    this.#udp.close();
    await this.#serving.catch(() => {});
    await this.inbox.close().catch(() => {});
    await this.dedup.close().catch(() => {});
    await this.receivedFiles.close().catch(() => {});
  }
}
