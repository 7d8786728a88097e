/**
 * Presence records (issue 9): the codec byte by byte, its refusals, the
 * decode contract on mutated input, and the checks a rendezvous and a node
 * run before believing one (key, stamp, signature, lifetime).
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { DecodeError } from "../src/bytes.ts";
import { type Address, parseAddress } from "../src/identity/address.ts";
import { x25519 } from "../src/session/crypto.ts";
import { MAX_LAN_ANNOUNCEMENT } from "../src/wire/lan_announcement.ts";
import {
  decodePresenceRecord,
  encodePresenceBody,
  encodePresenceRecord,
  MAX_PRESENCE_RECORD_SIZE,
  type PresenceRecord,
  type UnsignedPresence,
} from "../src/wire/presence_record.ts";
import {
  MAILBOX_RETENTION_MS,
  MAX_PRESENCE_LIFETIME_MS,
  PRESENCE_CLOCK_SKEW_MS,
  PresenceError,
  type PresenceProblem,
  signOwnPresence,
  signPresence,
  verifyPresence,
  type VerifyPresenceOptions,
} from "../src/discovery/presence.ts";
import { assertCanonicalOrRefused, assertRefuses, mutated } from "./_codec_contract.ts";
import { FUZZ_IDS } from "./_fuzz.ts";

const NOW = 1_800_000_000_000;

// Worked example: node "alpha", private, two endpoints, one mailbox, 200 bytes.
//   02                  version
//   000102…1f           Ed25519 public key (32 bytes)
//   0000000000a1b2c3    address stamp (8 bytes)
//   05 616c706861       hostname "alpha"
//   00                  visibility: private
//   0000018bcfe56800    serial 1700000000000
//   0000018bd01c5680    expires at 1700003600000 (one hour later)
//   02                  two endpoints
//   01 04 c6120007 1d10         observed, IPv4 198.18.0.7, port 7440
//   00 06 20010db8000000000000000000000001 1d10   local, IPv6 2001:db8::1, port 7440
//   202122…3f           static X25519 key (32 bytes)
//   00000001            static key serial 1
//   01 3fa209c177e4     one mailbox, 3fa2.09c1.77e4
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
  staticKey: Uint8Array.from({ length: 32 }, (_, i) => 0x20 + i),
  staticSerial: 1,
  mailboxes: [parseAddress("3fa2.09c1.77e4")],
  signature: new Uint8Array(64).fill(0x5e),
};
const ALPHA_HEX = "02" + ALPHA.publicKey.toHex() + "0000000000a1b2c3" + "05616c706861" + "00" +
  "0000018bcfe56800" + "0000018bd01c5680" + "02" + "0104c61200071d10" +
  "000620010db80000000000000000000000011d10" + ALPHA.staticKey.toHex() + "00000001" +
  "013fa209c177e4" + "5e".repeat(64);
/** Offsets in the worked example: the static key, its serial, the mailbox count. */
const AT_STATIC_KEY = 93;
const AT_MAILBOXES = AT_STATIC_KEY + 32 + 4;

