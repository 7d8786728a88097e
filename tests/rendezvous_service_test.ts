/**
 * The rendezvous request handler (issue 9), sans-IO: publish only one's own
 * record, lookups, the observed endpoint, punch requests forwarded to the
 * target and nothing about the target to the requester, relayed frames
 * within byte quotas, and every drop counted.
 */

import assert from "node:assert/strict";
import type { Address } from "../src/identity/address.ts";
import type { Identity } from "../src/identity/identity.ts";
import { signPresence } from "../src/discovery/presence.ts";
import type { Endpoint } from "../src/discovery/endpoint.ts";
import { RecordStore } from "../src/services/rendezvous/store.ts";
import { RENDEZVOUS_LIMITS, RendezvousService } from "../src/services/rendezvous/service.ts";
import {
  decodeRendezvousMessage,
  encodeRendezvousMessage,
  type RendezvousMessage,
} from "../src/wire/rendezvous_message.ts";
import { FUZZ_IDS } from "./_fuzz.ts";
import { peerIdentityOf } from "./_session_helpers.ts";

const NOW = 1_800_000_000_000;
const [A, B, C] = [FUZZ_IDS[0]!, FUZZ_IDS[1]!, FUZZ_IDS[2]!];
const AT_A: Endpoint = { hostname: "198.18.0.10", port: 40001 };
const AT_B: Endpoint = { hostname: "198.18.0.20", port: 40002 };

function recordOf(id: Identity, hostname: string): Uint8Array {
  return signPresence(id.seed, {
    publicKey: id.publicKey,
    stamp: id.stamp,
    hostname,
    visibility: "private",
    serial: NOW,
    expiresAt: NOW + 30 * 60_000,
    endpoints: [],
    staticKey: id.binding.staticKey,
    staticSerial: id.binding.serial,
    mailboxes: [],
  });
}

/** A handler whose link reaches the peers in `connected`, recording what it sent. */
function rendezvous(connected: Identity[], limits = RENDEZVOUS_LIMITS) {
  const clock = { now: 0 };
  const sent: { to: string; message: RendezvousMessage }[] = [];
  const byAddress = new Map(connected.map((id) => [id.address, id.publicKey.toHex()]));
  const service = new RendezvousService(
    new RecordStore({ now: () => NOW }),
    {
      peerAt: (address: Address) => byAddress.get(address),
      send: (to, bytes) => {
        sent.push({ to, message: decodeRendezvousMessage(bytes) });
        return true;
      },
    },
    () => clock.now,
    limits,
  );
  const ask = (from: Identity, at: Endpoint, m: RendezvousMessage) => {
    const answer = service.handle(peerIdentityOf(from), at, encodeRendezvousMessage(m));
    return answer === null ? null : decodeRendezvousMessage(answer);
  };
  return { service, sent, ask, clock };
}

Deno.test("a node publishes its own record, learns its observed endpoint, and others find it by name", () => {
  const { ask } = rendezvous([A, B]);
  assert.deepEqual(ask(A, AT_A, { type: "publish", id: 1, record: recordOf(A, "worker") }), {
    type: "ok",
    id: 1,
    changed: true,
    observed: AT_A,
    conflict: null,
  });
  const found = ask(B, AT_B, { type: "lookup", id: 2, by: "hostname", hostname: "worker" });
  assert.equal(found?.type, "found");
  assert.deepEqual(found.type === "found" && found.record, recordOf(A, "worker"));
  assert.deepEqual(ask(B, AT_B, { type: "lookup", id: 3, by: "address", address: C.address }), {
    type: "not_found",
    id: 3,
  });
  assert.deepEqual(ask(B, AT_B, { type: "observe", id: 4 }), {
    type: "observed",
    id: 4,
    endpoint: AT_B,
  });
});

Deno.test("a node cannot publish another node's record, however valid", () => {
  const { ask, service } = rendezvous([A, B]);
  assert.deepEqual(ask(B, AT_B, { type: "publish", id: 1, record: recordOf(A, "worker") }), {
    type: "error",
    id: 1,
    code: "not_your_record",
  });
  assert.deepEqual(ask(B, AT_B, { type: "publish", id: 2, record: new Uint8Array(10) }), {
    type: "error",
    id: 2,
    code: "not_your_record",
  });
  assert.equal(service.stats().dropped.malformed, 0, "answered, not dropped");
  // Its own key in the right place, the rest no record: the table refuses it.
  const broken = recordOf(B, "worker").slice(0, 40);
  assert.deepEqual(ask(B, AT_B, { type: "publish", id: 3, record: broken }), {
    type: "error",
    id: 3,
    code: "malformed",
  });
});

