/**
 * The rendezvous record table (issue 9, step 2): publish with its checks in
 * cost order, lookups by address, key and hostname, first-claim hostname
 * binding, expiry, bounds and the refusal counters.
 */

import assert from "node:assert/strict";
import { formatAddress } from "../src/identity/address.ts";
import { fingerprint } from "../src/identity/fingerprint.ts";
import { decodeIdentityFile, type Identity } from "../src/identity/identity.ts";
import {
  MAILBOX_RETENTION_MS,
  signPresence,
  type VerifiedPresence,
  verifyPresence,
} from "../src/discovery/presence.ts";
import {
  decodePresenceRecord,
  encodePresenceRecord,
  MAX_PRESENCE_RECORD_SIZE,
  type UnsignedPresence,
} from "../src/wire/presence_record.ts";
import {
  PUBLISH_PER_KEY,
  PUBLISH_PER_SOURCE,
  PUBLISH_REFUSALS,
  type PublishRefusal,
  RECORD_OVERHEAD_BYTES,
  RecordStore,
  type RecordStoreOptions,
} from "../src/services/rendezvous/store.ts";
import benchIdentities from "./fixtures/bench_identities.json" with { type: "json" };
import { FUZZ_IDS, Rng, seedFor } from "./_fuzz.ts";

const NOW = 1_800_000_000_000;
const MINUTE = 60_000;
const SOURCE = "198.18.0.1";

const BENCH_IDS: Identity[] = benchIdentities.slice(0, 16).map((e) =>
  decodeIdentityFile(JSON.stringify(e))
);
const [A, B, C] = [FUZZ_IDS[0]!, FUZZ_IDS[1]!, FUZZ_IDS[2]!];

/** A signed record of `id`, public with one endpoint unless overridden. */
function record(id: Identity, overrides: Partial<UnsignedPresence> = {}): Uint8Array {
  return signPresence(id.seed, {
    publicKey: id.publicKey,
    stamp: id.stamp,
    hostname: "alpha",
    visibility: "public",
    serial: NOW,
    expiresAt: NOW + 30 * MINUTE,
    endpoints: [{ kind: "observed", hostname: "198.18.0.7", port: 7440 }],
    staticKey: id.binding.staticKey,
    staticSerial: id.binding.serial,
    mailboxes: [],
    ...overrides,
  });
}

/** A store with a settable clock. */
function storeAt(options: Partial<RecordStoreOptions> = {}) {
  const clock = { now: NOW };
  const store = new RecordStore({ now: () => clock.now, ...options });
  return { store, clock };
}

function refusedAs(result: ReturnType<RecordStore["publish"]>, reason: PublishRefusal): void {
  assert.deepEqual(result, { ok: false, reason });
}

Deno.test("publish() stores a record that lookups find by address, key and hostname", () => {
  const { store } = storeAt();
  const bytes = record(A);
  const result = store.publish(bytes, SOURCE);
  assert.deepEqual(result, { ok: true, changed: true, address: A.address, conflict: null });

  const expected = { record: bytes, address: A.address, hostname: "alpha", visibility: "public" };
  assert.deepEqual(store.lookupByAddress(A.address), expected);
  assert.deepEqual(store.lookupByKey(A.publicKey.toHex()), expected);
  assert.deepEqual(store.lookupByHostname("alpha"), { bound: expected, conflicts: [] });
  assert.equal(store.lookupByAddress(B.address), null);
  assert.equal(store.lookupByKey(B.publicKey.toHex()), null);
  assert.equal(store.lookupByHostname("beta"), null);
  assert.deepEqual(store.stats().records, 1);
  assert.deepEqual(store.stats().hostnames, 1);
});

Deno.test("publish() accepts the identical bytes again with changed: false", () => {
  const { store } = storeAt();
  const bytes = record(A);
  assert.equal(store.publish(bytes, SOURCE).ok, true);
  assert.deepEqual(store.publish(bytes.slice(), SOURCE), {
    ok: true,
    changed: false,
    address: A.address,
    conflict: null,
  });
  assert.equal(store.stats().records, 1);
});

