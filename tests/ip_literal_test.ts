/**
 * `ipFamily` (src/wire/ip_endpoint.ts) answers as `node:net`'s `isIP`, which
 * the daemon no longer loads: on listed literals and on random strings of
 * the characters IP literals are made of.
 */
import assert from "node:assert/strict";
import { isIP } from "node:net";
import fc from "fast-check";
import { ipFamily } from "../src/wire/ip_endpoint.ts";

const LISTED = [
  "0.0.0.0",
  "127.0.0.1",
  "255.255.255.255",
  "256.1.1.1",
  "01.2.3.4",
  "1.2.3",
  "1.2.3.4.5",
  "1..3.4",
  " 1.2.3.4",
  "1.2.3.4 ",
  "",
  "::",
  "::1",
  "1::",
  "fe80::1%eth0",
  "fe80::1%",
  "fe80::1%2",
  "2001:db8::8a2e:370:7334",
  "2001:0db8:0000:0000:0000:ff00:0042:8329",
  "2001:db8:0:0:0:ff00:42:8329:1",
  "1:2:3:4:5:6:7",
  "1:2:3:4:5:6:7::",
  "::1:2:3:4:5:6:7",
  "1:2:3:4:5:6::7:8",
  "1::2::3",
  ":::",
  ":1",
  "1:",
  "12345::",
  "g::1",
  "::ffff:192.0.2.1",
  "::ffff:192.0.2.256",
  "1:2:3:4:5:6:1.2.3.4",
  "1:2:3:4:5:6:7:1.2.3.4",
  "::1.2.3.4",
  "1.2.3.4::",
  "::1.2.3",
  "localhost",
  "relay",
];

Deno.test("ipFamily answers as node:net's isIP on listed literals", () => {
  for (const text of LISTED) assert.equal(ipFamily(text), isIP(text), JSON.stringify(text));
});

Deno.test("ipFamily answers as node:net's isIP on random strings of IP characters", () => {
  const chars = fc.constantFrom(..."0123456789abcdefABCDEFg:.%".split(""));
  fc.assert(
    fc.property(fc.string({ unit: chars, maxLength: 45 }), (text) => {
      assert.equal(ipFamily(text), isIP(text), JSON.stringify(text));
    }),
    { numRuns: 20_000 },
  );
  // Mostly valid shapes: groups and octets joined by the separators.
  const part = fc.oneof(
    fc.integer({ min: 0, max: 300 }).map(String),
    fc.integer({ min: 0, max: 0x1ffff }).map((n) => n.toString(16)),
    fc.constant(""),
  );
  const sep = fc.constantFrom(":", "::", ".", ":");
  fc.assert(
    fc.property(fc.array(fc.tuple(part, sep), { maxLength: 10 }), part, (pairs, last) => {
      const text = pairs.map(([p, s]) => p + s).join("") + last;
      assert.equal(ipFamily(text), isIP(text), JSON.stringify(text));
    }),
    { numRuns: 20_000 },
  );
  // Dotted quads and full eight-group forms, valid or nearly.
  const dotted = fc.array(part, { minLength: 3, maxLength: 5 }).map((a) => a.join("."));
  const full = fc.array(part, { minLength: 7, maxLength: 9 }).map((a) => a.join(":"));
  fc.assert(
    fc.property(fc.oneof(dotted, full), (text) => {
      assert.equal(ipFamily(text), isIP(text), JSON.stringify(text));
    }),
    { numRuns: 20_000 },
  );
});
