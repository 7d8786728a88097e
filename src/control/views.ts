/**
 * The API's JSON, shaped from the daemon's domain values: one small function
 * per route output, each typed by its contract schema (`Infer<typeof
 * C.X.output>`), so a view and the published schema cannot drift apart
 * silently. Features (daemon/features/) return domain values and know
 * nothing of field names on the wire; routes.ts calls feature, then view.
 * A view returns exactly its schema's type: a field the route answers is a
 * field its schema lists (tests/contract_api_test.ts checks live answers).
 *
 * @module
 */
import type * as C from "./contract/mod.ts";
import type { Infer } from "./schema.ts";
import { asPilotError, errorBody } from "../errors.ts";
import type {
  FlaggedRequest,
  HandshakeResult,
  TrustDecision,
  TrustedPeer,
  UntrustResult,
} from "../daemon/features/trust.ts";
import type {
  BenchResult,
  ConnectResult,
  NodeInfo,
  PingResult,
  SessionPeer,
} from "../daemon/features/diagnostics.ts";
import type { SentFile } from "../daemon/features/files.ts";
import { type QueuedMessage, queuedPeer } from "../daemon/outbox.ts";
import type { TaskView } from "../daemon/features/tasks.ts";
import type { FindResult } from "../daemon/features/find.ts";
import type { CallResult, SendResult } from "../daemon/features/messages.ts";
import type { DatagramSent, OpenedStream, PeerConnection } from "../daemon/features/ports.ts";
import type { Published, SubscriptionNotice } from "../daemon/features/pubsub.ts";
import type { RendezvousStatus } from "../daemon/features/rendezvous.ts";
import type { StaticPeer, StaticPeerChange } from "../daemon/features/static_peers.ts";
import type {
  ExposureInfo,
  ForwardInfo,
  TunnelChange,
  TunnelList,
  TunnelRemoval,
} from "../daemon/features/tunnels.ts";
import type { WebhookChange } from "../daemon/features/webhooks.ts";
import type { WebhookState } from "../daemon/webhooks.ts";
import type { NodeEvent } from "../daemon/events.ts";
import type { InboxMessage, InboxPage } from "../daemon/inbox.ts";
import type { ReceivedPage } from "../daemon/received_files.ts";
import type { Incoming } from "../daemon/streams.ts";
import type { ReceivedDatagram } from "../daemon/user_ports.ts";
import { peerRef } from "../session/peer_ref.ts";
import { formatEndpoint } from "../discovery/endpoint.ts";

// ---- Trust ----

/** `POST /v1/handshake`. */
export function handshakeView(r: HandshakeResult): Infer<typeof C.HANDSHAKE.output> {
  return {
    peer: r.peer,
    status: r.status,
    changed: r.changed,
    timed_out: r.timedOut,
    first_contact: r.firstContact,
    expires_at: r.expiresAt,
    mailbox: r.mailbox,
    own_fingerprint: r.ownFingerprint,
  };
}

/** `GET /v1/pending`. */
export function pendingView(requests: readonly FlaggedRequest[]): Infer<typeof C.PENDING.output> {
  return {
    pending: requests.map(({ request: p, nameConflict }) => ({
      address: p.address,
      hostname: p.hostname,
      fingerprint: p.fingerprint,
      public_key: p.public_key,
      reason: p.reason,
      received_at: p.received_at,
      name_conflict: nameConflict,
    })),
  };
}

/** `POST /v1/approve` and `POST /v1/reject`. */
export function decisionView(r: TrustDecision): Infer<typeof C.APPROVE.output> {
  return { peer: r.peer, status: r.status, changed: r.changed, delivered: r.delivered };
}

/** `GET /v1/trust`. */
export function trustView(peers: readonly TrustedPeer[]): Infer<typeof C.TRUST.output> {
  return {
    trusted: peers.map((t) => ({
      ...t.peer,
      since: t.since,
      mutual: t.mutual,
      endpoint: t.endpoint,
      last_seen: t.lastSeen,
    })),
  };
}

/** `POST /v1/untrust`. */
export function untrustView(r: UntrustResult): Infer<typeof C.UNTRUST.output> {
  return { peer: r.peer, changed: r.changed, delivered: r.delivered };
}

// ---- Static peers ----

/** `GET /v1/peer/list`. */
export function peerListView(peers: readonly StaticPeer[]): Infer<typeof C.PEER_LIST.output> {
  return {
    peers: peers.map((p) => ({ name: p.name, endpoint: p.endpoint, trusted: p.trusted })),
  };
}

