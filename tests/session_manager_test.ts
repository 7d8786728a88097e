/**
 * SessionManagers wired through a simulated network: handshakes, replays,
 * retransmission, roaming, the zero-trust gate, rekeying and crossed
 * handshakes, all on a fake clock.
 */

import assert from "node:assert/strict";
import { FakeNetwork, IDS, pair, T, type TestNode } from "./_session_helpers.ts";
import { DEFAULT_TIMERS } from "../src/session/manager.ts";
import {
  FINAL_RETRY_MS,
  HALF_OPEN_TIMEOUT_MS,
  PORT_ECHO,
  PORT_TRUST,
  REKEY_TIMEOUT_JITTER_MS,
  SESSION_SWEEP_MS,
} from "../src/constants.ts";

const RETRY_MS = DEFAULT_TIMERS.rekeyTimeoutMs + REKEY_TIMEOUT_JITTER_MS + 1;

function only<T>(items: T[], what: string): T {
  assert.equal(items.length, 1, `expected exactly one ${what}, got ${items.length}`);
  return items[0]!;
}

function peerOf(node: TestNode) {
  return only(node.manager.peers(), "peer");
}

Deno.test("SessionManager forms a session with connect() and delivers a datagram once", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!, { hostname: "alpha" });
  const b = net.node(IDS[1]!, { hostname: "bravo" });
  const got = await net.connect(a, b);
  await net.pump();
  assert.equal(got.keyHex, b.keyHex);

  for (const [self, other, hostname] of [[a, b, "bravo"], [b, a, "alpha"]] as const) {
    const p = peerOf(self);
    assert.equal(p.identity.keyHex, other.keyHex);
    assert.equal(p.identity.address, other.identity.address);
    assert.equal(p.identity.fingerprint, other.identity.fingerprint);
    assert.equal(p.identity.hostname, hostname);
    assert.deepEqual(p.endpoint, other.endpoint);
    assert.equal(p.trusted, true);
    assert.equal(self.manager.sessionCount, 1);
    assert.deepEqual(self.up.map((x) => x.keyHex), [other.keyHex]);
  }
  assert.equal(peerOf(a).rttMs !== null, true, "the initiator measures a round trip");

  assert.equal(await a.send(b, "hello"), true);
  await net.pump();
  assert.deepEqual(b.texts(), ["hello"]);
  const d = b.delivered[0]!;
  assert.deepEqual(d.packet.srcAddress, a.local.addressBytes);
  assert.deepEqual(d.packet.dstAddress, b.local.addressBytes);
  assert.equal(d.packet.srcPort, 5000);
  assert.equal(d.packet.dstPort, 1001);
  assert.equal(d.session.peer.keyHex, a.keyHex);
  assert.deepEqual(a.delivered, [], "keepalives are never delivered");
});

