/**
 * The trust handshake end to end with real daemons: handshake, pending,
 * approve and reject, crossing requests, pre-authorised peers, untrust, state
 * across restarts, and a name that now answers with a different key.
 */
import assert from "node:assert/strict";
import {
  callApi,
  establishTrust,
  fixture,
  okOf,
  PAIR_A_NAME,
  PAIR_B_NAME,
  type PilotResult,
  startNode,
  startPair,
  stopAll,
  type TestNode,
  trustEntry,
  waitFor,
} from "./_daemon_harness.ts";

function assertError(r: PilotResult, code: string, exit: number, what: string): void {
  assert.equal(r.code, exit, `${what}: exit code (${r.stdout}${r.stderr})`);
  assert.equal(r.json?.status, "error", `${what}: ${r.stdout}`);
  assert.equal(r.json.code, code, `${what}: ${r.json.message}`);
}

/** The peer reference a response gives for a fixture identity. */
function refOf(node: TestNode, hostname: string | null) {
  const id = node.identity!;
  return {
    address: id.address,
    hostname,
    fingerprint: id.fingerprint,
    public_key: id.publicKey,
  };
}

// deno-lint-ignore no-explicit-any
async function trustList(node: TestNode): Promise<any[]> {
  return okOf(await node.pilot("trust", "--json"), "trust").trusted;
}

// deno-lint-ignore no-explicit-any
async function pendingList(node: TestNode): Promise<any[]> {
  return okOf(await node.pilot("pending", "--json"), "pending").pending;
}

/** Waits until `node` lists `other` as trusted with mutual trust. */
async function waitMutual(node: TestNode, other: TestNode): Promise<void> {
  await waitFor(
    `${node.identity!.address} to trust ${other.identity!.address} mutually`,
    async () =>
      (await trustList(node)).some((e) => e.public_key === other.identity!.publicKey && e.mutual),
  );
}