Deno.test("publish() replaces a record with one of a higher serial", () => {
  const { store } = storeAt();
  store.publish(record(A), SOURCE);
  const newer = record(A, { serial: NOW + 1, hostname: "alpha-two" });
  assert.deepEqual(store.publish(newer, SOURCE), {
    ok: true,
    changed: true,
    address: A.address,
    conflict: null,
  });
  assert.deepEqual(store.lookupByKey(A.publicKey.toHex())?.record, newer);
  assert.equal(store.lookupByHostname("alpha"), null, "the old hostname is released");
  assert.equal(store.lookupByHostname("alpha-two")?.bound.address, A.address);
  assert.equal(store.stats().hostnames, 1);
});

Deno.test("publish() refuses an older serial, or other bytes with the same serial, as stale", () => {
  const { store } = storeAt();
  const current = record(A, { serial: NOW + 5 });
  store.publish(current, SOURCE);
  refusedAs(store.publish(record(A, { serial: NOW + 4 }), SOURCE), "stale");
  refusedAs(store.publish(record(A, { serial: NOW + 5, hostname: "other" }), SOURCE), "stale");
  assert.deepEqual(store.lookupByKey(A.publicKey.toHex())?.record, current);
  assert.equal(store.stats().dropped.stale, 2);
});

Deno.test("a second key claiming a bound hostname is stored, reported as a conflict, never returned for the name", () => {
  const { store } = storeAt();
  store.publish(record(A), SOURCE);
  const second = record(B);
  assert.deepEqual(store.publish(second, SOURCE), {
    ok: true,
    changed: true,
    address: B.address,
    conflict: { hostname: "alpha", boundTo: A.address },
  });
  const byName = store.lookupByHostname("alpha");
  assert.equal(byName?.bound.address, A.address);
  assert.deepEqual(byName?.conflicts, [{
    address: B.address,
    fingerprint: fingerprint(B.publicKey),
  }]);
  assert.deepEqual(store.lookupByKey(B.publicKey.toHex())?.record, second);
  assert.deepEqual(store.lookupByAddress(B.address)?.record, second);
  // The first key republishing keeps its binding and sees no conflict.
  assert.deepEqual(store.publish(record(A, { serial: NOW + 1 }), SOURCE), {
    ok: true,
    changed: true,
    address: A.address,
    conflict: null,
  });
  assert.equal(store.lookupByHostname("alpha")?.bound.address, A.address);
});

Deno.test("the hostname binding passes to the earliest other live claimant when the bound record expires", () => {
  const { store, clock } = storeAt();
  store.publish(record(A, { expiresAt: NOW + 10 * MINUTE }), SOURCE);
  clock.now += 1;
  store.publish(record(B, { serial: NOW + 1, expiresAt: NOW + 30 * MINUTE }), SOURCE);
  clock.now += 1;
  store.publish(record(C, { serial: NOW + 2, expiresAt: NOW + 30 * MINUTE }), SOURCE);
  assert.equal(store.lookupByHostname("alpha")?.bound.address, A.address);

  clock.now = NOW + 10 * MINUTE;
  const after = store.lookupByHostname("alpha");
  assert.equal(after?.bound.address, B.address);
  assert.deepEqual(after?.conflicts.map((c) => c.address), [C.address]);

  // A comes back: it is now the latest claimant, so B keeps the name.
  const back = store.publish(
    record(A, { serial: clock.now, expiresAt: clock.now + MINUTE }),
    SOURCE,
  );
  assert.deepEqual(back.ok && back.conflict, { hostname: "alpha", boundTo: B.address });
});

Deno.test("the hostname binding passes on when the bound key republishes without the name", () => {
  const { store } = storeAt();
  store.publish(record(A), SOURCE);
  store.publish(record(B), SOURCE);
  store.publish(record(A, { serial: NOW + 1, hostname: "" }), SOURCE);
  assert.deepEqual(store.lookupByHostname("alpha")?.bound.address, B.address);
  assert.deepEqual(store.lookupByHostname("alpha")?.conflicts, []);
});

Deno.test("expired records are never returned, and sweep() removes them", () => {
  const { store, clock } = storeAt();
  store.publish(record(A, { expiresAt: NOW + MINUTE }), SOURCE);
  store.publish(record(B, { hostname: "beta", expiresAt: NOW + 2 * MINUTE }), SOURCE);
  clock.now = NOW + MINUTE;
  assert.equal(store.lookupByAddress(A.address), null);
  assert.equal(store.lookupByKey(A.publicKey.toHex()), null);
  assert.equal(store.lookupByHostname("alpha"), null);
  assert.equal(store.lookupByKey(B.publicKey.toHex())?.address, B.address);
  clock.now = NOW + 2 * MINUTE;
  assert.equal(store.sweep(), 1, "A went at its lookup; B is swept");
  assert.equal(store.sweep(), 0);
  assert.equal(store.stats().records, 0);
  assert.equal(store.stats().hostnames, 0);
  assert.equal(store.bytes, 0);
});

