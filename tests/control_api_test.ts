/**
 * The control API of a real daemon, called as an agent would: the token,
 * Host and Origin checks, the error shape, the control file, and what the
 * CLI does after the daemon is killed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isHomeLocked } from "../src/daemon/home.ts";
import { callApi, startNode, type TestNode, waitFor } from "./_daemon_harness.ts";

interface RawResponse {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
}

/**
 * One HTTP/1.1 request over a raw TCP connection: `fetch` sets `Host` itself,
 * and the tests need to send a foreign one.
 */
async function rawRequest(
  url: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body = "",
): Promise<RawResponse> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  try {
    const head = [
      `${method} ${path} HTTP/1.1`,
      ...Object.entries({ connection: "close", ...headers }).map(([k, v]) => `${k}: ${v}`),
      ...(body === "" ? [] : [`content-length: ${new TextEncoder().encode(body).length}`]),
    ].join("\r\n");
    await conn.write(new TextEncoder().encode(`${head}\r\n\r\n${body}`));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(16_384);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    const text = new TextDecoder().decode(
      chunks.reduce((a, c) => {
        const out = new Uint8Array(a.length + c.length);
        out.set(a);
        out.set(c, a.length);
        return out;
      }, new Uint8Array(0)),
    );
    const split = text.indexOf("\r\n\r\n");
    const headLines = text.slice(0, split).split("\r\n");
    let payload = text.slice(split + 4);
    if (/^transfer-encoding:\s*chunked/im.test(headLines.join("\n"))) payload = dechunk(payload);
    return { status: Number(headLines[0]!.split(" ")[1]), body: JSON.parse(payload) };
  } finally {
    conn.close();
  }
}

function dechunk(text: string): string {
  let out = "";
  let rest = text;
  for (;;) {
    const eol = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

function assertErrorShape(body: Record<string, unknown>, code: string): void {
  assert.deepEqual(Object.keys(body).sort(), [
    "code",
    "hint",
    "message",
    "request_id",
    "retryable",
    "status",
  ]);
  assert.equal(body.status, "error");
  assert.equal(body.code, code);
  assert.equal(typeof body.message, "string");
  assert.equal(typeof body.hint, "string");
  assert.equal(body.retryable, false);
  assert.match(String(body.request_id), /^[0-9a-f-]{36}$/);
}

Deno.test("the control API answers only with the token, a loopback Host and its own Origin", async () => {
  let node: TestNode | undefined;
  try {
    node = await startNode({ identity: 0 });
    const { url, token } = await node.controlFile();
    const port = new URL(url).port;
    const auth = { authorization: `Bearer ${token}` };
    const host = `127.0.0.1:${port}`;

    const noToken = await fetch(`${url}/v1/info`);
    assert.equal(noToken.status, 401);
    assertErrorShape(await noToken.json(), "unauthorized");

    const wrong = await fetch(`${url}/v1/info`, {
      headers: { authorization: `Bearer ${token.replace(/^./, (c) => c === "0" ? "1" : "0")}` },
    });
    assert.equal(wrong.status, 401);
    assertErrorShape(await wrong.json(), "unauthorized");

    const notBearer = await fetch(`${url}/v1/info`, { headers: { authorization: token } });
    assert.equal(notBearer.status, 401);
    await notBearer.body?.cancel();

    const ok = await rawRequest(url, "GET", "/v1/info", { host, ...auth });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.status, "ok");
    assert.equal(ok.body.data.address, node.identity!.address);

    const evilHost = await rawRequest(url, "GET", "/v1/info", {
      host: `evil.example:${port}`,
      ...auth,
    });
    assert.equal(evilHost.status, 401);
    assertErrorShape(evilHost.body, "unauthorized");

    const wrongPort = await rawRequest(url, "GET", "/v1/info", {
      host: `127.0.0.1:${Number(port) === 1 ? 2 : Number(port) - 1}`,
      ...auth,
    });
    assert.equal(wrongPort.status, 401);

    const evilOrigin = await fetch(`${url}/v1/info`, {
      headers: { ...auth, origin: "http://evil.example" },
    });
    assert.equal(evilOrigin.status, 401);
    assertErrorShape(await evilOrigin.json(), "unauthorized");

    const ownOrigin = await fetch(`${url}/v1/info`, { headers: { ...auth, origin: url } });
    assert.equal(ownOrigin.status, 200);
    assert.equal((await ownOrigin.json()).status, "ok");

    const health = await fetch(`${url}/v1/health`);
    assert.equal(health.status, 200);
    const h = await health.json();
    assert.equal(h.status, "ok");
    assert.equal(h.data.pid, node.pid);

    const healthFromEvil = await rawRequest(url, "GET", "/v1/health", {
      host: `evil.example:${port}`,
    });
    assert.equal(healthFromEvil.status, 401, "Host is checked even without a token");

    const unknown = await fetch(`${url}/v1/nothing-here`, { headers: auth });
    assert.equal(unknown.status, 404);
    assertErrorShape(await unknown.json(), "not_found");

    const wrongMethod = await fetch(`${url}/v1/connect`, { headers: auth });
    assert.equal(wrongMethod.status, 404);
    await wrongMethod.body?.cancel();

    for (const body of ["{not json", "[]", '{"peer": 5}', '{"peer": "x", "timeout_ms": -1}']) {
      const bad = await fetch(`${url}/v1/connect`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body,
      });
      assert.equal(bad.status, 400, body);
      assertErrorShape(await bad.json(), "invalid_argument");
    }

    const unknownPeer = await fetch(`${url}/v1/connect`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ peer: "no-such-host" }),
    });
    assert.equal(unknownPeer.status, 404);
    assertErrorShape(await unknownPeer.json(), "not_found");
  } finally {
    await node?.stop();
  }
});

