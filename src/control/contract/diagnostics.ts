/**
 * Contract of the diagnostic routes: health, openapi.json, info, peers,
 * connect, ping, bench, events.
 *
 * @module
 */
import {
  anyJson,
  anyOf,
  arr,
  bool,
  int,
  nullable,
  num,
  obj,
  oneOf,
  record,
  str,
} from "../schema.ts";
import {
  AFTER_FIELD,
  HEARTBEAT_FIELD,
  HEARTBEAT_LINE,
  NAME_CONFLICT,
  PEER_CALL_TIMEOUT_MS,
  PEER_FIELD,
  PEER_REF,
  timeoutField,
} from "./common.ts";
import { route } from "./spec.ts";
import { TUNNEL_LIST } from "./tunnels.ts";

/** Default time `ping` waits for each reply (ms). */
export const PING_TIMEOUT_MS = 5_000;

/** Default time `bench` may take (ms). */
export const BENCH_TIMEOUT_MS = 120_000;

/** `GET /v1/health`: the liveness probe, one of the two routes that need no token. */
export const HEALTH = route({
  route: "GET /v1/health",
  input: {},
  output: obj({ ok: bool, pid: int, version: str, api_version: int }),
});

/** `GET /v1/openapi.json`: this API as an OpenAPI 3.1 document (control/openapi.ts); no token. */
export const OPENAPI = route({
  route: "GET /v1/openapi.json",
  input: {},
  // The document itself, not wrapped in the envelope: what OpenAPI tools read.
  output: record(anyJson),
});

/** `GET /v1/info`: this node. */
export const INFO = route({
  route: "GET /v1/info",
  input: {},
  output: obj({
    address: str,
    hostname: nullable(str),
    public_key: str,
    fingerprint: str,
    listen: str,
    // The UDP socket's kernel buffers in bytes as the kernel reports them (send null when
    // unreadable); raised: larger than the system's default; why: the reason they are not.
    udp_buffers: obj({ receive: int, send: nullable(int), raised: bool, why: nullable(str) }),
    uptime_s: int,
    peers: int,
    trusted: int,
    pending: int,
    sessions: int,
    // Every session drop reason (0 when none), then no_service and overloaded (received),
    // send_queue_full and send_failed (ours, not sent).
    drops: record(int),
    // Every port-444 refusal reason of TRUST_DROP_REASONS (0 when none).
    trust_refused: record(int),
    services: arr(str),
    // What this node's rendezvous see of it (null without a rendezvous): the endpoint
    // observed first, the NAT type that follows, and each rendezvous's publish state.
    reachability: nullable(obj({
      observed: nullable(str),
      nat: oneOf("none", "endpoint-independent", "endpoint-dependent", "unknown"),
      rendezvous: arr(obj({
        address: nullable(str),
        published: bool,
        observed: nullable(str),
        error: str,
      })),
      // Relayed frames and notices from its rendezvous not taken, by reason.
      dropped: record(int),
    })),
    // Sealed mailboxes (null without a rendezvous): items this node left at peers'
    // mailboxes, deposits that failed by code, items fetched from its own, taken, and
    // dropped by reason (unopenable, replayed, malformed, not_trusted, expired).
    mailboxes: nullable(obj({
      deposited: int,
      deposit_failed: record(int),
      fetched: int,
      taken: int,
      dropped: record(int),
    })),
    // LAN discovery (null when off: --no-lan, "lan": false, a rendezvous, or a loopback
    // listen): its port, nodes known now, announcements heard and sent, drops by reason.
    lan: nullable(obj({
      port: int,
      known: int,
      heard: int,
      announced: int,
      dropped: record(int),
    })),
    // The Mainline DHT (null without --dht): its node's UDP port, nodes in its routing
    // table, and answers dropped by reason (bad_record, wrong_key).
    dht: nullable(obj({ port: int, nodes: int, dropped: record(int) })),
    // Local services exposed to trusted peers, and local ports forwarded to peers' exposures.
    tunnels: TUNNEL_LIST,
    // The control API's own counters (null only outside a running control server).
    control: nullable(obj({
      connections: int,
      held: obj({ long_poll: int, follow: int, socket: int }),
      drops: record(int),
    })),
    pid: int,
    version: str,
    // The daemon process's memory in bytes: resident set, V8 heap reserved and used, and
    // memory outside the heap that JavaScript objects hold (buffers, WebCrypto keys); and
    // what the memory settle did since start (minor GCs, memory-reducing GCs, C heap trims).
    memory: obj({
      rss: int,
      heap_total: int,
      heap_used: int,
      external: int,
      settle: obj({ minor_gcs: int, full_gcs: int, trims: int }),
    }),
  }),
});

