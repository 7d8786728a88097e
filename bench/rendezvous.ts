/**
 * Rendezvous and relay figures: signed records held and looked up, and
 * streams and pings through a relay.
 *
 * @module
 */

import { generateX25519KeyPair } from "../src/identity/identity.ts";
import { randomBytes } from "../src/session/crypto.ts";
import {
  fixture,
  makeHome,
  startRendezvous,
  TestNode,
  trustEntry,
  waitFor,
} from "../tests/_daemon_harness.ts";
import { peerIdentityOf } from "../tests/_session_helpers.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { formatAddress } from "../src/identity/address.ts";
import { signPresence, type VerifiedPresence, verifyPresence } from "../src/discovery/presence.ts";
import { RecordStore } from "../src/services/rendezvous/store.ts";
import { RENDEZVOUS_LIMITS, RendezvousService } from "../src/services/rendezvous/service.ts";
import { decodePresenceRecord, encodePresenceRecord } from "../src/wire/presence_record.ts";
import { encodeRendezvousMessage } from "../src/wire/rendezvous_message.ts";
import { PING_PAYLOAD, PING_PROBES, pingVia } from "./latency.ts";
import { STREAM_TIMEOUT_MS } from "./throughput.ts";
import {
  Api,
  cleanups,
  collectGarbage,
  type Context,
  type Figures,
  loadBenchIdentities,
  mbps,
  percentile,
  progress,
  round,
} from "./_common.ts";
import type { Targets } from "./targets.ts";

/** Targets of the rendezvous and relay figures. */
export const RENDEZVOUS_TARGETS: Targets = {};

/** Records stored for the rendezvous memory figure. */
const RENDEZVOUS_RECORDS = 20_000;

/** Time spent on each rendezvous rate figure (ms). */
const RENDEZVOUS_SECONDS_MS = 2000;

/**
 * The rendezvous role in process (no sockets): lookups per second through
 * the request handler over a table of real signed records, record checks
 * per second (what each publish costs), and memory per stored record.
 */
