/**
 * `pilot expose` and `pilot forward` between real daemons: an agent's HTTP
 * server (an A2A-style agent card) reached by a trusted peer through a
 * loopback port, bodies both ways, many requests at once, and every failure
 * an HTTP error whose body is the API's error object: nothing exposed, the
 * service down, a peer the exposure does not allow, a peer that is not
 * trusted. An untrusted node's stream never reaches the exposed port, and
 * `--save` keeps both across a restart.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as C from "../src/control/contract/mod.ts";
import { validate } from "../src/control/schema.ts";
import {
  fixture,
  freeUdpPort,
  makeHome,
  okOf,
  PAIR_A_NAME,
  stopAll,
  TestNode,
  trustedPair,
  trustEntry,
  waitFor,
} from "./_daemon_harness.ts";

/** The agent card A's agent serves. */
const CARD = {
  name: "report-writer",
  description: "Writes weekly reports",
  url: "http://127.0.0.1/a2a",
  version: "1.0.0",
  capabilities: { streaming: false },
  skills: [{ id: "summarise", name: "Summarise", description: "Summarises a document" }],
};

/** An agent's HTTP server on 127.0.0.1: its card, and an echo of POSTed bodies. */
function startAgent(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/.well-known/agent.json") return Response.json(CARD);
    if (req.method === "POST" && url.pathname === "/a2a") {
      const body = await req.text();
      return Response.json({ got: body, bytes: body.length });
    }
    return new Response("not found", { status: 404 });
  });
}

/** A TCP port on 127.0.0.1 free right now. */
function freeTcpPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A fetch on a fresh connection each time (no pooled keep-alive between checks). */
async function get(url: string, init: RequestInit = {}): Promise<Response> {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const res = await fetch(url, { ...init, client });
    // The body is read before the client closes.
    const body = await res.arrayBuffer();
    return new Response(res.status === 204 ? null : body, {
      status: res.status,
      headers: res.headers,
    });
  } finally {
    client.close();
  }
}

/** Checks `res` is the forward's HTTP error for `code`: 502 (503 for rate_limited) and the error object. */
async function tunnelError(res: Response, code: string, status = 502): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("x-pilot-error"), code);
  assert.equal(text.trimEnd().split("\n").length, 1, "one line");
  const body = JSON.parse(text);
  assert.deepEqual(Object.keys(body).sort(), ["code", "hint", "message", "retryable", "status"]);
  assert.equal(body.status, "error");
  assert.equal(body.code, code, text);
  assert.ok(body.message.length > 0 && body.hint.length > 0, text);
  return body.message;
}

Deno.test("a forward carries HTTP to a trusted peer's exposed agent card, bodies both ways, 50 requests at once", async () => {
  const agent = startAgent();
  const { a, b } = await trustedPair();
  try {
    const exposed = okOf(
      await a.pilot("expose", String(agent.addr.port), "--as", "80", "--json"),
      "expose",
    );
    assert.deepEqual(validate(C.EXPOSE.output, exposed, { closed: true }), []);
    assert.equal(exposed.changed, true);
    assert.equal(exposed.exposure.target, `127.0.0.1:${agent.addr.port}`);
    // The same exposure again: nothing changes.
    const again = okOf(
      await a.pilot("expose", `127.0.0.1:${agent.addr.port}`, "--json"),
      "expose again",
    );
    assert.equal(again.changed, false);

    const fwd = okOf(await b.pilot("forward", "0", PAIR_A_NAME, "80", "--json"), "forward");
    assert.deepEqual(validate(C.FORWARD.output, fwd, { closed: true }), []);
    const base = `http://${fwd.forward.listen}`;
    assert.match(fwd.forward.listen, /^127\.0\.0\.1:\d+$/);

    const card = await get(`${base}/.well-known/agent.json`);
    assert.equal(card.status, 200);
    assert.deepEqual(await card.json(), CARD);

    const payload = "x".repeat(200_000);
    const posted = await get(`${base}/a2a`, { method: "POST", body: payload });
    assert.equal(posted.status, 200);
    assert.deepEqual(await posted.json(), { got: payload, bytes: payload.length });

    const many = await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) =>
          get(`${base}/a2a`, { method: "POST", body: `task ${i}` }).then(async (r) => ({
            status: r.status,
            body: await r.json(),
          })),
      ),
    );
    many.forEach((r, i) =>
      assert.deepEqual(r, { status: 200, body: { got: `task ${i}`, bytes: `task ${i}`.length } })
    );

    // Both sides list their tunnel, in `tunnels` and in `info`.
    const aList = okOf(await a.pilot("tunnels", "--json"), "tunnels");
    assert.deepEqual(validate(C.TUNNELS.output, aList, { closed: true }), []);
    assert.equal(aList.exposed.length, 1);
    assert.ok(aList.exposed[0].served >= 52, JSON.stringify(aList));
    const bInfo = await b.info();
    assert.equal(bInfo.tunnels.forwarded[0].local_port, fwd.forward.local_port);
    assert.ok(bInfo.tunnels.forwarded[0].served >= 52, JSON.stringify(bInfo.tunnels));
  } finally {
    await stopAll(a, b);
    await agent.shutdown();
  }
});

