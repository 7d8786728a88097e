/**
 * Every command the catalog publishes, run where it succeeds, against the
 * output schema `pilot help --json` gives for it; and every error met on the
 * way, against the error shape and the published exit-code table.
 */
import assert from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { type Schema, validate } from "../src/control/schema.ts";
import {
  fixture,
  listenReady,
  makeHome,
  PAIR_A_NAME,
  PAIR_B_NAME,
  type PilotResult,
  runPilot,
  spawnPilot,
  startNode,
  stopAll,
  TestNode,
  trustEntry,
  waitFor,
} from "./_daemon_harness.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

interface CatalogEntry {
  name: string;
  output: Schema;
  errors: string[];
}

interface Catalog {
  commands: CatalogEntry[];
  errors: Record<string, { exit_code: number; http_status: number; retryable: boolean }>;
}

let catalogCache: Promise<Catalog> | undefined;

function catalog(): Promise<Catalog> {
  catalogCache ??= runPilot(["help", "--json"]).then((r) => {
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return r.json.data as Catalog;
  });
  return catalogCache;
}

async function entry(name: string): Promise<CatalogEntry> {
  const e = (await catalog()).commands.find((c) => c.name === name);
  assert.ok(e, `the catalog lists "${name}"`);
  return e;
}

/** DESIGN.md's exit-code table: 2 usage, 3 not_running, 4 trust errors, 5 retryable, else 1. */
function designExit(code: string): number {
  if (code === "invalid_argument") return 2;
  if (code === "not_running") return 3;
  if (["not_trusted", "pending_approval", "rejected", "key_changed"].includes(code)) return 4;
  if (["timeout", "unreachable", "rate_limited"].includes(code)) return 5;
  return 1;
}

/**
 * Checks `r` succeeded and its data matches `name`'s published schema, with
 * no field the schema does not list; returns the data.
 */
// deno-lint-ignore no-explicit-any
async function okSchema(seen: Set<string>, name: string, r: PilotResult): Promise<any> {
  assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
  assert.equal(r.json?.status, "ok", `${name}: ${r.stdout}`);
  assert.deepEqual(Object.keys(r.json).sort(), ["data", "status"], name);
  assert.equal(r.stdout.trimEnd().split("\n").length, 1, `${name}: one JSON line`);
  const errors = validate((await entry(name)).output, r.json.data, { closed: true });
  assert.deepEqual(errors, [], `${name}: ${r.stdout}`);
  seen.add(name);
  return r.json.data;
}

/** Checks `r` is the error JSON for `code`, with the exit code both tables give. */
async function errorShape(
  seen: Set<string>,
  name: string,
  r: PilotResult,
  code: string,
): Promise<void> {
  const what = `${name} -> ${code}`;
  assert.ok(r.json !== undefined, `${what}: stdout is JSON: ${r.stdout}${r.stderr}`);
  assert.equal(r.stdout.trimEnd().split("\n").length, 1, `${what}: one JSON line`);
  assert.deepEqual(Object.keys(r.json).sort(), [
    "code",
    "hint",
    "message",
    "request_id",
    "retryable",
    "status",
  ], what);
  assert.equal(r.json.status, "error", what);
  assert.equal(r.json.code, code, `${what}: ${r.json.message}`);
  assert.equal(typeof r.json.message, "string", what);
  assert.ok(r.json.message.length > 0 && !r.json.message.includes("\n"), `${what}: one line`);
  assert.equal(typeof r.json.hint, "string", what);
  assert.equal(typeof r.json.request_id, "string", what);
  const published = (await catalog()).errors[code];
  assert.ok(published, `${what}: the code is published`);
  assert.equal(r.code, designExit(code), `${what}: exit code per DESIGN.md (${r.stdout})`);
  assert.equal(r.code, published.exit_code, `${what}: exit code per the catalog`);
  assert.equal(r.json.retryable, published.retryable, `${what}: retryable per the catalog`);
  assert.ok((await entry(name)).errors.includes(code), `${what}: listed in ${name}'s errors`);
  seen.add(code);
}

/**
 * Waits until `node`'s daemon (or rendezvous), started in the foreground as
 * `child`, says it runs; fails at once, with its output, if it exits first.
 */