Deno.test("publish() refuses a record whose expiry has passed by the table's clock, even within clock skew", () => {
  const { store } = storeAt();
  refusedAs(store.publish(record(A, { expiresAt: NOW }), SOURCE), "expired");
  assert.equal(store.stats().records, 0);
});

Deno.test("publish() refuses a private record that carries endpoints, and stores one without", () => {
  const { store } = storeAt();
  refusedAs(store.publish(record(A, { visibility: "private" }), SOURCE), "private_endpoints");
  const quiet = record(A, { visibility: "private", endpoints: [] });
  assert.equal(store.publish(quiet, SOURCE).ok, true);
  assert.deepEqual(store.lookupByAddress(A.address), {
    record: quiet,
    address: A.address,
    hostname: "alpha",
    visibility: "private",
  });
  assert.equal(
    decodePresenceRecord(store.lookupByAddress(A.address)!.record).record.endpoints.length,
    0,
  );
});

Deno.test("a per-source flood of bad signatures is refused as rate_limited without verifying past the burst", () => {
  const { store, clock } = storeAt();
  const forged = record(A);
  forged[forged.length - 1]! ^= 1;
  for (let i = 0; i < 1000; i++) store.publish(forged, SOURCE);
  let dropped = store.stats().dropped;
  assert.equal(dropped.bad_signature, 10, "one verification per token of the burst");
  assert.equal(dropped.rate_limited, 990);
  // Two tokens a second come back; another source is unaffected.
  clock.now += 1000;
  for (let i = 0; i < 10; i++) store.publish(forged, SOURCE);
  store.publish(forged, "198.18.0.2");
  dropped = store.stats().dropped;
  assert.equal(dropped.bad_signature, 13);
  assert.equal(dropped.rate_limited, 998);
});

Deno.test("a key publishing faster than its own rate is refused after verification, from any source", () => {
  const { store } = storeAt();
  for (let i = 0; i < 5; i++) {
    assert.equal(store.publish(record(A, { serial: NOW + i }), `198.18.1.${i}`).ok, true);
  }
  refusedAs(store.publish(record(A, { serial: NOW + 5 }), "198.18.1.9"), "rate_limited");
  assert.equal(store.publish(record(B), "198.18.1.9").ok, true, "another key is unaffected");
});

Deno.test("publish() refuses a record larger than any valid one before anything else", () => {
  const { store } = storeAt({ perSource: { burst: 1, perSecond: 1 } });
  const big = new Uint8Array(MAX_PRESENCE_RECORD_SIZE + 1);
  for (let i = 0; i < 3; i++) refusedAs(store.publish(big, SOURCE), "too_large");
  assert.equal(store.publish(record(A), SOURCE).ok, true, "too_large spent no tokens");
});

Deno.test("a full table refuses new keys as full but always takes updates of stored keys", () => {
  const { store, clock } = storeAt({ maxRecords: 3 });
  for (const id of BENCH_IDS.slice(0, 3)) assert.equal(store.publish(record(id), SOURCE).ok, true);
  refusedAs(store.publish(record(BENCH_IDS[3]!), SOURCE), "full");
  const update = record(BENCH_IDS[0]!, { serial: NOW + 1, hostname: "renamed" });
  assert.equal(store.publish(update, SOURCE).ok, true);
  assert.equal(store.stats().records, 3);
  // Room comes back when a record expires.
  clock.now = NOW + 30 * MINUTE;
  const late = record(BENCH_IDS[3]!, { serial: clock.now, expiresAt: clock.now + MINUTE });
  assert.equal(store.publish(late, "198.18.0.3").ok, true);
  assert.equal(store.stats().dropped.full, 1);
});

