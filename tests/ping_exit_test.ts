/**
 * `pilot ping` with no reply at all fails like ping(8) (issue 12 item 8):
 * exit 5, `unreachable`, in words a person understands.
 */
import assert from "node:assert/strict";
import { establishTrust, PAIR_B_NAME, startPair } from "./_daemon_harness.ts";

Deno.test("ping with 100% loss exits non-zero with unreachable; with replies it exits 0", async () => {
  await using pair = await startPair({ bArgs: ["--disable", "echo"] });
  const { a, b } = pair;
  await establishTrust(a, b, PAIR_B_NAME);
  const r = await a.pilot(
    "ping",
    PAIR_B_NAME,
    "--count",
    "2",
    "--interval",
    "10ms",
    "--timeout",
    "300ms",
    "--json",
  );
  assert.equal(r.code, 5, r.stdout);
  assert.equal(r.json.code, "unreachable");
  assert.match(r.json.message, /^data-processor-node \(127\.0\.0\.1:\d+\) did not answer: /);
  assert.match(r.json.hint, /none of 2 probes came back/);
  const ok = await b.pilot("ping", a.identity!.address, "--count", "1", "--json");
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.equal(ok.json.data.received, 1);
});