Deno.test("a forward answers 502 with the API's error object: nothing exposed, the service down, a peer the exposure does not allow, a peer not trusted", async () => {
  const agent = startAgent();
  const { a, b } = await trustedPair();
  const stranger = new TestNode(await makeHome({ identity: 2 }), { identity: 2 });
  try {
    await stranger.start();
    // Nothing on port 81 of A.
    const none = okOf(await b.pilot("forward", "0", PAIR_A_NAME, "81", "--json"), "forward 81");
    const noneMessage = await tunnelError(
      await get(`http://${none.forward.listen}/.well-known/agent.json`),
      "not_found",
    );
    assert.match(noneMessage, /Nothing is exposed on port 81/);

    // A service that is down.
    const down = freeTcpPort();
    okOf(await a.pilot("expose", String(down), "--as", "82", "--json"), "expose down");
    const dead = okOf(await b.pilot("forward", "0", PAIR_A_NAME, "82", "--json"), "forward 82");
    const deadMessage = await tunnelError(
      await get(`http://${dead.forward.listen}/`),
      "unreachable",
    );
    assert.match(deadMessage, new RegExp(`service at 127\\.0\\.0\\.1:${down} is not answering`));

    // An exposure narrowed to another peer (the stranger's fingerprint) refuses B.
    okOf(
      await a.pilot(
        "expose",
        String(agent.addr.port),
        "--as",
        "83",
        "--allow",
        fixture(2).fingerprint,
        "--json",
      ),
      "expose --allow",
    );
    const narrowed = okOf(await b.pilot("forward", "0", PAIR_A_NAME, "83", "--json"), "fwd 83");
    await tunnelError(await get(`http://${narrowed.forward.listen}/`), "not_trusted");
    // Narrowed to B, it lets B in.
    const widened = okOf(
      await a.pilot(
        "expose",
        String(agent.addr.port),
        "--as",
        "83",
        "--allow",
        fixture(1).public_key,
        "--json",
      ),
      "expose --allow B",
    );
    assert.equal(widened.changed, true);
    assert.equal(
      (await get(`http://${narrowed.forward.listen}/.well-known/agent.json`)).status,
      200,
    );

    // A peer this node does not trust: refused at once when named by its key ...
    const refused = await b.pilot("forward", "0", fixture(2).public_key, "--json");
    assert.equal(refused.json?.code, "not_trusted", refused.stdout);
    assert.equal(refused.code, 4);
    // ... and per connection when only its endpoint is known (the handshake tells).
    const untrusted = okOf(
      await b.pilot("forward", "0", stranger.listen, "80", "--timeout", "3s", "--json"),
      "forward to a stranger",
    );
    await tunnelError(await get(`http://${untrusted.forward.listen}/`), "not_trusted");

    // A client that is not HTTP sees the connection close.
    const raw = await Deno.connect({ port: none.forward.local_port, hostname: "127.0.0.1" });
    await raw.write(new TextEncoder().encode("\x16\x03\x01 not http\r\n"));
    assert.equal(await raw.read(new Uint8Array(64)), null);
    raw.close();

    // Everyone else is still served: the card through port 83 again, and A's exposures.
    assert.equal(
      (await get(`http://${narrowed.forward.listen}/.well-known/agent.json`)).status,
      200,
    );
    const list = okOf(await a.pilot("tunnels", "--json"), "tunnels").exposed;
    const by = (p: number) => list.find((e: { vport: number }) => e.vport === p);
    assert.equal(by(82).failed, 1);
    assert.equal(by(83).refused, 1);

    // Unexposed, the port answers not_found again; unexposing twice changes nothing.
    const gone = okOf(await a.pilot("unexpose", "83", "--json"), "unexpose");
    assert.deepEqual([gone.changed, gone.target], [true, `127.0.0.1:${agent.addr.port}`]);
    assert.equal(okOf(await a.pilot("unexpose", "83", "--json"), "unexpose again").changed, false);
    await waitFor("port 83 to answer not_found", async () => {
      const r = await get(`http://${narrowed.forward.listen}/`);
      return r.status === 502 && (await r.json()).code === "not_found";
    }, 20_000);
    const off = okOf(await b.pilot("unforward", String(none.forward.local_port), "--json"), "unf");
    assert.deepEqual(validate(C.UNFORWARD.output, off, { closed: true }), []);
    assert.deepEqual([off.changed, off.vport], [true, 81]);
    await assert.rejects(get(`http://${none.forward.listen}/`));
  } finally {
    await stopAll(a, b, stranger);
    await agent.shutdown();
  }
});

