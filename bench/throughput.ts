/**
 * Throughput figures: AES-GCM alone, raw UDP, the datagram-size sweep, and
 * the stream between daemons A and B.
 *
 * @module
 */

import { createCipheriv } from "node:crypto";
import { AeadKey, nonceFromCounter, randomBytes } from "../src/session/crypto.ts";
import { DATA_HEADER_SIZE, TAG_SIZE } from "../src/wire/frames.ts";
import {
  Api,
  cleanups,
  closeQuietly,
  type Context,
  daemonsOf,
  type Figures,
  mbps,
  MIB,
  NAME_B,
  pool,
  progress,
  round,
  sleep,
  spawnUdpChild,
} from "./_common.ts";
import type { Targets } from "./targets.ts";

/** Targets of the throughput figures. */
export const THROUGHPUT_TARGETS: Targets = {
  // Twice the Go reference's 89 MB/s.
  stream_mbps: { min: 178 },
};

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
  return {
    aead_mbps: mbps(r.seals * size, r.pipelinedMs),
    aead_mbps_sequential: mbps(r.seals * size, r.sequentialMs),
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
  return { raw_udp_mbps: r.receiveMs > 0 ? mbps(r.receivedBytes, r.receiveMs) : null };
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

/**
 * 64 MiB through an encrypted stream between A and B, hash-verified: daemon
 * A's `POST /v1/bench` (the stream layer's own diagnostic, `pilot bench`)
 * writes random data into a stream to B's echo service (port 7) and reads the
 * echo back, SHA-256 checking both ways. While the stream layer is not wired
 * (no route, or it fails), the figure is null with the reason in the notes.
 */
export async function measureStream(ctx: Context): Promise<Figures> {
  const { a } = await daemonsOf(ctx);
  const api = await Api.of(a);
  const mib = ctx.volumeBytes / MIB;
  progress(`stream: ${mib} MiB A -> B's stream echo -> A through POST /v1/bench`);
  // A's connection table every STREAM_SAMPLE_MS while the transfer runs:
  // where a stall shows (cwnd, rto, retransmits).
  const samples: unknown[] = [];
  let sampling = true;
  const t0 = performance.now();
  const sampler = (async () => {
    while (sampling) {
      await sleep(STREAM_SAMPLE_MS);
      const c = await api.call("GET", "/v1/connections").catch(() => undefined);
      for (const x of c?.json?.data?.connections ?? []) {
        samples.push({
          at_ms: Math.round(performance.now() - t0),
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
    sampling = false;
    await sampler;
  }
  const data = r.json?.data;
  if (r.status !== 200 || data?.sha256_verified !== true || typeof data.seconds !== "number") {
    ctx.notes.stream_mbps = `not available: the stream layer (src/stream/) is not wired yet ` +
      `(POST /v1/bench answered ${r.status}: ${JSON.stringify(r.json).slice(0, 300)}); ` +
      `measureStream() in bench/bench.ts is the one function to adjust`;
    return { stream_mbps: null };
  }
  ctx.details.stream = { ...data, connection_samples: samples };
  ctx.notes.stream_mbps = `POST /v1/bench on daemon A: ${mib} MiB of random data written into ` +
    `one encrypted stream to B's echo service (port 7) and read back, SHA-256 verified both ` +
    `ways; the figure is payload bytes each way per second (MB/s), with both directions ` +
    `running at once, so each daemon sends and receives ${mib} MiB (details.stream is the ` +
    `route's answer; its mbps/mbps_one_way fields are megabits per second). On loopback ` +
    `the stream sends datagrams of LOOPBACK_DATAGRAM (src/constants.ts) bytes, which is ` +
    `datagram_bytes unless --datagram-bytes says otherwise`;
  return { stream_mbps: mbps(data.bytes, data.seconds * 1000) };
}
