/**
 * The seed's flow through a rendezvous (issue 9): two daemons that know
 * only a rendezvous (by key and endpoint) and each other's hostname. The
 * worker publishes its signed record (public: with its endpoints); the
 * orchestrator's `handshake data-processor-node` finds it there, the worker
 * approves, and `send` delivers.
 */

import assert from "node:assert/strict";
import {
  callApi,
  fixture,
  makeHome,
  PAIR_B_NAME,
  startRendezvous,
  TestNode,
  trustEntry,
  waitFor,
} from "./_daemon_harness.ts";

const RENDEZVOUS_FIXTURE = 5;

/** The seed's `send data-processor-node --data '{"command":"run"}' --type json`, and `to`'s inbox has it. */
async function sendRun(from: TestNode, to: TestNode): Promise<void> {
  const data = '{"command":"run"}';
  const sent = await from.pilot("send", PAIR_B_NAME, "--data", data, "--type", "json", "--json");
  assert.equal(sent.code, 0, sent.stdout + sent.stderr);
  const inbox = await to.pilot("inbox", "--json");
  assert.equal(inbox.json.data.messages[0]?.data, data);
}

/** A daemon of fixture `identity` claiming `hostname`, with the rendezvous `at` (and `args`). */
async function nodeAt(identity: number, hostname: string, at: string, ...args: string[]) {
  const node = new TestNode(await makeHome({ identity }), {
    identity,
    hostname,
    args: ["--rendezvous", at, ...args],
  });
  await node.start();
  return node;
}

/** Waits until `rendezvous` holds `count` records. */
async function records(rendezvous: TestNode, count: number): Promise<void> {
  await waitFor(`${count} records at the rendezvous`, async () => {
    const r = await rendezvous.pilot("rendezvous", "status", "--json");
    return r.json?.data?.records === count;
  }, 20_000);
}

Deno.test("handshake, approve and send by hostname between two nodes that know only a rendezvous", async () => {
  await using rendezvous = await startRendezvous(RENDEZVOUS_FIXTURE);
  const rv = rendezvous.node;
  const at = rendezvous.at;
  let worker: TestNode | undefined;
  let orchestrator: TestNode | undefined;
  try {
    worker = await nodeAt(1, PAIR_B_NAME, at, "--public");
    orchestrator = await nodeAt(0, "secure-orchestrator", at);
    const w = worker;
    await records(rv, 2);

    // A fingerprint the worker does not have: refused, nothing sent.
    const wrong = await orchestrator.pilot(
      "handshake",
      PAIR_B_NAME,
      "--expect-fingerprint",
      fixture(2).fingerprint,
      "--json",
    );
    assert.equal(wrong.json?.code, "key_changed", wrong.stdout + wrong.stderr);
    assert.equal((await w.pilot("pending", "--json")).json.data.pending.length, 0);
    const asked = await orchestrator.pilot(
      "handshake",
      PAIR_B_NAME,
      "--reason",
      "run jobs",
      "--expect-fingerprint",
      w.identity!.fingerprint,
      "--json",
    );
    assert.equal(asked.code, 0, asked.stdout + asked.stderr);
    assert.equal(asked.json.data.peer.address, w.identity!.address, "the real worker was asked");
    assert.equal(asked.json.data.first_contact, true, "found by name: trust on first use");
    const pending = await w.pilot("pending", "--json");
    assert.equal(pending.json.data.pending[0]?.address, orchestrator.identity!.address);
    const approved = await w.pilot("approve", orchestrator.identity!.address, "--json");
    assert.equal(approved.code, 0, approved.stdout + approved.stderr);
    const again = await orchestrator.pilot("handshake", PAIR_B_NAME, "--json");
    assert.equal(again.json?.data?.first_contact, false, "a trusted key is no first contact");
    await sendRun(orchestrator, w);
  } finally {
    await Promise.allSettled([worker?.stop(), orchestrator?.stop()]);
  }
});

