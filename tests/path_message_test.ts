/**
 * Port 446 messages (hole punching between trusted peers): exact bytes,
 * round trips, and strict refusals of everything else.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodePathMessage,
  encodePathMessage,
  MAX_CANDIDATES,
  MAX_PATH_MESSAGE_SIZE,
  type PathMessage,
} from "../src/wire/path_message.ts";
import { assertCanonicalOrRefused, assertRefuses, mutated } from "./_codec_contract.ts";

const V4 = { hostname: "198.18.0.10", port: 40_001 };
const V6 = { hostname: "2001:db8::1", port: 7000 };

Deno.test("path messages: exact bytes of each type", () => {
  assert.deepEqual(
    encodePathMessage({ type: "candidates", endpoints: [V4] }),
    Uint8Array.of(0x01, 1, 4, 198, 18, 0, 10, 0x9c, 0x41),
  );
  assert.deepEqual(
    encodePathMessage({ type: "probe", nonce: 0x0102030405060708n }),
    Uint8Array.of(0x02, 1, 2, 3, 4, 5, 6, 7, 8),
  );
  assert.deepEqual(
    encodePathMessage({ type: "probe_ack", nonce: 1n }),
    Uint8Array.of(0x03, 0, 0, 0, 0, 0, 0, 0, 1),
  );
});

Deno.test("path messages: round trips, and the largest fits MAX_PATH_MESSAGE_SIZE", () => {
  const all: PathMessage[] = [
    { type: "candidates", endpoints: [V4, V6] },
    { type: "candidates", endpoints: Array.from({ length: MAX_CANDIDATES }, () => V6) },
    { type: "probe", nonce: (1n << 64n) - 1n },
    { type: "probe_ack", nonce: 0n },
  ];
  for (const m of all) {
    const bytes = encodePathMessage(m);
    assert.ok(bytes.length <= MAX_PATH_MESSAGE_SIZE);
    assert.deepEqual(decodePathMessage(bytes), m);
  }
  assert.equal(encodePathMessage(all[1]!).length, MAX_PATH_MESSAGE_SIZE);
});

Deno.test("path messages: refusals name the reason", () => {
  assertRefuses(decodePathMessage, Uint8Array.of(), "truncated");
  assertRefuses(decodePathMessage, Uint8Array.of(0x09), "unknown_type");
  assertRefuses(decodePathMessage, Uint8Array.of(0x01, 0), "bad_count");
  assertRefuses(decodePathMessage, Uint8Array.of(0x01, MAX_CANDIDATES + 1), "bad_count");
  assertRefuses(decodePathMessage, Uint8Array.of(0x01, 1, 5, 1, 2, 3, 4, 0, 1), "bad_endpoint");
  assertRefuses(decodePathMessage, Uint8Array.of(0x01, 1, 4, 1, 2, 3, 4, 0, 0), "bad_endpoint");
  assertRefuses(decodePathMessage, Uint8Array.of(0x02, 1, 2, 3), "truncated");
  assertRefuses(decodePathMessage, Uint8Array.of(0x02, 0, 0, 0, 0, 0, 0, 0, 1, 9), "trailing");
  assert.throws(() => encodePathMessage({ type: "candidates", endpoints: [] }), RangeError);
  assert.throws(() => encodePathMessage({ type: "probe", nonce: -1n }), RangeError);
});

Deno.test("path messages: any bytes decode to their own encoding or are refused", () => {
  const valid = fc.constantFrom(
    encodePathMessage({ type: "candidates", endpoints: [V4, V6] }),
    encodePathMessage({ type: "probe", nonce: 42n }),
  );
  fc.assert(
    fc.property(
      fc.oneof(mutated(valid), fc.uint8Array({ maxLength: 200 })),
      (bytes) => {
        assertCanonicalOrRefused(decodePathMessage, encodePathMessage, bytes);
      },
    ),
    { numRuns: 2000 },
  );
});