export async function measureRendezvous(ctx: Context): Promise<Figures> {
  const ids = await loadBenchIdentities();
  if (typeof ids === "string") {
    ctx.notes.rendezvous_lookups_per_s = ids;
    return { rendezvous_lookups_per_s: null, rendezvous_verifies_per_s: null };
  }
  const now = Date.now();
  // Records carry a static key (for sealed mailboxes); one for all is enough here.
  const staticKey = generateX25519KeyPair().publicKey;
  const records = ids.map((id, i) =>
    signPresence(id.seed, {
      publicKey: id.publicKey,
      stamp: id.stamp,
      hostname: `bench-node-${i}`,
      visibility: "private",
      serial: now,
      expiresAt: now + 30 * 60_000,
      endpoints: [],
      staticKey,
      staticSerial: 0,
      mailboxes: [],
    })
  );
  const store = new RecordStore({
    now: () => Date.now(),
    perSource: { burst: 1e9, perSecond: 1e9 },
  });
  const service = new RendezvousService(
    store,
    { peerAt: () => undefined, send: () => false },
    () => performance.now(),
    {
      requests: { burst: 1e9, perSecond: 1e9 },
      relayPerPeer: { burst: 1, perSecond: 1 },
      relayTotal: { burst: 1, perSecond: 1 },
      maxPeers: 1024,
    },
  );
  const peers = ids.map(peerIdentityOf);
  const at = { hostname: "198.18.0.1", port: 4000 };
  ids.forEach((_, i) => {
    service.handle(
      peers[i]!,
      at,
      encodeRendezvousMessage({ type: "publish", id: i, record: records[i]! }),
    );
  });
  progress(`rendezvous: ${store.stats().records} records published; lookups by hostname`);
  const lookups = ids.map((_, i) =>
    encodeRendezvousMessage({ type: "lookup", id: i, by: "hostname", hostname: `bench-node-${i}` })
  );
  const rate = (op: (i: number) => void) => {
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < RENDEZVOUS_SECONDS_MS) {
      for (let k = 0; k < 256; k++) op(n++);
    }
    return round(n / ((performance.now() - t0) / 1000), 0);
  };
  const lookupsPerS = rate((i) => {
    service.handle(peers[i % peers.length]!, at, lookups[i % lookups.length]!);
  });
  const verifiesPerS = rate((i) => verifyPresence(records[i % records.length]!, now));

  // Memory: many distinct keys (real stamps are too dear to mint here), so the
  // table's signature check is replaced by a decode; the records are full size.
  const fakeVerify = (bytes: Uint8Array): VerifiedPresence => {
    const { record } = decodePresenceRecord(bytes);
    return {
      record,
      bytes: bytes.slice(),
      address: formatAddress(record.publicKey.subarray(0, 6)),
    };
  };
  const big = new RecordStore({
    now: () => Date.now(),
    maxRecords: RENDEZVOUS_RECORDS,
    perSource: { burst: 1e9, perSecond: 1e9 },
    verify: fakeVerify,
  });
  const template = decodePresenceRecord(records[0]!).record;
  collectGarbage();
  const heap0 = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < RENDEZVOUS_RECORDS; i++) {
    const publicKey = randomBytes(32);
    publicKey[0] = 1 + (i % 254);
    big.publish(
      encodePresenceRecord({ ...template, publicKey, hostname: `node-${i}` }),
      `198.18.${(i >> 8) & 255}.${i & 255}`,
    );
  }
  collectGarbage();
  const heap1 = Deno.memoryUsage().heapUsed;
  const stored = big.stats().records;
  ctx.details.rendezvous = {
    records_for_rates: store.stats().records,
    records_for_memory: stored,
    heap_growth_bytes_per_record: stored === 0 ? null : round((heap1 - heap0) / stored, 0),
    accounted_bytes_per_record: stored === 0 ? null : round(big.bytes / stored, 0),
  };
  ctx.notes.rendezvous_lookups_per_s = "RendezvousService.handle() in process (no sockets, no " +
    "session crypto): lookups by hostname over the bench identities' real signed records, " +
    "one thread, for 2 s; rendezvous_verifies_per_s: verifyPresence() of those records " +
    "(key, stamp, Ed25519 signature), what each publish costs before it is stored";
  ctx.notes.rendezvous_bytes_per_record = `V8 heap growth over ${RENDEZVOUS_RECORDS} stored ` +
    "records of hostname and no endpoints (distinct keys; signature check replaced by a " +
    "decode), divided by the records; no GC is forced, so it may include garbage " +
    "(details.rendezvous has the table's own accounting beside it)";
  return {
    rendezvous_lookups_per_s: lookupsPerS,
    rendezvous_verifies_per_s: verifiesPerS,
    rendezvous_bytes_per_record: stored === 0 ? null : round((heap1 - heap0) / stored, 0),
  };
}

/** Fixtures of the relay measurement: the rendezvous, and the two private nodes it relays between. */
const RELAY_FIXTURES = { rendezvous: 4, x: 5, y: 6 } as const;

/** Stream volume through the relay (MiB): the relay carries each frame twice. */
const RELAY_VOLUME_MIB = 16;

/** Relayed pairs for the per-pair memory figure. */
const RELAY_PAIRS = 10_000;

/**
 * Streams and pings between two private daemons (fixtures 5 and 6, trusting
 * each other, `punch: false` so they stay on the relay) through a
 * rendezvous on loopback, beside the direct figures of the same run; and the
 * rendezvous's memory per relayed pair, in process.
 */
