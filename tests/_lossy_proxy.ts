/**
 * A deterministic lossy UDP proxy for fault tests: it sits between a client
 * (A) and a target (B) and, per direction, drops, holds back (reorders),
 * duplicates, corrupts and delays datagrams, deciding each datagram's fate
 * with a seeded PRNG. Given the seed and the order in which datagrams
 * arrive, it does exactly the same things every run.
 *
 * The decisions live in {@linkcode LossyLink} (pure, no sockets, no clock),
 * so they can be tested on their own; {@linkcode LossyProxy} wires two links
 * to sockets. A talks to `proxy.listen`; the first datagram there fixes A's
 * endpoint (like a NAT mapping); the proxy forwards to B from its own socket
 * and sends B's answers back to A.
 *
 * @module
 */
import type { Endpoint } from "../src/discovery/endpoint.ts";

/** What one direction of the proxy does to datagrams; every probability is 0 to 1. */
export interface LinkConfig {
  /** Probability that a datagram is dropped. */
  loss: number;
  /** Probability that a datagram is held back and released after the next `reorderDepth` arrivals. */
  reorder: number;
  /** Arrivals a held datagram waits for (at least 1). */
  reorderDepth: number;
  /** Probability that a datagram is sent twice. */
  duplicate: number;
  /** Probability that one random bit of a datagram is flipped. */
  corrupt: number;
  /** Fixed delay of every datagram (ms). */
  delayMs: number;
  /** Extra random delay, uniform in [0, jitterMs) (ms); it can reorder datagrams too. */
  jitterMs: number;
  /**
   * A held datagram with no arrivals after it is released after this long
   * (ms), so that sparse traffic (a handshake) is reordered, not lost.
   * Only the proxy uses it; a {@linkcode LossyLink} on its own waits for arrivals or `flush()`.
   */
  holdMs: number;
}

/** A link that forwards everything at once, in order. */
export const PERFECT_LINK: LinkConfig = {
  loss: 0,
  reorder: 0,
  reorderDepth: 1,
  duplicate: 0,
  corrupt: 0,
  delayMs: 0,
  jitterMs: 0,
  holdMs: 20,
};

/** Counters of one direction; they add up (see {@linkcode LossyLink.counters}). */
export interface LinkCounters {
  /** Datagrams that arrived. */
  received: number;
  /** Datagrams dropped on purpose. */
  dropped: number;
  /** Datagrams held back to be released later (reordered). */
  reordered: number;
  /** Extra copies made. */
  duplicated: number;
  /** Datagrams with one bit flipped. */
  corrupted: number;
  /** Datagrams given a non-zero delay. */
  delayed: number;
  /** Datagrams handed on for sending (copies included). */
  forwarded: number;
  /** Held datagrams released by `flush()` or the hold timer rather than by later arrivals. */
  flushed: number;
  /** Held datagrams thrown away by `discard()` (at close). */
  discarded: number;
}

/** One datagram a link hands on: its arrival number, bytes and delay. */
export interface Emission {
  /** 0-based arrival number of the datagram in this direction. */
  seq: number;
  /** The bytes to send (a corrupted copy when `corrupted`). */
  bytes: Uint8Array;
  /** Delay before sending (ms). */
  delayMs: number;
  /** Whether a bit was flipped. */
  corrupted: boolean;
  /** Whether this is the extra copy of a duplicated datagram. */
  copy: boolean;
}

/**
 * mulberry32: a small, fast 32-bit PRNG; good enough to decide faults and
 * fully determined by its seed.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkConfig(c: LinkConfig): LinkConfig {
  for (const k of ["loss", "reorder", "duplicate", "corrupt"] as const) {
    if (!(c[k] >= 0 && c[k] <= 1)) {
      throw new RangeError(`Invalid ${k} probability ${c[k]}: expected 0 to 1`);
    }
  }
  if (!Number.isInteger(c.reorderDepth) || c.reorderDepth < 1) {
    throw new RangeError(
      `Invalid reorderDepth ${c.reorderDepth}: expected an integer of at least 1`,
    );
  }
  for (const k of ["delayMs", "jitterMs", "holdMs"] as const) {
    if (!(c[k] >= 0 && Number.isFinite(c[k]))) {
      throw new RangeError(`Invalid ${k} ${c[k]}: expected a finite number of at least 0`);
    }
  }
  return c;
}

interface Held {
  emission: Emission;
  left: number;
}

/**
 * One direction's fault decisions. Each arrival draws the same six numbers
 * from the PRNG whatever happens to it, so a datagram's fate depends only on
 * the seed and its arrival number, never on the fates of the others.
 */
