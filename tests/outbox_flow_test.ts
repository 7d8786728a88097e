/**
 * `pilot send --queue` end to end (issue 10 item 1): a message for a trusted
 * peer that is down is kept in the sender's outbox, survives a kill -9 of the
 * sender, and is delivered exactly once when the peer is back; the result
 * says `queued_local`, `pilot outbox` lists it, `message.delivered` ends it.
 * A TTL that runs out ends it with `message.expired`; `outbox cancel` ends
 * it at once; an untrusted peer's messages are never queued.
 */
import assert from "node:assert/strict";
import * as C from "../src/control/contract/mod.ts";
import { validate } from "../src/control/schema.ts";
import {
  callApi,
  freeUdpPort,
  kill9,
  makeHome,
  PAIR_B_NAME,
  TestNode,
  trustEntry,
  waitFor,
} from "./_daemon_harness.ts";

/** A (fixture 0) and B (fixture 1), trusting each other; B listens on a fixed port, down at first. */
async function pair() {
  const port = freeUdpPort();
  const a = new TestNode(
    await makeHome({
      identity: 0,
      trust: [trustEntry(1, { mutual: true, hostname: PAIR_B_NAME })],
    }),
    {
      identity: 0,
      hostname: "secure-orchestrator",
      args: ["--peer", `${PAIR_B_NAME}=127.0.0.1:${port}`],
    },
  );
  const b = new TestNode(
    await makeHome({ identity: 1, trust: [trustEntry(0, { mutual: true })] }),
    { identity: 1, hostname: PAIR_B_NAME, args: ["--listen", `127.0.0.1:${port}`] },
  );
  return { a, b };
}

/** `pilot send PAIR_B_NAME --data DATA --queue --timeout 1s --json` and more flags. */
function queueSend(node: TestNode, data: string, ...flags: string[]) {
  return node.pilot(
    "send",
    PAIR_B_NAME,
    "--data",
    data,
    "--queue",
    "--timeout",
    "1s",
    ...flags,
    "--json",
  );
}

// deno-lint-ignore no-explicit-any
async function events(node: TestNode, type: string): Promise<any[]> {
  const r = await callApi(node, "GET", "/v1/events", { query: { limit: "1000" } });
  // deno-lint-ignore no-explicit-any
  return r.json.data.events.filter((e: any) => e.type === type);
}

Deno.test("a queued message for a peer that is down survives a kill -9 of the sender and arrives exactly once when the peer is back", async () => {
  const { a, b } = await pair();
  try {
    await a.start();
    const sent = await queueSend(a, '{"command":"run"}', "--type", "json", "--id", "job-1");
    assert.equal(sent.code, 0, sent.stdout + sent.stderr);
    assert.equal(sent.json.data.delivery, "queued_local");
    assert.equal(sent.json.data.receipt, null);
    assert.equal(sent.json.data.id, "job-1");
    assert.deepEqual(validate(C.SEND.output, sent.json.data, { closed: true }), []);
    // The same send again: the same answer, one queued copy.
    const again = await queueSend(a, '{"command":"run"}', "--type", "json", "--id", "job-1");
    assert.equal(again.json?.data?.delivery, "queued_local", again.stdout);
    const other = await queueSend(a, '{"command":"stop"}', "--type", "json", "--id", "job-1");
    assert.equal(other.json?.code, "conflict", "another content under a queued id");
    const outbox = (await a.pilot("outbox", "--json")).json.data;
    assert.deepEqual(validate(C.OUTBOX.output, outbox, { closed: true }), []);
    const listed = outbox.messages;
    assert.equal(listed.length, 1);
    assert.equal(listed[0].id, "job-1");
    assert.equal(listed[0].to.address, b.identity!.address);
    assert.ok(listed[0].attempts >= 1, JSON.stringify(listed[0]));

    // The sender dies hard; what it acknowledged as queued is still there.
    await kill9(a.pid);
    await a.start();
    assert.equal((await a.pilot("outbox", "--json")).json.data.messages.length, 1);

    await b.start();
    await waitFor("the queued message delivered", async () => {
      return (await a.pilot("outbox", "--json")).json.data.messages.length === 0;
    }, 30_000);
    const inbox = (await b.pilot("inbox", "--json")).json.data.messages;
    assert.deepEqual(inbox.map((m: { id: string }) => m.id), ["job-1"], "exactly once");
    const delivered = await events(a, "message.delivered");
    assert.equal(delivered.length, 1);
    assert.equal(delivered[0].data.id, "job-1");
    assert.equal(delivered[0].data.receipt.seq, inbox[0].seq);
  } finally {
    await Promise.allSettled([a.stop(), b.stop()]);
  }
});