Deno.test("stats() counts every refusal by reason, each reason present from 0", () => {
  const { store } = storeAt({ maxRecords: 1 });
  const zero = Object.fromEntries(Object.keys(PUBLISH_REFUSALS).map((r) => [r, 0]));
  assert.deepEqual(store.stats(), { records: 0, retained: 0, hostnames: 0, dropped: zero });

  const bad = (b: Uint8Array, at: number) => {
    const c = b.slice();
    c[at]! ^= 1;
    return c;
  };
  const cases: [PublishRefusal, () => Uint8Array][] = [
    ["too_large", () => new Uint8Array(MAX_PRESENCE_RECORD_SIZE + 1)],
    ["malformed", () => Uint8Array.of(1, 2, 3)],
    ["bad_key", () => record(A, { publicKey: new Uint8Array(32) })],
    ["bad_static_key", () => record(A, { staticKey: new Uint8Array(32) })],
    ["bad_stamp", () => record(A, { stamp: B.stamp })],
    ["bad_hostname", () => record(A, { hostname: "0123456789ab" })],
    ["bad_signature", () => bad(record(A), 50)],
    ["expired", () => record(A, { expiresAt: NOW - 1 })],
    ["too_long_lived", () => record(A, { expiresAt: NOW + 24 * 60 * MINUTE })],
    ["private_endpoints", () => record(A, { visibility: "private" })],
  ];
  let source = 0;
  for (const [reason, make] of cases) {
    refusedAs(store.publish(make(), `10.0.0.${source++}`), reason);
  }
  assert.equal(store.publish(record(A, { serial: NOW + 9 }), "10.0.1.0").ok, true);
  refusedAs(store.publish(record(A, { serial: NOW + 8 }), "10.0.1.1"), "stale");
  refusedAs(store.publish(record(B), "10.0.1.2"), "full");
  // A spent three of its five tokens above: private_endpoints, the accepted one, stale.
  for (let i = 0; i < 2; i++) store.publish(record(A, { serial: NOW + 10 + i }), "10.0.1.3");
  refusedAs(store.publish(record(A, { serial: NOW + 20 }), "10.0.1.4"), "rate_limited");

  const { dropped } = store.stats();
  for (const reason of Object.keys(PUBLISH_REFUSALS) as PublishRefusal[]) {
    assert.equal(dropped[reason], 1, reason);
  }
});

Deno.test("10,000 mutated record bytes only ever give refusals or acceptances, never a throw", () => {
  const { store, clock } = storeAt({ perSource: { burst: 1_000_000, perSecond: 1 } });
  const bases = [
    record(A),
    record(B, { visibility: "private", endpoints: [], hostname: "" }),
    record(C, {
      hostname: "a".repeat(63),
      endpoints: Array.from({ length: 8 }, (_, i) => ({
        kind: "local" as const,
        hostname: `2001:db8::${i + 1}`,
        port: 65535,
      })),
    }),
  ];
  const rng = new Rng(seedFor("RecordStore.publish()"));
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 10_000; i++) {
    const base = bases[rng.below(bases.length)]!;
    let b = base.slice();
    const edits = 1 + rng.below(4);
    for (let e = 0; e < edits; e++) b[rng.below(b.length)] = rng.below(256);
    if (rng.below(8) === 0) b = b.subarray(0, rng.below(b.length + 1));
    if (rng.below(8) === 0) b = Uint8Array.of(...b, ...Array(rng.below(4)).fill(rng.below(256)));
    if (rng.below(16) === 0) clock.now += rng.below(2 * MINUTE);
    let result;
    try {
      result = store.publish(b, `10.${i >> 8}.${i & 255}.1`);
    } catch (e) {
      assert.fail(`publish() threw ${e} on input ${i}: ${b.toHex()}`);
    }
    const key = result.ok ? "ok" : result.reason;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }
  assert.ok((outcomes.get("malformed") ?? 0) > 0, JSON.stringify([...outcomes]));
  assert.ok((outcomes.get("bad_signature") ?? 0) > 0, JSON.stringify([...outcomes]));
  const { dropped } = store.stats();
  const refused = Object.values(dropped).reduce((s, n) => s + n, 0);
  assert.equal(refused + (outcomes.get("ok") ?? 0), 10_000);
});

/** A verifier for the memory test: decodes for real, but skips key, stamp and signature. */
function trustingVerify(bytes: Uint8Array, _now: number): VerifiedPresence {
  const { record } = decodePresenceRecord(bytes);
  return { record, bytes: bytes.slice(), address: formatAddress(record.publicKey.subarray(0, 6)) };
}

