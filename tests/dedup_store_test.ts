import assert from "node:assert/strict";
import { join } from "node:path";
import { DedupStore } from "../src/daemon/dedup_store.ts";
import { ConflictRefusal } from "../src/services/refusal.ts";
import { HOME_FILES } from "../src/daemon/home.ts";
import { Inbox } from "../src/daemon/inbox.ts";
import { PilotError } from "../src/errors.ts";
import { tempDir } from "./_tmp.ts";

const KEY_A = "aa".repeat(32);
const KEY_B = "bb".repeat(32);
const HOUR = 60 * 60 * 1000;
/** Content remembered with each pair where the test is not about content. */
const C = { size: 2, digest: "ab".repeat(32) };

/** A clock the test moves by hand. */
function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

async function logLines(home: string): Promise<number> {
  const text = await Deno.readTextFile(join(home, HOME_FILES.dedup));
  return text.split("\n").length - 1;
}

Deno.test("DedupStore remembers a pair across reopen and after the inbox is acked and cleared", async () => {
  await using home = await tempDir("pilot-dedup-");
  const inbox = await Inbox.open(home.path);
  const dedup = await DedupStore.open(home.path);
  const msg = await inbox.add({
    id: "retry-me",
    from: "0:0000.0000.000a",
    from_key: KEY_A,
    hostname: null,
    fingerprint: KEY_A.slice(0, 16),
    type: "text",
    data: "hi",
    bytes: 2,
    received_at: new Date().toISOString(),
  });
  assert.equal(dedup.check(KEY_A, "retry-me"), undefined);
  await dedup.remember(KEY_A, "retry-me", msg.seq, C);
  assert.deepEqual(dedup.check(KEY_A, "retry-me"), { seq: msg.seq, content: C });
  assert.equal(await inbox.ack(["retry-me"]), 1);
  await inbox.clear(msg.seq);
  await inbox.close();
  await dedup.close();

  const inbox2 = await Inbox.open(home.path);
  const dedup2 = await DedupStore.open(home.path);
  assert.equal(inbox2.size, 0);
  assert.deepEqual(dedup2.check(KEY_A, "retry-me"), { seq: msg.seq, content: C });
  await inbox2.close();
  await dedup2.close();
});

Deno.test("DedupStore keeps the same id from different sender keys apart", async () => {
  await using home = await tempDir("pilot-dedup-");
  const dedup = await DedupStore.open(home.path);
  await dedup.remember(KEY_A, "1", 10, C);
  assert.equal(dedup.check(KEY_B, "1"), undefined);
  await dedup.remember(KEY_B, "1", 11, C);
  assert.deepEqual(dedup.check(KEY_A, "1"), { seq: 10, content: C });
  assert.deepEqual(dedup.check(KEY_B, "1"), { seq: 11, content: C });
  // An id holding a space cannot pose as another key's id.
  await dedup.remember(KEY_A, "x y", 12, C);
  assert.equal(dedup.check(`${KEY_A} x`, "y"), undefined);
  await dedup.close();
  const again = await DedupStore.open(home.path);
  assert.deepEqual(again.check(KEY_B, "1"), { seq: 11, content: C });
  assert.equal(again.size, 3);
  await again.close();
});

Deno.test("DedupStore.remember rejects a sender key that is not lowercase hex", async () => {
  await using home = await tempDir("pilot-dedup-");
  const dedup = await DedupStore.open(home.path);
  await assert.rejects(dedup.remember("AB CD", "1", 1, C), TypeError);
  await dedup.close();
});

Deno.test("DedupStore forgets a pair once the window has passed, in memory and at reopen", async () => {
  await using home = await tempDir("pilot-dedup-");
  const c = clock();
  const dedup = await DedupStore.open(home.path, { windowMs: 24 * HOUR, now: c.now });
  await dedup.remember(KEY_A, "old", 1, C);
  c.advance(23 * HOUR);
  await dedup.remember(KEY_A, "new", 2, C);
  assert.deepEqual(dedup.check(KEY_A, "old"), { seq: 1, content: C });
  c.advance(HOUR);
  assert.equal(dedup.check(KEY_A, "old"), undefined, "24 h old: expired");
  assert.deepEqual(dedup.check(KEY_A, "new"), { seq: 2, content: C });
  await dedup.close();

  const again = await DedupStore.open(home.path, { windowMs: 24 * HOUR, now: c.now });
  assert.equal(again.size, 1);
  assert.equal(await logLines(home.path), 1, "the expired entry was compacted away at open");
  c.advance(23 * HOUR);
  assert.equal(again.check(KEY_A, "new"), undefined);
  await again.close();
  const third = await DedupStore.open(home.path, { windowMs: 24 * HOUR, now: c.now });
  assert.equal(third.size, 0);
  assert.equal(await logLines(home.path), 0);
  await third.close();
});

