/**
 * Webhooks on real daemons with real local HTTP servers: a message from a
 * peer reaches a webhook as a signed POST while a hanging and a failing
 * webhook each show a clear error; `webhook add/list/remove` change the
 * running daemon and config.json together; remote URLs need
 * `--allow-remote-webhooks`.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import {
  establishTrust,
  makeHome,
  okOf,
  PAIR_B_NAME,
  startNode,
  startPair,
  TestNode,
  waitFor,
} from "./_daemon_harness.ts";

/** One request a test server received. */
interface Received {
  headers: Headers;
  body: string;
}

/** A local HTTP server on 127.0.0.1 that records requests; `await using` shuts it down. */
interface Receiver extends AsyncDisposable {
  url: string;
  requests: Received[];
}

function receiver(answer: (release: Promise<void>) => Promise<Response> | Response): Receiver {
  const requests: Received[] = [];
  let release = () => {};
  const released = new Promise<void>((r) => release = r);
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    requests.push({ headers: req.headers, body: await req.text() });
    return await answer(released);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    requests,
    async [Symbol.asyncDispose]() {
      release();
      await server.shutdown();
    },
  };
}

const SECRET = "correct horse battery staple";

Deno.test("a peer's message reaches a signed webhook while a hanging and a failing webhook each show their error", async () => {
  await using good = receiver(() => new Response(null, { status: 204 }));
  await using hang = receiver(async (released) => {
    await released;
    return new Response(null, { status: 204 });
  });
  await using fail = receiver(() => new Response("broken", { status: 500 }));
  await using pair = await startPair({
    bConfig: {
      webhooks: [{ url: hang.url, events: ["*"] }, { url: fail.url, events: ["message.*"] }],
    },
  });
  const { a, b } = pair;
  // Added while the daemon runs: no restart.
  const added = okOf(
    await b.pilot(
      "webhook",
      "add",
      good.url,
      "--event",
      "message.received",
      "--secret",
      SECRET,
      "--json",
    ),
    "webhook add",
  );
  assert.deepEqual(added, {
    url: good.url,
    events: ["message.received"],
    secret: true,
    changed: true,
  });
  await establishTrust(a, b, PAIR_B_NAME);
  const sent = okOf(
    await a.pilot("send", PAIR_B_NAME, "--data", "hello hook", "--id", "m1", "--json"),
    "send",
  );
  assert.equal(sent.receipt.status, "stored");

  const got = await waitFor("the webhook to be posted the message", () => good.requests[0]);
  assert.equal(good.requests.length, 1, "only the event it asked for");
  assert.equal(got.headers.get("content-type"), "application/json");
  assert.equal(got.headers.get("x-pilot-event"), "message.received");
  assert.ok(got.headers.get("x-pilot-delivery"));
  const mac = createHmac("sha256", SECRET).update(got.body).digest("hex");
  assert.equal(got.headers.get("x-pilot-signature"), `sha256=${mac}`, "the HMAC verifies");
  const event = JSON.parse(got.body);
  assert.equal(event.type, "message.received");
  assert.equal(event.data.id, "m1");
  assert.equal(event.data.peer.fingerprint, a.identity!.fingerprint);
  // The message is in the inbox whatever the webhooks did.
  const inbox = okOf(await b.pilot("inbox", "--json"), "inbox");
  assert.equal(inbox.messages.find((m: { id: string }) => m.id === "m1")?.data, "hello hook");
  assert.equal(inbox.messages[0].seq, event.data.seq);

  const hooks = await waitFor("the hanging webhook's first attempt to time out", async () => {
    const list = okOf(await b.pilot("webhook", "list", "--json"), "webhook list").webhooks;
    const byUrl = new Map(list.map((h: { url: string }) => [h.url, h]));
    // deno-lint-ignore no-explicit-any
    const h = byUrl.get(hang.url) as any;
    return h?.last_error?.includes("no answer within 5000 ms") ? byUrl : false;
  }, 20_000);
  // deno-lint-ignore no-explicit-any
  const [okHook, failing, hanging] = [good.url, fail.url, hang.url].map((u) => hooks.get(u) as any);
  assert.deepEqual(
    [okHook.delivered, okHook.failed, okHook.last_status, okHook.last_error, okHook.secret],
    [1, 0, 204, null, true],
  );
  assert.equal(failing.last_status, 500);
  assert.match(failing.last_error, /HTTP 500/);
  assert.equal(failing.delivered, 0);
  assert.equal(hanging.delivered, 0);
  assert.ok(hanging.queued >= 1, "the hanging webhook's events wait in its own queue");
  const human = await b.pilot("webhook", "list");
  assert.equal(human.code, 0, human.stderr);
  assert.ok(human.stdout.includes(good.url) && human.stdout.includes("signed"), human.stdout);
  for (const out of [human.stdout, JSON.stringify([...hooks.values()])]) {
    assert.ok(!out.includes(SECRET), "list never shows a secret");
  }
});