Deno.test("SessionManager ignores replayed data frames and replayed handshake messages", async () => {
  const { net, a, b } = await pair();
  await a.send(b, "once");
  await net.pump();
  assert.deepEqual(b.texts(), ["once"]);
  const first = b.delivered[0]!.session;

  const data = net.sentBy(a, T.DATA).at(-1)!;
  await net.inject(data.bytes, a.endpoint, b);
  assert.deepEqual(b.texts(), ["once"]);
  assert.equal(b.manager.drops.replay, 1);

  // Two copies decrypting at the same time: only the first to verify passes.
  await a.send(b, "racing");
  const racing = only(net.take(), "frame").bytes;
  await Promise.all([net.inject(racing, a.endpoint, b), net.inject(racing, a.endpoint, b)]);
  assert.deepEqual(b.texts(), ["once", "racing"]);
  assert.equal(b.manager.drops.replay, 2);

  const sentBefore = net.sent.length;
  const init = only(net.ofType(T.INIT), "message 1");
  const resp = only(net.ofType(T.RESP), "message 2");
  const final = only(net.ofType(T.FINAL), "message 3");

  await net.inject(init.bytes, a.endpoint, b);
  assert.equal(b.manager.drops.replayed_init, 1);
  assert.equal(b.manager.halfOpenCount, 0, "a replayed message 1 opens no handshake");
  assert.equal(net.sent.length, sentBefore, "a replayed message 1 gets no answer");

  await net.inject(resp.bytes, b.endpoint, a);
  assert.equal(a.manager.drops.stale_resp, 1);
  assert.equal(net.sent.length, sentBefore, "a confirmed initiator does not repeat message 3");

  await net.inject(final.bytes, a.endpoint, b);
  await net.pump();

  for (const [self, other] of [[a, b], [b, a]] as const) {
    assert.equal(self.manager.sessionCount, 1);
    assert.equal(peerOf(self).identity.keyHex, other.keyHex);
    assert.equal(self.up.length, 1);
  }
  await a.send(b, "twice");
  await net.pump();
  assert.deepEqual(b.texts(), ["once", "racing", "twice"]);
  const second = b.delivered[2]!.session;
  assert.equal(second, first, "the same session carries traffic after the replays");
  assert.equal(second.localIndex, first.localIndex);
  assert.deepEqual(a.delivered, []);
});

Deno.test("SessionManager retransmits the same message 1 and gets the cached message 2", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!);
  let dropResp = true;
  net.filter = (d) => {
    if (d.bytes[0] === T.RESP && dropResp) {
      dropResp = false;
      return "drop";
    }
    return "deliver";
  };
  const pending = await net.begin(a, b);
  await net.pump();
  assert.equal(pending.state, "pending");
  assert.equal(net.dropped.length, 1);

  await net.advance(DEFAULT_TIMERS.rekeyTimeoutMs - 1, a, b);
  assert.equal(net.ofType(T.INIT).length, 1, "no retransmission before the retry interval");

  await net.advance(RETRY_MS - DEFAULT_TIMERS.rekeyTimeoutMs + 1, a, b);
  const inits = net.ofType(T.INIT);
  assert.equal(inits.length, 2, "message 1 is retransmitted after the retry interval");
  assert.deepEqual(inits[1]!.bytes, inits[0]!.bytes, "the retransmission is the same bytes");
  await net.pump();
  const resps = net.ofType(T.RESP);
  assert.equal(resps.length, 2);
  assert.deepEqual(resps[1]!.bytes, resps[0]!.bytes, "message 2 is answered from the cache");
  assert.equal((await pending.result).keyHex, b.keyHex);
  assert.equal(a.manager.sessionCount, 1);
  assert.equal(b.manager.sessionCount, 1);
  await a.send(b, "through");
  await net.pump();
  assert.deepEqual(b.texts(), ["through"]);
});

Deno.test("SessionManager repeats message 3 until the responder's first data packet arrives", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!);
  let dropFinal = true;
  let dropKeepalive = true;
  net.filter = (d) => {
    if (d.bytes[0] === T.FINAL && dropFinal) return "drop";
    if (d.bytes[0] === T.DATA && d.by === b && dropKeepalive) {
      dropKeepalive = false;
      return "drop";
    }
    return "deliver";
  };
  const peer = await net.connect(a, b);
  assert.equal(peer.keyHex, b.keyHex, "connect() resolves once message 2 is processed");
  assert.equal(b.manager.sessionCount, 0, "the responder has no session without message 3");

  await net.advance(FINAL_RETRY_MS, a, b);
  await net.pump();
  await net.advance(FINAL_RETRY_MS, a, b);
  await net.pump();
  const finals = net.ofType(T.FINAL);
  assert.equal(finals.length, 3);
  for (const f of finals) assert.deepEqual(f.bytes, finals[0]!.bytes, "the same bytes each time");

  // Message 3 gets through now, but the responder's first keepalive is lost.
  dropFinal = false;
  await net.advance(FINAL_RETRY_MS, a, b);
  await net.pump();
  assert.equal(b.manager.sessionCount, 1);
  assert.equal(net.ofType(T.FINAL).length, 4);

  await net.advance(FINAL_RETRY_MS, a, b);
  await net.pump();
  assert.equal(net.ofType(T.FINAL).length, 5, "still unconfirmed: message 3 again");
  assert.equal(b.manager.sessionCount, 1, "a repeated message 3 makes no second session");

  for (let i = 0; i < 3; i++) {
    await net.advance(FINAL_RETRY_MS, a, b);
    await net.pump();
  }
  assert.equal(net.ofType(T.FINAL).length, 5, "confirmed: no more message 3");
  await a.send(b, "confirmed");
  await net.pump();
  assert.deepEqual(b.texts(), ["confirmed"]);
});

