/**
 * The typed client (`src/client.ts`, exported as `./client`) against real
 * daemons: one method per route named after its path, typed answers,
 * iterators over the inbox and events, a stream as web streams, errors as
 * PilotError, and a new token read again after the daemon restarted.
 */
import assert from "node:assert/strict";
import { methodName, PilotClient, PilotError } from "../src/client/mod.ts";
import { ROUTES } from "../src/control/contract/mod.ts";
import { establishTrust, PAIR_B_NAME, startPair } from "./_daemon_harness.ts";

Deno.test("every route has a method named after its path, and no two share a name", () => {
  const names = ROUTES.map((r) => methodName(r.route));
  assert.equal(new Set(names).size, names.length);
  assert.equal(methodName("POST /v1/tasks/submit"), "tasksSubmit");
  assert.equal(methodName("POST /v1/send-file"), "sendFile");
  assert.equal(methodName("GET /v1/openapi.json"), "openapiJson");
});

Deno.test("the typed client sends, follows the inbox and events, opens a stream, and survives a restart", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  await establishTrust(a, b, PAIR_B_NAME);
  const pa = await PilotClient.open(a.home);
  const pb = await PilotClient.open(b.home);
  try {
    const info = await pa.api.info();
    assert.equal(info.address, a.identity!.address);
    const sent = await pa.api.send({
      peer: PAIR_B_NAME,
      data: { job: 1 },
      type: "json",
      id: "c-1",
    });
    assert.equal(sent.delivery, "stored");
    assert.equal(sent.receipt?.status, "stored");
    // A batch: typed results, one per message, in order.
    const batch = await pa.api.sendBatch({
      peer: PAIR_B_NAME,
      messages: [{ data: "one", id: "c-2" }, { data: "two", id: "c-3" }],
    });
    assert.deepEqual(
      batch.results.map((r) => r.status === "ok" ? r.data.id : r.code),
      ["c-2", "c-3"],
    );

    // The inbox as an iterator: the stored message comes first.
    for await (const m of pb.inbox({ timeoutMs: 5_000 })) {
      assert.deepEqual([m.id, m.value], ["c-1", { job: 1 }]);
      break;
    }
    // Events as an iterator: B heard the message.
    let heard = false;
    for await (const e of pb.events({ timeoutMs: 5_000 })) {
      if (e.type === "message.received") {
        heard = true;
        break;
      }
    }
    assert.ok(heard);

    // A stream to B's echo port, as web streams.
    const { readable, writable } = await pa.connect(PAIR_B_NAME, 7);
    const writer = writable.getWriter();
    await writer.write(new TextEncoder().encode("echo me"));
    await writer.close();
    let echoed = "";
    for await (const chunk of readable) echoed += new TextDecoder().decode(chunk);
    assert.equal(echoed, "echo me");

    // Errors are PilotError with the daemon's code.
    await assert.rejects(
      pa.api.tasksStatus({ id: "none" }),
      (e) => e instanceof PilotError && e.code === "not_found",
    );
    await assert.rejects(
      pa.api.send({ peer: "", data: "x" }),
      (e) => e instanceof PilotError && e.code === "invalid_argument",
    );

    // The daemon restarts with a new token (and port): the same client carries on.
    assert.equal((await a.pilot("daemon", "stop", "--json")).code, 0);
    await a.start();
    assert.equal((await pa.api.info()).address, a.identity!.address);
  } finally {
    pa.close();
    pb.close();
  }
});
