import assert from "node:assert/strict";
import { ConcurrencyLimit } from "../src/session/concurrency.ts";

/** A task that runs until `release()` is called, recording when it started. */
function gated(started: number[], n: number) {
  const { promise, resolve } = Promise.withResolvers<void>();
  return {
    task: async () => {
      started.push(n);
      await promise;
      return n;
    },
    release: resolve,
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("ConcurrencyLimit runs at most its limit at once, the rest in arrival order", async () => {
  const limit = new ConcurrencyLimit(2);
  const started: number[] = [];
  const tasks = [0, 1, 2, 3, 4].map((n) => gated(started, n));
  const results = tasks.map((t) => limit.run(t.task));
  await tick();
  assert.deepEqual(started, [0, 1]);
  assert.equal(limit.waiting, 3);
  tasks[1]!.release();
  await tick();
  assert.deepEqual(started, [0, 1, 2]);
  tasks[0]!.release();
  await tick();
  assert.deepEqual(started, [0, 1, 2, 3]);
  for (const t of tasks) t.release();
  assert.deepEqual(await Promise.all(results), [0, 1, 2, 3, 4]);
  assert.equal(limit.waiting, 0);
});

Deno.test("ConcurrencyLimit passes the turn on when a task throws", async () => {
  const limit = new ConcurrencyLimit(1);
  const failing = limit.run(() => Promise.reject(new Error("boom")));
  const next = limit.run(() => Promise.resolve("ran"));
  await assert.rejects(failing, /boom/);
  assert.equal(await next, "ran");
  // The turn was given back: a later task starts at once.
  const started: number[] = [];
  const t = gated(started, 7);
  const later = limit.run(t.task);
  await tick();
  assert.deepEqual(started, [7]);
  t.release();
  assert.equal(await later, 7);
});

Deno.test("ConcurrencyLimit refuses a limit that is not a positive integer", () => {
  for (const bad of [0, -1, 1.5, NaN]) {
    assert.throws(() => new ConcurrencyLimit(bad), /Invalid concurrency limit/);
  }
});
