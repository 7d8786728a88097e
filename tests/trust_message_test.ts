import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createPublicKey, verify as nodeVerify } from "node:crypto";
import fc from "fast-check";
import { TRUST_MAX_CLOCK_SKEW_MS, TRUST_MESSAGE_MAX, TRUST_REASON_MAX } from "../src/constants.ts";
import { sign } from "../src/identity/ed25519.ts";
import { decodeIdentityFile, type Identity } from "../src/identity/identity.ts";
import { isValidHostname } from "../src/identity/self_description.ts";
import { concat, DecodeError, utf8, Writer } from "../src/bytes.ts";
import {
  checkTrustMessage,
  decodeTrustMessage,
  replayKey,
  type SignedTrustMessage,
  signTrustMessage,
  type TrustContext,
  type TrustKind,
  type TrustMessage,
  TrustMessageError,
  type TrustMessageErrorReason,
} from "../src/wire/trust_message.ts";
import { assertCanonicalOrRefusedAsync, assertRefusesAsync } from "./_codec_contract.ts";

const FIXTURES: unknown[] = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/identities.json", import.meta.url)),
);
const ids: Identity[] = FIXTURES.map((o) => decodeIdentityFile(JSON.stringify(o)));
const A = ids[0]!;
const B = ids[1]!;
const C = ids[2]!;

const hex = (s: string): Uint8Array => Uint8Array.fromHex(s);
const ZERO32 = new Uint8Array(32);
const NONCE = hex("000102030405060708090a0b0c0d0e0f");
const CREATED = 1_700_000_000_000; // 2023-11-14T22:13:20Z
const EXPIRES = 1_700_000_600_000; // ten minutes later
const SESSION = hex("5e".repeat(32)); // stands in for a Noise handshake hash

// Worked example (docs/PROTOCOL.md): a request from fixture 0 (ca63.60ff.ff83)
// to fixture 1 (2a87.aa10.6c67), carried offline, hostname "alpha", reason
// "deploy bot". 220 bytes; Ed25519 is deterministic, so the signature is too.
//   01                                  version 1
//   01                                  kind 1 = request
//   9041537cdef8b3eccf1211ffea6d0964
//   75e25671d75ca0ddea7a0fffc285d3c4    from_key (fixture 0)
//   20839e3881cb1798                    from_stamp (proves ca63.60ff.ff83)
//   ee5157e9838173c6dd4cf452db7fe06a
//   bb1d4bf07a6e411a74ec132cea764145    to_key (fixture 1)
//   000102030405060708090a0b0c0d0e0f    nonce
//   0000018bcfe56800                    created 1700000000000 ms (2023-11-14T22:13:20Z)
//   0000018bcfee8fc0                    expires 1700000600000 ms (10 minutes later)
//   00 x 32                             binding: none (offline, so expires is required)
//   05 616c706861                       hostname "alpha"
//   000a 6465706c6f7920626f74           reason "deploy bot"
//   6b7725d22ae614b0a1a44f5579f610e2
//   3f8126b893ca0e4bd75c70fc15f105ab
//   d7d7879ad42f44ebb9694aa082a6eb25
//   6a4f3f94c1f261111cbbdacd03ffe30d    Ed25519 over utf8("pilot/trust/v1") || body
// SHA-256 of the 220 bytes (what an accept of it names):
//   97b8e061a174433e5c19505282b430c9e862baeb5555b4b801dd12a6651fbbb3
const EXAMPLE_HEX = [
  "01",
  "01",
  "9041537cdef8b3eccf1211ffea6d096475e25671d75ca0ddea7a0fffc285d3c4",
  "20839e3881cb1798",
  "ee5157e9838173c6dd4cf452db7fe06abb1d4bf07a6e411a74ec132cea764145",
  "000102030405060708090a0b0c0d0e0f",
  "0000018bcfe56800",
  "0000018bcfee8fc0",
  "00".repeat(32),
  "05",
  "616c706861",
  "000a",
  "6465706c6f7920626f74",
  "6b7725d22ae614b0a1a44f5579f610e23f8126b893ca0e4bd75c70fc15f105ab",
  "d7d7879ad42f44ebb9694aa082a6eb256a4f3f94c1f261111cbbdacd03ffe30d",
].join("");
const EXAMPLE_HASH = "97b8e061a174433e5c19505282b430c9e862baeb5555b4b801dd12a6651fbbb3";

