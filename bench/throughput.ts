/**
 * Throughput figures: AES-GCM alone, raw UDP, the datagram-size sweep, and
 * the stream between daemons A and B.
 *
 * @module
 */

import { createCipheriv, createHash } from "node:crypto";
import { AeadKey, nonceFromCounter, randomBytes } from "../src/session/crypto.ts";
import { DATA_HEADER_SIZE, TAG_SIZE } from "../src/wire/frames.ts";
import {
  Api,
  cleanups,
  closeQuietly,
  type Context,
  cpuMs,
  daemonsOf,
  type Figures,
  mbps,
  MIB,
  NAME_B,
  pool,
  progress,
  round,
  settings,
  sleep,
  spawnUdpChild,
} from "./_common.ts";
import type { Targets } from "./targets.ts";
import { ControlClient } from "../src/control/client.ts";
import type { StreamSocket } from "../src/control/stream_client.ts";
import { LOOPBACK_DATAGRAM, MAX_DATAGRAM } from "../src/constants.ts";
import { mssFor } from "../src/stream/mod.ts";
import { makeHome, TestNode, trustEntry } from "../tests/_daemon_harness.ts";

/** Targets of the throughput figures. */
export const THROUGHPUT_TARGETS: Targets = {
  // Twice the Go reference's 89 MB/s.
  stream_mbps: { min: 178 },
  // What real networks carry: 1400-byte datagrams.
  stream_mbps_1400: { min: 60 },
  // Retransmitted segments per segment sent on a clean loopback.
  stream_retransmit_rate: { max: 0.001 },
  stream_retransmit_rate_1400: { max: 0.001 },
};

/** The datagram size of real networks, measured beside the loopback size. */
const REAL_DATAGRAM = 1400;

const AEAD_INFLIGHT = 64;

const UDP_INFLIGHT = 64;

const UDP_WARMUP_BYTES = 4 * 1024 * 1024;

const SWEEP_SIZES = [1400, 8192, 32768, 65507];

/** Longest a stream transfer may take (ms). */
export const STREAM_TIMEOUT_MS = 300_000;

const STREAM_SAMPLE_MS = 100;

interface AeadRun {
  seals: number;
  sequentialMs: number;
  pipelinedMs: number;
}

/** Seals `volume` bytes' worth of `size`-byte frames, awaiting each, then with AEAD_INFLIGHT in flight. */
async function aeadRun(size: number, volume: number): Promise<AeadRun> {
  const plaintext = randomBytes(size - DATA_HEADER_SIZE - TAG_SIZE);
  const ad = randomBytes(DATA_HEADER_SIZE);
  const key = await AeadKey.create(randomBytes(32));
  const n = Math.ceil(volume / size);
  for (let i = 0; i < 500; i++) await key.seal(nonceFromCounter(i), plaintext, ad);
  let t0 = performance.now();
  for (let i = 0; i < n; i++) await key.seal(nonceFromCounter(i), plaintext, ad);
  const sequentialMs = performance.now() - t0;
  t0 = performance.now();
  await pool(n, AEAD_INFLIGHT, async (i) => {
    await key.seal(nonceFromCounter(i), plaintext, ad);
  });
  return { seals: n, sequentialMs, pipelinedMs: performance.now() - t0 };
}

/**
 * The same seals with node:crypto's synchronous AES-256-GCM instead of
 * WebCrypto: a candidate for the data path, checked to give the same bytes.
 */
async function nodeAeadMs(size: number, volume: number): Promise<{ seals: number; ms: number }> {
  const plaintext = randomBytes(size - DATA_HEADER_SIZE - TAG_SIZE);
  const ad = randomBytes(DATA_HEADER_SIZE);
  const rawKey = randomBytes(32);
  const seal = (counter: number) => {
    const c = createCipheriv("aes-256-gcm", rawKey, nonceFromCounter(counter));
    c.setAAD(ad);
    const body = c.update(plaintext);
    c.final();
    const out = new Uint8Array(body.length + TAG_SIZE);
    out.set(body);
    out.set(c.getAuthTag(), body.length);
    return out;
  };
  const reference = await (await AeadKey.create(rawKey)).seal(nonceFromCounter(7), plaintext, ad);
  if (seal(7).toHex() !== reference.toHex()) {
    throw new Error("node:crypto AES-256-GCM disagrees with AeadKey");
  }
  const n = Math.ceil(volume / size);
  for (let i = 0; i < 500; i++) seal(i);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) seal(i);
  return { seals: n, ms: performance.now() - t0 };
}

