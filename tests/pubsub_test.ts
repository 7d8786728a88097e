/**
 * The pub/sub broker over simulated links: one broker node joined to three
 * or more peers, each by its own SimLink (link.a is the peer, link.b the
 * broker's mux for that peer, as in the daemon: one mux per peer). The
 * links' fake clocks advance in lockstep, round robin.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { PORT_PUBSUB } from "../src/constants.ts";
import {
  type PublishResult,
  PubSubBroker,
  type PubSubLimits,
} from "../src/services/pubsub/broker.ts";
import {
  type Notice,
  publishTo,
  PubSubError,
  subscribe,
  type Subscription,
} from "../src/services/pubsub/client.ts";
import { patternMatches } from "../src/services/pubsub/topic.ts";
import { FrameReader } from "../src/wire/framing.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import type { Connection } from "../src/stream/mod.ts";
import {
  decodeBody,
  encodeFrame,
  PUBSUB_FRAMES,
  type PubSubFrame,
} from "../src/wire/pubsub_frame.ts";
import { peerOf } from "./_service_helpers.ts";
import { IDS } from "./_session_helpers.ts";
import { SimLink, type SimLinkOptions, track } from "./_sim_link.ts";

const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const BROKER = IDS[0]!;

/** A peer joined to the broker node. */
interface Peer {
  identity: PeerIdentity;
  link: SimLink;
}

/** The broker node and its peers. */
class Net {
  readonly broker: PubSubBroker;
  readonly links: SimLink[] = [];
  /** Checked after every step of every link. */
  onStep: () => void = () => {};

  constructor(limits: Partial<PubSubLimits> = {}) {
    this.broker = new PubSubBroker({
      self: { address: BROKER.address, publicKey: BROKER.publicKey },
      now: () => 1_767_225_600_000 + (this.links[0]?.clock.now ?? 0),
      limits,
    });
  }

  /** Joins the peer with fixture identity `i` (1..7). */
  join(i: number, options: SimLinkOptions = {}): Peer {
    const identity = peerOf(IDS[i]!);
    const link = new SimLink({ seed: i, link: { delayMs: 1 }, ...options });
    link.b.listen(PORT_PUBSUB, (conn) => void this.broker.serve(conn, identity));
    this.links.push(link);
    return { identity, link };
  }

  /** Advances every link's clock in lockstep until `until()` holds. */
  async run(until: () => boolean, maxMs = 30_000): Promise<void> {
    for (let t = 0; t < maxMs; t += 2) {
      for (const link of this.links) {
        await link.advance(2);
        this.onStep();
      }
      if (until()) return;
    }
    throw new Error(`Condition not met within ${maxMs} simulated ms`);
  }

  /** Runs until `p` settles and returns its value (or throws its error). */
  async settle<T>(p: Promise<T>, maxMs?: number): Promise<T> {
    const t = track(p);
    await this.run(() => t.settled, maxMs);
    if ("error" in t) throw t.error;
    return t.value as T;
  }

  /** Opens a stream from the peer to the broker's port 1002. */
  connect(peer: Peer): Promise<Connection> {
    return this.settle(peer.link.a.connect(PORT_PUBSUB));
  }

  /** Subscribes from the peer on a fresh stream. */
  async subscribe(peer: Peer, pattern: string): Promise<Subscription> {
    const conn = await this.connect(peer);
    return await this.settle(subscribe(conn, pattern));
  }

  /** Reads notices until `n` arrived. */
  async take(sub: Subscription, n: number): Promise<Notice[]> {
    const got: Notice[] = [];
    while (got.length < n) {
      const next = await this.settle(sub.next());
      assert.ok(next !== null, "the subscription ended early");
      got.push(next);
    }
    return got;
  }
}

