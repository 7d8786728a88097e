/**
 * Sessions that tell the truth: a peer that lost its session (restarted) is
 * handshaken again within seconds once data goes unanswered; a live peer
 * answers every data frame quickly, so one-way traffic causes no needless
 * handshakes; retries to a peer that is gone back off and stop when its
 * session expires; untrusted peers cannot park idle sessions.
 */

import assert from "node:assert/strict";
import { IDS, pair, T, type TestNode } from "./_session_helpers.ts";
import {
  DATA_ANSWER_MS,
  PORT_TRUST,
  SESSION_FULL_SWEEP_MS,
  SESSION_SILENCE_MS,
  SESSION_SWEEP_MS,
  TIMER_TICK_MS,
  UNTRUSTED_IDLE_MS,
} from "../src/constants.ts";
import { DEFAULT_TIMERS } from "../src/session/manager.ts";

Deno.test("SessionManager reaches a peer again within seconds after it restarted with no session", async () => {
  const { net, a, b } = await pair();
  await a.send(b, "before");
  await net.pump();
  // b restarts (kill -9): same identity and endpoint, empty session table.
  net.attach(b);
  b.delivered.length = 0;
  await a.send(b, "into the void");
  await net.pump();
  assert.equal(b.manager.drops.unknown_index, 1);
  let elapsed = 0;
  // Like a stream retransmitting: data every second until it is delivered.
  while (b.delivered.length === 0 && elapsed < 30_000) {
    await net.advance(TIMER_TICK_MS, a, b);
    elapsed += TIMER_TICK_MS;
    if (elapsed % 1000 === 0) await a.send(b, "retry");
    await net.pump();
  }
  assert.ok(
    elapsed <= SESSION_SILENCE_MS + 2_000,
    `reachable again after ${elapsed} ms (silence threshold ${SESSION_SILENCE_MS} ms)`,
  );
  assert.deepEqual(b.texts().slice(0, 1), ["retry"]);
  assert.equal(b.manager.peers().length, 1);
});

Deno.test("SessionManager answers one-way data in time, so a live peer is never handshaken again for silence", async () => {
  const { net, a, b } = await pair();
  const inits = net.ofType(T.INIT).length;
  for (let t = 0; t < 60_000; t += 500) {
    await a.send(b, `tick ${t}`);
    await net.advance(500, a, b);
    await net.pump();
  }
  assert.equal(net.ofType(T.INIT).length, inits, "no handshake in 60 s of one-way datagrams");
  assert.equal(b.texts().length, 120);
  const keepalives = net.sentBy(b, T.DATA).filter((d) => d.bytes.length === 29).length;
  assert.ok(keepalives >= 60_000 / (DATA_ANSWER_MS + TIMER_TICK_MS) - 5, `${keepalives} answers`);
});

Deno.test("two idle peers send no keepalives back and forth: a keepalive is never answered by one", async () => {
  const { net, a, b } = await pair();
  await a.send(b, "hello");
  await net.pump();
  // Settle: B answers the data within DATA_ANSWER_MS; then nothing is owed.
  await net.advance(DATA_ANSWER_MS + TIMER_TICK_MS, a, b);
  await net.pump();
  const before = net.ofType(T.DATA).length;
  // Two minutes idle (under the rekey), no path that holds a NAT mapping.
  for (let t = 0; t < 110_000; t += 500) {
    await net.advance(500, a, b);
    await net.pump();
  }
  assert.equal(net.ofType(T.DATA).length - before, 0, "no frame on an idle session");
  // A live session still answers data at once.
  await b.send(a, "still there?");
  await net.pump();
  assert.deepEqual(a.texts(), ["still there?"]);
});

