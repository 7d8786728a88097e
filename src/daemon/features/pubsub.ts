/**
 * `pilot publish` and `pilot subscribe`: events through a trusted peer's
 * pub/sub broker on port 1002 (the broker is services/pubsub/broker.ts).
 * Each returns domain values; control/views.ts shapes them into the API's
 * JSON.
 *
 * @module
 */
import { PORT_PUBSUB } from "../../constants.ts";
import { type PeerRef, peerRef } from "../../session/peer_ref.ts";
import { type Notice, publishTo, subscribe } from "../../services/pubsub/client.ts";
import type { Connection } from "../../stream/mod.ts";
import { checkPattern, checkTopic } from "../../wire/pubsub_topic.ts";
import type { NodeContext } from "../context.ts";
import { pubsubError, pubsubInput } from "../errors_map.ts";
import { withTimeout } from "../../with_timeout.ts";

/** An event published by `pilot publish`. */
export interface Published {
  /** The peer whose broker took it. */
  to: PeerRef;
  /** Its topic. */
  topic: string;
  /** Size of the data in bytes. */
  bytes: number;
  /** The broker's seq of the publish. */
  seq: number;
  /** Subscribers it was delivered to. */
  delivered: number;
  /** Subscribers whose queue was full (they get an overflow notice). */
  dropped: number;
}

/**
 * What a subscription yields: that it took effect (from the broker's seq
 * `since`), an event or overflow notice, or a heartbeat (`time` in ms since
 * the epoch) when nothing came for a while.
 */
export type SubscriptionNotice =
  | { kind: "subscribed"; pattern: string; since: number }
  | { kind: "heartbeat"; time: number }
  | Notice;

/** A subscription opened and waiting to be read: `count` events at most, heartbeats every `heartbeatMs`. */
export type SubscriptionFeed = (
  count: number,
  heartbeatMs: number,
  signal: AbortSignal,
) => AsyncGenerator<SubscriptionNotice>;

/** The pub/sub commands over a node's context. */
export class PubSubFeature {
  #ctx: NodeContext;

  /** Creates the feature over `ctx`. */
  constructor(ctx: NodeContext) {
    this.#ctx = ctx;
  }

  async #open(text: string, timeoutMs: number): Promise<{ peer: PeerRef; conn: Connection }> {
    const { reach, streams } = this.#ctx;
    const deadline = Date.now() + timeoutMs;
    const peer = await reach.reachTrusted(text, timeoutMs);
    const endpoint = reach.endpointOf(peer.keyHex);
    const conn = await streams.open(
      peer,
      endpoint,
      PORT_PUBSUB,
      Math.max(1, deadline - Date.now()),
    );
    return { peer: peerRef(peer), conn };
  }

  /** `pilot publish`: an event to a trusted peer's broker, fanned out to its subscribers. */
  async publish(
    text: string,
    topic: string,
    data: Uint8Array,
    timeoutMs: number,
  ): Promise<Published> {
    pubsubInput(() => checkTopic(topic));
    const { peer, conn } = await this.#open(text, timeoutMs);
    try {
      const r = await withTimeout(publishTo(conn, topic, data), timeoutMs, "publish");
      return {
        to: peer,
        topic,
        bytes: data.length,
        seq: r.seq,
        delivered: r.delivered,
        dropped: r.dropped,
      };
    } catch (e) {
      throw pubsubError(e);
    } finally {
      conn.close().catch(() => {});
    }
  }

  /**
   * `pilot subscribe`: events matching `pattern` at a trusted peer's broker,
   * until `count` events or the deadline. Opening and subscribing happen
   * before the first line, so refusals are ordinary errors; a heartbeat line
   * is yielded when nothing came for `heartbeatMs`.
   */
  async subscribe(
    text: string,
    pattern: string,
    timeoutMs: number,
  ): Promise<SubscriptionFeed> {
    pubsubInput(() => checkPattern(pattern));
    const deadline = Date.now() + timeoutMs;
    const { conn } = await this.#open(text, timeoutMs);
    let sub: Awaited<ReturnType<typeof subscribe>>;
    try {
      sub = await withTimeout(subscribe(conn, pattern), timeoutMs, "subscribe");
    } catch (e) {
      conn.reset("subscribe failed");
      throw pubsubError(e);
    }
    return async function* (count, heartbeatMs, signal) {
      const stop = () => void sub.close().catch(() => {});
      const timer = setTimeout(stop, Math.max(0, deadline - Date.now()));
      signal.addEventListener("abort", stop, { once: true });
      try {
        yield { kind: "subscribed", pattern, since: sub.since };
        let events = 0;
        while (events < count) {
          const pending = sub.next().catch(() => null);
          let n;
          for (;;) {
            let beat: ReturnType<typeof setTimeout> | undefined;
            const tick = new Promise<"beat">((r) =>
              beat = setTimeout(() => r("beat"), heartbeatMs)
            );
            n = await Promise.race([pending, tick]);
            clearTimeout(beat);
            if (n !== "beat") break;
            yield { kind: "heartbeat", time: Date.now() };
          }
          if (n === null) break;
          if (n.kind === "event") events++;
          yield n;
        }
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", stop);
        stop();
      }
    };
  }
}
