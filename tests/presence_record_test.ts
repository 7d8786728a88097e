/**
 * Presence records (issue 9): the codec byte by byte, its refusals, the
 * decode contract on mutated input, and the checks a rendezvous and a node
 * run before believing one (key, stamp, signature, lifetime).
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { DecodeError } from "../src/bytes.ts";
import {
  decodePresenceRecord,
  encodePresenceBody,
  encodePresenceRecord,
  MAX_PRESENCE_RECORD_SIZE,
  type PresenceRecord,
  type UnsignedPresence,
} from "../src/wire/presence_record.ts";
import {
  MAX_PRESENCE_LIFETIME_MS,
  PRESENCE_CLOCK_SKEW_MS,
  PresenceError,
  type PresenceProblem,
  signPresence,
  verifyPresence,
} from "../src/discovery/presence.ts";
import { assertCanonicalOrRefused, assertRefuses, mutated } from "./_codec_contract.ts";
import { FUZZ_IDS } from "./_fuzz.ts";

const NOW = 1_800_000_000_000;

// Worked example: node "alpha", private, two endpoints, 157 bytes.
//   01                  version
//   000102…1f           Ed25519 public key (32 bytes)
//   0000000000a1b2c3    address stamp (8 bytes)
//   05 616c706861       hostname "alpha"
//   00                  visibility: private
//   0000018bcfe56800    serial 1700000000000
//   0000018bd01c5680    expires at 1700003600000 (one hour later)
//   02                  two endpoints
//   01 04 c6120007 1d10         observed, IPv4 198.18.0.7, port 7440
//   00 06 20010db8000000000000000000000001 1d10   local, IPv6 2001:db8::1, port 7440
//   5e x 64             signature
const ALPHA: PresenceRecord = {
  publicKey: Uint8Array.from({ length: 32 }, (_, i) => i),
  stamp: Uint8Array.from([0, 0, 0, 0, 0, 0xa1, 0xb2, 0xc3]),
  hostname: "alpha",
  visibility: "private",
  serial: 1_700_000_000_000,
  expiresAt: 1_700_003_600_000,
  endpoints: [
    { kind: "observed", hostname: "198.18.0.7", port: 7440 },
    { kind: "local", hostname: "2001:db8::1", port: 7440 },
  ],
  signature: new Uint8Array(64).fill(0x5e),
};
const ALPHA_HEX = "01" + ALPHA.publicKey.toHex() + "0000000000a1b2c3" + "05616c706861" + "00" +
  "0000018bcfe56800" + "0000018bd01c5680" + "02" + "0104c61200071d10" +
  "000620010db80000000000000000000000011d10" + "5e".repeat(64);

Deno.test("encodePresenceRecord() writes the worked example, and decodePresenceRecord() reads it back", () => {
  const bytes = encodePresenceRecord(ALPHA);
  assert.equal(bytes.toHex(), ALPHA_HEX);
  assert.equal(bytes.length, 157);
  const { record, body } = decodePresenceRecord(bytes);
  assert.deepEqual(record, ALPHA);
  assert.equal(body.toHex(), ALPHA_HEX.slice(0, -128), "the body is everything but the signature");
});

Deno.test("presence records carry IPv6 endpoints in RFC 5952 form, whatever form they were given in", () => {
  const forms: [string, string][] = [
    ["::1", "::1"],
    ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["::ffff:192.0.2.1", "::ffff:c000:201"],
    ["fe80::", "fe80::"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
  ];
  for (const [given, canonical] of forms) {
    const p = { ...ALPHA, endpoints: [{ kind: "local" as const, hostname: given, port: 1 }] };
    const { record } = decodePresenceRecord(encodePresenceRecord(p));
    assert.equal(record.endpoints[0]!.hostname, canonical, given);
  }
});

Deno.test("the largest presence record is MAX_PRESENCE_RECORD_SIZE bytes, well under 2 KB", () => {
  const largest: PresenceRecord = {
    ...ALPHA,
    hostname: "a".repeat(63),
    endpoints: Array.from({ length: 8 }, (_, i) => ({
      kind: "local" as const,
      hostname: `2001:db8::${i + 1}`,
      port: 65535,
    })),
  };
  assert.equal(encodePresenceRecord(largest).length, MAX_PRESENCE_RECORD_SIZE);
  assert.ok(MAX_PRESENCE_RECORD_SIZE < 2048);
});

Deno.test("encodePresenceBody() refuses fields it cannot write", () => {
  const bad: Partial<UnsignedPresence>[] = [
    { publicKey: new Uint8Array(31) },
    { hostname: "Alpha" },
    { hostname: "a".repeat(64) },
    { serial: -1 },
    { expiresAt: 2 ** 53 },
    { endpoints: Array(9).fill({ kind: "local", hostname: "198.18.0.1", port: 1 }) },
    { endpoints: [{ kind: "local", hostname: "198.18.0.1", port: 0 }] },
    { endpoints: [{ kind: "local", hostname: "example.com", port: 1 }] },
  ];
  for (const b of bad) {
    assert.throws(() => encodePresenceBody({ ...ALPHA, ...b }), RangeError, JSON.stringify(b));
  }
});

function edit(hex: string, at: number, bytes: string): Uint8Array {
  return Uint8Array.fromHex(hex.slice(0, 2 * at) + bytes + hex.slice(2 * at + bytes.length));
}

Deno.test("decodePresenceRecord() refuses each malformed field with its reason", () => {
  const cases: [Uint8Array, string][] = [
    [edit(ALPHA_HEX, 0, "02"), "unsupported_version"],
    [edit(ALPHA_HEX, 41, "40"), "bad_hostname"],
    [edit(ALPHA_HEX, 42, "41"), "bad_hostname"],
    [edit(ALPHA_HEX, 47, "02"), "bad_visibility"],
    [edit(ALPHA_HEX, 64, "09"), "too_many_endpoints"],
    [edit(ALPHA_HEX, 65, "02"), "bad_endpoint"],
    [edit(ALPHA_HEX, 66, "05"), "bad_endpoint"],
    [edit(ALPHA_HEX, 71, "0000"), "bad_endpoint"],
    [edit(ALPHA_HEX, 48, "0020000000000000"), "out_of_range"],
    [Uint8Array.fromHex(ALPHA_HEX + "00"), "trailing"],
    [Uint8Array.fromHex(ALPHA_HEX.slice(0, -2)), "truncated"],
    [new Uint8Array(MAX_PRESENCE_RECORD_SIZE + 1), "too_large"],
  ];
  for (const [bytes, reason] of cases) assertRefuses(decodePresenceRecord, bytes, reason);
});

Deno.test("decodePresenceRecord() on 100,000 mutated records decodes canonically or throws only DecodeError", () => {
  const valid = fc.constantFrom(
    encodePresenceRecord(ALPHA),
    encodePresenceRecord({ ...ALPHA, hostname: "", endpoints: [] }),
    encodePresenceRecord({ ...ALPHA, visibility: "public" }),
  );
  let accepted = 0;
  fc.assert(
    fc.property(mutated(valid), (bytes) => {
      if (
        assertCanonicalOrRefused(
          (b) => decodePresenceRecord(b).record,
          encodePresenceRecord,
          bytes,
        )
      ) accepted++;
    }),
    { numRuns: 100_000 },
  );
  assert.ok(accepted > 0, "some mutations still decode");
  assert.throws(() => decodePresenceRecord(new Uint8Array(0)), DecodeError);
});

// ---- Checks on signed records ----

const ID = FUZZ_IDS[0]!;

function signed(overrides: Partial<UnsignedPresence> = {}): Uint8Array {
  return signPresence(ID.seed, {
    publicKey: ID.publicKey,
    stamp: ID.stamp,
    hostname: "data-processor-node",
    visibility: "private",
    serial: NOW,
    expiresAt: NOW + 30 * 60 * 1000,
    endpoints: [{ kind: "observed", hostname: "198.18.0.7", port: 7440 }],
    ...overrides,
  });
}

function refused(bytes: Uint8Array, reason: PresenceProblem, now = NOW): void {
  assert.throws(() => verifyPresence(bytes, now), (e) => {
    assert.ok(e instanceof PresenceError, String(e));
    assert.equal(e.reason, reason, e.message);
    return true;
  });
}

Deno.test("verifyPresence() accepts a node's own signed record and proves its address", () => {
  const bytes = signed();
  const v = verifyPresence(bytes, NOW);
  assert.equal(v.address, ID.address);
  assert.equal(v.record.hostname, "data-processor-node");
  assert.deepEqual(v.bytes, bytes);
});

Deno.test("verifyPresence() refuses forged, altered, stale and overlong records, each with its reason", () => {
  const good = signed();
  // Any change to the body breaks the signature: here the observed endpoint's last byte.
  const altered = good.slice();
  altered[good.length - 64 - 3]! ^= 1;
  refused(altered, "bad_signature");
  // A record signed by another key that claims this one's key and stamp.
  const other = FUZZ_IDS[1]!;
  const forged = signPresence(other.seed, {
    ...decodePresenceRecord(good).record,
  });
  refused(forged, "bad_signature");
  // Someone else's stamp: the address is not proved for this key.
  refused(signed({ stamp: other.stamp }), "bad_stamp");
  refused(signed({ expiresAt: NOW - PRESENCE_CLOCK_SKEW_MS }), "expired");
  refused(
    signed({ expiresAt: NOW + MAX_PRESENCE_LIFETIME_MS + PRESENCE_CLOCK_SKEW_MS + 1 }),
    "too_long_lived",
  );
  // Twelve hex digits is an address's shape, never a hostname.
  refused(signed({ hostname: "0123456789ab" }), "bad_hostname");
  // A small-order point (the identity) as the key.
  const weak = decodePresenceRecord(good).record;
  refused(
    encodePresenceRecord({ ...weak, publicKey: Uint8Array.from([1, ...Array(31).fill(0)]) }),
    "bad_key",
  );
  refused(good.subarray(0, 20), "malformed");
});
