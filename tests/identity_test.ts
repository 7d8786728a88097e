import assert from "node:assert/strict";
import {
  createIdentity,
  decodeIdentityFile,
  encodeIdentityFile,
  fingerprint,
  fingerprintIn,
  fingerprintMatches,
  generateSeed,
  generateX25519KeyPair,
  type Identity,
  IdentityFileError,
  parseFingerprint,
  publicKeyFromSeed,
  signBinding,
  signSelfDescription,
  validateHostname,
  verifyBinding,
  verifySelfDescription,
} from "../src/identity/mod.ts";

const fixtures = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/identities.json", import.meta.url)),
) as Record<string, unknown>[];

function fixture(i = 0): Record<string, unknown> {
  return structuredClone(fixtures[i]!);
}

function loadFixture(i = 0): Identity {
  return decodeIdentityFile(JSON.stringify(fixtures[i]));
}

function assertRefused(file: unknown, pattern: RegExp): void {
  const text = typeof file === "string" ? file : JSON.stringify(file);
  assert.throws(
    () => decodeIdentityFile(text),
    (error: unknown) => {
      assert.ok(error instanceof IdentityFileError, `expected IdentityFileError, got ${error}`);
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes("\n"), "the message is one line");
      return true;
    },
  );
}

function flipHexDigit(hex: string, at = 0): string {
  const digit = hex[at] === "0" ? "1" : "0";
  return hex.slice(0, at) + digit + hex.slice(at + 1);
}

Deno.test("an identity file round-trips through encode and decode", () => {
  for (let i = 0; i < fixtures.length; i++) {
    const identity = loadFixture(i);
    const again = decodeIdentityFile(encodeIdentityFile(identity));
    assert.deepEqual(again, identity);
    assert.equal(encodeIdentityFile(again), JSON.stringify(fixtures[i], null, 2) + "\n");
  }
});

Deno.test("createIdentity() makes an identity whose file decodes back to it", async () => {
  let reports = 0;
  const identity = await createIdentity({ onProgress: () => reports++, now: 1_700_000_000_000 });
  assert.ok(reports >= 1);
  assert.deepEqual(identity.publicKey, publicKeyFromSeed(identity.seed));
  assert.equal(identity.binding.serial, 0);
  assert.equal(identity.binding.created, 1_700_000_000_000);
  assert.deepEqual(decodeIdentityFile(encodeIdentityFile(identity)), identity);
});

Deno.test("createIdentity() refuses an X25519 generator whose public key does not match", async () => {
  const real = generateX25519KeyPair();
  await assert.rejects(
    createIdentity({
      x25519Generate: () => ({
        privateKey: real.privateKey,
        publicKey: generateX25519KeyPair().publicKey,
      }),
    }),
    /does not match/,
  );
});

Deno.test("decodeIdentityFile() refuses corrupt JSON", () => {
  const text = encodeIdentityFile(loadFixture());
  assertRefused(text.slice(0, text.length / 2), /not valid JSON/);
  assertRefused("", /not valid JSON/);
  assertRefused("[]", /expected an object/);
  assertRefused("null", /expected an object/);
});

Deno.test("decodeIdentityFile() refuses a seed that does not match the public key", () => {
  const file = fixture();
  file.seed = generateSeed().toHex();
  assertRefused(file, /"public_key" is not the public key of "seed"/);
});

Deno.test("decodeIdentityFile() refuses a stamp that proves no address", () => {
  const file = fixture();
  file.stamp = flipHexDigit(file.stamp as string, 15);
  assertRefused(file, /"stamp" does not prove an address/);
});

Deno.test("decodeIdentityFile() refuses an address or fingerprint that does not match the key", () => {
  const a = fixture();
  a.address = fixture(1).address;
  assertRefused(a, /"address" is ".*", expected/);
  const b = fixture();
  b.fingerprint = fixture(1).fingerprint;
  assertRefused(b, /"fingerprint" is ".*", expected/);
});

