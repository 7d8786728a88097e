/**
 * control/views.ts without a daemon: the JSON each view writes (names, key
 * order, encodings, rounding) for the lines and fields no route test pins
 * down, each checked against its contract schema too, closed: a field the
 * view writes and the schema does not list fails.
 */
import assert from "node:assert/strict";
import * as C from "../src/control/contract/mod.ts";
import { arr, int, obj, record, str, validate } from "../src/control/schema.ts";
import {
  connectionsView,
  infoView,
  messageView,
  peersView,
  subscribeLineView,
} from "../src/control/views.ts";
import type { InboxMessage } from "../src/daemon/inbox.ts";
import type { NodeInfo } from "../src/daemon/features/diagnostics.ts";
import type { PeerRef } from "../src/session/peer_ref.ts";
import type { ConnectionStats } from "../src/stream/mod.ts";
import { TRUST_DROP_REASONS, type TrustDropReason } from "../src/services/trust_types.ts";
import { type Address, parseAddress } from "../src/identity/address.ts";

const PEER: PeerRef = {
  address: "3fa2.09c1.77e4",
  hostname: null,
  fingerprint: "fp",
  public_key: "ab".repeat(32),
};

Deno.test("subscribeLineView() writes an event's key as hex, its time as ISO text and its data as base64", () => {
  const line = subscribeLineView({
    kind: "event",
    seq: 7,
    time: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
    from: "3fa2.09c1.77e4" as Address,
    fromKey: new Uint8Array([0xab, 0x01]),
    topic: "a.b",
    data: new TextEncoder().encode("hi"),
  });
  assert.deepEqual(Object.entries(line), [
    ["kind", "event"],
    ["seq", 7],
    ["topic", "a.b"],
    ["from", "3fa2.09c1.77e4"],
    ["from_key", "ab01"],
    ["time", "2026-01-02T03:04:05.006Z"],
    ["data", "aGk="],
    ["bytes", 2],
  ]);
  assert.deepEqual(validate(C.SUBSCRIBE.output, line, { closed: true }), []);
});

Deno.test("subscribeLineView() names an overflow's seqs first_seq and last_seq and dates a heartbeat", () => {
  const overflow = subscribeLineView({ kind: "overflow", dropped: 3, firstSeq: 4, lastSeq: 6 });
  assert.deepEqual(overflow, { kind: "overflow", dropped: 3, first_seq: 4, last_seq: 6 });
  const beat = subscribeLineView({ kind: "heartbeat", time: 0 });
  assert.deepEqual(beat, { kind: "heartbeat", time: "1970-01-01T00:00:00.000Z" });
  const subscribed = subscribeLineView({ kind: "subscribed", pattern: "a.*", since: 9 });
  assert.deepEqual(subscribed, { kind: "subscribed", pattern: "a.*", since: 9 });
  for (const l of [overflow, beat, subscribed]) {
    assert.deepEqual(validate(C.SUBSCRIBE.output, l, { closed: true }), []);
  }
});

Deno.test("messageView() adds the parsed value of a json message and leaves other types as stored", () => {
  const stored: InboxMessage = {
    seq: 1,
    id: "m1",
    from: PEER.address,
    from_key: PEER.public_key,
    hostname: null,
    fingerprint: PEER.fingerprint,
    type: "json",
    data: '{"n":1}',
    bytes: 7,
    received_at: "2026-01-01T00:00:00.000Z",
    in_reply_to: "r0",
  };
  const json = messageView(stored);
  assert.deepEqual(json, { ...stored, value: { n: 1 } });
  assert.deepEqual(Object.keys(json).slice(-2), ["in_reply_to", "value"]);
  assert.deepEqual(validate(C.MESSAGE, json, { closed: true }), []);
  assert.equal(messageView({ ...stored, type: "text" }).value, undefined);
  assert.equal(messageView({ ...stored, data: "{not json" }).value, undefined);
});

