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
  quietBytes: 1000,
  intervalMs: 15_000,
  slackBytes: 800,
  trimAfterBytes: 50_000,
  trimIntervalMs: 5_000,
  keepFreeBytes: 30_000,
};

/** A settle over a fake gc whose full GC gives back all the heap not in use. */
function harness(heap = { total: 2000, used: 1000 }, withTrim = false) {
  const calls: string[] = [];
  const settledAt: number[] = [];
  let now = 0;
  const gc: V8Gc = (o) => {
    if (o?.type === "minor") return calls.push("minor");
    calls.push(`major:${o?.flavor}`);
    settledAt.push(now);
    heap.total = heap.used;
  };
  const trim = withTrim ? () => void calls.push("trim") : null;
  const settle = new MemorySettle({
    gc,
    trim,
    heap: () => heap,
    now: () => now,
    limits: LIMITS,
  });
  return { settle, calls, settledAt, heap, advance: (ms: number) => now += ms };
}

const majors = (calls: string[]) => calls.filter((c) => c !== "minor");

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
  assert.deepEqual(settle.counts, { minor: 3, settled: 0, trimmed: 0 });
});

Deno.test("memory settle: one memory-reducing GC on a quiet beat once the heap grew", () => {
  const { settle, calls, heap, advance } = harness();
  settle.beat(); // the first beat takes the heap's size as it is
  heap.total = 3000; // grown by 1,000 (>= 800), 2,000 not in use
  receive(settle, 1, 2000 - DATAGRAM_CHURN); // busy: 2,000 bytes of churn this beat
  calls.length = 0;
  settle.beat();
  assert.deepEqual(calls, [], "not while datagrams arrive");
  advance(1000);
  settle.beat();
  assert.deepEqual(calls, ["major:last-resort"]);
  assert.equal(heap.total, 1000);
  advance(20_000);
  settle.beat();
  assert.deepEqual(majors(calls), ["major:last-resort"], "nothing grew since");
  assert.equal(settle.counts.settled, 1);
});

Deno.test("memory settle: no settle when the heap did not grow, or holds little beyond its use", () => {
  const still = harness({ total: 5000, used: 1000 }); // much reserve, but it was there at the start
  for (let i = 0; i < 5; i++) still.settle.beat();
  assert.deepEqual(majors(still.calls), []);

  const full = harness();
  full.settle.beat();
  full.heap.total = 3000;
  full.heap.used = 2500; // grown by 1,000, but only 500 not in use
  full.settle.beat();
  assert.deepEqual(majors(full.calls), []);
  full.heap.used = 2000; // 1,000 not in use now
  full.settle.beat();
  assert.deepEqual(majors(full.calls), ["major:last-resort"]);
});

Deno.test("memory settle: at most one settle per interval, however the heap grows", () => {
  const { settle, settledAt, heap, advance } = harness();
  for (let s = 0; s < 40; s++) {
    advance(1000);
    heap.total += 1000;
    settle.beat();
  }
  assert.deepEqual(settledAt, [2000, 17_000, 32_000]);
});

Deno.test("memory settle: without an exposed gc it counts nothing and calls nothing", () => {
  const settle = new MemorySettle({ gc: null, heap: () => ({ total: 1e9, used: 0 }) });
  receive(settle, 100_000, 1400);
  settle.beat();
  settle.beat();
  assert.deepEqual(settle.counts, { minor: 0, settled: 0, trimmed: 0 });
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

Deno.test("memory settle: enough datagrams bring a settle and a trim of the C heap on a quiet beat, heap grown or not", () => {
  const { settle, calls, advance } = harness({ total: 2000, used: 1000 }, true);
  settle.beat();
  const each = 2000 - DATAGRAM_CHURN;
  receive(settle, 24, each); // 48,000 bytes of churn: under trimAfterBytes
  settle.beat(); // busy beat
  advance(1000);
  settle.beat(); // quiet, but not enough churn yet
  assert.deepEqual(majors(calls), []);
  receive(settle, 1, each); // 50,000
  settle.beat(); // busy
  advance(1000);
  settle.beat(); // quiet: the buffers' full GC, then the trim
  assert.deepEqual(majors(calls), ["major:last-resort", "trim"]);
  assert.deepEqual(settle.counts, { minor: 5, settled: 1, trimmed: 1 }); // a minor GC each 10,000
  // The churn starts again from zero, and the interval holds.
  receive(settle, 25, each);
  settle.beat();
  advance(1000);
  settle.beat();
  assert.deepEqual(majors(calls), ["major:last-resort", "trim"], "not within the interval");
  advance(LIMITS.trimIntervalMs); // the churn's own interval, shorter than the heap's
  settle.beat();
  assert.deepEqual(majors(calls), ["major:last-resort", "trim", "major:last-resort", "trim"]);
});

Deno.test("memory settle: a settle of V8's heap is followed by a trim of the C heap", () => {
  const { settle, calls, heap } = harness({ total: 2000, used: 1000 }, true);
  settle.beat();
  heap.total = 3000;
  settle.beat();
  assert.deepEqual(majors(calls), ["major:last-resort", "trim"]);
  assert.deepEqual(settle.counts, { minor: 0, settled: 1, trimmed: 1 });
});

Deno.test("memory settle: work that allocates beyond its datagrams makes the beat busy", () => {
  const { settle, calls, heap, advance } = harness();
  settle.beat();
  heap.total = 3000; // grown enough to settle on a quiet beat
  settle.allocated(1000); // e.g. handshakes: as much as the quiet limit
  settle.beat();
  assert.deepEqual(majors(calls), [], "not in the middle of the work");
  settle.allocated(999);
  advance(1000);
  settle.beat();
  assert.deepEqual(majors(calls), ["major:last-resort"]);
});

Deno.test("memory settle: sent datagrams are churn like received ones (a stream's sender receives only ACKs)", () => {
  const { settle, calls, advance } = harness({ total: 2000, used: 1000 }, true);
  const each = 2000 - DATAGRAM_CHURN;
  for (let i = 0; i < 4; i++) settle.sent(each);
  settle.received(each);
  assert.deepEqual(calls, ["minor"]);
  // A beat that only sent is not quiet: no settle pauses the sender.
  for (let i = 0; i < 30; i++) settle.sent(each);
  advance(20_000);
  settle.beat();
  assert.deepEqual(majors(calls), []);
  // Once quiet, the churn it sent brings the settle and the trim.
  advance(1000);
  settle.beat();
  assert.deepEqual(majors(calls), ["major:last-resort", "trim"]);
});

Deno.test("memory settle: the C heap keeps its free pages from the first minor GC to the next quiet beat", () => {
  const kept: (number | null)[] = [];
  const settle = new MemorySettle({
    gc: () => {},
    heap: () => ({ total: 1000, used: 1000 }),
    now: () => 0,
    limits: LIMITS,
    keepFree: (bytes) => void kept.push(bytes),
  });
  const each = 2000 - DATAGRAM_CHURN;
  for (let i = 0; i < 4; i++) settle.received(each);
  assert.deepEqual(kept, []); // no minor GC yet: an idle daemon's heap is left as it is
  for (let i = 0; i < 20; i++) settle.sent(each); // four minor GCs, one setting
  assert.deepEqual(kept, [30_000]);
  settle.beat(); // busy
  assert.deepEqual(kept, [30_000]);
  settle.beat(); // quiet: back to the allocator's default
  assert.deepEqual(kept, [30_000, null]);
  settle.beat();
  for (let i = 0; i < 5; i++) settle.received(each);
  assert.deepEqual(kept, [30_000, null, 30_000]);
});