/** `POST /v1/peer/add`. */
export function peerAddView(c: StaticPeerChange): Infer<typeof C.PEER_ADD.output> {
  return {
    name: c.name,
    endpoint: c.endpoint ?? "",
    changed: c.changed,
    saved: c.saved,
    trusted: c.trusted,
  };
}

/** `POST /v1/peer/remove`. */
export function peerRemoveView(c: StaticPeerChange): Infer<typeof C.PEER_REMOVE.output> {
  return {
    name: c.name,
    endpoint: c.endpoint,
    changed: c.changed,
    saved: c.saved,
    trusted: c.trusted,
  };
}

// ---- Webhooks ----

/** `GET /v1/webhooks`: never the secrets, only whether there is one. */
export function webhookListView(
  hooks: readonly WebhookState[],
  allowRemote: boolean,
): Infer<typeof C.WEBHOOK_LIST.output> {
  return {
    webhooks: hooks.map((h) => ({
      url: h.url,
      events: h.events,
      secret: h.secret !== null,
      delivered: h.delivered,
      failed: h.failed,
      dropped: h.dropped,
      queued: h.queued,
      last_status: h.lastStatus,
      last_error: h.lastError,
      last_attempt_at: h.lastAttemptAt === null ? null : new Date(h.lastAttemptAt).toISOString(),
    })),
    allow_remote: allowRemote,
  };
}

/** `POST /v1/webhooks/add` and `POST /v1/webhooks/remove`. */
export function webhookChangeView(c: WebhookChange): Infer<typeof C.WEBHOOK_ADD.output> {
  return { url: c.url, events: c.events, secret: c.secret, changed: c.changed };
}

// ---- Find ----

/** `GET /v1/find`. */
export function findView(query: string, r: FindResult): Infer<typeof C.FIND.output> {
  return {
    query,
    kind: r.kind,
    candidates: r.candidates.map((c) => ({
      address: c.address,
      hostname: c.hostname,
      fingerprint: c.fingerprint,
      public_key: c.publicKey,
      visibility: c.visibility,
      trusted: c.trusted,
      source: c.source,
      sources: c.sources,
      reachability: c.reachability,
      endpoint: c.endpoint,
    })),
    conflict: r.conflict,
    rendezvous: r.rendezvous,
    sources: r.sources.map((s) => ({
      source: s.source,
      status: s.status,
      said: s.said.map((x) => ({
        public_key: x.publicKey,
        address: x.address,
        hostname: x.hostname,
        endpoint: x.endpoint,
        relay: x.relay,
        visibility: x.visibility,
        serial: x.serial,
        unreachable: x.unreachable,
      })),
      error: s.error,
      servers: s.servers,
    })),
    decision: {
      outcome: r.decision.outcome,
      public_key: r.decision.publicKey,
      source: r.decision.source,
      endpoint: r.decision.endpoint,
      endpoint_source: r.decision.endpointSource,
      trusted: r.decision.trusted,
      key_changed: r.decision.keyChanged,
    },
  };
}

// ---- Diagnostics ----

/** What the control server adds to `GET /v1/info`. */
export interface ServerInfo {
  /** The control server's own counters (`ControlServer.stats()`), or null. */
  control: unknown;
  /** The daemon's process id. */
  pid: number;
  /** The daemon's version. */
  version: string;
  /** The daemon process's memory (`Deno.memoryUsage()`), bytes. */
  memory: Deno.MemoryUsage;
}