Deno.test("handshake, pending, approve make trust mutual, and repeating any step changes nothing", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());

    const asked = okOf(
      await a.pilot("handshake", PAIR_B_NAME, "--reason", "nightly jobs", "--json"),
      "handshake",
    );
    assert.deepEqual(asked.peer, refOf(b, PAIR_B_NAME));
    assert.equal(asked.status, "pending");
    assert.equal(asked.changed, true);
    assert.equal(asked.timed_out, false);

    const pending = await pendingList(b);
    assert.equal(pending.length, 1);
    assert.equal(pending[0].address, a.identity!.address);
    assert.equal(pending[0].hostname, PAIR_A_NAME);
    assert.equal(pending[0].fingerprint, a.identity!.fingerprint);
    assert.equal(pending[0].public_key, a.identity!.publicKey);
    assert.equal(pending[0].reason, "nightly jobs");
    assert.ok(!Number.isNaN(Date.parse(pending[0].received_at)), pending[0].received_at);
    assert.deepEqual(await trustList(b), [], "a request alone trusts nobody");

    const whilePending = okOf(
      await a.pilot("handshake", PAIR_B_NAME, "--reason", "nightly jobs", "--json"),
      "handshake",
    );
    assert.equal(whilePending.status, "pending");
    assert.equal(whilePending.changed, false, "a repeated request while pending");
    assert.equal((await pendingList(b)).length, 1, "still one pending request");

    const approved = okOf(await b.pilot("approve", PAIR_A_NAME, "--json"), "approve");
    assert.deepEqual(approved.peer, refOf(a, PAIR_A_NAME));
    assert.equal(approved.status, "trusted");
    assert.equal(approved.changed, true);
    assert.equal(approved.delivered, true);

    await waitMutual(a, b);
    const seenByA = await trustList(a);
    assert.equal(seenByA.length, 1);
    // Where B was last seen is written within seconds, coalesced: not checked here.
    assert.deepEqual(
      { ...seenByA[0], since: undefined, endpoint: undefined, last_seen: undefined },
      {
        ...refOf(b, PAIR_B_NAME),
        since: undefined,
        endpoint: undefined,
        last_seen: undefined,
        mutual: true,
      },
    );
    const seenByB = await trustList(b);
    assert.equal(seenByB.length, 1);
    assert.equal(seenByB[0].public_key, a.identity!.publicKey);
    assert.equal(seenByB[0].mutual, true);
    assert.deepEqual(await pendingList(b), [], "approve removes the request");

    const again = okOf(await a.pilot("handshake", PAIR_B_NAME, "--json"), "handshake");
    assert.equal(again.status, "trusted");
    assert.equal(again.changed, false);

    const approvedAgain = okOf(
      await b.pilot("approve", a.identity!.fingerprint, "--json"),
      "approve",
    );
    assert.equal(approvedAgain.status, "trusted");
    assert.equal(approvedAgain.changed, false);

    // An exact id (address, fingerprint, key) is a safe repeat; a hostname nothing knows is not_found.
    for (const unknown of [fixture(5).address, fixture(5).fingerprint, fixture(5).public_key]) {
      const u = okOf(await a.pilot("untrust", unknown, "--json"), `untrust ${unknown}`);
      assert.equal(u.changed, false, unknown);
      assert.equal(u.peer, null, unknown);
    }
    assertError(
      await a.pilot("untrust", "nobody-here", "--json"),
      "not_found",
      1,
      "untrust nobody",
    );
    assert.equal((await trustList(a)).length, 1, "untrust of unknown peers removed nothing");
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("handshake --wait returns once the peer approves, and reports timed_out when nobody does", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let c: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    c = await startNode({ identity: 2, hostname: "idle-node" });

    const waiting = a.pilot("handshake", PAIR_B_NAME, "--wait", "--timeout", "60s", "--json");
    await waitFor("B to list the request", async () => (await pendingList(b!)).length === 1);
    const approved = okOf(await b.pilot("approve", PAIR_A_NAME, "--json"), "approve");
    assert.equal(approved.status, "trusted");
    const waited = okOf(await waiting, "handshake --wait");
    assert.equal(waited.status, "trusted");
    assert.equal(waited.timed_out, false);
    assert.equal(waited.changed, true);
    assert.equal(waited.peer.public_key, b.identity!.publicKey);

    const idle = await a.pilot("handshake", c.listen, "--wait", "--timeout", "1s", "--json");
    assert.equal(idle.code, 0, idle.stdout + idle.stderr);
    assert.equal(idle.json.data.status, "pending");
    assert.equal(idle.json.data.timed_out, true);
    assert.equal(idle.json.data.peer.public_key, c.identity!.publicKey);
    assert.equal((await pendingList(c)).length, 1, "the request still waits at the peer");
  } finally {
    await stopAll(a, b, c);
  }
});

Deno.test("crossing requests approve each other only when the outgoing request named that exact key", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let c: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    c = await startNode({ identity: 2, hostname: "other-node" });

    // A asks C; then B asks A. A's outgoing request names C's key, not B's: no crossing.
    const toC = okOf(await a.pilot("handshake", c.listen, "--json"), "handshake C");
    assert.equal(toC.status, "pending");
    const fromB = okOf(await b.pilot("handshake", a.listen, "--json"), "handshake A");
    assert.equal(fromB.status, "pending", "B's request waits at A");
    const atA = await pendingList(a);
    assert.deepEqual(atA.map((p) => p.public_key), [b.identity!.publicKey]);
    assert.deepEqual(await trustList(a), []);
    assert.deepEqual(await trustList(b), []);

    // A asks B by a name anyone may claim; B asked A by endpoint: neither names
    // an exact key, so nothing approves itself and each request waits.
    const byName = okOf(await a.pilot("handshake", PAIR_B_NAME, "--json"), "handshake B by name");
    assert.equal(byName.status, "pending");
    assert.deepEqual((await pendingList(b)).map((p) => p.public_key), [a.identity!.publicKey]);
    assert.deepEqual(await trustList(a), []);
    assert.deepEqual(await trustList(b), []);

    // A names B's address (its exact key); B's next request then crosses it at A.
    okOf(await a.pilot("handshake", b.identity!.address, "--json"), "handshake B by address");
    const crossed = okOf(await b.pilot("handshake", a.identity!.address, "--json"), "handshake A");
    assert.equal(crossed.status, "trusted");
    assert.equal(crossed.changed, true);
    await waitMutual(a, b);
    await waitMutual(b, a);
    assert.deepEqual(await pendingList(a), [], "B's request to A is settled by the crossing");

    const events = await callApi(a, "GET", "/v1/events");
    assert.ok(
      events.json.data.events.some((e: { type: string; data: { via?: string } }) =>
        e.type === "trust.approved" && e.data.via === "crossing"
      ),
      JSON.stringify(events.json),
    );
    // C's copy of A's request is untouched by what happened between A and B.
    assert.deepEqual((await pendingList(c)).map((p) => p.public_key), [a.identity!.publicKey]);
    assert.deepEqual(await trustList(c), []);
  } finally {
    await stopAll(a, b, c);
  }
});