interface UdpRun {
  sent: number;
  received: number;
  receivedBytes: number;
  receiveMs: number;
  sendMs: number;
  errors: number;
}

/** Sends `volume` bytes in `size`-byte datagrams to a sink child process. */
async function rawUdpRun(size: number, volume: number): Promise<UdpRun> {
  const n = Math.ceil(volume / size);
  const sink = await spawnUdpChild("sink");
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  cleanups.push(() => Promise.resolve(closeQuietly(conn)));
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: sink.port };
  const payload = randomBytes(size);
  let errors = 0;
  const blast = (count: number) =>
    pool(count, UDP_INFLIGHT, async () => {
      await conn.send(payload, to).catch(() => errors++);
    });
  // A warm-up burst (both sides' code compiled, socket buffers in use), then the measured one.
  await blast(Math.ceil(UDP_WARMUP_BYTES / size));
  await sink.line();
  errors = 0;
  const t0 = performance.now();
  await blast(n);
  const sendMs = performance.now() - t0;
  const result = JSON.parse(await sink.line());
  await sink.stop();
  closeQuietly(conn);
  return {
    sent: n,
    received: result.datagrams,
    receivedBytes: result.bytes,
    receiveMs: result.last_ms - result.first_ms,
    sendMs,
    errors,
  };
}

/** AES-GCM alone, pipelined and one call at a time: the crypto ceiling. */
export async function measureAead(ctx: Context): Promise<Figures> {
  const size = ctx.datagramBytes;
  progress(`aead: ${ctx.volumeBytes / MIB} MiB in ${size}-byte frames`);
  const r = await aeadRun(size, ctx.volumeBytes);
  ctx.details.aead = {
    seals: r.seals,
    frame_bytes: size,
    sequential_us_per_seal: round((r.sequentialMs * 1000) / r.seals),
    pipelined_us_per_seal: round((r.pipelinedMs * 1000) / r.seals),
    inflight: AEAD_INFLIGHT,
  };
  ctx.notes.aead_mbps = `AES-256-GCM seal through AeadKey (src/session/crypto.ts), ` +
    `${r.seals} frames of ${size} bytes (plaintext = frame - ${DATA_HEADER_SIZE}-byte header - ` +
    `${TAG_SIZE}-byte tag), counted as frame bytes; aead_mbps with ${AEAD_INFLIGHT} seals in ` +
    `flight, aead_mbps_sequential awaiting each`;
  progress(`aead: ${ctx.volumeBytes / MIB} MiB in ${REAL_DATAGRAM}-byte frames`);
  const small = size === REAL_DATAGRAM ? r : await aeadRun(REAL_DATAGRAM, ctx.volumeBytes);
  ctx.notes.aead_mbps_1400 = `the same in ${REAL_DATAGRAM}-byte frames (what real networks ` +
    `carry), the ceiling of stream_mbps_1400`;
  return {
    aead_mbps: mbps(r.seals * size, r.pipelinedMs),
    aead_mbps_sequential: mbps(r.seals * size, r.sequentialMs),
    aead_mbps_1400: mbps(small.seals * REAL_DATAGRAM, small.pipelinedMs),
  };
}

