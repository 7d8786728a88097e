/**
 * The events service on virtual port 1002: every node is the broker of its
 * own topics. Trusted peers open a stream to it and either SUBSCRIBE (the
 * stream then carries matching EVENTs until either side closes it) or send
 * PUBLISH frames (each answered with an ACK once fanned out, or an ERROR).
 * Frames and topic grammar: `wire/pubsub_frame.ts`.
 *
 * Fan-out never waits for a subscriber: each subscription has a bounded
 * queue (frames and bytes, with a per-subscription reserve and a budget
 * shared by all of them) in front of its stream, drained by its own writer
 * as fast as the stream's backpressure allows. An event that does not fit is
 * dropped for that subscriber and counted; as soon as there is room again,
 * an OVERFLOW frame with the exact count and seq range goes into the queue,
 * ahead of any later EVENT. So a slow subscriber costs bounded memory, loses
 * nothing silently, and delays neither the publisher nor other subscribers.
 *
 * @module
 */
import {
  PUBSUB_MAX_DATA,
  PUBSUB_MAX_ERROR_MESSAGE,
  PUBSUB_MAX_SUBSCRIPTIONS,
  PUBSUB_MAX_SUBSCRIPTIONS_PER_PEER,
  PUBSUB_QUEUE_BYTES,
  PUBSUB_QUEUE_FRAMES,
  PUBSUB_RESERVE_BYTES,
  PUBSUB_SHARED_BYTES,
} from "../constants.ts";
import type { Address } from "../identity/address.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { Budget, type Connection, StreamError } from "../stream/mod.ts";
import { DecodeError, truncateUtf8 } from "../bytes.ts";
import {
  checkPattern,
  checkTopic,
  decodeBody,
  encodeFrame,
  type EventFrame,
  FrameSplitter,
  OVERFLOW_FRAME_SIZE,
  type OverflowFrame,
  PUBSUB_PUBLISH,
  PUBSUB_SUBSCRIBE,
  type PubSubFrame,
  quoteInput,
  type RawFrame,
} from "../wire/pubsub_frame.ts";

/** Caps of the broker; defaults from `constants.ts`. */
export interface PubSubLimits {
  /** Frames queued per subscription (beyond its stream's send buffer), at most. */
  queueFrames: number;
  /** Bytes queued per subscription, at most. */
  queueBytes: number;
  /** Bytes each subscription may queue without drawing on the shared budget. */
  reserveBytes: number;
  /** Bytes all subscriptions share beyond their reserves. */
  sharedBytes: number;
  /** Subscriptions one peer holds at once. */
  subscriptionsPerPeer: number;
  /** Subscriptions at once. */
  subscriptions: number;
}

/** The broker's default caps. */
export const DEFAULT_PUBSUB_LIMITS: Readonly<PubSubLimits> = {
  queueFrames: PUBSUB_QUEUE_FRAMES,
  queueBytes: PUBSUB_QUEUE_BYTES,
  reserveBytes: PUBSUB_RESERVE_BYTES,
  sharedBytes: PUBSUB_SHARED_BYTES,
  subscriptionsPerPeer: PUBSUB_MAX_SUBSCRIPTIONS_PER_PEER,
  subscriptions: PUBSUB_MAX_SUBSCRIPTIONS,
};

/** Options of a {@linkcode PubSubBroker}. */
export interface PubSubBrokerOptions {
  /** The local node: the sender named in events it publishes itself. */
  self: { address: Address; publicKey: Uint8Array };
  /** Wall clock stamped on events (ms since the epoch); `Date.now` by default. */
  now?: () => number;
  /** Caps that differ from the defaults. */
  limits?: Partial<PubSubLimits>;
}

/** What a publish did. */
export interface PublishResult {
  /** The event's seq at the broker. */
  seq: number;
  /** Subscriptions whose queue took the event. */
  delivered: number;
  /** Subscriptions that matched but had to drop it (they get an OVERFLOW). */
  dropped: number;
}

/** One subscription, for diagnostics. */
export interface SubscriptionInfo {
  /** The subscriber's address. */
  peer: Address;
  /** The subscriber's key (hex). */
  keyHex: string;
  /** The pattern it subscribed with. */
  pattern: string;
  /** Frames waiting in its queue (the one being written included). */
  queuedFrames: number;
  /** Bytes waiting in its queue. */
  queuedBytes: number;
  /** Events queued for it so far. */
  delivered: number;
  /** Events dropped for it so far. */
  dropped: number;
}

