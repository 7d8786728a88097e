/**
 * The handshake work budget: a global bucket with a reserve only priority
 * work may spend and a fair share per source; and the rate limiter's cost.
 */

import assert from "node:assert/strict";
import { FakeClock } from "./_session_helpers.ts";
import { RateLimiter } from "../src/session/rate_limit.ts";
import { WorkBudget } from "../src/session/work_budget.ts";

function budget(clock: FakeClock, perSource = 0.5): WorkBudget {
  return new WorkBudget({
    perSecond: 100,
    reserved: 0.25,
    perSource,
    maxSources: 1024,
    now: clock.now,
  });
}

/** How many `units`-sized takes succeed for `source` right now. */
function drain(b: WorkBudget, source: string, units: number, priority: boolean): number {
  let n = 0;
  while (b.take(source, units, priority)) n++;
  return n;
}

Deno.test("WorkBudget keeps its reserve from strangers and gives it to priority work", () => {
  const clock = new FakeClock();
  const b = budget(clock, 1);
  assert.equal(drain(b, "198.18.0.1", 5, false), 15, "75 of 100 units for strangers");
  assert.equal(b.take("198.18.0.2", 5, false), false, "another stranger finds it spent too");
  assert.equal(drain(b, "198.18.0.3", 5, true), 5, "the 25 reserved units");
  assert.equal(b.take("198.18.0.3", 1, true), false);
});

Deno.test("WorkBudget holds each source to its share of the rate", () => {
  const clock = new FakeClock();
  const b = budget(clock, 0.2);
  assert.equal(drain(b, "198.18.0.1", 5, false), 4, "20 units of 100 per second");
  assert.equal(drain(b, "198.18.0.2", 5, false), 4, "another source has its own share");
  clock.advance(1000);
  assert.equal(drain(b, "198.18.0.1", 5, false), 4, "the share refills with time");
});

Deno.test("WorkBudget refills with time and never beyond one second of work", () => {
  const clock = new FakeClock();
  const b = budget(clock, 1);
  assert.equal(drain(b, "x", 1, true), 100);
  clock.advance(500);
  assert.equal(drain(b, "x", 1, true), 50);
  clock.advance(60_000);
  assert.equal(drain(b, "x", 1, true), 100);
});

Deno.test("WorkBudget refuses shares and rates it cannot honour", () => {
  const clock = new FakeClock();
  for (
    const [perSecond, reserved, perSource] of [[0, 0.25, 0.1], [100, 1, 0.1], [
      100,
      0.25,
      0,
    ]] as const
  ) {
    assert.throws(
      () => new WorkBudget({ perSecond, reserved, perSource, maxSources: 8, now: clock.now }),
      RangeError,
    );
  }
});

Deno.test("RateLimiter.allow() spends the given cost and refuses a cost above what is left", () => {
  const clock = new FakeClock();
  const r = new RateLimiter({ burst: 10, perSecond: 10, maxKeys: 8, now: clock.now });
  assert.equal(r.allow("k", 11), false, "more than a full bucket is never allowed");
  assert.equal(r.allow("k", 6), true);
  assert.equal(r.allow("k", 5), false, "only 4 left");
  assert.equal(r.allow("k", 4), true);
  clock.advance(300);
  assert.equal(r.allow("k", 3), true);
  assert.equal(r.allow("k"), false);
});

Deno.test("WorkBudget.reserve() lets waiting work borrow up to its longest wait, never from the reserve", () => {
  const clock = new FakeClock();
  const b = new WorkBudget({
    perSecond: 100,
    reserved: 0.25,
    perSource: 1,
    maxWaitMs: 200,
    maxSources: 1024,
    now: clock.now,
  });
  assert.equal(drain(b, "198.18.0.1", 5, false), 15, "75 of 100 units at once");
  // The shared part refills at 75/s: 200 ms of it is 15 units, three takes of 5.
  const waits = [1, 2, 3].map(() => b.reserve("198.18.0.1", 5, false, true));
  assert.deepEqual(waits.map((w) => w === false ? w : Math.round(w)), [67, 133, 200]);
  assert.equal(b.reserve("198.18.0.1", 5, false, true), false, "never beyond the longest wait");
  assert.equal(b.reserve("198.18.0.1", 5, false, false), false, "work that cannot wait is refused");
  assert.equal(drain(b, "198.18.0.9", 5, true), 5, "priority work keeps all of its 25 units");
  clock.advance(100);
  const wait = b.reserve("198.18.0.1", 5, false, true);
  assert.equal(wait === false ? wait : Math.round(wait), 167, "7.5 units back: room for one more");
  assert.equal(b.reserve("198.18.0.1", 5, false, true), false);
  clock.advance(400);
  assert.equal(b.reserve("198.18.0.1", 5, false, true), 0, "the debt paid: at once again");
});

Deno.test("WorkBudget.reserve() holds a waiting source to its share too", () => {
  const clock = new FakeClock();
  const b = new WorkBudget({
    perSecond: 100,
    reserved: 0.25,
    perSource: 0.2,
    maxWaitMs: 1000,
    maxSources: 1024,
    now: clock.now,
  });
  let admitted = 0;
  while (b.reserve("198.18.0.1", 5, false, true) !== false) admitted++;
  assert.equal(admitted, 4, "20 units of 100 per second, waiting or not");
});