/** Reads one raw frame from a connection (for hand-made protocol violations). */
async function readFrame(
  net: Net,
  conn: Connection,
  splitter: FrameReader,
): Promise<PubSubFrame | null> {
  for (;;) {
    const raw = splitter.take();
    if (raw !== null) return decodeBody(raw);
    const chunk = await net.settle(conn.read());
    if (chunk === null) return null;
    splitter.push(chunk);
  }
}

function events(notices: Notice[]): { seq: number; topic: string; data: string }[] {
  return notices.map((n) => {
    assert.equal(n.kind, "event");
    return n.kind === "event" ? { seq: n.seq, topic: n.topic, data: str(n.data) } : null!;
  });
}

Deno.test("exact, prefix and * subscriptions receive exactly the events they match, from the publisher's address", async () => {
  const net = new Net();
  const [pub, exact, prefix, all] = [net.join(1), net.join(2), net.join(3), net.join(4)];
  const subExact = await net.subscribe(exact, "a.b.c");
  const subPrefix = await net.subscribe(prefix, "a.b.*");
  const subAll = await net.subscribe(all, "*");
  assert.equal(net.broker.stats().subscriptions, 3);

  const conn = await net.connect(pub);
  const acks: PublishResult[] = [];
  for (const topic of ["a.b.c", "a.b", "a.b.c.d", "a.bc", "x"]) {
    acks.push(await net.settle(publishTo(conn, topic, text(`on ${topic}`))));
  }
  assert.deepEqual(acks.map((a) => a.delivered), [3, 1, 2, 1, 1]);
  assert.deepEqual(acks.map((a) => a.seq), [1, 2, 3, 4, 5]);
  assert.ok(acks.every((a) => a.dropped === 0));

  const local = net.broker.publish("self", "a.b.local", text("from the broker itself"));
  assert.deepEqual(local, { seq: 6, delivered: 2, dropped: 0 });

  assert.deepEqual(events(await net.take(subExact, 1)), [
    { seq: 1, topic: "a.b.c", data: "on a.b.c" },
  ]);
  const p = await net.take(subPrefix, 3);
  assert.deepEqual(events(p), [
    { seq: 1, topic: "a.b.c", data: "on a.b.c" },
    { seq: 3, topic: "a.b.c.d", data: "on a.b.c.d" },
    { seq: 6, topic: "a.b.local", data: "from the broker itself" },
  ]);
  const a = await net.take(subAll, 6);
  assert.deepEqual(events(a).map((e) => e.topic), [
    "a.b.c",
    "a.b",
    "a.b.c.d",
    "a.bc",
    "x",
    "a.b.local",
  ]);
  const first = a[0]!;
  const last = a[5]!;
  assert.ok(first.kind === "event" && last.kind === "event");
  assert.equal(first.from, pub.identity.address);
  assert.equal(first.fromKey.toHex(), pub.identity.keyHex);
  assert.equal(last.from, BROKER.address);
  assert.equal(last.fromKey.toHex(), BROKER.publicKey.toHex());
  assert.ok(first.time >= 1_767_225_600_000);

  // Nothing else arrived for the exact subscriber: its next read stays pending.
  const more = track(subExact.next());
  await net.run(() => false, 50).catch(() => {});
  assert.equal(more.settled, false);
});