Deno.test("a built-in service's port, or one taken, cannot be exposed or forwarded", async () => {
  const { a, b } = await trustedPair();
  try {
    for (const port of ["7", "444", "1001"]) {
      const r = await a.pilot("expose", "8080", "--as", port, "--json");
      assert.equal(r.json?.code, "conflict", r.stdout);
    }
    const bad = await a.pilot("expose", "localhost:99999", "--json");
    assert.equal(bad.json?.code, "invalid_argument", bad.stdout);
    const addr = await a.pilot("expose", "8080", "--allow", fixture(1).address, "--json");
    assert.equal(addr.json?.code, "invalid_argument", "an address is only a name");
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = String((taken.addr as Deno.NetAddr).port);
      const r = await b.pilot("forward", port, PAIR_A_NAME, "--json");
      assert.equal(r.json?.code, "conflict", r.stdout);
    } finally {
      taken.close();
    }
    const fwd = okOf(await b.pilot("forward", "0", PAIR_A_NAME, "--json"), "forward");
    const port = String(fwd.forward.local_port);
    assert.equal(
      okOf(await b.pilot("forward", port, PAIR_A_NAME, "--json"), "same").changed,
      false,
    );
    const other = await b.pilot("forward", port, PAIR_A_NAME, "81", "--json");
    assert.equal(other.json?.code, "conflict", other.stdout);
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("an untrusted node's stream never reaches an exposed port: the session gate drops it", async () => {
  const agent = startAgent();
  const aPort = freeUdpPort();
  const a = new TestNode(await makeHome({ identity: 0 }), {
    identity: 0,
    hostname: PAIR_A_NAME,
    args: ["--listen", `127.0.0.1:${aPort}`],
  });
  // The intruder trusts A (one way): its own check lets the stream go; A's gate must not.
  const intruder = new TestNode(
    await makeHome({
      identity: 2,
      trust: [trustEntry(0, { mutual: true, hostname: PAIR_A_NAME })],
    }),
    { identity: 2, args: ["--peer", `${PAIR_A_NAME}=127.0.0.1:${aPort}`] },
  );
  try {
    await a.start();
    await intruder.start();
    okOf(await a.pilot("expose", String(agent.addr.port), "--json"), "expose");
    const fwd = okOf(
      await intruder.pilot("forward", "0", PAIR_A_NAME, "80", "--timeout", "2s", "--json"),
      "forward",
    );
    const res = await get(`http://${fwd.forward.listen}/.well-known/agent.json`);
    const body = await res.json();
    assert.equal(res.status, 502, JSON.stringify(body));
    assert.equal(body.code, "timeout", JSON.stringify(body));
    const exposure = okOf(await a.pilot("tunnels", "--json"), "tunnels").exposed[0];
    assert.deepEqual([exposure.served, exposure.refused, exposure.active], [0, 0, 0]);
  } finally {
    await stopAll(a, intruder);
    await agent.shutdown();
  }
});

Deno.test("--save keeps an exposure and a forward in config.json across a restart", async () => {
  const agent = startAgent();
  const { a, b } = await trustedPair();
  try {
    const local = freeTcpPort();
    okOf(await a.pilot("expose", String(agent.addr.port), "--save", "--json"), "expose --save");
    const fwd = okOf(
      await b.pilot("forward", String(local), PAIR_A_NAME, "--save", "--json"),
      "forward --save",
    );
    assert.equal(fwd.forward.saved, true);
    const aConfig = JSON.parse(await Deno.readTextFile(join(a.home, "config.json")));
    assert.deepEqual(aConfig.expose, [{ target: `127.0.0.1:${agent.addr.port}`, vport: 80 }]);
    const bConfig = JSON.parse(await Deno.readTextFile(join(b.home, "config.json")));
    assert.deepEqual(bConfig.forward, [
      { local_port: local, peer: PAIR_A_NAME, vport: 80, timeout_ms: 10_000 },
    ]);

    for (const node of [a, b]) {
      okOf(await node.pilot("daemon", "stop", "--json"), "stop");
      await node.start();
    }
    const exposed = (await a.info()).tunnels.exposed;
    assert.deepEqual(
      exposed.map((e: { vport: number; saved: boolean }) => [e.vport, e.saved]),
      [[80, true]],
    );
    await waitFor("the card through the restored forward", async () => {
      const r = await get(`http://127.0.0.1:${local}/.well-known/agent.json`).catch(() => null);
      return r?.status === 200 && JSON.stringify(await r.json()) === JSON.stringify(CARD);
    }, 20_000);

    // Removed with --save, it is gone from config.json too.
    okOf(await a.pilot("unexpose", "80", "--save", "--json"), "unexpose --save");
    const after = JSON.parse(await Deno.readTextFile(join(a.home, "config.json")));
    assert.equal(after.expose, undefined);
  } finally {
    await stopAll(a, b);
    await agent.shutdown();
  }
});
