/**
 * The pub/sub example (§10.4): a subscription, a publish on another stream,
 * the broker's acks and the event it delivers, on port 1002.
 *
 * @module
 */

import assert from "node:assert/strict";
import { utf8 } from "../../src/bytes.ts";
import { PORT_PUBSUB } from "../../src/constants.ts";
import { addressToBytes } from "../../src/identity/address.ts";
import type { Identity } from "../../src/identity/identity.ts";
import {
  decodeFrame as decodePubSubFrame,
  encodeFrame as encodePubSubFrame,
  type PubSubFrame,
} from "../../src/wire/pubsub_frame.ts";
import { type Field, fieldTable, hexDump } from "./_tables.ts";
import { iso, u32, u64 } from "./_values.ts";
import { fixtureIdentity } from "./identity.ts";
import { WORKED } from "./worked.ts";

/** The fixed inputs of the pub/sub examples (§10.4). */
export const WORKED_PUBSUB = {
  pattern: "jobs.*",
  topic: "jobs.done",
  data: "job-1",
  /** The publisher's id for its PUBLISH (echoed by the ACK). */
  publishId: 1,
  /** The broker's clock when it accepted the event (Unix ms). */
  time: 1_796_000_120_000,
} as const;

/** Encodes a port-1002 frame, asserting the decoder reads back exactly what was written. */
function pubsubChecked(frame: PubSubFrame): Uint8Array {
  const bytes = encodePubSubFrame(frame);
  assert.equal(encodePubSubFrame(decodePubSubFrame(bytes)).toHex(), bytes.toHex());
  return bytes;
}

/** The kind and length fields every port-1002 frame starts with. */
function pubsubHeader(bytes: Uint8Array, name: string): Field[] {
  return [
    { name: "kind", bytes: bytes.subarray(0, 1), note: `${bytes[0]} = ${name}` },
    { name: "length", bytes: bytes.subarray(1, 5), note: `${bytes.length - 5}: body bytes` },
  ];
}

/** The example's frames, in the order they travel. */
export function pubsubFrames(publisher: Identity): Record<
  "subscribe" | "subscribed" | "publish" | "published" | "event",
  PubSubFrame
> {
  const w = WORKED_PUBSUB;
  return {
    subscribe: { kind: "subscribe", pattern: w.pattern },
    subscribed: { kind: "ack", id: 0, seq: 0, delivered: 0, dropped: 0 },
    publish: { kind: "publish", id: w.publishId, topic: w.topic, data: utf8(w.data) },
    published: { kind: "ack", id: w.publishId, seq: 1, delivered: 1, dropped: 0 },
    event: {
      kind: "event",
      seq: 1,
      time: w.time,
      from: publisher.address,
      fromKey: publisher.publicKey,
      topic: w.topic,
      data: utf8(w.data),
    },
  };
}

/** The pub/sub region of §10.4, by id. */
export function pubsubExamples(): Record<string, string> {
  const w = WORKED_PUBSUB;
  const alice = fixtureIdentity(WORKED.initiatorFixture);
  const bob = fixtureIdentity(WORKED.responderFixture);
  const f = pubsubFrames(alice);
  const sub = pubsubChecked(f.subscribe);
  const subAck = pubsubChecked(f.subscribed);
  const pub = pubsubChecked(f.publish);
  const pubAck = pubsubChecked(f.published);
  const event = pubsubChecked(f.event);
  const topic = utf8(w.topic);
  const ackTableOf = (b: Uint8Array, what: string, seqNote: string, delivered: string) =>
    fieldTable(b, [
      ...pubsubHeader(b, "ACK"),
      { name: "id", bytes: b.subarray(5, 9), note: what },
      { name: "seq", bytes: b.subarray(9, 17), note: seqNote },
      { name: "delivered", bytes: b.subarray(17, 21), note: delivered },
      { name: "dropped", bytes: b.subarray(21, 25), note: "0" },
    ]);
  return {
    "worked-pubsub": [
      `\`${alice.address}\` subscribes at \`${bob.address}\`'s broker with the pattern ` +
      `\`${w.pattern}\`: the first frame of a fresh stream to port ${PORT_PUBSUB} ` +
      `(${sub.length} bytes):`,
      "",
      fieldTable(sub, [
        ...pubsubHeader(sub, "SUBSCRIBE"),
        { name: "pattern", bytes: utf8(w.pattern), note: `\`${w.pattern}\`` },
      ]),
      "",
      hexDump(sub),
      "",
      `The broker confirms (${subAck.length} bytes); no event had been published yet:`,
      "",
      ackTableOf(subAck, "0 = a subscription", "0: events after this one are delivered", "0"),
      "",
      hexDump(subAck),
      "",
      `On another stream to the same broker, \`${alice.address}\` publishes ` +
      `\`${w.data}\` on \`${w.topic}\` (${pub.length} bytes):`,
      "",
      fieldTable(pub, [
        ...pubsubHeader(pub, "PUBLISH"),
        { name: "id", bytes: u32(w.publishId), note: `${w.publishId}: echoed by the ACK` },
        { name: "topic_len", bytes: Uint8Array.of(topic.length), note: `${topic.length}` },
        { name: "topic", bytes: topic, note: `\`${w.topic}\`` },
        { name: "data", bytes: utf8(w.data), note: `\`${w.data}\`` },
      ]),
      "",
      hexDump(pub),
      "",
      `The broker fans it out and answers the publisher (${pubAck.length} bytes):`,
      "",
      ackTableOf(
        pubAck,
        `${w.publishId}: the PUBLISH's id`,
        "1: the event's seq",
        "1 subscription took it",
      ),
      "",
      hexDump(pubAck),
      "",
      `The subscriber's stream carries the EVENT (${event.length} bytes), stamped with the ` +
      `broker's clock and the publisher's identity:`,
      "",
      fieldTable(event, [
        ...pubsubHeader(event, "EVENT"),
        { name: "seq", bytes: u64(1), note: "1" },
        { name: "time", bytes: u64(w.time), note: `${w.time} (${iso(w.time)})` },
        {
          name: "from_address",
          bytes: addressToBytes(alice.address),
          note: `\`${alice.address}\``,
        },
        { name: "from_key", bytes: alice.publicKey, note: "the publisher's Ed25519 key" },
        { name: "topic_len", bytes: Uint8Array.of(topic.length), note: `${topic.length}` },
        { name: "topic", bytes: topic, note: `\`${w.topic}\`` },
        { name: "data", bytes: utf8(w.data), note: `\`${w.data}\`` },
      ]),
      "",
      hexDump(event),
    ].join("\n"),
  };
}