/** The offline request of the worked example, as passed to signTrustMessage(). */
function exampleRequest(): Omit<TrustMessage, "fromKey"> {
  return {
    kind: "request",
    fromStamp: A.stamp,
    toKey: B.publicKey,
    nonce: NONCE,
    created: CREATED,
    expires: EXPIRES,
    binding: ZERO32,
    hostname: "alpha",
    reason: "deploy bot",
  };
}

// --- An encoder written from the spec, independent of the module under test,
// so tests can sign bodies the module itself refuses to produce.

interface RawFields {
  version?: number;
  kind?: number;
  fromKey?: Uint8Array;
  fromStamp?: Uint8Array;
  toKey?: Uint8Array;
  nonce?: Uint8Array;
  created?: bigint;
  expires?: bigint;
  binding?: Uint8Array;
  /** Everything after the binding, as raw bytes. */
  tail?: Uint8Array;
}

function rawBody(f: RawFields = {}): Uint8Array {
  return new Writer()
    .u8(f.version ?? 1)
    .u8(f.kind ?? 1)
    .bytes(f.fromKey ?? A.publicKey)
    .bytes(f.fromStamp ?? A.stamp)
    .bytes(f.toKey ?? B.publicKey)
    .bytes(f.nonce ?? NONCE)
    .u64(f.created ?? BigInt(CREATED))
    .u64(f.expires ?? BigInt(EXPIRES))
    .bytes(f.binding ?? ZERO32)
    .bytes(f.tail ?? requestTail("", utf8("hi")))
    .finish();
}

function requestTail(hostname: string, reason: Uint8Array, reasonLength = reason.length) {
  const h = utf8(hostname);
  return new Writer().u8(h.length).bytes(h).u16(reasonLength).bytes(reason).finish();
}

function rejectTail(reason: Uint8Array): Uint8Array {
  return new Writer().bytes(hex("ab".repeat(32))).u16(reason.length).bytes(reason).finish();
}

function signRaw(body: Uint8Array, seed = A.seed): Uint8Array {
  return concat(body, sign(seed, concat(utf8("pilot/trust/v1"), body)));
}

/** Asserts that `decodeTrustMessage` refuses `bytes` with a TrustMessageError of exactly `reason`. */
async function refuses(bytes: Uint8Array, reason: TrustMessageErrorReason): Promise<void> {
  await assertRefusesAsync(decodeTrustMessage, bytes, reason, { error: TrustMessageError });
}

/** The decoder contract: a decode whose bytes are exactly the input, or a TrustMessageError. */
async function decodesExactlyOrRefuses(bytes: Uint8Array): Promise<void> {
  const bytesOf = (signed: SignedTrustMessage) => signed.bytes;
  await assertCanonicalOrRefusedAsync(decodeTrustMessage, bytesOf, bytes, {
    error: TrustMessageError,
  });
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes.slice())).toHex();
}

// --- Encoding and the worked example

Deno.test("signTrustMessage() writes the worked example byte for byte", async () => {
  const signed = await signTrustMessage(A.seed, exampleRequest());
  assert.equal(signed.bytes.toHex(), EXAMPLE_HEX);
  assert.equal(signed.bytes.length, 220);
  assert.equal(signed.hash.toHex(), EXAMPLE_HASH);
  assert.equal(signed.hash.toHex(), await sha256Hex(signed.bytes));
});

Deno.test("the worked example's signature covers the domain label and the body (checked by node:crypto)", () => {
  const bytes = hex(EXAMPLE_HEX);
  const body = bytes.subarray(0, bytes.length - 64);
  const signature = bytes.subarray(bytes.length - 64);
  const key = createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(A.publicKey).toString("base64url") },
    format: "jwk",
  });
  assert.ok(nodeVerify(null, concat(utf8("pilot/trust/v1"), body), key, signature));
  assert.ok(!nodeVerify(null, body, key, signature), "the label must be part of what is signed");
});

Deno.test("decodeTrustMessage() reads the worked example's fields", async () => {
  const { message, bytes, hash } = await decodeTrustMessage(hex(EXAMPLE_HEX));
  assert.equal(bytes.toHex(), EXAMPLE_HEX);
  assert.equal(hash.toHex(), EXAMPLE_HASH);
  assert.deepEqual(message, { ...exampleRequest(), fromKey: A.publicKey });
});

