/**
 * The LAN table (issue 10 item 3; PROTOCOL.md §14): what a node believes of
 * the announcements it hears — the rate limit before any signature check,
 * the same record checks as a rendezvous answer, no replays, expiry, a
 * bounded table — and that a LAN answer never overrides a trusted key.
 */

import assert from "node:assert/strict";
import { discoverySources } from "../src/daemon/discovery_sources.ts";
import { LAN_RATE_KEYS, LAN_RECORD_TTL_MS, LAN_SOURCE_RATE } from "../src/constants.ts";
import { LanTable } from "../src/discovery/lan_table.ts";
import { signPresence } from "../src/discovery/presence.ts";
import { Resolver, staticSource } from "../src/discovery/resolver.ts";
import { trustSource } from "../src/daemon/peer_sources.ts";
import { Reach } from "../src/daemon/reach.ts";
import { PilotError } from "../src/errors.ts";
import type { Identity } from "../src/identity/identity.ts";
import type { SessionManager } from "../src/session/manager.ts";
import { RateLimiter } from "../src/session/rate_limit.ts";
import type { TrustEntry } from "../src/services/trust_types.ts";
import { encodeLanAnnouncement } from "../src/wire/lan_announcement.ts";
import type { UnsignedPresence } from "../src/wire/presence_record.ts";
import { FUZZ_IDS } from "./_fuzz.ts";

const NOW = 1_800_000_000_000;
const [SELF, A, B, C, D] = [0, 1, 2, 3, 4].map((i) => FUZZ_IDS[i]!) as [
  Identity,
  Identity,
  Identity,
  Identity,
  Identity,
];

/** A signed announcement of `id` (private, no endpoints, session port 7440 unless overridden). */
function announcement(
  id: Identity,
  overrides: Partial<UnsignedPresence> = {},
  header: { solicit?: boolean; port?: number } = {},
): Uint8Array {
  const record = signPresence(id.seed, {
    publicKey: id.publicKey,
    stamp: id.stamp,
    hostname: "alpha",
    visibility: "private",
    serial: NOW,
    expiresAt: NOW + LAN_RECORD_TTL_MS,
    endpoints: [],
    staticKey: id.binding.staticKey,
    staticSerial: id.binding.serial,
    mailboxes: [],
    ...overrides,
  });
  return encodeLanAnnouncement({
    solicit: header.solicit ?? false,
    port: header.port ?? 7440,
    record,
  });
}

/** A table with hand-driven clocks. */
function table(maxNodes?: number) {
  const clock = { now: NOW, mono: 1_000 };
  const t = new LanTable({
    selfKeyHex: SELF.publicKey.toHex(),
    now: () => clock.now,
    monotonic: () => clock.mono,
    limiter: new RateLimiter({
      ...LAN_SOURCE_RATE,
      maxKeys: LAN_RATE_KEYS,
      now: () => clock.mono,
    }),
    ...(maxNodes === undefined ? {} : { maxNodes }),
  });
  return { t, clock };
}

const FROM = { hostname: "198.18.0.5", port: 40_000 };

Deno.test("a signed announcement is found by hostname, address and key, at its source IP and the port in its header", () => {
  const { t } = table();
  const v = t.receive(announcement(A, {}, { solicit: true, port: 7555 }), FROM);
  assert.ok(v.taken);
  assert.equal(v.solicit, true);
  assert.equal(v.isNew, true);
  for (
    const q of [
      { kind: "hostname" as const, hostname: "alpha" },
      { kind: "address" as const, address: A.address },
      { kind: "key" as const, keyHex: A.publicKey.toHex() },
    ]
  ) {
    const found = t.lookup(q);
    assert.equal(found.length, 1);
    assert.deepEqual(found[0]!.endpoint, { hostname: "198.18.0.5", port: 7555 });
  }
  assert.deepEqual(t.discover({ kind: "hostname", hostname: "alpha" }), {
    publicKey: A.publicKey,
    endpoint: { host: "198.18.0.5", port: 7555 },
  });
  assert.equal(t.discover({ kind: "hostname", hostname: "beta" }), null);
  assert.equal(t.size, 1);
  assert.equal(t.heard, 1);
});

