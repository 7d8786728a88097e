/** The daemon's one timer: a wake a beat while idle, every fastMs while busy. */
import assert from "node:assert/strict";
import { Ticker } from "../src/daemon/ticker.ts";
import { FakeTimers as FakeClock } from "./_fake_timers.ts";

/** A ticker (250 ms fast, 1 s beat) on `clock` that records its runs; `also` runs after each record. */
function ticker(
  clock: FakeClock,
  busy: () => boolean,
  extra: { also?: (t: Ticker) => void; onError?: (e: unknown) => void } = {},
) {
  const runs: { at: number; beat: boolean }[] = [];
  const t: Ticker = new Ticker({
    fastMs: 250,
    beatMs: 1000,
    busy,
    run: (now, beat) => {
      runs.push({ at: now, beat });
      extra.also?.(t);
    },
    ...(extra.onError && { onError: extra.onError }),
    now: () => clock.now,
    timers: clock,
  });
  return { t, runs };
}

Deno.test("Ticker: idle, it wakes once a beat, and every run is a beat", () => {
  const clock = new FakeClock();
  const { t, runs } = ticker(clock, () => false);
  t.start();
  clock.advance(10_000);
  assert.deepStrictEqual(runs.length, 10);
  assert.deepStrictEqual(runs.every((r) => r.beat), true);
  assert.deepStrictEqual(
    runs.map((r) => r.at),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((s) => s * 1000),
  );
  t.stop();
  assert.deepStrictEqual(clock.armed, 0);
});

Deno.test("Ticker: busy, it runs every fastMs, with a beat once a second", () => {
  const clock = new FakeClock();
  const { t, runs } = ticker(clock, () => true);
  t.start();
  clock.advance(2_000);
  assert.deepStrictEqual(runs.map((r) => r.at), [250, 500, 750, 1000, 1250, 1500, 1750, 2000]);
  assert.deepStrictEqual(runs.filter((r) => r.beat).map((r) => r.at), [1000, 2000]);
  t.stop();
});

Deno.test("Ticker: wake() brings an idle timer forward to fastMs, and never delays one", () => {
  const clock = new FakeClock();
  let busy = false;
  const { t, runs } = ticker(clock, () => busy);
  t.start();
  clock.advance(100);
  busy = true;
  t.wake();
  clock.advance(250);
  assert.deepStrictEqual(runs.map((r) => r.at), [350]);
  assert.deepStrictEqual(runs[0]!.beat, false);
  // A second wake while a fast run is already armed changes nothing.
  clock.advance(100);
  t.wake();
  clock.advance(150);
  assert.deepStrictEqual(runs.map((r) => r.at), [350, 600]);
  // The beat still comes a second after the last one (start, at 0).
  clock.advance(400);
  assert.deepStrictEqual(runs.filter((r) => r.beat).map((r) => r.at), [1000]);
  // Idle again: the run armed while busy (1250) is the last before the next beat.
  busy = false;
  clock.advance(1000);
  assert.deepStrictEqual(runs.map((r) => r.at), [350, 600, 850, 1000, 1250, 2000]);
  t.stop();
});

Deno.test("Ticker: stop() cancels the timer and later wakes", () => {
  const clock = new FakeClock();
  const { t, runs } = ticker(clock, () => true);
  t.start();
  clock.advance(250);
  t.stop();
  t.wake();
  clock.advance(5_000);
  assert.deepStrictEqual(runs.length, 1);
  assert.deepStrictEqual(clock.armed, 0);
});

Deno.test("Ticker: a run that throws is reported and the timer re-armed", () => {
  const clock = new FakeClock();
  const errors: string[] = [];
  const { t, runs } = ticker(clock, () => false, {
    also: () => {
      throw new Error("boom");
    },
    onError: (e) => errors.push((e as Error).message),
  });
  t.start();
  clock.advance(3_000);
  assert.deepStrictEqual(runs.length, 3);
  assert.deepStrictEqual(errors, ["boom", "boom", "boom"]);
  t.stop();
});

Deno.test("Ticker: after a stall of several beats, one beat runs and the beat resumes from then", () => {
  const clock = new FakeClock();
  const { t, runs } = ticker(clock, () => false);
  t.start();
  clock.advance(1_000);
  // The event loop is blocked for 5 s: the timer due at 2000 fires at 6500.
  clock.stall(5_500);
  clock.advance(3_000);
  assert.deepStrictEqual(runs.map((r) => r.at), [1000, 6500, 7500, 8500, 9500]);
  assert.equal(runs.every((r) => r.beat), true);
  t.stop();
});

Deno.test("Ticker: a wake from inside run arms one timer, at fastMs when busy", () => {
  const clock = new FakeClock();
  let busy = false;
  const { t, runs } = ticker(clock, () => busy, {
    also: (self) => {
      if (busy) return;
      busy = true;
      self.wake();
    },
  });
  t.start();
  clock.advance(1_000);
  assert.equal(clock.armed, 1, "one timer, not the wake's and the re-arm's");
  clock.advance(500);
  assert.deepStrictEqual(runs.map((r) => r.at), [1000, 1250, 1500]);
  t.stop();
  assert.equal(clock.armed, 0);
});