Deno.test("the broker's index delivers an event to exactly the subscriptions whose pattern matches it", async () => {
  // Fake connections: the broker only writes to them; this checks matching, not transport.
  const broker = new PubSubBroker({
    self: { address: BROKER.address, publicKey: BROKER.publicKey },
  });
  const peer = peerOf(IDS[1]!);
  const fake = (pattern: string) => {
    const frames = [encodeFrame({ kind: "subscribe", pattern })];
    return {
      // The SUBSCRIBE, then nothing: the subscriber stays.
      read: () => frames.length > 0 ? Promise.resolve(frames.shift()) : new Promise(() => {}),
      write: () => Promise.resolve(),
      close: () => Promise.resolve(),
      reset: () => {},
      closed: new Promise<never>(() => {}),
    } as unknown as Connection;
  };
  const label = fc.constantFrom("a", "b", "c");
  const topic = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join("."));
  const pattern = fc.oneof(topic, topic.map((t) => t + ".*"), fc.constant("*"));
  await fc.assert(
    fc.asyncProperty(
      fc.array(pattern, { minLength: 1, maxLength: 12 }),
      fc.array(topic, { minLength: 1, maxLength: 12 }),
      async (patterns, topics) => {
        broker.close();
        for (const p of patterns) void broker.serve(fake(p), peer);
        await new Promise((r) => setTimeout(r, 0));
        assert.equal(broker.stats().subscriptions, patterns.length);
        for (const t of topics) {
          const expected = patterns.filter((p) => patternMatches(p, t)).length;
          assert.equal(broker.publish("self", t, new Uint8Array(1)).delivered, expected, t);
        }
      },
    ),
    { numRuns: 100 },
  );
  broker.close();
});

Deno.test("a malformed pattern or topic is refused with the bad input quoted, and the broker keeps serving", async () => {
  const net = new Net();
  const [a, b, c] = [net.join(1), net.join(2), net.join(3)];

  // Client side: refused before anything is sent.
  const conn = await net.connect(a);
  await assert.rejects(() => subscribe(conn, "a.*.c"), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /^Invalid topic pattern "a\.\*\.c": "\*" may only stand alone/);
    return true;
  });
  await assert.rejects(() => publishTo(conn, "Temp.room", text("x")), (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /^Invalid topic "Temp\.room": "T" is not allowed/);
    return true;
  });

  // Local API: the same errors.
  assert.throws(() => net.broker.publish("self", "a b", text("x")), /Invalid topic "a b"/);
  assert.throws(
    () => net.broker.publish("self", "big", new Uint8Array(64 * 1024 + 1)),
    (e: unknown) => e instanceof RangeError && /65537 bytes on topic "big"/.test(e.message),
  );

  // Broker side: a hand-made SUBSCRIBE with a bad pattern gets an ERROR quoting it.
  const raw = await net.connect(b);
  const bad = new TextEncoder().encode("a.*.c");
  await net.settle(raw.write(Uint8Array.of(0x01, 0, 0, 0, bad.length, ...bad)));
  const splitter = new FrameReader(PUBSUB_FRAMES);
  const answer = await readFrame(net, raw, splitter);
  assert.ok(answer?.kind === "error");
  assert.equal(answer.code, "bad_pattern");
  assert.match(answer.message, /^Invalid topic pattern "a\.\*\.c"/);
  assert.equal(await readFrame(net, raw, splitter), null); // the broker ended the stream
  await net.settle(raw.close());

  // A bad topic refuses only that publish; the stream goes on.
  const pub = await net.connect(c);
  const badTopic = new TextEncoder().encode("Temp");
  const publishBad = Uint8Array.of(0x02, 0, 0, 0, 9, 0, 0, 0, 42, 4, ...badTopic);
  await net.settle(pub.write(publishBad));
  const ps = new FrameReader(PUBSUB_FRAMES);
  const refusal = await readFrame(net, pub, ps);
  assert.ok(refusal?.kind === "error");
  assert.equal(refusal.id, 42);
  assert.equal(refusal.code, "bad_topic");
  assert.match(refusal.message, /^Invalid topic "Temp"/);
  const ok = await net.settle(publishTo(pub, "fine", text("still served")));
  assert.equal(ok.seq, 1);

  // An oversized frame header ends that stream with a clear error, and only that stream.
  const big = await net.connect(a);
  await net.settle(big.write(Uint8Array.of(0x02, 0x00, 0x10, 0x00, 0x00)));
  const bs = new FrameReader(PUBSUB_FRAMES);
  const tooLarge = await readFrame(net, big, bs);
  assert.ok(tooLarge?.kind === "error");
  assert.equal(tooLarge.code, "too_large");
  assert.match(tooLarge.message, /PUBLISH frame of 1048576 bytes is over its cap of 65669/);
  assert.equal((await net.settle(publishTo(pub, "fine", text("and again")))).seq, 2);
  assert.equal(net.broker.stats().refused, 3);
});

