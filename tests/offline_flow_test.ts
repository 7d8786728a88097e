/**
 * The offline flow of issue 10 with a rendezvous: a worker that is down when
 * the orchestrator asks for trust gets the request once it starts (the
 * orchestrator queued it: `handshake --queue`), approves it, and the
 * orchestrator sees `trusted` without asking again; then a job queued while
 * the worker is down again (`send --queue`) arrives exactly once, and the
 * orchestrator sees `message.delivered`.
 */
import assert from "node:assert/strict";
import {
  callApi,
  makeHome,
  PAIR_B_NAME,
  startRendezvous,
  TestNode,
  waitFor,
} from "./_daemon_harness.ts";

const RENDEZVOUS_FIXTURE = 5;

Deno.test("a trust request and a job sent while the worker is down reach it when it starts, exactly once", async () => {
  await using rendezvous = await startRendezvous(RENDEZVOUS_FIXTURE);
  const at = rendezvous.at;
  const orchestrator = new TestNode(await makeHome({ identity: 0 }), {
    identity: 0,
    hostname: "secure-orchestrator",
    args: ["--rendezvous", at],
  });
  const worker = new TestNode(await makeHome({ identity: 1 }), {
    identity: 1,
    hostname: PAIR_B_NAME,
    args: ["--rendezvous", at],
  });
  try {
    await orchestrator.start();
    const asked = await orchestrator.pilot(
      "handshake",
      PAIR_B_NAME,
      "--reason",
      "run jobs",
      "--queue",
      "--timeout",
      "2s",
      "--json",
    );
    assert.equal(asked.code, 0, asked.stdout + asked.stderr);
    assert.equal(asked.json.data.status, "queued");
    assert.equal(asked.json.data.peer, null);
    assert.ok(asked.json.data.expires_at);

    // The worker starts; the queued request reaches it without anyone asking again.
    await worker.start();
    await waitFor("the queued request at the worker", async () => {
      const p = await worker.pilot("pending", "--json");
      return p.json?.data?.pending?.[0]?.address === orchestrator.identity!.address;
    }, 60_000);
    const approved = await worker.pilot("approve", orchestrator.identity!.address, "--json");
    assert.equal(approved.code, 0, approved.stdout + approved.stderr);
    await waitFor("the orchestrator to see trust", async () => {
      const t = await orchestrator.pilot("trust", "--json");
      return t.json?.data?.trusted?.some((e: { address: string; mutual: boolean }) =>
        e.address === worker.identity!.address && e.mutual
      );
    }, 30_000);

    // Down again: the job waits in the orchestrator's outbox until the worker is back.
    assert.equal((await worker.pilot("daemon", "stop", "--json")).code, 0);
    const sent = await orchestrator.pilot(
      "send",
      PAIR_B_NAME,
      "--data",
      '{"command":"run"}',
      "--type",
      "json",
      "--id",
      "job-1",
      "--queue",
      "--timeout",
      "2s",
      "--json",
    );
    // Queued here; the worker's record names its mailbox, so a sealed copy waits there too.
    assert.equal(sent.json?.data?.delivery, "queued_relay", sent.stdout + sent.stderr);
    await worker.start();
    await waitFor("the job delivered", async () => {
      const r = await callApi(orchestrator, "GET", "/v1/events", { query: { limit: "1000" } });
      return r.json.data.events.some((e: { type: string; data: { id: string } }) =>
        e.type === "message.delivered" && e.data.id === "job-1"
      );
    }, 60_000);
    const inbox = (await worker.pilot("inbox", "--json")).json.data.messages;
    assert.deepEqual(inbox.map((m: { id: string }) => m.id), ["job-1"], "exactly once");
    assert.equal(inbox[0].data, '{"command":"run"}');
  } finally {
    await Promise.allSettled([orchestrator.stop(), worker.stop()]);
  }
});
