/**
 * Rendezvous and relay figures: signed records held and looked up, and
 * streams and pings through a relay.
 *
 * @module
 */

import { RUNTIME_V8_FLAGS } from "../src/constants.ts";
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
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { formatAddress } from "../src/identity/address.ts";
import { signPresence, verifyPresence } from "../src/discovery/presence.ts";
import { RecordStore, RENDEZVOUS_MAX_RECORDS } from "../src/services/rendezvous/store.ts";
import { RENDEZVOUS_LIMITS, RendezvousService } from "../src/services/rendezvous/service.ts";
import {
  encodePresenceBody,
  encodePresenceRecord,
  presenceSigningMessage,
} from "../src/wire/presence_record.ts";
import { encodeRendezvousMessage } from "../src/wire/rendezvous_message.ts";
import { PING_PAYLOAD, PING_PROBES, pingVia } from "./latency.ts";
import { sampleConnections, STREAM_TIMEOUT_MS } from "./throughput.ts";
import {
  Api,
  cleanups,
  collectGarbage,
  type Context,
  type Figures,
  type Json,
  loadBenchIdentities,
  mbps,
  MIB,
  percentile,
  progress,
  round,
  settings,
} from "./_common.ts";
import type { Targets } from "./targets.ts";

/** Targets of the rendezvous and relay figures (issue 13, item 6). */
export const RENDEZVOUS_TARGETS: Targets = {
  rendezvous_records: { min: 100_000 },
  rendezvous_rss_mb: { max: 200 },
  rendezvous_lookups_per_s: { min: 20_000 },
  relay_stream_mbps: { min_times: 0.5, of: "relay_direct_stream_mbps" },
};

/** Records the rendezvous child is offered: a full table (RENDEZVOUS_MAX_RECORDS). */
const RENDEZVOUS_RECORDS = RENDEZVOUS_MAX_RECORDS;

/** Time spent on each rendezvous rate figure (ms). */
const RENDEZVOUS_SECONDS_MS = 2000;

const RENDEZVOUS_CHILD = new URL("./_rendezvous_child.ts", import.meta.url).pathname;

/** The fields of a bench presence record: private, no endpoints, valid for 30 minutes. */
function presenceOf(
  publicKey: Uint8Array,
  stamp: Uint8Array,
  hostname: string,
  now: number,
  staticKey: Uint8Array,
) {
  return {
    publicKey,
    stamp,
    hostname,
    visibility: "private" as const,
    serial: now,
    expiresAt: now + 30 * 60_000,
    endpoints: [],
    staticKey,
    staticSerial: 0,
    mailboxes: [],
  };
}

/**
 * `n` records of fresh Ed25519 keys (WebCrypto, to make them fast; the
 * rendezvous checks them with the product's noble verify), hostnames
 * `n-<i>`, private, one static key for all, valid for 30 minutes; written
 * as `u16 length ‖ bytes` each.
 */
async function writeSyntheticRecords(path: string, n: number): Promise<void> {
  const now = Date.now();
  const staticKey = generateX25519KeyPair().publicKey;
  const parts: Uint8Array[] = [];
  let size = 0;
  for (let i = 0; i < n; i++) {
    const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
      "sign",
    ]) as CryptoKeyPair;
    const p = presenceOf(
      new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey)),
      randomBytes(8),
      `n-${i}`,
      now,
      staticKey,
    );
    const message = new Uint8Array(presenceSigningMessage(encodePresenceBody(p)));
    const signature = new Uint8Array(await crypto.subtle.sign("Ed25519", pair.privateKey, message));
    const record = encodePresenceRecord({ ...p, signature });
    const framed = new Uint8Array(2 + record.length);
    new DataView(framed.buffer).setUint16(0, record.length);
    framed.set(record, 2);
    parts.push(framed);
    size += framed.length;
  }
  const file = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    file.set(part, at);
    at += part.length;
  }
  await Deno.writeFile(path, file);
}

/**
 * A full rendezvous table: {@linkcode RENDEZVOUS_RECORDS} synthetic records
 * published, each checked on insert, into a RecordStore and
 * RendezvousService with the product defaults in a child process
 * (`_rendezvous_child.ts`), whose RSS is the table's; lookups per second
 * through the handler there. Beside them: the child's RSS before the table
 * was filled, and `verifyPresence()` per second over real records (the
 * check that bounds the publish rate).
 */