Deno.test("a subscriber that never reads gets an OVERFLOW with the exact dropped count once it reads, while a fast subscriber gets every event and the publisher is never blocked", async () => {
  const queueBytes = 16 * 1024;
  const net = new Net({ queueFrames: 8, queueBytes });
  const pub = net.join(1);
  const fast = net.join(2);
  const small = { sendBuffer: 16 * 1024, receiveBuffer: 16 * 1024, reserve: 8 * 1024 };
  const slow = net.join(3, { limits: small });
  const fastSub = await net.subscribe(fast, "load.*");
  const slowSub = await net.subscribe(slow, "load.*");

  let maxQueued = 0;
  net.onStep = () => {
    for (const s of net.broker.subscriptions()) {
      maxQueued = Math.max(maxQueued, s.queuedBytes);
      assert.ok(s.queuedBytes <= queueBytes, `queued ${s.queuedBytes} bytes`);
      assert.ok(s.queuedFrames <= 8);
    }
  };

  const N = 120;
  const payload = (i: number) => {
    const b = new Uint8Array(1000).fill(i & 0xff);
    b.set(text(`#${i}`));
    return b;
  };
  const conn = await net.connect(pub);
  // All publishes in flight at once; the slow subscriber reads nothing meanwhile.
  const acks = track(Promise.all(
    Array.from({ length: N }, (_, i) => publishTo(conn, "load.x", payload(i))),
  ));
  const fastGot: Notice[] = [];
  const fastDone = (async () => {
    while (fastGot.length < N) fastGot.push((await fastSub.next())!);
  })();
  await net.run(() => acks.settled && fastGot.length === N);
  await fastDone;

  // The publisher got every ACK though the slow subscriber has not read a byte.
  assert.ok(acks.value !== undefined, String(acks.error));
  const results = acks.value;
  assert.deepEqual(results.map((r) => r.seq), Array.from({ length: N }, (_, i) => i + 1));
  const droppedByAcks = results.reduce((n, r) => n + r.dropped, 0);
  assert.ok(droppedByAcks > 0, "the slow subscriber should have overflowed");
  assert.ok(results.every((r) => r.delivered + r.dropped === 2));

  // The fast subscriber got every event, in order, intact.
  assert.deepEqual(
    events(fastGot).map((e) => e.seq),
    Array.from({ length: N }, (_, i) => i + 1),
  );
  assert.ok(fastGot.every((n, i) =>
    n.kind === "event" && n.data.length === 1000 &&
    str(n.data.subarray(0, 6)).startsWith(`#${i}`)
  ));

  const slowInfo = net.broker.subscriptions().find((s) => s.keyHex === slow.identity.keyHex)!;
  assert.equal(slowInfo.dropped, droppedByAcks);
  assert.ok(maxQueued > 0 && maxQueued <= queueBytes);

  // Now it reads: every seq is either an EVENT or inside an OVERFLOW that
  // came right where the gap is, with the exact count.
  const got: Notice[] = [];
  let next = 1;
  let noticed = 0;
  while (next <= N) {
    const [n] = await net.take(slowSub, 1);
    got.push(n!);
    if (n!.kind === "event") {
      assert.equal(n!.seq, next);
      next++;
    } else {
      assert.equal(n!.firstSeq, next, "the notice comes before the next event");
      assert.equal(n!.dropped, n!.lastSeq - n!.firstSeq + 1);
      noticed += n!.dropped;
      next = n!.lastSeq + 1;
    }
  }
  assert.equal(noticed, droppedByAcks);
  assert.ok(got.some((n) => n.kind === "overflow"));

  // And later events flow again, after the notice.
  const after = await net.settle(publishTo(conn, "load.y", text("after")));
  assert.deepEqual(after, { seq: N + 1, delivered: 2, dropped: 0 });
  assert.deepEqual(events(await net.take(slowSub, 1)), [
    { seq: N + 1, topic: "load.y", data: "after" },
  ]);
});