/** Plain UDP between two processes: the socket ceiling. */
export async function measureRawUdp(ctx: Context): Promise<Figures> {
  const size = ctx.datagramBytes;
  progress(`raw_udp: ${ctx.volumeBytes / MIB} MiB in ${size}-byte datagrams to a child process`);
  const r = await rawUdpRun(size, ctx.volumeBytes);
  ctx.details.raw_udp = {
    datagrams_sent: r.sent,
    datagrams_received: r.received,
    loss: round(1 - r.received / r.sent, 4),
    send_mbps: mbps(r.sent * size, r.sendMs),
    send_errors: r.errors,
    inflight_sends: UDP_INFLIGHT,
  };
  ctx.notes.raw_udp_mbps = `plain Deno UDP (Deno.listenDatagram) from this process to a child ` +
    `process, ${r.sent} datagrams of ${size} bytes sent as fast as ${UDP_INFLIGHT} sends in ` +
    `flight allow (no flow control, so the receiver drops what it cannot take: ` +
    `details.raw_udp.loss); the figure is bytes received by the child over its ` +
    `first-to-last receive time`;
  progress(`raw_udp: ${ctx.volumeBytes / MIB} MiB in ${REAL_DATAGRAM}-byte datagrams`);
  const small = size === REAL_DATAGRAM ? r : await rawUdpRun(REAL_DATAGRAM, ctx.volumeBytes);
  ctx.details.raw_udp_1400 = {
    datagrams_sent: small.sent,
    datagrams_received: small.received,
    loss: round(1 - small.received / small.sent, 4),
  };
  ctx.notes.raw_udp_mbps_1400 = `the same in ${REAL_DATAGRAM}-byte datagrams ` +
    `(details.raw_udp_1400), the socket ceiling of stream_mbps_1400`;
  return {
    raw_udp_mbps: r.receiveMs > 0 ? mbps(r.receivedBytes, r.receiveMs) : null,
    raw_udp_mbps_1400: small.receiveMs > 0 ? mbps(small.receivedBytes, small.receiveMs) : null,
  };
}

/** The raw baselines at other datagram sizes: what a larger loopback datagram would buy. */
export async function measureSweep(ctx: Context): Promise<Figures> {
  const rows = [];
  for (const size of SWEEP_SIZES) {
    progress(`sweep: ${size}-byte datagrams (raw UDP, AEAD)`);
    const u = await rawUdpRun(size, ctx.volumeBytes);
    const a = await aeadRun(size, ctx.volumeBytes);
    const nodeAead = await nodeAeadMs(size, ctx.volumeBytes);
    rows.push({
      datagram_bytes: size,
      raw_udp_mbps: u.receiveMs > 0 ? mbps(u.receivedBytes, u.receiveMs) : null,
      raw_udp_loss: round(1 - u.received / u.sent, 4),
      aead_mbps: mbps(a.seals * size, a.pipelinedMs),
      aead_mbps_sequential: mbps(a.seals * size, a.sequentialMs),
      node_crypto_aead_mbps_sequential: mbps(nodeAead.seals * size, nodeAead.ms),
    });
  }
  ctx.details.size_sweep = rows;
  ctx.notes.size_sweep = "details.size_sweep: raw_udp_mbps and aead_mbps measured the same " +
    "way at other datagram sizes (loopback carries up to 65507 bytes unfragmented), for " +
    "choosing the stream layer's loopback datagram size; node_crypto_aead_mbps_sequential " +
    "seals the same frames with node:crypto's synchronous AES-256-GCM (same bytes as " +
    "AeadKey, checked), a candidate to replace WebCrypto on the data path";
  return {};
}

/** Virtual port of the one-way transfer's sink (a `listen` on the receiving daemon). */
const ONE_WAY_PORT = 5201;

/** Bytes per write into the sending stream socket. */
const ONE_WAY_CHUNK = 64 * 1024;

/** Fixture identities of the pair that talks over a non-loopback address. */
const REAL_PAIR = [4, 5] as const;

interface OneWayRun {
  bytes: number;
  ms: number;
  retransmits: number | null;
  segments: number;
  samples: unknown[];
  /** CPU over the transfer, % of one core: the two daemons and this process (which writes, reads and hashes). */
  cpu: { sender_daemon: number | null; receiver_daemon: number | null; client: number | null };
  /** Datagrams each daemon dropped during the transfer, by reason (`pilot info` drops; nonzero only). */
  drops: { sender_daemon: Record<string, number>; receiver_daemon: Record<string, number> };
}