export async function measureRendezvous(ctx: Context): Promise<Figures> {
  const ids = await loadBenchIdentities();
  let verifiesPerS: number | null = null;
  if (typeof ids === "string") ctx.notes.rendezvous_verifies_per_s = ids;
  else {
    const now = Date.now();
    const staticKey = generateX25519KeyPair().publicKey;
    const records = ids.map((id, i) =>
      signPresence(
        id.seed,
        presenceOf(id.publicKey, id.stamp, `bench-node-${i}`, now, staticKey),
      )
    );
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < RENDEZVOUS_SECONDS_MS) {
      for (let k = 0; k < 16; k++) verifyPresence(records[n++ % records.length]!, now);
    }
    verifiesPerS = round(n / ((performance.now() - t0) / 1000), 0);
  }

  const dir = await Deno.makeTempDir({ prefix: "pilot-bench-rendezvous-" });
  cleanups.push(() => Deno.remove(dir, { recursive: true }));
  const file = `${dir}/records.bin`;
  progress(`rendezvous: signing ${RENDEZVOUS_RECORDS} synthetic records`);
  const t0 = performance.now();
  await writeSyntheticRecords(file, RENDEZVOUS_RECORDS);
  progress(
    `rendezvous: signed in ${round((performance.now() - t0) / 1000, 1)} s; ` +
      "a child rendezvous publishes and checks each, then answers lookups",
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      // With the V8 flags the product runs with.
      `--v8-flags=${RUNTIME_V8_FLAGS}`,
      RENDEZVOUS_CHILD,
      file,
      String(RENDEZVOUS_SECONDS_MS),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) {
    ctx.notes.rendezvous_error = `the rendezvous child exited with ${out.code}`;
    return { rendezvous_verifies_per_s: verifiesPerS };
  }
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  const mib = (bytes: number) => round(bytes / MIB, 1);
  const stored = r.records as number;
  const lookupsOk = r.lookups_found === r.lookups && r.lookups_rate_limited === 0 &&
    r.sample_found === true;
  ctx.details.rendezvous = {
    offered: r.offered,
    refused: r.refused,
    publish_seconds: round(r.publish_ms / 1000, 1),
    lookups: r.lookups,
    lookups_found: r.lookups_found,
    lookups_rate_limited: r.lookups_rate_limited,
    memory_mb: {
      empty: { rss: mib(r.memory.empty.rss), heap: mib(r.memory.empty.heapUsed) },
      full: {
        rss: mib(r.memory.full.rss),
        heap: mib(r.memory.full.heapUsed),
        // V8's heap as reserved after the forced GC: what the publishing's garbage grew it to.
        heap_total: mib(r.memory.full.heapTotal),
        external: mib(r.memory.full.external),
      },
      // Right after the lookups, the garbage of 2 s of answers still there.
      after_lookups: { rss: mib(r.memory.after_lookups.rss) },
      // Then collected, and the bench's own peers and requests released.
      after_lookups_settled: {
        rss: mib(r.memory.after_lookups_settled.rss),
        heap: mib(r.memory.after_lookups_settled.heapUsed),
      },
    },
    heap_bytes_per_record: round((r.memory.full.heapUsed - r.memory.empty.heapUsed) / stored, 0),
    accounted_bytes_per_record: round(r.accounted_bytes / stored, 0),
    // Memory-reducing GCs the daemon's settle ran (one per reading after growth).
    settles: r.settles,
  };
  ctx.notes.rendezvous_records = `${RENDEZVOUS_RECORDS} records of fresh Ed25519 keys (hostname ` +
    `n-<i>, private, no endpoints, 164 bytes), each published from its own source IP through ` +
    "RendezvousService.handle() into a RecordStore with the product defaults " +
    "(RENDEZVOUS_LIMITS, publish rates per source and per key, 100,000 records at most) in " +
    "a child process (bench/_rendezvous_child.ts), not a pilot daemon: 100,000 sessions " +
    "would need 100,000 identities with real address stamps (about 2^20 SHA-512s each). " +
    "Each record is checked on insert as verifyPresence does (shape, lifetime, hostname, " +
    "key, stamp hash, Ed25519 signature with noble), except that the stamp's verdict is " +
    "not enforced for these synthetic keys; rendezvous_records counts those stored " +
    "(details.rendezvous.refused: the others)";
  ctx.notes.rendezvous_rss_mb = "VmRSS (MiB) of that child after every publish, the " +
    "records file released, a forced GC and the beat of the daemon's memory settle " +
    "(src/daemon/memory_settle.ts, which a pilot daemon's ticker runs once a second: once " +
    "the heap has grown, one memory-reducing GC on the first quiet beat; " +
    "details.rendezvous.settles counts them); rendezvous_rss_mb_empty: the same child before " +
    "the first publish (the Deno runtime and the modules); rendezvous_bytes_per_record: " +
    "the RSS growth divided by the records stored";
  ctx.notes.rendezvous_lookups_per_s = `lookups by hostname through RendezvousService.handle() ` +
    `in that child over the full table, each from one of the table's ${RENDEZVOUS_RECORDS} ` +
    `nodes in turn (so the per-peer request limit is paid and never hit), for ` +
    `${RENDEZVOUS_SECONDS_MS} ms, one thread, no session crypto or socket; counted only ` +
    "if every answer was found and none rate limited; rendezvous_publishes_per_s: the " +
    "publishes through the same handler while filling the table (each one checked), " +
    "beside rendezvous_verifies_per_s: verifyPresence() alone over the bench identities' " +
    "real records in this process";
  return {
    rendezvous_records: stored,
    rendezvous_rss_mb: mib(r.memory.full.rss),
    rendezvous_rss_mb_empty: mib(r.memory.empty.rss),
    rendezvous_bytes_per_record: round((r.memory.full.rss - r.memory.empty.rss) / stored, 0),
    rendezvous_lookups_per_s: lookupsOk ? round(r.lookups / r.lookup_seconds, 0) : null,
    rendezvous_publishes_per_s: round(r.offered / (r.publish_ms / 1000), 0),
    rendezvous_verifies_per_s: verifiesPerS,
  };
}

