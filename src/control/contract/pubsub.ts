/**
 * Contract of the pub/sub routes: publish, subscribe.
 *
 * @module
 */
import { anyOf, int, obj, oneOf, str } from "../schema.ts";
import {
  LONG_READ_TIMEOUT_MS,
  PEER_CALL_TIMEOUT_MS,
  PEER_FIELD,
  PEER_REF,
  timeoutField,
} from "./common.ts";
import { route } from "./spec.ts";

/** `POST /v1/publish`: an event on a topic at a peer's broker. */
export const PUBLISH = route({
  route: "POST /v1/publish",
  input: {
    peer: PEER_FIELD,
    topic: {
      type: "string",
      required: true,
      description: "dot-separated labels of a-z, 0-9, _ and -",
    },
    data: { type: "string", required: true, description: "the event data (text, or base64)" },
    encoding: {
      type: "string",
      description: "how data is written: text or base64",
      default: "text",
      values: ["text", "base64"],
    },
    timeout_ms: timeoutField(PEER_CALL_TIMEOUT_MS),
  },
  output: obj({ to: PEER_REF, topic: str, bytes: int, seq: int, delivered: int, dropped: int }),
});

/** Schema of a line of `GET /v1/subscribe`, told apart by `kind`. */
export const SUBSCRIBE_LINE = anyOf(
  obj({ kind: oneOf("subscribed"), pattern: str, since: int }),
  obj({
    kind: oneOf("event"),
    seq: int,
    topic: str,
    from: str,
    from_key: str,
    time: str,
    data: str,
    bytes: int,
  }),
  obj({ kind: oneOf("overflow"), dropped: int, first_seq: int, last_seq: int }),
  obj({ kind: oneOf("heartbeat"), time: str }),
);

/** `GET /v1/subscribe` (NDJSON): events on matching topics at a peer's broker. */
export const SUBSCRIBE = route({
  route: "GET /v1/subscribe",
  input: {
    peer: PEER_FIELD,
    pattern: { type: "string", required: true, description: "a topic, prefix.* or *" },
    count: {
      type: "integer",
      description: "stop after this many events",
      default: 1_000_000,
      min: 1,
      max: Number.MAX_SAFE_INTEGER,
    },
    heartbeat_ms: {
      type: "integer",
      description: "heartbeat interval (ms)",
      default: 15_000,
      min: 0,
      max: 15_000,
    },
    timeout_ms: timeoutField(LONG_READ_TIMEOUT_MS, "end the subscription after this long (ms)"),
  },
  // It only streams, so its output is its line: one per notice (not the ok envelope).
  output: SUBSCRIBE_LINE,
  lines: SUBSCRIBE_LINE,
});