Deno.test("webhook add, list and remove change the running daemon and config.json together", async () => {
  await using node = await startNode({ identity: 2 });
  const configOf = async () =>
    JSON.parse(await Deno.readTextFile(join(node.home, "config.json")).catch(() => "{}"));
  const url = "http://localhost:9/pilot";
  const add = () =>
    node.pilot("webhook", "add", url, "--event", "peer.*", "--event", "task.*", "--json");
  const first = okOf(await add(), "webhook add");
  assert.deepEqual(first, { url, events: ["peer.*", "task.*"], secret: false, changed: true });
  assert.equal(okOf(await add(), "webhook add").changed, false, "the same again");
  assert.deepEqual((await configOf()).webhooks, [{ url, events: ["peer.*", "task.*"] }]);
  const list = okOf(await node.pilot("webhook", "list", "--json"), "webhook list");
  assert.equal(list.allow_remote, false);
  assert.deepEqual(
    list.webhooks.map((h: Record<string, unknown>) => [h.url, h.secret, h.delivered, h.last_error]),
    [[url, false, 0, null]],
  );

  const noEvent = await node.pilot("webhook", "add", url, "--json");
  assert.equal(noEvent.code, 2);
  assert.match(noEvent.json.message, /at least one --event/);
  const remote = await node.pilot(
    "webhook",
    "add",
    "https://hooks.example.com/p",
    "--event",
    "*",
    "--json",
  );
  assert.equal(remote.code, 2, remote.stdout);
  assert.equal(remote.json.code, "invalid_argument");
  assert.match(remote.json.message, /not on this machine/);
  assert.match(remote.json.hint, /--allow-remote-webhooks/);
  const badEvent = await node.pilot("webhook", "add", url, "--event", "Message!", "--json");
  assert.equal(badEvent.code, 2, badEvent.stdout);

  const removed = okOf(await node.pilot("webhook", "remove", url, "--json"), "webhook remove");
  assert.deepEqual(removed, { url, events: ["peer.*", "task.*"], secret: false, changed: true });
  assert.deepEqual((await configOf()).webhooks, []);
  assert.deepEqual(
    okOf(await node.pilot("webhook", "list", "--json"), "webhook list").webhooks,
    [],
  );
  const again = okOf(await node.pilot("webhook", "remove", url, "--json"), "webhook remove");
  assert.equal(again.changed, false);
});

Deno.test("a remote webhook URL in config.json stops the daemon from starting unless --allow-remote-webhooks", async () => {
  const config = { webhooks: [{ url: "https://hooks.example.com/p", events: ["task.*"] }] };
  const refused = new TestNode(await makeHome({ identity: 3, config }), { identity: 3 });
  try {
    const r = await refused.pilot("daemon", "start", "--listen", "127.0.0.1:0", "--json");
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(
      r.json.message,
      /config\.json: webhook URL "https:\/\/hooks\.example\.com\/p" is not on this machine/,
    );
    assert.match(r.json.hint, /--allow-remote-webhooks/);
  } finally {
    await refused.stop();
  }
  await using allowed = await startNode({ identity: 4, config, args: ["--allow-remote-webhooks"] });
  const list = okOf(await allowed.pilot("webhook", "list", "--json"), "webhook list");
  assert.equal(list.allow_remote, true);
  assert.deepEqual(list.webhooks.map((h: { url: string }) => h.url), [
    "https://hooks.example.com/p",
  ]);
});