Deno.test("a second key claiming a name hears of the conflict, and lookups list it beside the holder", () => {
  const { ask } = rendezvous([A, B, C]);
  ask(A, AT_A, { type: "publish", id: 1, record: recordOf(A, "worker") });
  const second = ask(B, AT_B, { type: "publish", id: 2, record: recordOf(B, "worker") });
  assert.deepEqual(second?.type === "ok" && second.conflict, {
    hostname: "worker",
    boundTo: A.address,
  });
  const found = ask(C, AT_A, { type: "lookup", id: 3, by: "hostname", hostname: "worker" });
  assert.deepEqual(found?.type === "found" && found.conflicts, [B.address]);
});

Deno.test("a punch request reaches the target with the requester's endpoint, and tells the requester nothing of the target", () => {
  const { ask, sent } = rendezvous([A, B]);
  const answer = ask(A, AT_A, { type: "punch", id: 7, to: B.address });
  assert.deepEqual(answer, { type: "observed", id: 7, endpoint: AT_A });
  assert.deepEqual(sent, [{
    to: B.publicKey.toHex(),
    message: { type: "punch_from", id: 0, from: A.address, endpoint: AT_A },
  }]);
  assert.deepEqual(ask(A, AT_A, { type: "punch", id: 8, to: C.address }), {
    type: "not_found",
    id: 8,
  }, "no session with C here");
});

Deno.test("relayed frames go to the target's session within byte quotas, and never answer", () => {
  const limits = {
    ...RENDEZVOUS_LIMITS,
    relayPerPeer: { burst: 3000, perSecond: 1000 },
  };
  const { ask, sent, service, clock } = rendezvous([A, B], limits);
  const frame = new Uint8Array(1000).fill(9);
  for (let i = 0; i < 5; i++) {
    assert.equal(ask(A, AT_A, { type: "relay", to: B.address, frame }), null);
  }
  assert.equal(sent.length, 3, "3000 bytes of burst");
  assert.deepEqual(sent[0]!.message, { type: "relayed", from: A.address, frame });
  assert.equal(sent[0]!.to, B.publicKey.toHex());
  clock.now += 1000;
  ask(A, AT_A, { type: "relay", to: B.address, frame });
  assert.equal(sent.length, 4, "the quota refills");
  ask(A, AT_A, { type: "relay", to: C.address, frame });
  ask(A, AT_A, { type: "relay", to: A.address, frame });
  const stats = service.stats();
  assert.deepEqual(stats.relayed, { frames: 4, bytes: 4000 });
  assert.equal(stats.dropped.relay_quota, 2);
  assert.equal(stats.dropped.relay_no_target, 2, "an unknown target, and oneself");
});

Deno.test("a relayed frame leaves as the exact bytes its encoding gives, copied from the datagram", () => {
  const bytes: Uint8Array[] = [];
  const service = new RendezvousService(
    new RecordStore({ now: () => NOW }),
    {
      peerAt: (address: Address) => address === B.address ? B.publicKey.toHex() : undefined,
      send: (_to, b) => {
        bytes.push(b);
        return true;
      },
    },
    () => 0,
  );
  for (const size of [0, 1, 1300, 65_000]) {
    const frame = new Uint8Array(size).map((_, i) => i * 7);
    const datagram = encodeRendezvousMessage({ type: "relay", to: B.address, frame });
    assert.equal(service.handle(peerIdentityOf(A), AT_A, datagram), null);
    const out = bytes.at(-1)!;
    assert.deepEqual(out, encodeRendezvousMessage({ type: "relayed", from: A.address, frame }));
    datagram.fill(0);
    assert.deepEqual(decodeRendezvousMessage(out), { type: "relayed", from: A.address, frame });
  }
  assert.equal(bytes.length, 4);
});

Deno.test("requests over a peer's rate, answers sent to the rendezvous and garbage are dropped and counted", () => {
  const limits = { ...RENDEZVOUS_LIMITS, requests: { burst: 3, perSecond: 1 } };
  const { ask, service } = rendezvous([A], limits);
  const answers = Array.from({ length: 5 }, (_, i) => ask(A, AT_A, { type: "observe", id: i }));
  assert.equal(answers.filter((a) => a !== null).length, 3);
  assert.equal(ask(A, AT_A, { type: "not_found", id: 1 }), null);
  assert.equal(service.handle(peerIdentityOf(A), AT_A, new Uint8Array([0x42])), null);
  assert.deepEqual(service.stats().dropped, {
    malformed: 1,
    unexpected: 1,
    rate_limited: 2,
    relay_no_target: 0,
    relay_quota: 0,
  });
});
