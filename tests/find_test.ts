/**
 * `pilot find` (issue 9): a node looks names up in what it knows and at its
 * rendezvous, and shows every claimant, without sending anything to them.
 */

import assert from "node:assert/strict";
import { privateDhtLab } from "./_dht_lab.ts";
import {
  fixture,
  PAIR_B_NAME,
  startNode,
  startRendezvous,
  stopAll,
  type TestNode,
  waitFor,
} from "./_daemon_harness.ts";

const RENDEZVOUS_FIXTURE = 5;

Deno.test("find shows a name's address, fingerprint, visibility and reachability from a rendezvous, every claimant of a hostname, and contacts none of them", async () => {
  await using rendezvous = await startRendezvous(RENDEZVOUS_FIXTURE);
  const at = rendezvous.at;
  let worker: TestNode | undefined;
  let hidden: TestNode | undefined;
  let twin: TestNode | undefined;
  let finder: TestNode | undefined;
  try {
    worker = await startNode({
      identity: 1,
      hostname: PAIR_B_NAME,
      args: ["--rendezvous", at, "--public"],
    });
    // Private: its record carries no endpoint. It and `twin` both claim "twin".
    hidden = await startNode({ identity: 2, hostname: "twin", args: ["--rendezvous", at] });
    twin = await startNode({
      identity: 3,
      hostname: "twin",
      args: ["--rendezvous", at, "--public"],
    });
    finder = await startNode({
      identity: 0,
      hostname: "secure-orchestrator",
      args: ["--rendezvous", at, "--peer", "build-box=127.0.0.1:9"],
    });
    const f = finder;
    await waitFor("all four records at the rendezvous", async () => {
      const r = await rendezvous.node.pilot("rendezvous", "status", "--json");
      return r.json?.data?.records === 4;
    }, 20_000);

    // The public worker by hostname, by address and by key: the same one candidate.
    const w = worker.identity!;
    for (const text of [PAIR_B_NAME, w.address, w.publicKey]) {
      const r = await f.pilot("find", text, "--json");
      assert.equal(r.code, 0, `${text}: ${r.stdout}${r.stderr}`);
      const data = r.json.data;
      assert.equal(data.query, text);
      assert.equal(data.conflict, null);
      assert.deepEqual(data.rendezvous, { asked: 1, answered: 1 });
      assert.deepEqual(data.candidates, [{
        address: w.address,
        hostname: PAIR_B_NAME,
        fingerprint: w.fingerprint,
        public_key: w.publicKey,
        visibility: "public",
        trusted: false,
        source: "rendezvous",
        sources: ["rendezvous"],
        reachability: "direct",
        endpoint: worker.listen,
      }], text);
    }
    // What each source said: the rendezvous answered with the record; the
    // others knew nothing or are not configured here (no LAN on loopback, no --dht).
    const bySource = await f.pilot("find", PAIR_B_NAME, "--json");
    const reports = bySource.json.data.sources;
    assert.deepEqual(
      reports.map((x: { source: string; status: string }) => [x.source, x.status]),
      [
        ["trust", "none"],
        ["static", "none"],
        ["session", "none"],
        ["remembered", "none"],
        ["lan", "not_configured"],
        ["rendezvous", "answered"],
        ["dht", "not_configured"],
      ],
    );
    const rv = reports[5];
    assert.deepEqual(rv.servers, { asked: 1, answered: 1 });
    assert.equal(rv.error, null);
    assert.equal(rv.said.length, 1);
    const said = rv.said[0];
    assert.deepEqual(
      [said.public_key, said.address, said.hostname, said.endpoint, said.relay, said.visibility],
      [w.publicKey, w.address, PAIR_B_NAME, worker.listen, false, "public"],
    );
    assert.ok(Number.isInteger(said.serial) && said.serial > 0, JSON.stringify(said));
    assert.deepEqual(bySource.json.data.decision, {
      outcome: "found",
      public_key: w.publicKey,
      source: "rendezvous",
      endpoint: worker.listen,
      endpoint_source: "rendezvous",
      trusted: false,
      key_changed: false,
    });
    const human = await f.pilot("find", PAIR_B_NAME);
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      new RegExp(`rendezvous +${w.address} \\(public, serial \\d+\\) at `),
    );
    assert.match(human.stdout, new RegExp(`address: +${w.address}`));
    assert.match(human.stdout, new RegExp(`fingerprint: +${w.fingerprint}`));
    assert.match(human.stdout, /reachability: +direct/);

    // The private node: found, its visibility said, no endpoint anywhere in the answer.
    const h = hidden.identity!;
    const privately = await f.pilot("find", h.address, "--json");
    assert.equal(privately.code, 0, privately.stdout + privately.stderr);
    const [p] = privately.json.data.candidates;
    assert.deepEqual(
      [p.address, p.fingerprint, p.visibility, p.reachability, p.endpoint],
      [h.address, h.fingerprint, "private", "relay", null],
    );
    assert.ok(!privately.stdout.includes("127.0.0.1"), privately.stdout);

    // Two keys claim "twin": both listed, none picked.
    const both = await f.pilot("find", "twin", "--json");
    assert.equal(both.code, 0, both.stdout + both.stderr);
    assert.deepEqual(both.json.data.conflict, { hostname: "twin", claimants: 2 });
    const claimants = both.json.data.candidates;
    assert.deepEqual(
      claimants.map((c: { address: string }) => c.address).sort(),
      [h.address, twin.identity!.address].sort(),
    );
    const byAddress = new Map(claimants.map((c: { address: string }) => [c.address, c]));
    // deno-lint-ignore no-explicit-any
    const [hc, tc] = [byAddress.get(h.address), byAddress.get(twin.identity!.address)] as any[];
    assert.deepEqual([hc.visibility, hc.reachability, hc.endpoint], ["private", "relay", null]);
    assert.deepEqual([tc.visibility, tc.reachability, tc.endpoint], [
      "public",
      "direct",
      twin.listen,
    ]);
    assert.match((await f.pilot("find", "twin")).stdout, /^conflict: 2 keys claim "twin"/);
    // The merge rule's answer for a handshake by that name: a conflict, the
    // private twin's record reached through the relay, its IP never shown.
    assert.equal(both.json.data.decision.outcome, "conflict");
    assert.equal(both.json.data.decision.public_key, null);
    const twinSaid = both.json.data.sources[5].said;
    assert.deepEqual(
      twinSaid.map((x: { address: string }) => x.address).sort(),
      [h.address, twin.identity!.address].sort(),
    );
    const hiddenSaid = twinSaid.find((x: { address: string }) => x.address === h.address);
    assert.deepEqual([hiddenSaid.endpoint, hiddenSaid.relay, hiddenSaid.visibility], [
      null,
      true,
      "private",
    ]);

    // Local knowledge: a `--peer` entry, its key unknown until someone handshakes there.
    const local = await f.pilot("find", "build-box", "--json");
    assert.equal(local.code, 0, local.stdout + local.stderr);
    assert.deepEqual(local.json.data.sources[1], {
      source: "static",
      status: "answered",
      said: [{
        public_key: null,
        address: null,
        hostname: "build-box",
        endpoint: "127.0.0.1:9",
        relay: false,
        visibility: null,
        serial: null,
        unreachable: null,
      }],
      error: null,
      servers: null,
    });
    assert.deepEqual(local.json.data.decision, {
      outcome: "found",
      public_key: null,
      source: "static",
      endpoint: "127.0.0.1:9",
      endpoint_source: "static",
      trusted: false,
      key_changed: false,
    });
    assert.deepEqual(local.json.data.candidates, [{
      address: null,
      hostname: "build-box",
      fingerprint: null,
      public_key: null,
      visibility: "unknown",
      trusted: false,
      source: "static",
      sources: ["static"],
      reachability: "direct",
      endpoint: "127.0.0.1:9",
    }]);

    // Nobody knows it: not_found with a hint; an endpoint is no name.
    const unknown = await f.pilot("find", "no-such-node", "--json");
    assert.equal(unknown.code, 1, unknown.stdout);
    assert.equal(unknown.json.code, "not_found");
    assert.match(unknown.json.message, /no rendezvous knows it/);
    assert.ok(unknown.json.hint.length > 0);
    const unknownKey = await f.pilot("find", fixture(6).public_key, "--json");
    assert.equal(unknownKey.json?.code, "not_found", unknownKey.stdout);
    const endpoint = await f.pilot("find", "127.0.0.1:9", "--json");
    assert.equal(endpoint.code, 2, endpoint.stdout);
    assert.equal(endpoint.json.code, "invalid_argument");
    assert.match(endpoint.json.hint, /hostname, address or full key/);
    const self = await f.pilot("find", f.identity!.address, "--json");
    assert.equal(self.json?.code, "invalid_argument", self.stdout);
    assert.match(self.json.message, /this node itself/);

    // None of the nodes found heard from the finder: no session, no request.
    for (const n of [worker, hidden, twin]) {
      const peers = (await n.pilot("peers", "--json")).json.data.peers;
      assert.ok(
        !peers.some((x: { address: string }) => x.address === f.identity!.address),
        JSON.stringify(peers),
      );
      assert.deepEqual((await n.pilot("pending", "--json")).json.data.pending, []);
    }
    const finderPeers = (await f.pilot("peers", "--json")).json.data.peers;
    assert.deepEqual(
      finderPeers.map((x: { address: string }) => x.address),
      [fixture(RENDEZVOUS_FIXTURE).address],
      "the finder's only session is with its rendezvous",
    );
  } finally {
    await stopAll(worker, hidden, twin, finder);
  }
});