/** An unsigned record (for trustingVerify) of node `i`: key `i + 1` in its first 4 bytes. */
function unsignedRecord(i: number, fields: Partial<UnsignedPresence> = {}): Uint8Array {
  const publicKey = new Uint8Array(32);
  new DataView(publicKey.buffer).setUint32(0, i + 1);
  return encodePresenceRecord({
    publicKey,
    stamp: new Uint8Array(8),
    hostname: `node-${i}`,
    visibility: "private",
    serial: NOW,
    expiresAt: NOW + 30 * MINUTE,
    endpoints: [],
    staticKey: new Uint8Array(32).fill(9),
    staticSerial: 0,
    mailboxes: [],
    ...fields,
    signature: new Uint8Array(64),
  });
}

Deno.test("10,000 records of the largest size stay within 1.1 KB each by the table's accounting", () => {
  const clock = { now: NOW };
  const store = new RecordStore({
    now: () => clock.now,
    verify: trustingVerify,
    perSource: { burst: 20_000, perSecond: 1 },
  });
  for (let i = 0; i < 10_000; i++) {
    const bytes = unsignedRecord(i, {
      hostname: `node-${i}`.padEnd(63, "x"),
      visibility: "public",
      endpoints: Array.from({ length: 8 }, (_, j) => ({
        kind: "local" as const,
        hostname: `2001:db8::${j + 1}`,
        port: 7440,
      })),
      mailboxes: [1, 2, 3, 4].map((j) => formatAddress(Uint8Array.of(0x3f, 0, 0, 0, 0, j))),
    });
    assert.equal(bytes.length, MAX_PRESENCE_RECORD_SIZE);
    assert.equal(store.publish(bytes, SOURCE).ok, true);
  }
  assert.equal(store.stats().records, 10_000);
  assert.equal(store.bytes, 10_000 * (MAX_PRESENCE_RECORD_SIZE + RECORD_OVERHEAD_BYTES));
  assert.ok(store.bytes <= 10_000 * 1100, `${store.bytes} bytes`);
  // The real verifier refuses these unsigned records.
  assert.throws(() => verifyPresence(store.lookupByKey("00000001".padEnd(64, "0"))!.record, NOW));
  clock.now = NOW + 30 * MINUTE;
  assert.equal(store.sweep(), 10_000);
  assert.equal(store.bytes, 0);
});

Deno.test("forgetFull() gives back the publish rates of sources and keys once they are full again", () => {
  const clock = { now: NOW };
  const store = new RecordStore({ now: () => clock.now, verify: trustingVerify });
  for (let i = 0; i < 500; i++) {
    const bytes = unsignedRecord(i);
    assert.equal(store.publish(bytes, `198.18.${i >> 8}.${i & 255}`).ok, true);
  }
  assert.equal(store.forgetFull(), 0, "every bucket is still refilling");
  clock.now += 1000 * Math.max(
    PUBLISH_PER_SOURCE.burst / PUBLISH_PER_SOURCE.perSecond,
    PUBLISH_PER_KEY.burst / PUBLISH_PER_KEY.perSecond,
  );
  assert.equal(store.forgetFull(), 1000, "500 sources and 500 keys");
  assert.equal(store.forgetFull(), 0);
  assert.equal(store.stats().records, 500, "the records themselves stay");
});

Deno.test("lookups hand back the exact bytes published, every byte value, as a fresh copy each time", () => {
  const { store } = storeAt({ verify: trustingVerify });
  const publicKey = Uint8Array.from({ length: 32 }, (_, i) => 0xe0 + i);
  const unsigned = (signature: Uint8Array) =>
    encodePresenceRecord({
      publicKey,
      stamp: Uint8Array.of(0, 0x7f, 0x80, 0x81, 0x9f, 0xa0, 0xfe, 0xff),
      hostname: "bytes",
      visibility: "private",
      serial: NOW,
      expiresAt: NOW + MINUTE,
      endpoints: [],
      staticKey: Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i),
      staticSerial: 0xffffffff,
      mailboxes: [],
      signature,
    });
  // Every byte value 0..255 appears: a signature over 0..63, keys above.
  const bytes = unsigned(Uint8Array.from({ length: 64 }, (_, i) => i * 4 + (i & 3)));
  const seen = new Set(bytes);
  for (let v = 0x80; v <= 0x9f; v++) assert.ok(seen.has(v), `byte ${v} in the record`);
  assert.equal(store.publish(bytes, SOURCE).ok, true);
  const key = publicKey.toHex();
  const byKey = store.lookupByKey(key)!.record;
  assert.deepEqual(byKey, bytes);
  byKey.fill(0);
  assert.deepEqual(store.lookupByAddress(formatAddress(publicKey.subarray(0, 6)))!.record, bytes);
  assert.deepEqual(store.lookupByHostname("bytes")!.bound.record, bytes);
  assert.deepEqual(store.publish(bytes.slice(), SOURCE), {
    ok: true,
    changed: false,
    address: formatAddress(publicKey.subarray(0, 6)),
    conflict: null,
  });
  const other = bytes.slice();
  other[other.length - 1]! ^= 0x80;
  refusedAs(store.publish(other, SOURCE), "stale");
  assert.equal(store.bytes, bytes.length + RECORD_OVERHEAD_BYTES);
});

