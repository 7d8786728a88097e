/**
 * A trusted peer's last authenticated endpoint survives a restart of the
 * daemon: `send <trusted peer>` handshakes there before the peer calls. It is
 * only a hint: another key answering there is `key_changed`, never followed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { establishTrust, okOf, startNode, type TestNode, waitFor } from "./_daemon_harness.ts";

// deno-lint-ignore no-explicit-any
async function trustFile(node: TestNode): Promise<any[]> {
  return JSON.parse(await Deno.readTextFile(join(node.home, "trust.json"))).trusted;
}

/** A trusts B (and B trusts A), met by endpoint only; A's trust.json then remembers B's endpoint. */
async function trustedPair(): Promise<{ a: TestNode; b: TestNode }> {
  const b = await startNode({ identity: 1, hostname: "remembered-worker" });
  let a: TestNode | undefined;
  try {
    a = await startNode({ identity: 0 });
    await establishTrust(a, b, b.listen);
    const aNode = a;
    await waitFor("A's trust.json to remember B's endpoint", async () => {
      const e = (await trustFile(aNode)).find((t) => t.public_key === b.identity!.publicKey);
      return e?.endpoint === b.listen && typeof e.last_seen === "string";
    }, 15_000);
    return { a, b };
  } catch (e) {
    await a?.stop();
    await b.stop();
    throw e;
  }
}

async function restart(node: TestNode): Promise<void> {
  okOf(await node.pilot("daemon", "stop", "--json"), "daemon stop");
  // A new port: the peer cannot find the restarted node, so only A's memory can help.
  await node.start();
}

Deno.test("after a restart, send to a trusted peer by address or hostname uses its remembered endpoint", async () => {
  const { a, b } = await trustedPair();
  await using _a = a;
  await using _b = b;
  await restart(a);
  assert.equal((await a.peers()).length, 0, "no session survives the restart");
  const byAddress = okOf(
    await a.pilot("send", b.identity!.address, "--data", "after restart", "--json"),
    "send by address",
  );
  assert.equal(byAddress.to.public_key, b.identity!.publicKey);
  const byName = okOf(
    await a.pilot("send", "remembered-worker", "--data", "by name", "--json"),
    "send by trusted hostname",
  );
  assert.equal(byName.to.public_key, b.identity!.publicKey);
  const inbox = okOf(await b.pilot("inbox", "--json"), "inbox").messages;
  assert.deepEqual(inbox.map((m: { data: string }) => m.data), ["after restart", "by name"]);
});

Deno.test("a remembered endpoint now answered by another key is key_changed, and nothing is sent", async () => {
  const { a, b } = await trustedPair();
  await using _a = a;
  await using _b = b;
  const oldEndpoint = b.listen;
  okOf(await b.pilot("daemon", "stop", "--json"), "B stop");
  // Another identity takes B's old endpoint.
  await using c = await startNode({ identity: 2, args: ["--listen", oldEndpoint] });
  assert.equal(c.listen, oldEndpoint);
  await restart(a);
  const r = await a.pilot("send", b.identity!.address, "--data", "secret", "--json");
  assert.equal(r.code, 4, r.stdout + r.stderr);
  assert.equal(r.json?.code, "key_changed", r.stdout);
  assert.match(r.json.message, new RegExp(b.identity!.fingerprint));
  assert.equal(okOf(await c.pilot("inbox", "--json"), "C inbox").messages.length, 0);
  const kept = (await trustFile(a)).find((t) => t.public_key === b.identity!.publicKey);
  assert.equal(kept?.endpoint, oldEndpoint, "the trusted key's memory is not moved to C");
});
