/**
 * `deno task bench`: starts real daemons on loopback in temporary homes and
 * prints ONE JSON object of figures on stdout, each beside the raw baseline
 * measured in the same run (plain UDP, AES-GCM alone). Progress goes to
 * stderr. Not part of the tests: nothing here asserts anything.
 *
 * Usage: `deno task bench [--datagram-bytes N] [--volume-mib N] [--only a,b,...]
 * [--msg-inflight N] [--profile DIR]`.
 *
 * - `--only` picks among: idle, aead, raw_udp, sweep, stream, ping, messages, forward,
 *   handshakes, rendezvous, relay.
 * - `--profile DIR` runs the daemons in the foreground under `--cpu-prof`, writing
 *   `DIR/daemon-<hostname>.cpuprofile` at exit (summarise with `bench/profile_summary.ts`).
 *
 * Daemons: A (fixture 0) and B (fixture 1) trust each other (seeded
 * trust.json, `mutual: true`); B also trusts fixture 2, the in-process peer
 * that pings B's echo service. C (fixture 3) trusts nobody and takes the
 * handshakes of the benchmark identities (`tests/fixtures/bench_identities.json`,
 * made once by `scripts/make_bench_identities.ts`).
 *
 * @module
 */
import { createCipheriv } from "node:crypto";
import { parseArgs } from "node:util";
import {
  COOKIE_LOAD_THRESHOLD,
  HANDSHAKE_RATE_PER_KEY,
  HANDSHAKE_RATE_PER_SOURCE,
  LOOPBACK_DATAGRAM,
  PORT_ECHO,
} from "../src/constants.ts";
import {
  decodeIdentityFile,
  generateX25519KeyPair,
  type Identity,
} from "../src/identity/identity.ts";
import { AeadKey, nonceFromCounter, randomBytes } from "../src/session/crypto.ts";
import { DATA_HEADER_SIZE, TAG_SIZE } from "../src/wire/frames.ts";
import {
  endpointOf,
  fixture,
  makeHome,
  startRendezvous,
  TestNode,
  trustEntry,
  waitFor,
} from "../tests/_daemon_harness.ts";
import { BenchPeer } from "./_peer.ts";
import { peerIdentityOf } from "../tests/_session_helpers.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { formatAddress } from "../src/identity/address.ts";
import { signPresence, type VerifiedPresence, verifyPresence } from "../src/discovery/presence.ts";
import { RecordStore } from "../src/services/rendezvous/store.ts";
import { RENDEZVOUS_LIMITS, RendezvousService } from "../src/services/rendezvous/service.ts";
import { decodePresenceRecord, encodePresenceRecord } from "../src/wire/presence_record.ts";
import { encodeRendezvousMessage } from "../src/wire/rendezvous_message.ts";

// ---------------------------------------------------------------------------
// Settings

const MEASUREMENTS = [
  "idle",
  "aead",
  "raw_udp",
  "sweep",
  "stream",
  "ping",
  "messages",
  "tasks",
  "forward",
  "handshakes",
  "rendezvous",
  "relay",
] as const;
type Measurement = (typeof MEASUREMENTS)[number];

/** Targets of issue 4 on the 2-core reference machine. */
export const TARGETS = {
  stream_mbps: { min: 89 },
  ping_rtt_ms_p50: { max_times_raw_udp_rtt_ms_p50: 2 },
  msgs_per_s: { min: 5000 },
  handshakes_per_s: { min: 500 },
  idle_rss_mb: { max: 80 },
  rss_per_session_kb: { max: 10 },
} as const;

const MIB = 1024 * 1024;
const PING_PAYLOAD = 8;
const PING_API_MAX_COUNT = 1000;
const PING_PROBES = 2000;
const PING_WARMUP = 200;
const MESSAGE_COUNT = 5000;
const MESSAGE_SECONDS = 5;
const MESSAGE_INFLIGHT = 64;
const AEAD_INFLIGHT = 64;
const UDP_INFLIGHT = 64;
const UDP_WARMUP_BYTES = 4 * 1024 * 1024;
const HANDSHAKE_CONCURRENCY = 64;
const HANDSHAKE_ROUNDS = 3;
const MIN_BENCH_IDENTITIES = 200;
const SWEEP_SIZES = [1400, 8192, 32768, 65507];
/** When the per-session memory is read, after the last handshake (ms). */
const RSS_SETTLE_MS = [2_000, 12_000];
const NAME_B = "bench-b";
const STREAM_TIMEOUT_MS = 300_000;
const STREAM_SAMPLE_MS = 100;

const BENCH_IDENTITIES = new URL("../tests/fixtures/bench_identities.json", import.meta.url);
const UDP_CHILD = new URL("./_udp_child.ts", import.meta.url).pathname;

/** Where daemons write CPU profiles (`--profile DIR`); unset: daemons run as `daemon start`. */
let profileDir: string | undefined;
/** Send requests in flight (`--msg-inflight`). */
let messageInflight = MESSAGE_INFLIGHT;

// ---------------------------------------------------------------------------
// Small helpers

const started = performance.now();

function progress(message: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  console.error(`[bench ${s}s] ${message}`);
}