Deno.test("the per-source rate limit comes before any check: over it, even valid announcements are dropped rate_limited, other sources still heard", () => {
  const { t, clock } = table();
  const forged = announcement(A);
  forged[forged.length - 1]! ^= 1; // a bad signature
  for (let i = 0; i < LAN_SOURCE_RATE.burst; i++) {
    assert.deepEqual(t.receive(forged, FROM), { taken: false, reason: "bad_record" });
  }
  // Over the rate: refused before the (costly) record check, valid or not.
  for (let i = 0; i < 50; i++) {
    assert.deepEqual(t.receive(forged, FROM), { taken: false, reason: "rate_limited" });
  }
  assert.deepEqual(t.receive(announcement(A), FROM), { taken: false, reason: "rate_limited" });
  assert.equal(t.dropped.bad_record, LAN_SOURCE_RATE.burst);
  assert.equal(t.dropped.rate_limited, 51);
  assert.ok(t.receive(announcement(A), { hostname: "198.18.0.6", port: 1 }).taken);
  clock.mono += 1_000 / LAN_SOURCE_RATE.perSecond;
  assert.ok(t.receive(announcement(B, { hostname: "beta" }), FROM).taken, "a refilled token");
});

Deno.test("oversized, malformed, our own and unverifiable announcements are dropped and counted by reason", () => {
  const { t } = table();
  const at = (i: number) => ({ hostname: `198.18.0.${i}`, port: 1 });
  assert.equal(t.receive(new Uint8Array(2_000), at(1)).taken, false);
  assert.equal(t.receive(Uint8Array.of(1, 2, 3), at(2)).taken, false);
  assert.equal(t.receive(announcement(SELF), at(3)).taken, false);
  // Signed by B over A's key, expired, and living longer than the protocol allows.
  const wrongSigner = announcement(A);
  const bySigner = announcement(B);
  wrongSigner.set(bySigner.subarray(bySigner.length - 64), wrongSigner.length - 64);
  assert.equal(t.receive(wrongSigner, at(4)).taken, false);
  assert.equal(t.receive(announcement(A, { expiresAt: NOW - 3_600_000 }), at(5)).taken, false);
  assert.equal(t.receive(announcement(A, { expiresAt: NOW + 10 * 3_600_000 }), at(6)).taken, false);
  assert.deepEqual(t.dropped, {
    oversized: 1,
    rate_limited: 0,
    malformed: 1,
    self: 1,
    bad_record: 3,
    stale: 0,
  });
  assert.equal(t.size, 0);
});

Deno.test("an older record, or the same one replayed from elsewhere, never moves a node; a newer one does", () => {
  const { t } = table();
  assert.ok(t.receive(announcement(A, { serial: NOW + 10 }), FROM).taken);
  const older = t.receive(announcement(A, { serial: NOW + 5 }), {
    hostname: "198.18.0.66",
    port: 1,
  });
  assert.deepEqual(older, { taken: false, reason: "stale" });
  const replay = t.receive(announcement(A, { serial: NOW + 10 }), {
    hostname: "198.18.0.66",
    port: 1,
  });
  assert.deepEqual(replay, { taken: false, reason: "stale" });
  assert.equal(
    t.lookup({ kind: "hostname", hostname: "alpha" })[0]!.endpoint.hostname,
    FROM.hostname,
  );
  // The same record from the same place is a harmless repeat.
  assert.ok(t.receive(announcement(A, { serial: NOW + 10 }), FROM).taken);
  const moved = t.receive(announcement(A, { serial: NOW + 20 }), {
    hostname: "198.18.0.7",
    port: 1,
  });
  assert.ok(moved.taken && !moved.isNew);
  assert.equal(
    t.lookup({ kind: "hostname", hostname: "alpha" })[0]!.endpoint.hostname,
    "198.18.0.7",
  );
  assert.equal(t.dropped.stale, 2);
});

Deno.test("a node is forgotten once not heard for the record lifetime, or when its record expires", () => {
  const { t, clock } = table();
  t.receive(announcement(A), FROM);
  t.receive(announcement(B, { hostname: "beta", expiresAt: NOW + 60_000 }), {
    hostname: "198.18.0.8",
    port: 1,
  });
  assert.equal(t.size, 2);
  clock.now += 60_000;
  assert.equal(t.size, 1, "B's record expired");
  clock.mono += LAN_RECORD_TTL_MS - 1;
  assert.equal(t.size, 1);
  clock.mono += 1;
  assert.equal(t.size, 0, "A not heard for the lifetime");
  assert.equal(t.discover({ kind: "hostname", hostname: "alpha" }), null);
});

