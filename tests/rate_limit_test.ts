import assert from "node:assert/strict";
import { FORGET_PER_SWEEP, RateLimiter } from "../src/session/rate_limit.ts";

/** A limiter on a clock the test moves by hand. */
function limiter(burst: number, perSecond: number, maxKeys = 1000) {
  const clock = { t: 1_000 };
  const l = new RateLimiter({ burst, perSecond, maxKeys, now: () => clock.t });
  return { l, clock };
}

function allowed(l: RateLimiter, key: string, tries: number): number {
  let n = 0;
  for (let i = 0; i < tries; i++) if (l.allow(key)) n++;
  return n;
}

Deno.test("RateLimiter allows a burst, then refuses until a token refills", () => {
  const { l, clock } = limiter(3, 2);
  assert.equal(allowed(l, "a", 10), 3);
  clock.t += 499;
  assert.equal(l.allow("a"), false);
  clock.t += 1;
  assert.equal(l.allow("a"), true);
  assert.equal(l.allow("a"), false);
});

Deno.test("RateLimiter refills no more than the burst however long a key was idle", () => {
  const { l, clock } = limiter(3, 2);
  assert.equal(allowed(l, "a", 3), 3);
  clock.t += 3_600_000;
  assert.equal(allowed(l, "a", 10), 3);
});

Deno.test("RateLimiter accumulates fractional refills across calls", () => {
  const { l, clock } = limiter(1, 10);
  assert.equal(l.allow("a"), true);
  // 10 per second = one token per 100 ms; probing every 25 ms must not lose time.
  let granted = 0;
  for (let i = 0; i < 40; i++) {
    clock.t += 25;
    if (l.allow("a")) granted++;
  }
  assert.equal(granted, 10);
});

Deno.test("RateLimiter spends a cost of several tokens at once, never more than the bucket holds", () => {
  const { l, clock } = limiter(10, 5);
  assert.equal(l.allow("a", 11), false, "over the burst, from a full bucket");
  assert.equal(l.size, 0);
  assert.equal(l.allow("a", 7), true);
  assert.equal(l.allow("a", 4), false, "3 left");
  assert.equal(l.allow("a", 3), true);
  clock.t += 1000;
  assert.equal(l.allow("a", 6), false, "5 refilled");
  assert.equal(l.allow("a", 5), true);
  clock.t += 3_600_000;
  assert.equal(l.allow("a", 11), false, "refilled to the burst, no more");
  assert.equal(l.allow("a", 10), true);
});

Deno.test("RateLimiter keeps a separate bucket per key", () => {
  const { l } = limiter(2, 1);
  assert.equal(allowed(l, "198.18.0.1:1", 5), 2);
  assert.equal(allowed(l, "198.18.0.2:1", 5), 2);
  assert.equal(l.size, 2);
});

Deno.test("RateLimiter never tracks more keys than its cap under a flood of distinct keys", () => {
  const { l, clock } = limiter(5, 1, 100);
  for (let i = 0; i < 20_000; i++) {
    assert.equal(l.allow(`spoofed-${i}`), true);
    assert.ok(l.size <= 100, `size ${l.size} after ${i + 1} keys`);
    if (i % 1000 === 0) clock.t += 1;
  }
  assert.equal(l.size, 100);
});

Deno.test("RateLimiter forgets the least recently used key first", () => {
  const { l } = limiter(1, 0.001, 2);
  assert.equal(l.allow("a"), true);
  assert.equal(l.allow("b"), true);
  // "a" is throttled and was just used, so "b" is the one forgotten for "c".
  assert.equal(l.allow("a"), false);
  assert.equal(l.allow("c"), true);
  assert.equal(l.allow("a"), false);
  assert.equal(l.allow("c"), false);
  assert.equal(l.size, 2);
});

Deno.test("RateLimiter refills nothing and drains nothing when the clock steps back", () => {
  const { l, clock } = limiter(2, 1);
  assert.equal(allowed(l, "a", 2), 2);
  clock.t -= 10_000;
  assert.equal(l.allow("a"), false);
  clock.t += 10_000;
  assert.equal(l.allow("a"), false);
  clock.t += 1_000;
  assert.equal(l.allow("a"), true);
});

Deno.test("RateLimiter works with the default monotonic clock", () => {
  const l = new RateLimiter({ burst: 2, perSecond: 0.001, maxKeys: 10 });
  assert.equal(allowed(l, "a", 5), 2);
});