/** A full GC when the bench runs with --expose-gc (deno task bench does), so heap figures hold no garbage. */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** The q-quantile (0..1) of `values` by the nearest-rank method; null when empty. */
export function percentile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = values.toSorted((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Megabytes (10^6 bytes) per second. */
function mbps(bytes: number, ms: number): number {
  return round(bytes / 1e6 / (ms / 1000));
}

/** VmRSS of a process in KiB (Linux), or null. */
async function rssKb(pid: number): Promise<number | null> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Number of threads of a process (Linux), or null. */
async function threadCount(pid: number): Promise<number | null> {
  try {
    const m = /^Threads:\s+(\d+)/m.exec(await Deno.readTextFile(`/proc/${pid}/status`));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** User + system CPU time of a process in ms (Linux), or null. */
async function cpuMs(pid: number | "self"): Promise<number | null> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the command name (which may contain spaces) start at ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

function closeQuietly(conn: Deno.DatagramConn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs `job(i)` for i in [0, n) with at most `width` running at once. */
async function pool(n: number, width: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(width, n) }, async () => {
    while (next < n) await job(next++);
  });
  await Promise.all(lanes);
}

/** Everything to undo at the end (or on Ctrl-C), last first. */
const cleanups: (() => Promise<void>)[] = [];

async function cleanup(): Promise<void> {
  while (cleanups.length > 0) {
    const f = cleanups.pop()!;
    try {
      await f();
    } catch (e) {
      // One failed step (even a synchronous throw) never skips the rest.
      progress(`cleanup failed: ${(e as Error).message}`);
    }
  }
}

// ---------------------------------------------------------------------------
// Child processes (plain-UDP baselines)

interface Child {
  process: Deno.ChildProcess;
  port: number;
  /** The next stdout line. */
  line(): Promise<string>;
  stop(): Promise<void>;
}

async function spawnUdpChild(mode: "sink" | "echo"): Promise<Child> {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--unstable-net", UDP_CHILD, mode],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const line = async (): Promise<string> => {
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const l = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return l;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`UDP ${mode} child ended its output`);
      buffered += value;
    }
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await reader.cancel().catch(() => {});
    await process.status;
  };
  cleanups.push(stop);
  const port = Number(await line());
  return { process, port, line, stop };
}

// ---------------------------------------------------------------------------
// Daemons

interface Daemons {
  a: TestNode;
  b: TestNode;
  c: TestNode;
}

async function startDaemon(
  index: number,
  hostname: string,
  trust: number[],
  trustHostnames: Record<number, string> = {},
  args: string[] = [],
): Promise<TestNode> {
  const home = await makeHome({
    identity: index,
    trust: trust.map((i) => trustEntry(i, { mutual: true, hostname: trustHostnames[i] ?? null })),
  });
  const profile = profileDir === undefined
    ? undefined
    : { dir: profileDir, name: `daemon-${hostname}.cpuprofile` };
  const node = new TestNode(home, { identity: index, hostname, args, ...(profile && { profile }) });
  cleanups.push(() => node.stop());
  await node.start();
  return node;
}

