/**
 * Daemons that share only a private Mainline DHT on loopback (`--dht`, no
 * rendezvous, no LAN) find each other by full key and by address and
 * handshake (issue 10 item 4); a public node's hostname is found too, as
 * trust on first use. The DHT's bootstrap node runs in this
 * process; the daemons' own DHT nodes join through it.
 */
import assert from "node:assert/strict";
import { privateDhtLab } from "./_dht_lab.ts";
import { fixture, waitFor } from "./_daemon_harness.ts";

Deno.test("two public nodes that share only a private DHT find each other by full key, by address and by hostname, and a handshake proves the key", async () => {
  await using lab = await privateDhtLab();
  const { bootstrap, start } = lab;
  const worker = await start(1, "data-processor-node");
  const orchestrator = await start(0, "secure-orchestrator");
  const third = await start(2, "third-node");
  const workerKey = Uint8Array.fromHex(worker.identity!.publicKey);
  await waitFor("the worker's record in the DHT", async () => {
    return (await bootstrap.lookupKey(workerKey)) !== null;
  }, 30_000);

  // find asks the DHT without contacting the node.
  const found = await third.pilot("find", worker.identity!.publicKey, "--json");
  assert.equal(found.code, 0, found.stdout + found.stderr);
  const candidate = found.json.data.candidates[0];
  assert.deepEqual(candidate.sources, ["dht"]);
  assert.equal(candidate.address, worker.identity!.address);
  assert.equal(candidate.visibility, "public");
  assert.equal((await worker.pilot("pending", "--json")).json.data.pending.length, 0);

  const byKey = await orchestrator.pilot(
    "handshake",
    worker.identity!.publicKey,
    "--reason",
    "found in the DHT",
    "--json",
  );
  assert.equal(byKey.code, 0, byKey.stdout + byKey.stderr);
  assert.equal(byKey.json.data.peer.address, worker.identity!.address);
  assert.equal(
    byKey.json.data.first_contact,
    false,
    "a full key names itself: no trust on first use",
  );

  const byAddress = await third.pilot("handshake", worker.identity!.address, "--json");
  assert.equal(byAddress.code, 0, byAddress.stdout + byAddress.stderr);
  assert.equal(byAddress.json.data.peer.public_key, worker.identity!.publicKey);

  // By hostname: the worker announced it (a public node); the handshake proves the claim.
  const fourth = await start(3, "fourth-node");
  await waitFor("the worker's hostname in the DHT", async () => {
    const f = await fourth.pilot("find", "data-processor-node", "--json");
    return f.json?.data?.sources?.some((s: { source: string; status: string }) =>
      s.source === "dht" && s.status === "answered"
    );
  }, 30_000);
  const byName = await fourth.pilot("handshake", "data-processor-node", "--json");
  assert.equal(byName.code, 0, byName.stdout + byName.stderr);
  assert.equal(byName.json.data.peer.public_key, worker.identity!.publicKey);
  assert.equal(byName.json.data.first_contact, true, "a name is trust on first use");

  const pending = (await worker.pilot("pending", "--json")).json.data.pending;
  assert.deepEqual(
    pending.map((p: { address: string }) => p.address).sort(),
    [fixture(0).address, fixture(2).address, fixture(3).address].sort(),
  );
  const info = (await third.pilot("info", "--json")).json.data;
  assert.ok(info.dht.nodes >= 1, JSON.stringify(info.dht));
  assert.deepEqual(info.dht.dropped, { bad_record: 0, wrong_key: 0 });
  assert.equal((await worker.pilot("info", "--json")).json.data.lan, null, "lan: false");
  // A key nobody published is not found.
  const unknown = await orchestrator.pilot("handshake", fixture(5).public_key, "--json");
  assert.notEqual(unknown.code, 0);
});