Deno.test("find on a node without a rendezvous: not_found says it has none, with a hint to add one", async () => {
  const node = await startNode({ identity: 0 });
  try {
    const r = await node.pilot("find", "data-processor-node", "--json");
    assert.equal(r.json?.code, "not_found", r.stdout);
    assert.match(r.json.message, /this node has no rendezvous/);
    assert.match(r.json.hint, /--rendezvous/);
  } finally {
    await node.stop();
  }
});

Deno.test("find on nodes that share only a DHT: the dht source says what the record does (by key) and where the address announced (by address); the LAN and rendezvous show as not configured", async () => {
  await using lab = await privateDhtLab();
  const { bootstrap, start } = lab;
  const worker = await start(1, PAIR_B_NAME);
  const finder = await start(0, "secure-orchestrator");
  const w = worker.identity!;
  await waitFor("the worker's record in the DHT", async () => {
    return (await bootstrap.lookupKey(Uint8Array.fromHex(w.publicKey))) !== null;
  }, 30_000);

  const byKey = await finder.pilot("find", w.publicKey, "--json");
  assert.equal(byKey.code, 0, byKey.stdout + byKey.stderr);
  const statuses = (r: typeof byKey) =>
    r.json.data.sources.map((x: { source: string; status: string }) => [x.source, x.status]);
  assert.deepEqual(statuses(byKey), [
    ["trust", "none"],
    ["static", "none"],
    ["session", "none"],
    ["remembered", "none"],
    ["lan", "not_configured"],
    ["rendezvous", "not_configured"],
    ["dht", "answered"],
  ]);
  const [said] = byKey.json.data.sources[6].said;
  assert.deepEqual(
    [said.public_key, said.address, said.hostname, said.visibility, said.relay],
    [w.publicKey, w.address, PAIR_B_NAME, "public", false],
  );
  assert.ok(said.endpoint !== null && Number.isInteger(said.serial), JSON.stringify(said));
  assert.deepEqual(
    [byKey.json.data.decision.outcome, byKey.json.data.decision.endpoint_source],
    ["found", "dht"],
  );

  // By address the DHT holds no record, only where the address announced
  // itself: no key yet (the handshake would prove the address).
  const byAddress = await finder.pilot("find", w.address, "--json");
  assert.equal(byAddress.code, 0, byAddress.stdout + byAddress.stderr);
  const [at] = byAddress.json.data.sources[6].said;
  assert.deepEqual([at.public_key, at.address, at.visibility], [null, w.address, null]);
  assert.ok(at.endpoint !== null, JSON.stringify(at));
  assert.deepEqual(byAddress.json.data.candidates.map((c: { sources: string[] }) => c.sources), [
    ["dht"],
  ]);
  const decided = byAddress.json.data.decision;
  assert.deepEqual([decided.outcome, decided.public_key, decided.endpoint_source], [
    "found",
    null,
    "dht",
  ]);
  assert.match(
    (await finder.pilot("find", w.publicKey)).stdout,
    /\n {2}dht +\S+ \(public, serial \d+\) at /,
  );
  assert.deepEqual((await worker.pilot("pending", "--json")).json.data.pending, []);
});