/** The broker's counters. */
export interface PubSubStats {
  /** Live subscriptions. */
  subscriptions: number;
  /** Events published (the last seq). */
  published: number;
  /** Frames in every queue. */
  queuedFrames: number;
  /** Bytes in every queue. */
  queuedBytes: number;
  /** Events dropped for slow subscribers so far. */
  dropped: number;
  /** Subscriptions and publishes refused (bad input or caps). */
  refused: number;
}

/** An event or an overflow notice, as a subscriber receives them. */
export type Notice = EventFrame | OverflowFrame;

/** A refusal from the broker (`code` as in its ERROR frame) or a broken protocol (`protocol`, `closed`). */
export class PubSubError extends Error {
  /** Machine-readable code: `bad_topic`, `bad_pattern`, `too_large`, `limit`, `protocol`, `closed`, … */
  readonly code: string;
  /** Creates an error with a code and a sentence-case message. */
  constructor(code: string, message: string) {
    super(message);
    this.name = "PubSubError";
    this.code = code;
  }
}

const noop = () => {};
const EMPTY = new Uint8Array(0);

/** Reads frames from a connection. */
class FrameReader {
  #conn: Connection;
  #splitter = new FrameSplitter();

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** The next raw frame, null at the end of the stream; DecodeError for bad bytes. */
  async raw(): Promise<RawFrame | null> {
    for (;;) {
      const frame = this.#splitter.next();
      if (frame !== null) return frame;
      const chunk = await this.#conn.read();
      if (chunk === null) {
        if (this.#splitter.buffered > 0) {
          throw new DecodeError("truncated", "The stream ended inside a frame");
        }
        return null;
      }
      this.#splitter.push(chunk);
    }
  }

  /** The next decoded frame, null at the end of the stream; DecodeError for bad bytes. */
  async next(): Promise<PubSubFrame | null> {
    const raw = await this.raw();
    return raw === null ? null : decodeBody(raw);
  }
}

/** Reads and discards until the stream ends, so the peer can finish its side. */
async function drain(conn: Connection): Promise<void> {
  try {
    while ((await conn.read()) !== null) { /* discard */ }
  } catch { /* reset: nothing left to drain */ }
}

function errorFrame(id: number, code: string, message: string): Uint8Array {
  return encodeFrame({
    kind: "error",
    id,
    code,
    message: truncateUtf8(message, PUBSUB_MAX_ERROR_MESSAGE),
  });
}

interface Drop {
  count: number;
  first: number;
  last: number;
}

/** One subscription's state; owned by the broker. */
class Sub {
  readonly conn: Connection;
  readonly peer: PeerIdentity;
  readonly pattern: string;
  queue: Uint8Array[] = [];
  head = 0;
  bytes = 0;
  pumping = false;
  closed = false;
  drop: Drop | null = null;
  delivered = 0;
  dropped = 0;

  constructor(conn: Connection, peer: PeerIdentity, pattern: string) {
    this.conn = conn;
    this.peer = peer;
    this.pattern = pattern;
  }

  get frames(): number {
    return this.queue.length - this.head;
  }
}

/**
 * The pub/sub broker of one node.
 *
 * @example
 * ```ts ignore
 * const broker = new PubSubBroker({ self: { address, publicKey } });
 * mux.listen(PORT_PUBSUB, (conn) => void broker.serve(conn, peer));
 * broker.publish("self", "node.status", utf8("up"));
 * ```
 */
export class PubSubBroker {
  #self: { address: Address; publicKey: Uint8Array };
  #now: () => number;
  #limits: PubSubLimits;
  #budget: Budget;
  #seq = 0;
  #dropped = 0;
  #refused = 0;
  #exact = new Map<string, Set<Sub>>();
  #prefix = new Map<string, Set<Sub>>();
  #all = new Set<Sub>();
  #subs = new Set<Sub>();
  #perPeer = new Map<string, number>();
  #conns = new Set<Connection>();

  /** Creates a broker with no subscriptions. */
  constructor(options: PubSubBrokerOptions) {
    this.#self = options.self;
    this.#now = options.now ?? Date.now;
    this.#limits = { ...DEFAULT_PUBSUB_LIMITS, ...options.limits };
    this.#budget = new Budget(this.#limits.sharedBytes, this.#limits.reserveBytes);
  }