/** `GET /v1/info`. */
export function infoView(i: NodeInfo, server: ServerInfo): Infer<typeof C.INFO.output> {
  return {
    address: i.address,
    hostname: i.hostname,
    public_key: i.publicKey,
    fingerprint: i.fingerprint,
    listen: formatEndpoint(i.listen),
    udp_buffers: {
      receive: i.udpBuffers.receive,
      send: i.udpBuffers.send,
      raised: i.udpBuffers.raised,
      why: i.udpBuffers.why ?? null,
    },
    uptime_s: i.uptimeS,
    peers: i.peers,
    trusted: i.trusted,
    pending: i.pending,
    sessions: i.sessions,
    drops: i.drops,
    trust_refused: i.trustRefused,
    services: [...i.services],
    reachability: i.reachability === null ? null : {
      observed: i.reachability.observed === null ? null : formatEndpoint(i.reachability.observed),
      nat: i.reachability.nat,
      rendezvous: i.reachability.rendezvous.map((r) => ({
        address: r.address,
        published: r.published,
        observed: r.observed === null ? null : formatEndpoint(r.observed),
        error: r.error,
      })),
      dropped: { ...i.reachability.dropped },
    },
    mailboxes: i.mailboxes === null ? null : {
      deposited: i.mailboxes.deposited,
      deposit_failed: { ...i.mailboxes.depositFailed },
      fetched: i.mailboxes.fetched,
      taken: i.mailboxes.taken,
      dropped: { ...i.mailboxes.dropped },
    },
    lan: i.lan === null ? null : { ...i.lan, dropped: { ...i.lan.dropped } },
    dht: i.dht === null ? null : { ...i.dht, dropped: { ...i.dht.dropped } },
    tunnels: tunnelsView(i.tunnels),
    // routes.ts hands the control server's stats over untyped; the schema names their shape.
    control: server.control as Infer<typeof C.INFO.output>["control"],
    pid: server.pid,
    version: server.version,
    memory: {
      rss: server.memory.rss,
      heap_total: server.memory.heapTotal,
      heap_used: server.memory.heapUsed,
      external: server.memory.external,
      settle: {
        minor_gcs: i.memorySettle.minor,
        full_gcs: i.memorySettle.settled,
        trims: i.memorySettle.trimmed,
      },
    },
  };
}

/** `GET /v1/peers`. */
export function peersView(peers: readonly SessionPeer[]): Infer<typeof C.PEERS.output> {
  return {
    peers: peers.map((p) => ({
      ...p.peer,
      endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
      trusted: p.trusted,
      path: p.path,
      via: p.via,
      rtt_ms: p.rttMs,
      session_age_s: p.sessionAgeS,
      last_seen: p.lastSeen === null ? null : new Date(p.lastSeen).toISOString(),
      dropped: p.dropped,
      name_conflict: p.nameConflict,
    })),
  };
}

/** `POST /v1/connect`: an unknown endpoint is "". */
export function connectView(r: ConnectResult): Infer<typeof C.CONNECT.output> {
  return {
    peer: r.peer,
    endpoint: r.endpoint ? formatEndpoint(r.endpoint) : "",
    trusted: r.trusted,
    changed: r.changed,
  };
}

/** `POST /v1/ping`. */
export function pingView(r: PingResult): Infer<typeof C.PING.output> {
  return {
    peer: r.peer,
    sent: r.sent,
    received: r.received,
    rtt_ms: r.rttMs,
    min_ms: r.minMs,
    avg_ms: r.avgMs,
    max_ms: r.maxMs,
  };
}

/** `POST /v1/bench`. */
export function benchView(r: BenchResult): Infer<typeof C.BENCH.output> {
  return {
    peer: r.peer,
    bytes: r.bytes,
    seconds: r.seconds,
    mbps: r.mbps,
    mbps_one_way: r.mbpsOneWay,
    sha256_verified: r.sha256Verified,
    retransmits: r.retransmits,
  };
}

/** `GET /v1/events` (not following): a page of events and the cursor to read on. */
export function eventsView(events: NodeEvent[], next: number): Infer<typeof C.EVENTS.output> {
  return { events, next };
}

// ---- Messages ----

/** A delivery result: `POST /v1/send`, `POST /v1/reply`, and a call's request. */
export function sendView(r: SendResult): Infer<typeof C.SEND_RESULT> {
  return {
    to: r.to,
    id: r.id,
    type: r.type,
    bytes: r.bytes,
    delivery: r.delivery,
    receipt: r.receipt === null ? null : { status: r.receipt.status, seq: r.receipt.seq },
    expires_at: r.expiresAt,
  };
}

/** `POST /v1/send-batch`: each message's answer, in order, as `POST /v1/send` would give it. */
export function sendBatchView(
  settled: readonly PromiseSettledResult<SendResult>[],
): Infer<typeof C.SEND_BATCH.output> {
  return {
    results: settled.map((r) =>
      r.status === "fulfilled"
        ? { status: "ok" as const, data: sendView(r.value) }
        : errorBody(asPilotError(r.reason)) as Infer<typeof C.ERROR_BODY>
    ),
  };
}