Deno.test("SessionManager follows a peer's endpoint to the source of its last authenticated packet", async () => {
  const { net, a, b } = await pair();
  const roamed = { hostname: "198.18.0.1", port: 4999 };
  const stranger = { hostname: "198.18.9.9", port: 4000 };
  net.route(roamed, a);
  net.filter = (d) => d.by === a ? { from: roamed } : "deliver";
  await a.send(b, "from afar");
  await net.pump();
  assert.deepEqual(b.texts(), ["from afar"]);
  assert.deepEqual(peerOf(b).endpoint, roamed);

  await b.send(a, "reply");
  await net.pump();
  assert.deepEqual(net.sentBy(b, T.DATA).at(-1)!.to, roamed, "replies go to the new endpoint");
  assert.deepEqual(a.texts(), ["reply"]);

  // A forged frame (authentication fails) from elsewhere does not move the endpoint.
  net.filter = undefined;
  await a.send(b, "tampered");
  const frame = only(net.take(), "frame").bytes;
  const forged = Uint8Array.from(frame);
  forged[forged.length - 1]! ^= 1;
  await net.inject(forged, stranger, b);
  assert.equal(b.manager.drops.auth, 1);
  assert.deepEqual(peerOf(b).endpoint, roamed);
  // Nor does a replay of an authentic frame.
  await net.inject(frame, roamed, b);
  await net.inject(frame, stranger, b);
  assert.equal(b.manager.drops.replay, 1);
  assert.deepEqual(peerOf(b).endpoint, roamed);
  assert.deepEqual(b.texts(), ["from afar", "tampered"]);
});

Deno.test("SessionManager lets an untrusted peer reach only port 444, checked on every packet", async () => {
  const { net, a, b } = await pair();
  b.trusted = false;
  await a.send(b, "echo me", PORT_ECHO);
  await net.pump();
  assert.deepEqual(b.delivered, []);
  assert.equal(b.manager.drops.not_trusted, 1);
  assert.equal(peerOf(b).dropped, 1);
  assert.equal(peerOf(b).trusted, false);

  await a.send(b, "trust me", PORT_TRUST);
  await net.pump();
  assert.deepEqual(b.texts(), ["trust me"]);

  b.trusted = true;
  await a.send(b, "echo now", PORT_ECHO);
  await net.pump();
  assert.deepEqual(b.texts(PORT_ECHO), ["echo now"]);

  b.trusted = false;
  await a.send(b, "echo again", PORT_ECHO);
  await net.pump();
  assert.deepEqual(b.texts(PORT_ECHO), ["echo now"], "untrust takes effect on the next packet");
  assert.equal(b.manager.drops.not_trusted, 2);
  assert.equal(peerOf(b).dropped, 2);
});

