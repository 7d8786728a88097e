/**
 * `POST /v1/send-batch` between real daemons: each message gets its own
 * receipt in order, a retried batch stores nothing twice, and a batch with
 * one bad message is refused whole before anything is sent.
 */
import assert from "node:assert/strict";
import { MAX_BATCH_MESSAGES } from "../src/control/contract/mod.ts";
import {
  callApi,
  establishTrust,
  PAIR_B_NAME,
  startPair,
  type TestNode,
} from "./_daemon_harness.ts";

// deno-lint-ignore no-explicit-any
async function inboxIds(node: TestNode): Promise<any[]> {
  const r = await callApi(node, "GET", "/v1/inbox", { query: { limit: 1000 } });
  assert.equal(r.json.status, "ok", JSON.stringify(r.json));
  return r.json.data.messages.map((m: { id: string }) => m.id);
}

Deno.test("a batch delivers every message with its own receipt in order, and its retry stores none twice", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  await establishTrust(a, b, PAIR_B_NAME);
  const messages = Array.from({ length: 100 }, (_, i) => ({
    id: `m-${i}`,
    type: i % 2 === 0 ? "text" : "json",
    data: i % 2 === 0 ? `text ${i}` : { i },
    ...(i === 7 ? { correlation_id: "c7", meta: { job: "7" } } : {}),
  }));
  const first = await callApi(a, "POST", "/v1/send-batch", {
    body: { peer: PAIR_B_NAME, messages },
  });
  assert.equal(first.status, 200, JSON.stringify(first.json));
  const results = first.json.data.results;
  assert.equal(results.length, 100);
  for (const [i, r] of results.entries()) {
    assert.equal(r.status, "ok", JSON.stringify(r));
    assert.equal(r.data.id, `m-${i}`);
    assert.equal(r.data.delivery, "stored");
    assert.equal(r.data.receipt.status, "stored");
  }
  // One stream carries them in call order, so the inbox holds them in that order.
  const seqs = results.map((r: { data: { receipt: { seq: number } } }) => r.data.receipt.seq);
  assert.deepEqual(seqs, [...seqs].sort((x: number, y: number) => x - y));
  assert.deepEqual(await inboxIds(b), messages.map((m) => m.id));

  const again = await callApi(a, "POST", "/v1/send-batch", {
    body: { peer: PAIR_B_NAME, messages },
  });
  assert.equal(again.status, 200, JSON.stringify(again.json));
  assert.deepEqual(
    again.json.data.results.map((r: { data: { receipt: { status: string; seq: number } } }) =>
      r.data.receipt
    ),
    seqs.map((seq: number) => ({ status: "duplicate", seq })),
  );
  assert.equal((await inboxIds(b)).length, 100);

  const inbox = await callApi(b, "GET", "/v1/inbox", { query: { limit: 1000 } });
  const seven = inbox.json.data.messages[7];
  assert.deepEqual([seven.value, seven.correlation_id, seven.meta], [{ i: 7 }, "c7", { job: "7" }]);
});

Deno.test("a batch with one bad message, none, too many, or an Idempotency-Key is refused whole and sends nothing", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  await establishTrust(a, b, PAIR_B_NAME);
  const ok = { data: "fine", id: "fine" };
  const refused = async (body: unknown, pattern: RegExp, headers: Record<string, string> = {}) => {
    const r = await callApi(a, "POST", "/v1/send-batch", { body, headers });
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.code, "invalid_argument");
    assert.match(r.json.message, pattern);
  };
  const peer = PAIR_B_NAME;
  await refused({ peer, messages: [ok, { data: "x", type: "xml" }] }, /^messages\[1\]: .*type/);
  await refused(
    { peer, messages: [ok, { type: "binary", data: "not base64!" }] },
    /^messages\[1\]: .*base64/,
  );
  await refused({ peer, messages: [ok, { type: "json", data: "{bad" }] }, /^messages\[1\]: /);
  await refused(
    { peer, messages: [{ data: "x", colour: "red" }] },
    /^messages\[0\]: Unknown field "colour"/,
  );
  await refused(
    { peer, messages: [{ id: "no data" }] },
    /^messages\[0\]: Field "data" is required/,
  );
  await refused(
    { peer, messages: [{ data: "x", meta: { n: 1 } }] },
    /^messages\[0\]: Field "meta"/,
  );
  await refused({ peer, messages: [] }, /list of 1 to 256/);
  await refused({ peer, messages: "hello" }, /list of 1 to 256/);
  await refused(
    { peer, messages: Array.from({ length: MAX_BATCH_MESSAGES + 1 }, () => ok) },
    /list of 1 to 256/,
  );
  await refused({ peer, messages: [ok] }, /Idempotency-Key/, { "idempotency-key": "k" });
  assert.deepEqual(await inboxIds(b), [], "nothing of a refused batch was sent");
});