Deno.test("messageView() writes every optional field a sender may set, each listed in the message schema", () => {
  // expires_at comes only from a peer that sets it on the wire (the CLI never does).
  const stored: InboxMessage = {
    seq: 2,
    id: "m2",
    from: PEER.address,
    from_key: PEER.public_key,
    hostname: "box",
    fingerprint: PEER.fingerprint,
    type: "text",
    data: "hi",
    bytes: 2,
    received_at: "2026-01-01T00:00:00.000Z",
    correlation_id: "c1",
    in_reply_to: "r1",
    expires_at: "2026-01-02T00:00:00.000Z",
    meta: { job: "7" },
  };
  const out = messageView(stored);
  assert.deepEqual(out, stored);
  assert.deepEqual(validate(C.MESSAGE, out, { closed: true }), []);
  assert.deepEqual(
    validate(C.MESSAGE, { ...out, meta: { job: 7 } }),
    ["$.meta.job: expected string"],
    "meta is a map of strings",
  );
});

Deno.test("connectionsView() rounds the RTT to the microsecond and the RTO to whole ms", () => {
  // Only the fields the view reads; the rest of the stats play no part.
  const stats = {
    state: "established",
    localPort: 1000,
    remotePort: 2000,
    cwnd: 14_600,
    srtt: 12.34567,
    rto: 200.6,
    bytesInFlight: 0,
    retransmits: 1,
    sent: 10,
    received: 20,
  } as ConnectionStats;
  const out = connectionsView([
    { peer: PEER, stats },
    { peer: PEER, stats: { ...stats, srtt: null } },
  ]);
  assert.equal(out.connections[0]!.srtt_ms, 12.346);
  assert.equal(out.connections[0]!.rto_ms, 201);
  assert.equal(out.connections[1]!.srtt_ms, null);
  assert.deepEqual(validate(C.CONNECTIONS.output, out, { closed: true }), []);
});

