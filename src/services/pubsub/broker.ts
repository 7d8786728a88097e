/**
 * The events broker on virtual port 1002: every node is the broker of its
 * own topics. Trusted peers open a stream to it and either SUBSCRIBE (the
 * stream then carries matching EVENTs until either side closes it) or send
 * PUBLISH frames (each answered with an ACK once fanned out, or an ERROR).
 * Frames: `wire/pubsub_frame.ts`, topic grammar `wire/pubsub_topic.ts`;
 * what patterns match: `topic.ts`; each subscriber's queue:
 * `_subscriber.ts`; the subscribing and publishing side: `client.ts`.
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
} from "../../constants.ts";
import type { Address } from "../../identity/address.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import { Budget, type Connection, StreamError } from "../../stream/mod.ts";
import { DecodeError, truncateUtf8 } from "../../bytes.ts";
import { FrameReader, type RawFrame } from "../../wire/framing.ts";
import {
  decodeBody,
  encodeFrame,
  PUBSUB_FRAMES,
  PUBSUB_PUBLISH,
  PUBSUB_SUBSCRIBE,
} from "../../wire/pubsub_frame.ts";
import { checkTopic, quoteInput } from "../../wire/pubsub_topic.ts";
import { drain } from "./_drain.ts";
import { Subscriber } from "./_subscriber.ts";
import { TopicIndex } from "./topic.ts";

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

function errorFrame(id: number, code: string, message: string): Uint8Array {
  return encodeFrame({
    kind: "error",
    id,
    code,
    message: truncateUtf8(message, PUBSUB_MAX_ERROR_MESSAGE),
  });
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
  #index = new TopicIndex<Subscriber>();
  #subs = new Set<Subscriber>();
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
    this.#index.forEach(topic, (sub) => {
      if (sub.offer(frame, seq)) delivered++;
      else dropped++;
    });
    this.#dropped += dropped;
    return { seq, delivered, dropped };
  }

  /**
   * Serves one incoming port-1002 stream from `peer` until it ends. Never
   * rejects: bad input is answered with an ERROR frame quoting it.
   */
  async serve(conn: Connection, peer: PeerIdentity): Promise<void> {
    this.#conns.add(conn);
    const reader = new FrameReader(PUBSUB_FRAMES, conn);
    try {
      const first = await reader.next();
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
    const sub: Subscriber = new Subscriber(conn, peer, frame.pattern, {
      caps: this.#limits,
      budget: this.#budget,
      onFailed: () => this.#remove(sub),
    });
    this.#add(sub);
    // The confirmation goes through the queue, so it precedes every event.
    sub.push(encodeFrame({ kind: "ack", id: 0, seq: this.#seq, delivered: 0, dropped: 0 }));
    void conn.closed.then(() => this.#remove(sub));
    try {
      // A subscriber only ever closes its direction: that is its unsubscribe.
      const extra = await reader.next();
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

  #add(sub: Subscriber): void {
    this.#index.add(sub.pattern, sub);
    this.#subs.add(sub);
    this.#perPeer.set(sub.peer.keyHex, (this.#perPeer.get(sub.peer.keyHex) ?? 0) + 1);
  }

  #remove(sub: Subscriber): void {
    if (sub.closed) return;
    sub.close();
    this.#index.delete(sub.pattern, sub);
    this.#subs.delete(sub);
    const n = (this.#perPeer.get(sub.peer.keyHex) ?? 1) - 1;
    if (n > 0) this.#perPeer.set(sub.peer.keyHex, n);
    else this.#perPeer.delete(sub.peer.keyHex);
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
      raw = await reader.next();
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