Deno.test("an address two keys share is held by the first key to publish it, like a hostname", () => {
  const shared = formatAddress(Uint8Array.of(0x3f, 0xa2, 0x09, 0xc1, 0x77, 0xe4));
  const store = new RecordStore({
    now: () => NOW,
    verify: (bytes, now) => ({ ...trustingVerify(bytes, now), address: shared }),
  });
  const unsigned = (first: number, hostname: string) =>
    encodePresenceRecord({
      publicKey: new Uint8Array(32).fill(first),
      stamp: new Uint8Array(8),
      hostname,
      visibility: "private",
      serial: NOW,
      expiresAt: NOW + MINUTE,
      endpoints: [],
      staticKey: new Uint8Array(32).fill(9),
      staticSerial: 0,
      mailboxes: [],
      signature: new Uint8Array(64),
    });
  const first = unsigned(1, "first");
  const second = unsigned(2, "second");
  assert.equal(store.publish(first, SOURCE).ok, true);
  assert.equal(store.publish(second, SOURCE).ok, true);
  assert.deepEqual(store.lookupByAddress(shared)?.record, first);
  assert.deepEqual(store.lookupByKey("02".repeat(32))?.record, second);
  assert.deepEqual(store.lookupByHostname("second")?.bound.record, second);
});

Deno.test("an older record replayed after the newer one expired is stale, until no older record can be valid", () => {
  const { store, clock } = storeAt();
  const longLived = record(A, { serial: NOW, expiresAt: NOW + 60 * MINUTE });
  const shortLived = record(A, { serial: NOW + 1, expiresAt: NOW + 2 * MINUTE });
  assert.equal(store.publish(longLived, SOURCE).ok, true);
  assert.equal(store.publish(shortLived, "198.18.0.2").ok, true);
  clock.now = NOW + 3 * MINUTE;
  assert.equal(store.sweep(), 1, "the newer, short-lived record expired");
  refusedAs(store.publish(longLived, "198.18.0.3"), "stale");
  assert.equal(store.lookupByKey(A.publicKey.toHex()), null, "the replay was not stored");
  const newer = record(A, { serial: NOW + 2, expiresAt: clock.now + 30 * MINUTE });
  assert.equal(store.publish(newer, "198.18.0.4").ok, true, "the node itself publishes again");
});

// ---- Mailbox owners' records, retained past expiry ----

/** This rendezvous's address, and another's. */
const SELF = formatAddress(Uint8Array.of(0x0c, 0x1d, 0xaa, 0, 0, 1));
const ELSEWHERE = formatAddress(Uint8Array.of(0x0c, 0x1d, 0xaa, 0, 0, 2));

Deno.test("a record naming this rendezvous as a mailbox is kept past expiry for lookups by key and address, never by hostname", () => {
  const { store, clock } = storeAt({ self: SELF });
  const bytes = record(A, { mailboxes: [ELSEWHERE, SELF] });
  assert.equal(store.publish(bytes, SOURCE).ok, true);
  assert.equal(store.hostsMailbox(A.publicKey.toHex()), true);
  const live = store.bytes;

  clock.now = NOW + 30 * MINUTE;
  assert.equal(store.lookupByHostname("alpha"), null, "an expired record holds no name");
  const expected = { record: bytes, address: A.address, hostname: "alpha", visibility: "public" };
  assert.deepEqual(store.lookupByKey(A.publicKey.toHex().toUpperCase()), expected);
  assert.deepEqual(store.lookupByAddress(A.address), expected);
  assert.equal(store.hostsMailbox(A.publicKey.toHex()), true);
  assert.deepEqual([store.stats().records, store.stats().retained], [0, 1]);
  assert.equal(store.bytes, live, "a retained record is accounted as a stored one");

  clock.now = NOW + 30 * MINUTE + MAILBOX_RETENTION_MS - 1;
  assert.equal(store.sweep(), 0);
  assert.deepEqual(store.lookupByKey(A.publicKey.toHex())?.record, bytes, "still within retention");
  clock.now += 1;
  assert.equal(store.lookupByKey(A.publicKey.toHex()), null, "retention over");
  assert.equal(store.lookupByAddress(A.address), null);
  assert.equal(store.hostsMailbox(A.publicKey.toHex()), false);
  assert.deepEqual([store.stats().retained, store.bytes], [0, 0]);
});

