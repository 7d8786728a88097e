/**
 * The subscribing and publishing side of events (virtual port 1002):
 * {@linkcode subscribe} turns a fresh stream to a peer's broker into a
 * subscription, {@linkcode publishTo} publishes on a stream, several
 * publishes in flight at once (`../stream_rpc.ts` matches their ACKs in
 * order). The broker: `broker.ts`.
 *
 * @module
 */
import { DecodeError } from "../../bytes.ts";
import type { Connection } from "../../stream/mod.ts";
import { FrameReader } from "../../wire/framing.ts";
import {
  encodeFrame,
  type EventFrame,
  nextPubSubFrame,
  type OverflowFrame,
  PUBSUB_FRAMES,
  type PubSubFrame,
} from "../../wire/pubsub_frame.ts";
import { checkPattern } from "../../wire/pubsub_topic.ts";
import { type Settled, StreamRpc } from "../stream_rpc.ts";
import { drain } from "./_drain.ts";
import type { PublishResult } from "./broker.ts";

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
      frame = await nextPubSubFrame(this.#reader);
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
  const reader = new FrameReader(PUBSUB_FRAMES, conn);
  await conn.write(encodeFrame({ kind: "subscribe", pattern }));
  let frame: PubSubFrame | null;
  try {
    frame = await nextPubSubFrame(reader);
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

/** What an answer to publish `id` means: its ACK, its refusal, or (anything else) a broken stream. */
function answering(id: number) {
  return (frame: PubSubFrame): Settled<PublishResult> => {
    if (frame.kind !== "ack" && frame.kind !== "error") {
      throw new PubSubError(
        "protocol",
        `The broker sent ${frame.kind.toUpperCase()} to a publisher`,
      );
    }
    if (frame.id !== id) {
      // An ERROR for no publish of ours ends the stream: its code is the reason.
      if (frame.kind === "error") throw new PubSubError(frame.code, frame.message);
      throw new PubSubError("protocol", `The broker acknowledged unknown publish ${frame.id}`);
    }
    if (frame.kind === "error") return { error: new PubSubError(frame.code, frame.message) };
    return { value: { seq: frame.seq, delivered: frame.delivered, dropped: frame.dropped } };
  };
}

/** Publishes on one stream; several publishes may be in flight, answered in order. */
class Publisher {
  #conn: Connection;
  #rpc: StreamRpc<PubSubFrame>;
  #nextId = 1;

  constructor(conn: Connection) {
    this.#conn = conn;
    const reader = new FrameReader(PUBSUB_FRAMES, conn);
    this.#rpc = new StreamRpc<PubSubFrame>({
      read: () => nextPubSubFrame(reader),
      ended: () => new PubSubError("closed", "The broker closed the stream before answering"),
      failed: (e) =>
        e instanceof DecodeError
          ? new PubSubError("protocol", `The broker sent a bad frame: ${e.message}`)
          : e,
    });
  }

  async publish(topic: string, data: Uint8Array): Promise<PublishResult> {
    const failure = this.#rpc.failure;
    if (failure !== null) throw failure.error;
    const bytes = encodeFrame({ kind: "publish", id: this.#nextId, topic, data });
    const { answer } = this.#rpc.expect(answering(this.#nextId));
    this.#nextId = this.#nextId === 0xffff_ffff ? 1 : this.#nextId + 1;
    // Writes queue in call order, the same order as the expected answers.
    await this.#conn.write(bytes);
    return await answer;
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
