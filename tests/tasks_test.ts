/**
 * Durable tasks (issue 11 item 1) with real daemons: submit, the worker's
 * list, accept, progress and result, the submitter's wait and events; a
 * retry with the same id is one task; a result posted while the submitter
 * is down (killed -9) reaches it when it is back, once; a failure, a
 * timeout, a result twice, an unknown id, and a deadline.
 */
import assert from "node:assert/strict";
import {
  callApi,
  establishTrust,
  kill9,
  makeHome,
  PAIR_B_NAME,
  type TestNode,
  TestNode as Node,
  trustedPair,
  waitFor,
} from "./_daemon_harness.ts";

// deno-lint-ignore no-explicit-any
async function events(node: TestNode, type: string): Promise<any[]> {
  const r = await callApi(node, "GET", "/v1/events", { query: { limit: "1000" } });
  // deno-lint-ignore no-explicit-any
  return r.json.data.events.filter((e: any) => e.type === type);
}

Deno.test("a task round trip: submit, list, accept, progress, result, wait; a retry is the same task", async () => {
  const { a, b } = await trustedPair();
  try {
    const submitted = await a.pilot(
      "task",
      "submit",
      PAIR_B_NAME,
      "--data",
      '{"command":"run"}',
      "--type",
      "json",
      "--id",
      "job-1",
      "--json",
    );
    assert.equal(submitted.code, 0, submitted.stdout + submitted.stderr);
    assert.deepEqual(
      [submitted.json.data.id, submitted.json.data.state, submitted.json.data.role],
      ["job-1", "submitted", "submitter"],
    );
    const again = await a.pilot(
      "task",
      "submit",
      PAIR_B_NAME,
      "--data",
      '{"command":"run"}',
      "--type",
      "json",
      "--id",
      "job-1",
      "--json",
    );
    assert.equal(again.json.data.id, "job-1", "a retry answers the same task");
    const other = await a.pilot(
      "task",
      "submit",
      PAIR_B_NAME,
      "--data",
      "else",
      "--id",
      "job-1",
      "--json",
    );
    assert.equal(other.json?.code, "conflict", other.stdout);

    const listed = await b.pilot("task", "list", "--wait", "--timeout", "10s", "--json");
    assert.equal(listed.code, 0, listed.stdout + listed.stderr);
    assert.deepEqual(
      listed.json.data.tasks.map((t: { id: string }) => t.id),
      ["job-1"],
      "one task",
    );
    const worker = listed.json.data.tasks[0];
    assert.deepEqual([worker.role, worker.state, worker.peer.address], [
      "worker",
      "submitted",
      a.identity!.address,
    ]);

    assert.equal((await b.pilot("task", "accept", "job-1", "--json")).json.data.state, "accepted");
    assert.equal((await b.pilot("task", "accept", "job-1", "--json")).code, 0, "safe to repeat");
    await b.pilot("task", "progress", "job-1", "--data", "half done", "--json");
    const done = await b.pilot(
      "task",
      "result",
      "job-1",
      "--data",
      '{"ok":true}',
      "--type",
      "json",
      "--json",
    );
    assert.equal(done.json.data.state, "done", done.stdout);
    const twice = await b.pilot("task", "result", "job-1", "--data", "again", "--json");
    assert.equal(twice.json?.code, "conflict", "a result posted twice");

    const waited = await a.pilot("task", "wait", "job-1", "--timeout", "10s", "--json");
    assert.equal(waited.code, 0, waited.stdout + waited.stderr);
    assert.equal(waited.json.data.state, "done");
    assert.deepEqual(JSON.parse(waited.json.data.result.data), { ok: true });
    assert.equal(waited.json.data.progress[0].data, "half done");
    for (const type of ["task.accepted", "task.progress", "task.result"]) {
      assert.equal((await events(a, type)).length, 1, type);
    }
    assert.equal((await events(b, "task.received")).length, 1);
    assert.equal((await b.pilot("task", "status", "nope", "--json")).json?.code, "not_found");
  } finally {
    await Promise.allSettled([a.stop(), b.stop()]);
  }
});

Deno.test("a result posted while the submitter is killed -9 reaches it when it is back, once; failures and timeouts exit 1 and 5", async () => {
  const { a, b } = await trustedPair();
  try {
    const s = await a.pilot(
      "task",
      "submit",
      PAIR_B_NAME,
      "--data",
      "work",
      "--id",
      "job-2",
      "--json",
    );
    assert.equal(s.code, 0, s.stdout + s.stderr);
    await b.pilot("task", "list", "--wait", "--timeout", "10s", "--json");
    await kill9(a.pid);
    const posted = await b.pilot("task", "result", "job-2", "--data", "all done", "--json");
    assert.equal(posted.json.data.state, "done");
    assert.equal(posted.json.data.pending, 1, "the submitter is down: not told yet");
    await a.start();
    await waitFor("the result at the submitter", async () => {
      const st = await a.pilot("task", "status", "job-2", "--json");
      return st.json?.data?.state === "done";
    }, 30_000);
    assert.equal(
      (await a.pilot("task", "status", "job-2", "--json")).json.data.result.data,
      "all done",
    );
    await waitFor("the worker to see it confirmed", async () => {
      return (await b.pilot("task", "status", "job-2", "--json")).json?.data?.pending === 0;
    }, 30_000);
    assert.equal((await events(a, "task.result")).length, 1, "once");

    // A failure: exit 1 with the worker's error.
    await a.pilot("task", "submit", PAIR_B_NAME, "--data", "x", "--id", "job-3", "--json");
    await b.pilot("task", "result", "job-3", "--error", "disk full", "--json");
    const failed = await a.pilot("task", "wait", "job-3", "--timeout", "10s", "--json");
    assert.equal(failed.code, 1, failed.stdout);
    assert.equal(failed.json.code, "task_failed");
    assert.match(failed.json.message, /disk full/);

    // Nothing comes back in time: exit 5.
    await a.pilot("task", "submit", PAIR_B_NAME, "--data", "x", "--id", "job-4", "--json");
    const slow = await a.pilot("task", "wait", "job-4", "--timeout", "1s", "--json");
    assert.equal(slow.code, 5, slow.stdout);
    assert.equal(slow.json.code, "timeout");

    // A deadline: expired on both sides, and a late result is refused.
    await a.pilot(
      "task",
      "submit",
      PAIR_B_NAME,
      "--data",
      "x",
      "--id",
      "job-5",
      "--deadline",
      "1s",
      "--json",
    );
    await new Promise((r) => setTimeout(r, 1_500));
    const late = await b.pilot("task", "result", "job-5", "--data", "late", "--json");
    assert.equal(late.json?.code, "conflict", late.stdout);
    assert.match(late.json.message, /expired/);
    await waitFor("the submitter to expire it", async () => {
      return (await a.pilot("task", "status", "job-5", "--json")).json?.data?.state === "expired";
    }, 15_000);
    assert.ok((await events(a, "task.expired")).some((e) => e.data.id === "job-5"));
  } finally {
    await Promise.allSettled([a.stop(), b.stop()]);
  }
});

Deno.test("a peer that is not trusted cannot be given a task", async () => {
  const a = new Node(await makeHome({ identity: 0 }), { identity: 0 });
  const b = new Node(await makeHome({ identity: 1 }), { identity: 1 });
  try {
    await b.start();
    await a.start();
    const r = await a.pilot("task", "submit", b.listen, "--data", "x", "--json");
    assert.equal(r.json?.code, "not_trusted", r.stdout);
    await establishTrust(a, b, b.listen);
  } finally {
    await Promise.allSettled([a.stop(), b.stop()]);
  }
});