  /**
   * Fans an event out to every matching subscription without waiting for
   * any of them, and returns its seq and how many took or dropped it.
   * Throws `TypeError` for a malformed topic and `RangeError` for data over
   * `PUBSUB_MAX_DATA` bytes, both quoting the bad input.
   */
  publish(from: PeerIdentity | "self", topic: string, data: Uint8Array): PublishResult {
    checkTopic(topic);
    if (data.length > PUBSUB_MAX_DATA) {
      throw new RangeError(
        `Event data of ${data.length} bytes on topic ${
          quoteInput(topic)
        } is over the ${PUBSUB_MAX_DATA}-byte limit`,
      );
    }
    const sender = from === "self"
      ? this.#self
      : { address: from.address, publicKey: from.publicKey };
    const seq = ++this.#seq;
    // One encoding shared by every subscriber: streams keep references, never copy.
    const frame = encodeFrame({
      kind: "event",
      seq,
      time: Math.max(0, Math.floor(this.#now())),
      from: sender.address,
      fromKey: sender.publicKey,
      topic,
      data,
    });
    let delivered = 0;
    let dropped = 0;
    const offer = (set: Set<Sub> | undefined) => {
      if (set === undefined) return;
      for (const sub of set) {
        if (this.#offer(sub, frame, seq)) delivered++;
        else dropped++;
      }
    };
    offer(this.#exact.get(topic));
    for (let i = topic.indexOf("."); i !== -1; i = topic.indexOf(".", i + 1)) {
      offer(this.#prefix.get(topic.slice(0, i)));
    }
    offer(this.#all);
    return { seq, delivered, dropped };
  }

  /**
   * Serves one incoming port-1002 stream from `peer` until it ends. Never
   * rejects: bad input is answered with an ERROR frame quoting it.
   */
  async serve(conn: Connection, peer: PeerIdentity): Promise<void> {
    this.#conns.add(conn);
    const reader = new FrameReader(conn);
    try {
      const first = await reader.raw();
      if (first === null) {
        await conn.close();
      } else if (first.kind === PUBSUB_SUBSCRIBE) {
        await this.#serveSubscriber(conn, peer, reader, first);
      } else if (first.kind === PUBSUB_PUBLISH) {
        await this.#servePublisher(conn, peer, reader, first);
      } else {
        this.#refused++;
        await this.#fail(conn, "unexpected", "Expected SUBSCRIBE or PUBLISH as the first frame");
      }
    } catch (e) {
      if (e instanceof DecodeError) {
        this.#refused++;
        await this.#fail(conn, e.reason, e.message);
      } else if (!(e instanceof StreamError)) {
        conn.reset("internal error");
      }
    } finally {
      this.#conns.delete(conn);
    }
  }

  /** Live subscriptions, for diagnostics. */
  subscriptions(): SubscriptionInfo[] {
    return [...this.#subs].map((s) => ({
      peer: s.peer.address,
      keyHex: s.peer.keyHex,
      pattern: s.pattern,
      queuedFrames: s.frames,
      queuedBytes: s.bytes,
      delivered: s.delivered,
      dropped: s.dropped,
    }));
  }

  /** Counters. */
  stats(): PubSubStats {
    let frames = 0;
    let bytes = 0;
    for (const s of this.#subs) {
      frames += s.frames;
      bytes += s.bytes;
    }
    return {
      subscriptions: this.#subs.size,
      published: this.#seq,
      queuedFrames: frames,
      queuedBytes: bytes,
      dropped: this.#dropped,
      refused: this.#refused,
    };
  }

  /** Ends every stream being served (the daemon is stopping, or the service was turned off). */
  close(reason = "events service stopping"): void {
    for (const sub of [...this.#subs]) this.#remove(sub);
    for (const conn of [...this.#conns]) conn.reset(reason);
    this.#conns.clear();
  }

  // ---- Subscriptions ----

  async #serveSubscriber(
    conn: Connection,
    peer: PeerIdentity,
    reader: FrameReader,
    first: RawFrame,
  ): Promise<void> {
    const frame = decodeBody(first);
    if (frame.kind !== "subscribe") throw new Error("unreachable");
    const mine = this.#perPeer.get(peer.keyHex) ?? 0;
    if (mine >= this.#limits.subscriptionsPerPeer) {
      this.#refused++;
      return await this.#fail(
        conn,
        "limit",
        `Too many subscriptions from ${peer.address}: at most ${this.#limits.subscriptionsPerPeer}`,
      );
    }
    if (this.#subs.size >= this.#limits.subscriptions) {
      this.#refused++;
      return await this.#fail(
        conn,
        "limit",
        `Too many subscriptions at this node: at most ${this.#limits.subscriptions}`,
      );
    }
    const sub = new Sub(conn, peer, frame.pattern);
    this.#add(sub);
    // The confirmation goes through the queue, so it precedes every event.
    this.#push(sub, encodeFrame({ kind: "ack", id: 0, seq: this.#seq, delivered: 0, dropped: 0 }));
    this.#kick(sub);
    void conn.closed.then(() => this.#remove(sub));
    try {
      // A subscriber only ever closes its direction: that is its unsubscribe.
      const extra = await reader.raw();
      this.#remove(sub);
      if (extra !== null) {
        return await this.#fail(
          conn,
          "unexpected",
          "A subscription stream carries no frames after SUBSCRIBE",
        );
      }
      await conn.close();
    } finally {
      this.#remove(sub);
    }
  }

  #add(sub: Sub): void {
    const p = sub.pattern;
    let set: Set<Sub>;
    if (p === "*") set = this.#all;
    else if (p.endsWith(".*")) set = setIn(this.#prefix, p.slice(0, -2));
    else set = setIn(this.#exact, p);
    set.add(sub);
    this.#subs.add(sub);
    this.#perPeer.set(sub.peer.keyHex, (this.#perPeer.get(sub.peer.keyHex) ?? 0) + 1);
  }

  #remove(sub: Sub): void {
    if (sub.closed) return;
    sub.closed = true;
    const p = sub.pattern;
    if (p === "*") this.#all.delete(sub);
    else if (p.endsWith(".*")) unsetIn(this.#prefix, p.slice(0, -2), sub);
    else unsetIn(this.#exact, p, sub);
    this.#subs.delete(sub);
    const n = (this.#perPeer.get(sub.peer.keyHex) ?? 1) - 1;
    if (n > 0) this.#perPeer.set(sub.peer.keyHex, n);
    else this.#perPeer.delete(sub.peer.keyHex);
    this.#budget.charge(sub.bytes, 0);
    sub.queue = [];
    sub.head = 0;
    sub.bytes = 0;
  }

  #room(sub: Sub, n: number): boolean {
    return sub.frames < this.#limits.queueFrames && sub.bytes + n <= this.#limits.queueBytes &&
      n <= this.#budget.room(sub.bytes);
  }

  #push(sub: Sub, frame: Uint8Array): void {
    sub.queue.push(frame);
    this.#budget.charge(sub.bytes, sub.bytes + frame.length);
    sub.bytes += frame.length;
  }

  #offer(sub: Sub, frame: Uint8Array, seq: number): boolean {
    if (sub.drop !== null) this.#flushOverflow(sub);
    if (sub.drop !== null || !this.#room(sub, frame.length)) {
      if (sub.drop === null) sub.drop = { count: 1, first: seq, last: seq };
      else {
        sub.drop.count++;
        sub.drop.last = seq;
      }
      sub.dropped++;
      this.#dropped++;
      return false;
    }
    this.#push(sub, frame);
    sub.delivered++;
    this.#kick(sub);
    return true;
  }

  /** Queues the pending OVERFLOW notice if it fits now. */
  #flushOverflow(sub: Sub): void {
    const d = sub.drop;
    if (d === null || !this.#room(sub, OVERFLOW_FRAME_SIZE)) return;
    sub.drop = null;
    this.#push(
      sub,
      encodeFrame({ kind: "overflow", dropped: d.count, firstSeq: d.first, lastSeq: d.last }),
    );
    this.#kick(sub);
  }

  #kick(sub: Sub): void {
    if (sub.pumping || sub.closed) return;
    sub.pumping = true;
    void this.#pump(sub);
  }

  /** Writes the queue to the stream, one frame at a time, as backpressure allows. */
  async #pump(sub: Sub): Promise<void> {
    try {
      while (!sub.closed && sub.head < sub.queue.length) {
        const frame = sub.queue[sub.head]!;
        await sub.conn.write(frame);
        if (sub.closed) return;
        sub.queue[sub.head++] = EMPTY; // written: the stream holds it now, not us
        this.#budget.charge(sub.bytes, sub.bytes - frame.length);
        sub.bytes -= frame.length;
        if (sub.head === sub.queue.length || (sub.head >= 64 && sub.head * 2 >= sub.queue.length)) {
          sub.queue = sub.queue.slice(sub.head);
          sub.head = 0;
        }
        this.#flushOverflow(sub);
      }
    } catch {
      // The stream failed (reset, or closed by us): the subscription is over.
      this.#remove(sub);
    } finally {
      sub.pumping = false;
    }
  }

  // ---- Publishers ----

  async #servePublisher(
    conn: Connection,
    peer: PeerIdentity,
    reader: FrameReader,
    first: RawFrame,
  ): Promise<void> {
    let raw: RawFrame | null = first;
    while (raw !== null) {
      if (raw.kind !== PUBSUB_PUBLISH) {
        this.#refused++;
        return await this.#fail(
          conn,
          "unexpected",
          "A publishing stream carries only PUBLISH frames",
        );
      }
      let answer: Uint8Array;
      try {
        const frame = decodeBody(raw);
        if (frame.kind !== "publish") throw new Error("unreachable");
        const r = this.publish(peer, frame.topic, frame.data);
        answer = encodeFrame({ kind: "ack", id: frame.id, ...r });
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
        // The frame's bounds held, so the stream goes on; only this publish is refused.
        this.#refused++;
        const id = new DataView(raw.body.buffer, raw.body.byteOffset, 4).getUint32(0);
        answer = errorFrame(id, e.reason, e.message);
      }
      // Backpressure from the publisher's own stream only: it must read its ACKs.
      await conn.write(answer);
      raw = await reader.raw();
    }
    await conn.close();
  }

