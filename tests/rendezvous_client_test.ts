/**
 * A node's rendezvous client (issue 9), sans-IO, against real rendezvous
 * handlers in the same process: publishing everywhere, the observed
 * endpoint, lookups merged across rendezvous, a lying rendezvous caught,
 * retransmission, timeouts and refresh before expiry.
 */

import assert from "node:assert/strict";
import type { Identity } from "../src/identity/identity.ts";
import type { Endpoint } from "../src/discovery/endpoint.ts";
import { RecordStore } from "../src/services/rendezvous/store.ts";
import { RendezvousService } from "../src/services/rendezvous/service.ts";
import {
  RECORD_LIFETIME_MS,
  RECORD_REFRESH_BEFORE_MS,
  RendezvousClient,
  type SelfPresence,
} from "../src/discovery/rendezvous_client.ts";
import { decodePresenceRecord } from "../src/wire/presence_record.ts";
import {
  decodeRendezvousMessage,
  encodeRendezvousMessage,
} from "../src/wire/rendezvous_message.ts";
import { MAILBOX_RETENTION_MS, signOwnPresence } from "../src/discovery/presence.ts";
import { type Address, parseAddress } from "../src/identity/address.ts";
import { FUZZ_IDS } from "./_fuzz.ts";
import { peerIdentityOf } from "./_session_helpers.ts";

const T0 = 1_800_000_000_000;
const [A, B, C] = [FUZZ_IDS[0]!, FUZZ_IDS[1]!, FUZZ_IDS[2]!];

function selfOf(
  id: Identity,
  hostname: string,
  visibility: "private" | "public" = "private",
  mailboxes: Address[] = [],
) {
  return {
    identity: id,
    hostname,
    visibility,
    endpoints: [{ kind: "local" as const, hostname: "198.18.0.50", port: 4000 }],
    mailboxes,
  } satisfies SelfPresence;
}

/** Addresses the test's rendezvous go by (as their sessions would prove them). */
const RV = [1, 2, 3, 4, 5].map((i) => parseAddress(`0c1d.aa00.000${i}`));

/**
 * `count` rendezvous handlers and a client per node; `down` rendezvous drop
 * everything (read at each send); `liar` answers every lookup with its own
 * choice of record. Rendezvous `i` goes by the address `RV[i]`.
 */
function world(count: number, options: { down?: number[]; liar?: Uint8Array } = {}) {
  const clock = { now: T0 };
  const rendezvous = Array.from({ length: count }, (_, i) =>
    new RendezvousService(
      new RecordStore({ now: () => clock.now, self: RV[i]! }),
      { peerAt: () => undefined, send: () => false },
      () => clock.now,
    ));
  const sent: { index: number; from: Identity }[] = [];
  const client = (id: Identity, at: Endpoint) => {
    const c: RendezvousClient = new RendezvousClient({
      count,
      now: () => clock.now,
      send: (index, bytes) => {
        sent.push({ index, from: id });
        if (options.down?.includes(index)) return;
        const m = decodeRendezvousMessage(bytes);
        let answer = rendezvous[index]!.handle(peerIdentityOf(id), at, bytes);
        if (options.liar !== undefined && m.type === "lookup" && index === count - 1) {
          answer = encodeRendezvousMessage({
            type: "found",
            id: m.id,
            record: options.liar,
            conflicts: [],
          });
        }
        // Answers arrive after the send returns, as from a socket.
        if (answer !== null) queueMicrotask(() => c.receive(index, answer!));
      },
    });
    return c;
  };
  const restart = (index: number) => {
    rendezvous[index] = new RendezvousService(
      new RecordStore({ now: () => clock.now }),
      { peerAt: () => undefined, send: () => false },
      () => clock.now,
    );
  };
  return { clock, client, sent, restart };
}

const AT_A: Endpoint = { hostname: "198.18.0.10", port: 40001 };
const AT_B: Endpoint = { hostname: "198.18.0.20", port: 40002 };

Deno.test("a node's record reaches every rendezvous, which tell it its observed endpoint, and another node finds it by name", async () => {
  const { client } = world(2);
  const a = client(A, AT_A);
  a.publish(selfOf(A, "worker"));
  await Promise.resolve();
  assert.deepEqual(a.states, [
    { published: true, observed: AT_A, conflict: null, error: "" },
    { published: true, observed: AT_A, conflict: null, error: "" },
  ]);
  const b = client(B, AT_B);
  const result = await b.lookup({ by: "hostname", hostname: "worker" }, 5000);
  assert.equal(result.answered, 2);
  assert.equal(result.records.length, 1, "one key, however many rendezvous answered");
  assert.equal(result.records[0]!.address, A.address);
  assert.deepEqual(
    result.records[0]!.record.endpoints,
    [],
    "a private record carries no endpoints",
  );
});