Deno.test("an approval made while the requester is offline reaches it when it comes back", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    okOf(await a.pilot("handshake", PAIR_B_NAME, "--json"), "handshake");
    const stopped = await a.pilot("daemon", "stop", "--json");
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);

    const approved = okOf(
      await b.pilot("approve", PAIR_A_NAME, "--timeout", "1s", "--json"),
      "approve",
    );
    assert.equal(approved.status, "trusted");
    assert.equal(approved.changed, true);
    assert.equal(approved.delivered, false, "queued: the requester is offline");

    await a.start();
    assert.deepEqual(await trustList(a), [], "not trusted before the accept arrives");
    okOf(await a.pilot("connect", PAIR_B_NAME, "--json"), "connect");
    await waitMutual(a, b);
    const sent = okOf(await a.pilot("send", PAIR_B_NAME, "--data", "hello", "--json"), "send");
    assert.equal(sent.receipt.status, "stored");
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("a rejected request is reported to the requester with the reason, and repeats stay rejected", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    const waiting = a.pilot("handshake", PAIR_B_NAME, "--wait", "--timeout", "60s", "--json");
    await waitFor("B to list the request", async () => (await pendingList(b!)).length === 1);

    const rejected = okOf(
      await b.pilot("reject", PAIR_A_NAME, "--reason", "not on the allow list", "--json"),
      "reject",
    );
    assert.deepEqual(rejected.peer, refOf(a, PAIR_A_NAME));
    assert.equal(rejected.status, "rejected");
    assert.equal(rejected.changed, true);
    assert.equal(rejected.delivered, true);

    const waited = await waiting;
    assertError(waited, "rejected", 4, "handshake --wait");
    assert.equal(
      waited.json.message,
      `${PAIR_B_NAME} rejected the trust request: "not on the allow list"`,
    );

    const events = (await callApi(a, "GET", "/v1/events")).json.data.events;
    const rejectedEvent = events.find((e: { type: string }) => e.type === "trust.rejected");
    assert.ok(rejectedEvent, JSON.stringify(events));
    assert.equal(rejectedEvent.data.reason, "not on the allow list");
    assert.equal(rejectedEvent.data.peer.public_key, b.identity!.publicKey);

    // Suppressed: asking again is rejected again, with the same reason, and puts
    // nothing in B's pending.
    const again = await a.pilot("handshake", PAIR_B_NAME, "--json");
    assertError(again, "rejected", 4, "handshake again");
    assert.match(again.json.message, /: "not on the allow list"$/);
    assert.deepEqual(await pendingList(b), []);
    assert.deepEqual(await trustList(a), []);
    assert.deepEqual(await trustList(b), []);

    const human = await a.pilot("handshake", PAIR_B_NAME);
    assert.equal(human.code, 4, human.stderr);
    assert.match(human.stderr, /rejected the trust request: "not on the allow list"/);
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("pre-authorised keys, fingerprints and addresses are approved at once, and nobody else", async () => {
  const requesters: TestNode[] = [];
  let b: TestNode | undefined;
  try {
    // One flag per form, plus the config file: each requester matches exactly one entry.
    b = await startNode({
      identity: 4,
      hostname: "worker",
      config: { auto_approve: [fixture(0).address] },
      args: [
        "--auto-approve",
        fixture(1).fingerprint,
        "--auto-approve",
        fixture(2).public_key,
      ],
    });
    for (const identity of [0, 1, 2, 3]) {
      requesters.push(await startNode({ identity, hostname: `requester-${identity}` }));
    }
    const answers = await Promise.all(
      requesters.map((r) => r.pilot("handshake", b!.listen, "--reason", "fleet", "--json")),
    );
    for (const [i, r] of answers.slice(0, 3).entries()) {
      const d = okOf(r, `handshake from requester ${i}`);
      assert.equal(d.status, "trusted", `requester ${i} is pre-authorised`);
      assert.equal(d.changed, true);
    }
    assert.equal(okOf(answers[3]!, "handshake from requester 3").status, "pending");

    const trusted = (await trustList(b)).map((e) => e.public_key).sort();
    assert.deepEqual(trusted, [0, 1, 2].map((i) => fixture(i).public_key).sort());
    assert.deepEqual(
      (await pendingList(b)).map((p) => p.public_key),
      [fixture(3).public_key],
    );
    for (const r of requesters.slice(0, 3)) await waitMutual(r, b);
  } finally {
    await stopAll(b, ...requesters);
  }
});

Deno.test("untrust takes effect on the next packet and the peer drops its trust too", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    await establishTrust(a, b, PAIR_B_NAME);
    const before = okOf(
      await a.pilot("send", PAIR_B_NAME, "--data", "before untrust", "--json"),
      "send",
    );
    assert.equal(before.receipt.status, "stored");

    const untrusted = okOf(await b.pilot("untrust", PAIR_A_NAME, "--json"), "untrust");
    assert.equal(untrusted.changed, true);
    assert.equal(untrusted.peer.public_key, a.identity!.publicKey);
    assert.deepEqual(await trustList(b), []);

    const after = await a.pilot(
      "send",
      PAIR_B_NAME,
      "--data",
      "after untrust",
      "--timeout",
      "3s",
      "--json",
    );
    assert.notEqual(after.code, 0, `the send must fail: ${after.stdout}`);
    assert.equal(after.json?.status, "error", after.stdout);
    assert.ok(
      ["not_trusted", "timeout", "unreachable", "rejected"].includes(after.json.code),
      after.stdout,
    );

    await waitFor("A to drop B after the revoke", async () => (await trustList(a!)).length === 0);
    const refused = await a.pilot("send", PAIR_B_NAME, "--data", "again", "--json");
    assertError(refused, "not_trusted", 4, "send after the revoke");

    const inbox = okOf(await b.pilot("inbox", "--json"), "inbox").messages;
    assert.deepEqual(inbox.map((m: { data: string }) => m.data), ["before untrust"]);
    const events = (await callApi(a, "GET", "/v1/events")).json.data.events;
    assert.ok(
      events.some((e: { type: string; data: { direction: string } }) =>
        e.type === "trust.revoked" && e.data.direction === "incoming"
      ),
      JSON.stringify(events),
    );

    // Trust starts over: a new request waits for a new decision.
    const anew = okOf(await a.pilot("handshake", PAIR_B_NAME, "--json"), "handshake anew");
    assert.equal(anew.status, "pending");
    assert.equal(anew.changed, true);
    assert.deepEqual((await pendingList(b)).map((p) => p.public_key), [a.identity!.publicKey]);
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("trust, pending requests and the inbox survive a restart of both daemons", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let c: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    c = await startNode({ identity: 2, hostname: "third-node" });
    await establishTrust(a, b, PAIR_B_NAME);
    okOf(await a.pilot("send", PAIR_B_NAME, "--data", "kept", "--id", "m-1", "--json"), "send");
    okOf(
      await a.pilot("send", PAIR_B_NAME, "--data", "AAEC/w==", "--type", "binary", "--json"),
      "send binary",
    );
    okOf(
      await c.pilot("handshake", b.listen, "--reason", "third node", "--json"),
      "handshake C",
    );

    // Where a trusted peer was last seen (remembered_endpoint_test.ts) is
    // sampled and written on its own schedule: it may move across a restart,
    // the rest of each entry may not.
    const durable = async (node: TestNode) =>
      (await trustList(node)).map(({ endpoint: _e, last_seen: _s, ...rest }) => rest);
    const snapshot = async () => ({
      trustA: await durable(a!),
      trustB: await durable(b!),
      pendingB: await pendingList(b!),
      inboxB: okOf(await b!.pilot("inbox", "--json"), "inbox").messages,
    });
    const before = await snapshot();
    assert.equal(before.pendingB.length, 1);
    assert.equal(before.inboxB.length, 2);

    for (const node of [a, b]) {
      const stopped = await node.pilot("daemon", "stop", "--json");
      assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    }
    await b.start();
    await a.start();
    assert.deepEqual(await snapshot(), before);

    // Trust works after the restart, and the inbox seq is never reused.
    const sent = okOf(
      await a.pilot("send", b.listen, "--data", "after restart", "--json"),
      "send after restart",
    );
    assert.equal(sent.receipt.status, "stored");
    assert.ok(sent.receipt.seq > before.inboxB.at(-1).seq, JSON.stringify(sent));
    const dup = okOf(
      await a.pilot("send", b.listen, "--data", "kept", "--id", "m-1", "--json"),
      "retry of m-1",
    );
    assert.deepEqual(dup.receipt, { status: "duplicate", seq: before.inboxB[0].seq });
  } finally {
    await stopAll(a, b, c);
  }
});