Deno.test("infoView() and peersView() write exactly the schema's fields, in its order", () => {
  const node: NodeInfo = {
    address: PEER.address,
    hostname: "box",
    publicKey: PEER.public_key,
    fingerprint: PEER.fingerprint,
    listen: { hostname: "::1", port: 4000 },
    udpBuffers: { receive: 212_992, send: null, raised: false, why: "not asked for" },
    uptimeS: 5,
    peers: 1,
    trusted: 1,
    pending: 0,
    sessions: 1,
    drops: { no_service: 0, overloaded: 0 },
    trustRefused: Object.fromEntries(TRUST_DROP_REASONS.map((r) => [r, 0])) as Record<
      TrustDropReason,
      number
    >,
    services: ["echo"],
    reachability: {
      observed: { hostname: "198.18.0.10", port: 40_001 },
      nat: "endpoint-independent",
      rendezvous: [{
        address: PEER.address as Address,
        published: true,
        observed: { hostname: "198.18.0.10", port: 40_001 },
        error: "",
      }],
      dropped: { no_rendezvous: 0, too_large: 0, malformed: 0, punch_rate: 2 },
    },
    mailboxes: {
      deposited: 2,
      depositFailed: { mailbox_full: 1 },
      fetched: 3,
      taken: 2,
      dropped: { unopenable: 1, replayed: 0, malformed: 0, not_trusted: 0, expired: 0 },
    },
    lan: {
      port: 27440,
      known: 2,
      heard: 9,
      announced: 3,
      dropped: { oversized: 0, rate_limited: 1, malformed: 0, self: 3, bad_record: 0, stale: 0 },
    },
    dht: { port: 6881, nodes: 12, dropped: { bad_record: 1, wrong_key: 0 } },
    tunnels: {
      exposed: [{
        vport: 80,
        target: "127.0.0.1:8080",
        allow: [PEER.fingerprint],
        saved: true,
        active: 1,
        served: 2,
        refused: 0,
        failed: 0,
      }],
      forwarded: [{
        localPort: 9000,
        listen: "127.0.0.1:9000",
        peer: "box",
        vport: 80,
        timeoutMs: 10_000,
        saved: false,
        active: 0,
        served: 3,
        failed: 1,
        busy: 0,
      }],
    },
    memorySettle: { minor: 7, settled: 2, trimmed: 1 },
  };
  const info = infoView(node, {
    control: {
      connections: 1,
      held: { long_poll: 0, follow: 0, socket: 0 },
      drops: { header_timeout: 0 },
    },
    pid: 42,
    version: "0.1.0",
    memory: { rss: 3, heapTotal: 2, heapUsed: 1, external: 0 },
  });
  assert.deepEqual(Object.keys(info), Object.keys(C.INFO.output.properties));
  assert.deepEqual(Object.keys(info), [
    "address",
    "hostname",
    "public_key",
    "fingerprint",
    "listen",
    "udp_buffers",
    "uptime_s",
    "peers",
    "trusted",
    "pending",
    "sessions",
    "drops",
    "trust_refused",
    "services",
    "reachability",
    "mailboxes",
    "lan",
    "dht",
    "tunnels",
    "control",
    "pid",
    "version",
    "memory",
  ]);
  assert.deepEqual(info.memory, {
    rss: 3,
    heap_total: 2,
    heap_used: 1,
    external: 0,
    settle: { minor_gcs: 7, full_gcs: 2, trims: 1 },
  });
  assert.equal(info.listen, "[::1]:4000");
  assert.deepEqual(validate(C.INFO.output, info, { closed: true }), []);
  assert.equal(info.reachability?.observed, "198.18.0.10:40001");
  assert.equal(info.lan?.dropped.self, 3);
  assert.equal(info.reachability?.dropped.punch_rate, 2);
  assert.deepEqual(info.mailboxes?.deposit_failed, { mailbox_full: 1 });
  assert.deepEqual(info.tunnels.forwarded[0]?.local_port, 9000);
  const detached = infoView({
    ...node,
    services: [],
    reachability: null,
    mailboxes: null,
    lan: null,
  }, {
    control: null,
    pid: 1,
    version: "0.1.0",
    memory: { rss: 3, heapTotal: 2, heapUsed: 1, external: 0 },
  });
  assert.deepEqual(validate(C.INFO.output, detached, { closed: true }), []);
  const peers = peersView([{
    peer: PEER,
    endpoint: null,
    trusted: false,
    path: "relay",
    via: parseAddress(PEER.address),
    rttMs: null,
    sessionAgeS: 3,
    dropped: 0,
    lastSeen: Date.parse("2026-12-03T09:00:00.000Z"),
    nameConflict: "trusted",
  }]);
  assert.deepEqual(Object.keys(peers.peers[0]!), [
    "address",
    "hostname",
    "fingerprint",
    "public_key",
    "endpoint",
    "trusted",
    "path",
    "via",
    "rtt_ms",
    "session_age_s",
    "last_seen",
    "dropped",
    "name_conflict",
  ]);
  assert.equal(peers.peers[0]!.last_seen, "2026-12-03T09:00:00.000Z");
  assert.deepEqual(
    Object.keys(peers.peers[0]!),
    Object.keys(C.PEERS.output.properties.peers.items.properties),
  );
  assert.deepEqual(validate(C.PEERS.output, peers, { closed: true }), []);
});

Deno.test("validate() checks each value of a record and, closed, names a field the schema does not list", () => {
  const counters = record(int);
  assert.deepEqual(validate(counters, { a: 1, b: 2 }), []);
  assert.deepEqual(validate(counters, {}), []);
  assert.deepEqual(validate(counters, { a: 1.5 }), ["$.a: expected integer"]);
  assert.deepEqual(validate(counters, [1]), ["$: expected object"]);
  const shape = obj({ n: int, drops: counters }, { note: str });
  const value = { n: 1, drops: { x: 0 }, extra: true };
  assert.deepEqual(validate(shape, value), [], "open by default: clients ignore unknown fields");
  assert.deepEqual(validate(shape, value, { closed: true }), ["$.extra: not in the schema"]);
  assert.deepEqual(
    validate(arr(shape), [{ n: 1, drops: {}, note: "" }, { n: 2, drops: {}, x: 1 }], {
      closed: true,
    }),
    ["$[1].x: not in the schema"],
  );
});
