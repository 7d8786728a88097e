/**
 * A deterministic simulated link between two stream muxes: a seeded PRNG
 * decides loss, duplication, reordering, corruption and jitter; a bottleneck
 * of fixed bandwidth with a drop-tail queue adds serialisation delay; a fake
 * clock jumps from event to event (no real sleeping). Between events the
 * simulation yields one macrotask so that readers and writers (promises)
 * run, which keeps it deterministic: same seed, same run.
 *
 * Corruption models the tunnel: in the real system the AEAD drops a
 * datagram with a flipped bit, so by default corrupted segments are counted
 * and dropped before delivery; `corruption: "deliver"` feeds them to the
 * mux instead (for robustness tests that do not check content).
 */

import { setImmediate } from "node:timers";
import { createHash } from "node:crypto";
import { StreamMux, type StreamPacket } from "../src/stream/mux.ts";
import type { StreamLimits, StreamTimers } from "../src/stream/options.ts";
import type { CongestionFactory } from "../src/stream/congestion.ts";
import type { Connection } from "../src/stream/connection.ts";
import type { ConnectionState } from "../src/stream/state.ts";
import { decodeSegment, type StreamSegment } from "../src/wire/stream_segment.ts";

/** Mulberry32: a tiny seeded PRNG returning floats in [0, 1). */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the link does to packets in one direction. */
export interface Impairments {
  /** Probability that a packet is lost. */
  loss: number;
  /** Probability that a packet is delivered twice. */
  duplicate: number;
  /** Probability that a packet is held back by up to `reorderMs`. */
  reorder: number;
  /** Largest extra delay of a reordered packet (ms). */
  reorderMs: number;
  /** Probability that a bit of the packet flips. */
  corrupt: number;
  /** One-way propagation delay (ms). */
  delayMs: number;
  /** Uniform random extra delay (ms). */
  jitterMs: number;
  /** Bottleneck bandwidth in bytes per ms; 0 means unlimited. */
  bytesPerMs: number;
  /** Bytes the bottleneck queues before it drops (drop-tail). */
  queueBytes: number;
}

const PERFECT: Impairments = {
  loss: 0,
  duplicate: 0,
  reorder: 0,
  reorderMs: 0,
  corrupt: 0,
  delayMs: 5,
  jitterMs: 0,
  bytesPerMs: 0,
  queueBytes: Infinity,
};

/** Which side sent a packet. */
export type Side = "a" | "b";

/** A packet on the simulated wire, as a test hook sees it. */
export interface WirePacket {
  /** Sender. */
  from: Side;
  /** The packet. */
  packet: StreamPacket;
  /** The segment it carries (decoded). */
  segment: StreamSegment;
  /** Simulated time of sending (ms). */
  at: number;
}

/** Options of a simulated link. */
export interface SimLinkOptions {
  /** PRNG seed. */
  seed?: number;
  /** MSS of both muxes. */
  mss?: number;
  /** In-flight cap of both muxes (bytes). */
  maxFlight?: number;
  /** Caps of both muxes. */
  limits?: Partial<StreamLimits>;
  /** Caps of mux b only (override `limits`). */
  limitsB?: Partial<StreamLimits>;
  /** Timers of both muxes. */
  timers?: Partial<StreamTimers>;
  /** Impairments in both directions. */
  link?: Partial<Impairments>;
  /** Impairments from a to b (override `link`). */
  aToB?: Partial<Impairments>;
  /** Impairments from b to a (override `link`). */
  bToA?: Partial<Impairments>;
  /** What happens to corrupted packets (default "drop", as the AEAD would). */
  corruption?: "drop" | "deliver";
  /** Test hook: return true to drop this packet (deterministic faults). */
  drop?: (p: WirePacket) => boolean;
  /** Congestion controllers of both muxes (default: NewReno). */
  congestion?: CongestionFactory;
  /** Test hook: a connection of `side` changed state (from `from` to `conn.state`). */
  onStateChange?: (side: Side, conn: Connection, from: ConnectionState) => void;
}

interface Event {
  at: number;
  order: number;
  to: StreamMux;
  packet: StreamPacket;
}

/** Counters of what the link did. */
export interface LinkCounters {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  queueDrops: number;
  hookDrops: number;
}

function yieldMacrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Two muxes ("a" and "b") joined by an impaired simulated link. */
export class SimLink {
  /** The fake clock (ms). */
  readonly clock = { now: 0 };
  /** One end. */
  readonly a: StreamMux;
  /** The other end. */
  readonly b: StreamMux;
  /** What the link did so far. */
  readonly counters: LinkCounters = {
    sent: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
    queueDrops: 0,
    hookDrops: 0,
  };
  /** Every packet sent, when `trace` is on. */
  readonly trace: WirePacket[] = [];
  /** Record every packet in `trace`. */
  tracing = false;
  #rand: () => number;
  #heap: Event[] = [];
  #order = 0;
  #imp: Record<Side, Impairments>;
  #busyUntil: Record<Side, number> = { a: 0, b: 0 };
  #o: SimLinkOptions;

  constructor(options: SimLinkOptions = {}) {
    this.#o = options;
    this.#rand = prng(options.seed ?? 1);
    this.#imp = {
      a: { ...PERFECT, ...options.link, ...options.aToB },
      b: { ...PERFECT, ...options.link, ...options.bToA },
    };
    const ids = prng((options.seed ?? 1) ^ 0x5eed);
    const random = () => Math.floor(ids() * 0x1_0000_0000);
    const now = () => this.clock.now;
    const mss = options.mss ?? 1328;
    const hook = options.onStateChange;
    const maxFlight = options.maxFlight === undefined ? {} : { maxFlight: options.maxFlight };
    this.a = new StreamMux({
      send: (p) => this.#send("a", p),
      now,
      mss,
      random,
      ...maxFlight,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.timers ? { timers: options.timers } : {}),
      ...(hook ? { onStateChange: (c, from) => hook("a", c, from) } : {}),
      ...(options.congestion ? { congestion: options.congestion } : {}),
    });
    this.b = new StreamMux({
      send: (p) => this.#send("b", p),
      now,
      mss,
      random,
      ...maxFlight,
      limits: { ...options.limits, ...options.limitsB },
      ...(options.timers ? { timers: options.timers } : {}),
      ...(hook ? { onStateChange: (c, from) => hook("b", c, from) } : {}),
      ...(options.congestion ? { congestion: options.congestion } : {}),
    });
  }

  /** Changes the impairments of one direction from now on. */
  impair(from: Side, change: Partial<Impairments>): void {
    this.#imp[from] = { ...this.#imp[from], ...change };
  }

  #send(from: Side, packet: StreamPacket): void {
    this.counters.sent++;
    const now = this.clock.now;
    const hook = this.#o.drop;
    if (this.tracing || hook !== undefined) {
      const wire: WirePacket = { from, packet, segment: decodeSegment(packet.payload), at: now };
      if (this.tracing) this.trace.push(wire);
      if (hook !== undefined && hook(wire)) {
        this.counters.hookDrops++;
        return;
      }
    }
    const imp = this.#imp[from];
    const r = this.#rand;
    if (r() < imp.loss) {
      this.counters.lost++;
      return;
    }
    let departure = now;
    if (imp.bytesPerMs > 0) {
      const start = Math.max(now, this.#busyUntil[from]);
      if ((start - now) * imp.bytesPerMs > imp.queueBytes) {
        this.counters.queueDrops++;
        return;
      }
      departure = start + packet.payload.length / imp.bytesPerMs;
      this.#busyUntil[from] = departure;
    }
    const to = from === "a" ? this.b : this.a;
    const copies = r() < imp.duplicate ? 2 : 1;
    if (copies === 2) this.counters.duplicated++;
    for (let i = 0; i < copies; i++) {
      let at = departure + imp.delayMs + r() * imp.jitterMs;
      if (r() < imp.reorder) {
        at += r() * imp.reorderMs;
        this.counters.reordered++;
      }
      let payload = packet.payload;
      if (r() < imp.corrupt) {
        this.counters.corrupted++;
        if ((this.#o.corruption ?? "drop") === "drop") continue;
        payload = payload.slice();
        const bit = Math.floor(r() * payload.length * 8);
        payload[bit >>> 3]! ^= 1 << (bit & 7);
      }
      this.#push({ at, order: this.#order++, to, packet: { ...packet, payload } });
    }
  }

  #push(e: Event): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >>> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): Event {
    const h = this.#heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  /** Packets still on the wire. */
  get inFlight(): number {
    return this.#heap.length;
  }

  /**
   * Runs events until `until()` holds; throws if the simulation stalls
   * (nothing scheduled), exceeds `maxMs` of simulated time, or a timer
   * keeps firing without time advancing.
   */
  async run(until: () => boolean, options: { maxMs?: number } = {}): Promise<void> {
    const limit = this.clock.now + (options.maxMs ?? 600_000);
    let idle = 0;
    let sameTime = 0;
    for (;;) {
      await yieldMacrotask();
      if (until()) return;
      const next = Math.min(
        this.#heap.length > 0 ? this.#heap[0]!.at : Infinity,
        this.a.nextDeadline(),
        this.b.nextDeadline(),
      );
      if (next === Infinity) {
        if (++idle > 3) throw new Error(`Simulation stalled at ${this.clock.now} ms`);
        continue;
      }
      idle = 0;
      if (next > limit) throw new Error(`Simulation passed its limit at ${this.clock.now} ms`);
      if (next > this.clock.now) {
        this.clock.now = next;
        sameTime = 0;
      } else if (++sameTime > 10_000) {
        throw new Error(`Timers fire without time advancing at ${this.clock.now} ms`);
      }
      this.#step();
    }
  }

  /** Runs events for `ms` of simulated time. */
  async advance(ms: number): Promise<void> {
    const end = this.clock.now + ms;
    for (;;) {
      await yieldMacrotask();
      const next = Math.min(
        this.#heap.length > 0 ? this.#heap[0]!.at : Infinity,
        this.a.nextDeadline(),
        this.b.nextDeadline(),
      );
      if (next > end) {
        this.clock.now = end;
        await yieldMacrotask();
        return;
      }
      if (next > this.clock.now) this.clock.now = next;
      this.#step();
    }
  }

  #step(): void {
    const now = this.clock.now;
    while (this.#heap.length > 0 && this.#heap[0]!.at <= now) {
      const e = this.#pop();
      this.counters.delivered++;
      e.to.receive(e.packet);
    }
    if (this.a.nextDeadline() <= now) this.a.tick();
    if (this.b.nextDeadline() <= now) this.b.tick();
  }
}

