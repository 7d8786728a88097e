/**
 * The background daemon's log with real daemons: one line per meaningful
 * event (start, trust asked, given and revoked; a stranger's session and a
 * received message at debug only), a summary of dropped junk, JSON lines with
 * `--log-format json`, and a refused unknown level.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  establishTrust,
  okOf,
  runPilot,
  startNode,
  stopAll,
  type TestNode,
  waitFor,
} from "./_daemon_harness.ts";
import { tempDir } from "./_tmp.ts";

async function logText(node: TestNode): Promise<string> {
  return await Deno.readTextFile(join(node.home, "daemon.log")).catch(() => "");
}

// deno-lint-ignore no-explicit-any
async function jsonLines(node: TestNode): Promise<any[]> {
  const text = (await logText(node)).trimEnd();
  return text === "" ? [] : text.split("\n").map((l) => JSON.parse(l));
}

Deno.test("the daemon logs peers, trust, messages at debug and drop summaries", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    // A: defaults (text, info). B: JSON lines at debug, drops summarised every 300 ms.
    a = await startNode({ identity: 0, hostname: "alpha" });
    b = await startNode({
      identity: 1,
      hostname: "bravo",
      args: ["--log-format", "json", "--log-level", "debug"],
      config: { timers: { drop_summary_ms: 300 } },
    });
    await establishTrust(a, b, b.listen);
    okOf(await a.pilot("send", "bravo", "--data", "hi", "--json"), "send");
    okOf(await b.pilot("send", "alpha", "--data", "hello", "--json"), "send");
    // Junk from a stranger: no valid outer frame, dropped before any crypto.
    const port = Number(b.listen.split(":").at(-1));
    const udp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      for (let i = 0; i < 40; i++) {
        await udp.send(new Uint8Array([0xff, i]), {
          transport: "udp",
          hostname: "127.0.0.1",
          port,
        });
      }
    } finally {
      udp.close();
    }
    okOf(await b.pilot("untrust", "alpha", "--json"), "untrust");

    const bLines = await waitFor("B's drop summary", async () => {
      const lines = await jsonLines(b!);
      return lines.some((l) => l.event === "drops") ? lines : undefined;
    });
    const events = bLines.map((l) => l.event);
    for (const e of ["daemon.started", "trust.requested", "trust.approved", "peer.up"]) {
      assert.ok(events.includes(e), `B logs ${e}: ${events.join(", ")}`);
    }
    assert.ok(events.includes("message.received"), "at debug, B logs the message it received");
    assert.ok(events.includes("trust.revoked"), events.join(", "));
    for (const l of bLines) {
      assert.ok(["error", "warn", "info", "debug"].includes(l.level), JSON.stringify(l));
      assert.equal(typeof l.msg, "string");
      assert.ok(!Number.isNaN(Date.parse(l.time)), l.time);
    }
    const requested = bLines.find((l) => l.event === "trust.requested");
    assert.equal(requested.peer.hostname, "alpha");
    assert.match(requested.msg, /^alpha \(\S+\) asks for trust: "test"$/);
    const dropped = bLines.filter((l) => l.event === "drops")
      .reduce((n, l) => n + (l.by_reason.malformed ?? 0), 0);
    assert.equal(dropped, 40, "each junk datagram counted once, as malformed");

    // A at info in text: peer and trust lines, never the message it received.
    const aText = await waitFor("A to hear the revoke", async () => {
      const t = await logText(a!);
      return t.includes("trust.revoked") ? t : undefined;
    });
    assert.match(aText, /^\S+Z INFO {2}daemon\.started: pilot \S+ node \S+ udp 127\.0\.0\.1:\d+ /m);
    assert.match(
      aText,
      /^\S+Z INFO {2}trust\.approved: bravo \(\S+\) approved our trust request$/m,
    );
    assert.match(aText, /^\S+Z INFO {2}trust\.revoked: bravo \(\S+\) stopped trusting this node$/m);
    // The session came up before trust: a stranger's session is logged at debug only.
    assert.doesNotMatch(aText, /peer\.up/);
    assert.doesNotMatch(aText, /message\.received/);
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("an unknown --log-level or log_level is refused with the levels, before anything starts", async () => {
  await using home = await tempDir();
  const flag = await runPilot(
    ["daemon", "start", "--listen", "127.0.0.1:0", "--log-level", "loud", "--json"],
    { home: home.path },
  );
  assert.equal(flag.code, 2, flag.stdout + flag.stderr);
  assert.equal(flag.json.code, "invalid_argument");
  assert.match(flag.json.message, /Unknown log level "loud" \(--log-level\)/);
  assert.match(flag.json.hint, /error, warn, info, debug/);
  const set = await runPilot(["config", "set", "log_format", "xml", "--json"], {
    home: home.path,
  });
  assert.equal(set.code, 2, set.stdout + set.stderr);
  assert.match(set.json.message, /Unknown log format "xml"/);
  const ok = await runPilot(["config", "set", "log_level", "warn", "--json"], { home: home.path });
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.deepEqual(
    JSON.parse(await Deno.readTextFile(join(home.path, "config.json"))),
    { log_level: "warn" },
  );
});