/** A daemon's drops by reason (`GET /v1/info`), or an empty record when it does not answer. */
async function dropsOf(api: Api): Promise<Record<string, number>> {
  const r = await api.call("GET", "/v1/info").catch(() => null);
  return (r?.json?.data?.drops ?? {}) as Record<string, number>;
}

/** What rose from `before` to `after`, by reason. */
function grown(before: Record<string, number>, after: Record<string, number>) {
  return Object.fromEntries(
    Object.entries(after).filter(([k, v]) => v > (before[k] ?? 0)).map((
      [k, v],
    ) => [k, v - (before[k] ?? 0)]),
  );
}

/**
 * Starts a sampler of `api`'s connection table every STREAM_SAMPLE_MS:
 * where a stall shows (cwnd, rto, retransmits). Stop it with the function
 * it returns.
 */
export function sampleConnections(api: Api, samples: unknown[]): () => Promise<void> {
  let sampling = true;
  const t0 = performance.now();
  const done = (async () => {
    while (sampling) {
      await sleep(STREAM_SAMPLE_MS);
      const c = await api.call("GET", "/v1/connections").catch(() => undefined);
      for (const x of c?.json?.data?.connections ?? []) {
        samples.push({
          at_ms: Math.round(performance.now() - t0),
          remote_port: x.remote_port,
          state: x.state,
          cwnd: x.cwnd,
          srtt_ms: x.srtt_ms,
          rto_ms: x.rto_ms,
          in_flight: x.bytes_in_flight,
          retransmits: x.retransmits,
          sent: x.sent,
          received: x.received,
        });
      }
    }
  })();
  return () => {
    sampling = false;
    return done;
  };
}

/**
 * One-way bulk transfer, like iperf: `to`'s daemon listens on ONE_WAY_PORT
 * through its control API (`GET /v1/listen`), `from`'s daemon opens a stream
 * to it (`GET /v1/stream`), this process writes `bytes` of random data into
 * the sending socket and reads them from the receiving one, hashing both
 * ends with SHA-256. The time runs from the first write to the last byte read.
 */
async function oneWay(
  from: TestNode,
  to: TestNode,
  peer: string,
  bytes: number,
  mss: number,
): Promise<OneWayRun> {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 65_536) crypto.getRandomValues(data.subarray(i, i + 65_536));
  const sentHash = createHash("sha256").update(data).digest("hex");
  const sender = await ControlClient.open(from.home);
  const receiver = await ControlClient.open(to.home);
  const api = await Api.of(from);
  const toApi = await Api.of(to);
  const samples: unknown[] = [];
  const stopSampling = sampleConnections(api, samples);
  let sink: StreamSocket | undefined;
  let source: StreamSocket | undefined;
  try {
    const { promise: listening, resolve: onListening } = Promise.withResolvers<number>();
    const accepted = receiver.openStream(
      "/v1/listen",
      { port: ONE_WAY_PORT, timeout_ms: STREAM_TIMEOUT_MS },
      onListening,
    );
    accepted.catch(() => {});
    await Promise.race([listening, accepted]);
    source = await sender.openStream("/v1/stream", {
      peer,
      port: ONE_WAY_PORT,
      timeout_ms: STREAM_TIMEOUT_MS,
    });
    sink = await accepted;
    const drops0 = await Promise.all([dropsOf(api), dropsOf(toApi)]);
    const cpu0 = await Promise.all([cpuMs(from.pid), cpuMs(to.pid), cpuMs("self")]);
    const t0 = performance.now();
    const writing = (async () => {
      for (let i = 0; i < bytes; i += ONE_WAY_CHUNK) {
        await source!.write(data.subarray(i, Math.min(bytes, i + ONE_WAY_CHUNK)));
      }
      source!.fin();
    })();
    const gotHash = createHash("sha256");
    let got = 0;
    for await (const piece of sink.data()) {
      gotHash.update(piece);
      got += piece.length;
    }
    const ms = performance.now() - t0;
    const cpu1 = await Promise.all([cpuMs(from.pid), cpuMs(to.pid), cpuMs("self")]);
    const pct = (i: number) =>
      cpu0[i] === null || cpu1[i] === null ? null : round((cpu1[i]! - cpu0[i]!) / ms * 100, 0);
    const drops1 = await Promise.all([dropsOf(api), dropsOf(toApi)]);
    await writing;
    if (got !== bytes || gotHash.digest("hex") !== sentHash) {
      throw new Error(`One-way transfer: received ${got} of ${bytes} bytes, or a different hash`);
    }
    sink.fin();
    await Promise.race([Promise.all([source.ended, sink.ended]), sleep(5_000)]);
    await stopSampling();
    const c = await api.call("GET", "/v1/connections");
    const conns = (c.json?.data?.connections ?? []) as {
      remote_port: number;
      sent: number;
      retransmits: number;
    }[];
    const mine = conns.filter((x) => x.remote_port === ONE_WAY_PORT)
      .sort((x, y) => y.sent - x.sent)[0];
    return {
      bytes,
      ms,
      retransmits: mine?.retransmits ?? null,
      segments: Math.ceil(bytes / mss),
      samples,
      cpu: { sender_daemon: pct(0), receiver_daemon: pct(1), client: pct(2) },
      drops: {
        sender_daemon: grown(drops0[0], drops1[0]),
        receiver_daemon: grown(drops0[1], drops1[1]),
      },
    };
  } finally {
    await stopSampling();
    source?.abort();
    sink?.abort();
    sender.close();
    receiver.close();
  }
}