Deno.test("decodeIdentityFile() refuses a bad binding signature", () => {
  const file = fixture();
  const inner = file.static_key as Record<string, unknown>;
  inner.signature = flipHexDigit(inner.signature as string, 3);
  assertRefused(file, /"static_key.signature" is not the identity key's signature/);
  const later = fixture();
  (later.static_key as Record<string, unknown>).serial = 1;
  assertRefused(later, /"static_key.signature"/);
});

Deno.test("decodeIdentityFile() refuses a static public key that is not the private key's", () => {
  const file = fixture();
  (file.static_key as Record<string, unknown>).public_key = generateX25519KeyPair().publicKey
    .toHex();
  assertRefused(file, /"static_key.public_key" is not the public key of "static_key.private_key"/);
});

Deno.test("decodeIdentityFile() refuses unknown and missing keys", () => {
  const extra = fixture();
  extra.comment = "hello";
  assertRefused(extra, /unknown key "comment" in the top level/);
  const innerExtra = fixture();
  (innerExtra.static_key as Record<string, unknown>).x = 1;
  assertRefused(innerExtra, /unknown key "x" in "static_key"/);
  const missing = fixture();
  delete missing.stamp;
  assertRefused(missing, /missing key "stamp"/);
});

Deno.test("decodeIdentityFile() refuses wrong versions, hex lengths, case and types", () => {
  const cases: [(f: Record<string, unknown>) => void, RegExp][] = [
    [(f) => f.version = 2, /"version" is 2, expected 1/],
    [(f) => f.version = "1", /"version" is "1", expected 1/],
    [(f) => f.seed = (f.seed as string).slice(2), /"seed" is .*, expected 64 lowercase hex digits/],
    [(f) => f.seed = (f.seed as string).toUpperCase(), /"seed" is .*lowercase hex/],
    [(f) => f.stamp = 12, /"stamp" is 12, expected 16 lowercase hex digits/],
    [(f) => f.public_key = null, /"public_key" is null/],
    [(f) => f.static_key = "x", /"static_key" is "x", expected an object/],
    [
      (f) => (f.static_key as Record<string, unknown>).serial = -1,
      /"static_key.serial" is -1, expected an integer from 0 to 4294967295/,
    ],
    [(f) => (f.static_key as Record<string, unknown>).created = 1.5, /"static_key.created" is 1.5/],
  ];
  for (const [mutate, pattern] of cases) {
    const file = fixture();
    mutate(file);
    assertRefused(file, pattern);
  }
});

Deno.test("verifyBinding() accepts the identity's binding and fails for a different static key", () => {
  const identity = loadFixture();
  assert.equal(verifyBinding(identity.publicKey, identity.binding), true);
  const other = generateX25519KeyPair().publicKey;
  assert.equal(verifyBinding(identity.publicKey, { ...identity.binding, staticKey: other }), false);
  assert.equal(verifyBinding(identity.publicKey, { ...identity.binding, serial: 1 }), false);
  assert.equal(verifyBinding(identity.publicKey, { ...identity.binding, created: 0 }), false);
  assert.equal(verifyBinding(loadFixture(1).publicKey, identity.binding), false);
  assert.equal(verifyBinding(identity.publicKey, { ...identity.binding, serial: 2 ** 32 }), false);
});

Deno.test("signBinding() signs a rotated static key that verifies under the same identity", () => {
  const identity = loadFixture();
  const next = generateX25519KeyPair();
  const binding = signBinding(identity.seed, { staticKey: next.publicKey, serial: 1, created: 5 });
  assert.equal(verifyBinding(identity.publicKey, binding), true);
  assert.throws(
    () => signBinding(identity.seed, { staticKey: new Uint8Array(31), serial: 1, created: 5 }),
    /expected 32 bytes/,
  );
});

Deno.test("verifySelfDescription() accepts a signed description and fails when the hostname is altered", () => {
  const identity = loadFixture();
  const description = signSelfDescription(identity.seed, {
    stamp: identity.stamp,
    hostname: "web-1",
    time: 1_700_000_000_000,
  });
  assert.equal(verifySelfDescription(description), true);
  assert.equal(verifySelfDescription({ ...description, hostname: "web-2" }), false);
  assert.equal(verifySelfDescription({ ...description, hostname: null }), false);
  assert.equal(verifySelfDescription({ ...description, time: description.time + 1 }), false);
  assert.equal(verifySelfDescription({ ...description, stamp: loadFixture(1).stamp }), false);
  const bare = signSelfDescription(identity.seed, { stamp: identity.stamp });
  assert.equal(bare.hostname, null);
  assert.equal(verifySelfDescription(bare), true);
});

Deno.test("signSelfDescription() refuses a stamp that is not the key's", () => {
  assert.throws(
    () => signSelfDescription(loadFixture(0).seed, { stamp: loadFixture(1).stamp }),
    /proves no address for this key/,
  );
});

Deno.test("validateHostname() refuses hostnames that look like addresses", () => {
  for (const hostname of ["3fa209c177e4", "deadbeefcafe", "000000000000"]) {
    assert.throws(() => validateHostname(hostname), /would read as an address/, hostname);
  }
  // Upper case or dots never reach the address check: they fail the charset first.
  assert.throws(() => validateHostname("3fa2.09c1.77e4"), /expected 1 to 63 of a-z/);
  const identity = loadFixture();
  assert.throws(
    () => signSelfDescription(identity.seed, { stamp: identity.stamp, hostname: "3fa209c177e4" }),
    TypeError,
  );
});

Deno.test("validateHostname() accepts labels of a-z, 0-9 and inner dashes up to 63 characters", () => {
  for (const ok of ["a", "web-1", "3fa209c177e", "3fa209c177e45", "x".repeat(63), "a-b-c"]) {
    validateHostname(ok);
  }
  for (const bad of ["", "-web", "web-", "Web", "web_1", "web.1", "x".repeat(64), "wéb"]) {
    assert.throws(() => validateHostname(bad), /^TypeError: Cannot use hostname .*: expected/, bad);
  }
});

Deno.test("fingerprint() is 160 bits of base32 in groups of 4, parsed leniently", () => {
  const identity = loadFixture();
  const print = fingerprint(identity.publicKey);
  assert.match(print, /^[a-z2-7]{4}(-[a-z2-7]{4}){7}$/);
  assert.equal(print, identity.fingerprint);
  const sloppy = print.toUpperCase().replaceAll("-", " ");
  assert.equal(parseFingerprint(sloppy), print);
  assert.equal(parseFingerprint(print.replaceAll("-", "")), print);
  assert.equal(fingerprintMatches(identity.publicKey, sloppy), true);
  assert.equal(fingerprintMatches(loadFixture(1).publicKey, print), false);
  assert.equal(fingerprintMatches(identity.publicKey, "abcd"), false);
  assert.throws(() => parseFingerprint(print.slice(0, -1)), /expected 32 base32 letters/);
  assert.throws(() => parseFingerprint(print.replace(/[a-z]/, "1")), TypeError);
  // The same parse without an exception, for callers that try names of every kind.
  assert.equal(fingerprintIn(sloppy), print);
  for (
    const text of [print.slice(0, -1), print.replace(/[a-z]/, "1"), "", "worker-2", `${print}a`]
  ) {
    assert.equal(fingerprintIn(text), null, text);
    assert.throws(() => parseFingerprint(text), TypeError);
  }
});