export class LossyLink {
  /** The effective configuration. */
  readonly config: LinkConfig;
  #rng: () => number;
  #seq = 0;
  #held: Held[] = [];
  #counters: LinkCounters = {
    received: 0,
    dropped: 0,
    reordered: 0,
    duplicated: 0,
    corrupted: 0,
    delayed: 0,
    forwarded: 0,
    flushed: 0,
    discarded: 0,
  };

  /** Creates a link with its own PRNG stream; unset fields come from {@linkcode PERFECT_LINK}. */
  constructor(seed: number, config: Partial<LinkConfig> = {}) {
    this.config = checkConfig({ ...PERFECT_LINK, ...config });
    this.#rng = mulberry32(seed);
  }

  /**
   * A copy of the counters. They add up: `forwarded = received - dropped +
   * duplicated - held - discarded`, where `held` is {@linkcode LossyLink.held}.
   */
  get counters(): LinkCounters {
    return { ...this.#counters };
  }

  /** Datagrams held back right now. */
  get held(): number {
    return this.#held.length;
  }

  /** Decides the fate of one arriving datagram; returns what to send now, in order. */
  push(bytes: Uint8Array): Emission[] {
    const c = this.config;
    const n = this.#counters;
    const seq = this.#seq++;
    n.received++;
    const [uLoss, uCorrupt, uBit, uDup, uReorder, uJitter] = [
      this.#rng(),
      this.#rng(),
      this.#rng(),
      this.#rng(),
      this.#rng(),
      this.#rng(),
    ] as [number, number, number, number, number, number];
    const out: Emission[] = [];
    // Earlier datagrams held back move one step closer to release, whatever
    // happens to this one.
    const due: Emission[] = [];
    for (const h of this.#held) if (--h.left <= 0) due.push(h.emission);
    this.#held = this.#held.filter((h) => h.left > 0);
    if (uLoss < c.loss) {
      n.dropped++;
    } else {
      const data = bytes.slice();
      let corrupted = false;
      if (uCorrupt < c.corrupt && data.length > 0) {
        const bit = Math.floor(uBit * data.length * 8);
        data[bit >> 3]! ^= 1 << (bit & 7);
        corrupted = true;
        n.corrupted++;
      }
      const delayMs = c.delayMs + uJitter * c.jitterMs;
      const emission: Emission = { seq, bytes: data, delayMs, corrupted, copy: false };
      const copies = [emission];
      if (uDup < c.duplicate) {
        n.duplicated++;
        copies.push({ ...emission, bytes: data.slice(), copy: true });
      }
      if (uReorder < c.reorder) {
        n.reordered++;
        for (const e of copies) this.#held.push({ emission: e, left: c.reorderDepth });
      } else {
        out.push(...copies);
      }
    }
    out.push(...due);
    return this.#count(out);
  }

  /** Releases every held datagram now (the traffic went quiet). */
  flush(): Emission[] {
    const out = this.#held.map((h) => h.emission);
    this.#held = [];
    this.#counters.flushed += out.length;
    return this.#count(out);
  }

  /** Throws every held datagram away (the proxy is closing). */
  discard(): void {
    this.#counters.discarded += this.#held.length;
    this.#held = [];
  }

  #count(out: Emission[]): Emission[] {
    this.#counters.forwarded += out.length;
    for (const e of out) if (e.delayMs > 0) this.#counters.delayed++;
    return out;
  }
}

/** Options of {@linkcode LossyProxy}. */
export interface LossyProxyOptions {
  /** Where B listens. */
  target: Endpoint;
  /** PRNG seed; each direction derives its own stream from it. */
  seed: number;
  /** Faults of both directions (overridden per direction below). */
  both?: Partial<LinkConfig>;
  /** Faults of A to B. */
  aToB?: Partial<LinkConfig>;
  /** Faults of B to A. */
  bToA?: Partial<LinkConfig>;
}

/** Counters of both directions, and datagrams from unexpected sources. */
export interface ProxyCounters {
  /** A to B. */
  a_to_b: LinkCounters;
  /** B to A. */
  b_to_a: LinkCounters;
  /** Datagrams ignored: to the front from someone other than A, or to the back from someone other than B. */
  strangers: number;
  /** Sends the OS refused. */
  send_errors: number;
  /** Delayed datagrams still waiting when the proxy closed (never sent). */
  cancelled: number;
}

type Direction = "a->b" | "b->a";

/** One decision the proxy acted on, for tests that compare runs. */
export interface ProxyLogEntry {
  /** Which way. */
  direction: Direction;
  /** Arrival number in that direction. */
  seq: number;
  /** Whether the bytes sent were corrupted. */
  corrupted: boolean;
  /** Whether it was the extra copy. */
  copy: boolean;
}

/**
 * The proxy: two UDP sockets on 127.0.0.1 and a {@linkcode LossyLink} per
 * direction. `close()` releases the sockets and every timer.
 *
 * @example
 * ```ts ignore
 * const proxy = new LossyProxy({ target: endpointOf(b.listen), seed: 7, both: { loss: 0.1 } });
 * // start A with --peer NAME=127.0.0.1:${proxy.listen.port}
 * await proxy.close();
 * ```
 */
