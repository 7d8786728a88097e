/**
 * A fingerprint names a peer for every command that takes one: each is run
 * on real daemons with the peer's fingerprint as `pilot info --json` shows it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type PilotResult, stopAll, trustedPair } from "./_daemon_harness.ts";

function ok(r: PilotResult, what: string): void {
  assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stdout}${r.stderr}`);
  assert.equal(r.json?.status, "ok", `${what}: ${r.stdout}`);
}

Deno.test("every command that takes a peer takes its fingerprint (pilot info's) too", async () => {
  const { a, b } = await trustedPair();
  const dir = await Deno.makeTempDir({ prefix: "pilot-test-" });
  try {
    const fp = (await b.info()).fingerprint;
    assert.equal(fp, b.identity!.fingerprint);
    // The fingerprint resolves to the trusted key; a session says where it is (as for a key).
    ok(await a.pilot("connect", b.listen, "--json"), "connect by endpoint");
    const file = join(dir, "f.txt");
    await Deno.writeTextFile(file, "hello");
    const runs: [string, string[]][] = [
      ["connect", ["connect", fp]],
      ["ping", ["ping", fp, "--count", "1"]],
      ["send", ["send", fp, "--data", "hi"]],
      ["send-file", ["send-file", fp, file]],
      ["task submit", ["task", "submit", fp, "--data", "job"]],
      ["publish", ["publish", fp, "news.today", "--data", "x"]],
      ["subscribe", ["subscribe", fp, "news.*", "--timeout", "500ms"]],
      ["dgram", ["dgram", fp, "7", "--data", "x"]],
      ["bench", ["bench", fp, "--size", "0.01"]],
      ["handshake", ["handshake", fp]],
      ["approve", ["approve", fp]],
      ["forward", ["forward", "0", fp, "8080"]],
    ];
    for (const [what, args] of runs) {
      const r = await a.pilot(...args, "--json");
      if (what === "subscribe") {
        // NDJSON: one line per notice; its end says why it stopped.
        assert.equal(r.code, 0, `${what}: exit ${r.code}: ${r.stdout}${r.stderr}`);
        continue;
      }
      ok(r, what);
      if (r.json.data.peer !== undefined) {
        assert.equal(r.json.data.peer.fingerprint, fp, `${what} names the peer it reached`);
      }
    }
    const sent = (await a.pilot("send", fp, "--data", "by fingerprint", "--json")).json;
    assert.equal(sent.data.to.fingerprint, fp);
  } finally {
    await stopAll(a, b);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("untrust takes a fingerprint, and a repeat by fingerprint is a safe no-op", async () => {
  const { a, b } = await trustedPair();
  try {
    const fp = (await b.info()).fingerprint;
    const first = await a.pilot("untrust", fp, "--json");
    ok(first, "untrust");
    assert.equal(first.json.data.changed, true);
    assert.equal(first.json.data.peer.fingerprint, fp);
    const again = await a.pilot("untrust", fp, "--json");
    ok(again, "untrust again");
    assert.equal(again.json.data.changed, false);
    const human = await a.pilot("untrust", fp);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /not trusted; nothing to do/);
  } finally {
    await stopAll(a, b);
  }
});
