/**
 * Attacks by a trusted-but-hostile peer (fixture 2, which the victim's
 * trust.json trusts) over hand-made stream connections:
 *
 * - `pinned_segments`: out-of-order segments in about 60,000-byte datagrams,
 *   each carrying {@linkcode NEW_BYTES} new bytes past the previous one (a
 *   hole at offset 1 keeps everything out of order), on
 *   {@linkcode PINNED_CONNECTIONS} connections to the echo port; then
 *   keepalive probes until the deadline.
 * - `stalled_message_headers`: {@linkcode STALLED_CONNECTIONS} port-1001
 *   streams whose only bytes are a message header announcing 16 MiB; kept
 *   alive with probes while the friend sends.
 *
 * @module
 */
import { PORT_ECHO, PORT_MESSAGES } from "../../src/constants.ts";
import { decodeIdentityFile } from "../../src/identity/identity.ts";
import { SEG_ACK } from "../../src/wire/stream_segment.ts";
import { fixture } from "../../tests/_daemon_harness.ts";
import { rssMb } from "./_measure.ts";
import { type Attack, type AttackContext, paced, randomBytes, sleep } from "./_attack.ts";
import { FloodPeer } from "./_peer.ts";
import { type RawConn, RawStreams } from "./_raw_streams.ts";

/** Fixture identity of the hostile trusted peer; the harness seeds the victim's trust.json with it. */
export const HOSTILE_FIXTURE = 2;
/** Connections of `pinned_segments`. */
export const PINNED_CONNECTIONS = 12;
/** New bytes each pinned segment adds. */
export const NEW_BYTES = 117;
/** Largest data of one pinned segment. */
const SEGMENT_DATA = 59_900;
/** The harness stops adding segments once the victim grew this much (MB): the machine is shared. */
const SAFETY_GROWTH_MB = 1500;
/** Connections of `stalled_message_headers`. */
export const STALLED_CONNECTIONS = 8;
/** Declared size of each stalled message. */
const DECLARED = 16 * 1024 * 1024;
const PROBE_EVERY_MS = 1000;

/**
 * A port-1001 frame header (PROTOCOL.md §9.2: kind u8, body length u32,
 * big-endian), written out here so the harness does not depend on where the
 * codec lives while that module moves.
 */
function messageHeader(length: number): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = 1; // MESSAGE
  new DataView(out.buffer).setUint32(1, length);
  return out;
}

async function hostile(ctx: AttackContext): Promise<{ peer: FloodPeer; streams: RawStreams }> {
  const peer = new FloodPeer(decodeIdentityFile(JSON.stringify(fixture(HOSTILE_FIXTURE))));
  if (!(await peer.ensureSession(ctx.victim.endpoint, ctx.victim.publicKey, 5000))) {
    await peer.close();
    throw new Error("The hostile trusted peer got no session with the victim");
  }
  return { peer, streams: new RawStreams(peer, ctx.victim.publicKey) };
}

/** Keeps `conns` alive with a probe each per second until the deadline; returns probes sent. */
async function keepAlive(ctx: AttackContext, streams: RawStreams, conns: RawConn[]) {
  let sent = 0;
  while (performance.now() < ctx.deadline) {
    for (const c of conns) if (await streams.probe(c)) sent++;
    await sleep(Math.min(PROBE_EVERY_MS, Math.max(0, ctx.deadline - performance.now())));
  }
  return sent;
}

/** Out-of-order 60,000-byte segments that each carry a few new bytes. */
export const pinnedSegments: Attack = {
  name: "pinned_segments",
  async run(ctx) {
    const { peer, streams } = await hostile(ctx);
    try {
      const conns: RawConn[] = [];
      const refused: string[] = [];
      for (let i = 0; i < PINNED_CONNECTIONS && performance.now() < ctx.deadline; i++) {
        try {
          conns.push(await streams.open(PORT_ECHO, 50_000 + i));
        } catch (e) {
          refused.push((e as Error).message);
        }
      }
      if (conns.length === 0) {
        return { packets_sent: 0, notes: { attack_error: `no connection: ${refused[0]}` } };
      }
      const mss = conns[0]!.mss;
      const window = conns[0]!.window;
      const length = Math.max(1, Math.min(SEGMENT_DATA, mss, window - NEW_BYTES - 1));
      // Segment k covers [2 + k*NEW_BYTES, 2 + k*NEW_BYTES + length): within the window, past the hole at 1.
      const perConn = Math.max(1, Math.floor((window - 1 - length) / NEW_BYTES));
      const stream = randomBytes(2 + perConn * NEW_BYTES + length);
      const total = perConn * conns.length;
      const rss0 = (await rssMb(ctx.victim.pid)) ?? 0;
      let stoppedForSafety = false;
      let segments = 0;
      await paced(ctx.rate, ctx.deadline, async (i) => {
        if (i >= total || stoppedForSafety) return false;
        if (i % 200 === 0 && ((await rssMb(ctx.victim.pid)) ?? 0) > rss0 + SAFETY_GROWTH_MB) {
          stoppedForSafety = true;
          return false;
        }
        const c = conns[i % conns.length]!;
        const k = Math.floor(i / conns.length);
        const seq = 2 + k * NEW_BYTES;
        const ok = await streams.send(c, {
          flags: SEG_ACK,
          connId: c.connId,
          seq,
          ack: 1,
          window: 1 << 20,
          sack: [],
          data: stream.subarray(seq, seq + length),
        });
        if (ok) segments++;
        return ok;
      });
      const probes = await keepAlive(ctx, streams, conns);
      return {
        packets_sent: segments + probes,
        notes: {
          connections: conns.length,
          victim_mss: mss,
          victim_window: window,
          segment_data_bytes: length,
          new_bytes_per_segment: NEW_BYTES,
          segments_per_connection_planned: perConn,
          segments_sent: segments,
          keepalive_probes: probes,
          stopped_at_safety_growth_mb: stoppedForSafety ? SAFETY_GROWTH_MB : null,
          resets: conns.filter((c) => c.reset !== undefined).map((c) => c.reset),
          ...(refused.length === 0 ? {} : { open_refused: refused.slice(0, 3) }),
        },
      };
    } finally {
      await peer.close();
    }
  },
};

/** Port-1001 message headers announcing 16 MiB, and no body. */
export const stalledMessageHeaders: Attack = {
  name: "stalled_message_headers",
  async run(ctx) {
    const { peer, streams } = await hostile(ctx);
    try {
      const declared = DECLARED;
      const header = messageHeader(declared);
      const conns: RawConn[] = [];
      const refused: string[] = [];
      let sent = 0;
      for (let i = 0; i < STALLED_CONNECTIONS && performance.now() < ctx.deadline; i++) {
        try {
          const c = await streams.open(PORT_MESSAGES, 51_000 + i);
          conns.push(c);
          const ok = await streams.send(c, {
            flags: SEG_ACK,
            connId: c.connId,
            seq: 1,
            ack: 1,
            window: 1 << 20,
            sack: [],
            data: header,
          });
          if (ok) sent++;
        } catch (e) {
          refused.push((e as Error).message);
        }
      }
      const probes = await keepAlive(ctx, streams, conns);
      return {
        packets_sent: sent + probes,
        notes: {
          connections: conns.length,
          declared_bytes: declared,
          headers_sent: sent,
          keepalive_probes: probes,
          resets: conns.filter((c) => c.reset !== undefined).map((c) => c.reset),
          ...(refused.length === 0 ? {} : { open_refused: refused.slice(0, 3) }),
        },
      };
    } finally {
      await peer.close();
    }
  },
};