Deno.test("the independent test encoder agrees with signTrustMessage() on the worked example", () => {
  const body = rawBody({ tail: requestTail("alpha", utf8("deploy bot")) });
  assert.equal(signRaw(body).toHex(), EXAMPLE_HEX);
});

Deno.test("each kind round-trips through signTrustMessage() and decodeTrustMessage()", async () => {
  const request = await signTrustMessage(A.seed, exampleRequest());
  const common = {
    fromStamp: B.stamp,
    toKey: A.publicKey,
    nonce: hex("f0".repeat(16)),
    created: CREATED + 1,
    expires: 0,
    binding: SESSION,
  };
  const accept = await signTrustMessage(B.seed, {
    ...common,
    kind: "accept",
    requestHash: request.hash,
  });
  const reject = await signTrustMessage(B.seed, {
    ...common,
    kind: "reject",
    requestHash: request.hash,
    reason: "not today",
  });
  const revoke = await signTrustMessage(B.seed, {
    ...common,
    kind: "revoke",
    acceptHash: accept.hash,
  });
  const bare = await signTrustMessage(A.seed, { ...exampleRequest(), hostname: "", reason: "" });
  const cases: [SignedTrustMessage, TrustMessage, number][] = [
    [request, { ...exampleRequest(), fromKey: A.publicKey }, 220],
    [accept, { ...common, kind: "accept", fromKey: B.publicKey, requestHash: request.hash }, 234],
    [
      reject,
      {
        ...common,
        kind: "reject",
        fromKey: B.publicKey,
        requestHash: request.hash,
        reason: "not today",
      },
      245,
    ],
    [revoke, { ...common, kind: "revoke", fromKey: B.publicKey, acceptHash: accept.hash }, 234],
    [
      bare,
      { ...exampleRequest(), fromKey: A.publicKey, hostname: "", reason: "" },
      138 + 1 + 2 + 64,
    ],
  ];
  for (const [signed, expected, size] of cases) {
    assert.deepEqual(signed.message, expected);
    assert.equal(signed.bytes.length, size, expected.kind);
    const again = await decodeTrustMessage(signed.bytes);
    assert.deepEqual(again, signed);
    assert.equal(signed.hash.toHex(), await sha256Hex(signed.bytes));
  }
});

Deno.test("signTrustMessage() treats an omitted hostname and reason as empty", async () => {
  const { hostname: _h, reason: _r, ...rest } = exampleRequest();
  const signed = await signTrustMessage(A.seed, rest);
  assert.equal(signed.message.hostname, "");
  assert.equal(signed.message.reason, "");
});

Deno.test("the largest request fits TRUST_MESSAGE_MAX", async () => {
  const signed = await signTrustMessage(A.seed, {
    ...exampleRequest(),
    hostname: "a".repeat(63),
    reason: "r".repeat(TRUST_REASON_MAX),
  });
  assert.equal(signed.bytes.length, 138 + 1 + 63 + 2 + 1024 + 64);
  assert.ok(signed.bytes.length <= TRUST_MESSAGE_MAX);
});

// --- The signature covers the exact bytes

Deno.test("flipping any single byte of a message makes decodeTrustMessage() throw TrustMessageError", async () => {
  const bytes = hex(EXAMPLE_HEX);
  for (const mask of [0x01, 0x80, 0xff]) {
    for (let i = 0; i < bytes.length; i++) {
      const flipped = bytes.slice();
      flipped[i]! ^= mask;
      await assert.rejects(
        decodeTrustMessage(flipped),
        TrustMessageError,
        `flip 0x${mask.toString(16)} at ${i} was accepted`,
      );
    }
  }
});

Deno.test("a signature made without the domain label is refused", async () => {
  const body = rawBody();
  await refuses(concat(body, sign(A.seed, body)), "bad_signature");
});

Deno.test("a signature by another key than from_key is refused", async () => {
  await refuses(signRaw(rawBody(), C.seed), "bad_signature");
});

