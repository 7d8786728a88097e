/**
 * The route contract on a running daemon: unknown body fields are refused
 * by name, json data may be a JSON value and comes back parsed, CLI flags are
 * checked in CLI terms, `--json` prints exactly the route's answer, and
 * every route's answer, and every line or frame a streaming route sends,
 * lists no field its schema does not.
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
  "POST /v1/reject": "answers the same schema (and view) as approve",
  "GET /v1/rendezvous":
    "a rendezvous node's alone: rendezvous_role_test.ts checks its answer closed",
  "GET /v1/openapi.json": "the OpenAPI document, no envelope: openapi_test.ts compares it",
};

/** A direct connection to a node's loopback API, as the harness makes (no proxy). */
function directClient(url: URL): Deno.HttpClient {
  return Deno.createHttpClient({
    proxy: { transport: "tcp", hostname: url.hostname, port: Number(url.port) },
  });
}

/** POSTs `body` to a route that answers NDJSON; returns every line once the stream ended. */
async function postLines(node: TestNode, path: string, body: unknown): Promise<unknown[]> {
  const control = await node.controlFile();
  const url = new URL(path, control.url);
  const client = directClient(url);
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${control.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      client,
    });
    const text = await res.text();
    assert.match(res.headers.get("content-type") ?? "", /ndjson/, `${path}: ${text}`);
    return text.trimEnd().split("\n").map((l) => JSON.parse(l));
  } finally {
    client.close();
  }
}

/** A WebSocket route of a node, its JSON text frames collected as they come. */
class FrameSocket {
  /** Every text frame so far, parsed. */
  // deno-lint-ignore no-explicit-any
  readonly frames: any[] = [];
  #ws: WebSocket;
  #client: Deno.HttpClient;
  #wake: (() => void) | undefined;

