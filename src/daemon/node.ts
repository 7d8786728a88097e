/**
 * A running node, wired: loads the stores, binds the UDP socket, builds the
 * session table, the services and the feature modules over one context, runs
 * the timers, and closes it all. The commands live in `features/` (one module
 * per command group, mirroring `cli/commands/`); nothing here speaks HTTP.
 *
 * @module
 */
import {
  HANDSHAKE_CHURN,
  OUTBOX_RETRY_MS,
  PORT_ECHO,
  PORT_MAILBOX,
  PORT_MESSAGES,
  PORT_PUBSUB,
  PORT_RENDEZVOUS,
  PORT_TASKS,
  SESSION_SWEEP_MS,
  TIMER_TICK_MS,
} from "../constants.ts";
import {
  type Endpoint,
  formatEndpoint,
  parseEndpoint,
  RELAY_PORT,
  relayPathOf,
  resolveEndpoint,
} from "../discovery/endpoint.ts";
import { matches } from "../discovery/match.ts";
import { Resolver, staticSource } from "../discovery/resolver.ts";
import { PilotError } from "../errors.ts";
import type { Identity } from "../identity/identity.ts";
import { localNodeIdentity } from "../session/local_identity.ts";
import { SessionManager } from "../session/manager.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { peerRef } from "../session/peer_ref.ts";
import { echoService, echoStream } from "../services/echo.ts";
import { MessagesClient } from "../services/messages/client.ts";
import { MessagesServer } from "../services/messages/server.ts";
import { PubSubBroker } from "../services/pubsub/broker.ts";
import { TrustService } from "../services/trust.ts";
import { type DaemonConfig, OPTIONAL_SERVICES } from "./config.ts";
import type { NodeContext } from "./context.ts";
import { DatagramRouter } from "./datagrams.ts";
import { dedupContent, DedupStore } from "./dedup_store.ts";
import { ENDPOINT_SAMPLE_MS, EndpointMemory } from "./endpoint_memory.ts";
import { EventBus } from "./events.ts";
import { DiagnosticsFeature } from "./features/diagnostics.ts";
import { FilesFeature } from "./features/files.ts";
import { discoverySources } from "./discovery_sources.ts";
import { FindFeature } from "./features/find.ts";
import { MessagesFeature } from "./features/messages.ts";
import { PortsFeature } from "./features/ports.ts";
import { PubSubFeature } from "./features/pubsub.ts";
import { RendezvousFeature } from "./features/rendezvous.ts";
import { MailboxesFeature } from "./features/mailboxes.ts";
import { TasksFeature } from "./features/tasks.ts";
import { TaskStore } from "./task_store.ts";
import { Refusal } from "../services/refusal.ts";
import { DurableMailboxes } from "./mailbox_disk.ts";
import { HOME_FILES } from "./home.ts";
import { join } from "node:path";
import { RendezvousLink } from "./features/rendezvous_link.ts";
import { StaticPeersFeature } from "./features/static_peers.ts";
import { TunnelsFeature } from "./features/tunnels.ts";
import { WebhooksFeature } from "./features/webhooks.ts";
import { WebhookDispatcher } from "./webhooks.ts";
import { codeOf, log } from "./log.ts";
import { DropSummary, logEvents } from "./event_log.ts";
import { TrustFeature } from "./features/trust.ts";
import { Inbox, messageContent } from "./inbox.ts";
import { LanDiscovery, lanReachable } from "./lan.ts";
import { Outbox } from "./outbox.ts";
import { HandshakeQueue } from "./handshake_queue.ts";
import { DhtLink } from "./dht_link.ts";
import { nameConflict } from "./name_claims.ts";
import { sessionSource, trustSource } from "./peer_sources.ts";
import { holdsNatMapping, Puncher } from "./punch.ts";
import { Reach } from "./reach.ts";
import { ReceivedFiles } from "./received_files.ts";
import { Streams } from "./streams.ts";
import { Ticker } from "./ticker.ts";
import { TrustFlowStore } from "./trust_flow_store.ts";
import { TrustStore } from "./trust_store.ts";
import { InflightDatagrams } from "./inflight.ts";
import { exposedGc, MemorySettle } from "./memory_settle.ts";
import { nativeHeap } from "./native_heap.ts";
import { loopbackStreamBuffer, systemReceiveBuffer, UdpSocket } from "./udp.ts";
import type { SocketBuffers } from "./socket_buffers.ts";

