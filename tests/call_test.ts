/**
 * Request/reply between real daemons: many calls wait at once, each gets the
 * reply that names its own request, whatever order the worker answers in.
 */
import assert from "node:assert/strict";
import {
  callApi,
  establishTrust,
  PAIR_B_NAME,
  startPair,
  stopAll,
  type TestNode,
  waitFor,
} from "./_daemon_harness.ts";

Deno.test("twelve concurrent calls each get the reply to their own request, answered in reverse order", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    await establishTrust(a, b, PAIR_B_NAME);
    const ids = Array.from({ length: 12 }, (_, i) => `job-${i}`);
    const calls = ids.map((id) =>
      callApi(a!, "POST", "/v1/call", {
        body: { peer: PAIR_B_NAME, id, data: `question ${id}`, timeout_ms: 60_000 },
      })
    );
    const inbox = await waitFor("every request in the worker's inbox", async () => {
      const r = await callApi(b!, "GET", "/v1/inbox", { query: { limit: 100 } });
      return r.json.data.messages.length === ids.length ? r.json.data.messages : undefined;
    }, 30_000);
    for (const m of [...inbox].reverse()) {
      const r = await callApi(b, "POST", "/v1/reply", {
        body: { id: m.id, data: `answer to ${m.data}` },
      });
      assert.equal(r.status, 200, JSON.stringify(r.json));
    }
    const results = await Promise.all(calls);
    for (const [i, r] of results.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.data.reply.in_reply_to, ids[i]);
      assert.equal(r.json.data.reply.data, `answer to question ${ids[i]}`);
    }
    const left = await callApi(a, "GET", "/v1/inbox");
    assert.deepEqual(left.json.data.messages, [], "replies handed to their calls leave the inbox");
  } finally {
    await stopAll(a, b);
  }
});
