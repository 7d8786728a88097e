import assert from "node:assert/strict";
import { join } from "node:path";
import { TrustFlowStore } from "../src/daemon/trust_flow_store.ts";
import { TrustStore } from "../src/daemon/trust_store.ts";
import { PilotError } from "../src/errors.ts";
import { tempDir } from "./_tmp.ts";

const KEY = "ab".repeat(32);
const HASH = "cd".repeat(32);

Deno.test("TrustFlowStore keeps pending, outgoing, outbox, suppression and replay keys across reloads", async () => {
  await using home = await tempDir("pilot-test-flow-");
  const dir = home.path;
  const a = await TrustFlowStore.load(dir);
  await a.putPending({
    public_key: KEY,
    stamp: "00".repeat(8),
    address: "3fa2.09c1.77e4",
    hostname: null,
    fingerprint: "x",
    reason: "hi",
    received_at: new Date(0).toISOString(),
    request_hash: HASH,
  });
  await a.putOutgoing({
    public_key: KEY,
    address: "3fa2.09c1.77e4",
    hostname: "worker",
    reason: "",
    created_at: new Date(0).toISOString(),
    expires_at: 5,
    status: "pending",
    hashes: [HASH],
  });
  await a.putOutbox({
    public_key: KEY,
    kind: "accept",
    ref_hash: HASH,
    reason: "",
    expires_at: 9,
    endpoint: "127.0.0.1:1",
  });
  await a.suppress(KEY, 1_000);
  assert.equal(await a.rememberOffline(`${KEY}:00`, 2_000, 0), true);
  const b = await TrustFlowStore.load(dir);
  assert.equal(b.pendingFrom(KEY)?.reason, "hi");
  assert.equal(b.outgoingTo(KEY)?.hostname, "worker");
  assert.equal(b.outbox[0]?.endpoint, "127.0.0.1:1");
  assert.equal(b.suppressedUntil(KEY, 0), 1_000);
  assert.equal(b.suppressedUntil(KEY, 1_000), 0);
  assert.equal(await b.rememberOffline(`${KEY}:00`, 2_000, 1), false);
  assert.equal(
    await b.rememberOffline(`${KEY}:00`, 3_000, 2_001),
    true,
    "expired replay keys are forgotten",
  );
});

Deno.test("TrustFlowStore refuses a corrupt or malformed file and leaves it as it was", async () => {
  await using home = await tempDir("pilot-test-flow-");
  const dir = home.path;
  const path = join(dir, "trust_flow.json");
  const base = { version: 1, pending: [], outgoing: [], outbox: [], suppressed: {}, replay: {} };
  const cases: [string, string][] = [
    ["{not json", "not valid JSON"],
    [JSON.stringify({ ...base, version: 3 }), "version"],
    [JSON.stringify({ ...base, extra: 1 }), "unknown key"],
    [JSON.stringify({ ...base, pending: [{ public_key: "zz" }] }), "pending[0]"],
    [
      JSON.stringify({
        ...base,
        outbox: [{ public_key: KEY, kind: "boom", ref_hash: HASH, reason: "", expires_at: 1 }],
      }),
      "outbox[0].kind",
    ],
    [JSON.stringify({ ...base, suppressed: { [KEY]: "soon" } }), "suppressed"],
  ];
  for (const [text, mention] of cases) {
    await Deno.writeTextFile(path, text, { mode: 0o600 });
    await assert.rejects(TrustFlowStore.load(dir), (e: unknown) => {
      assert.ok(e instanceof PilotError, String(e));
      assert.match(e.message, new RegExp(mention.replace(/[[\]().]/g, "\\$&")));
      return true;
    });
    assert.equal(await Deno.readTextFile(path), text);
  }
});

Deno.test("TrustStore refuses a weak key and a file others can read", async () => {
  await using home = await tempDir("pilot-test-flow-");
  const dir = home.path;
  const path = join(dir, "trust.json");
  const entry = {
    public_key: "00".repeat(32),
    address: "a",
    hostname: null,
    since: "",
    mutual: true,
  };
  await Deno.writeTextFile(path, JSON.stringify({ version: 1, trusted: [entry] }), {
    mode: 0o600,
  });
  await assert.rejects(TrustStore.load(dir), /weak or malformed/);
  await Deno.writeTextFile(path, JSON.stringify({ version: 1, trusted: [] }));
  await Deno.chmod(path, 0o644);
  await assert.rejects(TrustStore.load(dir), /readable by other users/);
});