Deno.test("the control file is private and its token changes at every start", async () => {
  let node: TestNode | undefined;
  try {
    node = await startNode({ identity: 1 });
    const path = join(node.home, "control.json");
    const first = await node.controlFile();
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.match(first.token, /^[0-9a-f]{64}$/);
    assert.equal(first.pid, node.pid);

    const stopped = await node.pilot("daemon", "stop", "--json");
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    await node.start();
    const second = await node.controlFile();
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.notEqual(second.token, first.token);

    const old = await fetch(`${second.url}/v1/info`, {
      headers: { authorization: `Bearer ${first.token}` },
    });
    assert.equal(old.status, 401, "the previous token is worthless");
    await old.body?.cancel();
    const fresh = await fetch(`${second.url}/v1/info`, {
      headers: { authorization: `Bearer ${second.token}` },
    });
    assert.equal(fresh.status, 200);
    await fresh.body?.cancel();
  } finally {
    await node?.stop();
  }
});

Deno.test("after kill -9 the CLI answers not_running despite the stale control file", async () => {
  let node: TestNode | undefined;
  try {
    node = await startNode({ identity: 2 });
    const stale = await node.controlFile();
    Deno.kill(stale.pid, "SIGKILL");
    await waitFor("the lock to be released", async () => !(await isHomeLocked(node!.home)));
    const left = await node.controlFile();
    assert.equal(left.token, stale.token, "the control file is left behind");

    const info = await node.pilot("info", "--json");
    assert.equal(info.code, 3, info.stdout + info.stderr);
    assert.equal(info.json.code, "not_running");
    const status = await node.pilot("daemon", "status", "--json");
    assert.deepEqual([status.code, status.json.code], [3, "not_running"]);
    const stop = await node.pilot("daemon", "stop", "--json");
    assert.equal(stop.code, 0);
    assert.equal(stop.json.data.changed, false);

    await node.start();
    assert.notEqual(node.pid, stale.pid);
    const again = await node.info();
    assert.equal(again.address, node.identity!.address);
    assert.notEqual((await node.controlFile()).token, stale.token);
  } finally {
    await node?.stop();
  }
});

Deno.test("the CLI calls the daemon over its private Unix socket, which still asks for the token", async () => {
  await using node = await startNode();
  const control = await node.controlFile() as { url: string; token: string; socket?: string };
  assert.equal(typeof control.socket, "string", "control.json names the socket");
  const mode = (await Deno.stat(control.socket!)).mode! & 0o777;
  assert.equal(mode & 0o077, 0, `only this user may connect (mode ${mode.toString(8)})`);
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: control.socket! } });
  try {
    const anonymous = await fetch(new URL("/v1/info", control.url), { client });
    assert.equal(anonymous.status, 401, "no token, no answer, socket or not");
    await anonymous.body?.cancel();
  } finally {
    client.close();
  }
  // A CLI long poll held open is a request the gate never saw: the gate counts only the
  // TCP connection this test reads info on.
  const polling = node.pilot("inbox", "--wait", "--timeout", "3s", "--json");
  const info = await waitFor("the CLI's long poll", async () => {
    const r = await callApi(node, "GET", "/v1/info");
    return r.json.data.control.held.long_poll === 1 ? r.json.data : undefined;
  });
  assert.equal(info.control.connections, 1, JSON.stringify(info.control));
  assert.equal((await polling).code, 0);
});
