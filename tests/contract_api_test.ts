/**
 * The route contract on a running daemon: unknown body fields are refused
 * by name, json data may be a JSON value and comes back parsed, CLI flags are
 * checked in CLI terms, `--json` prints exactly the route's answer, and
 * every route's answer lists no field its output schema does not.
 */
import assert from "node:assert/strict";
import * as C from "../src/control/contract/mod.ts";
import { parseInput, SEND } from "../src/control/contract/mod.ts";
import { validate } from "../src/control/schema.ts";
import { PilotError } from "../src/errors.ts";
import {
  callApi,
  establishTrust,
  NdjsonStream,
  okOf,
  PAIR_A_NAME,
  PAIR_B_NAME,
  startNode,
  startPair,
  type TestNode,
  waitFor,
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

/** Routes the live check below does not call, and why. */
const NOT_CALLED: Readonly<Record<string, string>> = {
  "GET /v1/stream": "a WebSocket: its open frame is streamHelloView's, typed by the schema",
  "GET /v1/listen": "a WebSocket: its open frame is listenHelloView's, typed by the schema",
  "POST /v1/reject": "answers the same schema (and view) as approve",
};

Deno.test("every route's answer on a running daemon has only fields its output schema lists", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  const checked = new Set<string>();
  // deno-lint-ignore no-explicit-any
  const answer = async (node: TestNode, spec: C.RouteSpec, options = {}): Promise<any> => {
    const [method, path] = spec.route.split(" ") as [string, string];
    const r = await callApi(node, method, path, options);
    assert.equal(r.json.status, "ok", `${spec.route}: ${JSON.stringify(r.json)}`);
    const data = r.json.data;
    assert.deepEqual(
      validate(spec.output, data, { closed: true }),
      [],
      `${spec.route}: ${JSON.stringify(data)}`,
    );
    checked.add(spec.route);
    return data;
  };
  const lineOf = (spec: C.RouteSpec, schema: C.RouteSpec["output"], line: unknown) => {
    assert.deepEqual(
      validate(schema, line, { closed: true }),
      [],
      `${spec.route} line: ${JSON.stringify(line)}`,
    );
    checked.add(spec.route);
  };

  await answer(a, C.HEALTH);
  await answer(a, C.CONNECT, { body: { peer: PAIR_B_NAME } });
  await answer(a, C.HANDSHAKE, { body: { peer: PAIR_B_NAME, reason: "schema" } });
  const pending = await answer(b, C.PENDING);
  assert.equal(pending.pending.length, 1, "a non-empty pending list was checked");
  const strangers = await answer(b, C.PEERS);
  assert.ok(strangers.peers.length >= 1, "a non-empty peer list was checked");
  await answer(b, C.APPROVE, { body: { peer: PAIR_A_NAME } });
  await waitFor("A to see trust as mutual", async () => {
    const t = await answer(a, C.TRUST);
    return t.trusted.some((e: { mutual: boolean }) => e.mutual);
  });
  await answer(b, C.TRUST);
  await answer(a, C.INFO);
  await answer(b, C.INFO);
  await answer(a, C.PEERS);

  // Messages with every optional field a sender can set here, and a json value.
  const sent = await answer(a, C.SEND, {
    body: {
      peer: PAIR_B_NAME,
      data: "x",
      id: "full",
      correlation_id: "c1",
      in_reply_to: "r1",
      meta: { job: "7" },
    },
  });
  await answer(a, C.SEND, { body: { peer: PAIR_B_NAME, type: "json", data: { n: 1 } } });
  const inbox = await answer(b, C.INBOX);
  const full = inbox.messages.find((m: { id: string }) => m.id === "full");
  assert.deepEqual([full.correlation_id, full.in_reply_to, full.meta], ["c1", "r1", { job: "7" }]);
  assert.ok(inbox.messages.some((m: { value?: unknown }) => m.value !== undefined));
  const follow = await NdjsonStream.open(b, "/v1/inbox", { follow: true, heartbeat_ms: 1000 });
  try {
    for (let i = 0; i < inbox.messages.length; i++) lineOf(C.INBOX, C.MESSAGE, await follow.next());
  } finally {
    await follow.close();
  }
  await answer(b, C.INBOX_ACK, { body: { ids: [sent.id] } });
  await answer(b, C.INBOX_CLEAR, { body: { up_to: inbox.next } });

  // A call, answered by B's reply once the request is in its inbox.
  const calling = answer(a, C.CALL, { body: { peer: PAIR_B_NAME, data: "2+2", id: "calc-1" } });
  await waitFor("B to reply to the call", async () => {
    const r = await callApi(b, "POST", "/v1/reply", { body: { id: "calc-1", data: "4" } });
    if (r.json.status !== "ok") return false;
    assert.deepEqual(
      validate(C.REPLY.output, r.json.data, { closed: true }),
      [],
      JSON.stringify(r.json),
    );
    checked.add(C.REPLY.route);
    return true;
  });
  assert.equal((await calling).reply.data, "4");

  await answer(a, C.PING, { body: { peer: PAIR_B_NAME, count: 1, interval_ms: 0 } });
  await answer(a, C.BENCH, { body: { peer: PAIR_B_NAME, size_mb: 0.05 } });
  // Datagrams are unreliable: repeat until the receiver has one.
  let received: unknown;
  const receiving = answer(b, C.RECV, { query: { port: 4000, timeout_ms: 20_000 } });
  receiving.then((r) => received = r);
  while (received === undefined) {
    await answer(a, C.DGRAM, { body: { peer: PAIR_B_NAME, port: 4000, data: "d" } });
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await receiving).datagrams.length, 1);

  const subscription = await NdjsonStream.open(a, "/v1/subscribe", {
    peer: PAIR_B_NAME,
    pattern: "jobs.*",
    count: 1,
  });
  try {
    lineOf(C.SUBSCRIBE, C.SUBSCRIBE.output, await subscription.next());
    await answer(a, C.PUBLISH, { body: { peer: PAIR_B_NAME, topic: "jobs.x", data: "go" } });
    lineOf(
      C.SUBSCRIBE,
      C.SUBSCRIBE.output,
      await subscription.nextWhere((l) => l.kind === "event"),
    );
  } finally {
    await subscription.close();
  }

  const dir = await Deno.makeTempDir({ prefix: "pilot-test-file-" });
  try {
    await Deno.writeTextFile(`${dir}/report.txt`, "numbers\n");
    await answer(a, C.SEND_FILE, { body: { peer: PAIR_B_NAME, path: `${dir}/report.txt` } });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const files = await answer(b, C.RECEIVED);
  assert.equal(files.files.length, 1, "a non-empty file list was checked");
  await answer(b, C.RECEIVED_ACK, { body: { ids: [files.files[0].id] } });
  await answer(b, C.RECEIVED_CLEAR, { body: { up_to: files.next } });

  await answer(a, C.CONNECTIONS);
  const events = await answer(a, C.EVENTS);
  assert.ok(events.events.length > 0, "a non-empty event page was checked");
  await answer(a, C.UNTRUST, { body: { peer: PAIR_B_NAME } });
  await answer(a, C.SHUTDOWN);

  const uncalled = C.ROUTES.map((r) => r.route).filter((r) => !checked.has(r));
  assert.deepEqual(
    uncalled.sort(),
    Object.keys(NOT_CALLED).sort(),
    "every other route was checked",
  );
});