Deno.test("SessionManager stops retrying a peer that vanished once its session expires, backing off until then", async () => {
  const { net, a, b } = await pair();
  net.route(b.endpoint, undefined);
  const initsBefore = net.sentBy(a, T.INIT).length;
  const sentAt: number[] = [];
  for (let t = 0; t < 2 * DEFAULT_TIMERS.rejectAfterMs; t += 1000) {
    await a.send(b, "anyone?"); // the peer is gone: data every second does not help
    const before = net.sentBy(a, T.INIT).length;
    await net.advance(1000, a);
    await net.pump();
    for (let k = before; k < net.sentBy(a, T.INIT).length; k++) sentAt.push(t);
  }
  assert.deepEqual(a.manager.peers(), [], "the silent peer is gone");
  assert.deepEqual(a.down.map((p) => p.keyHex), [b.keyHex]);
  const last = sentAt.at(-1)!;
  assert.ok(
    last < DEFAULT_TIMERS.rejectAfterMs,
    `a message 1 at ${last} ms, after the session expired`,
  );
  assert.ok(
    net.sentBy(a, T.INIT).length - initsBefore <= 40,
    `${net.sentBy(a, T.INIT).length - initsBefore} message 1s to a gone peer`,
  );
});

async function untrustedPair(): Promise<
  { net: Awaited<ReturnType<typeof pair>>["net"]; a: TestNode; b: TestNode }
> {
  // Keepalives every 25 s both ways, as through a NAT: they must not keep a stranger.
  const manager = { holdsMapping: () => true };
  const p = await pair({ a: { manager }, b: { manager } });
  p.a.trusted = false;
  p.b.trusted = false;
  return p;
}

Deno.test("SessionManager ends an untrusted peer's sessions after the idle time without port-444 traffic, keepalives notwithstanding", async () => {
  const { net, a, b } = await untrustedPair();
  await a.send(b, "hello trust service", PORT_TRUST);
  await net.pump();
  let t = 0;
  for (; t < UNTRUSTED_IDLE_MS - 5_000; t += 5_000) {
    await net.advance(5_000, a, b);
    await net.pump();
  }
  assert.equal(b.manager.peers().length, 1, "still there before the idle time");
  assert.ok(
    net.sentBy(a, T.DATA).filter((d) => d.bytes.length === 29).length > 0,
    "keepalives flowed",
  );
  await net.advance(5_000 + TIMER_TICK_MS, a, b);
  await net.pump();
  assert.deepEqual(b.manager.peers(), []);
  assert.deepEqual(b.down.map((p) => p.keyHex), [a.keyHex]);
  assert.equal(b.manager.sessionCount, 0);
});

Deno.test("SessionManager keeps an untrusted peer's session while port-444 datagrams flow, and a trusted one while idle", async () => {
  const { net, a, b } = await untrustedPair();
  for (let t = 0; t < 3 * UNTRUSTED_IDLE_MS; t += UNTRUSTED_IDLE_MS / 2) {
    await b.send(a, "still deciding", PORT_TRUST); // our own 444 traffic counts too
    await net.advance(UNTRUSTED_IDLE_MS / 2, a, b);
    await net.pump();
  }
  assert.equal(a.manager.peers().length, 1);
  assert.equal(b.manager.peers().length, 1);

  const trusted = await pair({ ids: [2, 3] });
  for (let t = 0; t < 2 * UNTRUSTED_IDLE_MS; t += 5_000) {
    await trusted.net.advance(5_000, trusted.a, trusted.b);
    await trusted.net.pump();
  }
  assert.equal(trusted.b.manager.peers().length, 1);
});

Deno.test("a timer configured shorter than SESSION_SWEEP_MS still fires on time: data answered within answerMs and one tick", async () => {
  const answerMs = 300;
  const { net, a, b } = await pair({ b: { manager: { timers: { answerMs } } } });
  for (let round = 0; round < 5; round++) {
    await a.send(b, `one-way ${round}`);
    await net.pump();
    const answers = () => net.sentBy(b, T.DATA).filter((d) => d.bytes.length === 29).length;
    const before = answers();
    let waited = 0;
    while (answers() === before && waited < 5_000) {
      await net.advance(TIMER_TICK_MS, a, b);
      await net.pump();
      waited += TIMER_TICK_MS;
    }
    assert.ok(
      waited <= answerMs + TIMER_TICK_MS,
      `round ${round}: answered after ${waited} ms (answerMs ${answerMs}, sweep ${SESSION_SWEEP_MS})`,
    );
  }
});