  private constructor(ws: WebSocket, client: Deno.HttpClient) {
    this.#ws = ws;
    this.#client = client;
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      this.frames.push(JSON.parse(ev.data));
      this.#wake?.();
    };
    ws.onclose = () => this.#wake?.();
  }

  /** Opens `GET path?query` as a WebSocket with the node's token. */
  static async open(
    node: TestNode,
    path: string,
    query: Record<string, string | number>,
  ): Promise<FrameSocket> {
    const control = await node.controlFile();
    const url = new URL(path, control.url);
    url.protocol = "ws:";
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, String(v));
    const client = directClient(url);
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${control.token}` },
      client,
    });
    return new FrameSocket(ws, client);
  }

  /** Waits until `n` text frames came; throws when the socket closes first or time runs out. */
  async frameCount(n: number, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < n) {
      if (this.#ws.readyState === WebSocket.CLOSED) {
        throw new Error(`The socket closed after ${JSON.stringify(this.frames)}`);
      }
      if (Date.now() > deadline) throw new Error(`No frame ${n} within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 50);
      });
    }
  }

  /** Closes the socket (the stream, if open, is reset) and releases the connection. */
  async close(): Promise<void> {
    if (this.#ws.readyState !== WebSocket.CLOSED) {
      const closed = new Promise<void>((r) => this.#ws.addEventListener("close", () => r()));
      this.#ws.close();
      await closed;
    }
    this.#client.close();
  }
}

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
  // Routes whose streamed lines (or WebSocket text frames) were checked against `lines`.
  const linesChecked = new Set<string>();
  const lineOf = (spec: C.RouteSpec, line: unknown) => {
    assert.ok(spec.lines, `${spec.route} publishes a line schema`);
    assert.deepEqual(
      validate(spec.lines, line, { closed: true }),
      [],
      `${spec.route} line: ${JSON.stringify(line)}`,
    );
    checked.add(spec.route);
    linesChecked.add(spec.route);
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
  const found = await answer(a, C.FIND, { query: { peer: PAIR_B_NAME } });
  assert.equal(found.candidates.length, 1, "a non-empty candidate list was checked");
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
  // A batch whose answer holds both kinds of result: a receipt, and an error
  // (the same id as "full" with other content: a conflict).
  const batch = await answer(a, C.SEND_BATCH, {
    body: {
      peer: PAIR_B_NAME,
      messages: [{ data: "batched", id: "b-1" }, { data: "not x", id: "full" }],
    },
  });
  assert.deepEqual(
    batch.results.map((r: { status: string; code?: string }) => r.code ?? r.status),
    ["ok", "conflict"],
  );
  const inbox = await answer(b, C.INBOX);
  const full = inbox.messages.find((m: { id: string }) => m.id === "full");
  assert.deepEqual([full.correlation_id, full.in_reply_to, full.meta], ["c1", "r1", { job: "7" }]);
  assert.ok(inbox.messages.some((m: { value?: unknown }) => m.value !== undefined));
  // The shortest heartbeat a query may ask for, so the quiet stream beats at once.
  const follow = await NdjsonStream.open(b, "/v1/inbox", { follow: true, heartbeat_ms: 100 });
  try {
    for (let i = 0; i < inbox.messages.length; i++) {
      const line = await follow.next();
      assert.equal(line.seq, inbox.messages[i].seq);
      lineOf(C.INBOX, line);
    }
    const beat = await follow.next();
    assert.deepEqual([beat.type, beat.seq], ["heartbeat", inbox.next], JSON.stringify(beat));
    lineOf(C.INBOX, beat);
  } finally {
    await follow.close();
  }
  // The outbox: empty here (outbox_flow_test.ts checks a queued message against the schema).
  await answer(a, C.OUTBOX);
  await answer(a, C.OUTBOX_CANCEL, { body: { id: "none" } });
  // A task through every route.
  await answer(a, C.TASK_SUBMIT, {
    body: { peer: PAIR_B_NAME, data: { job: 1 }, type: "json", id: "t-api" },
  });
  await answer(b, C.TASK_LIST, { query: { wait: 5000 } });
  await answer(b, C.TASK_ACCEPT, { body: { id: "t-api" } });
  await answer(b, C.TASK_PROGRESS, { body: { id: "t-api", data: "half" } });
  await answer(b, C.TASK_RESULT, { body: { id: "t-api", data: { done: true }, type: "json" } });
  await answer(a, C.TASK_WAIT, { query: { id: "t-api", timeout_ms: 10_000 } });
  await answer(a, C.TASK_STATUS, { query: { id: "t-api" } });
  await answer(a, C.TASK_SUBMIT, { body: { peer: PAIR_B_NAME, data: "x", id: "t-api-2" } });
  await answer(b, C.TASK_DECLINE, { body: { id: "t-api-2", reason: "busy" } });
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
  // The same with follow: each datagram is a line of its own.
  const datagrams = await NdjsonStream.open(b, "/v1/recv", {
    port: 4001,
    follow: true,
    count: 1,
    timeout_ms: 20_000,
  });
  try {
    let datagram: unknown;
    for (let i = 0; i < 100 && datagram === undefined; i++) {
      await answer(a, C.DGRAM, { body: { peer: PAIR_B_NAME, port: 4001, data: "f" } });
      datagram = await datagrams.next(100).catch(() => undefined);
    }
    assert.ok(datagram !== undefined, "a followed datagram came");
    lineOf(C.RECV, datagram);
  } finally {
    await datagrams.close();
  }

  const subscription = await NdjsonStream.open(a, "/v1/subscribe", {
    peer: PAIR_B_NAME,
    pattern: "jobs.*",
    count: 1,
  });
  try {
    lineOf(C.SUBSCRIBE, await subscription.next());
    await answer(a, C.PUBLISH, { body: { peer: PAIR_B_NAME, topic: "jobs.x", data: "go" } });
    lineOf(C.SUBSCRIBE, await subscription.nextWhere((l) => l.kind === "event"));
  } finally {
    await subscription.close();
  }

  // A stream: B listens (its listening frame), A opens (both open frames), then both leave.
  const listening = await FrameSocket.open(b, "/v1/listen", { port: 9100, timeout_ms: 20_000 });
  let opening: FrameSocket | undefined;
  try {
    await listening.frameCount(1);
    assert.deepEqual(listening.frames[0], { type: "listening", port: 9100 });
    opening = await FrameSocket.open(a, "/v1/stream", { peer: PAIR_B_NAME, port: 9100 });
    await opening.frameCount(1);
    await listening.frameCount(2);
    for (const [spec, socket] of [[C.STREAM, opening], [C.LISTEN, listening]] as const) {
      assert.equal(socket.frames.at(-1).type, "open", JSON.stringify(socket.frames));
      assert.deepEqual(
        validate(spec.output, socket.frames.at(-1), { closed: true }),
        [],
        `${spec.route}: ${JSON.stringify(socket.frames)}`,
      );
      for (const frame of socket.frames) lineOf(spec, frame);
    }
  } finally {
    await opening?.close();
    await listening.close();
  }

  const dir = await Deno.makeTempDir({ prefix: "pilot-test-file-" });
  try {
    await Deno.writeTextFile(`${dir}/report.txt`, "numbers\n");
    await answer(a, C.SEND_FILE, { body: { peer: PAIR_B_NAME, path: `${dir}/report.txt` } });
    // With progress: progress lines, then the result line; a file that is not there, an error line.
    await Deno.writeTextFile(`${dir}/summary.txt`, "more numbers\n".repeat(10_000));
    const sending = await postLines(a, "/v1/send-file", {
      peer: PAIR_B_NAME,
      path: `${dir}/summary.txt`,
      progress: true,
    });
    const kinds = sending.map((l) => (l as { kind: string }).kind);
    assert.equal(kinds[0], "progress", JSON.stringify(sending));
    assert.equal(kinds.at(-1), "result", JSON.stringify(sending));
    for (const line of sending) lineOf(C.SEND_FILE, line);
    const failing = await postLines(a, "/v1/send-file", {
      peer: PAIR_B_NAME,
      path: `${dir}/missing.txt`,
      progress: true,
    });
    assert.deepEqual(failing.map((l) => (l as { kind: string }).kind), ["error"]);
    lineOf(C.SEND_FILE, failing[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const files = await answer(b, C.RECEIVED);
  assert.equal(files.files.length, 2, "a file list of both files was checked");
  await answer(b, C.RECEIVED_ACK, { body: { ids: [files.files[0].id] } });
  await answer(b, C.RECEIVED_CLEAR, { body: { up_to: files.next } });

  await answer(a, C.CONNECTIONS);
  // Tunnels: A exposes a port (nothing needs to listen behind it), B forwards to it.
  await answer(a, C.EXPOSE, {
    body: { target: "127.0.0.1:9", vport: 8080, allow: [b.identity!.fingerprint] },
  });
  const forwarding = await answer(b, C.FORWARD, { body: { peer: PAIR_A_NAME, vport: 8080 } });
  assert.equal((await answer(a, C.TUNNELS)).exposed.length, 1, "an exposure was checked");
  assert.equal((await answer(b, C.TUNNELS)).forwarded.length, 1, "a forward was checked");
  await answer(b, C.UNFORWARD, { body: { local_port: forwarding.forward.local_port } });
  await answer(a, C.UNEXPOSE, { body: { vport: 8080 } });
  const events = await answer(a, C.EVENTS);
  assert.ok(events.events.length > 0, "a non-empty event page was checked");
  // Following from a few events back: those events, then a heartbeat once it is quiet.
  const following = await NdjsonStream.open(a, "/v1/events", {
    follow: true,
    after: Math.max(0, events.next - 3),
    heartbeat_ms: 100,
  });
  try {
    const beat = await following.nextWhere((l) => l.type === "heartbeat");
    assert.ok(following.lines.length > 1, "event lines came before the heartbeat");
    assert.ok(beat.seq >= events.next, JSON.stringify(beat));
    for (const line of following.lines) lineOf(C.EVENTS, line);
  } finally {
    await following.close();
  }
  await answer(a, C.PEER_ADD, {
    body: { name: "extra-node", endpoint: "worker.example.com:4000" },
  });
  const statics = await answer(a, C.PEER_LIST);
  assert.ok(
    statics.peers.some((p: { trusted: unknown[] }) => p.trusted.length === 1),
    "a static peer that is also trusted was checked",
  );
  await answer(a, C.PEER_REMOVE, { body: { name: "extra-node" } });
  const hook = "http://127.0.0.1:9/pilot";
  await answer(a, C.WEBHOOK_ADD, { body: { url: hook, events: ["task.*"], secret: "s" } });
  const hooks = await answer(a, C.WEBHOOK_LIST);
  assert.equal(hooks.webhooks.length, 1, "a non-empty webhook list was checked");
  await answer(a, C.WEBHOOK_REMOVE, { body: { url: hook } });
  await answer(a, C.UNTRUST, { body: { peer: PAIR_B_NAME } });
  await answer(a, C.SHUTDOWN);

  const uncalled = C.ROUTES.map((r) => r.route).filter((r) => !checked.has(r));
  assert.deepEqual(
    uncalled.sort(),
    Object.keys(NOT_CALLED).sort(),
    "every other route was checked",
  );
  assert.deepEqual(
    [...linesChecked].sort(),
    C.ROUTES.filter((r) => r.lines !== undefined).map((r) => r.route).sort(),
    "every route that streams had its lines checked",
  );
});