Deno.test("queued bytes stay under the per-subscription cap and the shared budget however fast events are published", async () => {
  const limits = { queueBytes: 64 * 1024, reserveBytes: 8 * 1024, sharedBytes: 32 * 1024 };
  const net = new Net(limits);
  const tiny = { sendBuffer: 8 * 1024, receiveBuffer: 8 * 1024, reserve: 4 * 1024 };
  const subs = [];
  for (const i of [1, 2, 3]) subs.push(await net.subscribe(net.join(i, { limits: tiny }), "*"));
  const bound = limits.sharedBytes + 3 * limits.reserveBytes;
  let published = 0;
  let dropped = 0;
  // Synchronous bursts from the local API: publish() never waits for a subscriber.
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 50; i++) {
      const r = net.broker.publish("self", "burst", new Uint8Array(2000));
      published++;
      dropped += r.dropped;
      const s = net.broker.stats();
      assert.ok(s.queuedBytes <= bound, `${s.queuedBytes} queued bytes`);
      for (const q of net.broker.subscriptions()) assert.ok(q.queuedBytes <= limits.queueBytes);
    }
    await net.run(() => true);
  }
  assert.equal(net.broker.stats().published, published);
  assert.ok(dropped > 0);
  assert.equal(net.broker.stats().dropped, dropped);
  for (const s of subs) await net.settle(s.close());
  assert.equal(net.broker.stats().queuedBytes, 0);
});

Deno.test("closing a subscription's stream frees it, and the per-peer cap counts only live subscriptions", async () => {
  const net = new Net({ subscriptionsPerPeer: 2, subscriptions: 3 });
  const [a, b, c] = [net.join(1), net.join(2), net.join(3)];
  const first = await net.subscribe(a, "x");
  const second = await net.subscribe(a, "y.*");
  await assert.rejects(() => net.subscribe(a, "z"), (e: unknown) => {
    assert.ok(e instanceof PubSubError);
    assert.equal(e.code, "limit");
    assert.equal(e.message, `Too many subscriptions from ${a.identity.address}: at most 2`);
    return true;
  });
  const third = await net.subscribe(b, "*");
  await assert.rejects(
    () => net.subscribe(c, "*"),
    /Too many subscriptions at this node: at most 3/,
  );
  assert.equal(net.broker.stats().subscriptions, 3);

  await net.settle(first.close());
  await net.run(() => net.broker.stats().subscriptions === 2);
  assert.deepEqual(net.broker.subscriptions().map((s) => s.pattern).sort(), ["*", "y.*"]);
  const again = await net.subscribe(a, "z");
  assert.equal(again.since, 0);
  assert.equal(net.broker.publish("self", "x", text("gone")).delivered, 1); // only "*"

  // A reset frees a subscription too.
  const conn = await net.connect(c);
  await net.settle(second.close());
  await net.run(() => net.broker.stats().subscriptions === 2);
  const viaReset = await net.settle(subscribe(conn, "q"));
  assert.equal(net.broker.stats().subscriptions, 3);
  conn.reset("gone");
  await net.run(() => net.broker.stats().subscriptions === 2);
  assert.equal(await viaReset.next().catch((e: Error) => e.name), "StreamError");

  // Leaving a for-await loop early unsubscribes.
  net.broker.publish("self", "z", text("one"));
  const loop = (async () => {
    for await (const n of again) {
      assert.ok(n.kind === "event" && n.topic === "z");
      break;
    }
  })();
  await net.settle(loop);
  await net.run(() => net.broker.stats().subscriptions === 1);
  await net.settle(third.close());
  await net.run(() => net.broker.stats().subscriptions === 0);
  assert.equal(net.broker.stats().queuedBytes, 0);
});
