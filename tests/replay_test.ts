import assert from "node:assert/strict";
import fc from "fast-check";
import { REJECT_AFTER_MESSAGES, REPLAY_WINDOW } from "../src/constants.ts";
import { ReplayWindow } from "../src/session/replay.ts";

const W = REPLAY_WINDOW;

Deno.test("ReplayWindow accepts counter 0 as the first packet, once", () => {
  const w = new ReplayWindow();
  assert.equal(w.highest, 0);
  assert.equal(w.check(0), true);
  assert.equal(w.accept(0), true);
  assert.equal(w.check(0), false);
  assert.equal(w.accept(0), false);
  assert.equal(w.highest, 0);
});

Deno.test("ReplayWindow accepts counters in order and tracks the highest", () => {
  const w = new ReplayWindow();
  for (let c = 0; c < 3 * W; c++) {
    assert.equal(w.accept(c), true, `counter ${c}`);
    assert.equal(w.highest, c);
  }
});

Deno.test("ReplayWindow refuses duplicates of recent counters", () => {
  const w = new ReplayWindow();
  for (let c = 0; c < 100; c++) w.accept(c);
  for (let c = 0; c < 100; c++) {
    assert.equal(w.check(c), false, `counter ${c}`);
    assert.equal(w.accept(c), false, `counter ${c}`);
  }
});

Deno.test("ReplayWindow accepts a counter exactly window - 1 behind and refuses one window behind", () => {
  for (const top of [W, W + 1, W + 31, W + 32, 5 * W + 17, 2 ** 40 + 5]) {
    const w = new ReplayWindow();
    assert.equal(w.accept(top), true);
    assert.equal(w.check(top - W), false, `top ${top}: window behind`);
    assert.equal(w.accept(top - W), false, `top ${top}: window behind`);
    assert.equal(w.check(top - (W - 1)), true, `top ${top}: window - 1 behind`);
    assert.equal(w.accept(top - (W - 1)), true, `top ${top}: window - 1 behind`);
    assert.equal(w.accept(top - (W - 1)), false, `top ${top}: duplicate`);
  }
});

Deno.test("ReplayWindow remembers every counter of a full window after it advances", () => {
  const w = new ReplayWindow();
  // Accept every other counter of a window, then advance one at a time: the
  // accepted ones must stay refused for as long as they are inside the window.
  for (let c = 0; c < W; c += 2) assert.equal(w.accept(c), true);
  for (let top = W; top < W + 64; top++) {
    assert.equal(w.accept(top), true);
    for (let c = top - W + 1; c < W; c++) {
      assert.equal(w.check(c), c % 2 === 1, `top ${top}, counter ${c}`);
    }
  }
});

Deno.test("ReplayWindow clears everything when it jumps far ahead", () => {
  const w = new ReplayWindow();
  for (let c = 0; c < W; c++) w.accept(c);
  const far = 10 * W + 3;
  assert.equal(w.accept(far), true);
  assert.equal(w.highest, far);
  for (let c = far - W + 1; c < far; c++) assert.equal(w.check(c), true, `counter ${c}`);
  for (let c = 0; c < W; c++) assert.equal(w.check(c), false, `counter ${c}`);
});

Deno.test("ReplayWindow clears stale bits when it jumps by just under, at and over the ring size", () => {
  for (const jump of [W - 32, W - 1, W, W + 1, W + 32, W + 33]) {
    const w = new ReplayWindow();
    for (let c = 0; c < W; c++) w.accept(c);
    const top = W - 1 + jump;
    assert.equal(w.accept(top), true);
    for (let c = Math.max(0, top - W + 1); c < top; c++) {
      assert.equal(w.check(c), c >= W, `jump ${jump}, counter ${c}`);
    }
  }
});

Deno.test("ReplayWindow accepts counters up to REJECT_AFTER_MESSAGES - 1 and refuses the limit", () => {
  const w = new ReplayWindow();
  const last = REJECT_AFTER_MESSAGES - 1;
  assert.equal(w.accept(last - 2), true);
  assert.equal(w.accept(last), true);
  assert.equal(w.highest, last);
  assert.equal(w.accept(last - 1), true);
  assert.equal(w.accept(last - 2), false);
  assert.equal(w.accept(last), false);
  assert.equal(w.check(REJECT_AFTER_MESSAGES), false);
  assert.equal(w.accept(REJECT_AFTER_MESSAGES), false);
  assert.equal(w.accept(2 ** 53), false);
  assert.equal(w.highest, last);
});

Deno.test("ReplayWindow refuses negative, fractional and non-finite counters", () => {
  const w = new ReplayWindow();
  for (const c of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.equal(w.check(c), false, `counter ${c}`);
    assert.equal(w.accept(c), false, `counter ${c}`);
  }
  assert.equal(w.highest, 0);
  assert.equal(w.accept(0), true);
});

Deno.test("ReplayWindow lets only the first accept() win when the same counter passed check() twice", () => {
  const w = new ReplayWindow();
  // Two copies of packet 5 are decrypting at once; both passed the check.
  assert.equal(w.check(5), true);
  assert.equal(w.check(5), true);
  // Whichever decryption completes first wins; the second copy is dropped.
  assert.equal(w.accept(5), true);
  assert.equal(w.accept(5), false);
});

Deno.test("ReplayWindow refuses at accept() a counter that fell out of the window while in flight", () => {
  const w = new ReplayWindow();
  assert.equal(w.check(3), true);
  assert.equal(w.accept(3 + W), true);
  assert.equal(w.accept(3), false);
});

