/**
 * `pilot publish` and `pilot subscribe`: events through a trusted peer's
 * pub/sub broker on port 1002 (the broker is services/pubsub/broker.ts).
 *
 * @module
 */
import { PORT_PUBSUB } from "../../constants.ts";
import { type PeerRef, peerRef } from "../../session/peer_ref.ts";
import { publishTo, subscribe } from "../../services/pubsub/client.ts";
import type { Connection } from "../../stream/mod.ts";
import { checkPattern, checkTopic } from "../../wire/pubsub_topic.ts";
import type { NodeContext } from "../context.ts";
import { pubsubError, pubsubInput } from "../errors_map.ts";
import { withTimeout } from "../../with_timeout.ts";

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
  async publish(text: string, topic: string, data: Uint8Array, timeoutMs: number) {
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
  ): Promise<
    (
      count: number,
      heartbeatMs: number,
      signal: AbortSignal,
    ) => AsyncGenerator<Record<string, unknown>>
  > {
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
            yield { kind: "heartbeat", time: new Date().toISOString() };
          }
          if (n === null) break;
          if (n.kind === "event") {
            events++;
            yield {
              kind: "event",
              seq: n.seq,
              topic: n.topic,
              from: n.from,
              from_key: n.fromKey.toHex(),
              time: new Date(n.time).toISOString(),
              data: n.data.toBase64(),
              bytes: n.data.length,
            };
          } else {
            yield {
              kind: "overflow",
              dropped: n.dropped,
              first_seq: n.firstSeq,
              last_seq: n.lastSeq,
            };
          }
        }
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", stop);
        stop();
      }
    };
  }
}