/**
 * A pair of daemons that address each other by this machine's first
 * non-loopback IPv4 address: the stream layer then takes the path for a
 * real network (datagrams of MAX_DATAGRAM bytes) while the packets still
 * cross the loopback device. Null when the machine has no such address.
 */
async function realPathPair(): Promise<{ a: TestNode; b: TestNode; host: string } | null> {
  const host = Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.")
  )?.address;
  if (host === undefined) return null;
  const [ia, ib] = REAL_PAIR;
  const start = async (index: number, name: string, trust: number, args: string[]) => {
    const home = await makeHome({
      identity: index,
      trust: [trustEntry(trust, { mutual: true, hostname: trust === ib ? "bench-real-b" : null })],
    });
    const profile = settings.profileDir === undefined
      ? undefined
      : { dir: settings.profileDir, name: `daemon-${name}.cpuprofile` };
    const node = new TestNode(home, {
      identity: index,
      hostname: name,
      args: ["--listen", `${host}:0`, "--no-lan", ...args],
      ...(profile && { profile }),
    });
    cleanups.push(() => node.stop());
    await node.start();
    return node;
  };
  const b = await start(ib, "bench-real-b", ia, []);
  const a = await start(ia, "bench-real-a", ib, ["--peer", `bench-real-b=${b.listen}`]);
  return { a, b, host };
}

/**
 * The stream between daemons, three ways, each hash-verified:
 * - `stream_mbps`: one-way bulk A -> B (see {@linkcode oneWay}), 64 MiB by
 *   default, at the loopback datagram size;
 * - `stream_echo_mbps`: A's `POST /v1/bench` (`pilot bench`) writes into a
 *   stream to B's echo service (port 7) and reads the echo back;
 * - `stream_mbps_1400`: one-way between two more daemons that see each other
 *   at a non-loopback address, so they send 1400-byte datagrams.
 * Retransmit rates are the sender's retransmitted segments per segment of
 * the transfer.
 */