  /** Sends a final ERROR, closes our direction and discards whatever still arrives. */
  async #fail(conn: Connection, code: string, message: string): Promise<void> {
    const draining = drain(conn);
    try {
      await conn.write(errorFrame(0, code, message));
      await conn.close();
    } catch { /* the stream is gone already */ }
    await draining;
  }
}

function setIn(map: Map<string, Set<Sub>>, key: string): Set<Sub> {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  return set;
}

function unsetIn(map: Map<string, Set<Sub>>, key: string, sub: Sub): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(sub);
  if (set.size === 0) map.delete(key);
}

// ---- Client side ----

/** A subscription at a peer's broker, from {@linkcode subscribe}; iterating it yields notices. */
export interface Subscription extends AsyncIterable<Notice> {
  /** The pattern subscribed with. */
  readonly pattern: string;
  /** The broker's last seq before the subscription took effect; every later matching event is delivered or counted. */
  readonly since: number;
  /**
   * The next event or overflow notice, or null once the broker ended the
   * subscription. Rejects with {@linkcode PubSubError} for an ERROR or a
   * protocol violation, with a `StreamError` when the stream fails.
   */
  next(): Promise<Notice | null>;
  /** Unsubscribes: closes our direction and discards what is still in flight. */
  close(): Promise<void>;
}

