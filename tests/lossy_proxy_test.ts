import assert from "node:assert/strict";
import {
  type Emission,
  type LinkConfig,
  type LinkCounters,
  LossyLink,
  LossyProxy,
  mulberry32,
} from "./_lossy_proxy.ts";
import {
  endpointOf,
  okOf,
  PAIR_A_NAME,
  PAIR_B_NAME,
  type PilotResult,
  startNode,
  stopAll,
  type TestNode,
  waitFor,
} from "./_daemon_harness.ts";

const FAULTY: Partial<LinkConfig> = {
  loss: 0.1,
  reorder: 0.1,
  reorderDepth: 3,
  duplicate: 0.05,
  corrupt: 0.05,
};

function datagram(i: number, size = 64): Uint8Array {
  const bytes = new Uint8Array(size);
  new DataView(bytes.buffer).setUint32(0, i);
  bytes.fill(i & 0xff, 4);
  return bytes;
}

function describe(out: Emission[]): string[] {
  return out.map((e) => `${e.seq}${e.copy ? "+" : ""}${e.corrupted ? "!" : ""}:${e.bytes.toHex()}`);
}

function runLink(seed: number, config: Partial<LinkConfig>, n: number): {
  trace: string[];
  counters: LinkCounters;
  held: number;
} {
  const link = new LossyLink(seed, config);
  const trace: string[] = [];
  for (let i = 0; i < n; i++) trace.push(...describe(link.push(datagram(i))));
  return { trace, counters: link.counters, held: link.held };
}

function assertAddsUp(c: LinkCounters, held: number): void {
  assert.equal(c.forwarded + held + c.discarded, c.received - c.dropped + c.duplicated);
}

Deno.test("mulberry32() gives the same sequence for the same seed and another for another seed", () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  const c = mulberry32(43);
  const sa = Array.from({ length: 100 }, a);
  assert.deepEqual(Array.from({ length: 100 }, b), sa);
  assert.notDeepEqual(Array.from({ length: 100 }, c), sa);
  assert.ok(sa.every((v) => v >= 0 && v < 1));
});

Deno.test("LossyLink drops, duplicates, reorders and corrupts exactly the same datagrams twice with one seed", () => {
  const first = runLink(7, FAULTY, 2000);
  const second = runLink(7, FAULTY, 2000);
  assert.deepEqual(second, first);
  // Every kind of fault happened (a fixed seed, so this cannot flake).
  const c = first.counters;
  assert.ok(c.dropped > 0 && c.duplicated > 0 && c.reordered > 0 && c.corrupted > 0);
  // Another seed gives other faults.
  assert.notDeepEqual(runLink(8, FAULTY, 2000).trace, first.trace);
});

Deno.test("LossyLink with no faults forwards every datagram at once, in order, unchanged", () => {
  const link = new LossyLink(1);
  for (let i = 0; i < 500; i++) {
    const out = link.push(datagram(i));
    assert.equal(out.length, 1);
    assert.deepEqual(out[0]!.bytes, datagram(i));
    assert.equal(out[0]!.seq, i);
    assert.equal(out[0]!.delayMs, 0);
  }
  assert.deepEqual(link.counters, {
    received: 500,
    dropped: 0,
    reordered: 0,
    duplicated: 0,
    corrupted: 0,
    delayed: 0,
    forwarded: 500,
    flushed: 0,
    discarded: 0,
  });
});

Deno.test("LossyLink counters add up, held datagrams included, and a flush releases the rest", () => {
  const link = new LossyLink(99, { ...FAULTY, reorder: 0.3, reorderDepth: 5 });
  let emitted = 0;
  let corruptedOut = 0;
  for (let i = 0; i < 1000; i++) {
    const out = link.push(datagram(i));
    emitted += out.length;
    corruptedOut += out.filter((e) => e.corrupted && !e.copy).length;
    assertAddsUp(link.counters, link.held);
  }
  assert.ok(link.held > 0, "the last datagrams are still held back");
  emitted += link.flush().length;
  const c = link.counters;
  assert.equal(link.held, 0);
  assert.equal(emitted, c.forwarded);
  assert.equal(c.forwarded, c.received - c.dropped + c.duplicated);
  assert.equal(corruptedOut, c.corrupted);
  assert.ok(c.flushed > 0);
});

Deno.test("LossyLink releases a held datagram after exactly reorderDepth more arrivals", () => {
  // reorder = 1: everything is held, so datagram i comes out when i + 3 arrives.
  const link = new LossyLink(5, { reorder: 1, reorderDepth: 3 });
  const seqs: number[][] = [];
  for (let i = 0; i < 6; i++) seqs.push(link.push(datagram(i)).map((e) => e.seq));
  assert.deepEqual(seqs, [[], [], [], [0], [1], [2]]);
  assert.deepEqual(link.flush().map((e) => e.seq), [3, 4, 5]);
});