/** Fixtures of the relay measurement: the rendezvous, and the two private nodes it relays between. */
const RELAY_FIXTURES = { rendezvous: 4, x: 5, y: 6 } as const;

/** Stream volume through the relay (MiB): the relay carries each frame twice. */
const RELAY_VOLUME_MIB = 16;

/** Relayed pairs for the per-pair memory figure. */
const RELAY_PAIRS = 10_000;

/** Relay quota of the bench's rendezvous (bytes/s, per sending node and in all): far above any stream here. */
const RELAY_QUOTA_UNBOUND = 10_000_000_000;

/** Y's hostname in X's trust, by which X is told Y's endpoint in the direct run. */
const RELAY_NAME_Y = "relay-y";

/** A CPU profile for `name` when the bench runs with `--profile DIR`. */
function profileOf(
  name: string,
): { profile: { dir: string; name: string } } | Record<never, never> {
  return settings.profileDir === undefined
    ? {}
    : { profile: { dir: settings.profileDir, name: `${name}.cpuprofile` } };
}

/**
 * `pilot rendezvous` with fixture identity `index` and `config`, under
 * `--cpu-prof` when the bench profiles.
 */
async function startRelayRendezvous(
  index: number,
  config: Record<string, unknown>,
): Promise<{ node: TestNode; at: string }> {
  const profile = settings.profileDir === undefined ? [] : [
    "--cpu-prof",
    "--cpu-prof-dir",
    settings.profileDir,
    "--cpu-prof-name",
    "rendezvous-relay.cpuprofile",
  ];
  const r = await startRendezvous(index, config, profile);
  cleanups.push(async () => await r[Symbol.asyncDispose]());
  return r;
}

/** A private daemon (`punch: false`) trusting `other` (as RELAY_NAME_Y when `other` is Y), started with `args`. */
async function startRelayNode(
  self: number,
  other: number,
  args: string[],
  name: string,
): Promise<TestNode> {
  const home = await makeHome({
    identity: self,
    trust: [trustEntry(other, {
      mutual: true,
      hostname: other === RELAY_FIXTURES.y ? RELAY_NAME_Y : null,
    })],
    config: { punch: false },
  });
  const n = new TestNode(home, { identity: self, args, ...profileOf(name) });
  cleanups.push(() => n.stop());
  await n.start();
  return n;
}

