/**
 * The mailbox service on port 447 (services/rendezvous/mailbox_server.ts)
 * and its client (mailbox_client.ts), over real stream connections on a
 * simulated link: each peer has its own link to the rendezvous, and the
 * server acts on the session's key, never a key named in a frame.
 */
import assert from "node:assert/strict";
import { DecodeError } from "../src/bytes.ts";
import { DurableMailboxes } from "../src/daemon/mailbox_disk.ts";
import { PilotError } from "../src/errors.ts";
import {
  type Deposit,
  MAILBOX_LIMITS,
  type MailboxLimits,
  MailboxStore,
  MAX_MAILBOX_ITEM,
} from "../src/services/rendezvous/mailbox.ts";
import { MailboxClient, MailboxRefused } from "../src/services/rendezvous/mailbox_client.ts";
import {
  type MailboxBackend,
  MailboxServer,
  type MailboxServerOptions,
} from "../src/services/rendezvous/mailbox_server.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { type Connection, StreamError } from "../src/stream/mod.ts";
import { FrameReader } from "../src/wire/framing.ts";
import {
  encodeMailboxFrame,
  MAILBOX_ANSWERS,
  MAX_ITEMS_BYTES,
  PORT_MAILBOX,
} from "../src/wire/mailbox_frame.ts";
import { IDS, peerOf } from "./_service_helpers.ts";
import { SimLink, track } from "./_sim_link.ts";
import { tempDir } from "./_tmp.ts";

const ALICE = peerOf(IDS[0]!);
const BOB = peerOf(IDS[1]!);
const CAROL = peerOf(IDS[2]!);
const SOURCE = "198.18.0.9";
const DAY = 86_400_000;

/** Mailboxes in memory, on the simulated wall clock. */
class MemoryBackend implements MailboxBackend {
  readonly store: MailboxStore;
  constructor(now: () => number, limits: MailboxLimits = MAILBOX_LIMITS) {
    this.store = new MailboxStore({ now, limits });
  }
  deposit(d: Deposit) {
    return Promise.resolve(this.store.deposit(d));
  }
  fetch(recipient: string, afterId: number, max: number, maxBytes: number) {
    return this.store.page(recipient, { after: afterId, max, maxBytes });
  }
  ack(recipient: string, ids: readonly number[]) {
    return Promise.resolve(this.store.ack(recipient, ids));
  }
}

