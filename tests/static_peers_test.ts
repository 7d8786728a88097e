/**
 * `peer add`, `peer remove` and `peer list` change the static peer table of
 * a running daemon: names resolve at once, `--save` writes config.json
 * (keeping its other keys, refusing a malformed file), repeats answer
 * `changed: false`, and the naming rules still hold (a trusted peer's name
 * expects its key; a stranger claiming a configured name is flagged).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  establishTrust,
  okOf,
  type PilotResult,
  startNode,
  type TestNode,
} from "./_daemon_harness.ts";

function assertError(r: PilotResult, code: string, exit: number): void {
  assert.equal(r.code, exit, r.stdout + r.stderr);
  assert.equal(r.json?.status, "error", r.stdout);
  assert.equal(r.json.code, code, r.json.message);
}

async function config(node: TestNode): Promise<string> {
  return await Deno.readTextFile(join(node.home, "config.json"));
}

Deno.test("peer add makes a name resolve at once, --save writes config.json keeping its other keys, and repeats change nothing", async () => {
  await using b = await startNode({ identity: 1, hostname: "late-worker" });
  await using a = await startNode({ identity: 0, config: { disable: ["pubsub"] } });
  assertError(await a.pilot("connect", "late-worker", "--json"), "not_found", 1);

  const added = okOf(await a.pilot("peer", "add", "late-worker", b.listen, "--json"), "add");
  assert.deepEqual(added, {
    name: "late-worker",
    endpoint: b.listen,
    changed: true,
    saved: false,
    trusted: [],
  });
  const reached = okOf(await a.pilot("connect", "late-worker", "--json"), "connect");
  assert.equal(reached.peer.public_key, b.identity!.publicKey);
  const again = okOf(await a.pilot("peer", "add", "late-worker", b.listen, "--json"), "again");
  assert.equal(again.changed, false);
  assert.deepEqual(JSON.parse(await config(a)), { disable: ["pubsub"] }, "not saved unasked");

  const saved = okOf(
    await a.pilot("peer", "add", "late-worker", b.listen, "--save", "--json"),
    "add --save",
  );
  assert.deepEqual([saved.changed, saved.saved], [true, true], "config.json changed");
  assert.deepEqual(JSON.parse(await config(a)), {
    disable: ["pubsub"],
    peers: { "late-worker": b.listen },
  });
  const savedAgain = okOf(
    await a.pilot("peer", "add", "late-worker", b.listen, "--save", "--json"),
    "add --save again",
  );
  assert.equal(savedAgain.changed, false);
  const listed = okOf(await a.pilot("peer", "list", "--json"), "list");
  assert.deepEqual(listed.peers, [{ name: "late-worker", endpoint: b.listen, trusted: [] }]);

  const removed = okOf(
    await a.pilot("peer", "remove", "late-worker", "--save", "--json"),
    "remove --save",
  );
  assert.deepEqual([removed.changed, removed.endpoint], [true, b.listen]);
  assert.deepEqual(JSON.parse(await config(a)), { disable: ["pubsub"], peers: {} });
  const unknown = await a.pilot("peer", "remove", "late-worker", "--json");
  assert.equal(unknown.code, 0, unknown.stdout);
  assert.deepEqual([unknown.json.data.changed, unknown.json.data.endpoint], [false, null]);
  assert.deepEqual(okOf(await a.pilot("peer", "list", "--json"), "list").peers, []);
  // The session stays; the name is what is gone.
  assertError(await a.pilot("handshake", "late-worker", "--json"), "not_found", 1);
});

Deno.test("peer add refuses bad input and a malformed config.json, changing nothing", async () => {
  await using a = await startNode({ identity: 0 });
  assertError(
    await a.pilot("peer", "add", "Bad Name", "127.0.0.1:1", "--json"),
    "invalid_argument",
    2,
  );
  assertError(await a.pilot("peer", "add", "w", "127.0.0.1:0", "--json"), "invalid_argument", 2);
  assertError(
    await a.pilot("peer", "add", "w", "3fa2.09c1.77e4:1001", "--json"),
    "invalid_argument",
    2,
  );
  await Deno.writeTextFile(join(a.home, "config.json"), "{ broken", { mode: 0o600 });
  const r = await a.pilot("peer", "add", "w", "127.0.0.1:1", "--save");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not valid JSON/);
  assert.match(r.stderr, /nothing was changed/);
  assert.equal(await config(a), "{ broken", "the file is left as it was");
  assert.deepEqual(okOf(await a.pilot("peer", "list", "--json"), "list").peers, []);
});

Deno.test("a static name that is a trusted peer's still expects its key, and a stranger claiming a configured name is flagged", async () => {
  await using b = await startNode({ identity: 1, hostname: "worker-b" });
  await using a = await startNode({ identity: 0 });
  await using c = await startNode({ identity: 2, hostname: "claimer" });
  await establishTrust(a, b, b.listen);
  // No live session to B: restart A (on a new port, so B cannot call it back).
  okOf(await a.pilot("daemon", "stop", "--json"), "stop");
  await a.start();

  const added = okOf(await a.pilot("peer", "add", "worker-b", c.listen, "--json"), "add");
  assert.deepEqual(added.trusted.map((t: { public_key: string }) => t.public_key), [
    b.identity!.publicKey,
  ]);
  const r = await a.pilot("send", "worker-b", "--data", "for B only", "--json");
  assertError(r, "key_changed", 4);
  assert.equal(okOf(await c.pilot("inbox", "--json"), "C inbox").messages.length, 0);

  // A stranger claiming a name configured at another endpoint is shown, never followed.
  okOf(await a.pilot("peer", "add", "claimer", "127.0.0.1:9", "--json"), "add claimer");
  okOf(await c.pilot("connect", a.listen, "--json"), "C connects to A");
  const seen = (await a.peers()).find((p) => p.public_key === c.identity!.publicKey);
  assert.equal(seen?.name_conflict, "configured");
});
