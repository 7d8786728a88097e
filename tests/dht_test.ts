/**
 * Presence records in a private Mainline DHT of a few nodes on loopback
 * (discovery/dht.ts; issue 10 item 4): found by key and believed only after
 * the project's own checks; items with a bad signature, an older sequence
 * number, or a value that is not that key's record are refused.
 */
import assert from "node:assert/strict";
import { signPresence } from "../src/discovery/presence.ts";
import { PresenceDht } from "../src/discovery/dht.ts";
import type { Identity } from "../src/identity/identity.ts";
import { FUZZ_IDS } from "./_fuzz.ts";

const [A, B] = [FUZZ_IDS[0]!, FUZZ_IDS[1]!];

function record(id: Identity, serial: number, hostname = "worker"): Uint8Array {
  return signPresence(id.seed, {
    publicKey: id.publicKey,
    stamp: id.stamp,
    hostname,
    visibility: "public",
    serial,
    expiresAt: Date.now() + 30 * 60_000,
    endpoints: [{ kind: "observed", hostname: "198.18.0.10", port: 7440 }],
    staticKey: id.binding.staticKey,
    staticSerial: id.binding.serial,
    mailboxes: [],
  });
}

/** `n` DHT nodes on loopback that all know each other. */
async function privateDht(n: number): Promise<PresenceDht[] & AsyncDisposable> {
  const nodes: PresenceDht[] = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await PresenceDht.start({ host: "127.0.0.1", port: 0, bootstrap: [] }));
  }
  for (const a of nodes) for (const b of nodes) if (a !== b) a.addNode(b.endpoint);
  await new Promise((r) => setTimeout(r, 300));
  return Object.assign(nodes, {
    [Symbol.asyncDispose]: async () => {
      await Promise.all(nodes.map((x) => x.close()));
    },
  });
}

Deno.test("a record published in a private DHT is found by key at another node, verified by our own checks", async () => {
  await using dht = await privateDht(4);
  const serial = Date.now();
  const stored = await dht[0]!.publish(record(A, serial), A.seed, A.publicKey, serial);
  assert.ok(stored >= 1, `stored at ${stored} nodes`);
  const found = await dht[3]!.lookupKey(A.publicKey);
  assert.equal(found?.address, A.address);
  assert.equal(found?.record.hostname, "worker");
  assert.equal(found?.record.serial, serial);
  assert.equal(await dht[3]!.lookupKey(B.publicKey), null, "nobody published B");
});

Deno.test("an item whose signature is not its key owner's is refused by the DHT nodes", async () => {
  await using dht = await privateDht(4);
  const serial = Date.now();
  await dht[0]!.publish(record(A, serial, "genuine"), A.seed, A.publicKey, serial);
  // B signs a newer item under A's key: every node refuses it, the genuine one stays.
  await dht[1]!.publish(record(A, serial + 1, "forged"), B.seed, A.publicKey, serial + 1)
    .catch(() => 0);
  const found = await dht[3]!.lookupKey(A.publicKey);
  assert.equal(found?.record.hostname, "genuine");
  assert.equal(found?.record.serial, serial);
});

Deno.test("an older sequence number does not replace a newer record", async () => {
  await using dht = await privateDht(4);
  const newer = Date.now();
  await dht[0]!.publish(record(A, newer, "newer"), A.seed, A.publicKey, newer);
  await dht[1]!.publish(record(A, newer - 1000, "older"), A.seed, A.publicKey, newer - 1000)
    .catch(() => 0);
  const found = await dht[3]!.lookupKey(A.publicKey);
  assert.equal(found?.record.hostname, "newer");
  assert.equal(found?.record.serial, newer);
});

Deno.test("a validly signed item that is not a record, or is another key's record, is dropped and counted", async () => {
  await using dht = await privateDht(4);
  const serial = Date.now();
  await dht[0]!.publish(new TextEncoder().encode("not a record"), A.seed, A.publicKey, serial);
  assert.equal(await dht[3]!.lookupKey(A.publicKey), null);
  assert.equal(dht[3]!.dropped.bad_record, 1);
  // B's valid record, stored by A under A's key: a record, but not A's.
  await dht[0]!.publish(record(B, serial + 1), A.seed, A.publicKey, serial + 1);
  assert.equal(await dht[3]!.lookupKey(A.publicKey), null);
  assert.equal(dht[3]!.dropped.wrong_key, 1);
});

Deno.test("a node announced under its address is found by that address", async () => {
  await using dht = await privateDht(4);
  await dht[0]!.announce(A.address, 7440);
  const found = await dht[3]!.lookupAddress(A.address, 3000);
  assert.ok(
    found.some((e) => e.hostname === "127.0.0.1" && e.port === 7440),
    JSON.stringify(found),
  );
  assert.deepEqual(await dht[3]!.lookupAddress(B.address, 1000), []);
});

Deno.test("nodes announced under a hostname are all found by it: a name announced twice is two claimants", async () => {
  await using dht = await privateDht(4);
  await dht[0]!.announceHostname("data-processor-node", 7440);
  const one = await dht[3]!.lookupHostname("data-processor-node", 3000);
  assert.deepEqual(one.map((e) => e.port), [7440]);
  await dht[1]!.announceHostname("data-processor-node", 7441);
  const two = await dht[3]!.lookupHostname("data-processor-node", 3000);
  assert.deepEqual(two.map((e) => e.port).sort(), [7440, 7441]);
  assert.deepEqual(await dht[3]!.lookupHostname("another-node", 1000), []);
  assert.deepEqual(await dht[3]!.lookupAddress(A.address, 1000), [], "names and addresses apart");
});