/** Timers on the simulated clock: the server's deadlines fire as `settle` advances it. */
class SimTimers {
  #clock: { now: number };
  #due = new Set<{ at: number; fn: () => void }>();
  constructor(clock: { now: number }) {
    this.#clock = clock;
  }
  readonly after = (ms: number, fn: () => void): () => void => {
    const t = { at: this.#clock.now + ms, fn };
    this.#due.add(t);
    return () => this.#due.delete(t);
  };
  fire(): void {
    for (const t of [...this.#due]) {
      if (t.at > this.#clock.now) continue;
      this.#due.delete(t);
      t.fn();
    }
  }
}

interface World {
  server: MailboxServer;
  backend: MailboxBackend;
  /** A fresh stream to the rendezvous's port 447, in a session of `peer`. */
  connect(peer: PeerIdentity): Promise<Connection>;
  /** A client on a fresh stream of `peer`. */
  client(peer: PeerIdentity, timeoutMs?: number): Promise<MailboxClient>;
  /** Runs the simulation until `p` settles; returns its value or throws its error. */
  settle<T>(p: Promise<T>, maxMs?: number): Promise<T>;
  /** Runs the simulation for `ms`. */
  advance(ms: number): Promise<void>;
}

async function withWorld(
  fn: (w: World) => Promise<void>,
  options: {
    limits?: MailboxLimits;
    backend?: (now: () => number) => Promise<MailboxBackend>;
    server?: Partial<MailboxServerOptions>;
  } = {},
): Promise<void> {
  const wall = Date.UTC(2026, 0, 1);
  const links: SimLink[] = [];
  const clock = { now: 0 };
  const timers = new SimTimers(clock);
  const now = () => wall + clock.now;
  const backend = options.backend === undefined
    ? new MemoryBackend(now, options.limits)
    : await options.backend(now);
  const hosted = new Set([ALICE.keyHex, BOB.keyHex]);
  const server = new MailboxServer({
    store: backend,
    hosts: (key) => hosted.has(key),
    after: timers.after,
    ...options.server,
  });
  const linkOf = new Map<string, SimLink>();
  const step = async () => {
    for (const l of links) await l.advance(1);
    clock.now = links[0]?.clock.now ?? clock.now + 1;
    timers.fire();
  };
  const settle = async <T>(p: Promise<T>, maxMs = 120_000): Promise<T> => {
    const t = track(p);
    const limit = clock.now + maxMs;
    while (!t.settled) {
      if (clock.now > limit) throw new Error(`Not settled after ${maxMs} simulated ms`);
      await step();
    }
    if ("error" in t) throw t.error;
    return t.value as T;
  };
  const connect = (peer: PeerIdentity) => {
    let link = linkOf.get(peer.keyHex);
    if (link === undefined) {
      link = new SimLink({ seed: links.length + 1 });
      link.clock.now = clock.now;
      link.b.listen(PORT_MAILBOX, (conn) => void server.serve(conn, peer, SOURCE));
      links.push(link);
      linkOf.set(peer.keyHex, link);
    }
    return settle(link.a.connect(PORT_MAILBOX));
  };
  await fn({
    server,
    backend,
    connect,
    client: async (peer, timeoutMs = 600_000) => new MailboxClient(await connect(peer), timeoutMs),
    settle,
    advance: async (ms) => {
      const end = clock.now + ms;
      while (clock.now < end) await step();
    },
  });
}

const sealed = (n: number, size = 200) => new Uint8Array(size).map((_, i) => (i + n) & 0xff);

/** What reading `conn` to its end fails with (null when it ends cleanly). */
function failureOf(conn: Connection): Promise<unknown> {
  return (async () => {
    for (;;) if ((await conn.read()) === null) return null;
  })().catch((e) => e);
}

/** Runs the simulation until reading `conn` ends; what it failed with. */
function readFailure(w: World, conn: Connection): Promise<unknown> {
  return w.settle(failureOf(conn));
}

Deno.test("a deposit is fetched by its recipient with its id and time, and gone once acknowledged", async () => {
  await withWorld(async (w) => {
    const alice = await w.client(ALICE);
    const bob = await w.client(BOB);
    const a = await w.settle(alice.deposit(BOB.publicKey, sealed(1), DAY));
    const b = await w.settle(alice.deposit(BOB.publicKey, sealed(2, 5000), DAY));
    assert.ok(b > a);
    const page = await w.settle(bob.fetch(0));
    assert.equal(page.more, false);
    assert.deepEqual(page.items.map((i) => [i.id, i.sealed]), [[a, sealed(1)], [
      b,
      sealed(2, 5000),
    ]]);
    assert.ok(page.items.every((i) => i.depositedAt >= Date.UTC(2026, 0, 1)));
    assert.deepEqual((await w.settle(bob.fetch(a))).items.map((i) => i.id), [b], "after an id");
    assert.equal(await w.settle(bob.ack([a, b])), 2);
    assert.deepEqual(await w.settle(bob.fetch(0)), { items: [], more: false });
    assert.deepEqual(w.server.stats().served, { deposit: 2, fetch: 3, ack: 1 });
    await w.settle(Promise.all([alice.close(), bob.close()]));
  });
});

Deno.test("fetch and ack act on the session's own mailbox only", async () => {
  await withWorld(async (w) => {
    const alice = await w.client(ALICE);
    const bob = await w.client(BOB);
    const id = await w.settle(alice.deposit(BOB.publicKey, sealed(1), DAY));
    assert.deepEqual(await w.settle(alice.fetch(0)), { items: [], more: false });
    assert.equal(await w.settle(alice.ack([id])), 0, "another peer's ack removes nothing");
    assert.deepEqual((await w.settle(bob.fetch(0))).items.map((i) => i.id), [id]);
  });
});

Deno.test("a deposit for a key the rendezvous does not host is refused no_mailbox; the stream goes on", async () => {
  await withWorld(async (w) => {
    const alice = await w.client(ALICE);
    await assert.rejects(
      w.settle(alice.deposit(CAROL.publicKey, sealed(1), DAY)),
      (e) => e instanceof MailboxRefused && e.code === "no_mailbox",
    );
    assert.ok(await w.settle(alice.deposit(BOB.publicKey, sealed(1), DAY)) > 0);
    assert.deepEqual(w.server.stats().refused, { no_mailbox: 1 });
  });
});

Deno.test("a full mailbox surfaces as MailboxRefused(mailbox_full)", async () => {
  await withWorld(async (w) => {
    const alice = await w.client(ALICE);
    await w.settle(alice.deposit(BOB.publicKey, sealed(1), DAY));
    const full = w.settle(alice.deposit(BOB.publicKey, sealed(2), DAY));
    await assert.rejects(full, (e) => e instanceof MailboxRefused && e.code === "mailbox_full");
    assert.deepEqual(w.server.stats().refused, { mailbox_full: 1 });
  }, { limits: { ...MAILBOX_LIMITS, perRecipient: { items: 1, bytes: 1e9 } } });
});

Deno.test("several calls in flight are answered in order", async () => {
  await withWorld(async (w) => {
    const alice = await w.client(ALICE);
    const calls = [1, 2, 3, 4].map((n) => alice.deposit(BOB.publicKey, sealed(n), DAY));
    const refused = alice.deposit(CAROL.publicKey, sealed(5), DAY).catch((e) => e);
    const ids = await w.settle(Promise.all(calls));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
    assert.ok((await w.settle(refused)) instanceof MailboxRefused);
  });
});

Deno.test("an oversize frame header resets the stream before its body arrives", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect(ALICE);
    // DEPOSIT claiming 2 GiB: only the 5 header bytes are sent.
    await w.settle(conn.write(Uint8Array.of(0x01, 0x7f, 0xff, 0xff, 0xff)));
    const e = await readFailure(w, conn);
    assert.ok(
      e instanceof StreamError && e.remote && e.reason.startsWith("mailbox: too_large"),
      `${e}`,
    );
    assert.equal(w.server.stats().dropped.too_large, 1);
  });
});