Deno.test("a queued message whose TTL runs out ends with message.expired; outbox cancel ends one at once", async () => {
  const { a, b } = await pair();
  try {
    await a.start();
    const short = await queueSend(a, "soon gone", "--id", "short", "--ttl", "2s");
    assert.equal(short.json?.data?.delivery, "queued_local", short.stdout + short.stderr);
    const long = await queueSend(a, "cancel me", "--id", "long");
    assert.equal(long.json?.data?.delivery, "queued_local");
    const cancelled = await a.pilot("outbox", "cancel", "long", "--json");
    assert.equal(cancelled.json.data.cancelled, 1);
    assert.equal((await a.pilot("outbox", "cancel", "long", "--json")).json.data.cancelled, 0);
    await waitFor(
      "message.expired",
      async () => (await events(a, "message.expired")).length === 1,
      20_000,
    );
    assert.equal((await events(a, "message.expired"))[0].data.id, "short");
    assert.deepEqual((await a.pilot("outbox", "--json")).json.data.messages, []);
    // Nothing arrives later either.
    await b.start();
    await new Promise((r) => setTimeout(r, 6_000));
    assert.deepEqual((await b.pilot("inbox", "--json")).json.data.messages, []);
  } finally {
    await Promise.allSettled([a.stop(), b.stop()]);
  }
});

Deno.test("send --queue to a peer that is not trusted is refused as before, and nothing is queued", async () => {
  const a = new TestNode(await makeHome({ identity: 0 }), { identity: 0 });
  try {
    await a.start();
    const r = await a.pilot(
      "send",
      `127.0.0.1:${freeUdpPort()}`,
      "--data",
      "x",
      "--queue",
      "--timeout",
      "1s",
      "--json",
    );
    assert.notEqual(r.code, 0);
    assert.deepEqual((await a.pilot("outbox", "--json")).json.data.messages, []);
    const bad = await a.pilot("send", PAIR_B_NAME, "--data", "x", "--ttl", "1h", "--json");
    assert.equal(bad.code, 2, "--ttl without --queue: " + bad.stdout + bad.stderr);
  } finally {
    await a.stop();
  }
});

Deno.test("kill -9 of the receiver and then of the sender in the middle of a queued burst: every acknowledged message arrives exactly once", async () => {
  const { a, b } = await pair();
  const COUNT = 60;
  try {
    await a.start();
    // Queued while the receiver is down, through the API (as an agent would), all at once.
    const answers = await Promise.all(
      Array.from({ length: COUNT }, (_, i) =>
        callApi(a, "POST", "/v1/send", {
          body: {
            peer: PAIR_B_NAME,
            data: `job ${i}`,
            id: `burst-${i}`,
            queue: true,
            timeout_ms: 1000,
          },
        })),
    );
    const acknowledged = answers.filter((r) => r.json?.data?.delivery === "queued_local")
      .map((r) => r.json.data.id as string);
    assert.equal(acknowledged.length, COUNT, JSON.stringify(answers.find((r) => !r.json?.data)));

    const inboxIds = async () =>
      ((await b.pilot("inbox", "--limit", "1000", "--json")).json?.data?.messages ?? [])
        .map((m: { id: string }) => m.id) as string[];
    await b.start();
    await waitFor(
      "some of the burst to arrive",
      async () => (await inboxIds()).length >= 5,
      30_000,
    );
    await kill9(b.pid);
    await b.start();
    await waitFor(
      "more of the burst to arrive",
      async () => (await inboxIds()).length >= 20,
      30_000,
    );
    await kill9(a.pid);
    await a.start();
    await waitFor("the outbox to empty", async () => {
      return (await a.pilot("outbox", "--json")).json.data.messages.length === 0;
    }, 60_000);
    const ids = await inboxIds();
    assert.equal(new Set(ids).size, ids.length, "no message twice");
    assert.deepEqual([...ids].sort(), [...acknowledged].sort(), "every acknowledged one");
  } finally {
    await Promise.allSettled([a.stop(), b.stop()]);
  }
});
