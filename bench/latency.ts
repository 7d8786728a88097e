/**
 * Latency figures: raw UDP round trips, and pings through the daemons (over the
 * API, and from an in-process peer).
 *
 * @module
 */

import { PORT_ECHO } from "../src/constants.ts";
import { decodeIdentityFile } from "../src/identity/identity.ts";
import { AeadKey, nonceFromCounter, randomBytes } from "../src/session/crypto.ts";
import { DATA_HEADER_SIZE } from "../src/wire/frames.ts";
import { benchKey, openDatagram, sealDatagram } from "./_udp_child.ts";
import { endpointOf, fixture } from "../tests/_daemon_harness.ts";
import { BenchPeer } from "./_peer.ts";
import {
  Api,
  cleanups,
  closeQuietly,
  type Context,
  daemonsOf,
  type Figures,
  NAME_B,
  percentile,
  progress,
  round,
  spawnUdpChild,
} from "./_common.ts";
import type { Targets } from "./targets.ts";

/** Targets of the latency figures. */
export const LATENCY_TARGETS: Targets = {
  // The floor WebCrypto sets: raw UDP round trip + 4 single AES-GCM calls.
  ping_rtt_ms_p50: { max_times: 1.5, of: "ping_floor_ms" },
};

/** Bytes of each ping probe. */
export const PING_PAYLOAD = 8;

const PING_API_MAX_COUNT = 1000;

/** Probes per ping figure. */
export const PING_PROBES = 2000;

const PING_WARMUP = 200;

/**
 * Round trips of PING_PAYLOAD-byte probes, one at a time, from this
 * process to a plain Deno UDP echo child: raw, or (`sealed`) with a
 * tunnel's four AES-GCM calls around them (this process seals each probe
 * and opens the answer, the child opens it and seals it back) and nothing
 * else of pilot's.
 */
async function measureEchoRtt(
  sealed: boolean,
): Promise<{ p50: number | null; p99: number | null }> {
  const echo = await spawnUdpChild(sealed ? "sealed-echo" : "echo");
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  cleanups.push(() => Promise.resolve(closeQuietly(conn)));
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: echo.port };
  const key = sealed ? await benchKey() : null;
  const payload = randomBytes(PING_PAYLOAD);
  const buffer = new Uint8Array(65_536);
  const rtts: number[] = [];
  for (let i = 0; i < PING_WARMUP + PING_PROBES; i++) {
    const t0 = performance.now();
    await conn.send(key === null ? payload : await sealDatagram(key, i, payload), to);
    const [answer] = await conn.receive(buffer);
    if (key !== null && await openDatagram(key, answer.slice()) === null) {
      throw new Error("The sealed echo's answer did not open");
    }
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
export async function pingVia(api: Api, peer: string): Promise<{ rtts: number[]; lost: number }> {
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

/** Round trips through the daemons, beside raw UDP. */
/** Single AES-GCM seals, one at a time, for the floor a ping cannot beat. */
const AEAD_CALLS = 2000;

/**
 * The median latency of one AES-GCM seal of a ping-sized packet, awaited
 * before the next (ms): WebCrypto's thread hop, which a ping pays four
 * times (seal and open at each end).
 */
async function aeadCallMsP50(): Promise<number | null> {
  const key = await AeadKey.create(randomBytes(32));
  const packet = new Uint8Array(DATA_HEADER_SIZE + 16 + PING_PAYLOAD);
  const ad = new Uint8Array(DATA_HEADER_SIZE);
  const times: number[] = [];
  for (let i = 0; i < AEAD_CALLS; i++) {
    const t0 = performance.now();
    await key.seal(nonceFromCounter(i), packet, ad);
    times.push(performance.now() - t0);
  }
  return percentile(times.slice(AEAD_CALLS / 10), 0.5);
}

export async function measurePing(ctx: Context): Promise<Figures> {
  progress(`ping: raw UDP echo child, ${PING_PROBES} probes of ${PING_PAYLOAD} bytes`);
  const raw = await measureEchoRtt(false);
  progress(`ping: ${AEAD_CALLS} single AES-GCM seals of a ping-sized packet, one at a time`);
  const aeadMs = await aeadCallMsP50();
  progress(`ping: the same probes through a sealed echo child, four AES-GCM calls each`);
  const sealedEcho = await measureEchoRtt(true);
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
    sealed_udp_rtt_ms_p99: ms(sealedEcho.p99),
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
  ctx.notes.ping_floor_ms = "raw_udp_rtt_ms_p50 + 4 × aead_call_ms_p50 (one AES-GCM seal " +
    `of a ${PING_PAYLOAD}-byte probe's packet, awaited alone, median of ${AEAD_CALLS}): ` +
    "a ping is sealed and opened once at each end, each a WebCrypto call";
  ctx.notes.sealed_udp_rtt_ms_p50 = `the raw UDP probes again, but sealed as a tunnel ` +
    `seals them: this process seals each probe with AES-256-GCM (AeadKey, a counter as ` +
    `associated data), the echo child (bench/_udp_child.ts sealed-echo) opens it and seals ` +
    `it back, this process opens the answer; four WebCrypto calls a round trip and no other ` +
    `pilot code. Unlike ping_floor_ms, each call here starts on a thread that was waiting ` +
    `for the datagram, as a ping's do: UDP and those four calls alone, what is left of ` +
    `ping_rtt_ms_p50 is pilot's own code`;
  const rtts = api?.rtts ?? local.rtts;
  return {
    ping_rtt_ms_p50: ms(percentile(rtts, 0.5)),
    ping_rtt_ms_p99: ms(percentile(rtts, 0.99)),
    raw_udp_rtt_ms_p50: ms(raw.p50),
    aead_call_ms_p50: ms(aeadMs),
    ping_floor_ms: raw.p50 === null || aeadMs === null ? null : ms(raw.p50 + 4 * aeadMs),
    sealed_udp_rtt_ms_p50: ms(sealedEcho.p50),
  };
}