Deno.test("an answer kind or a malformed request resets the stream with its reason", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect(ALICE);
    await w.settle(conn.write(encodeMailboxFrame({ kind: "deposited", id: 1 })));
    const e = await readFailure(w, conn);
    assert.ok(e instanceof StreamError && e.reason === "mailbox: unknown_kind", `${e}`);
    const bad = await w.connect(ALICE);
    // FETCH with max 0.
    await w.settle(bad.write(Uint8Array.of(0x02, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0)));
    const f = await readFailure(w, bad);
    assert.ok(f instanceof StreamError && f.reason === "mailbox: out_of_range", `${f}`);
  });
});

Deno.test("a peer's streams beyond maxStreamsPerPeer are reset; another peer's are not counted", async () => {
  await withWorld(async (w) => {
    const one = await w.client(ALICE);
    const two = await w.client(ALICE);
    const three = await w.connect(ALICE);
    const e = await readFailure(w, three);
    assert.ok(e instanceof StreamError && e.reason === "mailbox: too many streams", `${e}`);
    assert.deepEqual(await w.settle(one.fetch(0)), { items: [], more: false });
    assert.deepEqual(await w.settle(two.fetch(0)), { items: [], more: false });
    const bob = await w.client(BOB);
    assert.deepEqual(await w.settle(bob.fetch(0)), { items: [], more: false });
    assert.equal(w.server.stats().dropped.too_many_streams, 1);
    // A stream that ends frees its place.
    await w.settle(one.close());
    const four = await w.client(ALICE);
    assert.deepEqual(await w.settle(four.fetch(0)), { items: [], more: false });
  });
});

Deno.test("a stream idle past idleMs, or stuck inside a request, is reset", async () => {
  await withWorld(async (w) => {
    const idle = await w.connect(ALICE);
    const ended = failureOf(idle);
    const failure = track(ended);
    await w.advance(900);
    assert.equal(failure.settled, false, "not before the deadline");
    const e = await w.settle(ended);
    assert.ok(e instanceof StreamError && e.reason === "mailbox: idle", `${e}`);
    const partial = await w.connect(BOB);
    await w.settle(partial.write(Uint8Array.of(0x02, 0, 0, 0, 9, 0, 0)));
    const f = await readFailure(w, partial);
    assert.ok(f instanceof StreamError && f.reason === "mailbox: idle", `${f}`);
    assert.equal(w.server.stats().dropped.idle, 2);
    assert.equal(w.server.stats().streams, 0);
  }, { server: { idleMs: 1_000 } });
});

Deno.test("a stream serves maxRequestsPerStream requests, then is reset", async () => {
  await withWorld(async (w) => {
    const alice = await w.client(ALICE);
    await w.settle(alice.fetch(0));
    await w.settle(alice.fetch(0));
    await assert.rejects(
      w.settle(alice.fetch(0)),
      (e) => e instanceof StreamError && e.reason === "mailbox: too many requests",
    );
    await assert.rejects(w.settle(alice.fetch(0)), StreamError, "the channel stays broken");
  }, { server: { maxRequestsPerStream: 2 } });
});