Deno.test("a malleated signature (S + L) with the same meaning gets no hash of its own", async () => {
  const bytes = hex(EXAMPLE_HEX);
  const s = bytes.subarray(bytes.length - 32);
  let n = 0n;
  for (let i = 31; i >= 0; i--) n = (n << 8n) | BigInt(s[i]!);
  n += 2n ** 252n + 27742317777372353535851937790883648493n;
  const malleated = bytes.slice();
  for (let i = 0; i < 32; i++) {
    malleated[bytes.length - 32 + i] = Number((n >> BigInt(8 * i)) & 0xffn);
  }
  await refuses(malleated, "bad_signature");
});

Deno.test("equivalent-looking content signs to different bytes and hashes", async () => {
  const nfc = await signTrustMessage(A.seed, { ...exampleRequest(), reason: "caf\u00e9" });
  const nfd = await signTrustMessage(A.seed, { ...exampleRequest(), reason: "cafe\u0301" });
  const bom = await signTrustMessage(A.seed, { ...exampleRequest(), reason: "\ufeffcaf\u00e9" });
  const later = await signTrustMessage(A.seed, { ...exampleRequest(), created: CREATED + 1 });
  const example = await decodeTrustMessage(hex(EXAMPLE_HEX));
  const hashes = new Set([nfc, nfd, bom, later, example].map((m) => m.hash.toHex()));
  assert.equal(hashes.size, 5);
  // Each decodes to exactly its own text: no normalisation, no BOM stripping.
  assert.equal((await decodeTrustMessage(nfd.bytes)).message.reason, "cafe\u0301");
  assert.equal((await decodeTrustMessage(bom.bytes)).message.reason, "\ufeffcaf\u00e9");
  assert.equal((await decodeTrustMessage(nfc.bytes)).hash.toHex(), nfc.hash.toHex());
});

Deno.test("decodeTrustMessage() works on a private copy, so later changes to the input do not leak in", async () => {
  const input = hex(EXAMPLE_HEX);
  const pending = decodeTrustMessage(input);
  input.fill(0); // while the decoder awaits its hash
  const signed = await pending;
  assert.equal(signed.bytes.toHex(), EXAMPLE_HEX);
  assert.equal(signed.hash.toHex(), EXAMPLE_HASH);
  signed.message.fromKey.fill(0);
  assert.equal(signed.bytes.toHex(), EXAMPLE_HEX, "fields must not alias the wire bytes");
});

// --- Reasons

Deno.test("a reason of 1024 bytes is accepted and one of 1025 bytes refused", async () => {
  const ok = await signTrustMessage(A.seed, { ...exampleRequest(), reason: "\u00e9".repeat(512) });
  assert.equal(ok.message.reason, "\u00e9".repeat(512));
  await assert.rejects(
    signTrustMessage(A.seed, { ...exampleRequest(), reason: "x" + "\u00e9".repeat(512) }),
    TypeError,
  );
  await decodeTrustMessage(signRaw(rawBody({ tail: requestTail("", utf8("x".repeat(1024))) })));
  await refuses(signRaw(rawBody({ tail: requestTail("", utf8("x".repeat(1025))) })), "malformed");
  await decodeTrustMessage(signRaw(rawBody({ kind: 3, tail: rejectTail(utf8("x".repeat(1024))) })));
  await refuses(
    signRaw(rawBody({ kind: 3, tail: rejectTail(utf8("x".repeat(1025))) })),
    "malformed",
  );
});

Deno.test("a reason that is not valid UTF-8 is refused even when correctly signed", async () => {
  const bad = [
    "80", // lone continuation byte
    "c0af", // overlong "/"
    "e08080", // overlong NUL-ish
    "eda080", // UTF-16 surrogate D800
    "f4908080", // above U+10FFFF
    "e282", // truncated sequence
    "ff",
  ];
  for (const b of bad) {
    await refuses(signRaw(rawBody({ tail: requestTail("", hex(b)) })), "malformed");
    await refuses(signRaw(rawBody({ kind: 3, tail: rejectTail(hex(b)) })), "malformed");
  }
});

Deno.test("a NUL byte in a reason is refused", async () => {
  await refuses(signRaw(rawBody({ tail: requestTail("", utf8("a\0b")) })), "malformed");
  await refuses(signRaw(rawBody({ kind: 3, tail: rejectTail(utf8("\0")) })), "malformed");
  await assert.rejects(
    signTrustMessage(A.seed, { ...exampleRequest(), reason: "a\0b" }),
    TypeError,
  );
});

