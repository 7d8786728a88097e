/**
 * The control API is bounded against any local user: bodies are counted as
 * they stream, held requests are capped and freed on close, half-open
 * connections time out, and a flood of idle connections neither exhausts the
 * daemon's descriptors nor keeps the CLI out.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startControlServer } from "../src/control/server.ts";
import type { Routes } from "../src/control/server.ts";
import {
  CONTROL_MAX_FOLLOWS,
  CONTROL_MAX_LONG_POLLS,
  CONTROL_MAX_SOCKETS,
} from "../src/constants.ts";
import { makeHome, startNode, TestNode, waitFor } from "./_daemon_harness.ts";

const TOKEN = "t".repeat(64);
const LAST_WORDS_CHILD = fileURLToPath(new URL("./_last_words_child.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));
const MIB = 1024 * 1024;

function authed(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, {
    ...init,
    headers: { authorization: `Bearer ${TOKEN}`, ...init.headers },
  });
}

/** Opens `n` TCP connections that send nothing; unreachable ones are skipped. */
async function idleConnections(url: string, n: number): Promise<Deno.Conn[]> {
  const { port } = new URL(url);
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < n; i++) {
    try {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port: Number(port) }));
    } catch {
      // refused or reset while the daemon makes room: the flood goes on
    }
  }
  return conns;
}

function closeAll(conns: Deno.Conn[]): void {
  for (const c of conns) {
    try {
      c.close();
    } catch {
      // already closed
    }
  }
}

/** Resolves true once the server closed `conn` (end of file or reset), false after `ms`. */
async function closedByServer(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(1024);
  const { promise: late, resolve } = Promise.withResolvers<boolean>();
  const timer = setTimeout(() => resolve(false), ms);
  const closed = (async () => {
    try {
      for (;;) if (await conn.read(buf) === null) return true;
    } catch {
      return true;
    }
  })();
  try {
    return await Promise.race([closed, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("the control API refuses a chunked body over 32 MiB having read little more than the limit", async () => {
  const routes: Routes = { "POST /v1/echo": () => Promise.resolve("read") };
  const server = await startControlServer(routes, TOKEN);
  try {
    let pulled = 0;
    const chunk = new Uint8Array(MIB).fill(0x20);
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (pulled >= 600 * MIB) return c.close();
        pulled += chunk.length;
        c.enqueue(chunk);
      },
    });
    const res = await authed(`${server.url}/v1/echo`, { method: "POST", body });
    const answer = await res.json();
    assert.equal(answer.code, "too_large");
    // Kernel and HTTP buffers hold a few MiB beyond what the server took.
    assert.ok(pulled < 96 * MIB, `the client had to send ${pulled / MIB} MiB`);
  } finally {
    await server.close();
  }
});

Deno.test("the control API caps long polls and frees every slot and waiter when clients go away", async () => {
  const waiters = new Set<() => void>();
  const routes: Routes = {
    "GET /v1/poll": (req) =>
      new Promise((resolve) => {
        const done = () => {
          waiters.delete(done);
          resolve({ timed_out: true });
        };
        waiters.add(done);
        req.signal.addEventListener("abort", done, { once: true });
      }),
  };
  const server = await startControlServer(routes, TOKEN);
  const ac = new AbortController();
  try {
    const polls = Array.from(
      { length: CONTROL_MAX_LONG_POLLS },
      () => authed(`${server.url}/v1/poll?wait=60000`, { signal: ac.signal }).catch(() => null),
    );
    await waitFor("every poll to wait", () => waiters.size === CONTROL_MAX_LONG_POLLS, 10_000);
    const extra = await authed(`${server.url}/v1/poll?wait=60000`, {
      signal: AbortSignal.any([ac.signal, AbortSignal.timeout(5_000)]),
    });
    assert.equal(extra.status, 429);
    assert.equal((await extra.json()).code, "rate_limited");
    ac.abort();
    await Promise.all(polls);
    await waitFor("the aborted polls to leave", () => waiters.size === 0, 10_000);
    await waitFor("their slots to be freed", () => server.stats().held.long_poll === 0, 10_000);
    const again = await authed(`${server.url}/v1/poll?wait=1`, {
      signal: AbortSignal.timeout(200),
    }).catch(() => null);
    assert(again === null || again.status !== 429, "a freed slot takes a new poll");
  } finally {
    ac.abort();
    for (const w of [...waiters]) w();
    await server.close();
  }
});

Deno.test("the control API caps follow streams and frees a slot when a reader goes away", async () => {
  let open = 0;
  const routes: Routes = {
    "GET /v1/follow": () => {
      let timer: ReturnType<typeof setInterval> | undefined;
      open++;
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode("{}\n"));
          timer = setInterval(() => c.enqueue(new TextEncoder().encode("{}\n")), 50);
        },
        cancel() {
          clearInterval(timer);
          open--;
        },
      });
      return Promise.resolve(
        new Response(body, { headers: { "content-type": "application/x-ndjson" } }),
      );
    },
  };
  const server = await startControlServer(routes, TOKEN);
  const readers: Response[] = [];
  try {
    // Half announce themselves with follow=true; the rest are known by their NDJSON answer.
    for (let i = 0; i < CONTROL_MAX_FOLLOWS; i++) {
      readers.push(await authed(`${server.url}/v1/follow${i % 2 === 0 ? "?follow=true" : ""}`));
    }
    assert.equal(server.stats().held.follow, CONTROL_MAX_FOLLOWS);
    const extra = await authed(`${server.url}/v1/follow`);
    assert.equal(extra.status, 429);
    assert.equal((await extra.json()).code, "rate_limited");
    await waitFor("the refused stream to be cancelled", () => open === CONTROL_MAX_FOLLOWS);
    await Promise.all(readers.splice(0).map((r) => r.body?.cancel()));
    await waitFor("every stream to end", () => open === 0, 10_000);
    await waitFor("their slots to be freed", () => server.stats().held.follow === 0, 10_000);
  } finally {
    await Promise.all(readers.map((r) => r.body?.cancel()));
    await server.close();
  }
});