async function startDaemons(): Promise<Daemons> {
  progress("starting daemons B, C, then A");
  const b = await startDaemon(1, NAME_B, [0, 2]);
  const c = await startDaemon(3, "bench-c", []);
  const a = await startDaemon(0, "bench-a", [1], { 1: NAME_B }, [
    "--peer",
    `${NAME_B}=${b.listen}`,
  ]);
  return { a, b, c };
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** Calls a node's control API (token from control.json) on a direct connection. */
class Api {
  #url: string;
  #token: string;
  #client: Deno.HttpClient;

  private constructor(url: string, token: string, socket: string | undefined) {
    this.#url = url;
    this.#token = token;
    const u = new URL(url);
    // Direct to loopback, never through an HTTP proxy from the environment.
    this.#client = Deno.createHttpClient({
      proxy: socket === undefined
        ? { transport: "tcp", hostname: u.hostname, port: Number(u.port) }
        : { transport: "unix", path: socket },
    });
  }

  /**
   * A client of `node`'s API over its Unix socket, as the CLI calls it, or
   * with `via: "tcp"` over its TCP port (through the connection gate).
   */
  static async of(node: TestNode, via: "socket" | "tcp" = "socket"): Promise<Api> {
    const control = await node.controlFile() as { url: string; token: string; socket?: string };
    const api = new Api(control.url, control.token, via === "tcp" ? undefined : control.socket);
    cleanups.push(() => Promise.resolve(api.close()));
    return api;
  }

  async call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: Json }> {
    const res = await fetch(new URL(path, this.#url), {
      method,
      headers: { authorization: `Bearer ${this.#token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      client: this.#client,
    });
    return { status: res.status, json: await res.json() };
  }

  close(): void {
    this.#client.close();
  }
}

// ---------------------------------------------------------------------------
// Measurements. Each returns its figures and writes its notes; adding a
// measurement is one function.

type Figures = Record<string, unknown>;

interface Context {
  datagramBytes: number;
  volumeBytes: number;
  daemons: Daemons | undefined;
  notes: Record<string, string>;
  details: Record<string, unknown>;
}

async function daemonsOf(ctx: Context): Promise<Daemons> {
  ctx.daemons ??= await startDaemons();
  return ctx.daemons;
}

async function measureIdle(ctx: Context): Promise<Figures> {
  const { a, b, c } = await daemonsOf(ctx);
  await sleep(1500);
  const kb = {
    a: await rssKb(a.pid),
    b: await rssKb(b.pid),
    c: await rssKb(c.pid),
  };
  ctx.details.idle_rss_kb = kb;
  const values = Object.values(kb).filter((v): v is number => v !== null);
  if (values.length === 0) {
    ctx.notes.idle_rss_mb = "VmRSS is not readable here (/proc/PID/status is Linux only)";
    return { idle_rss_mb: null };
  }
  ctx.notes.idle_rss_mb =
    "VmRSS of each freshly started daemon (no peers, 1.5 s after start); the largest of A, B, C";
  return { idle_rss_mb: round(Math.max(...values) / 1024, 1) };
}

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

async function measureAead(ctx: Context): Promise<Figures> {
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

async function measureRawUdp(ctx: Context): Promise<Figures> {
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
async function measureSweep(ctx: Context): Promise<Figures> {
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
async function measureStream(ctx: Context): Promise<Figures> {
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

async function measureRawRtt(): Promise<{ p50: number | null; p99: number | null }> {
  const echo = await spawnUdpChild("echo");
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  cleanups.push(() => Promise.resolve(closeQuietly(conn)));
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: echo.port };
  const payload = randomBytes(PING_PAYLOAD);
  const buffer = new Uint8Array(65_536);
  const rtts: number[] = [];
  for (let i = 0; i < PING_WARMUP + PING_PROBES; i++) {
    const t0 = performance.now();
    await conn.send(payload, to);
    await conn.receive(buffer);
    if (i >= PING_WARMUP) rtts.push(performance.now() - t0);
  }
  closeQuietly(conn);
  await echo.stop();
  return { p50: percentile(rtts, 0.5), p99: percentile(rtts, 0.99) };
}

/** Daemon A pings B's echo service through `POST /v1/ping` (RTTs timed inside A). */
async function pingThroughApi(ctx: Context): Promise<{ rtts: number[]; lost: number }> {
  const { a } = await daemonsOf(ctx);
  return pingVia(await Api.of(a), NAME_B);
}

/** PING_PROBES probes to `peer`'s echo service through a daemon's `POST /v1/ping`. */
async function pingVia(api: Api, peer: string): Promise<{ rtts: number[]; lost: number }> {
  const ping = async (count: number) => {
    const r = await api.call("POST", "/v1/ping", {
      peer,
      count,
      interval_ms: 0,
      timeout_ms: 5_000,
    });
    if (r.status !== 200) throw new Error(`POST /v1/ping answered ${JSON.stringify(r.json)}`);
    return r.json.data.rtt_ms as (number | null)[];
  };
  await ping(PING_WARMUP);
  const rtts: number[] = [];
  let lost = 0;
  for (let done = 0; done < PING_PROBES; done += PING_API_MAX_COUNT) {
    for (const r of await ping(Math.min(PING_API_MAX_COUNT, PING_PROBES - done))) {
      if (r === null) lost++;
      else rtts.push(r);
    }
  }
  return { rtts, lost };
}

/**
 * The same probes from a SessionManager in this process (fixture 2, trusted
 * by B): what the tunnel costs without daemon A's API and scheduling.
 */
async function pingInProcess(ctx: Context): Promise<{ rtts: number[]; lost: number }> {
  const { b } = await daemonsOf(ctx);
  const peer = new BenchPeer(decodeIdentityFile(JSON.stringify(fixture(2))));
  cleanups.push(() => peer.close());
  const bKey = Uint8Array.fromHex(b.identity!.publicKey);
  await peer.handshake(endpointOf(b.listen), bKey, 10_000);
  let waiting: ((payload: Uint8Array) => void) | undefined;
  peer.onPacket = (packet) => {
    if (packet.srcPort === PORT_ECHO) waiting?.(packet.payload);
  };
  const rtts: number[] = [];
  let lost = 0;
  const payload = randomBytes(PING_PAYLOAD);
  const view = new DataView(payload.buffer);
  for (let i = 0; i < PING_WARMUP + PING_PROBES; i++) {
    view.setUint32(0, i);
    const { promise, resolve } = Promise.withResolvers<boolean>();
    waiting = (p) => {
      if (p.length === PING_PAYLOAD && new DataView(p.buffer, p.byteOffset).getUint32(0) === i) {
        resolve(true);
      }
    };
    const timer = setTimeout(() => resolve(false), 1000);
    const t0 = performance.now();
    await peer.sessions.send(b.identity!.publicKey, {
      kind: "datagram",
      srcPort: 5000,
      dstPort: PORT_ECHO,
      payload,
    });
    const ok = await promise;
    const rtt = performance.now() - t0;
    clearTimeout(timer);
    if (!ok) lost++;
    else if (i >= PING_WARMUP) rtts.push(rtt);
  }
  waiting = undefined;
  await peer.close();
  return { rtts, lost };
}

async function measurePing(ctx: Context): Promise<Figures> {
  progress(`ping: raw UDP echo child, ${PING_PROBES} probes of ${PING_PAYLOAD} bytes`);
  const raw = await measureRawRtt();
  let api: { rtts: number[]; lost: number } | undefined;
  progress(`ping: daemon A -> B's echo through POST /v1/ping, ${PING_PROBES} probes`);
  try {
    api = await pingThroughApi(ctx);
  } catch (e) {
    ctx.notes.ping_api_error = (e as Error).message;
  }
  progress(`ping: in-process peer -> B's echo, ${PING_PROBES} probes`);
  const local = await pingInProcess(ctx);
  const ms = (v: number | null) => v === null ? null : round(v, 3);
  ctx.details.ping = {
    probes: PING_PROBES,
    payload_bytes: PING_PAYLOAD,
    lost: api?.lost ?? local.lost,
    raw_udp_rtt_ms_p99: ms(raw.p99),
    in_process_peer_rtt_ms_p50: ms(percentile(local.rtts, 0.5)),
    in_process_peer_rtt_ms_p99: ms(percentile(local.rtts, 0.99)),
    in_process_peer_lost: local.lost,
  };
  const rawNote = `raw_udp_rtt_ms_p50: the same ${PING_PAYLOAD}-byte probes, one at a time, ` +
    `from this process to a plain Deno UDP echo child process`;
  ctx.notes.ping_rtt_ms_p50 =
    (api !== undefined
      ? `POST /v1/ping on A's control API to B (${PING_PROBES} probes of ${PING_PAYLOAD} bytes, ` +
        `interval 0, after ${PING_WARMUP} warm-up probes): each RTT is timed inside daemon A ` +
        `from its send to B's echo (port ${PORT_ECHO}) arriving back, so it covers both ` +
        `daemons' encryption, decryption and scheduling. details.ping.in_process_peer_* is ` +
        `the same probe from a SessionManager in the bench process (fixture 2, trusted by B). `
      : `a SessionManager in the bench process (fixture 2, ` +
        `trusted by B through its seeded trust.json) sends probes to B's echo service and ` +
        `times each echo (POST /v1/ping failed: notes.ping_api_error). `) + rawNote;
  const rtts = api?.rtts ?? local.rtts;
  return {
    ping_rtt_ms_p50: ms(percentile(rtts, 0.5)),
    ping_rtt_ms_p99: ms(percentile(rtts, 0.99)),
    raw_udp_rtt_ms_p50: ms(raw.p50),
  };
}

/** One timed burst of sends on A's API (the CLI's socket, or TCP through the gate). */
async function timedSends(
  a: TestNode,
  b: TestNode,
  api: Api,
  label: string,
  count: number,
): Promise<{ sent: number; ms: number; latencies: number[]; detail: Json }> {
  let sent = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  const latencies: number[] = [];
  const cpuA = await cpuMs(a.pid);
  const cpuB = await cpuMs(b.pid);
  const cpuSelf = await cpuMs("self");
  const deadline = performance.now() + MESSAGE_SECONDS * 1000;
  let issued = 0;
  const t0 = performance.now();
  await pool(count, messageInflight, async (i) => {
    if (performance.now() > deadline) return;
    issued++;
    const s0 = performance.now();
    const r = await api.call("POST", "/v1/send", {
      peer: NAME_B,
      type: "json",
      data: JSON.stringify({ n: i, task: "bench", at: Date.now() }),
      id: `bench-${label}-${i}`,
    }).catch((e) => ({ status: 0, json: { code: (e as Error).name } }));
    // "duplicate": stored once already, by an earlier copy of this same request's datagrams.
    const receipt = r.json.data?.receipt?.status;
    if (r.status === 200 && (receipt === "stored" || receipt === "duplicate")) {
      sent++;
      latencies.push(performance.now() - s0);
    } else {
      failed++;
      const code = String(r.json?.code ?? receipt ?? r.status);
      failures[code] = (failures[code] ?? 0) + 1;
    }
  });
  const ms = performance.now() - t0;
  const cpuA2 = await cpuMs(a.pid);
  const cpuB2 = await cpuMs(b.pid);
  const cpuSelf2 = await cpuMs("self");
  const pct = (x: number | null, y: number | null) =>
    x === null || y === null ? null : round((y - x) / ms * 100, 0);
  return {
    sent,
    ms,
    latencies,
    detail: {
      issued,
      stored: sent,
      failed,
      failures,
      seconds: round(ms / 1000),
      inflight: messageInflight,
      msg_latency_ms_p50: round(percentile(latencies, 0.5) ?? NaN),
      daemon_a_cpu_percent: pct(cpuA, cpuA2),
      daemon_b_cpu_percent: pct(cpuB, cpuB2),
      client_cpu_percent: pct(cpuSelf, cpuSelf2),
    },
  };
}

async function measureMessages(ctx: Context): Promise<Figures> {
  const { a, b } = await daemonsOf(ctx);
  const api = await Api.of(a);
  progress("messages: warm-up (session A -> B, 50 messages)");
  const warm = await timedSends(a, b, api, "warm-up", 50);
  if (warm.sent === 0) {
    ctx.notes.msgs_per_s = `no message went through in the warm-up: ` +
      JSON.stringify(warm.detail.failures);
    return { msgs_per_s: null, msg_latency_ms_p99: null, msgs_per_s_tcp: null };
  }
  progress(
    `messages: up to ${MESSAGE_COUNT} in ${MESSAGE_SECONDS} s, ${messageInflight} in flight`,
  );
  const main = await timedSends(a, b, api, "socket", MESSAGE_COUNT);
  progress(`messages: the same over TCP, through the connection gate`);
  const tcp = await timedSends(a, b, await Api.of(a, "tcp"), "tcp", MESSAGE_COUNT);
  ctx.details.messages = { ...main.detail, tcp: tcp.detail };
  ctx.notes.msgs_per_s = `POST /v1/send on A's control API over its Unix socket, as the CLI ` +
    `calls it (bearer token from control.json), ` +
    `small JSON messages to B (mutual trust seeded in both trust.json), ${messageInflight} ` +
    `requests in flight, each counted when its answer carries B's receipt ("stored", or ` +
    `"duplicate": stored once already); ` +
    `up to ${MESSAGE_COUNT} messages or ${MESSAGE_SECONDS} s, after a 50-message warm-up`;
  ctx.notes.msgs_per_s_tcp = "the same over A's TCP port, which relays each connection " +
    "through the connection gate (src/control/conn_gate.ts) to that socket, right after";
  return {
    msgs_per_s: round(main.sent / (main.ms / 1000), 0),
    msg_latency_ms_p99: round(percentile(main.latencies, 0.99) ?? NaN),
    msgs_per_s_tcp: round(tcp.sent / (tcp.ms / 1000), 0),
  };
}

/** Tasks in the task round-trip figure, and how many are in flight at once. */
const TASK_COUNT = 200;
const TASK_INFLIGHT = 8;

/**
 * Durable tasks A -> B, each a full round trip: A submits (answered once B
 * stored it), a worker loop on B's API takes each submitted task and posts
 * its result, and A's `task wait` returns it. Tasks per second over the
 * whole run, and the p50/p99 of one round trip.
 */
async function measureTasks(ctx: Context): Promise<Figures> {
  const { a, b } = await daemonsOf(ctx);
  const apiA = await Api.of(a);
  const apiB = await Api.of(b);
  const run = `${Date.now()}`;
  let stop = false;
  const worker = (async () => {
    while (!stop) {
      const r = await apiB.call("GET", "/v1/tasks?state=submitted&wait=200");
      for (const t of r.json.data?.tasks ?? []) {
        await apiB.call("POST", "/v1/tasks/result", { id: t.id, data: "ok" });
      }
    }
  })();
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let next = 0;
  const t0 = performance.now();
  progress(`tasks: ${TASK_COUNT} round trips (submit -> result -> wait), ${TASK_INFLIGHT} at once`);
  await Promise.all(Array.from({ length: TASK_INFLIGHT }, async () => {
    while (next < TASK_COUNT) {
      const id = `bench-${run}-${next++}`;
      const s0 = performance.now();
      const sub = await apiA.call("POST", "/v1/tasks/submit", { peer: NAME_B, data: "job", id });
      const done = sub.status === 200
        ? await apiA.call("GET", `/v1/tasks/wait?id=${id}&timeout_ms=30000`)
        : sub;
      if (done.status === 200 && done.json.data?.state === "done") {
        latencies.push(performance.now() - s0);
      } else {
        const code = String(done.json?.code ?? done.status);
        failures[code] = (failures[code] ?? 0) + 1;
      }
    }
  }));
  const ms = performance.now() - t0;
  stop = true;
  await worker;
  ctx.details.tasks = { completed: latencies.length, failures, seconds: round(ms / 1000) };
  ctx.notes.tasks_per_s = `task submit on A's API, a loop on B's API posting each task's ` +
    `result as it shows in GET /v1/tasks?state=submitted, and task wait on A until done; ` +
    `${TASK_COUNT} tasks, ${TASK_INFLIGHT} in flight; every change fsynced on both sides`;
  return {
    tasks_per_s: round(latencies.length / (ms / 1000), 0),
    task_round_trip_ms_p50: round(percentile(latencies, 0.5) ?? NaN),
    task_round_trip_ms_p99: round(percentile(latencies, 0.99) ?? NaN),
  };
}

/** Records stored for the rendezvous memory figure. */
const RENDEZVOUS_RECORDS = 20_000;
/** Time spent on each rendezvous rate figure (ms). */
const RENDEZVOUS_SECONDS_MS = 2000;

/**
 * The rendezvous role in process (no sockets): lookups per second through
 * the request handler over a table of real signed records, record checks
 * per second (what each publish costs), and memory per stored record.
 */
async function measureRendezvous(ctx: Context): Promise<Figures> {
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

async function loadBenchIdentities(): Promise<Identity[] | string> {
  let files: unknown[];
  try {
    files = JSON.parse(await Deno.readTextFile(BENCH_IDENTITIES));
  } catch (e) {
    return `cannot read ${BENCH_IDENTITIES.pathname}: ${(e as Error).message}`;
  }
  if (!Array.isArray(files) || files.length < MIN_BENCH_IDENTITIES) {
    return `${BENCH_IDENTITIES.pathname} holds ${
      Array.isArray(files) ? files.length : 0
    } identities; at least ${MIN_BENCH_IDENTITIES} are needed`;
  }
  return files.map((f) => decodeIdentityFile(JSON.stringify(f)));
}

/** A daemon's memory, sessions and threads at one moment. */
interface Memory {
  after_ms: number;
  rss_kb: number | null;
  threads: number | null;
  sessions: number;
}

async function memoryOf(node: TestNode, api: Api, afterMs: number): Promise<Memory> {
  const info = (await api.call("GET", "/v1/info")).json.data;
  return {
    after_ms: afterMs,
    rss_kb: await rssKb(node.pid),
    threads: await threadCount(node.pid),
    sessions: info.sessions as number,
  };
}

/** Readings at each of RSS_SETTLE_MS after now. */
async function settledMemory(node: TestNode, api: Api): Promise<Memory[]> {
  const out: Memory[] = [];
  let waited = 0;
  for (const at of RSS_SETTLE_MS) {
    await sleep(at - waited);
    waited = at;
    out.push(await memoryOf(node, api, at));
    progress(`handshakes: memory ${JSON.stringify(out.at(-1))}`);
  }
  return out;
}

/** A distinct loopback source address per initiator: 127.0.1.2, 127.0.1.3, ... */
function sourceAddress(i: number): string {
  return `127.0.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`;
}

async function measureHandshakes(ctx: Context): Promise<Figures> {
  const ids = await loadBenchIdentities();
  if (typeof ids === "string") {
    const why = `${ids}; run \`deno run -A scripts/make_bench_identities.ts\` once`;
    ctx.notes.handshakes_per_s = why;
    ctx.notes.rss_per_session_kb = why;
    return { handshakes_per_s: null, rss_per_session_kb: null };
  }
  const { c } = await daemonsOf(ctx);
  const cApi = await Api.of(c);
  const cKey = Uint8Array.fromHex(c.identity!.publicKey);
  const to = endpointOf(c.listen);
  progress(`handshakes: binding ${ids.length} initiators to distinct 127.0.x.y addresses`);
  let distinctSources = true;
  const peers: BenchPeer[] = [];
  for (const [i, id] of ids.entries()) {
    let peer: BenchPeer;
    try {
      peer = new BenchPeer(id, distinctSources ? sourceAddress(i) : "127.0.0.1");
    } catch {
      // Not Linux (only 127.0.0.1 is loopback): one source, so the per-source limit binds.
      distinctSources = false;
      peer = new BenchPeer(id, "127.0.0.1");
    }
    peers.push(peer);
    cleanups.push(() => peer.close());
  }

  const run = async (label: string, group: BenchPeer[], rounds: number) => {
    const latencies: number[] = [];
    const errors: Record<string, number> = {};
    const cpu0 = await cpuMs(c.pid);
    const self0 = await cpuMs("self");
    const t0 = performance.now();
    await pool(group.length * rounds, HANDSHAKE_CONCURRENCY, async (j) => {
      const peer = group[j % group.length]!;
      peer.renew();
      const h0 = performance.now();
      try {
        await peer.handshake(to, cKey, 20_000);
        latencies.push(performance.now() - h0);
      } catch (e) {
        const m = (e as Error).message.slice(0, 60);
        errors[m] = (errors[m] ?? 0) + 1;
      }
    });
    const ms = performance.now() - t0;
    const cpu1 = await cpuMs(c.pid);
    const self1 = await cpuMs("self");
    const done = latencies.length;
    const detail = {
      handshakes: done,
      failed: group.length * rounds - done,
      errors,
      seconds: round(ms / 1000),
      per_s: round(done / (ms / 1000), 0),
      latency_ms_p50: round(percentile(latencies, 0.5) ?? NaN),
      latency_ms_p99: round(percentile(latencies, 0.99) ?? NaN),
      daemon_cpu_ms_per_handshake: cpu0 === null || cpu1 === null || done === 0
        ? null
        : round((cpu1 - cpu0) / done, 2),
      daemon_cpu_percent: cpu0 === null || cpu1 === null
        ? null
        : round((cpu1 - cpu0) / ms * 100, 0),
      initiators_cpu_percent: self0 === null || self1 === null
        ? null
        : round((self1 - self0) / ms * 100, 0),
    };
    progress(`handshakes (${label}): ${JSON.stringify(detail)}`);
    return detail;
  };

  // Memory first: every identity holds one session with C, made in two
  // halves so that the growth of the second half (after the one-time costs:
  // runtime threads, heap and allocator growth, compiled code) shows apart.
  await sleep(500);
  const idle = await memoryOf(c, cApi, 0);
  progress(`handshakes: first contact, ${peers.length} distinct identities in two halves`);
  const half = Math.floor(peers.length / 2);
  const firstHalf = await run("first contact, first half", peers.slice(0, half), 1);
  const mid = await settledMemory(c, cApi);
  const secondHalf = await run("first contact, second half", peers.slice(half), 1);
  const end = await settledMemory(c, cApi);
  const last = end.at(-1)!;
  const midLast = mid.at(-1)!;
  const perSession = (a: Memory, b: Memory) =>
    a.rss_kb === null || b.rss_kb === null || b.sessions <= a.sessions
      ? null
      : round((b.rss_kb - a.rss_kb) / (b.sessions - a.sessions), 1);
  const rssPerSession = perSession(idle, last);
  ctx.details.rss_per_session = {
    idle,
    after_first_half: mid,
    after_second_half: end,
    total_growth_per_session_kb: rssPerSession,
    second_half_growth_per_session_kb: perSession(midLast, last),
  };
  ctx.notes.rss_per_session_kb = `VmRSS growth of daemon C from idle to ${last.sessions} live ` +
    `sessions, one per distinct identity (${peers.length} from ` +
    `tests/fixtures/bench_identities.json, real difficulty), divided by the sessions; read ` +
    `${RSS_SETTLE_MS.at(-1)! / 1000} s after the last handshake, when the runtime's blocking ` +
    `threads (WebCrypto runs on them) have idled out. It includes what the handshakes left ` +
    `behind (allocator arenas, heap capacity; no GC can be forced in the daemon); ` +
    `details.rss_per_session.second_half_growth_per_session_kb is the growth of the second ` +
    `half alone, after those one-time costs`;

  progress(`handshakes: ${HANDSHAKE_ROUNDS} more rounds of ${peers.length}`);
  const steady = await run("steady", peers, HANDSHAKE_ROUNDS);
  // What C refused, by reason: the why behind any failed handshake above.
  const info = (await cApi.call("GET", "/v1/info")).json as { data?: { drops?: Json } };
  const drops = Object.fromEntries(
    Object.entries((info.data?.drops ?? {}) as Record<string, number>).filter(([, n]) => n > 0),
  );
  ctx.details.handshakes = {
    first_contact: [firstHalf, secondHalf],
    steady,
    concurrency: HANDSHAKE_CONCURRENCY,
    daemon_drops: drops,
  };
  ctx.details.handshake_limits_profile = {
    per_source_ip: HANDSHAKE_RATE_PER_SOURCE,
    per_key: HANDSHAKE_RATE_PER_KEY,
    cookie_threshold_half_open: COOKIE_LOAD_THRESHOLD,
    daemon_config: "defaults (no config.json knobs changed)",
    distinct_source_ips: distinctSources ? peers.length : 1,
  };
  ctx.notes.handshakes_per_s = `complete handshakes (message 3 processed and answered by the ` +
    `responder) per second at daemon C, from ${peers.length} in-process initiators with ` +
    `distinct identities, ${HANDSHAKE_CONCURRENCY} handshakes in flight, ` +
    `${HANDSHAKE_ROUNDS} rounds (each a fresh handshake replacing the previous session). ` +
    `Limits profile: the daemon's defaults, unchanged — ${HANDSHAKE_RATE_PER_SOURCE.burst} message 1 per source IP at once then ${HANDSHAKE_RATE_PER_SOURCE.perSecond}/s, ` +
    `${HANDSHAKE_RATE_PER_KEY.burst} completed per key then ${HANDSHAKE_RATE_PER_KEY.perSecond}/s, ` +
    `cookies above ${COOKIE_LOAD_THRESHOLD} half-open. ` +
    (distinctSources
      ? `Each initiator binds its own source address in 127/8 (127.0.1.2, ...), so no source ` +
        `exceeds its burst and the per-source limit never throttles; the per-key limit is ` +
        `not reached either (${1 + HANDSHAKE_ROUNDS} handshakes per key). `
      : `Only 127.0.0.1 could be bound, so the per-source limit throttles this figure. `) +
    `The initiators share this machine's cores with the daemon (see details.handshakes)`;
  return {
    handshakes_per_s: steady.per_s,
    rss_per_session_kb: rssPerSession,
  };
}

// ---------------------------------------------------------------------------
// Main

async function machine(): Promise<Record<string, unknown>> {
  let cpu: string | null = null;
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? null;
  } catch {
    // Not Linux.
  }
  let load: number[] | null = null;
  try {
    load = Deno.loadavg();
  } catch {
    // Not available.
  }
  return {
    cores: navigator.hardwareConcurrency,
    cpu,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    loadavg_at_start: load,
  };
}

function met(f: Figures): Record<string, boolean | null> {
  const num = (k: string) => typeof f[k] === "number" ? f[k] as number : null;
  const check = (v: number | null, ok: (v: number) => boolean) => v === null ? null : ok(v);
  const raw = num("raw_udp_rtt_ms_p50");
  return {
    stream_mbps: check(num("stream_mbps"), (v) => v >= TARGETS.stream_mbps.min),
    ping_rtt_ms_p50: raw === null ? null : check(
      num("ping_rtt_ms_p50"),
      (v) => v <= TARGETS.ping_rtt_ms_p50.max_times_raw_udp_rtt_ms_p50 * raw,
    ),
    msgs_per_s: check(num("msgs_per_s"), (v) => v >= TARGETS.msgs_per_s.min),
    handshakes_per_s: check(num("handshakes_per_s"), (v) => v >= TARGETS.handshakes_per_s.min),
    idle_rss_mb: check(num("idle_rss_mb"), (v) => v <= TARGETS.idle_rss_mb.max),
    rss_per_session_kb: check(
      num("rss_per_session_kb"),
      (v) => v <= TARGETS.rss_per_session_kb.max,
    ),
  };
}

// ---------------------------------------------------------------------------
// Relay

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
async function measureRelay(ctx: Context): Promise<Figures> {
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

// ---------------------------------------------------------------------------
// HTTP through `pilot forward` / `pilot expose`, beside the same server on loopback

const HTTP_WARMUP = 50;
const HTTP_SEQUENTIAL = 500;
const HTTP_CONCURRENT = 32;
const HTTP_TOTAL = 2000;
const HTTP_NEW_CONNECTIONS = 100;

interface HttpRun {
  p50: number | null;
  p99: number | null;
  rps: number;
  newConnectionP50: number | null;
}

/** One GET of `url`, its body read; throws unless it answers 200. */
async function httpGet(url: string, client: Deno.HttpClient): Promise<void> {
  const res = await fetch(url, { client });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
}

/** Latencies of sequential GETs on kept-alive connections, rps with many at once, and new-connection latency. */
async function httpRun(url: string): Promise<HttpRun> {
  const u = new URL(url);
  // Straight to the port, never through an HTTP proxy from the environment.
  const direct = { transport: "tcp" as const, hostname: u.hostname, port: Number(u.port) };
  const client = Deno.createHttpClient({ proxy: direct });
  const fresh = Deno.createHttpClient({ proxy: direct, poolMaxIdlePerHost: 0 });
  try {
    for (let i = 0; i < HTTP_WARMUP; i++) await httpGet(url, client);
    const latencies: number[] = [];
    for (let i = 0; i < HTTP_SEQUENTIAL; i++) {
      const t = performance.now();
      await httpGet(url, client);
      latencies.push(performance.now() - t);
    }
    const t0 = performance.now();
    await pool(HTTP_TOTAL, HTTP_CONCURRENT, () => httpGet(url, client));
    const rps = HTTP_TOTAL / ((performance.now() - t0) / 1000);
    const opened: number[] = [];
    for (let i = 0; i < HTTP_NEW_CONNECTIONS; i++) {
      const t = performance.now();
      await httpGet(url, fresh);
      opened.push(performance.now() - t);
    }
    return {
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      rps,
      newConnectionP50: percentile(opened, 0.5),
    };
  } finally {
    client.close();
    fresh.close();
  }
}

async function measureForward(ctx: Context): Promise<Figures> {
  const { a, b } = await daemonsOf(ctx);
  const card = JSON.stringify({ name: "bench-agent", url: "http://127.0.0.1/a2a", skills: [] });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(card, { headers: { "content-type": "application/json" } }),
  );
  cleanups.push(() => server.shutdown());
  const target = server.addr.port;
  const exposed = await (await Api.of(b)).call("POST", "/v1/expose", {
    target: String(target),
    vport: 80,
  });
  if (exposed.status !== 200) throw new Error(`expose answered ${JSON.stringify(exposed.json)}`);
  const forwarded = await (await Api.of(a)).call("POST", "/v1/forward", { peer: NAME_B });
  if (forwarded.status !== 200) {
    throw new Error(`forward answered ${JSON.stringify(forwarded.json)}`);
  }
  const listen = forwarded.json.data.forward.listen;
  const path = "/.well-known/agent.json";
  progress(`forward: HTTP GETs to 127.0.0.1:${target} directly, then through ${listen}`);
  const direct = await httpRun(`http://127.0.0.1:${target}${path}`);
  const through = await httpRun(`http://${listen}${path}`);
  const view = (r: HttpRun) => ({
    rps: round(r.rps, 0),
    p50_ms: r.p50 === null ? null : round(r.p50, 3),
    p99_ms: r.p99 === null ? null : round(r.p99, 3),
    new_connection_p50_ms: r.newConnectionP50 === null ? null : round(r.newConnectionP50, 3),
  });
  ctx.details.forward = { direct: view(direct), forward: view(through) };
  ctx.notes.forward_http_rps = `B exposes a Deno.serve HTTP server (a ${card.length}-byte JSON ` +
    `agent card) on virtual port 80, A forwards ${listen} to it: GETs through A's forward, ` +
    `one tunnel stream per TCP connection, against the same server on loopback (direct_*). ` +
    `p50: ${HTTP_SEQUENTIAL} sequential GETs on a kept-alive connection; rps: ${HTTP_TOTAL} ` +
    `GETs, ${HTTP_CONCURRENT} at once over pooled connections; details.forward also has a new ` +
    `connection (and tunnel) per GET`;
  return {
    forward_http_rps: round(through.rps, 0),
    forward_http_p50_ms: through.p50 === null ? null : round(through.p50, 3),
    direct_http_rps: round(direct.rps, 0),
    direct_http_p50_ms: direct.p50 === null ? null : round(direct.p50, 3),
  };
}

const RUNNERS: Record<Measurement, (ctx: Context) => Promise<Figures>> = {
  idle: measureIdle,
  aead: measureAead,
  raw_udp: measureRawUdp,
  sweep: measureSweep,
  stream: measureStream,
  ping: measurePing,
  messages: measureMessages,
  tasks: measureTasks,
  forward: measureForward,
  handshakes: measureHandshakes,
  rendezvous: measureRendezvous,
  relay: measureRelay,
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "datagram-bytes": { type: "string", default: String(LOOPBACK_DATAGRAM) },
      "volume-mib": { type: "string", default: "64" },
      only: { type: "string", default: MEASUREMENTS.join(",") },
      profile: { type: "string" },
      "msg-inflight": { type: "string", default: String(MESSAGE_INFLIGHT) },
    },
  });
  messageInflight = Number(values["msg-inflight"]);
  if (!Number.isInteger(messageInflight) || messageInflight < 1) {
    throw new RangeError(`Invalid --msg-inflight ${values["msg-inflight"]}`);
  }
  if (values.profile !== undefined) {
    profileDir = values.profile;
    await Deno.mkdir(profileDir, { recursive: true });
  }
  const datagramBytes = Number(values["datagram-bytes"]);
  if (!Number.isInteger(datagramBytes) || datagramBytes < 64 || datagramBytes > 65_507) {
    throw new RangeError(
      `Invalid --datagram-bytes ${values["datagram-bytes"]}: expected 64 to 65507`,
    );
  }
  const volumeMib = Number(values["volume-mib"]);
  if (!(volumeMib > 0)) throw new RangeError(`Invalid --volume-mib ${values["volume-mib"]}`);
  const only = values.only.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = only.find((s) => !(MEASUREMENTS as readonly string[]).includes(s));
  if (unknown !== undefined) {
    throw new RangeError(`Unknown measurement "${unknown}": expected ${MEASUREMENTS.join(", ")}`);
  }
  const ctx: Context = {
    datagramBytes,
    volumeBytes: volumeMib * MIB,
    daemons: undefined,
    notes: {},
    details: {},
  };
  const figures: Figures = {
    datagram_bytes: datagramBytes,
    stream_mbps: null,
    raw_udp_mbps: null,
    aead_mbps: null,
    aead_mbps_sequential: null,
    ping_rtt_ms_p50: null,
    ping_rtt_ms_p99: null,
    raw_udp_rtt_ms_p50: null,
    msgs_per_s: null,
    msg_latency_ms_p99: null,
    msgs_per_s_tcp: null,
    tasks_per_s: null,
    task_round_trip_ms_p50: null,
    task_round_trip_ms_p99: null,
    forward_http_rps: null,
    forward_http_p50_ms: null,
    direct_http_rps: null,
    direct_http_p50_ms: null,
    handshakes_per_s: null,
    rendezvous_lookups_per_s: null,
    rendezvous_verifies_per_s: null,
    rendezvous_bytes_per_record: null,
    relay_stream_mbps: null,
    relay_ping_rtt_ms_p50: null,
    relay_ping_rtt_ms_p99: null,
    relay_bytes_per_pair: null,
    idle_rss_mb: null,
    rss_per_session_kb: null,
  };
  const machineInfo = await machine();
  // Idle memory first: before anything else has touched the daemons.
  for (const m of MEASUREMENTS) {
    if (!only.includes(m)) continue;
    try {
      Object.assign(figures, await RUNNERS[m](ctx));
    } catch (e) {
      progress(`${m} failed: ${(e as Error).stack ?? e}`);
      ctx.notes[`${m}_error`] = (e as Error).message;
    }
  }
  ctx.notes.units = "mbps figures are megabytes (10^6 bytes) per second, as the Go " +
    "reference's 89 MB/s; RSS in MiB (idle) and KiB (per session); times in ms";
  const out = {
    ...figures,
    targets: TARGETS,
    met: met(figures),
    machine: machineInfo,
    details: ctx.details,
    notes: ctx.notes,
  };
  console.log(JSON.stringify(out, null, 2));
}

if (import.meta.main) {
  const onSignal = () => {
    progress("interrupted: cleaning up");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await main();
  } finally {
    progress("cleaning up");
    await cleanup();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
