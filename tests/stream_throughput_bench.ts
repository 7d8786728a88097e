/**
 * Micro-benchmark (not a test): pushes 64 MiB through two stream muxes
 * joined by a lossless in-memory link, on the real clock, and prints MB/s
 * for a few segment sizes. The stream layer alone, no crypto and no
 * sockets: it must stay far above what the encrypted path can carry. Each
 * size runs three times; the best and the median are printed (the machine
 * is shared, so the spread is wide).
 *
 *     deno run -A tests/stream_throughput_bench.ts [MiB]
 */

import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import { mssFor } from "../src/stream/mss.ts";
import { StreamMux, type StreamPacket } from "../src/stream/mux.ts";
import type { Connection } from "../src/stream/connection.ts";
import { patternBytes } from "./_sim_link.ts";

const MIB = 1024 * 1024;
const size = Number(Deno.args[0] ?? 64) * MIB;
const data = patternBytes(size, 42);

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function run(mss: number): Promise<{ mbps: number; segments: number }> {
  const now = () => performance.now();
  const toB: StreamPacket[] = [];
  const toA: StreamPacket[] = [];
  const limits = { sendBuffer: 4 * MIB, receiveBuffer: 4 * MIB, peerBuffer: 16 * MIB };
  const a = new StreamMux({ send: (p) => toB.push(p), now, mss, limits });
  const b = new StreamMux({ send: (p) => toA.push(p), now, mss, limits });
  let server: Connection | undefined;
  b.listen(9, (c) => server = c);
  let client: Connection | undefined;
  a.connect(9).then((c) => client = c);
  let done = false;
  let failure: unknown;
  let segments = 0;
  const pump = (async () => {
    while (!done) {
      while (toB.length > 0 || toA.length > 0) {
        for (const p of toB.splice(0)) b.receive(p);
        for (const p of toA.splice(0)) a.receive(p);
        segments++;
      }
      const t = now();
      if (a.nextDeadline() <= t) a.tick();
      if (b.nextDeadline() <= t) b.tick();
      await tick();
    }
  })();
  while (client === undefined || server === undefined) await tick();
  const start = now();
  const reader = (async () => {
    let at = 0;
    for (;;) {
      const chunk = await server!.read();
      if (chunk === null) break;
      const expected = Buffer.from(data.buffer, data.byteOffset + at, chunk.length);
      if (!Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length).equals(expected)) {
        throw new Error(`Corrupted stream at offset ${at}`);
      }
      at += chunk.length;
    }
    if (at !== size) throw new Error(`Received ${at} bytes, expected ${size}`);
  })();
  const writer = (async () => {
    const chunk = 256 * 1024;
    for (let o = 0; o < size; o += chunk) await client!.write(data.subarray(o, o + chunk));
    await client!.close();
  })();
  try {
    await Promise.all([reader, writer]);
  } catch (e) {
    failure = e;
  }
  const seconds = (now() - start) / 1000;
  done = true;
  await pump;
  a.close();
  b.close();
  if (failure !== undefined) throw failure;
  return { mbps: size / MIB / seconds, segments: client.stats().segmentsSent };
}

const ROUNDS = 3;
const sizes = [
  ["1400-byte datagrams", mssFor(1400)],
  ["16 KiB", 16_384],
  ["loopback 60 KB", mssFor(61_440)],
] as const;
for (const [label, mss] of sizes) {
  const runs: number[] = [];
  let segments = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const r = await run(mss);
    runs.push(r.mbps);
    segments = r.segments;
  }
  runs.sort((x, y) => x - y);
  const best = runs[runs.length - 1]!;
  const median = runs[Math.floor(runs.length / 2)]!;
  console.log(
    `${label.padEnd(20)} mss ${String(mss).padStart(6)}: best ${
      best.toFixed(1).padStart(7)
    } MiB/s ` +
      `(${(best * 8 * 1.048576).toFixed(0)} Mbit/s), median ${median.toFixed(1)} MiB/s, ` +
      `${segments} segments sent`,
  );
}