Deno.test("the control API caps WebSocket streams and frees a slot when a socket closes", async () => {
  const routes: Routes = {
    "GET /v1/socket": (req) => Promise.resolve(req.upgrade().response),
  };
  const server = await startControlServer(routes, TOKEN);
  const url = `${server.url.replace("http", "ws")}/v1/socket`;
  const open = (): Promise<WebSocket | "refused"> => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    return new Promise((resolve) => {
      ws.onopen = () => resolve(ws);
      ws.onerror = () => resolve("refused");
    });
  };
  const sockets: WebSocket[] = [];
  try {
    for (let i = 0; i < CONTROL_MAX_SOCKETS; i++) {
      const ws = await open();
      assert.notEqual(ws, "refused");
      sockets.push(ws as WebSocket);
    }
    assert.equal(await open(), "refused");
    const first = sockets.shift()!;
    const closed = new Promise((r) => first.onclose = r);
    first.close();
    await closed;
    await waitFor("the slot to be freed", () => server.stats().held.socket < CONTROL_MAX_SOCKETS);
    const again = await open();
    assert.notEqual(again, "refused");
    sockets.push(again as WebSocket);
  } finally {
    await Promise.all(sockets.map((ws) => {
      const closed = new Promise((r) => ws.onclose = r);
      ws.close();
      return closed;
    }));
    await server.close();
  }
});

Deno.test("the control API closes a connection that sends no complete headers within the header timeout", async () => {
  const server = await startControlServer({}, TOKEN, { limits: { headerTimeoutMs: 300 } });
  const conns = await idleConnections(server.url, 20);
  try {
    await conns[0]!.write(new TextEncoder().encode("GET /v1/health HTTP/1.1\r\nHost: x\r\n"));
    const closed = await Promise.all(conns.map((c) => closedByServer(c, 5_000)));
    assert.equal(closed.filter((c) => !c).length, 0, "connections left open after 5 s");
    assert.equal(server.stats().drops.header_timeout, 20);
  } finally {
    closeAll(conns);
    await server.close();
  }
});