/** The daemon's memory settle, over V8's gc and the C heap where they can be reached. */
function memorySettle(): MemorySettle {
  const gc = exposedGc();
  const heap = gc === null ? null : nativeHeap();
  return new MemorySettle({
    gc,
    trim: heap === null ? null : () => heap.trim(),
    keepFree: heap === null ? null : (bytes) => void heap.keepFree(bytes),
  });
}

/**
 * Records every inbox message's (sender, id) and content that the dedup
 * store lacks: a crash between the inbox append and the dedup append must
 * not let a retry of that message be stored a second time.
 */
async function reseedDedup(inbox: Inbox, dedup: DedupStore): Promise<void> {
  let after = 0;
  for (;;) {
    const page = inbox.list({ after, limit: 1000 });
    if (page.messages.length === 0) return;
    await Promise.all(
      page.messages
        .filter((m) => dedup.check(m.from_key, m.id)?.content === undefined)
        .map((m) => dedup.remember(m.from_key, m.id, m.seq, dedupContent(messageContent(m)))),
    );
    after = page.next;
  }
}

/** The durable stores of a home, opened before anything listens. */
interface Stores {
  trust: TrustStore;
  flow: TrustFlowStore;
  inbox: Inbox;
  dedup: DedupStore;
  receivedFiles: ReceivedFiles;
  outbox: Outbox;
  handshakes: HandshakeQueue;
  /** A rendezvous's mailboxes (`pilot rendezvous` only). */
  mailboxes: DurableMailboxes | undefined;
  /** Tasks submitted and received. */
  tasks: TaskStore;
}

/** The command groups of a node, one per `cli/commands/` module. */
export interface Features {
  /** handshake, pending, approve, reject, trust, untrust. */
  trust: TrustFeature;
  /** send, call, reply, inbox ack/clear. */
  messages: MessagesFeature;
  /** send-file. */
  files: FilesFeature;
  /** info, peers, connect, ping, bench. */
  diagnostics: DiagnosticsFeature;
  /** dgram, connect PEER PORT, connections. */
  ports: PortsFeature;
  /** publish, subscribe. */
  pubsub: PubSubFeature;
  /** peer list, peer add, peer remove. */
  peers: StaticPeersFeature;
  /** find. */
  find: FindFeature;
  /** expose, unexpose, forward, unforward, tunnels. */
  tunnels: TunnelsFeature;
  /** webhook list, webhook add, webhook remove. */
  webhooks: WebhooksFeature;
  /** task submit, list, accept, decline, progress, result, status, wait. */
  tasks: TasksFeature;
}