/** POST /v1/bench on `api` to `peer`: megabytes per second each way, or null with a note. */
async function streamVia(
  ctx: Context,
  api: Api,
  peer: string,
  figure: string,
): Promise<{ mbps: number | null; data: Json }> {
  const samples: unknown[] = [];
  const stopSampling = sampleConnections(api, samples);
  const r = await api.call("POST", "/v1/bench", {
    peer,
    size_mb: RELAY_VOLUME_MIB,
    timeout_ms: STREAM_TIMEOUT_MS,
  }).finally(stopSampling);
  const data = r.json?.data && { ...r.json.data, connection_samples: samples };
  if (r.status !== 200 || data?.sha256_verified !== true) {
    ctx.notes[`${figure}_error`] = JSON.stringify(r.json).slice(0, 300);
    return { mbps: null, data: data ?? null };
  }
  return { mbps: mbps(data.bytes, data.seconds * 1000), data };
}

/**
 * Streams and pings between two private daemons (fixtures 5 and 6, trusting
 * each other, `punch: false` so they stay on the relay) through a
 * rendezvous on loopback whose relay quota does not bind; then the same
 * stream between the same two identities, restarted without the
 * rendezvous and told each other's endpoint (the direct baseline of the
 * same run); and the rendezvous's memory per relayed pair, in process.
 */