class ClientSubscription implements Subscription {
  readonly pattern: string;
  readonly since: number;
  #conn: Connection;
  #reader: FrameReader;
  #done = false;

  constructor(conn: Connection, reader: FrameReader, pattern: string, since: number) {
    this.#conn = conn;
    this.#reader = reader;
    this.pattern = pattern;
    this.since = since;
  }

  async next(): Promise<Notice | null> {
    if (this.#done) return null;
    let frame: PubSubFrame | null;
    try {
      frame = await this.#reader.next();
    } catch (e) {
      this.#done = true;
      if (e instanceof DecodeError) {
        this.#conn.reset("protocol error");
        throw new PubSubError("protocol", `The broker sent a bad frame: ${e.message}`);
      }
      throw e;
    }
    if (frame === null) {
      this.#done = true;
      return null;
    }
    if (frame.kind === "event" || frame.kind === "overflow") return frame;
    this.#done = true;
    if (frame.kind === "error") {
      void this.#conn.close().catch(noop);
      throw new PubSubError(frame.code, frame.message);
    }
    this.#conn.reset("protocol error");
    throw new PubSubError(
      "protocol",
      `The broker sent ${frame.kind.toUpperCase()} on a subscription`,
    );
  }

  async close(): Promise<void> {
    this.#done = true;
    const draining = drain(this.#conn);
    await this.#conn.close().catch(noop);
    await draining;
  }

  // Iterates until the broker ends the subscription; leaving the loop early unsubscribes.
  async *[Symbol.asyncIterator](): AsyncIterator<Notice> {
    try {
      for (;;) {
        const n = await this.next();
        if (n === null) return;
        yield n;
      }
    } finally {
      await this.close();
    }
  }
}

/**
 * Subscribes at the broker at the other end of `conn` (a fresh stream to the
 * peer's port 1002) and resolves once the broker confirmed. Throws
 * `TypeError` for a malformed pattern (before sending anything) and
 * {@linkcode PubSubError} when the broker refuses (`bad_pattern`, `limit`).
 *
 * @example
 * ```ts ignore
 * const sub = await subscribe(await mux.connect(PORT_PUBSUB), "swarm.*");
 * for await (const n of sub) console.log(n.kind === "event" ? n.topic : `lost ${n.dropped}`);
 * ```
 */
export async function subscribe(conn: Connection, pattern: string): Promise<Subscription> {
  checkPattern(pattern);
  const reader = new FrameReader(conn);
  await conn.write(encodeFrame({ kind: "subscribe", pattern }));
  let frame: PubSubFrame | null;
  try {
    frame = await reader.next();
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
    conn.reset("protocol error");
    throw new PubSubError("protocol", `The broker sent a bad frame: ${e.message}`);
  }
  if (frame === null) {
    throw new PubSubError("closed", "The broker closed the stream before confirming");
  }
  if (frame.kind === "error") {
    void conn.close().catch(noop);
    throw new PubSubError(frame.code, frame.message);
  }
  if (frame.kind !== "ack") {
    conn.reset("protocol error");
    throw new PubSubError("protocol", `Expected ACK, got ${frame.kind.toUpperCase()}`);
  }
  return new ClientSubscription(conn, reader, pattern, frame.seq);
}

interface Pending {
  resolve(r: PublishResult): void;
  reject(e: Error): void;
}

/** Publishes on one stream; several publishes may be in flight (ids correlate the ACKs). */
class Publisher {
  #conn: Connection;
  #reader: FrameReader;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #reading = false;
  #failure: Error | null = null;

  constructor(conn: Connection) {
    this.#conn = conn;
    this.#reader = new FrameReader(conn);
  }

  async publish(topic: string, data: Uint8Array): Promise<PublishResult> {
    if (this.#failure !== null) throw this.#failure;
    const id = this.#nextId;
    this.#nextId = id === 0xffff_ffff ? 1 : id + 1;
    const bytes = encodeFrame({ kind: "publish", id, topic, data });
    const answer = new Promise<PublishResult>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
    });
    answer.catch(noop);
    try {
      await this.#conn.write(bytes);
    } catch (e) {
      this.#pending.delete(id);
      throw e;
    }
    if (!this.#reading) void this.#read();
    return await answer;
  }

  async #read(): Promise<void> {
    this.#reading = true;
    try {
      while (this.#pending.size > 0) {
        const frame = await this.#reader.next();
        if (frame === null) {
          throw new PubSubError("closed", "The broker closed the stream before answering");
        }
        if (frame.kind !== "ack" && frame.kind !== "error") {
          throw new PubSubError(
            "protocol",
            `The broker sent ${frame.kind.toUpperCase()} to a publisher`,
          );
        }
        const waiter = this.#pending.get(frame.id);
        if (waiter === undefined) {
          if (frame.kind === "error") throw new PubSubError(frame.code, frame.message);
          throw new PubSubError("protocol", `The broker acknowledged unknown publish ${frame.id}`);
        }
        this.#pending.delete(frame.id);
        if (frame.kind === "ack") {
          waiter.resolve({ seq: frame.seq, delivered: frame.delivered, dropped: frame.dropped });
        } else {
          waiter.reject(new PubSubError(frame.code, frame.message));
        }
      }
    } catch (e) {
      const error = e instanceof DecodeError
        ? new PubSubError("protocol", `The broker sent a bad frame: ${e.message}`)
        : e as Error;
      this.#failure = error;
      for (const w of this.#pending.values()) w.reject(error);
      this.#pending.clear();
    } finally {
      this.#reading = false;
    }
  }
}

const publishers = new WeakMap<Connection, Publisher>();

/**
 * Publishes one event to the broker at the other end of `conn` (a stream to
 * the peer's port 1002) and resolves with its ACK. Calls on the same stream
 * may overlap. Throws `TypeError`/`RangeError` for a malformed topic or
 * oversized data (before sending) and {@linkcode PubSubError} when the
 * broker refuses.
 *
 * @example
 * ```ts ignore
 * const conn = await mux.connect(PORT_PUBSUB);
 * const { seq, delivered } = await publishTo(conn, "swarm.status", utf8("idle"));
 * await conn.close();
 * ```
 */
export function publishTo(
  conn: Connection,
  topic: string,
  data: Uint8Array,
): Promise<PublishResult> {
  let p = publishers.get(conn);
  if (p === undefined) {
    p = new Publisher(conn);
    publishers.set(conn, p);
  }
  return p.publish(topic, data);
}