/** A running node. */
export class Node {
  /** What every feature works over. */
  readonly ctx: NodeContext;
  /** The commands, by group. */
  readonly features: Features;
  /** The durable inbox. */
  readonly inbox: Inbox;
  /** Files received from peers. */
  readonly receivedFiles: ReceivedFiles;
  /** The pub/sub broker for this node's topics (port 1002). */
  readonly broker: PubSubBroker;
  /** The rendezvous role (port 445), on a node run by `pilot rendezvous`. */
  rendezvous: RendezvousFeature | undefined;
  /** This node's rendezvous (`--rendezvous`), when it has any. */
  #link: RendezvousLink | undefined;
  /** LAN discovery (on unless turned off, or the node listens on loopback only). */
  #lan: LanDiscovery | undefined;
  /** This node's DHT node (`--dht`), when it has one. */
  #dht: DhtLink | undefined;
  /** Hole punching towards trusted peers on a relayed path (with a rendezvous only). */
  #puncher: Puncher | undefined;
  /** Items left at peers' mailboxes, and this node's own mailboxes (with a rendezvous only). */
  #mailboxes: MailboxesFeature | undefined;
  #stores: Stores;
  #udp: UdpSocket;
  /** The one timer: sessions' and links' timers, outbox retries, endpoint samples. */
  #ticker: Ticker;
  /** Where trusted peers were last authenticated, written to trust.json coalesced. */
  #endpoints: EndpointMemory;
  #serving: Promise<void>;
  /** Received datagrams (and their bytes) being processed, in all and from strangers. */
  #inflight = new InflightDatagrams();
  /** Gives back what bursts of datagrams leave behind (a no-op without V8's gc exposed). */
  #memory = memorySettle();
  /** The message outbox's round under way, if any. */
  #queueRound: Promise<void> | null = null;
  /** Datagrams dropped because too many (or too many bytes) were in flight, in all or from strangers. */
  #overloaded = 0;
  /** Posts events to the configured webhooks. */
  #webhooks: WebhookDispatcher;
  /** Stops logging events. */
  #stopEventLog: () => void;
  /** Logs the datagrams dropped, once per interval. */
  #dropSummary: DropSummary;

