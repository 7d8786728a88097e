/**
 * Exit codes and words that scripts (and people) can trust, on real daemons:
 * a rejected handshake fails with the peer's reason, `untrust` of a name
 * nothing matches fails, a peer that does not answer is named with its
 * endpoint, and `handshake` labels both fingerprints.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  PAIR_B_NAME,
  type PilotResult,
  startNode,
  startPair,
  stopAll,
  type TestNode,
  trustedPair,
  waitFor,
} from "./_daemon_harness.ts";

function assertError(r: PilotResult, codes: string[], exit: number, what: string): void {
  assert.equal(r.code, exit, `${what}: exit code (${r.stdout}${r.stderr})`);
  assert.equal(r.json?.status, "error", `${what}: ${r.stdout}`);
  assert.ok(codes.includes(r.json.code), `${what}: code ${r.json.code}: ${r.json.message}`);
  assert.ok(!r.json.message.includes("\n"), `${what}: one line`);
  assert.notEqual(r.json.hint, "", `${what}: a hint`);
}

async function pendingCount(node: TestNode): Promise<number> {
  return (await node.pilot("pending", "--json")).json.data.pending.length;
}

Deno.test("a rejected handshake exits 4 with the peer's reason, with --wait, without, and asked again", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  let c: TestNode | undefined;
  try {
    // Both fingerprints, labelled: whose is whose and what to do with each.
    const asked = await a.pilot("handshake", PAIR_B_NAME);
    assert.equal(asked.code, 0, asked.stderr);
    assert.match(
      asked.stdout,
      new RegExp(`^peer: +${b.identity!.fingerprint} — check it with the peer's owner`, "m"),
    );
    assert.match(
      asked.stdout,
      new RegExp(`^yours: +${a.identity!.fingerprint} — give it to the peer$`, "m"),
    );
    const json = await a.pilot("handshake", PAIR_B_NAME, "--json");
    assert.equal(json.json.data.own_fingerprint, a.identity!.fingerprint);
    assert.equal(json.json.data.status, "pending");

    const waiting = a.pilot("handshake", PAIR_B_NAME, "--wait", "--timeout", "60s", "--json");
    await waitFor("B to list the request", async () => (await pendingCount(b)) === 1);
    const reason = 'not "today"\nsorry';
    const rejected = await b.pilot("reject", a.identity!.fingerprint, "--reason", reason, "--json");
    assert.equal(rejected.code, 0, rejected.stdout);
    const waited = await waiting;
    assertError(waited, ["rejected"], 4, "handshake --wait");
    // The peer's text is quoted as a JSON string: one line, and not ours.
    assert.equal(
      waited.json.message,
      `${PAIR_B_NAME} rejected the trust request: ${JSON.stringify(reason)}`,
    );
    assert.match(waited.json.hint, /ask the peer's owner/);

    const again = await a.pilot("handshake", PAIR_B_NAME);
    assert.equal(again.code, 4, again.stdout + again.stderr);
    assert.match(again.stderr, /^error: data-processor-node rejected the trust request: "not/m);
    assert.equal(await pendingCount(b), 0);

    // A reject without a reason, seen only when asking again (no --wait).
    c = await startNode({ identity: 2 });
    const first = await c.pilot("handshake", b.listen, "--json");
    assert.equal(first.json?.data?.status, "pending", first.stdout);
    await waitFor("B to list C's request", async () => (await pendingCount(b)) === 1);
    assert.equal((await b.pilot("reject", c.identity!.fingerprint, "--json")).code, 0);
    await waitFor("C to learn of the reject", async () => {
      const r = await c!.pilot("handshake", b.listen, "--json");
      return r.code === 4 ? r : undefined;
    }).then((r) => {
      assertError(r, ["rejected"], 4, "handshake after a reject");
      assert.equal(r.json.message, `${b.listen} rejected the trust request and gave no reason`);
    });
  } finally {
    await stopAll(c);
  }
});

Deno.test("untrust of a name nothing matches exits 1; of a known untrusted peer or an exact id, 0", async () => {
  await using pair = await startPair();
  const { a } = pair;
  const none = await a.pilot("untrust", "no-such-node", "--json");
  assertError(none, ["not_found"], 1, "untrust no-such-node");
  assert.match(none.json.hint, /pilot trust/);
  const human = await a.pilot("untrust", "no-such-node");
  assert.equal(human.code, 1);
  assert.match(human.stderr, /^error: .*"no-such-node".*\nhint: .*`pilot trust`/s);

  // Known (a --peer name) but not trusted: nothing to do, safely.
  const known = await a.pilot("untrust", PAIR_B_NAME);
  assert.equal(known.code, 0, known.stderr);
  assert.equal(known.stdout.trim(), "not trusted; nothing to do");
  // An address, fingerprint or key names one peer exactly: a repeat stays 0.
  for (const id of ["2a87.aa10.6c60", "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh", "ab".repeat(32)]) {
    const r = await a.pilot("untrust", id, "--json");
    assert.equal(r.code, 0, `${id}: ${r.stdout}`);
    assert.equal(r.json.data.changed, false);
  }
});

Deno.test("a peer that does not answer is named with its endpoint, for every command that reaches it", async () => {
  const { a, b } = await trustedPair();
  const dir = await Deno.makeTempDir({ prefix: "pilot-test-" });
  try {
    assert.equal((await a.pilot("ping", PAIR_B_NAME, "--count", "1", "--json")).code, 0);
    const endpoint = b.listen;
    assert.equal((await b.pilot("daemon", "stop")).code, 0);
    const file = join(dir, "f.txt");
    await Deno.writeTextFile(file, "hello");
    const words = new RegExp(
      `^${PAIR_B_NAME} \\(${endpoint.replaceAll(".", "\\.")}\\) did not answer: ` +
        "is its daemon running and is UDP reachable\\?$",
    );
    const runs: string[][] = [
      ["ping", PAIR_B_NAME, "--count", "1", "--timeout", "2s"],
      ["send", PAIR_B_NAME, "--data", "x", "--timeout", "3s"],
      ["connect", PAIR_B_NAME, "1000", "--timeout", "3s"],
      ["send-file", PAIR_B_NAME, file, "--timeout", "3s"],
      ["task", "submit", PAIR_B_NAME, "--data", "x", "--timeout", "3s"],
      ["publish", PAIR_B_NAME, "a.b", "--data", "x", "--timeout", "3s"],
    ];
    for (const args of runs) {
      const r = await a.pilot(...args, "--json");
      assertError(r, ["unreachable", "timeout"], 5, args[0]!);
      assert.match(r.json.message, words, args.join(" "));
    }
    const human = await a.pilot("send", PAIR_B_NAME, "--data", "x", "--timeout", "3s");
    assert.equal(human.code, 5);
    assert.match(human.stderr.split("\n")[0]!, /^error: data-processor-node \(.*\) did not answer/);

    // No session at all: the handshake to the endpoint is what goes unanswered.
    const hs = await a.pilot("handshake", endpoint, "--timeout", "2s", "--json");
    assertError(hs, ["unreachable"], 5, "handshake");
    assert.equal(
      hs.json.message,
      `${endpoint} did not answer: is its daemon running and is UDP reachable?`,
    );
  } finally {
    await stopAll(a, b);
    await Deno.remove(dir, { recursive: true });
  }
});
