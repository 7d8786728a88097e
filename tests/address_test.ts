import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import {
  type Address,
  addressToBytes,
  createStamp,
  decodeIdentityFile,
  deriveAddress,
  formatAddress,
  generateSeed,
  isAddressLike,
  parseAddress,
  parseAddressPort,
  publicKeyFromSeed,
  verifyStamp,
} from "../src/identity/mod.ts";

const fixtures = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/identities.json", import.meta.url)),
) as unknown[];

/** The stamp hash, computed here with WebCrypto rather than the code under test. */
async function stampDigest(key: Uint8Array, stamp: Uint8Array): Promise<Uint8Array> {
  const input = new Uint8Array([...new TextEncoder().encode("pilot/address/v1"), ...key, ...stamp]);
  return new Uint8Array(await crypto.subtle.digest("SHA-512", input));
}

function isTypeError(error: unknown): boolean {
  return error instanceof TypeError;
}

Deno.test("createStamp() finds a stamp for a fresh key that verifyStamp() accepts", async () => {
  const key = publicKeyFromSeed(generateSeed());
  const reports: number[] = [];
  const { address, stamp } = await createStamp(key, { onProgress: (n) => reports.push(n) });
  assert.equal(stamp.length, 8);
  assert.equal(verifyStamp(key, stamp), address);
  assert.equal(deriveAddress(key, stamp), address);
  const d = await stampDigest(key, stamp);
  assert.equal(d[6], 0);
  assert.equal(d[7], 0);
  assert.ok(d[8]! < 16);
  assert.equal(formatAddress(d.subarray(0, 6)), address);
  assert.ok(reports.length >= 1, "onProgress is called at least once, with the final count");
  for (let i = 1; i < reports.length; i++) assert.ok(reports[i]! > reports[i - 1]!);
});

Deno.test("createStamp() stops when its signal is aborted", async () => {
  const key = publicKeyFromSeed(generateSeed());
  const controller = new AbortController();
  let tried = 0;
  const search = createStamp(key, {
    progressEvery: 16,
    signal: controller.signal,
    onProgress: (n) => {
      tried = n;
      controller.abort(new Error("stop"));
    },
  });
  await search.then(
    // Only a hit among the first 16 hashes (odds 2^-16) may resolve.
    (found) => {
      assert.ok(tried <= 16, `search went on to ${tried} hashes after the abort`);
      assert.equal(verifyStamp(key, found.stamp), found.address);
    },
    (error: unknown) => {
      assert.equal((error as Error).message, "stop");
      assert.equal(tried, 16);
    },
  );
});

Deno.test("verifyStamp() refuses a stamp with 16 zero bits whose next 4 bits are not zero", () => {
  const key = publicKeyFromSeed(generateSeed());
  const stamp = new Uint8Array(8);
  const view = new DataView(stamp.buffer);
  let d: Uint8Array;
  for (let i = 0;; i++) {
    view.setUint32(4, i);
    d = new Uint8Array(
      createHash("sha512").update("pilot/address/v1").update(key).update(stamp).digest(),
    );
    if (d[6] === 0 && d[7] === 0 && d[8]! >= 16) break;
  }
  assert.equal(verifyStamp(key, stamp), null);
  assert.throws(() => deriveAddress(key, stamp), /expected 20 zero bits/);
});

Deno.test("verifyStamp() refuses a changed stamp, another key, and wrong lengths", () => {
  const file = decodeIdentityFile(JSON.stringify(fixtures[0]));
  const changed = file.stamp.slice();
  changed[7]! ^= 1;
  assert.equal(verifyStamp(file.publicKey, changed), null);
  assert.equal(verifyStamp(publicKeyFromSeed(generateSeed()), file.stamp), null);
  assert.equal(verifyStamp(file.publicKey, file.stamp.subarray(0, 7)), null);
  assert.equal(verifyStamp(file.publicKey.subarray(1), file.stamp), null);
  assert.throws(() => deriveAddress(file.publicKey, file.stamp.subarray(0, 7)), TypeError);
});

Deno.test("every fixture identity's stamp verifies to its address", async () => {
  assert.equal(fixtures.length, 8);
  const addresses = new Set<string>();
  for (const fixture of fixtures) {
    const identity = decodeIdentityFile(JSON.stringify(fixture));
    assert.equal(verifyStamp(identity.publicKey, identity.stamp), identity.address);
    const d = await stampDigest(identity.publicKey, identity.stamp);
    assert.equal(d.subarray(0, 6).toHex(), identity.address.replaceAll(".", ""));
    addresses.add(identity.address);
  }
  assert.equal(addresses.size, 8);
});

Deno.test("parseAddress() and formatAddress() round-trip", () => {
  const address = parseAddress("3fa2.09c1.77e4");
  assert.equal(address, "3fa2.09c1.77e4");
  assert.deepEqual(addressToBytes(address), Uint8Array.fromHex("3fa209c177e4"));
  assert.equal(formatAddress(addressToBytes(address)), address);
});