/** `GET /v1/outbox`. */
export function outboxView(queued: readonly QueuedMessage[]): Infer<typeof C.OUTBOX.output> {
  return {
    messages: queued.map((m) => ({
      to: queuedPeer(m),
      id: m.id,
      type: m.type,
      bytes: m.bytes,
      created_at: m.created_at,
      expires_at: m.expires_at,
      attempts: m.attempts,
      last_error: m.last_error,
      state: m.relayed_via === null ? "queued_local" : "queued_relay",
      mailbox: m.relayed_via,
    })),
  };
}

/** An inbox message with `value`, the parsed data, when it is a json message. */
export function messageView(m: InboxMessage): Infer<typeof C.MESSAGE> {
  if (m.type !== "json") return m;
  try {
    return { ...m, value: JSON.parse(m.data) };
  } catch {
    // Stored json was checked on arrival; a record that no longer parses keeps its text only.
    return m;
  }
}

/** `GET /v1/inbox` (not following). */
export function inboxView(page: InboxPage, timedOut: boolean): Infer<typeof C.INBOX.output> {
  return { messages: page.messages.map(messageView), next: page.next, timed_out: timedOut };
}

/** `POST /v1/call`. */
export function callView(r: CallResult): Infer<typeof C.CALL.output> {
  return { request: sendView(r.request), reply: messageView(r.reply) };
}

/** `POST /v1/inbox/ack`, `/v1/inbox/clear`, `/v1/received/ack` and `/v1/received/clear`. */
export function removedView(removed: number): Infer<typeof C.INBOX_ACK.output> {
  return { removed };
}

// ---- Files ----

/** `POST /v1/send-file` (and the result line of its progress stream). */
export function sendFileView(r: SentFile): Infer<typeof C.SEND_FILE.output> {
  return {
    to: r.to,
    name: r.name,
    stored_as: r.storedAs,
    bytes: r.bytes,
    sha256: r.sha256,
    receipt: { status: r.receipt.status, seq: r.receipt.seq, id: r.receipt.id },
  };
}

/** `GET /v1/received`. */
export function receivedView(
  page: ReceivedPage,
  timedOut: boolean,
): Infer<typeof C.RECEIVED.output> {
  return { files: page.files, next: page.next, timed_out: timedOut };
}

// ---- Ports ----

/** `POST /v1/dgram`. */
export function dgramView(r: DatagramSent): Infer<typeof C.DGRAM.output> {
  return { to: r.to, port: r.port, bytes: r.bytes };
}

/** What `GET /v1/recv` took from a bound port. */
export interface RecvResult {
  /** The bound port. */
  port: number;
  /** The datagrams taken, oldest first. */
  datagrams: ReceivedDatagram[];
  /** Whether time ran out before `count` came. */
  timedOut: boolean;
  /** Datagrams dropped because the port's queue was full. */
  overflowed: number;
}

/** `GET /v1/recv` (not following; each followed line is a datagram as stored). */
export function recvView(r: RecvResult): Infer<typeof C.RECV.output> {
  return {
    port: r.port,
    datagrams: r.datagrams,
    timed_out: r.timedOut,
    overflowed: r.overflowed,
  };
}

/** The hello frame of `GET /v1/stream`: the stream is open. */
export function streamHelloView(opened: OpenedStream, port: number): Infer<typeof C.STREAM.output> {
  return { type: "open", peer: opened.peer, port };
}

/** The hello frame of `GET /v1/listen`: a peer connected to `port` from `src_port`. */
export function listenHelloView(incoming: Incoming, port: number): Infer<typeof C.LISTEN.output> {
  return {
    type: "open",
    peer: peerRef(incoming.peer),
    port,
    src_port: incoming.conn.stats().remotePort,
  };
}

/** `GET /v1/connections`: times in ms, the RTT to the microsecond, the RTO whole. */
export function connectionsView(
  connections: readonly PeerConnection[],
): Infer<typeof C.CONNECTIONS.output> {
  return {
    connections: connections.map(({ peer, stats: s }) => ({
      peer,
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
    })),
  };
}

// ---- Pub/sub ----

/** `POST /v1/publish`. */
export function publishView(r: Published): Infer<typeof C.PUBLISH.output> {
  return {
    to: r.to,
    topic: r.topic,
    bytes: r.bytes,
    seq: r.seq,
    delivered: r.delivered,
    dropped: r.dropped,
  };
}