Deno.test("a public node's record carries its endpoints", async () => {
  const { client } = world(1);
  const a = client(A, AT_A);
  a.publish(selfOf(A, "worker", "public"));
  await Promise.resolve();
  const { records } = await client(B, AT_B).lookup({ by: "address", address: A.address }, 5000);
  assert.deepEqual(records[0]!.record.endpoints, selfOf(A, "worker").endpoints);
});

Deno.test("a rendezvous that answers with another key's record, or a forged one, is not believed", async () => {
  const impostor = signOwnPresence(C, {
    hostname: "someone-else",
    visibility: "private",
    serial: T0,
    expiresAt: T0 + 60_000,
    endpoints: [],
  });
  for (const liar of [impostor, impostor.map((b, i) => i === impostor.length - 1 ? b ^ 1 : b)]) {
    const { client } = world(2, { liar });
    const a = client(A, AT_A);
    a.publish(selfOf(A, "worker"));
    await Promise.resolve();
    const b = client(B, AT_B);
    const result = await b.lookup({ by: "hostname", hostname: "worker" }, 5000);
    assert.equal(result.answered, 2);
    assert.deepEqual(result.records.map((r) => r.address), [A.address], "only the honest answer");
    assert.equal(b.dropped.bad_record, 1);
  }
});

Deno.test("a rendezvous that never answers: publishes are sent again with backoff, and a lookup ends at its deadline", async () => {
  const { client, clock, sent } = world(2, { down: [1] });
  const a = client(A, AT_A);
  a.publish(selfOf(A, "worker"));
  await Promise.resolve();
  const toDown = () => sent.filter((s) => s.index === 1 && s.from === A).length;
  assert.equal(toDown(), 1);
  for (const at of [1000, 3000, 7000, 15_000]) {
    clock.now = T0 + at;
    a.tick();
  }
  assert.equal(toDown(), 4, "sent again after 1, 2 and 4 s; timed out at 15 s");
  assert.equal(a.states[1]!.error, "timeout");
  assert.equal(a.states[0]!.published, true);
  const b = client(B, AT_B);
  const lookup = b.lookup({ by: "hostname", hostname: "worker" }, 2000);
  await Promise.resolve(); // the live rendezvous answers
  clock.now += 2000;
  b.tick();
  const result = await lookup;
  assert.equal(result.answered, 1);
  assert.equal(result.records.length, 1);
});

Deno.test("the record is signed again with a higher serial before it expires", async () => {
  const { client, clock } = world(1);
  const seen: number[] = [];
  const a = client(A, AT_A);
  a.publish(selfOf(A, "worker"));
  await Promise.resolve();
  const serialNow = async () => {
    const r = await client(B, AT_B).lookup({ by: "key", key: A.publicKey }, 5000);
    return r.records[0]!.record.serial;
  };
  seen.push(await serialNow());
  clock.now = T0 + RECORD_LIFETIME_MS - RECORD_REFRESH_BEFORE_MS - 1;
  a.tick();
  await Promise.resolve();
  seen.push(await serialNow());
  clock.now = T0 + RECORD_LIFETIME_MS - RECORD_REFRESH_BEFORE_MS;
  a.tick();
  await Promise.resolve();
  seen.push(await serialNow());
  assert.equal(seen[0], seen[1], "not yet due");
  assert.ok(seen[2]! > seen[1]!, "republished with a higher serial");
  const stored = await client(B, AT_B).lookup({ by: "key", key: A.publicKey }, 5000);
  assert.ok(
    decodePresenceRecord(stored.records[0]!.bytes).record.expiresAt > T0 + RECORD_LIFETIME_MS,
    "and a later expiry",
  );
});