Deno.test("control characters in a reason are kept as they are (escaping is for display)", async () => {
  const reason = "line\nnext\x1b[31mred\x7f\u2028";
  const signed = await signTrustMessage(A.seed, { ...exampleRequest(), reason });
  assert.equal((await decodeTrustMessage(signed.bytes)).message.reason, reason);
});

Deno.test("signTrustMessage() refuses a reason with a lone surrogate instead of altering it", async () => {
  await assert.rejects(
    signTrustMessage(A.seed, { ...exampleRequest(), reason: "ok\ud800" }),
    TypeError,
  );
});

// --- Hostnames

Deno.test("a request hostname outside the hostname rules is refused", async () => {
  for (const hostname of ["Alpha", "al_pha", "-alpha", "alpha-", "3fa209c177e4", "a".repeat(64)]) {
    await assert.rejects(
      signTrustMessage(A.seed, { ...exampleRequest(), hostname }),
      TypeError,
      hostname,
    );
    await refuses(signRaw(rawBody({ tail: requestTail(hostname, utf8("hi")) })), "malformed");
  }
  await refuses(signRaw(rawBody({ tail: requestTail("al\u00e9", utf8("hi")) })), "malformed");
  const ok = await decodeTrustMessage(signRaw(rawBody({ tail: requestTail("a-1", utf8("")) })));
  assert.equal(ok.message.hostname, "a-1");
});

// --- Keys and stamps

Deno.test("a weak or non-canonical from_key is refused as bad_key", async () => {
  const weak = [
    "01" + "00".repeat(31), // the identity point
    "00".repeat(32), // a point of order 4
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p, non-canonical
  ];
  for (const k of weak) {
    await refuses(signRaw(rawBody({ fromKey: hex(k) })), "bad_key");
  }
});

Deno.test("a weak to_key is refused by the decoder and by signTrustMessage()", async () => {
  const identity = hex("01" + "00".repeat(31));
  await refuses(signRaw(rawBody({ toKey: identity })), "bad_key");
  await assert.rejects(
    signTrustMessage(A.seed, { ...exampleRequest(), toKey: identity }),
    TypeError,
  );
});

Deno.test("a stamp that proves no address for from_key is refused as bad_stamp", async () => {
  await refuses(signRaw(rawBody({ fromStamp: new Uint8Array(8) })), "bad_stamp");
  await refuses(signRaw(rawBody({ fromStamp: B.stamp })), "bad_stamp");
  await assert.rejects(
    signTrustMessage(A.seed, { ...exampleRequest(), fromStamp: B.stamp }),
    TypeError,
  );
});

// --- Structure

Deno.test("decodeTrustMessage() refuses unknown versions and kinds", async () => {
  for (const version of [0, 2, 255]) await refuses(signRaw(rawBody({ version })), "malformed");
  for (const kind of [0, 5, 255]) await refuses(signRaw(rawBody({ kind })), "malformed");
});

Deno.test("decodeTrustMessage() refuses trailing bytes inside the signed body", async () => {
  const tail = concat(requestTail("", utf8("hi")), hex("00"));
  await refuses(signRaw(rawBody({ tail })), "malformed");
  const acceptTail = concat(hex("ab".repeat(32)), hex("00"));
  await refuses(signRaw(rawBody({ kind: 2, tail: acceptTail })), "malformed");
});

Deno.test("decodeTrustMessage() refuses times of 2^53 ms or more", async () => {
  await refuses(signRaw(rawBody({ created: 2n ** 53n })), "malformed");
  await refuses(signRaw(rawBody({ expires: 2n ** 64n - 1n })), "malformed");
  await decodeTrustMessage(signRaw(rawBody({ created: 2n ** 53n - 1n })));
});

Deno.test("expires 0 is refused without a channel binding and accepted with one", async () => {
  await refuses(signRaw(rawBody({ expires: 0n })), "malformed");
  await assert.rejects(signTrustMessage(A.seed, { ...exampleRequest(), expires: 0 }), TypeError);
  const bound = await decodeTrustMessage(signRaw(rawBody({ expires: 0n, binding: SESSION })));
  assert.equal(bound.message.expires, 0);
});