Deno.test("fetch pages by max and by the 1 MiB cap, with more", async () => {
  await withWorld(async (w) => {
    const alice = await w.client(ALICE);
    const bob = await w.client(BOB);
    const size = MAX_MAILBOX_ITEM;
    const ids: number[] = [];
    for (let n = 0; n < 20; n++) {
      ids.push(await w.settle(alice.deposit(BOB.publicKey, sealed(n, size), DAY)));
    }
    const three = await w.settle(bob.fetch(0, 3));
    assert.deepEqual([three.items.map((i) => i.id), three.more], [ids.slice(0, 3), true]);
    const fit = Math.floor(MAX_ITEMS_BYTES / size);
    const big = await w.settle(bob.fetch(0));
    assert.deepEqual([big.items.length, big.more], [fit, true]);
    assert.ok(big.items.reduce((s, i) => s + i.sealed.length, 0) <= MAX_ITEMS_BYTES);
    assert.deepEqual(big.items.at(-1)!.sealed, sealed(fit - 1, size));
    const rest = await w.settle(bob.fetch(big.items.at(-1)!.id));
    assert.deepEqual([rest.items.map((i) => i.id), rest.more], [ids.slice(fit), false]);
  }, {
    limits: {
      ...MAILBOX_LIMITS,
      perRecipient: { items: 256, bytes: 1e9 },
      perPair: { items: 256, bytes: 1e9 },
      perSender: { items: 512, bytes: 1e9 },
    },
  });
});

Deno.test("the client rejects every pending call when the answer is broken or the stream fails", async () => {
  const link = new SimLink({ seed: 99 });
  let serverSide: Connection | undefined;
  link.b.listen(PORT_MAILBOX, (c) => serverSide = c);
  const conn = track(link.a.connect(PORT_MAILBOX));
  await link.run(() => conn.settled && serverSide !== undefined);
  const client = new MailboxClient(conn.value!, 600_000);
  const calls = [track<unknown>(client.fetch(0)), track<unknown>(client.ack([1]))];
  // A request kind where an answer belongs.
  await serverSide!.write(encodeMailboxFrame({ kind: "fetch", after: 0, max: 1 }));
  await link.run(() => calls.every((c) => c.settled));
  for (const c of calls) assert.ok(c.error instanceof DecodeError, `${c.error}`);
  await assert.rejects(client.fetch(0), DecodeError, "later calls fail too");
});

Deno.test("a call past the client's timeout rejects with timeout, resetting the stream", async () => {
  const link = new SimLink({ seed: 7 });
  let serverSide: Connection | undefined;
  link.b.listen(PORT_MAILBOX, (c) => serverSide = c);
  const conn = track(link.a.connect(PORT_MAILBOX));
  await link.run(() => conn.settled && serverSide !== undefined);
  const client = new MailboxClient(conn.value!, 30);
  const first = client.fetch(0).catch((e) => e);
  const second = client.deposit(BOB.publicKey, sealed(1), DAY).catch((e) => e);
  const e = await first;
  assert.ok(e instanceof PilotError && e.code === "timeout", `${e}`);
  assert.ok((await second) instanceof Error);
  await assert.rejects(new MailboxClient(conn.value!).fetch(0, 65), RangeError);
});

Deno.test("end to end over durable mailboxes: the answer comes once the item is on disk", async () => {
  await using dir = await tempDir("pilot-mailbox-server-");
  let boxes: DurableMailboxes | undefined;
  await withWorld(async (w) => {
    const alice = await w.client(ALICE);
    const bob = await w.client(BOB);
    const id = await w.settle(alice.deposit(BOB.publicKey, sealed(1), DAY));
    await boxes!.close();
    const again = await DurableMailboxes.open(dir.path);
    assert.deepEqual(again.fetch(BOB.keyHex, 0, 64, MAX_ITEMS_BYTES).items.map((i) => i.id), [id]);
    await again.close();
    // The server's own handle is closed: the store fails, the request is refused, the stream stays in step.
    await assert.rejects(
      w.settle(bob.ack([id])),
      (e) => e instanceof MailboxRefused && e.code === "unavailable",
    );
    assert.equal((await w.settle(bob.fetch(0))).more, false);
  }, {
    backend: async () => boxes = await DurableMailboxes.open(dir.path),
  });
});

Deno.test("the reader over answers refuses a frame header over its cap", () => {
  const reader = new FrameReader(MAILBOX_ANSWERS);
  reader.push(Uint8Array.of(0x82, 0x7f, 0xff, 0xff, 0xff));
  assert.throws(() => reader.take(), (e) => e instanceof DecodeError && e.reason === "too_large");
});
