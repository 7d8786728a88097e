/**
 * `pilot rendezvous` end to end (issue 9): a real rendezvous process serves
 * port 445 to strangers over ordinary Noise sessions — a node publishes its
 * signed record and learns its observed endpoint, another node that nobody
 * trusts finds it by hostname and checks the record itself, and nobody can
 * publish someone else's record.
 */

import assert from "node:assert/strict";
import { PORT_RENDEZVOUS } from "../src/constants.ts";
import { signPresence, verifyPresence } from "../src/discovery/presence.ts";
import {
  decodeRendezvousMessage,
  encodeRendezvousMessage,
  type RendezvousMessage,
} from "../src/wire/rendezvous_message.ts";
import { RENDEZVOUS_STATUS } from "../src/control/contract/rendezvous.ts";
import { validate } from "../src/control/schema.ts";
import {
  callApi,
  endpointOf,
  fixture,
  RawPeer,
  startNode,
  startRendezvous,
  waitFor,
} from "./_daemon_harness.ts";

const RENDEZVOUS_FIXTURE = 5;

async function ask(
  peer: RawPeer,
  rendezvousKey: string,
  m: RendezvousMessage & { id: number },
): Promise<RendezvousMessage> {
  await peer.sessions.send(rendezvousKey, {
    kind: "datagram",
    srcPort: PORT_RENDEZVOUS,
    dstPort: PORT_RENDEZVOUS,
    payload: encodeRendezvousMessage(m),
  });
  return await waitFor(`the answer to request ${m.id}`, () => {
    for (const p of peer.received) {
      if (p.kind !== "datagram" || p.dstPort !== PORT_RENDEZVOUS) continue;
      const answer = decodeRendezvousMessage(p.payload);
      if ("id" in answer && answer.id === m.id) return answer;
    }
    return undefined;
  });
}

Deno.test("pilot rendezvous stores a node's record and answers a stranger's lookup by hostname", async () => {
  await using rv = await startRendezvous(RENDEZVOUS_FIXTURE);
  const rendezvous = rv.node;
  const info = await rendezvous.info();
  assert.ok(info.services.includes("rendezvous"), JSON.stringify(info.services));
  const at = rv.endpoint;
  const key = fixture(RENDEZVOUS_FIXTURE).public_key;
  await using worker = new RawPeer(2);
  await using stranger = new RawPeer(3);
  await worker.sessions.connect(at, { publicKey: Uint8Array.fromHex(key) }, 10_000);

  const now = Date.now();
  const record = signPresence(worker.identity.seed, {
    publicKey: worker.identity.publicKey,
    stamp: worker.identity.stamp,
    hostname: "data-processor-node",
    visibility: "private",
    serial: now,
    expiresAt: now + 30 * 60_000,
    endpoints: [],
    staticKey: worker.identity.binding.staticKey,
    staticSerial: worker.identity.binding.serial,
    mailboxes: [],
  });
  const published = await ask(worker, key, { type: "publish", id: 1, record });
  assert.equal(published.type, "ok", JSON.stringify(published));
  assert.equal(published.type === "ok" && published.observed.hostname, "127.0.0.1");

  // A node nobody trusts asks by name, and believes only what it verifies.
  await stranger.sessions.connect(at, { publicKey: Uint8Array.fromHex(key) }, 10_000);
  const found = await ask(stranger, key, {
    type: "lookup",
    id: 2,
    by: "hostname",
    hostname: "data-processor-node",
  });
  assert.equal(found.type, "found", JSON.stringify(found));
  const verified = verifyPresence(found.type === "found" ? found.record : new Uint8Array(), now);
  assert.equal(verified.address, worker.identity.address);

  // Nobody publishes another node's record, however valid it is.
  assert.deepEqual(await ask(stranger, key, { type: "publish", id: 3, record }), {
    type: "error",
    id: 3,
    code: "not_your_record",
  });
  // Its counters, on its own route, exactly as the contract says.
  const counted = await callApi(rendezvous, "GET", "/v1/rendezvous");
  assert.equal(counted.status, 200, JSON.stringify(counted.json));
  assert.deepEqual(validate(RENDEZVOUS_STATUS.output, counted.json.data, { closed: true }), []);
  assert.equal(counted.json.data.records, 1);
});

Deno.test("an ordinary node serves no port 445: a stranger's rendezvous request is dropped unanswered", async () => {
  await using node = await startNode({ identity: 4 });
  await using stranger = new RawPeer(3);
  const key = fixture(4).public_key;
  await stranger.sessions.connect(endpointOf(node.listen), {
    publicKey: Uint8Array.fromHex(key),
  }, 10_000);
  await stranger.sessions.send(key, {
    kind: "datagram",
    srcPort: PORT_RENDEZVOUS,
    dstPort: PORT_RENDEZVOUS,
    payload: encodeRendezvousMessage({ type: "observe", id: 1 }),
  });
  await waitFor("the gate's drop", async () => (await node.info()).drops.not_trusted === 1);
  assert.deepEqual(stranger.received.filter((p) => p.kind === "datagram"), []);
});

Deno.test("an ordinary node answers the rendezvous route with not_found and a hint", async () => {
  await using node = await startNode({ identity: 4 });
  const r = await callApi(node, "GET", "/v1/rendezvous");
  assert.equal(r.status, 404);
  assert.equal(r.json.code, "not_found");
  assert.match(r.json.hint, /pilot rendezvous/);
});
