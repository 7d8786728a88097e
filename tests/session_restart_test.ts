/**
 * Real daemons: a survivor reaches a peer that was killed with -9 and
 * restarted on the same endpoint within seconds (the session layer notices
 * the silence and handshakes again), and a handshake with the node's own
 * endpoint is refused instead of leaving a session with itself.
 */

import assert from "node:assert/strict";
import {
  establishTrust,
  okOf,
  PAIR_B_NAME,
  startNode,
  startPair,
  type TestNode,
  waitFor,
} from "./_daemon_harness.ts";

Deno.test("a survivor sends to a peer restarted after kill -9 within seconds, over a new session", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  await establishTrust(a, b, PAIR_B_NAME);
  okOf(await a.pilot("send", PAIR_B_NAME, "--data", "before", "--json"), "send before");

  const pid = (await b.controlFile()).pid;
  Deno.kill(pid, "SIGKILL");
  await waitFor("the killed daemon to exit", async () => {
    try {
      return !(await Deno.readTextFile(`/proc/${pid}/cmdline`)).includes(b.home);
    } catch {
      return true;
    }
  });
  // Same identity, same endpoint, no sessions.
  okOf(
    await b.pilot("daemon", "start", "--listen", b.listen, "--hostname", PAIR_B_NAME, "--json"),
    "restart",
  );

  const started = performance.now();
  const sent = await a.pilot("send", PAIR_B_NAME, "--data", "after", "--timeout", "60s", "--json");
  const seconds = (performance.now() - started) / 1000;
  okOf(sent, "send after the restart");
  // Before: the stale session swallowed everything until its rekey (120-135 s).
  assert.ok(seconds < 30, `the send took ${seconds.toFixed(1)} s`);
  const inbox = okOf(await b.pilot("inbox", "--json"), "inbox");
  assert.ok(
    inbox.messages.some((m: { data: string }) => m.data === "after"),
    "the message reached the restarted peer",
  );
});

Deno.test("a handshake with the node's own endpoint is refused and leaves no session with itself", async () => {
  let a: TestNode | undefined;
  try {
    a = await startNode({ identity: 0, hostname: "alone" });
    const r = await a.pilot("handshake", a.listen, "--timeout", "10s", "--json");
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.json.status, "error");
    assert.equal(r.json.code, "invalid_argument");
    assert.match(r.json.message, /this node itself/);
    assert.deepEqual(await a.peers(), []);
  } finally {
    await a?.stop();
  }
});