Deno.test("SessionManager rekeys, keeps the previous keys for packets in flight, and expires silent peers", async () => {
  const { net, a, b } = await pair();
  await a.send(b, "old");
  await net.pump();
  const oldSession = b.delivered[0]!.session;
  // Two packets sealed under the first session, still in flight during the rekey.
  await a.send(b, "late 1");
  await a.send(b, "late 2");
  const [late1, late2] = net.take();

  await net.advance(DEFAULT_TIMERS.rekeyAfterMs, a, b);
  await net.waitFor(() => net.ofType(T.INIT).length === 2, "the rekey's message 1");
  assert.equal(net.ofType(T.INIT)[1]!.by, a, "the initiator rekeys");
  await net.pump();
  assert.equal(net.ofType(T.FINAL).length, 2);
  assert.equal(a.manager.sessionCount, 2, "current and previous");
  assert.equal(b.manager.sessionCount, 2, "current and previous");
  assert.equal(a.up.length, 1, "a rekey is not a new peer");

  await a.send(b, "new");
  await net.pump();
  const newSession = b.delivered.at(-1)!.session;
  assert.notDeepEqual(newSession.handshakeHash, oldSession.handshakeHash);
  await b.send(a, "back");
  await net.pump();
  assert.deepEqual(a.texts(), ["back"]);

  await net.advance(DEFAULT_TIMERS.previousGraceMs - 1, a, b);
  await net.inject(late1!.bytes, a.endpoint, b);
  assert.deepEqual(b.texts(), ["old", "new", "late 1"]);
  assert.equal(b.delivered.at(-1)!.session, oldSession, "decrypted with the previous keys");

  // Peers' timers run once every SESSION_SWEEP_MS: gone within one sweep of the grace's end.
  await net.advance(SESSION_SWEEP_MS, a, b);
  assert.equal(b.manager.sessionCount, 1, "the previous session is gone after the grace");
  assert.equal(a.manager.sessionCount, 1);
  await net.inject(late2!.bytes, a.endpoint, b);
  assert.deepEqual(b.texts(), ["old", "new", "late 1"]);
  assert.equal(b.manager.drops.unknown_index, 1);

  // The peer falls silent: the session dies once rejectAfterMs old.
  net.route(b.endpoint, undefined);
  net.route(a.endpoint, undefined);
  const sinceRekey = DEFAULT_TIMERS.previousGraceMs;
  let elapsed = sinceRekey;
  while (elapsed + 10_000 < DEFAULT_TIMERS.rejectAfterMs) {
    await net.advance(10_000, a, b);
    await net.pump();
    elapsed += 10_000;
  }
  assert.equal(a.manager.peers().length, 1, "still up just before rejectAfterMs");
  await net.advance(DEFAULT_TIMERS.rejectAfterMs - elapsed, a, b);
  await net.pump();
  for (const [self, other] of [[a, b], [b, a]] as const) {
    assert.deepEqual(self.manager.peers(), []);
    assert.equal(self.manager.sessionCount, 0);
    assert.deepEqual(self.down.map((p) => p.keyHex), [other.keyHex]);
  }
  assert.equal(await a.send(b, "gone"), false);
});

for (const order of ["fifo", "lifo"] as const) {
  for (const ids of [[0, 1], [1, 0]] as const) {
    Deno.test(`SessionManager agrees on one session when both sides connect at once (${order}, ids ${ids})`, async () => {
      const net = new FakeNetwork();
      const a = net.node(IDS[ids[0]]!);
      const b = net.node(IDS[ids[1]]!);
      const pa = await net.begin(a, b);
      const pb = await net.begin(b, a);
      await net.pump({ order });
      assert.equal((await pa.result).keyHex, b.keyHex);
      assert.equal((await pb.result).keyHex, a.keyHex);

      for (let round = 0; round < 2; round++) {
        await a.send(b, `a${round}`);
        await b.send(a, `b${round}`);
        await net.pump();
        assert.deepEqual(b.texts(), Array.from({ length: round + 1 }, (_, i) => `a${i}`));
        assert.deepEqual(a.texts(), Array.from({ length: round + 1 }, (_, i) => `b${i}`));
        assert.deepEqual(
          a.delivered.at(-1)!.session.handshakeHash,
          b.delivered.at(-1)!.session.handshakeHash,
          "both sides send on the same session",
        );
        assert.equal(only(a.manager.peers(), "peer").identity.keyHex, b.keyHex);
        assert.equal(only(b.manager.peers(), "peer").identity.keyHex, a.keyHex);
        // After the grace period only the agreed session is left.
        await net.advance(DEFAULT_TIMERS.previousGraceMs, a, b);
        await net.pump();
      }
      assert.equal(a.manager.sessionCount, 1);
      assert.equal(b.manager.sessionCount, 1);
    });
  }
}

