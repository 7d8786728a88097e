/**
 * The API's JSON, shaped from the daemon's domain values: one small function
 * per route output, each typed by its contract schema (`Infer<typeof
 * C.X.output>`), so a view and the published schema cannot drift apart
 * silently. Features (daemon/features/) return domain values and know
 * nothing of field names on the wire; routes.ts calls feature, then view.
 *
 * Where a route returns more than its schema lists, the view's type names
 * the extra fields too.
 *
 * @module
 */
import type * as C from "./contract/mod.ts";
import type { Infer } from "./schema.ts";
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
import type { NameConflict } from "../daemon/name_claims.ts";
import { formatEndpoint } from "../discovery/endpoint.ts";

// ---- Trust ----

/** `POST /v1/handshake`. */
export function handshakeView(r: HandshakeResult): Infer<typeof C.HANDSHAKE.output> {
  return { peer: r.peer, status: r.status, changed: r.changed, timed_out: r.timedOut };
}

/** One entry of `GET /v1/pending`, with the name-conflict flag the schema does not list. */
type PendingEntry = Infer<typeof C.PENDING.output>["pending"][number] & {
  name_conflict: NameConflict;
};

/** `GET /v1/pending`. */
export function pendingView(
  requests: readonly FlaggedRequest[],
): Infer<typeof C.PENDING.output> & { pending: PendingEntry[] } {
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
  return { trusted: peers.map((t) => ({ ...t.peer, since: t.since, mutual: t.mutual })) };
}

/** `POST /v1/untrust`. */
export function untrustView(r: UntrustResult): Infer<typeof C.UNTRUST.output> {
  return { peer: r.peer, changed: r.changed, delivered: r.delivered };
}

// ---- Diagnostics ----

/** What the control server adds to `GET /v1/info`. */
export interface ServerInfo {
  /** The control server's own counters. */
  control: unknown;
  /** The daemon's process id. */
  pid: number;
  /** The daemon's version. */
  version: string;
}

/** `GET /v1/info` as answered: the schema's fields, counters it does not list, the server's. */
type InfoData = Infer<typeof C.INFO.output> & ServerInfo & {
  pending: number;
  sessions: number;
  drops: Record<string, number>;
  trust_refused: Record<string, number>;
  services: readonly string[];
};

/** `GET /v1/info`. */
export function infoView(i: NodeInfo, server: ServerInfo): InfoData {
  return {
    address: i.address,
    hostname: i.hostname,
    public_key: i.publicKey,
    fingerprint: i.fingerprint,
    listen: formatEndpoint(i.listen),
    uptime_s: i.uptimeS,
    peers: i.peers,
    trusted: i.trusted,
    pending: i.pending,
    sessions: i.sessions,
    drops: i.drops,
    trust_refused: i.trustRefused,
    services: i.services,
    control: server.control,
    pid: server.pid,
    version: server.version,
  };
}

/** One entry of `GET /v1/peers`, with the name-conflict flag the schema does not list. */
type PeerEntry = Infer<typeof C.PEERS.output>["peers"][number] & { name_conflict: NameConflict };

/** `GET /v1/peers`. */
export function peersView(
  peers: readonly SessionPeer[],
): Infer<typeof C.PEERS.output> & { peers: PeerEntry[] } {
  return {
    peers: peers.map((p) => ({
      ...p.peer,
      endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
      trusted: p.trusted,
      path: p.path,
      rtt_ms: p.rttMs,
      session_age_s: p.sessionAgeS,
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
