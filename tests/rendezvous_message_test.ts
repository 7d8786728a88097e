/**
 * Rendezvous messages on port 445 (issue 9): every type round-trips, a
 * worked example byte by byte, each malformed field refused with its
 * reason, and the decode contract on 100,000 mutated messages.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import type { Address } from "../src/identity/address.ts";
import {
  decodeRendezvousMessage,
  encodeRendezvousMessage,
  MAX_RELAY_FRAME,
  type RendezvousMessage,
} from "../src/wire/rendezvous_message.ts";
import { assertCanonicalOrRefused, assertRefuses, mutated } from "./_codec_contract.ts";

const A = "3fa2.09c1.77e4" as Address;
const B = "0c1d.aa00.0001" as Address;
const RECORD = Uint8Array.from({ length: 157 }, (_, i) => i);

const EXAMPLES: RendezvousMessage[] = [
  { type: "publish", id: 1, record: RECORD },
  { type: "lookup", id: 2, by: "address", address: A },
  { type: "lookup", id: 3, by: "key", key: new Uint8Array(32).fill(7) },
  { type: "lookup", id: 4, by: "hostname", hostname: "data-processor-node" },
  { type: "observe", id: 5 },
  { type: "punch", id: 6, to: B },
  { type: "relay", to: B, frame: new Uint8Array(1400).fill(3) },
  { type: "relayed", from: A, frame: new Uint8Array(0) },
  {
    type: "ok",
    id: 1,
    changed: true,
    observed: { hostname: "198.18.0.7", port: 7440 },
    conflict: null,
  },
  {
    type: "ok",
    id: 1,
    changed: false,
    observed: { hostname: "2001:db8::7", port: 65535 },
    conflict: { hostname: "data-processor-node", boundTo: B },
  },
  { type: "found", id: 4, record: RECORD, conflicts: [B] },
  { type: "not_found", id: 2 },
  { type: "observed", id: 5, endpoint: { hostname: "198.18.0.7", port: 1 } },
  { type: "punch_from", id: 0, from: A, endpoint: { hostname: "198.18.0.9", port: 40000 } },
  { type: "mail", id: 0 },
  { type: "error", id: 9, code: "rate_limited" },
];

Deno.test("every rendezvous message type round-trips exactly", () => {
  for (const m of EXAMPLES) {
    const bytes = encodeRendezvousMessage(m);
    assert.deepEqual(decodeRendezvousMessage(bytes), m, m.type);
    assert.equal(encodeRendezvousMessage(decodeRendezvousMessage(bytes)).toHex(), bytes.toHex());
  }
});

Deno.test("encodeRendezvousMessage() writes each message into one buffer, never outgrown", () => {
  const longest: RendezvousMessage[] = [
    ...EXAMPLES,
    { type: "relay", to: B, frame: new Uint8Array(MAX_RELAY_FRAME) },
    { type: "found", id: 4, record: RECORD, conflicts: Array(8).fill(B) },
    {
      type: "ok",
      id: 1,
      changed: false,
      observed: { hostname: "2001:db8:1:2:3:4:5:6", port: 65535 },
      conflict: { hostname: "a".repeat(63), boundTo: B },
    },
  ];
  for (const m of longest) {
    const bytes = encodeRendezvousMessage(m);
    const blob = "record" in m ? m.record.length : "frame" in m ? m.frame.length : 0;
    // A buffer that grew would be larger than the first one's 112 bytes and the blob.
    assert.equal(bytes.buffer.byteLength, 112 + blob, m.type);
  }
});

Deno.test("a lookup by hostname and its conflict answer, byte by byte", () => {
  // 02 | 00000004 | 02 | 13 "data-processor-node"
  assert.equal(
    encodeRendezvousMessage(EXAMPLES[3]!).toHex(),
    "02" + "00000004" + "02" + "13" + new TextEncoder().encode("data-processor-node").toHex(),
  );
  // 81 | 00000001 | 00 | 06 20010db8…0007 1fff… | 01 | 13 name | 0c1daa000001
  assert.equal(
    encodeRendezvousMessage(EXAMPLES[9]!).toHex(),
    "81" + "00000001" + "00" + "06" + "20010db8000000000000000000000007" + "ffff" + "01" +
      "13" + new TextEncoder().encode("data-processor-node").toHex() + "0c1daa000001",
  );
});

function hex(m: RendezvousMessage): string {
  return encodeRendezvousMessage(m).toHex();
}

Deno.test("decodeRendezvousMessage() refuses each malformed field with its reason", () => {
  const publish = hex(EXAMPLES[0]!);
  const cases: [string, string][] = [
    ["", "truncated"],
    ["20", "unknown_type"],
    [publish.slice(0, 10) + "0800" + "00".repeat(0x800), "too_large"],
    [publish + "00", "trailing"],
    ["02" + "00000002" + "03", "bad_lookup"],
    ["02" + "00000002" + "00" + "000000000000", "bad_address"],
    ["02" + "00000002" + "00" + "ffffffffffff", "bad_address"],
    ["02" + "00000004" + "02" + "05" + new TextEncoder().encode("Alpha").toHex(), "bad_hostname"],
    ["02" + "00000004" + "02" + "00", "bad_hostname"],
    ["10" + "0c1daa000001" + "fe00" + "00".repeat(0xfe00), "too_large"],
    ["81" + "00000001" + "02" + "04c61200071d10" + "00", "bad_flag"],
    ["81" + "00000001" + "00" + "05c61200071d10" + "00", "bad_endpoint"],
    ["81" + "00000001" + "00" + "04c61200070000" + "00", "bad_endpoint"],
    ["82" + "00000004" + "0000" + "09" + "0c1daa000001".repeat(9), "too_many_conflicts"],
    ["ff" + "00000009" + "03" + new TextEncoder().encode("BAD").toHex(), "bad_code"],
  ];
  for (const [h, reason] of cases) {
    assertRefuses(decodeRendezvousMessage, Uint8Array.fromHex(h), reason);
  }
});

Deno.test("encodeRendezvousMessage() refuses fields it cannot write", () => {
  const bad: RendezvousMessage[] = [
    { type: "observe", id: -1 },
    { type: "observe", id: 2 ** 32 },
    { type: "relay", to: B, frame: new Uint8Array(MAX_RELAY_FRAME + 1) },
    { type: "lookup", id: 1, by: "hostname", hostname: "Upper" },
    { type: "lookup", id: 1, by: "key", key: new Uint8Array(31) },
    { type: "error", id: 1, code: "" },
    { type: "found", id: 1, record: RECORD, conflicts: Array(9).fill(B) },
  ];
  for (const m of bad) assert.throws(() => encodeRendezvousMessage(m), RangeError, m.type);
  assert.throws(
    () => encodeRendezvousMessage({ type: "punch", id: 1, to: "0000.0000.0000" as Address }),
    TypeError,
    "reserved addresses are refused",
  );
});

Deno.test("decodeRendezvousMessage() on 100,000 mutated messages decodes canonically or throws only DecodeError", () => {
  const valid = fc.constantFrom(...EXAMPLES.map(encodeRendezvousMessage));
  let accepted = 0;
  fc.assert(
    fc.property(mutated(valid), (bytes) => {
      if (
        assertCanonicalOrRefused(decodeRendezvousMessage, encodeRendezvousMessage, bytes)
      ) accepted++;
    }),
    { numRuns: 100_000 },
  );
  assert.ok(accepted > 0, "some mutations still decode");
});