Deno.test("a name that now answers with a different key than the trusted one is key_changed", async () => {
  let a: TestNode | undefined;
  let impostor: TestNode | undefined;
  try {
    // A trusts fixture 1 as "x-node"; fixture 2 claims "x-node" where A's --peer entry points.
    impostor = await startNode({ identity: 2, hostname: "x-node" });
    a = await startNode({
      identity: 0,
      hostname: "node-a",
      trust: [trustEntry(1, { hostname: "x-node", mutual: true })],
      args: ["--peer", `x-node=${impostor.listen}`],
    });

    const hs = await a.pilot("handshake", "x-node", "--timeout", "5s", "--json");
    assertError(hs, "key_changed", 4, "handshake x-node");
    assert.notEqual(hs.json.hint, "");
    const send = await a.pilot("send", "x-node", "--data", "secret", "--timeout", "5s", "--json");
    assertError(send, "key_changed", 4, "send x-node");
    assert.deepEqual(await impostor.peers(), [], "A never revealed itself to the impostor");
    assert.deepEqual(
      (await trustList(a)).map((e) => e.public_key),
      [fixture(1).public_key],
      "trust stays with the old key",
    );

    // The impostor now reaches A itself: A learns "x-node" on another key. Still key_changed.
    okOf(await impostor.pilot("connect", a.listen, "--json"), "connect");
    await waitFor("A to see the impostor's session", async () => (await a!.peers()).length === 1);
    assertError(
      await a.pilot("handshake", "x-node", "--json"),
      "key_changed",
      4,
      "handshake x-node after the impostor connected",
    );
    assertError(
      await a.pilot("send", "x-node", "--data", "secret", "--json"),
      "key_changed",
      4,
      "send x-node after the impostor connected",
    );
    const inbox = okOf(await impostor.pilot("inbox", "--json"), "impostor inbox").messages;
    assert.deepEqual(inbox, []);
  } finally {
    await stopAll(a, impostor);
  }
});

Deno.test("the human pending list escapes control characters in a peer's reason", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    const reason = "ok\u001b[2J\napprove me\u202e";
    okOf(await a.pilot("handshake", PAIR_B_NAME, "--reason", reason, "--json"), "handshake");
    const human = await b.pilot("pending");
    assert.equal(human.code, 0, human.stderr);
    assert.ok(!human.stdout.includes("\u001b"), human.stdout);
    assert.ok(!human.stdout.includes("\u202e"), human.stdout);
    assert.match(human.stdout, /approve me/);
    assert.equal((await pendingList(b))[0].reason, reason, "--json keeps the exact text");
  } finally {
    await stopAll(a, b);
  }
});