Deno.test("a rendezvous that lost our record (restarted) has it again once the keepalive's check finds it missing", async () => {
  const { client, restart } = world(1);
  const a = client(A, AT_A);
  a.publish(selfOf(A, "worker"));
  await Promise.resolve();
  assert.equal(a.states[0]!.published, true);
  restart(0);
  const b = client(B, AT_B);
  const gone = await b.lookup({ by: "hostname", hostname: "worker" }, 5000);
  assert.equal(gone.records.length, 0);
  a.checkPublished(0, 5000);
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(a.states[0]!.published, false, "missing: to be published again");
  a.tick();
  await Promise.resolve();
  assert.equal(a.states[0]!.published, true);
  const back = await b.lookup({ by: "hostname", hostname: "worker" }, 5000);
  assert.deepEqual(back.records.map((r) => r.address), [A.address]);
  a.checkPublished(0, 5000);
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(a.states[0]!.published, true, "present: nothing to do");
});

Deno.test("the record carries the node's static key and names the rendezvous it knows as mailboxes, at most four; a new set is signed and published again", async () => {
  const { client } = world(1);
  const a = client(A, AT_A);
  const b = client(B, AT_B);
  const stored = async () =>
    (await b.lookup({ by: "key", key: A.publicKey }, 5000)).records[0]!.record;
  a.publish(selfOf(A, "worker", "private", [RV[0]!]));
  await Promise.resolve();
  const first = await stored();
  assert.deepEqual(first.staticKey, A.staticKey.publicKey);
  assert.equal(first.staticSerial, A.binding.serial);
  assert.deepEqual(first.mailboxes, [RV[0]]);

  a.publish(selfOf(A, "worker", "private", [RV[0]!, RV[1]!, RV[0]!, RV[2]!, RV[3]!, RV[4]!]));
  await Promise.resolve();
  const second = await stored();
  assert.deepEqual(second.mailboxes, RV.slice(0, 4), "distinct, the first four");
  assert.ok(second.serial > first.serial);
});

Deno.test("a stale lookup finds an offline node's record its mailbox keeps past expiry; a default lookup does not", async () => {
  const { client, clock } = world(2);
  const a = client(A, AT_A);
  // Rendezvous 0 is named as a mailbox, rendezvous 1 is not.
  a.publish(selfOf(A, "worker", "private", [RV[0]!]));
  await Promise.resolve();
  clock.now = T0 + RECORD_LIFETIME_MS + 24 * 60 * 60_000; // A has been off for a day
  const b = client(B, AT_B);
  const plain = await b.lookup({ by: "key", key: A.publicKey }, 5000);
  assert.equal(plain.records.length, 0);
  assert.equal(plain.answered, 2);
  assert.deepEqual(b.dropped, { malformed: 0, unsolicited: 0, bad_record: 0, expired: 1 });

  for (
    const key of [{ by: "key", key: A.publicKey }, { by: "address", address: A.address }] as const
  ) {
    const stale = await b.lookup(key, 5000, { stale: true });
    assert.equal(stale.records.length, 1, key.by);
    assert.deepEqual(stale.records[0]!.at, [0], "only the mailbox kept it");
    assert.deepEqual(stale.records[0]!.record.mailboxes, [RV[0]]);
    assert.deepEqual(stale.records[0]!.record.staticKey, A.staticKey.publicKey);
  }
  const byName = await b.lookup({ by: "hostname", hostname: "worker" }, 5000, { stale: true });
  assert.equal(byName.records.length, 0, "an expired record holds no hostname");

  clock.now = T0 + RECORD_LIFETIME_MS + MAILBOX_RETENTION_MS;
  const gone = await b.lookup({ by: "key", key: A.publicKey }, 5000, { stale: true });
  assert.equal(gone.records.length, 0, "retention over");
});

Deno.test("the keepalive's check publishes again when a mailbox answers with an older record it retained", async () => {
  const down: number[] = [];
  const { client, clock } = world(1, { down });
  const a = client(A, AT_A);
  a.publish(selfOf(A, "worker", "private", [RV[0]!]));
  await Promise.resolve();
  // The record expired there (retained) while the refreshed one got lost.
  clock.now = T0 + RECORD_LIFETIME_MS + 60_000;
  down.push(0);
  a.tick();
  down.pop();
  a.checkPublished(0, 5000);
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(a.states[0]!.published, false, "an older record: ours is missing");
  a.tick();
  await Promise.resolve();
  assert.equal(a.states[0]!.published, true);
  const b = client(B, AT_B);
  const found = await b.lookup({ by: "hostname", hostname: "worker" }, 5000);
  assert.deepEqual(found.records.map((r) => r.address), [A.address], "the live record is back");
});