Deno.test("decodeTrustMessage() refuses messages above TRUST_MESSAGE_MAX before reading them", async () => {
  await refuses(concat(hex(EXAMPLE_HEX), new Uint8Array(TRUST_MESSAGE_MAX - 220 + 1)), "too_large");
  await refuses(new Uint8Array(16 * 1024 * 1024), "too_large");
  // At the limit it is parsed (and refused for its trailing bytes, not its size).
  await refuses(concat(hex(EXAMPLE_HEX), new Uint8Array(TRUST_MESSAGE_MAX - 220)), "malformed");
});

Deno.test("a declared reason length is checked against the limit and the bytes left before reading", async () => {
  const causeOf = async (bytes: Uint8Array): Promise<string> => {
    try {
      await decodeTrustMessage(bytes);
    } catch (e) {
      assert.ok(e instanceof TrustMessageError && e.reason === "malformed");
      assert.ok(e.cause instanceof DecodeError);
      return e.cause.reason;
    }
    throw new Error("expected a refusal");
  };
  // Lengths that claim more than the message holds.
  assert.equal(
    await causeOf(signRaw(rawBody({ tail: requestTail("", utf8("hi"), 700) }))),
    "truncated",
  );
  assert.equal(
    await causeOf(signRaw(rawBody({ tail: requestTail("", utf8("hi"), 0xffff) }))),
    "reason_too_long",
  );
  const hostnameTooLong = new Writer().u8(200).finish();
  assert.equal(await causeOf(signRaw(rawBody({ tail: hostnameTooLong }))), "bad_hostname");
});

Deno.test("decodeTrustMessage() refuses every truncation of a valid message", async () => {
  const bytes = hex(EXAMPLE_HEX);
  for (let n = 0; n < bytes.length; n++) {
    await assert.rejects(
      decodeTrustMessage(bytes.subarray(0, n)),
      TrustMessageError,
      `length ${n}`,
    );
  }
});

Deno.test("signTrustMessage() refuses fields that belong to another kind", async () => {
  const base = {
    fromStamp: A.stamp,
    toKey: B.publicKey,
    nonce: NONCE,
    created: CREATED,
    expires: 0,
    binding: SESSION,
  };
  const wrong: Omit<TrustMessage, "fromKey">[] = [
    { ...base, kind: "request", requestHash: ZERO32 },
    { ...base, kind: "accept", requestHash: ZERO32, reason: "why" },
    { ...base, kind: "accept", requestHash: ZERO32, hostname: "alpha" },
    { ...base, kind: "reject", requestHash: ZERO32, acceptHash: ZERO32 },
    { ...base, kind: "revoke", acceptHash: ZERO32, requestHash: ZERO32 },
    { ...base, kind: "accept" }, // missing request hash
    { ...base, kind: "revoke" }, // missing accept hash
    { ...base, kind: "nonsense" as TrustKind },
  ];
  for (const m of wrong) await assert.rejects(signTrustMessage(A.seed, m), TypeError, m.kind);
});

Deno.test("signTrustMessage() refuses wrong field lengths and times", async () => {
  const bad: Partial<Omit<TrustMessage, "fromKey">>[] = [
    { nonce: new Uint8Array(15) },
    { binding: new Uint8Array(31) },
    { toKey: new Uint8Array(33) },
    { fromStamp: new Uint8Array(7) },
    { created: -1 },
    { created: 1.5 },
    { expires: 2 ** 53 },
  ];
  for (const patch of bad) {
    await assert.rejects(
      signTrustMessage(A.seed, { ...exampleRequest(), ...patch }),
      TypeError,
      JSON.stringify(Object.keys(patch)),
    );
  }
  await assert.rejects(signTrustMessage(new Uint8Array(31), exampleRequest()), TypeError);
});

// --- checkTrustMessage()

const bound = await signTrustMessage(A.seed, { ...exampleRequest(), expires: 0, binding: SESSION });
const offline = await decodeTrustMessage(hex(EXAMPLE_HEX));
const overSession: TrustContext = {
  localKey: B.publicKey,
  sessionPeerKey: A.publicKey,
  sessionBinding: SESSION,
  now: CREATED,
};
const atRest: TrustContext = { localKey: B.publicKey, now: CREATED };

