/**
 * Long waits from the CLI are a series of bounded polls (`renewing`), on an
 * injected clock.
 */
import assert from "node:assert/strict";
import { renewing } from "../src/cli/renew.ts";

Deno.test("renewing() splits a long wait into polls of at most the API's bound and stops at the deadline", async () => {
  let now = 0;
  const asked: number[] = [];
  const done = await renewing(25_000, 10_000, (ms) => {
    asked.push(ms);
    now += ms;
    return Promise.resolve(false);
  }, () => now);
  assert.equal(done, false);
  assert.deepEqual(asked, [10_000, 10_000, 5_000]);
});

Deno.test("renewing() with 0 keeps renewing until the poll reports it is done", async () => {
  let now = 0;
  let polls = 0;
  const done = await renewing(0, 600_000, (ms) => {
    assert.equal(ms, 600_000);
    now += ms;
    return Promise.resolve(++polls === 50);
  }, () => now);
  assert.equal(done, true);
  assert.equal(polls, 50, "well past any single poll's bound");
});

Deno.test("renewing() stops as soon as a poll is done", async () => {
  let polls = 0;
  const done = await renewing(60_000, 10_000, () => Promise.resolve(++polls === 1), () => 0);
  assert.equal(done, true);
  assert.equal(polls, 1);
});