export class LossyProxy {
  /** Endpoint A sends to. */
  readonly listen: Endpoint;
  /** Every datagram sent, in the order the proxy sent them. */
  readonly log: ProxyLogEntry[] = [];
  #front: Deno.DatagramConn;
  #back: Deno.DatagramConn;
  #target: Endpoint;
  #client: Endpoint | undefined;
  #links: Record<Direction, LossyLink>;
  #holdTimers: Record<Direction, ReturnType<typeof setTimeout> | undefined> = {
    "a->b": undefined,
    "b->a": undefined,
  };
  #delayTimers = new Set<ReturnType<typeof setTimeout>>();
  // Sends on one socket go out in the order they were decided.
  #sending: Record<Direction, Promise<void>> = {
    "a->b": Promise.resolve(),
    "b->a": Promise.resolve(),
  };
  #loops: Promise<void>[];
  #strangers = 0;
  #sendErrors = 0;
  #cancelled = 0;
  #closed = false;

  /** Opens both sockets and starts relaying. */
  constructor(options: LossyProxyOptions) {
    this.#target = options.target;
    // Distinct, fixed streams per direction: the fate of A's n-th datagram
    // does not depend on how B's traffic interleaves with A's.
    this.#links = {
      "a->b": new LossyLink(options.seed ^ 0x5a5a5a5a, { ...options.both, ...options.aToB }),
      "b->a": new LossyLink(options.seed ^ 0x3c3c3c3c, { ...options.both, ...options.bToA }),
    };
    this.#front = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#back = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const a = this.#front.addr as Deno.NetAddr;
    this.listen = { hostname: a.hostname, port: a.port };
    this.#loops = [this.#receive("a->b"), this.#receive("b->a")];
  }

  /** A's endpoint, once its first datagram arrived. */
  get client(): Endpoint | undefined {
    return this.#client;
  }

  /** A snapshot of every counter. */
  get counters(): ProxyCounters {
    return {
      a_to_b: this.#links["a->b"].counters,
      b_to_a: this.#links["b->a"].counters,
      strangers: this.#strangers,
      send_errors: this.#sendErrors,
      cancelled: this.#cancelled,
    };
  }

  async #receive(direction: Direction): Promise<void> {
    const conn = direction === "a->b" ? this.#front : this.#back;
    const buffer = new Uint8Array(65_536);
    try {
      for (;;) {
        const [bytes, addr] = await conn.receive(buffer);
        const from = addr as Deno.NetAddr;
        if (direction === "a->b") {
          this.#client ??= { hostname: from.hostname, port: from.port };
          if (!sameEndpoint(this.#client, from)) {
            this.#strangers++;
            continue;
          }
        } else if (!sameEndpoint(this.#target, from)) {
          this.#strangers++;
          continue;
        }
        this.#emit(direction, this.#links[direction].push(bytes));
        this.#armHold(direction);
      }
    } catch (e) {
      if (!this.#closed) throw e;
    }
  }

  // Restarts the quiet-traffic timer that releases held datagrams.
  #armHold(direction: Direction): void {
    clearTimeout(this.#holdTimers[direction]);
    this.#holdTimers[direction] = undefined;
    const link = this.#links[direction];
    if (link.held === 0) return;
    this.#holdTimers[direction] = setTimeout(() => {
      this.#holdTimers[direction] = undefined;
      if (!this.#closed) this.#emit(direction, link.flush());
    }, link.config.holdMs);
  }

  #emit(direction: Direction, emissions: Emission[]): void {
    for (const e of emissions) {
      if (e.delayMs <= 0) {
        this.#send(direction, e);
        continue;
      }
      const timer = setTimeout(() => {
        this.#delayTimers.delete(timer);
        this.#send(direction, e);
      }, e.delayMs);
      this.#delayTimers.add(timer);
    }
  }

  #send(direction: Direction, e: Emission): void {
    if (this.#closed) return;
    const to = direction === "a->b" ? this.#target : this.#client;
    if (to === undefined) return;
    const conn = direction === "a->b" ? this.#back : this.#front;
    this.log.push({ direction, seq: e.seq, corrupted: e.corrupted, copy: e.copy });
    this.#sending[direction] = this.#sending[direction].then(() =>
      this.#closed ? undefined : conn.send(e.bytes, {
        transport: "udp",
        hostname: to.hostname,
        port: to.port,
      }).then(() => {}, () => {
        this.#sendErrors++;
      })
    );
  }

  /** Releases every datagram held back, in both directions, now. */
  flush(): void {
    for (const d of ["a->b", "b->a"] as const) {
      clearTimeout(this.#holdTimers[d]);
      this.#holdTimers[d] = undefined;
      this.#emit(d, this.#links[d].flush());
    }
  }

  /** Waits until every send decided so far has been handed to the OS. */
  async drain(): Promise<void> {
    await Promise.all([this.#sending["a->b"], this.#sending["b->a"]]);
  }

  /** Closes both sockets, cancels every timer, discards held datagrams and waits for the loops. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const d of ["a->b", "b->a"] as const) {
      clearTimeout(this.#holdTimers[d]);
      this.#links[d].discard();
    }
    for (const t of this.#delayTimers) clearTimeout(t);
    this.#cancelled += this.#delayTimers.size;
    this.#delayTimers.clear();
    this.#front.close();
    this.#back.close();
    await Promise.allSettled([...this.#loops, this.drain()]);
  }
}

function sameEndpoint(a: Endpoint, b: Deno.NetAddr | Endpoint): boolean {
  return a.hostname === b.hostname && a.port === b.port;
}