Deno.test("RateLimiter refuses a burst below 1, a non-positive rate or key cap", () => {
  const ok = { burst: 1, perSecond: 1, maxKeys: 1 };
  for (
    const bad of [
      { burst: 0 },
      { burst: Number.NaN },
      { perSecond: 0 },
      { perSecond: -1 },
      { perSecond: Number.POSITIVE_INFINITY },
      { maxKeys: 0 },
      { maxKeys: 1.5 },
    ]
  ) {
    assert.throws(() => new RateLimiter({ ...ok, ...bad }), RangeError, JSON.stringify(bad));
  }
});

Deno.test("RateLimiter forgets keys whose bucket is full again, a few for each key it adds", () => {
  const { l, clock } = limiter(5, 1, 10_000);
  for (let i = 0; i < 1000; i++) assert.equal(l.allow(`k-${i}`), true);
  assert.equal(l.size, 1000);
  // One token spent each, refilled after a second: every bucket is full again.
  clock.t += 999;
  assert.equal(l.allow("new-0"), true);
  assert.equal(l.size, 1001, "no bucket is full yet, none forgotten");
  clock.t += 1;
  for (let i = 0; i < 10; i++) l.allow("new-0");
  assert.equal(l.size, 1001, "a key already tracked forgets none");
  for (let i = 1; i <= 500; i++) l.allow(`new-${i}`);
  assert.equal(l.size, 501, "each key added forgot two full buckets");
  // Forgotten keys start from a full bucket, exactly as if they had been kept.
  assert.equal(allowed(l, "k-0", 10), 5);
});

Deno.test("RateLimiter gives the verdicts of a token bucket kept for every key", () => {
  // A plain token bucket per key, never forgotten, against the limiter.
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (const [burst, perSecond] of [[1, 10], [3, 2], [10, 5], [4, 0.5]] as const) {
    const { l, clock } = limiter(burst, perSecond);
    const model = new Map<string, { tokens: number; at: number }>();
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      if (random() < 0.1) clock.t += Math.floor(random() * 100);
      // Hot keys, throttled often, among many cold ones that come and go.
      const key = random() < 0.7
        ? `hot-${Math.floor(random() * 5)}`
        : `k-${Math.floor(random() * 500)}`;
      const cost = random() < 0.8 ? 1 : 1 + Math.floor(random() * burst);
      const b = model.get(key) ?? { tokens: burst, at: clock.t };
      b.tokens = Math.min(burst, b.tokens + (clock.t - b.at) * perSecond / 1000);
      b.at = clock.t;
      const expected = b.tokens + 1e-9 >= cost;
      if (expected) b.tokens -= cost;
      model.set(key, b);
      assert.equal(l.allow(key, cost), expected, `call ${i}: ${key} cost ${cost}`);
      if (!expected) refused++;
    }
    assert.ok(
      refused > 500 && refused < 19_500,
      `${refused} of 20,000 refused: both verdicts occur`,
    );
    // Once every bucket is full again, the keys met are forgotten.
    clock.t += burst / perSecond * 1000;
    const tracked = l.size;
    for (let i = 0; i < tracked; i++) l.allow(`last-${i}`);
    assert.equal(l.size, tracked, "the keys added, every earlier one forgotten");
  }
});

Deno.test("RateLimiter.forgetFull() forgets full buckets from the front, at most `max`, up to the first that is not full", () => {
  const { l, clock } = limiter(2, 1, 100_000);
  for (let i = 0; i < 50_000; i++) l.allow(`spoofed-${i}`);
  clock.t += 500;
  assert.equal(l.allow("busy"), true);
  assert.equal(l.allow("busy"), true);
  assert.equal(l.forgetFull(), 0, "half refilled: none is full");
  assert.equal(l.size, 50_001);
  clock.t += 500;
  assert.equal(l.forgetFull(20_000), 20_000, "at most max");
  let rest = 0;
  for (let n = l.forgetFull(); n > 0; n = l.forgetFull()) {
    assert.ok(n <= FORGET_PER_SWEEP, `${n} in one call: at most FORGET_PER_SWEEP by default`);
    rest += n;
  }
  assert.equal(rest, 30_000, "then the rest of the full ones");
  assert.equal(l.size, 1, "the key still refilling stays, with its state");
  assert.equal(l.allow("busy"), false, "two tokens spent 500 ms ago: half of one back");
  clock.t += 1000;
  assert.equal(l.forgetFull(), 0, "full again only 1,500 ms after it spent two");
  clock.t += 500;
  assert.equal(l.forgetFull(), 1);
  assert.equal(l.size, 0);
});