function refusedWith(m: SignedTrustMessage, ctx: TrustContext, code: string): void {
  const result = checkTrustMessage(m, ctx);
  assert.ok(!result.ok, `expected ${code}, got ok`);
  assert.equal(result.code, code, result.message);
  assert.ok(/^[A-Z]/.test(result.message) && result.message.length > 0);
}

Deno.test("checkTrustMessage() accepts a channel-bound message from the session peer with no clock", () => {
  assert.deepEqual(checkTrustMessage(bound, overSession), { ok: true });
  // A bound message's expiry is ignored, even one long past or an absurd clock.
  assert.deepEqual(checkTrustMessage(bound, { ...overSession, now: 8.64e15 }), { ok: true });
});

Deno.test("checkTrustMessage() ignores the expiry of a bound message that carries one", async () => {
  const withExpiry = await signTrustMessage(A.seed, { ...exampleRequest(), binding: SESSION });
  assert.deepEqual(checkTrustMessage(withExpiry, { ...overSession, now: EXPIRES + 1 }), {
    ok: true,
  });
});

Deno.test("checkTrustMessage() accepts an unexpired offline message", () => {
  assert.deepEqual(checkTrustMessage(offline, atRest), { ok: true });
  assert.deepEqual(checkTrustMessage(offline, { ...atRest, now: EXPIRES }), { ok: true });
});

Deno.test("checkTrustMessage() refuses a message addressed to another key as misaddressed", () => {
  refusedWith(offline, { ...atRest, localKey: C.publicKey }, "misaddressed");
  refusedWith(bound, { ...overSession, localKey: A.publicKey }, "misaddressed");
});

Deno.test("checkTrustMessage() refuses a message whose signer is not the session peer", () => {
  refusedWith(bound, { ...overSession, sessionPeerKey: C.publicKey }, "wrong_sender");
});

Deno.test("checkTrustMessage() refuses a message bound to another session, or to none, over a session", () => {
  refusedWith(bound, { ...overSession, sessionBinding: hex("5f".repeat(32)) }, "wrong_binding");
  refusedWith(offline, overSession, "wrong_binding");
});

Deno.test("checkTrustMessage() refuses a channel-bound message that arrives offline", () => {
  refusedWith(bound, atRest, "wrong_binding");
});

Deno.test("checkTrustMessage() refuses an offline message without an expiry", () => {
  // The decoder already refuses this layout; the check still holds for hand-made values.
  const noExpiry = { ...offline, message: { ...offline.message, expires: 0 } };
  refusedWith(noExpiry, atRest, "missing_expiry");
});

Deno.test("checkTrustMessage() refuses an offline message after its expiry", () => {
  refusedWith(offline, { ...atRest, now: EXPIRES + 1 }, "expired");
});

Deno.test("checkTrustMessage() reports a creation time far in the future as clock_skew", () => {
  const skew = TRUST_MAX_CLOCK_SKEW_MS;
  assert.deepEqual(checkTrustMessage(offline, { ...atRest, now: CREATED - skew }), { ok: true });
  refusedWith(offline, { ...atRest, now: CREATED - skew - 1 }, "clock_skew");
  refusedWith(offline, { ...atRest, now: CREATED - 1001, maxSkewMs: 1000 }, "clock_skew");
  assert.deepEqual(
    checkTrustMessage(offline, { ...atRest, now: CREATED - 1000, maxSkewMs: 1000 }),
    { ok: true },
  );
});

Deno.test("checkTrustMessage() throws TypeError on a malformed context", () => {
  const bad: TrustContext[] = [
    { ...atRest, localKey: new Uint8Array(31) },
    { ...atRest, sessionPeerKey: A.publicKey }, // binding missing
    { ...atRest, sessionBinding: SESSION }, // peer key missing
    { ...overSession, sessionBinding: ZERO32 }, // would let offline messages pass as bound
    { ...atRest, now: NaN },
    { ...atRest, maxSkewMs: -1 },
  ];
  for (const ctx of bad) assert.throws(() => checkTrustMessage(offline, ctx), TypeError);
});

Deno.test("replayKey() is the sender key and nonce in hex", () => {
  assert.equal(replayKey(offline), `${A.publicKey.toHex()}:000102030405060708090a0b0c0d0e0f`);
});

// --- Properties

