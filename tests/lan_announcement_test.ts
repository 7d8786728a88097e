/**
 * LAN announcements (issue 10 item 3; PROTOCOL.md §14.1): the header byte by
 * byte, its refusals, and the decode contract on random and mutated input.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeLanAnnouncement,
  encodeLanAnnouncement,
  LAN_HEADER_SIZE,
  MAX_LAN_ANNOUNCEMENT,
} from "../src/wire/lan_announcement.ts";
import { MAX_PRESENCE_RECORD_SIZE } from "../src/wire/presence_record.ts";
import { assertCanonicalOrRefused, assertRefuses, mutated } from "./_codec_contract.ts";

// Worked example: a soliciting announcement of a node whose sessions listen
// on port 7440, carrying a (here stand-in) 3-byte record.
//   504c414e   magic "PLAN"
//   01         version
//   01         flags: solicit
//   1d10       session port 7440
//   aabbcc     presence record (to the end)
const EXAMPLE = { solicit: true, port: 7440, record: Uint8Array.of(0xaa, 0xbb, 0xcc) };
const EXAMPLE_HEX = "504c414e" + "01" + "01" + "1d10" + "aabbcc";

Deno.test("encodeLanAnnouncement() writes the worked example, and decodeLanAnnouncement() reads it back", () => {
  assert.equal(encodeLanAnnouncement(EXAMPLE).toHex(), EXAMPLE_HEX);
  const back = decodeLanAnnouncement(Uint8Array.fromHex(EXAMPLE_HEX));
  assert.deepEqual(back, EXAMPLE);
  const quiet = encodeLanAnnouncement({ ...EXAMPLE, solicit: false });
  assert.equal(quiet[5], 0, "no solicit: flags 0");
  assert.equal(LAN_HEADER_SIZE, 8);
  assert.equal(MAX_LAN_ANNOUNCEMENT, 8 + MAX_PRESENCE_RECORD_SIZE);
});

Deno.test("decodeLanAnnouncement() refuses a wrong magic, version, flag, port 0, no record and an oversized datagram", () => {
  const ok = Uint8Array.fromHex(EXAMPLE_HEX);
  const at = (i: number, v: number) => {
    const b = ok.slice();
    b[i] = v;
    return b;
  };
  assertRefuses(decodeLanAnnouncement, at(0, 0x70), "bad_magic");
  assertRefuses(decodeLanAnnouncement, at(4, 2), "unsupported_version");
  assertRefuses(decodeLanAnnouncement, at(5, 0x02), "bad_flags");
  assertRefuses(decodeLanAnnouncement, at(5, 0x81), "bad_flags");
  assertRefuses(
    decodeLanAnnouncement,
    Uint8Array.fromHex("504c414e0100" + "0000" + "aa"),
    "bad_port",
  );
  assertRefuses(decodeLanAnnouncement, ok.subarray(0, 8), "truncated");
  assertRefuses(decodeLanAnnouncement, ok.subarray(0, 5), "truncated");
  assertRefuses(decodeLanAnnouncement, new Uint8Array(0), "truncated");
  const big = new Uint8Array(MAX_LAN_ANNOUNCEMENT + 1);
  big.set(ok.subarray(0, 8));
  assertRefuses(decodeLanAnnouncement, big, "too_large");
});

Deno.test("encodeLanAnnouncement() refuses a port outside 1..65535 and an empty or oversized record", () => {
  for (const port of [0, 65536, 1.5]) {
    assert.throws(() => encodeLanAnnouncement({ ...EXAMPLE, port }), RangeError);
  }
  assert.throws(() => encodeLanAnnouncement({ ...EXAMPLE, record: new Uint8Array(0) }), RangeError);
  assert.throws(
    () =>
      encodeLanAnnouncement({ ...EXAMPLE, record: new Uint8Array(MAX_PRESENCE_RECORD_SIZE + 1) }),
    RangeError,
  );
});

Deno.test("decodeLanAnnouncement() holds the decode contract on valid, mutated and random input", () => {
  const valid = fc.record({
    solicit: fc.boolean(),
    port: fc.integer({ min: 1, max: 65535 }),
    record: fc.uint8Array({ minLength: 1, maxLength: MAX_PRESENCE_RECORD_SIZE }),
  }).map(encodeLanAnnouncement);
  let accepted = 0;
  fc.assert(
    fc.property(mutated(valid), (bytes) => {
      if (assertCanonicalOrRefused(decodeLanAnnouncement, encodeLanAnnouncement, bytes)) {
        accepted++;
      }
    }),
    { numRuns: 500 },
  );
  assert.ok(accepted > 0, "some mutations still decode");
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: MAX_LAN_ANNOUNCEMENT + 8 }), (bytes) => {
      assertCanonicalOrRefused(decodeLanAnnouncement, encodeLanAnnouncement, bytes);
    }),
    { numRuns: 500 },
  );
});