  private constructor(
    identity: Identity,
    config: DaemonConfig,
    home: string,
    stores: Stores,
    udp: UdpSocket,
    dht: DhtLink | undefined,
  ) {
    const { trust, flow } = stores;
    this.#stores = stores;
    this.#dht = dht;
    this.#udp = udp;
    this.inbox = stores.inbox;
    this.receivedFiles = stores.receivedFiles;
    this.#endpoints = new EndpointMemory(trust);
    const events = new EventBus();
    // Webhooks hear every event after it is in the ring; the bus only queues for them.
    this.#webhooks = new WebhookDispatcher({
      onFailed: (url, event, reason) =>
        log(`${url}: gave up on event ${event.seq} (${event.type}): ${reason}`, {
          level: "warn",
          event: "webhook.failed",
          fields: { url, seq: event.seq, type: event.type, reason },
        }),
    });
    this.#stopEventLog = logEvents((listener) => events.listen(listener), (key) => trust.has(key));
    for (const hook of config.webhooks) this.#webhooks.set(hook);
    events.listen((event) => this.#webhooks.enqueue(event));
    const sessions = this.#sessions(identity, config, trust, events);
    const streams = new Streams(
      (key, p) => {
        sessions.send(key, { kind: "stream", ...p }).catch(() => {});
      },
      config.streamTimers,
      // Not simply this socket's buffer: the peer on this machine may lack the privilege that raised it.
      loopbackStreamBuffer(udp.buffers, systemReceiveBuffer()),
    );
    const datagrams = new DatagramRouter((key, p) =>
      sessions.send(key, { kind: "datagram", ...p })
    );
    const trustService = new TrustService({
      seed: identity.seed,
      publicKey: identity.publicKey,
      stamp: identity.stamp,
      hostname: config.hostname,
      trust,
      flow,
      send: (key, payload) =>
        sessions.send(key, { kind: "datagram", srcPort: 444, dstPort: 444, payload }),
      binding: (key) => sessions.binding(key),
      endpointOf: (key) => {
        const live = this.ctx.reach.endpointOf(key);
        return live ? formatEndpoint(live) : trust.get(key)?.endpoint;
      },
      reconnect: async (key, endpoint) => {
        // The text of a live relay path (formatEndpoint) reads back as that path.
        const relay = { hostname: endpoint, port: RELAY_PORT };
        const at = relayPathOf(relay) !== null
          ? relay
          : await resolveEndpoint(parseEndpoint(endpoint));
        await sessions.connect(at, { publicKey: Uint8Array.fromHex(key) }, OUTBOX_RETRY_MS);
      },
      autoApprove: (peer) => config.autoApprove.some((a) => matches(a, peerRef(peer))),
      publish: (type, data) => events.publish(type, data),
      onUntrusted: (key) => {
        streams.closePeer(key, "untrusted");
        sessions.closePeer(key);
      },
      // Answers to a peer with no session wait at its mailbox (with a rendezvous;
      // without one there is nothing to sign an offline answer for).
      ...(config.role === "node" && config.rendezvous.length > 0
        ? {
          leaveOffline: async (key: string, signed: Uint8Array, ttlMs: number) => {
            if (this.#mailboxes === undefined) return false;
            await this.#mailboxes.deposit(key, { kind: "trust", signed }, ttlMs);
            return true;
          },
        }
        : {}),
    });
    const reach = new Reach({
      resolver: new Resolver([
        sessionSource(() => sessions.peers()),
        trustSource(() => trust.list()),
        staticSource(config.peers),
      ]),
      sessions,
      isTrusted: (key) => trust.has(key),
      selfKeyHex: identity.publicKey.toHex(),
      // Names no trusted binding or configured peer knows: the LAN, the
      // rendezvous, then the DHT, under the resolver's one merge rule.
      discovery: () =>
        discoverySources({
          lan: this.#lan?.table,
          rendezvous: this.#link && { link: this.#link, count: config.rendezvous.length },
          dht: this.#dht,
        }),
    });
    this.ctx = {
      identity,
      config,
      sessions,
      streams,
      datagrams,
      reach,
      trust,
      flow,
      trustService,
      events,
      lookup: (query, timeoutMs) =>
        this.#link === undefined ? Promise.resolve(null) : this.#link.lookup(query, timeoutMs),
    };

    if (config.lan && config.role === "node" && lanReachable(config.listen)) {
      this.#lan = LanDiscovery.start({
        identity,
        hostname: config.hostname,
        visibility: config.visibility,
        listen: udp.local,
        port: config.lanPort,
      });
    }

    // Services: the trust service cannot be turned off (it is how peers
    // become trusted); the others can.
    const enabled = (name: string) => !config.disable.includes(name);
    datagrams.serve(trustService);
    if (config.role === "rendezvous") {
      const rendezvous = new RendezvousFeature(this.ctx, stores.mailboxes!);
      this.rendezvous = rendezvous;
      datagrams.serve(rendezvous.portService());
      streams.serve(PORT_MAILBOX, (conn, peer) => void rendezvous.serveMailbox(conn, peer));
    } else if (config.rendezvous.length > 0) {
      this.#link = new RendezvousLink(this.ctx, config.rendezvous, identity, {
        hostname: config.hostname,
        visibility: config.visibility,
        listen: () => this.listen,
        onRelayed: (frame, from) => this.#ingest(frame, from),
      });
      datagrams.serve(this.#link.portService());
      const link = this.#link;
      if (config.punch) {
        const puncher = new Puncher({
          sessions,
          candidates: () => link.candidates(),
          requestPunch: (p) => {
            const relay = p.endpoint === null ? null : relayPathOf(p.endpoint);
            if (relay !== null) link.requestPunch(relay.via, p.identity.address);
          },
          now: () => performance.now(),
          wake: () => this.#ticker.wake(),
        });
        // A punch notice counts only for a trusted peer with a session here.
        link.onPunchFrom((from, endpoint) => {
          const peer = sessions.peers().find((p) => p.identity.address === from);
          if (peer !== undefined && peer.trusted) puncher.punchFrom(peer.identity.keyHex, endpoint);
        });
        this.#puncher = puncher;
        datagrams.serve(puncher.portService());
      }
    }
    if (enabled("echo")) {
      datagrams.serve(echoService());
      streams.serve(PORT_ECHO, (conn) => void echoStream(conn));
    }
    // The sink is called only once streams arrive, after `messages` exists.
    const messagesServer: MessagesServer = new MessagesServer({
      sink: { store: (peer, envelope) => messages.store(peer, envelope) },
      files: stores.receivedFiles,
    });
    const messagesClient = new MessagesClient({
      open: (peer, ms) => streams.open(peer, reach.endpointOf(peer.keyHex), PORT_MESSAGES, ms),
    });
    const messages = new MessagesFeature(this.ctx, {
      inbox: stores.inbox,
      dedup: stores.dedup,
      client: messagesClient,
      outbox: stores.outbox,
    });
    if (enabled("messages")) {
      streams.serve(PORT_MESSAGES, (conn, peer) => void messagesServer.serve(conn, peer));
    }
    // Tasks: transitions are messages of the port-1001 protocol on port 1003,
    // stored by the tasks feature instead of the inbox; no files there.
    const tasksServer: MessagesServer = new MessagesServer({
      sink: { store: (peer, envelope) => tasks.store(peer, envelope) },
      files: { begin: () => Promise.reject(new Refusal("invalid_argument", "no files on tasks")) },
    });
    const tasks = new TasksFeature(
      this.ctx,
      stores.tasks,
      new MessagesClient({
        open: (peer, ms) => streams.open(peer, reach.endpointOf(peer.keyHex), PORT_TASKS, ms),
      }),
    );
    if (enabled("tasks")) {
      streams.serve(PORT_TASKS, (conn, peer) => void tasksServer.serve(conn, peer));
    }
    this.broker = new PubSubBroker({
      self: { address: identity.address, publicKey: identity.publicKey },
    });
    if (enabled("pubsub")) {
      streams.serve(PORT_PUBSUB, (conn, peer) => void this.broker.serve(conn, peer));
    }
    const trustFeature = new TrustFeature(this.ctx, stores.handshakes);
    if (this.#link !== undefined) {
      const mailboxes = new MailboxesFeature(this.ctx, this.#link, {
        message: (sender, c) => messages.store(sender, c.envelope),
        receipt: (sender, c) => messages.mailboxReceipt(sender, c),
        trust: async (sender, signed) => {
          await trustService.processOffline(signed, sender);
        },
      });
      this.#link.onMail(() => mailboxes.notified());
      messages.useMailbox((key, content, ttlMs) => mailboxes.deposit(key, content, ttlMs));
      trustFeature.useMailbox((text, reason, ttlMs, fingerprint) =>
        mailboxes.requestTrust(text, reason, ttlMs, fingerprint)
      );
      this.#mailboxes = mailboxes;
    }
    this.features = {
      trust: trustFeature,
      messages,
      files: new FilesFeature(this.ctx, messagesClient),
      diagnostics: new DiagnosticsFeature(this.ctx, {
        startedAt: performance.now(),
        listen: () => this.listen,
        udpBuffers: () => this.udpBuffers,
        memorySettle: () => this.#memory.counts,
        overloaded: () => this.#overloaded,
        udpSends: () => ({ dropped: this.#udp.sendsDropped, failed: this.#udp.sendErrors }),
        reachability: () => this.#link?.reachability() ?? null,
        lan: () => this.#lan?.stats() ?? null,
        mailboxes: () => this.#mailboxes?.counters() ?? null,
        dht: () => this.#dht?.stats() ?? null,
        tunnels: () => this.features.tunnels.list(),
        services: [
          "trust",
          ...(config.role === "rendezvous" ? ["rendezvous"] : []),
          ...OPTIONAL_SERVICES.filter(enabled),
        ],
      }),
      ports: new PortsFeature(this.ctx),
      pubsub: new PubSubFeature(this.ctx),
      peers: new StaticPeersFeature(this.ctx, home),
      find: new FindFeature(this.ctx),
      tunnels: new TunnelsFeature(this.ctx, home),
      webhooks: new WebhooksFeature(this.ctx, home, this.#webhooks),
      tasks,
    };

    const diagnostics = this.features.diagnostics;
    this.#dropSummary = new DropSummary(() => {
      const { drops, trustRefused } = diagnostics.info();
      const trust = Object.entries(trustRefused).map(([r, n]) => [`trust_${r}`, n]);
      return { ...drops, ...Object.fromEntries(trust) };
    }, config.dropSummaryMs);
    let ticking = false;
    let flushing = false;
    let flushAt = 0;
    // Handshake computations counted so far, for the memory settle's beat.
    let handshakeWork = 0;
    let sampleAt = performance.now() + ENDPOINT_SAMPLE_MS;
    // Half a beat early counts, so that these fall on every fifth beat.
    const due = (at: number, now: number) => now >= at - SESSION_SWEEP_MS / 2;
    this.#ticker = new Ticker({
      fastMs: TIMER_TICK_MS,
      beatMs: SESSION_SWEEP_MS,
      // Handshakes being retried and punch probes are timed finer than a beat.
      busy: () => sessions.busy || (this.#puncher?.probing ?? false),
      run: (now, beat) => {
        if (beat) {
          // The rendezvous and DHT links' work is due once a second.
          this.#link?.tick();
          this.#mailboxes?.tick();
          this.rendezvous?.tick();
          this.#dht?.tick();
          this.#puncher?.tick();
          this.#dropSummary.tick();
          const { init, final } = sessions.workSpent;
          this.#memory.allocated((init + final - handshakeWork) * HANDSHAKE_CHURN);
          handshakeWork = init + final;
          this.#memory.beat();
        } else this.#puncher?.sendDueProbes();
        if (beat && due(flushAt, now)) {
          flushAt = now + OUTBOX_RETRY_MS;
          // Trust answers waiting for their peer, and messages queued by `send --queue`.
          if (!flushing && flow.outbox.length > 0) {
            flushing = true;
            trustService.retryOutbox().catch(() => {}).finally(() => flushing = false);
          }
          this.#retryQueue();
          void tasks.tick();
        }
        if (beat && due(sampleAt, now)) {
          sampleAt = now + ENDPOINT_SAMPLE_MS;
          // Roaming moves a session's endpoint without an event: sample trusted peers'.
          for (const [key, endpoint] of sessions.trustedPaths()) this.#remember(key, endpoint);
          this.#endpoints.flush().catch(() => {});
        }
        if (ticking) return;
        ticking = true;
        sessions.tick().catch(() => {}).finally(() => ticking = false);
      },
      onError: (e) =>
        log(`A timer failed: ${(e as Error).message}`, {
          level: "error",
          event: "daemon.timer_failed",
          ...codeOf(e),
        }),
    });
    this.#ticker.start();
    this.#serving = udp.serve((bytes, from) => this.#ingest(bytes, from));
  }

  /**
   * Hands one frame, from the socket or a relay path, to the session table.
   * Bounded work in flight, in datagrams and in bytes (`inflight.ts`): past
   * a cap, frames are dropped (and counted) instead of queuing memory
   * without limit. Frames from anywhere but a
   * trusted peer's endpoint have a much smaller share, so a flood of them
   * (each may cost a MAC, a decryption or a handshake) cannot queue up the
   * runtime's crypto threads in front of a trusted peer's packets.
   */
  #ingest(bytes: Uint8Array, from: Endpoint): void {
    const sessions = this.ctx.sessions;
    // A rendezvous carries relayed traffic: its frames are not a stranger's
    // (on a rendezvous, where everyone is a stranger, the whole budget is theirs).
    const stranger = this.ctx.config.role !== "rendezvous" && !sessions.isKnownEndpoint(from) &&
      !(this.#link?.isRendezvousEndpoint(from) ?? false);
    const size = bytes.length;
    this.#memory.received(size);
    if (!this.#inflight.admit(size, stranger)) {
      this.#overloaded++;
      return;
    }
    sessions.handle(bytes, from).catch(() => {}).finally(() =>
      this.#inflight.release(size, stranger)
    );
  }

  /** Runs a round of the message outbox and of queued handshakes, unless one runs or nothing is queued. */
  #retryQueue(): void {
    if (this.features.trust.hasQueued) this.features.trust.retryQueued().catch(() => {});
    if (this.#queueRound !== null || this.#stores.outbox.size === 0) return;
    this.#queueRound = this.features.messages.retryOutbox()
      .finally(() => this.#queueRound = null);
  }

  /** Notes where a trusted peer was authenticated, to remember across restarts (UDP endpoints only). */
  #remember(keyHex: string, endpoint: Endpoint): void {
    if (relayPathOf(endpoint) === null) this.#endpoints.observe(keyHex, formatEndpoint(endpoint));
  }

  /** The session table, delivering each authenticated packet to streams or datagrams. */
  #sessions(
    identity: Identity,
    config: DaemonConfig,
    trust: TrustStore,
    events: EventBus,
  ): SessionManager {
    return new SessionManager({
      local: localNodeIdentity(identity, config.hostname),
      // A relay path's frames go inside the session with its rendezvous.
      transmit: (bytes, to, queue) => {
        this.#memory.sent(bytes.length);
        return to.port === RELAY_PORT
          ? this.#link?.relay(to, bytes)
          : this.#udp.send(bytes, to, queue);
      },
      isTrusted: (peer) => trust.has(peer.keyHex),
      serialFloor: (key) => trust.get(key)?.static_serial ?? 0,
      deliver: (session, packet) => {
        if (packet.kind === "stream") {
          this.ctx.streams.receive(session.peer, session.endpoint, packet);
        } else {
          this.ctx.datagrams.deliver(session, packet);
        }
      },
      onPeerUp: (peer) => {
        this.rendezvous?.peerUp(peer);
        this.#onPeerUp(peer);
      },
      onPeerDown: (peer) => {
        this.rendezvous?.peerDown(peer);
        this.ctx.streams.closePeer(peer.keyHex, "peer gone");
        events.publish("peer.down", { peer: peerRef(peer) });
      },
      onPathChanged: (peer, endpoint) => {
        const relay = relayPathOf(endpoint);
        events.publish("peer.path_changed", {
          peer: peerRef(peer),
          path: relay === null ? "direct" : "relay",
          endpoint: relay === null ? formatEndpoint(endpoint) : null,
          via: relay?.via ?? null,
        });
      },
      // A direct path to a trusted peer through a NAT is held open with keepalives every 25 s.
      holdsMapping: (peer, endpoint) =>
        holdsNatMapping(endpoint, trust.has(peer.keyHex), this.#link?.natted() ?? null),
      requireMac1: config.requireMac1,
      // Mailboxes (447) are streams: a rendezvous takes strangers' there, and
      // a node hears its own rendezvous answer on the streams it opened
      // there, never a stream the rendezvous would open to it.
      untrustedStream: (peer, segment) =>
        config.role === "rendezvous"
          ? segment.dstPort === PORT_MAILBOX
          : segment.srcPort === PORT_MAILBOX &&
            (this.#link?.isRendezvous(peer.keyHex) ?? false) &&
            this.ctx.streams.isReplyToOwn(peer.keyHex, segment),
      // A rendezvous serves strangers on 445 (datagrams only); a node hears
      // its own rendezvous there.
      untrustedPort: (peer: PeerIdentity, port: number) =>
        port === PORT_RENDEZVOUS && this.#relaysFor(peer),
      relaysFor: (peer) => this.#relaysFor(peer),
      ...(config.cookieThreshold === null ? {} : { cookieThreshold: config.cookieThreshold }),
      timers: config.timers,
    });
  }

  /** Whether `peer`'s frames may carry relayed traffic: every node at a rendezvous, and a node's own rendezvous. */
  #relaysFor(peer: PeerIdentity): boolean {
    return this.ctx.config.role === "rendezvous" ||
      (this.#link?.isRendezvous(peer.keyHex) ?? false);
  }

  /** Opens the home's stores, binds the UDP socket and starts serving. */
  static async start(identity: Identity, config: DaemonConfig, home: string): Promise<Node> {
    const trust = await TrustStore.load(home);
    const flow = await TrustFlowStore.load(home);
    const inbox = await Inbox.open(home);
    const dedup = await DedupStore.open(home);
    await reseedDedup(inbox, dedup);
    const receivedFiles = await ReceivedFiles.open(home);
    const outbox = await Outbox.open(home);
    const handshakes = await HandshakeQueue.open(home);
    const tasks = await TaskStore.open(home);
    const mailboxes = config.role === "rendezvous"
      ? await DurableMailboxes.open(join(home, HOME_FILES.mailboxes))
      : undefined;
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
    let dht: DhtLink | undefined;
    if (config.dht && config.role === "node") {
      try {
        dht = await DhtLink.start({
          identity,
          hostname: config.hostname,
          visibility: config.visibility,
          listen: () => udp.local,
          port: config.dhtPort,
          bootstrap: config.dhtBootstrap,
        });
      } catch (e) {
        udp.close();
        throw new PilotError(
          "invalid_argument",
          `Cannot start the DHT node on UDP port ${config.dhtPort}: ${(e as Error).message}`,
          'set "dht_port" in config.json to a free port, or 0',
        );
      }
    }
    const node = new Node(
      identity,
      config,
      home,
      { trust, flow, inbox, dedup, receivedFiles, outbox, handshakes, mailboxes, tasks },
      udp,
      dht,
    );
    // Saved exposures and forwards start with the node; a forward's port in use fails the start.
    try {
      await node.features.tunnels.restore();
    } catch (e) {
      await node.close();
      throw e;
    }
    return node;
  }

  /** The bound UDP endpoint. */
  get listen(): Endpoint {
    return this.#udp.local;
  }

  /** The UDP socket's kernel buffers. */
  get udpBuffers(): SocketBuffers {
    return this.#udp.buffers;
  }

  #onPeerUp(peer: PeerIdentity): void {
    const { trust, events, reach, config, trustService } = this.ctx;
    events.publish("peer.up", { peer: peerRef(peer) });
    const live = reach.endpointOf(peer.keyHex);
    const conflict = nameConflict(
      { keyHex: peer.keyHex, hostname: peer.hostname, endpoint: live },
      trust.list(),
      config.peers,
    );
    if (conflict !== null) {
      // Shown, never followed: names resolve from trusted and configured bindings only.
      events.publish("peer.name_conflict", {
        peer: peerRef(peer),
        name: peer.hostname,
        bound_to: conflict,
      });
    }
    const entry = trust.get(peer.keyHex);
    // Remember the newest static key a trusted peer proved (so a rollback to
    // an older one is refused after a restart too), and where it is.
    const serial = Math.max(entry?.static_serial ?? 0, peer.staticSerial);
    if (entry !== undefined && serial !== (entry.static_serial ?? 0)) {
      trust.put({ ...entry, static_serial: serial }).catch(() => {});
    }
    if (live) {
      this.#remember(peer.keyHex, live);
      this.#endpoints.flush().catch(() => {});
    }
    trustService.peerUp(peer.keyHex).catch(() => {});
    // Messages queued for it go now, and task transitions it has not heard.
    this.features.messages.peerUp(peer.keyHex);
    void this.features.tasks.tick(peer.keyHex);
    this.#retryQueue();
  }

  /** Stops timers, the socket and the stores. */
  async close(): Promise<void> {
    this.#stopEventLog();
    this.#webhooks.close();
    this.broker.close("daemon stopping");
    this.features.tunnels.close();
    this.ctx.streams.close();
    this.#ticker.stop();
    this.#lan?.close();
    await this.#mailboxes?.close().catch(() => {});
    await this.#dht?.close().catch(() => {});
    this.#udp.close();
    // What the minute held back is written once, as the daemon stops.
    await this.#endpoints.flush({ force: true }).catch(() => {});
    await this.#serving.catch(() => {});
    await this.#stores.inbox.close().catch(() => {});
    await this.#stores.dedup.close().catch(() => {});
    await this.#stores.receivedFiles.close().catch(() => {});
    await this.#stores.mailboxes?.close().catch(() => {});
  }
}