function before(x: Event, y: Event): boolean {
  return x.at < y.at || (x.at === y.at && x.order < y.order);
}

/** Deterministic pseudo-random bytes. */
export function patternBytes(length: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  let s = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s >>> 0;
  }
  return new Uint8Array(words.buffer, 0, length);
}

/** SHA-256 of bytes, hex. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Writes `data` in chunks of `chunk` bytes, awaiting backpressure, then optionally closes. */
export async function writeAll(
  conn: Connection,
  data: Uint8Array,
  options: { chunk?: number; close?: boolean } = {},
): Promise<void> {
  const chunk = options.chunk ?? 64 * 1024;
  for (let o = 0; o < data.length; o += chunk) {
    await conn.write(data.subarray(o, Math.min(data.length, o + chunk)));
  }
  if (options.close ?? true) await conn.close();
}

/** What a reader got. */
export interface ReadResult {
  /** Bytes received. */
  bytes: number;
  /** SHA-256 of everything received, hex. */
  sha256: string;
  /** Whether the stream ended (read() returned null). */
  ended: boolean;
}

/** Reads until the end of the stream, hashing as it goes. */
export function readAll(conn: Connection): { done: Promise<ReadResult>; result: ReadResult } {
  const result: ReadResult = { bytes: 0, sha256: "", ended: false };
  const hash = createHash("sha256");
  const done = (async () => {
    for (;;) {
      const chunk = await conn.read();
      if (chunk === null) break;
      result.bytes += chunk.length;
      hash.update(chunk);
    }
    result.ended = true;
    result.sha256 = hash.digest("hex");
    return result;
  })();
  return { done, result };
}

/** Opens a connection from a to b's `port` and runs the link until both ends have it. */
export async function openPair(
  link: SimLink,
  port = 1001,
  options: { noDelay?: boolean } = {},
): Promise<{ client: Connection; server: Connection }> {
  let server: Connection | undefined;
  let client: Connection | undefined;
  let failure: unknown;
  link.b.listen(port, (c) => server = c, options);
  link.a.connect(port, options).then((c) => client = c, (e) => failure = e);
  await link.run(() => failure !== undefined || (client !== undefined && server !== undefined));
  if (failure !== undefined) throw failure;
  return { client: client!, server: server! };
}

/** Tracks a promise's outcome so a simulation can run until it settles. */
export function track<T>(p: Promise<T>): { settled: boolean; value?: T; error?: unknown } {
  const t: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  p.then((v) => {
    t.settled = true;
    t.value = v;
  }, (e) => {
    t.settled = true;
    t.error = e;
  });
  return t;
}