Deno.test("a private node is reached through the rendezvous's relay (its IP never given to a stranger), then trusted peers punch to a direct path", async () => {
  await using rendezvous = await startRendezvous(RENDEZVOUS_FIXTURE);
  const rv = rendezvous.node;
  const at = rendezvous.at;
  let worker: TestNode | undefined;
  let orchestrator: TestNode | undefined;
  try {
    worker = await nodeAt(1, PAIR_B_NAME, at);
    orchestrator = await nodeAt(0, "secure-orchestrator", at);
    const w = worker;
    const o = orchestrator;
    await records(rv, 2);
    const unknown = await o.pilot("handshake", "no-such-node", "--json");
    assert.equal(unknown.json?.code, "not_found", unknown.stdout);
    assert.match(unknown.json.message, /no rendezvous knows it/);

    const asked = await o.pilot("handshake", PAIR_B_NAME, "--reason", "run jobs", "--json");
    assert.equal(asked.code, 0, asked.stdout + asked.stderr);
    assert.equal(asked.json.data.peer.address, w.identity!.address);
    assert.equal(asked.json.data.first_contact, true);
    const pending = await w.pilot("pending", "--json");
    assert.equal(pending.json.data.pending[0]?.address, o.identity!.address);
    // Before approval both ends see a relayed path through the rendezvous,
    // and no IP for each other.
    const rvAddress = (await rv.info()).address;
    const pathOf = async (self: TestNode, other: TestNode) => {
      const peers = (await self.pilot("peers", "--json")).json.data.peers;
      return peers.find((x: { address: string }) => x.address === other.identity!.address);
    };
    for (const [self, other] of [[o, w], [w, o]] as const) {
      const p = await pathOf(self, other);
      assert.equal(p?.path, "relay", JSON.stringify(p));
      assert.equal(p.via, rvAddress);
      assert.equal(p.endpoint, null);
    }
    const approved = await w.pilot("approve", o.identity!.address, "--json");
    assert.equal(approved.code, 0, approved.stdout + approved.stderr);
    await sendRun(o, w);

    // Trusted now, they punch: on loopback the probes arrive, and both
    // paths move to direct, each announced by peer.path_changed.
    for (const [self, other] of [[o, w], [w, o]] as const) {
      await waitFor("a direct path after punching", async () => {
        const p = await pathOf(self, other);
        return p?.path === "direct" && p.endpoint !== null;
      }, 15_000);
      const events = (await callApi(self, "GET", "/v1/events", { query: { limit: "1000" } }))
        .json.data.events;
      const moved = events.filter((e: { type: string; data: { peer: { address: string } } }) =>
        e.type === "peer.path_changed" && e.data.peer.address === other.identity!.address
      );
      assert.equal(moved.at(-1)?.data.path, "direct", JSON.stringify(moved));
    }
    const again = await o.pilot("send", PAIR_B_NAME, "--data", "direct now", "--json");
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const status = await rv.pilot("rendezvous", "status", "--json");
    assert.ok(status.json.data.relayed_bytes > 0, JSON.stringify(status.json.data));
  } finally {
    await Promise.allSettled([worker?.stop(), orchestrator?.stop()]);
  }
});

Deno.test("with punch off, trusted peers stay on the relay (no endpoints shared) and a file crosses it intact", async () => {
  await using rendezvous = await startRendezvous(RENDEZVOUS_FIXTURE);
  const at = rendezvous.at;
  const nodes: TestNode[] = [];
  try {
    const start = async (identity: number, other: number, hostname: string) => {
      const node = new TestNode(
        await makeHome({
          identity,
          trust: [trustEntry(other, { mutual: true })],
          config: { punch: false },
        }),
        { identity, hostname, args: ["--rendezvous", at] },
      );
      nodes.push(node);
      await node.start();
      return node;
    };
    const worker = await start(1, 0, PAIR_B_NAME);
    const orchestrator = await start(0, 1, "secure-orchestrator");
    await records(rendezvous.node, 2);
    const bytes = new Uint8Array(512 * 1024);
    for (let i = 0; i < bytes.length; i += 65_536) {
      crypto.getRandomValues(bytes.subarray(i, i + 65_536));
    }
    const path = `${orchestrator.home}/payload.bin`;
    await Deno.writeFile(path, bytes);
    const sha256 = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)).toHex();
    // A trusted key with no endpoint anywhere: found by key, reached through the relay.
    const sent = await orchestrator.pilot(
      "send-file",
      worker.identity!.address,
      path,
      "--timeout",
      "60s",
      "--json",
    );
    assert.equal(sent.code, 0, sent.stdout + sent.stderr);
    assert.equal(sent.json.data.sha256, sha256);
    const files = (await worker.pilot("received", "--json")).json.data.files;
    assert.equal(files[0]?.sha256, sha256);
    await new Promise((r) => setTimeout(r, 3_000));
    for (const [self, other] of [[orchestrator, worker], [worker, orchestrator]] as const) {
      const peers = (await self.pilot("peers", "--json")).json.data.peers;
      const p = peers.find((x: { address: string }) => x.address === other.identity!.address);
      assert.equal(p?.path, "relay", JSON.stringify(p));
    }
  } finally {
    await Promise.allSettled(nodes.map((n) => n.stop()));
  }
});