/** `GET /v1/peers`: peers with a live session (never this node itself). */
export const PEERS = route({
  route: "GET /v1/peers",
  input: {},
  output: obj({
    peers: arr(obj({
      address: str,
      hostname: nullable(str),
      fingerprint: str,
      public_key: str,
      endpoint: nullable(str),
      trusted: bool,
      path: oneOf("direct", "relay"),
      via: nullable(str),
      rtt_ms: nullable(num),
      session_age_s: nullable(int),
      // ISO time of its last authenticated frame (null without one).
      last_seen: nullable(str),
      dropped: int,
      name_conflict: NAME_CONFLICT,
    })),
  }),
});

/** `POST /v1/connect`: open (or reuse) a session with a peer. */
export const CONNECT = route({
  route: "POST /v1/connect",
  input: { peer: PEER_FIELD, timeout_ms: timeoutField(PEER_CALL_TIMEOUT_MS) },
  output: obj({ peer: PEER_REF, endpoint: str, trusted: bool, changed: bool }),
});

/** `POST /v1/ping`: round trips through a peer's echo service. */
export const PING = route({
  route: "POST /v1/ping",
  input: {
    peer: PEER_FIELD,
    count: { type: "integer", description: "probes to send", default: 4, min: 1, max: 1000 },
    interval_ms: {
      type: "integer",
      description: "pause between probes (ms)",
      default: 1000,
      min: 0,
      max: 60_000,
    },
    timeout_ms: timeoutField(PING_TIMEOUT_MS, "wait this long for each reply (ms)"),
  },
  output: obj({
    peer: PEER_REF,
    sent: int,
    received: int,
    rtt_ms: arr(nullable(num)),
    min_ms: nullable(num),
    avg_ms: nullable(num),
    max_ms: nullable(num),
  }),
});

/** `POST /v1/bench`: stream throughput through a peer's echo. */
export const BENCH = route({
  route: "POST /v1/bench",
  input: {
    peer: PEER_FIELD,
    size_mb: { type: "number", description: "megabytes to send", default: 16, min: 0, max: 4096 },
    timeout_ms: timeoutField(BENCH_TIMEOUT_MS),
  },
  output: obj({
    peer: PEER_REF,
    bytes: int,
    seconds: num,
    mbps: num,
    mbps_one_way: num,
    sha256_verified: bool,
    retransmits: int,
  }),
});

/** Schema of a node event; event types contain a dot, so none is `heartbeat`. */
export const EVENT = obj({ seq: int, type: str, time: str, data: record(anyJson) });

/** `GET /v1/events`: the node's events, a page or NDJSON (`follow`). */
export const EVENTS = route({
  route: "GET /v1/events",
  input: {
    after: AFTER_FIELD,
    limit: {
      type: "integer",
      description: "at most this many events",
      default: 1000,
      min: 0,
      max: 10_000,
    },
    follow: { type: "boolean", description: "NDJSON: events as they happen", default: false },
    heartbeat_ms: HEARTBEAT_FIELD,
  },
  output: obj({ events: arr(EVENT), next: int }),
  // With `follow`: events, and a heartbeat when none came for `heartbeat_ms`.
  lines: anyOf(EVENT, HEARTBEAT_LINE),
});

/** `POST /v1/shutdown`: stop the daemon. */
export const SHUTDOWN = route({
  route: "POST /v1/shutdown",
  input: {},
  output: obj({ stopped: bool }),
});
