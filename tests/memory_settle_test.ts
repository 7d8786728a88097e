/** The daemon gives back what a burst of datagrams left behind. */
import assert from "node:assert/strict";
import {
  DATAGRAM_CHURN,
  exposedGc,
  MemorySettle,
  type MemorySettleLimits,
  type V8Gc,
} from "../src/daemon/memory_settle.ts";

const LIMITS: MemorySettleLimits = {
  minorEveryBytes: 10_000,
  burstBytes: 50_000,
  quietBytes: 1000,
  intervalMs: 30_000,
  slackBytes: 800,
};

function harness(heap = { total: 2000, used: 1000 }) {
  const calls: string[] = [];
  const gc: V8Gc = (o) => calls.push(o?.type === "minor" ? "minor" : `major:${o?.flavor}`);
  let now = 0;
  const settle = new MemorySettle({
    gc,
    heap: () => heap,
    now: () => now,
    limits: LIMITS,
  });
  return { settle, calls, heap, advance: (ms: number) => now += ms };
}

/** `n` datagrams of `size` bytes each. */
function receive(settle: MemorySettle, n: number, size: number): void {
  for (let i = 0; i < n; i++) settle.received(size);
}

Deno.test("memory settle: a minor GC each time the datagrams' churn passes the limit", () => {
  const { settle, calls } = harness();
  const each = 2000 - DATAGRAM_CHURN; // 2,000 bytes of churn a datagram
  receive(settle, 4, each);
  assert.deepEqual(calls, []);
  receive(settle, 1, each);
  assert.deepEqual(calls, ["minor"]);
  receive(settle, 10, each);
  assert.deepEqual(calls, ["minor", "minor", "minor"]);
  assert.deepEqual(settle.counts, { minor: 3, settled: 0 });
});

Deno.test("memory settle: one memory-reducing GC on the first quiet beat after a burst", () => {
  const { settle, calls, advance } = harness();
  receive(settle, 60, 1000 - DATAGRAM_CHURN); // 60,000 bytes: a burst
  calls.length = 0;
  settle.beat(); // the beat the burst fell in is not quiet
  assert.deepEqual(calls, []);
  advance(1000);
  settle.beat();
  assert.deepEqual(calls, ["major:last-resort"]);
  advance(1000);
  settle.beat();
  assert.deepEqual(calls, ["major:last-resort"], "a burst is settled once");
  assert.deepEqual(settle.counts.settled, 1);
});

Deno.test("memory settle: no settle without a burst, while busy, or with little to give back", () => {
  const small = harness();
  receive(small.settle, 40, 1000 - DATAGRAM_CHURN); // 40,000 bytes: under the burst
  small.settle.beat();
  small.settle.beat();
  assert.deepEqual(small.calls.filter((c) => c !== "minor"), []);

  const busy = harness();
  for (let beat = 0; beat < 5; beat++) {
    receive(busy.settle, 30, 1000 - DATAGRAM_CHURN); // 30,000 bytes a beat: never quiet
    busy.settle.beat();
  }
  assert.deepEqual(busy.calls.filter((c) => c !== "minor"), []);
  busy.settle.beat();
  assert.deepEqual(busy.calls.filter((c) => c !== "minor"), ["major:last-resort"]);

  const tight = harness({ total: 1500, used: 1000 }); // 500 bytes of slack: under 800
  receive(tight.settle, 60, 1000 - DATAGRAM_CHURN);
  tight.settle.beat();
  tight.settle.beat();
  assert.deepEqual(tight.calls.filter((c) => c !== "minor"), []);
  // The burst was looked at and let go: more slack later does not settle it.
  tight.heap.total = 5000;
  tight.settle.beat();
  assert.deepEqual(tight.calls.filter((c) => c !== "minor"), []);
});

Deno.test("memory settle: at most one settle per interval, however bursts come", () => {
  const { settle, calls, advance } = harness();
  const majors = () => calls.filter((c) => c !== "minor").length;
  for (let i = 0; i < 20; i++) {
    receive(settle, 60, 1000 - DATAGRAM_CHURN);
    settle.beat();
    advance(1000);
    settle.beat(); // quiet
    advance(1000);
  }
  // 40 s of alternating bursts and quiet beats: settles at 1 s and 31 s... at most two.
  assert.deepEqual(majors(), 2);
});

Deno.test("memory settle: without an exposed gc it counts nothing and calls nothing", () => {
  const settle = new MemorySettle({ gc: null, heap: () => ({ total: 1e9, used: 0 }) });
  receive(settle, 100_000, 1400);
  settle.beat();
  settle.beat();
  assert.deepEqual(settle.counts, { minor: 0, settled: 0 });
});

Deno.test("memory settle: exposedGc is V8's gc where the flags expose it, else null", async () => {
  const g = globalThis as { gc?: unknown };
  const before = g.gc;
  try {
    const fake = () => {};
    g.gc = fake;
    assert.equal(exposedGc(), fake);
    g.gc = undefined;
    assert.equal(exposedGc(), null);
  } finally {
    g.gc = before;
  }
  const { RUNTIME_V8_FLAGS } = await import("../src/constants.ts");
  assert.ok(RUNTIME_V8_FLAGS.split(",").includes("--expose-gc"), RUNTIME_V8_FLAGS);
});
