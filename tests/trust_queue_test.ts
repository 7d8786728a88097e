/**
 * The small parts under the trust service's flood defences: the two-lane
 * verification queue, per-key locks, and the retry backoff.
 */
import assert from "node:assert/strict";
import { KeyedLock } from "../src/services/keyed_lock.ts";
import { RetryBackoff } from "../src/services/retry_backoff.ts";
import { TrustQueue } from "../src/services/trust_queue.ts";

Deno.test("TrustQueue keeps a reserve for the known lane, caps each key, and serves known first", () => {
  const q = new TrustQueue<number>({ max: 6, reserved: 2, perKey: 2 });
  assert.equal(q.admit("s1", "stranger", 1), true);
  assert.equal(q.admit("s1", "stranger", 2), true);
  assert.equal(q.admit("s1", "stranger", 3), false, "per-key cap");
  assert.equal(q.admit("s2", "stranger", 4), true);
  assert.equal(q.admit("s2", "stranger", 5), true);
  assert.equal(q.admit("s3", "stranger", 6), false, "strangers' share is full");
  assert.equal(q.admit("k1", "known", 7), true);
  assert.equal(q.admit("k2", "known", 8), true);
  assert.equal(q.admit("k3", "known", 9), false, "the whole queue is full");
  assert.equal(q.size, 6);
  assert.deepEqual(q.take(), { key: "k1", item: 7 });
  assert.deepEqual(q.take(), { key: "k2", item: 8 });
  assert.deepEqual(q.take(), { key: "s1", item: 1 });
  // s1 is busy: its second item waits while s2's go.
  assert.deepEqual(q.take(), { key: "s2", item: 4 });
  assert.equal(q.take(), undefined, "every waiting key is busy");
  q.done("s1");
  assert.deepEqual(q.take(), { key: "s1", item: 2 });
  assert.equal(q.busy, 4);
});

Deno.test("KeyedLock runs one key's tasks in call order and other keys' tasks alongside", async () => {
  const lock = new KeyedLock();
  const order: string[] = [];
  const gate = Promise.withResolvers<void>();
  const first = lock.run("a", async () => {
    await gate.promise;
    order.push("a1");
  });
  const second = lock.run("a", () => {
    order.push("a2");
    return Promise.resolve();
  });
  await lock.run("b", () => {
    order.push("b1");
    return Promise.resolve();
  });
  assert.deepEqual(order, ["b1"], "b did not wait for a");
  gate.resolve();
  await Promise.all([first, second]);
  assert.deepEqual(order, ["b1", "a1", "a2"]);
  await Promise.resolve();
  assert.equal(lock.size, 0, "idle keys are forgotten");
  await assert.rejects(lock.run("c", () => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(
    await lock.run("c", () => Promise.resolve(1)),
    1,
    "a failure does not block the key",
  );
});

Deno.test("RetryBackoff doubles the wait with jitter and stops after giveUpMs until reset", () => {
  let now = 0;
  const b = new RetryBackoff({
    minMs: 5_000,
    maxMs: 60_000,
    giveUpMs: 300_000,
    now: () => now,
    random: () => 1 - Number.EPSILON,
  });
  const tries: number[] = [];
  for (now = 0; now < 3_600_000; now += 1_000) {
    if (!b.due("k")) continue;
    tries.push(now);
    b.failed("k");
  }
  const gaps = tries.slice(1).map((t, i) => t - tries[i]!);
  // Tries at 0, 7, 20, 45, 95, 170 and 245 s; the next would fall past 300 s.
  assert.deepEqual(gaps, [7_000, 13_000, 25_000, 50_000, 75_000, 75_000]);
  assert.equal(b.gaveUp("k"), true);
  assert.equal(b.due("other"), true, "keys are independent");
  b.failed("other");
  b.retain(new Set(["k"]));
  assert.equal(b.size, 1, "keys with nothing to retry are forgotten");
  b.reset("k");
  assert.equal(b.due("k"), true);
  assert.equal(b.size, 0);
});