Deno.test("SessionManager does not let configuration lengthen the untrusted idle time", async () => {
  const { net, a, b } = await pair({
    b: { manager: { timers: { untrustedIdleMs: 10 * UNTRUSTED_IDLE_MS } } },
  });
  b.trusted = false;
  await net.advance(UNTRUSTED_IDLE_MS + TIMER_TICK_MS, a, b);
  await net.pump();
  assert.deepEqual(b.manager.peers(), []);
});

Deno.test("SessionManager.connect() with fresh contacts the endpoint and names whoever answers there now", async () => {
  const { net, a, b } = await pair();
  // b is replaced by another identity on the same endpoint.
  const c = net.node(IDS[2]!, { endpoint: b.endpoint });
  const reused = await a.manager.connect(b.endpoint, {}, 5000);
  assert.equal(reused.keyHex, b.keyHex, "without fresh, the live session answers from memory");
  const pending = a.manager.connect(b.endpoint, {}, 5000, { fresh: true });
  await net.waitFor(() => net.queue.length > 0, "message 1");
  await net.pump();
  assert.equal((await pending).keyHex, c.keyHex);
});

/** Fake-time helpers over a pair: idle for `ms`, and the time until `done()` (in ticks). */
function clockOf(net: Awaited<ReturnType<typeof pair>>["net"], a: TestNode, b: TestNode) {
  return {
    idle: async (ms: number) => {
      for (let t = 0; t < ms; t += 500) {
        await net.advance(500, a, b);
        await net.pump();
      }
    },
    until: async (done: () => boolean) => {
      let elapsed = 0;
      while (!done() && elapsed < 20_000) {
        await net.advance(TIMER_TICK_MS, a, b);
        elapsed += TIMER_TICK_MS;
        await net.pump();
      }
      return elapsed;
    },
  };
}

Deno.test("after a long idle (only full sweeps walk the peer), data is still answered within a sweep of DATA_ANSWER_MS", async () => {
  const { net, a, b } = await pair();
  const { idle, until } = clockOf(net, a, b);
  const answers = () => net.sentBy(b, T.DATA).filter((d) => d.bytes.length === 29).length;
  // Each phase of the full sweeps' period once: the data must not wait for the next one.
  for (let phase = 0; phase < SESSION_FULL_SWEEP_MS; phase += 1_000) {
    await idle(20_000 + phase);
    const before = answers();
    await a.send(b, "wake up");
    await net.pump();
    const elapsed = await until(() => answers() > before);
    assert.ok(
      elapsed <= DATA_ANSWER_MS + SESSION_SWEEP_MS,
      `phase ${phase}: answered ${elapsed} ms after the data (DATA_ANSWER_MS ${DATA_ANSWER_MS})`,
    );
  }
});

Deno.test("after a long idle, data into silence is noticed within a sweep of silenceMs, also one shorter than a full sweep", async () => {
  const silenceMs = 2_000;
  const { net, a, b } = await pair({ a: { manager: { timers: { silenceMs } } } });
  const { idle, until } = clockOf(net, a, b);
  for (let phase = 0; phase < SESSION_FULL_SWEEP_MS; phase += 1_000) {
    await idle(20_000 + phase);
    // B has gone quiet: A handshakes again.
    net.filter = (d) => d.by === b ? "drop" : "deliver";
    const inits = net.sentBy(a, T.INIT).length;
    await a.send(b, "anyone?");
    await net.pump();
    const elapsed = await until(() => net.sentBy(a, T.INIT).length > inits);
    assert.ok(
      elapsed <= silenceMs + SESSION_SWEEP_MS,
      `phase ${phase}: handshaken again ${elapsed} ms after the unanswered data`,
    );
    net.filter = undefined;
    await until(() => !a.manager.busy);
  }
});