export async function measureRelay(ctx: Context): Promise<Figures> {
  progress("relay: a rendezvous and two private daemons that stay on its relay");
  // The quota raised out of the way: the figure is what relaying costs, not the default 1 MB/s.
  const rendezvous = await startRendezvous(RELAY_FIXTURES.rendezvous, {
    relay_quota: { per_peer: 10_000_000_000, total: 10_000_000_000 },
  });
  cleanups.push(async () => await rendezvous[Symbol.asyncDispose]());
  const node = async (self: number, other: number) => {
    const home = await makeHome({
      identity: self,
      trust: [trustEntry(other, { mutual: true })],
      config: { punch: false },
    });
    const n = new TestNode(home, { identity: self, args: ["--rendezvous", rendezvous.at] });
    cleanups.push(() => n.stop());
    await n.start();
    return n;
  };
  const x = await node(RELAY_FIXTURES.x, RELAY_FIXTURES.y);
  await node(RELAY_FIXTURES.y, RELAY_FIXTURES.x);
  await waitFor("both records at the rendezvous", async () => {
    const r = await rendezvous.node.pilot("rendezvous", "status", "--json");
    return r.json?.data?.records === 2;
  }, 30_000);
  const api = await Api.of(x);
  const peer = fixture(RELAY_FIXTURES.y).address;
  progress(`relay: ${RELAY_VOLUME_MIB} MiB X -> Y's stream echo -> X through the relay`);
  const r = await api.call("POST", "/v1/bench", {
    peer,
    size_mb: RELAY_VOLUME_MIB,
    timeout_ms: STREAM_TIMEOUT_MS,
  });
  const data = r.json?.data;
  const streamOk = r.status === 200 && data?.sha256_verified === true;
  if (!streamOk) ctx.notes.relay_stream_error = JSON.stringify(r.json).slice(0, 300);
  progress(`relay: X -> Y's echo through the relay, ${PING_PROBES} probes`);
  const ping = await pingVia(api, peer);
  const peers = (await api.call("GET", "/v1/peers")).json?.data?.peers ?? [];
  const path = peers.find((p: { address: string }) => p.address === peer)?.path ?? null;
  const status = (await rendezvous.node.pilot("rendezvous", "status", "--json")).json?.data;
  ctx.details.relay = {
    path,
    stream: data ?? null,
    ping_lost: ping.lost,
    relayed_bytes: status?.relayed_bytes ?? null,
  };
  progress(`relay: ${RELAY_PAIRS} relayed pairs in process, heap per pair`);
  const perPair = relayBytesPerPair();
  const ms = (v: number | null) => v === null ? null : round(v, 3);
  ctx.notes.relay_stream_mbps = `POST /v1/bench on private daemon X to private daemon Y ` +
    `(fixtures ${RELAY_FIXTURES.x} and ${RELAY_FIXTURES.y}, trusting each other, "punch": false), ` +
    `${RELAY_VOLUME_MIB} MiB each way at once through a pilot rendezvous on loopback whose relay ` +
    `quota is raised out of the way (the default quota, 1 MB/s per sending node, would cap it ` +
    `there): each frame is sealed twice and crosses three processes. Compare stream_mbps ` +
    `(direct) from the same run; details.relay.path says the path stayed "relay"`;
  ctx.notes.relay_ping_rtt_ms_p50 = `POST /v1/ping on X to Y's echo through the relay ` +
    `(${PING_PROBES} probes of ${PING_PAYLOAD} bytes); compare ping_rtt_ms_p50 (direct)`;
  ctx.notes.relay_bytes_per_pair = `V8 heap growth of a RendezvousService relaying one frame ` +
    `for each of ${RELAY_PAIRS} distinct sender -> target pairs (its per-sender quota state; ` +
    `the table holds nothing per pair beyond it), in process`;
  return {
    relay_stream_mbps: streamOk ? mbps(data.bytes, data.seconds * 1000) : null,
    relay_ping_rtt_ms_p50: ms(percentile(ping.rtts, 0.5)),
    relay_ping_rtt_ms_p99: ms(percentile(ping.rtts, 0.99)),
    relay_bytes_per_pair: perPair,
  };
}

/** Heap bytes a RendezvousService holds per relayed sender -> target pair (in process). */
function relayBytesPerPair(): number | null {
  // The handler keys its state by the sender's key and looks the target up
  // by address: distinct random ones stand for distinct nodes.
  const peers = Array.from({ length: 2 * RELAY_PAIRS }, () =>
    ({
      keyHex: randomBytes(32).toHex(),
      address: formatAddress(randomBytes(6)),
    }) as unknown as PeerIdentity);
  const service = new RendezvousService(
    new RecordStore(),
    { peerAt: (address) => address === peers[0]!.address ? undefined : "target", send: () => true },
    () => performance.now(),
    { ...RENDEZVOUS_LIMITS, maxPeers: 4 * RELAY_PAIRS },
  );
  const frame = new Uint8Array(100);
  collectGarbage();
  const heap0 = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < RELAY_PAIRS; i++) {
    const to = peers[RELAY_PAIRS + i]!.address;
    service.handle(
      peers[i]!,
      { hostname: "127.0.0.1", port: 1 },
      encodeRendezvousMessage({
        type: "relay",
        to,
        frame,
      }),
    );
  }
  collectGarbage();
  const grown = Deno.memoryUsage().heapUsed - heap0;
  return service.stats().relayed.frames === RELAY_PAIRS ? round(grown / RELAY_PAIRS, 0) : null;
}