Deno.test("LossyLink flips exactly one bit of a corrupted datagram", () => {
  const link = new LossyLink(3, { corrupt: 1 });
  for (let i = 0; i < 200; i++) {
    const [e] = link.push(datagram(i, 100));
    let bits = 0;
    const original = datagram(i, 100);
    for (let j = 0; j < 100; j++) {
      let x = e!.bytes[j]! ^ original[j]!;
      for (; x; x &= x - 1) bits++;
    }
    assert.equal(bits, 1);
  }
});

Deno.test("LossyLink refuses a probability outside 0 to 1 and a reorder depth below 1", () => {
  assert.throws(() => new LossyLink(1, { loss: 1.5 }), RangeError);
  assert.throws(() => new LossyLink(1, { corrupt: -0.1 }), RangeError);
  assert.throws(() => new LossyLink(1, { reorderDepth: 0 }), RangeError);
  assert.throws(() => new LossyLink(1, { delayMs: Number.NaN }), RangeError);
});

// A UDP endpoint that records what reaches it.
class Sink {
  readonly conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  readonly got: Uint8Array[] = [];
  readonly done: Promise<void>;

  constructor() {
    this.done = (async () => {
      try {
        for (;;) this.got.push((await this.conn.receive())[0]);
      } catch {
        // closed
      }
    })();
  }

  get endpoint() {
    return endpointOf(`127.0.0.1:${(this.conn.addr as Deno.NetAddr).port}`);
  }

  async close(): Promise<void> {
    this.conn.close();
    await this.done;
  }
}

async function sendAll(from: Deno.DatagramConn, to: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await from.send(datagram(i), { transport: "udp", hostname: "127.0.0.1", port: to });
    // Pacing keeps loopback socket buffers far from full, so arrival order is send order.
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 1));
  }
}

async function throughProxy(seed: number, config: Partial<LinkConfig>, n: number) {
  const b = new Sink();
  const proxy = new LossyProxy({
    target: b.endpoint,
    seed,
    aToB: { ...config, holdMs: 3_600_000 },
  });
  const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await sendAll(a, proxy.listen.port, n);
    // Only arrivals release held datagrams (the hold timer is out of reach), so
    // nothing depends on timing; the rest is released once all n arrived.
    await waitFor("every arrival", () => proxy.counters.a_to_b.received === n);
    proxy.flush();
    await proxy.drain();
    await waitFor("the sink to get every datagram", () => b.got.length === proxy.log.length);
    return {
      got: b.got.map((x) => x.toHex()),
      log: proxy.log.map((e) => ({ ...e })),
      counters: proxy.counters,
    };
  } finally {
    a.close();
    await proxy.close();
    await b.close();
  }
}

Deno.test("LossyProxy does exactly the same to the same datagrams twice with one seed", async () => {
  const first = await throughProxy(11, FAULTY, 400);
  const second = await throughProxy(11, FAULTY, 400);
  assert.deepEqual(second.log, first.log);
  assert.deepEqual(second.got, first.got);
  assert.deepEqual(second.counters, first.counters);
  const c = first.counters.a_to_b;
  assert.ok(c.dropped > 0 && c.duplicated > 0 && c.reordered > 0 && c.corrupted > 0);
  assert.equal(first.got.length, c.forwarded);
});

Deno.test("LossyProxy with no faults forwards everything both ways, in order, and learns A from its first datagram", async () => {
  const b = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const bPort = (b.addr as Deno.NetAddr).port;
  const proxy = new LossyProxy({ target: endpointOf(`127.0.0.1:${bPort}`), seed: 1 });
  const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const n = 100;
    const toB: string[] = [];
    const bGot = (async () => {
      let from: Deno.NetAddr | undefined;
      for (let i = 0; i < n; i++) {
        const [bytes, addr] = await b.receive();
        toB.push(bytes.toHex());
        from = addr as Deno.NetAddr;
      }
      // B answers the proxy's back socket; the proxy relays to A.
      for (let i = 0; i < n; i++) await b.send(datagram(1000 + i), from!);
    })();
    await sendAll(a, proxy.listen.port, n);
    await bGot;
    const toA: string[] = [];
    for (let i = 0; i < n; i++) toA.push((await a.receive())[0].toHex());
    assert.deepEqual(toB, Array.from({ length: n }, (_, i) => datagram(i).toHex()));
    assert.deepEqual(toA, Array.from({ length: n }, (_, i) => datagram(1000 + i).toHex()));
    assert.equal(proxy.client?.port, (a.addr as Deno.NetAddr).port);
    const c = proxy.counters;
    for (const d of [c.a_to_b, c.b_to_a]) {
      assert.equal(d.received, n);
      assert.equal(d.forwarded, n);
      assert.equal(d.dropped + d.duplicated + d.reordered + d.corrupted + d.delayed, 0);
    }
    assert.equal(c.strangers, 0);
  } finally {
    a.close();
    b.close();
    await proxy.close();
  }
});

Deno.test("LossyProxy ignores a second client and counts it as a stranger", async () => {
  const sink = new Sink();
  const proxy = new LossyProxy({ target: sink.endpoint, seed: 1 });
  const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const other = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await sendAll(a, proxy.listen.port, 1);
    await waitFor("the first datagram", () => sink.got.length === 1);
    await sendAll(other, proxy.listen.port, 1);
    await waitFor("the stranger to be counted", () => proxy.counters.strangers === 1);
    assert.equal(proxy.counters.a_to_b.received, 1);
  } finally {
    a.close();
    other.close();
    await proxy.close();
    await sink.close();
  }
});