Deno.test("parseAddress() accepts upper case and missing dots", () => {
  for (
    const text of [
      "3FA2.09C1.77E4",
      "3fa209c177e4",
      "3FA209C177E4",
      "3fa2.09c177e4",
      "3fa209c1.77e4",
    ]
  ) {
    assert.equal(parseAddress(text), "3fa2.09c1.77e4", text);
  }
});

Deno.test("parseAddress() rejects 11 and 13 hex digits, bad characters and misplaced dots", () => {
  for (
    const text of [
      "3fa2.09c1.77e",
      "3fa209c177e",
      "3fa2.09c1.77e45",
      "3fa209c177e45",
      "3fa2.09c1.77g4",
      "3fa2.zz",
      "3fa.209c1.77e4",
      "3fa2..09c1.77e4",
      ".3fa2.09c1.77e4",
      "3fa2.09c1.77e4.",
      "3fa2-09c1-77e4",
      " 3fa2.09c1.77e4",
      "3fa2.09c1.77e4\n",
      "",
    ]
  ) {
    assert.throws(
      () => parseAddress(text),
      (error: unknown) =>
        isTypeError(error) &&
        (error as Error).message ===
          `Cannot parse address ${
            JSON.stringify(text)
          }: expected 12 hex digits like 3fa2.09c1.77e4`,
      JSON.stringify(text),
    );
  }
});

Deno.test("parseAddress() refuses the reserved 0000.0000.0000 and ffff.ffff.ffff", () => {
  for (const text of ["0000.0000.0000", "000000000000", "ffff.ffff.ffff", "FFFFFFFFFFFF"]) {
    assert.throws(() => parseAddress(text), /reserved/, text);
  }
  assert.throws(() => formatAddress(new Uint8Array(6)), /reserved/);
  assert.throws(() => formatAddress(new Uint8Array(6).fill(0xff)), /reserved/);
  assert.throws(() => formatAddress(new Uint8Array(5)), /expected 6 bytes/);
});

Deno.test("parseAddressPort() reads an address and a port from 0 to 65535", () => {
  assert.deepEqual(parseAddressPort("3fa2.09c1.77e4:1001"), {
    address: "3fa2.09c1.77e4" as Address,
    port: 1001,
  });
  assert.deepEqual(parseAddressPort("3FA209C177E4:0"), { address: "3fa2.09c1.77e4", port: 0 });
  assert.equal(parseAddressPort("3fa2.09c1.77e4:65535").port, 65535);
  for (
    const text of [
      "3fa2.09c1.77e4",
      "3fa2.09c1.77e4:",
      "3fa2.09c1.77e4:65536",
      "3fa2.09c1.77e4:-1",
      "3fa2.09c1.77e4:1e3",
      "3fa2.09c1.77e4:100000",
      "3fa2.09c1.77e4: 80",
      "3fa2.09c1.77e4:80:80",
      "0000.0000.0000:80",
      "host:80",
    ]
  ) {
    assert.throws(() => parseAddressPort(text), TypeError, text);
  }
  assert.throws(
    () => parseAddressPort("3fa2.09c1.77e4:65536"),
    /expected a number from 0 to 65535/,
  );
});

Deno.test("isAddressLike() spots 12 hex digits with or without dots", () => {
  for (const text of ["3fa2.09c1.77e4", "3fa209c177e4", "000000000000", "DEADBEEFCAFE"]) {
    assert.equal(isAddressLike(text), true, text);
  }
  for (const text of ["3fa209c177e", "3fa209c177e45", "deadbeefcafg", "web-1", "3fa2-09c1-77e4"]) {
    assert.equal(isAddressLike(text), false, text);
  }
});

Deno.test("formatAddress() then parseAddress() is the identity on every non-reserved address", () => {
  const bytes = fc.uint8Array({ minLength: 6, maxLength: 6 }).filter((b) =>
    !b.every((x) => x === 0) && !b.every((x) => x === 0xff)
  );
  fc.assert(fc.property(bytes, (b) => {
    const text = formatAddress(b);
    assert.match(text, /^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/);
    assert.equal(parseAddress(text), text);
    assert.equal(parseAddress(text.toUpperCase().replaceAll(".", "")), text);
    assert.deepEqual(addressToBytes(parseAddress(text)), b);
  }));
});

Deno.test("parseAddress() and parseAddressPort() throw nothing but TypeError on random strings", () => {
  const nearMiss = fc.string({
    unit: fc.constantFrom(..."0123456789abcdefABCDEFg.:-x "),
    maxLength: 20,
  });
  const anything = fc.oneof(fc.string({ unit: "grapheme", maxLength: 40 }), nearMiss);
  fc.assert(
    fc.property(anything, (text) => {
      for (const parse of [parseAddress, parseAddressPort]) {
        try {
          parse(text);
        } catch (error) {
          assert.ok(isTypeError(error), `${JSON.stringify(text)} threw ${error}`);
          assert.match((error as Error).message, /^Cannot (parse|use)/);
        }
      }
      if (isAddressLike(text) && !/^(0{4}\.?){2}0{4}$|^(f{4}\.?){2}f{4}$/i.test(text)) {
        assert.equal(formatAddress(addressToBytes(parseAddress(text))), parseAddress(text));
      }
    }),
    { numRuns: 2000 },
  );
});