Deno.test("encodePresenceRecord() writes the worked example, and decodePresenceRecord() reads it back", () => {
  const bytes = encodePresenceRecord(ALPHA);
  assert.equal(bytes.toHex(), ALPHA_HEX);
  assert.equal(bytes.length, 200);
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

Deno.test("the largest presence record is MAX_PRESENCE_RECORD_SIZE = 408 bytes, within a BEP 44 value and a LAN announcement", () => {
  const largest: PresenceRecord = {
    ...ALPHA,
    hostname: "a".repeat(63),
    endpoints: Array.from({ length: 8 }, (_, i) => ({
      kind: "local" as const,
      hostname: `2001:db8::${i + 1}`,
      port: 65535,
    })),
    mailboxes: [1, 2, 3, 4].map((i) => parseAddress(`3fa2.09c1.77e${i}`)),
  };
  const bytes = encodePresenceRecord(largest);
  assert.equal(bytes.length, MAX_PRESENCE_RECORD_SIZE);
  assert.equal(MAX_PRESENCE_RECORD_SIZE, 408);
  assert.deepEqual(decodePresenceRecord(bytes).record, largest);
  assert.ok(MAX_PRESENCE_RECORD_SIZE <= 1000, "BEP 44 values are at most 1000 bytes");
  assert.equal(MAX_LAN_ANNOUNCEMENT, 8 + 408);
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
    { staticKey: new Uint8Array(31) },
    { staticSerial: 2 ** 32 },
    { staticSerial: -1 },
    { mailboxes: [1, 2, 3, 4, 5].map((i) => parseAddress(`3fa2.09c1.77e${i}`)) },
    { mailboxes: [parseAddress("3fa2.09c1.77e4"), parseAddress("3FA209C177E4")] },
    { mailboxes: ["0000.0000.0000" as Address] },
  ];
  for (const b of bad) {
    assert.throws(() => encodePresenceBody({ ...ALPHA, ...b }), RangeError, JSON.stringify(b));
  }
});

function edit(hex: string, at: number, bytes: string): Uint8Array {
  return Uint8Array.fromHex(hex.slice(0, 2 * at) + bytes + hex.slice(2 * at + bytes.length));
}

Deno.test("decodePresenceRecord() refuses each malformed field with its reason", () => {
  const mailboxesAre = (hex: string) =>
    Uint8Array.fromHex(ALPHA_HEX.slice(0, 2 * AT_MAILBOXES) + hex + "5e".repeat(64));
  const cases: [Uint8Array, string][] = [
    [edit(ALPHA_HEX, 0, "01"), "unsupported_version"],
    [edit(ALPHA_HEX, 0, "03"), "unsupported_version"],
    [edit(ALPHA_HEX, AT_MAILBOXES, "05"), "too_many_mailboxes"],
    [mailboxesAre("05" + "3fa209c177e1".repeat(5)), "too_many_mailboxes"],
    [mailboxesAre("02" + "3fa209c177e4".repeat(2)), "bad_mailbox"],
    [mailboxesAre("01" + "000000000000"), "bad_mailbox"],
    [mailboxesAre("01" + "ffffffffffff"), "bad_mailbox"],
    [edit(ALPHA_HEX, AT_MAILBOXES, "02"), "truncated"],
    [Uint8Array.fromHex(ALPHA_HEX.slice(0, 2 * (AT_STATIC_KEY + 10))), "truncated"],
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
    encodePresenceRecord({ ...ALPHA, hostname: "", endpoints: [], mailboxes: [] }),
    encodePresenceRecord({
      ...ALPHA,
      visibility: "public",
      mailboxes: [1, 2, 3, 4].map((i) => parseAddress(`3fa2.09c1.77e${i}`)),
    }),
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
const MAILBOX = parseAddress("3fa2.09c1.77e4");

function signed(overrides: Partial<UnsignedPresence> = {}): Uint8Array {
  return signPresence(ID.seed, {
    publicKey: ID.publicKey,
    stamp: ID.stamp,
    hostname: "data-processor-node",
    visibility: "private",
    serial: NOW,
    expiresAt: NOW + 30 * 60 * 1000,
    endpoints: [{ kind: "observed", hostname: "198.18.0.7", port: 7440 }],
    staticKey: ID.binding.staticKey,
    staticSerial: ID.binding.serial,
    mailboxes: [MAILBOX],
    ...overrides,
  });
}

function refused(
  bytes: Uint8Array,
  reason: PresenceProblem,
  now = NOW,
  options: VerifyPresenceOptions = {},
): void {
  assert.throws(() => verifyPresence(bytes, now, options), (e) => {
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

Deno.test("the signature covers the static key, its serial and the mailboxes", () => {
  const good = signed();
  const at = good.length - 64;
  // The static key's first byte, the serial's last, a mailbox's last.
  for (const offset of [at - 7 - 4 - 32, at - 7 - 1, at - 1]) {
    const altered = good.slice();
    altered[offset]! ^= 1;
    refused(altered, "bad_signature");
  }
  // A record re-signed with another static key is a different, valid record.
  const v = verifyPresence(signed({ staticKey: FUZZ_IDS[1]!.binding.staticKey }), NOW);
  assert.deepEqual(v.record.staticKey, FUZZ_IDS[1]!.binding.staticKey);
});

/** The low-order X25519 points, each also with bit 255 set (X25519 ignores it). */
const LOW_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].flatMap((hex) => {
  const high = Uint8Array.fromHex(hex);
  high[31]! |= 0x80;
  return [Uint8Array.fromHex(hex), high];
});

Deno.test("verifyPresence() refuses a low-order static key as bad_static_key", () => {
  for (const staticKey of LOW_ORDER) refused(signed({ staticKey }), "bad_static_key");
  assert.equal(
    verifyPresence(signed(), NOW).record.staticKey.toHex(),
    ID.binding.staticKey.toHex(),
  );
});

Deno.test("every static key verifyPresence() refuses is one X25519 refuses to agree with", async () => {
  const privateKey = ID.staticKey.privateKey;
  for (const key of LOW_ORDER) {
    await assert.rejects(x25519(privateKey, key), key.toHex());
  }
  // The check is not vacuous: a real static key agrees.
  assert.equal((await x25519(privateKey, FUZZ_IDS[1]!.binding.staticKey)).length, 32);
});

Deno.test("verifyPresence() with staleMs believes a record expired less than staleMs ago, and nothing else changes", () => {
  const DAY = 24 * 60 * 60 * 1000;
  const expiredAt = NOW - DAY;
  const bytes = signed({ serial: expiredAt - 30 * 60 * 1000, expiresAt: expiredAt });
  refused(bytes, "expired");
  const v = verifyPresence(bytes, NOW, { staleMs: MAILBOX_RETENTION_MS });
  assert.equal(v.address, ID.address);
  assert.deepEqual(v.record.mailboxes, [MAILBOX]);
  const stale = { staleMs: MAILBOX_RETENTION_MS };
  const gone = NOW - MAILBOX_RETENTION_MS - PRESENCE_CLOCK_SKEW_MS;
  refused(signed({ expiresAt: gone }), "expired", NOW, stale);
  assert.ok(verifyPresence(signed({ expiresAt: gone + 1 }), NOW, stale));
  // Every other check still applies.
  const altered = bytes.slice();
  altered[altered.length - 1]! ^= 1;
  refused(altered, "bad_signature", NOW, stale);
  refused(
    signed({ expiresAt: expiredAt, staticKey: new Uint8Array(32) }),
    "bad_static_key",
    NOW,
    stale,
  );
  refused(
    signed({ expiresAt: NOW + MAX_PRESENCE_LIFETIME_MS + PRESENCE_CLOCK_SKEW_MS + 1 }),
    "too_long_lived",
    NOW,
    stale,
  );
});

Deno.test("signOwnPresence() signs the identity's bound static key and serial, and a private record carries no endpoints", () => {
  const endpoints = [{ kind: "observed" as const, hostname: "198.18.0.7", port: 7440 }];
  const own = { hostname: "alpha", serial: NOW, expiresAt: NOW + 60_000, endpoints };
  const pub = verifyPresence(
    signOwnPresence(ID, { ...own, visibility: "public", mailboxes: [MAILBOX] }),
    NOW,
  ).record;
  assert.deepEqual(pub.staticKey, ID.staticKey.publicKey);
  assert.equal(pub.staticSerial, ID.binding.serial);
  assert.deepEqual(pub.mailboxes, [MAILBOX]);
  assert.deepEqual(pub.endpoints, endpoints);
  const priv = verifyPresence(signOwnPresence(ID, { ...own, visibility: "private" }), NOW).record;
  assert.deepEqual(priv.endpoints, []);
  assert.deepEqual(priv.mailboxes, [], "no mailboxes unless given");
});