Deno.test("LossyProxy delays datagrams and close() cancels those still waiting", async () => {
  const sink = new Sink();
  const proxy = new LossyProxy({
    target: sink.endpoint,
    seed: 2,
    aToB: { delayMs: 60_000 },
  });
  const a = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    await sendAll(a, proxy.listen.port, 5);
    await waitFor("five arrivals", () => proxy.counters.a_to_b.received === 5);
    assert.equal(proxy.counters.a_to_b.delayed, 5);
    assert.equal(sink.got.length, 0);
  } finally {
    a.close();
    await proxy.close();
    await sink.close();
  }
  assert.equal(proxy.counters.cancelled, 5);
  assert.equal(sink.got.length, 0);
});

/** Runs a CLI call until it is not a retryable failure (exit 5); returns its ok data. */
async function retrying(
  what: string,
  run: () => Promise<PilotResult>,
  tries = 4,
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  let last = await run();
  // Exit 5: retryable (timeout, unreachable); the same request again is safe.
  for (let i = 1; i < tries && last.code === 5; i++) last = await run();
  return okOf(last, what);
}

Deno.test({
  name:
    "Daemons behind a lossy proxy finish the trust flow and deliver 20 messages exactly once; corrupt frames fail the AEAD",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    let a: TestNode | undefined;
    let b: TestNode | undefined;
    let proxy: LossyProxy | undefined;
    try {
      b = await startNode({ identity: 1, hostname: PAIR_B_NAME });
      proxy = new LossyProxy({
        target: endpointOf(b.listen),
        seed: 2024,
        both: { ...FAULTY, holdMs: 20 },
      });
      a = await startNode({
        identity: 0,
        hostname: PAIR_A_NAME,
        args: ["--peer", `${PAIR_B_NAME}=127.0.0.1:${proxy.listen.port}`],
      });
      const aa = a;
      const bb = b;

      // The trust flow, through the proxy.
      await retrying(
        "handshake",
        () => aa.pilot("handshake", PAIR_B_NAME, "--reason", "lossy", "--timeout", "30s", "--json"),
      );
      await waitFor("B to hold A's request", async () => {
        const p = okOf(await bb.pilot("pending", "--json"), "pending").pending;
        return p.length === 1;
      }, 60_000);
      const approved = await retrying(
        "approve",
        () => bb.pilot("approve", aa.identity!.fingerprint, "--timeout", "30s", "--json"),
      );
      assert.equal(approved.status, "trusted");
      await waitFor("A to see trust as mutual", async () => {
        const t = okOf(await aa.pilot("trust", "--json"), "trust").trusted;
        return t.some((e: { public_key: string; mutual: boolean }) =>
          e.public_key === bb.identity!.publicKey && e.mutual
        );
      }, 60_000);

      // 20 messages with ids; a retryable failure is retried with the same id.
      // Five CLI processes at a time keep the test short.
      const seqs = new Set<number>();
      for (let batch = 0; batch < 20; batch += 5) {
        const sent = await Promise.all(
          Array.from({ length: 5 }, (_, j) => batch + j).map((i) =>
            retrying(
              "send",
              () =>
                aa.pilot(
                  "send",
                  PAIR_B_NAME,
                  "--data",
                  `message ${i}`,
                  "--id",
                  `lossy-${i}`,
                  "--timeout",
                  "30s",
                  "--json",
                ),
            )
          ),
        );
        for (const s of sent) seqs.add(s.receipt.seq);
      }
      assert.equal(seqs.size, 20);

      const inbox = okOf(await b.pilot("inbox", "--limit", "100", "--json"), "inbox");
      const ids = inbox.messages.map((m: { id: string }) => m.id).sort();
      assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => `lossy-${i}`).sort());
      for (const m of inbox.messages) assert.equal(m.data, `message ${m.id.slice(6)}`);

      // Corrupted datagrams were dropped by the AEAD (or as malformed), not fatal.
      const c = proxy.counters;
      assert.ok(c.a_to_b.corrupted + c.b_to_a.corrupted > 0, JSON.stringify(c));
      // Which faults hit depends on how many datagrams the run made; some must have.
      assert.ok(c.a_to_b.dropped + c.a_to_b.duplicated + c.a_to_b.reordered > 0, JSON.stringify(c));
      const drops = (await b.info()).drops as Record<string, number>;
      if (c.a_to_b.corrupted > 0) {
        // A corrupted datagram is refused by B (almost always by the AEAD tag).
        const refused = Object.values(drops).reduce((a, n) => a + n, 0);
        assert.ok(refused >= 1, `B's drops: ${JSON.stringify(drops)}; proxy: ${JSON.stringify(c)}`);
      }
      // Both daemons still answer.
      await a.info();
    } finally {
      await stopAll(a, b);
      await proxy?.close();
    }
  },
});