export async function measureStream(ctx: Context): Promise<Figures> {
  const { a, b } = await daemonsOf(ctx);
  const mib = ctx.volumeBytes / MIB;
  const figures: Figures = {
    stream_mbps: null,
    stream_retransmit_rate: null,
    stream_echo_mbps: null,
    stream_mbps_1400: null,
    stream_retransmit_rate_1400: null,
  };
  const loopMss = mssFor(LOOPBACK_DATAGRAM);
  progress(`stream: ${mib} MiB one way A -> B (listen/stream through the control APIs)`);
  try {
    const r = await oneWay(a, b, NAME_B, ctx.volumeBytes, loopMss);
    figures.stream_mbps = mbps(r.bytes, r.ms);
    figures.stream_retransmit_rate = r.retransmits === null
      ? null
      : round(r.retransmits / r.segments, 5);
    ctx.details.stream = {
      bytes: r.bytes,
      seconds: round(r.ms / 1000, 3),
      retransmits: r.retransmits,
      segments: r.segments,
      mss: loopMss,
      cpu_percent: r.cpu,
      drops: r.drops,
      connection_samples: r.samples,
    };
    ctx.notes.stream_mbps = `one-way bulk transfer, like iperf: B listens on port ` +
      `${ONE_WAY_PORT} (GET /v1/listen), A opens a stream to it (GET /v1/stream), the bench ` +
      `writes ${mib} MiB of random data into A's socket and reads them from B's, SHA-256 ` +
      `verified; MB/s from the first write to the last byte read. Segments carry ${loopMss} ` +
      `bytes (LOOPBACK_DATAGRAM ${LOOPBACK_DATAGRAM}); stream_retransmit_rate is A's ` +
      `retransmitted segments / ${Math.ceil(ctx.volumeBytes / loopMss)} segments`;
  } catch (e) {
    ctx.notes.stream_mbps = `failed: ${(e as Error).message}`;
  }
  progress(`stream: ${mib} MiB A -> B's stream echo -> A through POST /v1/bench`);
  const api = await Api.of(a);
  const samples: unknown[] = [];
  const stopSampling = sampleConnections(api, samples);
  let r;
  try {
    r = await api.call("POST", "/v1/bench", {
      peer: NAME_B,
      size_mb: mib,
      timeout_ms: STREAM_TIMEOUT_MS,
    });
  } catch (e) {
    r = { status: 0, json: { message: (e as Error).message } };
  } finally {
    await stopSampling();
  }
  const data = r.json?.data;
  if (r.status !== 200 || data?.sha256_verified !== true || typeof data.seconds !== "number") {
    ctx.notes.stream_echo_mbps = `failed: POST /v1/bench answered ${r.status}: ` +
      JSON.stringify(r.json).slice(0, 300);
  } else {
    figures.stream_echo_mbps = mbps(data.bytes, data.seconds * 1000);
    ctx.details.stream_echo = { ...data, connection_samples: samples };
    ctx.notes.stream_echo_mbps = `POST /v1/bench on daemon A: ${mib} MiB of random data ` +
      `written into one encrypted stream to B's echo service (port 7) and read back, SHA-256 ` +
      `verified both ways; payload bytes each way per second (MB/s), both directions at once ` +
      `(details.stream_echo is the route's answer; its mbps fields are megabits per second)`;
  }
  progress(`stream: ${mib} MiB one way between two daemons on a non-loopback address`);
  try {
    const pair = await realPathPair();
    if (pair === null) {
      ctx.notes.stream_mbps_1400 = "not measured: this machine has no non-loopback IPv4 address";
    } else {
      const realMss = mssFor(MAX_DATAGRAM);
      const r = await oneWay(pair.a, pair.b, "bench-real-b", ctx.volumeBytes, realMss);
      figures.stream_mbps_1400 = mbps(r.bytes, r.ms);
      figures.stream_retransmit_rate_1400 = r.retransmits === null
        ? null
        : round(r.retransmits / r.segments, 5);
      ctx.details.stream_1400 = {
        bytes: r.bytes,
        seconds: round(r.ms / 1000, 3),
        retransmits: r.retransmits,
        segments: r.segments,
        mss: realMss,
        cpu_percent: r.cpu,
        drops: r.drops,
        connection_samples: r.samples,
      };
      ctx.notes.stream_mbps_1400 = `as stream_mbps, between two more daemons (fixtures ` +
        `${REAL_PAIR.join(", ")}) listening on ${pair.host}, this machine's non-loopback ` +
        `address: the stream layer sees a real network's path and sends datagrams of ` +
        `MAX_DATAGRAM (${MAX_DATAGRAM}) bytes, ${realMss} data bytes per segment`;
    }
  } catch (e) {
    ctx.notes.stream_mbps_1400 = `failed: ${(e as Error).message}`;
  }
  return figures;
}
