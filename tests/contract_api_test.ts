/**
 * The route contract on a running daemon: unknown body fields are refused
 * by name, json data may be a JSON value and comes back parsed, CLI flags are
 * checked in CLI terms, and `--json` prints exactly the route's answer.
 */
import assert from "node:assert/strict";
import { parseInput, SEND } from "../src/control/contract/mod.ts";
import { PilotError } from "../src/errors.ts";
import {
  callApi,
  establishTrust,
  okOf,
  PAIR_B_NAME,
  startNode,
  startPair,
} from "./_daemon_harness.ts";

Deno.test("parseInput() refuses an unknown field by name, applies defaults and checks bounds", () => {
  const refused = (body: unknown, pattern: RegExp) => {
    assert.throws(() => parseInput(SEND, body), (e) => {
      assert.ok(e instanceof PilotError && e.code === "invalid_argument", String(e));
      assert.match(e.message, pattern);
      return true;
    });
  };
  refused({ peer: "p", data: "x", timout_ms: 5 }, /^Unknown field "timout_ms" for POST \/v1\/send/);
  refused({ data: "x" }, /^Field "peer" is required/);
  refused(
    { peer: "p", data: "x", timeout_ms: 600_001 },
    /"timeout_ms" must be a whole number from 1 to 600000/,
  );
  refused({ peer: "p", data: "x", type: "xml" }, /"type" must be "text" or "json" or "binary"/);
  refused([1], /must be a JSON object/);
  const ok = parseInput(SEND, { peer: "p", data: { a: 1 } });
  assert.equal(ok.type, "text");
  assert.equal(ok.timeout_ms, SEND.input.timeout_ms.default);
  assert.equal(ok.id, "");
});

Deno.test("the API refuses a misspelt body field with invalid_argument naming it", async () => {
  const node = await startNode();
  try {
    const r = await callApi(node, "POST", "/v1/handshake", {
      body: { peer: "3fa2.09c1.77e4", timout_ms: 1000 },
    });
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.code, "invalid_argument");
    assert.match(r.json.message, /"timout_ms"/);
    const clear = await callApi(node, "POST", "/v1/inbox/clear", { body: { upto: 3 } });
    assert.equal(clear.json.code, "invalid_argument");
    assert.match(clear.json.message, /"upto"/);
    const ack = await callApi(node, "POST", "/v1/inbox/ack", { body: { ids: ["x"], form: "p" } });
    assert.equal(ack.json.code, "invalid_argument");
    assert.match(ack.json.message, /"form"/);
  } finally {
    await node.stop();
  }
});

Deno.test("the CLI names its own flag when --timeout is over the API's bound", async () => {
  const node = await startNode();
  try {
    const r = await node.pilot(
      "send",
      "3fa2.09c1.77e4",
      "--data",
      "x",
      "--timeout",
      "11m",
      "--json",
    );
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.json.code, "invalid_argument");
    assert.match(r.json.message, /--timeout 11m/);
    assert.ok(!/timeout_ms|Query parameter/.test(r.json.message), r.json.message);
  } finally {
    await node.stop();
  }
});

Deno.test("json data may be a JSON value; the inbox offers the parsed value, and inbox --clear --json prints only the route's answer", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  await establishTrust(a, b, PAIR_B_NAME);
  const value = { command: "run", args: [1, 2], nested: { ok: true } };
  const sent = await callApi(a, "POST", "/v1/send", {
    body: { peer: PAIR_B_NAME, type: "json", data: value, id: "job-v" },
  });
  assert.equal(sent.json.status, "ok", JSON.stringify(sent.json));
  const asText = await callApi(a, "POST", "/v1/send", {
    body: { peer: PAIR_B_NAME, type: "json", data: JSON.stringify([1, "two"]), id: "job-s" },
  });
  assert.equal(asText.json.status, "ok", "a string holding JSON is still taken");
  const notJson = await callApi(a, "POST", "/v1/send", {
    body: { peer: PAIR_B_NAME, type: "text", data: { a: 1 } },
  });
  assert.equal(notJson.json.code, "invalid_argument", "only json takes a value");
  const badText = await callApi(a, "POST", "/v1/send", {
    body: { peer: PAIR_B_NAME, type: "json", data: "{not json" },
  });
  assert.equal(badText.json.code, "invalid_argument");
  assert.match(badText.json.message, /^Field "data" is not valid JSON text/);

  const page = await callApi(b, "GET", "/v1/inbox", {});
  const byId = new Map(page.json.data.messages.map((m: { id: string }) => [m.id, m]));
  // deno-lint-ignore no-explicit-any
  const v = byId.get("job-v") as any;
  assert.deepEqual(JSON.parse(v.data), value, "data stays the JSON text");
  assert.deepEqual(v.value, value, "value is the parsed data");
  // deno-lint-ignore no-explicit-any
  assert.deepEqual((byId.get("job-s") as any).value, [1, "two"]);

  const cleared = okOf(await b.pilot("inbox", "--clear", "--json"), "inbox --clear");
  assert.deepEqual(Object.keys(cleared).sort(), ["messages", "next", "timed_out"]);
  assert.equal(cleared.messages.length, 2);
});