const hostnameArb = fc.oneof(
  fc.constant(""),
  fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$|^[a-z0-9]$/).filter(isValidHostname),
);
const reasonArb = fc.string({ unit: "binary", maxLength: 400 }).filter((s) =>
  s.isWellFormed() && !s.includes("\0") && utf8(s).length <= TRUST_REASON_MAX
);
const bytesArb = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const messageArb = fc.record({
  signer: fc.integer({ min: 0, max: ids.length - 1 }),
  recipient: fc.integer({ min: 0, max: ids.length - 1 }),
  kind: fc.constantFrom<TrustKind>("request", "accept", "reject", "revoke"),
  nonce: bytesArb(16),
  created: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  expires: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  bound: fc.boolean(),
  binding: bytesArb(32).filter((b) => b.some((x) => x !== 0)),
  hostname: hostnameArb,
  reason: reasonArb,
  hash: bytesArb(32),
});

type Drawn = typeof messageArb extends fc.Arbitrary<infer T> ? T : never;

function fieldsOf(r: Drawn): Omit<TrustMessage, "fromKey"> {
  const base = {
    fromStamp: ids[r.signer]!.stamp,
    toKey: ids[r.recipient]!.publicKey,
    nonce: r.nonce,
    created: r.created,
    expires: r.bound && r.expires % 2 === 0 ? 0 : r.expires,
    binding: r.bound ? r.binding : ZERO32,
  };
  switch (r.kind) {
    case "request":
      return { ...base, kind: r.kind, hostname: r.hostname, reason: r.reason };
    case "accept":
      return { ...base, kind: r.kind, requestHash: r.hash };
    case "reject":
      return { ...base, kind: r.kind, requestHash: r.hash, reason: r.reason };
    case "revoke":
      return { ...base, kind: r.kind, acceptHash: r.hash };
  }
}

Deno.test("property: any valid message round-trips with its exact fields and bytes", async () => {
  await fc.assert(
    fc.asyncProperty(messageArb, async (r) => {
      const fields = fieldsOf(r);
      const signed = await signTrustMessage(ids[r.signer]!.seed, fields);
      assert.deepEqual(signed.message, { ...fields, fromKey: ids[r.signer]!.publicKey });
      const again = await decodeTrustMessage(signed.bytes);
      assert.deepEqual(again, signed);
    }),
    { numRuns: 150 },
  );
});

Deno.test("property: random bytes decode exactly or throw TrustMessageError", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: TRUST_MESSAGE_MAX + 50 }), decodesExactlyOrRefuses),
    { numRuns: 500 },
  );
});

Deno.test("property: random bytes behind a valid header decode exactly or throw TrustMessageError", async () => {
  const header = rawBody().subarray(0, 138);
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.uint8Array({ maxLength: 1200 }),
      async (kind, rest) => {
        const body = header.slice();
        body[1] = kind;
        await decodesExactlyOrRefuses(concat(body, rest));
        await decodesExactlyOrRefuses(signRaw(concat(body, rest)));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("property: truncations and mutations of valid messages decode exactly or throw TrustMessageError", async () => {
  const edit = fc.oneof(
    fc.record({
      op: fc.constant("set" as const),
      at: fc.nat(),
      value: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({
      op: fc.constant("cut" as const),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 80 }),
    }),
    fc.record({
      op: fc.constant("insert" as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 40 }),
    }),
    fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  );
  await fc.assert(
    fc.asyncProperty(
      messageArb,
      fc.array(edit, { minLength: 1, maxLength: 4 }),
      async (r, edits) => {
        let bytes: Uint8Array = (await signTrustMessage(ids[r.signer]!.seed, fieldsOf(r))).bytes
          .slice();
        for (const e of edits) {
          const at = bytes.length === 0 ? 0 : e.at % bytes.length;
          if (e.op === "set") {
            bytes[at] = e.value;
          } else if (e.op === "cut") {
            bytes = concat(bytes.subarray(0, at), bytes.subarray(at + e.length));
          } else if (e.op === "insert") {
            bytes = concat(bytes.subarray(0, at), e.bytes, bytes.subarray(at));
          } else {
            bytes = bytes.slice(0, at);
          }
        }
        await decodesExactlyOrRefuses(bytes);
      },
    ),
    { numRuns: 200 },
  );
});