Deno.test("the control API closes an idle keep-alive connection but not a quiet follow stream", async () => {
  const routes: Routes = {
    "GET /v1/quiet": () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          timer = setTimeout(() => {
            c.enqueue(new TextEncoder().encode('{"late":true}\n'));
            c.close();
          }, 1_000);
        },
        cancel() {
          clearTimeout(timer);
        },
      });
      return Promise.resolve(
        new Response(body, { headers: { "content-type": "application/x-ndjson" } }),
      );
    },
  };
  const server = await startControlServer(routes, TOKEN, { limits: { idleTimeoutMs: 300 } });
  const [idle] = await idleConnections(server.url, 1);
  try {
    const { host } = new URL(server.url);
    await idle!.write(new TextEncoder().encode(`GET /v1/health HTTP/1.1\r\nHost: ${host}\r\n\r\n`));
    const quiet = await authed(`${server.url}/v1/quiet?follow=true`);
    assert.equal(await closedByServer(idle!, 5_000), true, "the idle connection stayed open");
    assert.equal(await quiet.text(), '{"late":true}\n');
    assert.equal(server.stats().drops.idle_timeout, 1);
  } finally {
    closeAll([idle!]);
    await server.close();
  }
});

Deno.test("the control API keeps a request whose body followed 100 Continue open past the header timeout", async () => {
  const routes: Routes = {
    "POST /v1/slow": (req) =>
      new Promise((resolve) => setTimeout(() => resolve({ got: req.body }), 1_000)),
  };
  const server = await startControlServer(routes, TOKEN, { limits: { headerTimeoutMs: 300 } });
  const [conn] = await idleConnections(server.url, 1);
  try {
    const { host } = new URL(server.url);
    const body = '{"x":1}';
    const head = `POST /v1/slow HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${TOKEN}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n` +
      `Expect: 100-continue\r\n\r\n`;
    await conn!.write(new TextEncoder().encode(head));
    const buf = new Uint8Array(4096);
    const interim = new TextDecoder().decode(buf.subarray(0, (await conn!.read(buf)) ?? 0));
    assert.match(interim, /^HTTP\/1\.1 100 /);
    await conn!.write(new TextEncoder().encode(body));
    let answer = "";
    while (!answer.includes('"got"')) {
      const n = await conn!.read(buf);
      if (n === null) break;
      answer += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert.match(answer, /^HTTP\/1\.1 200 [^]*\{"status":"ok","data":\{"got":\{"x":1\}\}\}/);
  } finally {
    closeAll([conn!]);
    await server.close();
  }
});

Deno.test("the control API turns a newcomer away when every connection has a request in flight", async () => {
  const waiting = new Set<() => void>();
  const routes: Routes = {
    "GET /v1/hold": (req) =>
      new Promise((resolve) => {
        const done = () => {
          waiting.delete(done);
          resolve(null);
        };
        waiting.add(done);
        req.signal.addEventListener("abort", done, { once: true });
      }),
  };
  const server = await startControlServer(routes, TOKEN, { limits: { maxConnections: 4 } });
  const ac = new AbortController();
  try {
    const held = Array.from(
      { length: 4 },
      () => authed(`${server.url}/v1/hold`, { signal: ac.signal }).catch(() => null),
    );
    await waitFor("four requests in flight", () => waiting.size === 4, 10_000);
    const turned = await authed(`${server.url}/v1/health`, {
      signal: AbortSignal.timeout(5_000),
    }).then(() => "answered", (e) => (e as Error).name);
    assert.equal(turned, "TypeError", "the fifth connection is closed, not queued");
    assert.equal(server.stats().drops.full >= 1, true);
    assert.equal(waiting.size, 4, "the requests in flight are untouched");
    ac.abort();
    await Promise.all(held);
  } finally {
    ac.abort();
    for (const w of [...waiting]) w();
    await server.close();
  }
});

const ENDINGS: [string, string][] = [
  ["rejection", "boom from a promise"],
  ["error", "boom from a timer"],
];
for (const [how, said] of ENDINGS) {
  Deno.test(`an unhandled ${how} reaches the daemon log with its stack and removes the control file`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "pilot-test-" });
    try {
      const [log, control] = [join(dir, "daemon.log"), join(dir, "control.json")];
      const child = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--config", CONFIG, LAST_WORDS_CHILD, log, control, how],
        stdout: "null",
        stderr: "null",
      }).output();
      assert.notEqual(child.code, 0);
      const text = await Deno.readTextFile(log);
      assert.match(text, new RegExp(`fatal: unhandled ${how}|fatal: uncaught error`));
      assert.match(text, new RegExp(`${said}\\n +at `), "the log has the stack");
      await assert.rejects(Deno.stat(control), Deno.errors.NotFound);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("Deno.exit in the daemon removes the control file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pilot-test-" });
  try {
    const [log, control] = [join(dir, "daemon.log"), join(dir, "control.json")];
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", CONFIG, LAST_WORDS_CHILD, log, control, "exit"],
    }).output();
    assert.equal(child.code, 3);
    await assert.rejects(Deno.stat(control), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a daemon limited to 1,024 descriptors survives 1,100 idle connections and answers info within a second", async () => {
  await using node = await startNode({ config: { timers: { control_header_timeout_ms: 1_000 } } });
  const lowered = await new Deno.Command("prlimit", {
    args: ["--pid", String(node.pid), "--nofile=1024:1024"],
  }).output();
  assert(lowered.success, new TextDecoder().decode(lowered.stderr));
  const { url, token } = await node.controlFile();
  const conns = await idleConnections(url, 1_100);
  try {
    const started = performance.now();
    const res = await fetch(`${url}/v1/info`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5_000),
    });
    assert.equal((await res.json()).status, "ok");
    assert.ok(performance.now() - started < 1_000, `info took ${performance.now() - started} ms`);
    // Half-open connections are gone after the (shortened) header timeout.
    const closed = await Promise.all(conns.map((c) => closedByServer(c, 10_000)));
    assert.equal(closed.filter((c) => !c).length, 0, "connections left open after 10 s");
  } finally {
    closeAll(conns);
  }
  assert.equal((await node.info()).address, node.identity?.address);
});