Deno.test("DedupStore drops the oldest entries first beyond its entry cap", async () => {
  await using home = await tempDir("pilot-dedup-");
  const dedup = await DedupStore.open(home.path, { maxEntries: 3 });
  for (let i = 1; i <= 5; i++) await dedup.remember(KEY_A, `m${i}`, i, C);
  assert.equal(dedup.size, 3);
  assert.equal(dedup.check(KEY_A, "m1"), undefined);
  assert.equal(dedup.check(KEY_A, "m2"), undefined);
  assert.deepEqual(dedup.check(KEY_A, "m3"), { seq: 3, content: C });
  await dedup.close();
  const again = await DedupStore.open(home.path, { maxEntries: 3 });
  assert.deepEqual(
    ["m1", "m2", "m3", "m4", "m5"].map((id) => again.check(KEY_A, id)?.seq),
    [undefined, undefined, 3, 4, 5],
  );
  await again.close();
});

Deno.test("DedupStore compacts its log when dead records pile up, keeping live entries", async () => {
  await using home = await tempDir("pilot-dedup-");
  const dedup = await DedupStore.open(home.path, { maxEntries: 10, compactMargin: 5 });
  for (let i = 0; i < 200; i++) await dedup.remember(KEY_A, `m${i}`, i, C);
  assert.ok(await logLines(home.path) <= 2 * 10 + 5 + 1, `${await logLines(home.path)} lines`);
  await dedup.close();
  const again = await DedupStore.open(home.path, { maxEntries: 10 });
  assert.equal(again.size, 10);
  assert.deepEqual(again.check(KEY_A, "m199"), { seq: 199, content: C });
  assert.equal(again.check(KEY_A, "m189"), undefined);
  await again.close();
});

Deno.test("DedupStore.open refuses a malformed entry, naming the line", async () => {
  await using home = await tempDir("pilot-dedup-");
  const good = JSON.stringify({ k: KEY_A, id: "1", seq: 1, at: Date.now() });
  await Deno.writeTextFile(join(home.path, HOME_FILES.dedup), `${good}\n{"k":1}\n${good}\n`, {
    mode: 0o600,
  });
  await assert.rejects(DedupStore.open(home.path), (e: unknown) => {
    assert.ok(e instanceof PilotError && e.code === "internal");
    assert.match(e.message, /line 2/);
    return true;
  });
});

Deno.test("DedupStore.retryOf answers a retry of the same content and refuses other content under the id, across reopen", async () => {
  await using home = await tempDir("pilot-dedup-");
  const dedup = await DedupStore.open(home.path);
  const first = { size: 5, digest: "11".repeat(32) };
  const other = { size: 9, digest: "22".repeat(32) };
  assert.equal(dedup.retryOf(KEY_A, "job-1", first), undefined, "a new pair");
  await dedup.remember(KEY_A, "job-1", 7, first);
  assert.equal(dedup.retryOf(KEY_A, "job-1", first), 7);
  assert.equal(dedup.retryOf(KEY_B, "job-1", other), undefined, "ids are per sender");
  await dedup.close();
  const again = await DedupStore.open(home.path);
  assert.throws(() => again.retryOf(KEY_A, "job-1", other), (e: unknown) => {
    assert.ok(e instanceof ConflictRefusal && e.code === "conflict");
    assert.deepEqual(e.stored, { size: 5, digest: Uint8Array.fromHex(first.digest) });
    return true;
  });
  await again.close();
});

Deno.test("DedupStore reads records from before content was kept and counts them as a retry", async () => {
  await using home = await tempDir("pilot-dedup-");
  const at = Date.now();
  const old = JSON.stringify({ k: KEY_A, id: "old", seq: 3, at });
  await Deno.writeTextFile(join(home.path, HOME_FILES.dedup), `${old}\n`, { mode: 0o600 });
  const dedup = await DedupStore.open(home.path);
  assert.deepEqual(dedup.check(KEY_A, "old"), { seq: 3, content: undefined });
  assert.equal(dedup.retryOf(KEY_A, "old", C), 3);
  await dedup.close();
  const half = JSON.stringify({ k: KEY_A, id: "half", seq: 4, at, n: 1 });
  await Deno.writeTextFile(join(home.path, HOME_FILES.dedup), `${old}\n${half}\n${old}\n`, {
    mode: 0o600,
  });
  await assert.rejects(DedupStore.open(home.path), /line 2/);
});