Deno.test("a record not naming this rendezvous, or any record without self, is dropped at expiry as before", () => {
  for (const [options, mailboxes] of [[{ self: SELF }, [ELSEWHERE]], [{}, [SELF]]] as const) {
    const { store, clock } = storeAt(options);
    assert.equal(store.publish(record(A, { mailboxes: [...mailboxes] }), SOURCE).ok, true);
    assert.equal(store.hostsMailbox(A.publicKey.toHex()), false);
    clock.now = NOW + 30 * MINUTE;
    assert.equal(store.sweep(), 1);
    assert.equal(store.lookupByKey(A.publicKey.toHex()), null);
    assert.equal(store.lookupByAddress(A.address), null);
    assert.deepEqual([store.stats().retained, store.bytes], [0, 0]);
  }
});

Deno.test("a live record wins over a retained one, and a newer record ends the retention of an older one", () => {
  const { store, clock } = storeAt({ self: SELF });
  const old = record(A, { mailboxes: [SELF] });
  assert.equal(store.publish(old, SOURCE).ok, true);
  clock.now = NOW + 31 * MINUTE;
  assert.equal(store.sweep(), 1);
  assert.equal(store.stats().retained, 1);

  // Another key claiming the same address while A's record is only retained.
  const shared = storeAt({
    self: SELF,
    verify: (bytes, now) => ({ ...verifyPresence(bytes, now), address: A.address }),
  });
  assert.equal(shared.store.publish(old, SOURCE).ok, true);
  shared.clock.now = NOW + 31 * MINUTE;
  const other = record(B, { serial: shared.clock.now, expiresAt: shared.clock.now + MINUTE });
  assert.equal(shared.store.publish(other, SOURCE).ok, true);
  assert.deepEqual(shared.store.lookupByAddress(A.address)?.record, other, "live wins");
  shared.clock.now += MINUTE;
  assert.deepEqual(shared.store.lookupByAddress(A.address)?.record, old, "then the retained one");

  // The owner moves its mailbox elsewhere: its newer record ends the retention.
  const moved = record(A, {
    serial: clock.now,
    expiresAt: clock.now + MINUTE,
    mailboxes: [ELSEWHERE],
  });
  assert.equal(store.publish(moved, SOURCE).ok, true);
  assert.deepEqual(store.lookupByKey(A.publicKey.toHex())?.record, moved);
  assert.equal(store.hostsMailbox(A.publicKey.toHex()), false);
  assert.equal(store.stats().retained, 0);
  clock.now += MINUTE;
  assert.equal(store.lookupByKey(A.publicKey.toHex()), null, "nothing retained any more");
});

Deno.test("the retained table holds at most maxRecords records, the oldest retained going first", () => {
  const { store, clock } = storeAt({ self: SELF, maxRecords: 2 });
  const ids = [A, B, C];
  ids.forEach((id, i) => {
    if (i === 2) {
      clock.now = NOW + 31 * MINUTE;
      store.sweep();
    }
    const at = clock.now;
    assert.equal(
      store.publish(record(id, { serial: at, expiresAt: at + MINUTE, mailboxes: [SELF] }), SOURCE)
        .ok,
      true,
    );
  });
  clock.now += MINUTE;
  store.sweep();
  assert.equal(store.stats().retained, 2);
  assert.equal(store.lookupByKey(A.publicKey.toHex()), null, "retained first, evicted first");
  assert.equal(store.hostsMailbox(B.publicKey.toHex()), true);
  assert.equal(store.hostsMailbox(C.publicKey.toHex()), true);
});