/** One NDJSON line of `GET /v1/subscribe`: times as ISO text, keys as hex, data as base64. */
export function subscribeLineView(n: SubscriptionNotice): Infer<typeof C.SUBSCRIBE.output> {
  switch (n.kind) {
    case "subscribed":
      return { kind: "subscribed", pattern: n.pattern, since: n.since };
    case "heartbeat":
      return { kind: "heartbeat", time: new Date(n.time).toISOString() };
    case "event":
      return {
        kind: "event",
        seq: n.seq,
        topic: n.topic,
        from: n.from,
        from_key: n.fromKey.toHex(),
        time: new Date(n.time).toISOString(),
        data: n.data.toBase64(),
        bytes: n.data.length,
      };
    case "overflow":
      return {
        kind: "overflow",
        dropped: n.dropped,
        first_seq: n.firstSeq,
        last_seq: n.lastSeq,
      };
  }
}

/** `GET /v1/rendezvous`. */
export function rendezvousView(s: RendezvousStatus): Infer<typeof C.RENDEZVOUS_STATUS.output> {
  return {
    records: s.records.records,
    hostnames: s.records.hostnames,
    retained: s.records.retained,
    refused: s.records.dropped,
    relayed_frames: s.service.relayed.frames,
    relayed_bytes: s.service.relayed.bytes,
    dropped: s.service.dropped,
    mailboxes: {
      items: s.mailboxes.items,
      bytes: s.mailboxes.bytes,
      mailboxes: s.mailboxes.mailboxes,
      refused: { ...s.mailboxes.refused, ...s.mailboxes.server.refused },
      expired: s.mailboxes.expired,
      streams: s.mailboxes.server.streams,
      streams_dropped: s.mailboxes.server.dropped,
    },
  };
}

/** A task (`/v1/tasks/*`). */
export function taskView(t: TaskView): Infer<typeof C.TASK> {
  return {
    id: t.id,
    role: t.role,
    peer: t.peer,
    state: t.state,
    type: t.input.type,
    bytes: t.input.bytes,
    input: t.inputData,
    deadline: t.deadline,
    reason: t.reason,
    error: t.error,
    result: t.result === null || t.resultData === null
      ? null
      : { type: t.result.type, bytes: t.result.bytes, data: t.resultData },
    progress: t.progress.map((p) => ({ n: p.n, type: p.type, data: p.data, at: p.at })),
    progress_count: t.progressCount,
    pending: t.pending.length,
    created_at: t.createdAt,
    updated_at: t.updatedAt,
  };
}

// ---- Tunnels ----

function exposureView(e: ExposureInfo): Infer<typeof C.EXPOSURE> {
  return {
    vport: e.vport,
    target: e.target,
    allow: [...e.allow],
    saved: e.saved,
    active: e.active,
    served: e.served,
    refused: e.refused,
    failed: e.failed,
  };
}

function forwardEntryView(f: ForwardInfo): Infer<typeof C.FORWARD_ENTRY> {
  return {
    local_port: f.localPort,
    listen: f.listen,
    peer: f.peer,
    vport: f.vport,
    timeout_ms: f.timeoutMs,
    saved: f.saved,
    active: f.active,
    served: f.served,
    failed: f.failed,
    busy: f.busy,
  };
}

/** `GET /v1/tunnels`, and `tunnels` in `info`. */
export function tunnelsView(t: TunnelList): Infer<typeof C.TUNNELS.output> {
  return { exposed: t.exposed.map(exposureView), forwarded: t.forwarded.map(forwardEntryView) };
}

/** `POST /v1/expose`. */
export function exposeView(c: TunnelChange<ExposureInfo>): Infer<typeof C.EXPOSE.output> {
  return { exposure: exposureView(c.entry), changed: c.changed };
}

/** `POST /v1/unexpose`. */
export function unexposeView(r: TunnelRemoval): Infer<typeof C.UNEXPOSE.output> {
  return { vport: r.port, target: r.what, changed: r.changed, saved: r.saved };
}

/** `POST /v1/forward`. */
export function forwardView(c: TunnelChange<ForwardInfo>): Infer<typeof C.FORWARD.output> {
  return { forward: forwardEntryView(c.entry), changed: c.changed };
}

/** `POST /v1/unforward`. */
export function unforwardView(r: TunnelRemoval): Infer<typeof C.UNFORWARD.output> {
  return { local_port: r.port, peer: r.what, vport: r.vport, changed: r.changed, saved: r.saved };
}