export async function measureRelay(ctx: Context): Promise<Figures> {
  progress("relay: a rendezvous and two private daemons that stay on its relay");
  // The quota raised out of the way: the figure is what relaying costs, not
  // the product's default (1 MB/s per sending node), which would cap it.
  const rendezvous = await startRelayRendezvous(RELAY_FIXTURES.rendezvous, {
    relay_quota: { per_peer: RELAY_QUOTA_UNBOUND, total: RELAY_QUOTA_UNBOUND },
  });
  const via = ["--rendezvous", rendezvous.at];
  const x = await startRelayNode(RELAY_FIXTURES.x, RELAY_FIXTURES.y, via, "relay-x");
  const y = await startRelayNode(RELAY_FIXTURES.y, RELAY_FIXTURES.x, via, "relay-y");
  await waitFor("both records at the rendezvous", async () => {
    const r = await rendezvous.node.pilot("rendezvous", "status", "--json");
    return r.json?.data?.records === 2;
  }, 30_000);
  const api = await Api.of(x);
  const peer = fixture(RELAY_FIXTURES.y).address;
  progress(`relay: ${RELAY_VOLUME_MIB} MiB X -> Y's stream echo -> X through the relay`);
  const relayed = await streamVia(ctx, api, peer, "relay_stream_mbps");
  progress(`relay: X -> Y's echo through the relay, ${PING_PROBES} probes`);
  const ping = await pingVia(api, peer);
  const peers = (await api.call("GET", "/v1/peers")).json?.data?.peers ?? [];
  const path = peers.find((p: { address: string }) => p.address === peer)?.path ?? null;
  const status = (await rendezvous.node.pilot("rendezvous", "status", "--json")).json?.data;
  const dropsOf = async (n: TestNode) =>
    (await (await Api.of(n)).call("GET", "/v1/info")).json?.data?.drops ?? null;
  const drops = {
    x: await dropsOf(x),
    y: await dropsOf(y),
    rendezvous: await dropsOf(rendezvous.node),
  };
  await x.stop();
  await y.stop();

  // The direct baselines: the same identities restarted without the
  // rendezvous, X told Y's endpoint; over 127.0.0.1 (60,000-byte datagrams,
  // as stream_mbps), then over this host's own non-loopback address, where
  // the daemons send at most 1,400 bytes a datagram as the relay path does.
  const directOver = async (ip: string, tag: string) => {
    progress(`relay: the same ${RELAY_VOLUME_MIB} MiB between X and Y restarted direct over ${ip}`);
    const listen = ["--listen", `${ip}:0`];
    const yd = await startRelayNode(RELAY_FIXTURES.y, RELAY_FIXTURES.x, listen, `${tag}-y`);
    const xd = await startRelayNode(RELAY_FIXTURES.x, RELAY_FIXTURES.y, [
      ...listen,
      "--peer",
      `${RELAY_NAME_Y}=${yd.listen}`,
    ], `${tag}-x`);
    const apiDirect = await Api.of(xd);
    const r = await streamVia(ctx, apiDirect, RELAY_NAME_Y, `relay_${tag}_stream_mbps`);
    const ps = (await apiDirect.call("GET", "/v1/peers")).json?.data?.peers ?? [];
    const found = ps.find((p: { address: string }) => p.address === peer);
    await xd.stop();
    await yd.stop();
    return { ...r, path: found?.path ?? null, endpoint: found?.endpoint ?? null };
  };
  const direct = await directOver("127.0.0.1", "direct");
  const lan = Object.values(Deno.networkInterfaces()).find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.")
  )?.address;
  const direct1400 = lan === undefined ? null : await directOver(lan, "direct_1400");
  if (lan === undefined) ctx.notes.relay_direct_1400_stream_mbps = "no non-loopback IPv4 address";

  ctx.details.relay = {
    path,
    stream: relayed.data,
    direct: { path: direct.path, endpoint: direct.endpoint, stream: direct.data },
    direct_1400: direct1400 && {
      path: direct1400.path,
      endpoint: direct1400.endpoint,
      stream: direct1400.data,
    },
    ping_lost: ping.lost,
    drops,
    rendezvous: status ?? null,
  };
  progress(`relay: ${RELAY_PAIRS} relayed pairs in process, heap per pair`);
  const perPair = relayBytesPerPair();
  const ms = (v: number | null) => v === null ? null : round(v, 3);
  ctx.notes.relay_stream_mbps = `POST /v1/bench on private daemon X to private daemon Y ` +
    `(fixtures ${RELAY_FIXTURES.x} and ${RELAY_FIXTURES.y}, trusting each other, "punch": false), ` +
    `${RELAY_VOLUME_MIB} MiB each way at once through a pilot rendezvous on loopback whose ` +
    `config.json sets relay_quota {per_peer, total} to ${RELAY_QUOTA_UNBOUND} bytes/s so that ` +
    `it does not bind (the product default, 1 MB/s per sending node, would cap the figure ` +
    `there): each frame is sealed twice and crosses three processes; details.relay.path ` +
    `says the path stayed "relay". relay_direct_stream_mbps, its baseline and the target's: ` +
    `the same stream right after, between the same two identities restarted without the ` +
    `rendezvous on 127.0.0.1 and X told Y's endpoint (details.relay.direct.path: "direct"), ` +
    `whose datagrams are up to 60,000 bytes as stream_mbps's, while a relay path's are at ` +
    `most 1,400 (MAX_DATAGRAM, src/daemon/streams.ts: each relayed hop may cross a real ` +
    `network); relay_direct_1400_stream_mbps: the same direct stream over this host's own ` +
    `non-loopback IPv4 address (still the kernel's loopback path), where the daemons use ` +
    `1,400-byte datagrams as on the relay: the cost of relaying alone`;
  ctx.notes.relay_ping_rtt_ms_p50 = `POST /v1/ping on X to Y's echo through the relay ` +
    `(${PING_PROBES} probes of ${PING_PAYLOAD} bytes); compare ping_rtt_ms_p50 (direct)`;
  ctx.notes.relay_bytes_per_pair = `V8 heap growth of a RendezvousService relaying one frame ` +
    `for each of ${RELAY_PAIRS} distinct sender -> target pairs (its per-sender quota state; ` +
    `the table holds nothing per pair beyond it), in process, on a clock that stands still: ` +
    `every pair active at once, the most it holds (a sender's state is forgotten once its ` +
    `quota has refilled)`;
  return {
    relay_stream_mbps: relayed.mbps,
    relay_direct_stream_mbps: direct.mbps,
    relay_direct_1400_stream_mbps: direct1400?.mbps ?? null,
    relay_ping_rtt_ms_p50: ms(percentile(ping.rtts, 0.5)),
    relay_ping_rtt_ms_p99: ms(percentile(ping.rtts, 0.99)),
    relay_bytes_per_pair: perPair,
  };
}

/** Heap bytes a RendezvousService holds per relayed sender -> target pair (in process). */
function relayBytesPerPair(): number | null {
  // The handler keys its state by the sender's key and looks the target up
  // by address: distinct random ones stand for distinct nodes.
  const peers = Array.from({ length: 2 * RELAY_PAIRS }, () => {
    const addressBytes = randomBytes(6);
    return {
      keyHex: randomBytes(32).toHex(),
      address: formatAddress(addressBytes),
      addressBytes,
    } as unknown as PeerIdentity;
  });
  const service = new RendezvousService(
    new RecordStore(),
    { peerAt: (address) => address === peers[0]!.address ? undefined : "target", send: () => true },
    // A clock that stands still: every sender's quota is still refilling when
    // the heap is read (the rate limiters forget a sender once it is full).
    () => 0,
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
