/**
 * Layout examples of the outer frames (§3), the handshake payload (§3.5) and
 * inner packets (§4): placeholder bytes that make each field stand out. The
 * same inputs are encoded by tests/frames_test.ts, tests/inner_test.ts and
 * tests/handshake_payload_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { concat, utf8 } from "../../src/bytes.ts";
import { decodeFrame, encodeFrame, type Frame, type FrameInput } from "../../src/wire/frames.ts";
import {
  decodeHandshakePayload,
  encodeHandshakePayload,
  type HandshakePayload,
} from "../../src/wire/handshake_payload.ts";
import { decodeInner, encodeInner, type InnerPacket } from "../../src/wire/inner.ts";
import { hexDump } from "./_tables.ts";

/** Encodes an outer frame, asserting the decoder reads back exactly what was written. */
export function encodeChecked(frame: FrameInput): Uint8Array {
  const bytes = encodeFrame(frame);
  assert.equal(encodeFrame(decodeFrame(bytes) as FrameInput).toHex(), bytes.toHex());
  return bytes;
}

/** Decodes an outer frame, asserting its type. */
export function decodeAs<T extends Frame["type"]>(
  bytes: Uint8Array,
  type: T,
): Extract<Frame, { type: T }> {
  const frame = decodeFrame(bytes);
  assert.equal(frame.type, type);
  return frame as Extract<Frame, { type: T }>;
}

const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

/** The layout regions of §3 and §4, by id. */
export function layoutExamples(): Record<string, string> {
  const resp = encodeChecked({
    type: "resp",
    senderIndex: 0x1a2b3c4d,
    receiverIndex: 0x0a0b0c0d,
    noise: concat(fill(32, 0xe2), fill(48, 0x5e), fill(16, 0x7a)),
  });
  const final = encodeChecked({
    type: "final",
    senderIndex: 0x0a0b0c0d,
    receiverIndex: 0x1a2b3c4d,
    noise: concat(fill(48, 0x5e), fill(16, 0x7a)),
  });
  const cookie = encodeChecked({
    type: "cookie",
    receiverIndex: 0x0a0b0c0d,
    echo: fill(16, 0xec),
    cookie: fill(16, 0xc0),
  });
  const data = encodeChecked({
    type: "data",
    receiverIndex: 0x1a2b3c4d,
    counter: 0x010203040506,
    body: concat(Uint8Array.of(0xc1, 0xc2, 0xc3), fill(16, 0x7a)),
  });
  const keepalive = encodeChecked({
    type: "data",
    receiverIndex: 0x0a0b0c0d,
    counter: 0,
    body: fill(16, 0x7b),
  });
  const innerPackets: InnerPacket[] = [
    {
      kind: "datagram",
      srcAddress: Uint8Array.fromHex("3fa209c177e4"),
      dstAddress: Uint8Array.fromHex("0a0b0c0d0e0f"),
      srcPort: 1001,
      dstPort: 7,
      payload: utf8("hi"),
    },
    {
      kind: "stream",
      srcAddress: Uint8Array.fromHex("0a0b0c0d0e0f"),
      dstAddress: Uint8Array.fromHex("3fa209c177e4"),
      srcPort: 49152,
      dstPort: 1000,
      payload: Uint8Array.of(0, 1, 2, 3),
    },
  ];
  const [datagram, stream] = innerPackets.map((p) => {
    const bytes = encodeInner(p);
    assert.equal(encodeInner(decodeInner(bytes)).toHex(), bytes.toHex());
    return bytes;
  }) as [Uint8Array, Uint8Array];
  const payload: HandshakePayload = {
    publicKey: Uint8Array.from({ length: 32 }, (_, i) => i),
    stamp: Uint8Array.fromHex("0000000000a1b2c3"),
    staticSerial: 1,
    staticCreated: 1_700_000_000_000,
    bindingSignature: fill(64, 0xb5),
    hostname: "alpha",
    selfTime: 1_700_000_060_000,
    selfSignature: fill(64, 0x5e),
  };
  const payloadBytes = encodeHandshakePayload(payload);
  assert.deepEqual(decodeHandshakePayload(payloadBytes), payload);
  return {
    "layout-resp": hexDump(resp),
    "layout-final": hexDump(final),
    "layout-cookie": hexDump(cookie),
    "layout-data": hexDump(data),
    "layout-keepalive": hexDump(keepalive),
    "layout-inner-datagram": hexDump(datagram),
    "layout-inner-stream": hexDump(stream),
    "layout-payload": hexDump(payloadBytes),
  };
}