// BUG: the initiator resends the same message 1 after the responder forgot it (HALF_OPEN_TIMEOUT_MS); each is dropped as replayed_init.
Deno.test({
  name:
    "SessionManager still forms a session when message 2 was lost for longer than the responder keeps half-open state",
  fn: async () => {
    const net = new FakeNetwork();
    const a = net.node(IDS[0]!);
    const b = net.node(IDS[1]!);
    let outage = true;
    net.filter = (d) => (outage && d.bytes[0] === T.RESP) ? "drop" : "deliver";
    const pending = await net.begin(a, b);
    await net.pump();
    let t = 0;
    for (; t <= HALF_OPEN_TIMEOUT_MS; t += 1000) {
      await net.advance(1000, a, b);
      await net.pump();
    }
    outage = false;
    for (; pending.state === "pending" && t < 40_000; t += 1000) {
      await net.advance(1000, a, b);
      await net.pump();
    }
    const state = pending.state;
    await net.advance(DEFAULT_TIMERS.rekeyAttemptMs, a, b);
    await pending.result.catch(() => {});
    assert.equal(state, "resolved", "the handshake completes once the network heals");
  },
});

// BUG: an initiator whose message 3 never got through repeats it forever (until rekeyAfterMs); data is black-holed.
Deno.test({
  name:
    "SessionManager recovers when message 3 was lost for longer than the responder keeps half-open state",
  fn: async () => {
    const net = new FakeNetwork();
    const a = net.node(IDS[0]!);
    const b = net.node(IDS[1]!);
    let outage = true;
    net.filter = (d) => (outage && d.bytes[0] === T.FINAL) ? "drop" : "deliver";
    await net.connect(a, b);
    let t = 0;
    for (; t <= HALF_OPEN_TIMEOUT_MS; t += 1000) {
      await net.advance(1000, a, b);
      await net.pump();
    }
    outage = false;
    for (; b.delivered.length === 0 && t < 40_000; t += 1000) {
      await a.send(b, "anyone there?");
      await net.advance(1000, a, b);
      await net.pump();
    }
    assert.notEqual(b.delivered.length, 0, "traffic flows again well before the next rekey");
  },
});

Deno.test("SessionManager is busy (its tick due every TIMER_TICK_MS) only while a handshake is being tried", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!);
  assert.equal(a.manager.busy, false, "an idle table needs a sweep a second, no more");
  let lost = true;
  net.filter = () => lost ? "drop" : "deliver";
  const pending = await net.begin(a, b);
  assert.equal(a.manager.busy, true, "message 1 will be retried on the finer clock");
  lost = false;
  for (let t = 0; pending.state === "pending" && t < 30_000; t += 250) {
    await net.advance(250, a, b);
    await net.pump();
  }
  assert.equal(pending.state, "resolved");
  assert.equal(a.manager.busy, false, "the session is up: idle again");
  assert.equal(b.manager.busy, false, "a responder never needs the finer clock");
});

Deno.test("SessionManager.trustedPaths() lists the trusted peers with a session, and where each sends", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!);
  const c = net.node(IDS[2]!);
  await net.connect(a, b);
  await net.connect(a, c);
  await net.pump();
  assert.deepEqual(
    new Map(a.manager.trustedPaths()),
    new Map([[b.keyHex, b.endpoint], [c.keyHex, c.endpoint]]),
  );
  // Trust withdrawn from everyone: the same sessions, no trusted path.
  a.trusted = false;
  assert.equal(a.manager.peers().length, 2);
  assert.deepEqual([...a.manager.trustedPaths()], []);
});