async function waitForForeground(
  what: string,
  node: TestNode,
  child: Deno.ChildProcess,
): Promise<void> {
  let exited = false;
  child.status.then(() => exited = true);
  await waitFor(what, async () => {
    if (exited) {
      const out = await child.output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      throw new Error(`${what} exited at start (code ${out.code}): ${text.trim()}`);
    }
    const s = await node.pilot("daemon", "status", "--json");
    return s.json?.data?.running === true;
  }, 30_000);
}

/** A loopback UDP port where nothing listens. */
function silentEndpoint(): string {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (s.addr as Deno.NetAddr).port;
  s.close();
  return `127.0.0.1:${port}`;
}

Deno.test("every command in pilot help --json succeeds with --json data matching its published schema", async () => {
  const seen = new Set<string>();
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let c: TestNode | undefined;
  let fg: TestNode | undefined;
  let foreground: Deno.ChildProcess | undefined;
  try {
    await okSchema(seen, "help", await runPilot(["help", "--json"]));
    await okSchema(seen, "help", await runPilot(["help", "send", "--json"]));
    // The boot service, written into a temporary folder (--dir: systemctl is never asked).
    {
      const dir = await Deno.makeTempDir({ prefix: "pilot-test-service-" });
      try {
        const svc = (...args: string[]) =>
          runPilot(["service", ...args, "--dir", `${dir}/units`, "--json"], {
            home: `${dir}/home`,
          });
        await okSchema(seen, "service status", await svc("status"));
        await okSchema(seen, "service install", await svc("install"));
        await okSchema(seen, "service status", await svc("status"));
        await okSchema(seen, "service uninstall", await svc("uninstall"));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    }
    await okSchema(seen, "version", await runPilot(["version", "--json"]));
    // config.json, read and edited without a daemon (fixture 3's home, before it starts).
    {
      const home = await makeHome({ identity: 3 });
      try {
        await okSchema(
          seen,
          "config set",
          await runPilot(["config", "set", "lan", "false", "--json"], { home }),
        );
        await okSchema(
          seen,
          "config get",
          await runPilot(["config", "get", "lan", "--json"], { home }),
        );
        await okSchema(seen, "config list", await runPilot(["config", "list", "--json"], { home }));
        await okSchema(
          seen,
          "config unset",
          await runPilot(["config", "unset", "lan", "--json"], { home }),
        );
      } finally {
        await Deno.remove(home, { recursive: true });
      }
    }

    // The foreground daemon prints its result when it stops.
    fg = new TestNode(await makeHome({ identity: 3 }), { identity: 3 });
    await errorShape(
      new Set(), // the first test's set is of commands, not codes
      "daemon status",
      await fg.pilot("daemon", "status", "--json"),
      "not_running",
    );
    await okSchema(seen, "daemon stop", await fg.pilot("daemon", "stop", "--json"));
    foreground = spawnPilot(["daemon", "--listen", "127.0.0.1:0", "--json"], { home: fg.home });
    await waitForForeground("the foreground daemon", fg, foreground);
    const running = await okSchema(
      seen,
      "daemon status",
      await fg.pilot("daemon", "status", "--json"),
    );
    assert.equal(running.running, true);
    await okSchema(seen, "daemon stop", await fg.pilot("daemon", "stop", "--json"));
    const out = await foreground.output();
    foreground = undefined;
    await okSchema(seen, "daemon", {
      code: out.code,
      stdout: new TextDecoder().decode(out.stdout),
      stderr: new TextDecoder().decode(out.stderr),
      json: JSON.parse(new TextDecoder().decode(out.stdout)),
    });

    // So does a foreground rendezvous.
    foreground = spawnPilot(["rendezvous", "--listen", "127.0.0.1:0", "--json"], {
      home: fg.home,
    });
    await waitForForeground("the foreground rendezvous", fg, foreground);
    await okSchema(seen, "daemon stop", await fg.pilot("daemon", "stop", "--json"));
    const rendezvousOut = await foreground.output();
    foreground = undefined;
    await okSchema(seen, "rendezvous", {
      code: rendezvousOut.code,
      stdout: new TextDecoder().decode(rendezvousOut.stdout),
      stderr: new TextDecoder().decode(rendezvousOut.stderr),
      json: JSON.parse(new TextDecoder().decode(rendezvousOut.stdout)),
    });
    // And in the background.
    await errorShape(
      new Set(), // the first test's set is of commands, not codes
      "rendezvous status",
      await fg.pilot("rendezvous", "status", "--json"),
      "not_running",
    );
    const started = await okSchema(
      seen,
      "rendezvous start",
      await fg.pilot("rendezvous", "start", "--listen", "127.0.0.1:0", "--json"),
    );
    assert.equal(started.changed, true);
    const serving = await okSchema(
      seen,
      "rendezvous status",
      await fg.pilot("rendezvous", "status", "--json"),
    );
    assert.deepEqual([serving.running, serving.records, serving.relayed_bytes], [true, 0, 0]);
    await okSchema(seen, "rendezvous stop", await fg.pilot("rendezvous", "stop", "--json"));

    b = new TestNode(await makeHome({ identity: 1 }), { identity: 1, hostname: PAIR_B_NAME });
    await okSchema(seen, "daemon start", await b.start());
    a = new TestNode(await makeHome({ identity: 0 }), {
      identity: 0,
      hostname: PAIR_A_NAME,
      args: ["--peer", `${PAIR_B_NAME}=${b.listen}`],
    });
    await okSchema(seen, "daemon start", await a.start());
    c = await startNode({ identity: 2 });
    const ensured = await okSchema(
      seen,
      "daemon start",
      await a.pilot("daemon", "start", "--ensure", "--listen", "127.0.0.1:0", "--json"),
    );
    assert.equal(ensured.changed, false);
    await okSchema(seen, "daemon status", await a.pilot("daemon", "status", "--json"));
    await okSchema(seen, "info", await a.pilot("info", "--json"));
    // A background daemon writes HOME/daemon.log.
    await okSchema(seen, "logs", await a.pilot("logs", "--lines", "5", "--json"));
    await okSchema(seen, "peers", await a.pilot("peers", "--json"));
    await okSchema(seen, "connect", await a.pilot("connect", PAIR_B_NAME, "--json"));

    const asked = await okSchema(
      seen,
      "handshake",
      await a.pilot("handshake", PAIR_B_NAME, "--reason", "schema", "--json"),
    );
    assert.equal(asked.status, "pending");
    const pending = await okSchema(seen, "pending", await b.pilot("pending", "--json"));
    assert.equal(pending.pending.length, 1);
    await okSchema(seen, "approve", await b.pilot("approve", PAIR_A_NAME, "--json"));
    await waitFor(
      "A to trust B",
      async () => (await a!.pilot("trust", "--json")).json?.data?.trusted?.length === 1,
    );
    await okSchema(seen, "trust", await a.pilot("trust", "--json"));
    await okSchema(seen, "trust", await b.pilot("trust", "--json"));
    const glance = await okSchema(seen, "status", await a.pilot("status", "--json"));
    assert.ok(glance.peers.length >= 1, "a non-empty status peer list was checked");
    await okSchema(seen, "events", await a.pilot("events", "--json"));
    await okSchema(seen, "completion", await a.pilot("completion", "bash", "--json"));
    const completed = await okSchema(
      seen,
      "completion peers",
      await a.pilot("completion", "peers", "--json"),
    );
    assert.ok(completed.names.includes(PAIR_B_NAME), JSON.stringify(completed));
    await okSchema(
      seen,
      "handshake",
      await a.pilot("handshake", PAIR_B_NAME, "--wait", "--timeout", "5s", "--json"),
    );

    // C has no hostname: the nullable branches of the schemas.
    await okSchema(seen, "handshake", await c.pilot("handshake", b.listen, "--json"));
    await okSchema(seen, "pending", await b.pilot("pending", "--json"));
    const rejected = await okSchema(
      seen,
      "reject",
      await b.pilot("reject", c.identity!.fingerprint, "--reason", "no", "--json"),
    );
    assert.equal(rejected.status, "rejected");

    await okSchema(
      seen,
      "ping",
      await a.pilot("ping", PAIR_B_NAME, "--count", "2", "--interval", "50ms", "--json"),
    );

    // Datagrams are unreliable: repeat until the receiver has one.
    const recv = b.pilot("recv", "4000", "--count", "1", "--timeout", "20s", "--json");
    let received: PilotResult | undefined;
    recv.then((r) => received = r);
    let sent: PilotResult | undefined;
    while (received === undefined) {
      sent = await a.pilot("dgram", PAIR_B_NAME, "4000", "--data", "datagram", "--json");
      await new Promise((r) => setTimeout(r, 100));
    }
    await okSchema(seen, "dgram", sent!);
    const got = await okSchema(seen, "recv", await recv);
    assert.equal(got.datagrams.length, 1);

    // A stream: a command on the worker answers one request from the orchestrator.
    const listening = await listenReady(b, [
      "9000",
      "--exec",
      "tr a-z A-Z",
      "--count",
      "1",
      "--timeout",
      "20s",
      "--json",
    ]);
    const streamed = await a.pilot("connect", PAIR_B_NAME, "9000", "--message", "shout", "--json");
    const reply = await okSchema(seen, "connect", streamed);
    assert.equal(new TextDecoder().decode(Uint8Array.fromBase64(reply.reply)), "SHOUT");
    await okSchema(seen, "listen", await listening.done);
    const bench = await okSchema(
      seen,
      "bench",
      await a.pilot("bench", PAIR_B_NAME, "--size", "1", "--json"),
    );
    assert.equal(bench.sha256_verified, true);

    // Files: sent, listed, taken off the list.
    const dir = await Deno.makeTempDir({ prefix: "pilot-test-file-" });
    try {
      const path = `${dir}/report.txt`;
      await Deno.writeTextFile(path, "quarterly numbers\n");
      const file = await okSchema(
        seen,
        "send-file",
        await a.pilot("send-file", PAIR_B_NAME, path, "--json"),
      );
      assert.equal(file.receipt.status, "stored");
      const files = await okSchema(seen, "received", await b.pilot("received", "--json"));
      assert.equal(files.files.length, 1);
      await okSchema(
        seen,
        "received ack",
        await b.pilot("received", "ack", files.files[0].id, "--json"),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }

    // Request/reply: the worker answers the call while the orchestrator waits.
    const calling = a.pilot(
      "call",
      PAIR_B_NAME,
      "--data",
      "2+2",
      "--id",
      "calc-1",
      "--timeout",
      "20s",
      "--json",
    );
    let answered: PilotResult | undefined;
    for (let i = 0; i < 100 && answered?.code !== 0; i++) {
      answered = await b.pilot("reply", "calc-1", "--data", "4", "--json");
      if (answered.code !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    await okSchema(seen, "reply", answered!);
    const called = await okSchema(seen, "call", await calling);
    assert.equal(called.reply.data, "4");
    // Pub/sub: a subscriber prints NDJSON lines, each matching the published line schema.
    const subscribing = a.pilot(
      "subscribe",
      PAIR_B_NAME,
      "jobs.*",
      "--count",
      "1",
      "--timeout",
      "20s",
      "--json",
    );
    let published: PilotResult | undefined;
    for (let i = 0; i < 50; i++) {
      published = await a.pilot("publish", PAIR_B_NAME, "jobs.nightly", "--data", "go", "--json");
      if (published.json?.data?.delivered === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await okSchema(seen, "publish", published!);
    const sub = await subscribing;
    assert.equal(sub.code, 0, sub.stderr);
    const lines = sub.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.kind === "event" && l.topic === "jobs.nightly"));
    for (const l of lines) {
      assert.deepEqual(validate((await entry("subscribe")).output, l, { closed: true }), []);
    }
    seen.add("subscribe");
    const conns = await okSchema(seen, "connections", await a.pilot("connections", "--json"));
    // (Which streams are still listed depends on timing; the schema is what counts here.)
    assert.ok(Array.isArray(conns.connections));
    // Tunnels: A exposes a port (nothing needs to listen behind it), B forwards to it.
    await okSchema(seen, "expose", await a.pilot("expose", "9", "--as", "8080", "--json"));
    const fwd = await okSchema(
      seen,
      "forward",
      await b.pilot("forward", "0", PAIR_A_NAME, "8080", "--json"),
    );
    const listed = await okSchema(seen, "tunnels", await a.pilot("tunnels", "--json"));
    assert.equal(listed.exposed.length, 1, "a non-empty tunnel list was checked");
    await okSchema(seen, "tunnels", await b.pilot("tunnels", "--json"));
    const port = String(fwd.forward.local_port);
    await okSchema(seen, "unforward", await b.pilot("unforward", port, "--json"));
    await okSchema(seen, "unexpose", await a.pilot("unexpose", "8080", "--json"));

    const sentMessage = await okSchema(
      seen,
      "send",
      await a.pilot("send", PAIR_B_NAME, "--data", '{"a":1}', "--type", "json", "--json"),
    );
    await okSchema(
      seen,
      "send",
      await a.pilot("send", PAIR_B_NAME, "--data", "AAE=", "--type", "binary", "--json"),
    );
    await okSchema(
      seen,
      "send",
      await a.pilot("send-message", PAIR_B_NAME, "--data", "x", "--id", "dup", "--json"),
    );
    await okSchema(
      seen,
      "send",
      await a.pilot("send", PAIR_B_NAME, "--data", "x", "--id", "dup", "--json"),
    );
    const inbox = await okSchema(seen, "inbox", await b.pilot("inbox", "--json"));
    assert.ok(inbox.messages.some((m: { id: string }) => m.id === sentMessage.id));
    await okSchema(seen, "inbox ack", await b.pilot("inbox", "ack", sentMessage.id, "--json"));
    await okSchema(seen, "outbox", await a.pilot("outbox", "--json"));
    await okSchema(seen, "outbox cancel", await a.pilot("outbox", "cancel", "none", "--json"));
    // A task through every command: given, listed, accepted, reported on, finished, waited for.
    const task = ["t-schema", "--json"] as const;
    await okSchema(
      seen,
      "task submit",
      await a.pilot("task", "submit", PAIR_B_NAME, "--data", "x", "--id", "t-schema", "--json"),
    );
    await okSchema(seen, "task list", await b.pilot("task", "list", "--wait", "--json"));
    await okSchema(seen, "task accept", await b.pilot("task", "accept", ...task));
    await okSchema(
      seen,
      "task progress",
      await b.pilot("task", "progress", "t-schema", "--data", "1/2", "--json"),
    );
    await okSchema(
      seen,
      "task result",
      await b.pilot("task", "result", "t-schema", "--data", "ok", "--json"),
    );
    await okSchema(seen, "task wait", await a.pilot("task", "wait", ...task));
    await okSchema(seen, "task status", await a.pilot("task", "status", ...task));
    await okSchema(
      seen,
      "task submit",
      await a.pilot("task", "submit", PAIR_B_NAME, "--data", "y", "--id", "t-decline", "--json"),
    );
    await okSchema(
      seen,
      "task decline",
      await b.pilot("task", "decline", "t-decline", "--reason", "busy", "--json"),
    );
    await okSchema(seen, "inbox", await b.pilot("inbox", "--clear", "--json"));
    await okSchema(
      seen,
      "inbox",
      await b.pilot("inbox", "--wait", "--timeout", "200ms", "--json"),
    );

    const added = await okSchema(
      seen,
      "peer add",
      await a.pilot("peer", "add", PAIR_B_NAME, b.listen, "--json"),
    );
    assert.deepEqual([added.changed, added.trusted.length], [false, 1]);
    await okSchema(seen, "peer list", await a.pilot("peer", "list", "--json"));
    // Trusted, configured and in session: every local source, no rendezvous asked.
    const found = await okSchema(seen, "find", await a.pilot("find", PAIR_B_NAME, "--json"));
    assert.deepEqual(
      [found.candidates[0].sources, found.candidates[0].reachability],
      [["trust", "static", "session"], "session"],
    );
    await okSchema(seen, "peer remove", await a.pilot("peer", "remove", "nobody", "--json"));
    const hook = "http://127.0.0.1:9/pilot";
    await okSchema(
      seen,
      "webhook add",
      await a.pilot("webhook", "add", hook, "--event", "task.*", "--secret", "s", "--json"),
    );
    const hooks = await okSchema(seen, "webhook list", await a.pilot("webhook", "list", "--json"));
    assert.equal(hooks.webhooks.length, 1, "a non-empty webhook list was checked");
    await okSchema(seen, "webhook remove", await a.pilot("webhook", "remove", hook, "--json"));
    await okSchema(seen, "untrust", await a.pilot("untrust", PAIR_B_NAME, "--json"));
    await okSchema(seen, "untrust", await a.pilot("untrust", fixture(6).address, "--json"));
    const peers = await okSchema(seen, "peers", await b.pilot("peers", "--json"));
    assert.ok(peers.peers.length >= 1, "a non-empty peer list was checked");
    await okSchema(seen, "info", await b.pilot("info", "--json"));
    await okSchema(seen, "daemon stop", await a.pilot("daemon", "stop", "--json"));
    await errorShape(
      new Set(), // the first test's set is of commands, not codes
      "daemon status",
      await a.pilot("daemon", "status", "--json"),
      "not_running",
    );

    // `mcp` speaks MCP on stdout, not the envelope: a tool's data is its route's, as published.
    const mcp = new Client({ name: "cli-schema-test", version: "1" });
    await mcp.connect(
      new StdioClientTransport({
        command: Deno.execPath(),
        args: ["run", "--allow-all", "--config", CONFIG, MAIN, "mcp", "--home", b.home],
        stderr: "pipe",
      }),
    );
    try {
      const info = await mcp.callTool({ name: "pilot_info", arguments: {} });
      const [content] = info.content as { text: string }[];
      const data = JSON.parse(content!.text).data;
      assert.deepEqual(validate((await entry("info")).output, data, { closed: true }), []);
      seen.add("mcp");
    } finally {
      await mcp.close();
    }

    const names = (await catalog()).commands.map((e) => e.name).sort();
    assert.deepEqual([...seen].sort(), names, "every published command was run and checked");
  } finally {
    if (foreground !== undefined) {
      try {
        foreground.kill("SIGKILL");
      } catch {
        // It exited already (the failure being reported may be why).
      }
      await foreground.output().catch(() => {});
    }
    await stopAll(a, b, c, fg);
  }
});

Deno.test("every error met prints the error JSON on stdout with the published exit code", async () => {
  const seen = new Set<string>();
  const stopped = new TestNode(await makeHome({ identity: 7 }), { identity: 7 });
  let a: TestNode | undefined;
  let twin1: TestNode | undefined;
  let twin2: TestNode | undefined;
  let impostor: TestNode | undefined;
  try {
    // No daemon.
    for (
      const [name, args] of [
        ["info", ["info"]],
        ["status", ["status"]],
        ["daemon status", ["daemon", "status"]],
        ["rendezvous status", ["rendezvous", "status"]],
        ["pending", ["pending"]],
        ["trust", ["trust"]],
        ["inbox", ["inbox"]],
        ["send", ["send", "x-node", "--data", "x"]],
        ["handshake", ["handshake", "x-node"]],
      ] as const
    ) {
      await errorShape(seen, name, await stopped.pilot(...args, "--json"), "not_running");
    }

    twin1 = await startNode({ identity: 2, hostname: "twin" });
    twin2 = await startNode({ identity: 3, hostname: "twin" });
    impostor = await startNode({ identity: 4, hostname: "x-node" });
    a = await startNode({
      identity: 0,
      hostname: "node-a",
      trust: [trustEntry(5, { hostname: "x-node", mutual: true })],
      args: ["--peer", `x-node=${impostor.listen}`],
    });

    // Usage.
    const usage: [string, string[]][] = [
      ["send", ["send", "twin"]],
      ["send", ["send", twin1.listen, "--data", "{", "--type", "json"]],
      ["send", ["send", twin1.listen, "--data", "x", "--type", "xml"]],
      ["inbox", ["inbox", "--clear", "--from", "twin"]],
      ["inbox", ["inbox", "--limit", "many"]],
      ["recv", ["recv", "0"]],
      ["dgram", ["dgram", twin1.listen, "70000", "--data", "x"]],
      ["handshake", ["handshake", "not a peer!"]],
      ["approve", ["approve"]],
      ["find", ["find", twin1.listen]],
    ];
    for (const [name, args] of usage) {
      await errorShape(seen, name, await a.pilot(...args, "--json"), "invalid_argument");
    }

    // Trust errors: exit 4.
    await errorShape(
      seen,
      "send",
      await a.pilot("send", twin1.listen, "--data", "x", "--json"),
      "not_trusted",
    );
    await errorShape(
      seen,
      "dgram",
      await a.pilot("dgram", twin1.listen, "4000", "--data", "x", "--json"),
      "not_trusted",
    );
    await errorShape(
      seen,
      "ping",
      await a.pilot("ping", twin1.listen, "--count", "1", "--json"),
      "not_trusted",
    );
    await errorShape(
      seen,
      "handshake",
      await a.pilot("handshake", "x-node", "--timeout", "5s", "--json"),
      "key_changed",
    );
    await errorShape(
      seen,
      "connect",
      await a.pilot("connect", "x-node", "--timeout", "5s", "--json"),
      "key_changed",
    );

    // Retryable: exit 5.
    const silent = silentEndpoint();
    await errorShape(
      seen,
      "connect",
      await a.pilot("connect", silent, "--timeout", "300ms", "--json"),
      "unreachable",
    );
    await errorShape(
      seen,
      "handshake",
      await a.pilot("handshake", silent, "--timeout", "300ms", "--json"),
      "unreachable",
    );

    // Other errors: exit 1.
    await errorShape(
      seen,
      "approve",
      await a.pilot("approve", fixture(6).fingerprint, "--json"),
      "not_found",
    );
    await errorShape(
      seen,
      "reject",
      await a.pilot("reject", fixture(6).fingerprint, "--json"),
      "not_found",
    );
    await errorShape(
      seen,
      "handshake",
      await a.pilot("handshake", twin1.listen, "--reason", "r".repeat(1025), "--json"),
      "too_large",
    );
    await errorShape(
      seen,
      "dgram",
      await a.pilot("dgram", twin1.listen, "4000", "--data", "x".repeat(1400), "--json"),
      "too_large",
    );
    await errorShape(
      seen,
      "daemon start",
      await a.pilot("daemon", "start", "--listen", "127.0.0.1:0", "--json"),
      "already_running",
    );
    for (const t of [twin1, twin2]) {
      const r = await t.pilot("handshake", a.listen, "--json");
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    // Two pending requests both call themselves "twin": naming one is a conflict.
    await errorShape(seen, "approve", await a.pilot("approve", "twin", "--json"), "conflict");
    // A hostname claimed on an untrusted session is never followed.
    await errorShape(seen, "connect", await a.pilot("connect", "twin", "--json"), "not_found");
    await errorShape(seen, "handshake", await a.pilot("handshake", "twin", "--json"), "not_found");
    await errorShape(seen, "find", await a.pilot("find", "twin", "--json"), "not_found");
    // Two receivers on one port: whichever binds second is refused.
    const both = await Promise.all(
      [1, 2].map(() => a!.pilot("recv", "4001", "--timeout", "2s", "--json")),
    );
    const refused = both.filter((r) => r.json?.status === "error");
    assert.equal(refused.length, 1, both.map((r) => r.stdout).join(""));
    await errorShape(seen, "recv", refused[0]!, "conflict");
    assert.equal(both.find((r) => r.json?.status === "ok")?.json.data.timed_out, true);

    // Human output of an error: one line and a hint on stderr, nothing on stdout.
    const human = await a.pilot("send", twin1.listen, "--data", "x");
    assert.equal(human.code, 4);
    assert.equal(human.stdout, "");
    assert.match(human.stderr, /^error: .*\nhint: /);

    assert.deepEqual([...seen].sort(), [
      "already_running",
      "conflict",
      "invalid_argument",
      "key_changed",
      "not_found",
      "not_running",
      "not_trusted",
      "too_large",
      "unreachable",
    ]);
  } finally {
    await stopAll(stopped, a, twin1, twin2, impostor);
  }
});