// ---- Model test ----

/** Obviously correct reference: every accepted counter in a Set. */
class ModelWindow {
  seen = new Set<number>();
  highest = 0;
  check(c: number): boolean {
    if (!Number.isInteger(c) || c < 0 || c >= REJECT_AFTER_MESSAGES) return false;
    if (this.seen.has(c)) return false;
    return c > this.highest || this.highest - c < W;
  }
  accept(c: number): boolean {
    if (!this.check(c)) return false;
    this.seen.add(c);
    this.highest = Math.max(this.highest, c);
    return true;
  }
}

type Op = { accept: boolean; counter: number };

function runModel(ops: Op[]): void {
  const real = new ReplayWindow();
  const model = new ModelWindow();
  for (const [i, { accept, counter }] of ops.entries()) {
    const got = accept ? real.accept(counter) : real.check(counter);
    const want = accept ? model.accept(counter) : model.check(counter);
    assert.equal(got, want, `op ${i}: ${accept ? "accept" : "check"}(${counter})`);
    assert.equal(real.highest, model.highest, `op ${i}: highest`);
  }
}

Deno.test("ReplayWindow agrees with a Set-based model over random absolute counters", () => {
  const counter = fc.oneof(
    fc.integer({ min: 0, max: 64 }),
    fc.integer({ min: 0, max: 3 * W }),
    fc.integer({ min: REJECT_AFTER_MESSAGES - 3 * W, max: REJECT_AFTER_MESSAGES + 2 }),
    fc.constantFrom(-1, 0.5, W - 1, W, W + 1),
  );
  const op = fc.record({ accept: fc.boolean(), counter });
  fc.assert(fc.property(fc.array(op, { maxLength: 300 }), runModel), { numRuns: 300 });
});

Deno.test("ReplayWindow agrees with a Set-based model over counters near its current edge", () => {
  // Each step picks a counter relative to the highest accepted so far, so the
  // sequence keeps probing the window's edge and the word boundaries.
  const step = fc.record({
    accept: fc.boolean(),
    delta: fc.oneof(
      fc.integer({ min: -40, max: 40 }),
      fc.integer({ min: -W - 40, max: -W + 40 }),
      fc.integer({ min: W - 40, max: W + 40 }),
      fc.integer({ min: -2 * W, max: 2 * W }),
    ),
  });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 400 }), (steps) => {
      const real = new ReplayWindow();
      const model = new ModelWindow();
      for (const [i, { accept, delta }] of steps.entries()) {
        const counter = Math.max(0, model.highest + delta);
        const got = accept ? real.accept(counter) : real.check(counter);
        const want = accept ? model.accept(counter) : model.check(counter);
        assert.equal(got, want, `step ${i}: ${accept ? "accept" : "check"}(${counter})`);
        assert.equal(real.highest, model.highest, `step ${i}: highest`);
      }
    }),
    { numRuns: 300 },
  );
});

Deno.test("ReplayWindow holds no bitmap while counters arrive in order, and makes one at the first gap that still refuses every counter seen", () => {
  const w = new ReplayWindow();
  for (let c = 0; c < 3 * W; c++) assert.equal(w.accept(c), true);
  assert.equal(w.bitmapBytes, 0, "in order: the highest counter says everything");
  assert.equal(w.check(3 * W - 1), false, "a duplicate is refused without a bitmap");
  assert.equal(w.check(0), false, "so is a counter far behind");
  // A gap: 3W is skipped (lost, or still on its way).
  assert.equal(w.accept(3 * W + 1), true);
  assert.ok(w.bitmapBytes > 0, "the first gap makes the bitmap");
  for (let c = 2 * W + 2; c <= 3 * W + 1; c++) {
    if (c !== 3 * W) assert.equal(w.check(c), false, `counter ${c} was accepted before`);
  }
  assert.equal(w.check(2 * W + 1), false, "a window behind");
  assert.equal(w.accept(3 * W), true, "the late counter is taken once");
  assert.equal(w.accept(3 * W), false);
});

Deno.test("ReplayWindow agrees with a Set-based model when counters mostly arrive in order", () => {
  // Mostly the next counter, sometimes a repeat, a small jump ahead (a gap),
  // or a late one: the traffic of a real session, crossing from no bitmap to one.
  const step = fc.record({
    accept: fc.boolean(),
    delta: fc.oneof(
      { weight: 8, arbitrary: fc.constant(1) },
      { weight: 1, arbitrary: fc.integer({ min: -5, max: 0 }) },
      { weight: 1, arbitrary: fc.integer({ min: 2, max: 40 }) },
      { weight: 1, arbitrary: fc.integer({ min: -W - 2, max: -W + 2 }) },
    ),
  });
  fc.assert(
    fc.property(fc.array(step, { maxLength: 400 }), (steps) => {
      const real = new ReplayWindow();
      const model = new ModelWindow();
      let next = 0;
      for (const [i, { accept, delta }] of steps.entries()) {
        const counter = Math.max(0, next - 1 + delta);
        const got = accept ? real.accept(counter) : real.check(counter);
        const want = accept ? model.accept(counter) : model.check(counter);
        assert.equal(got, want, `step ${i}: ${accept ? "accept" : "check"}(${counter})`);
        assert.equal(real.highest, model.highest, `step ${i}: highest`);
        if (got && accept) next = Math.max(next, counter + 1);
      }
    }),
    { numRuns: 500 },
  );
});