Deno.test({
  name:
    "the daemon runs with its descriptor limit raised to the hard limit (Linux: read from /proc)",
  ignore: Deno.build.os !== "linux",
}, async () => {
  const probe = await new Deno.Command("sh", { args: ["-c", "ulimit -H -n"], stdout: "piped" })
    .output();
  const hard = Number(new TextDecoder().decode(probe.stdout).trim());
  // Started from a shell whose soft limit is low, as a user's login shell may have it.
  const soft = Math.min(512, hard);
  const home = await makeHome();
  const node = new TestNode(home);
  try {
    const env = Deno.env.toObject();
    for (const k of Object.keys(env)) if (k.startsWith("PILOT_")) delete env[k];
    const out = await new Deno.Command("sh", {
      args: [
        "-c",
        `ulimit -S -n ${soft} && exec "$0" run --allow-all --config "$1" "$2" --home "$3" ` +
        "daemon start --listen 127.0.0.1:0 --json",
        Deno.execPath(),
        fileURLToPath(new URL("../deno.json", import.meta.url)),
        fileURLToPath(new URL("../main.ts", import.meta.url)),
        home,
      ],
      clearEnv: true,
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const started = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(started.status, "ok", new TextDecoder().decode(out.stderr));
    const limits = await Deno.readTextFile(`/proc/${started.data.pid}/limits`);
    const row = limits.split("\n").find((l) => l.startsWith("Max open files"))!;
    const [daemonSoft, daemonHard] = row.split(/\s+/).slice(3, 5).map(Number);
    assert.equal(daemonHard, hard);
    assert.equal(daemonSoft, hard, `soft limit ${daemonSoft}, started under ${soft}: ${row}`);
  } finally {
    await node.stop();
  }
});