Deno.test("the table is bounded: past its size the least recently heard node is forgotten", () => {
  const { t, clock } = table(3);
  const ids = [A, B, C, D];
  ids.forEach((id, i) => {
    clock.mono += 1;
    const taken = t.receive(announcement(id, { hostname: `n${i}` }), {
      hostname: `198.18.0.${10 + i}`,
      port: 1,
    });
    assert.ok(taken.taken);
    // Hearing A again makes it the most recent.
    if (i === 2) {
      t.receive(announcement(A, { hostname: "n0", serial: NOW + 1 }), {
        ...FROM,
        hostname: "198.18.0.10",
      });
    }
  });
  assert.equal(t.size, 3);
  assert.equal(t.lookup({ kind: "hostname", hostname: "n1" }).length, 0, "B, least recently heard");
  for (const n of ["n0", "n2", "n3"]) {
    assert.equal(t.lookup({ kind: "hostname", hostname: n }).length, 1);
  }
});

Deno.test("a hostname two keys claim on the LAN is a conflict, never a guess", () => {
  const { t } = table();
  t.receive(announcement(A, { hostname: "worker" }), FROM);
  t.receive(announcement(B, { hostname: "worker" }), { hostname: "198.18.0.9", port: 1 });
  assert.throws(
    () => t.discover({ kind: "hostname", hostname: "worker" }),
    (e) => e instanceof PilotError && e.code === "conflict",
  );
  assert.equal(
    t.discover({ kind: "key", keyHex: B.publicKey.toHex() })?.endpoint.host,
    "198.18.0.9",
  );
});

/** A Reach whose handshakes are recorded, not sent, over a trust store and the LAN table. */
function reachOver(t: LanTable, trusted: TrustEntry[]) {
  const connects: { endpoint: { hostname: string; port: number }; expected: string | undefined }[] =
    [];
  const sessions = {
    endpointOf: () => null,
    connect: (
      endpoint: { hostname: string; port: number },
      expected: { publicKey?: Uint8Array },
    ) => {
      connects.push({ endpoint, expected: expected.publicKey?.toHex() });
      const id = [A, B, C, D].find((i) => i.publicKey.toHex() === expected.publicKey?.toHex())!;
      return Promise.resolve({ keyHex: id.publicKey.toHex(), publicKey: id.publicKey });
    },
  } as unknown as SessionManager;
  const reach = new Reach({
    resolver: new Resolver([trustSource(() => trusted), staticSource({})]),
    sessions,
    isTrusted: (key) => trusted.some((e) => e.public_key === key),
    selfKeyHex: SELF.publicKey.toHex(),
    discovery: () => discoverySources({ lan: t }),
  });
  return { reach, connects };
}

Deno.test("a LAN claim never overrides a trusted peer's key: the trusted key is expected, at its own LAN endpoint", async () => {
  const { t } = table();
  // B claims the trusted peer's hostname; A (the trusted key) announces under another.
  t.receive(announcement(B, { hostname: "worker" }), { hostname: "198.18.0.66", port: 1 });
  t.receive(announcement(A, { hostname: "renamed" }), FROM);
  const trusted: TrustEntry[] = [{
    public_key: A.publicKey.toHex(),
    address: A.address,
    hostname: "worker",
    since: new Date(NOW).toISOString(),
    mutual: true,
  }];
  const { reach, connects } = reachOver(t, trusted);
  const r = await reach.reach("worker", 1_000);
  assert.equal(r.peer.keyHex, A.publicKey.toHex());
  assert.equal(r.resolution.trusted, true);
  assert.deepEqual(connects, [{
    endpoint: { hostname: "198.18.0.5", port: 7440 },
    expected: A.publicKey.toHex(),
  }]);
});

Deno.test("a name only the LAN knows is trust on first use: the handshake expects the announced key, unpinned", async () => {
  const { t } = table();
  t.receive(announcement(B, { hostname: "printer" }, { port: 7000 }), {
    hostname: "198.18.0.9",
    port: 1,
  });
  const { reach, connects } = reachOver(t, []);
  const r = await reach.reach("printer", 1_000);
  assert.equal(r.resolution.pinned, false);
  assert.equal(r.resolution.trusted, false);
  assert.deepEqual(connects, [{
    endpoint: { hostname: "198.18.0.9", port: 7000 },
    expected: B.publicKey.toHex(),
  }]);
  await assert.rejects(
    reach.reach("nobody", 1_000),
    (e) => e instanceof PilotError && e.code === "not_found",
  );
});
