/**
 * The zero-trust gate on every frame: an untrusted peer reaches the trust
 * service's datagrams on port 444 and nothing else; everything else is
 * dropped silently (no answer of any kind) and counted by reason.
 */

import assert from "node:assert/strict";
import { FakeNetwork, IDS, localIdentity, pair, T, type TestNode } from "./_session_helpers.ts";
import { PORT_ECHO, PORT_TRUST, RELAY_FRAME_RATE, UNTRUSTED_FRAME_RATE } from "../src/constants.ts";
import { PilotError } from "../src/errors.ts";
import type { DropReason } from "../src/session/drop_reason.ts";
import { InitiatorHandshake } from "../src/session/handshake.ts";
import { decodeFrame } from "../src/wire/frames.ts";

function sendKind(from: TestNode, to: TestNode, kind: "datagram" | "stream", dstPort: number) {
  return from.manager.send(to.keyHex, {
    kind,
    srcPort: 49_152,
    dstPort,
    payload: new TextEncoder().encode(`${kind} to ${dstPort}`),
  });
}

const cases: { kind: "datagram" | "stream"; port: number; reason: DropReason | null }[] = [
  { kind: "datagram", port: PORT_TRUST, reason: null },
  { kind: "stream", port: PORT_TRUST, reason: "not_trusted_stream" },
  { kind: "datagram", port: PORT_ECHO, reason: "not_trusted" },
  { kind: "stream", port: PORT_ECHO, reason: "not_trusted_stream" },
];

for (const { kind, port, reason } of cases) {
  const verdict = reason === null ? "delivers" : `drops (${reason})`;
  Deno.test(`SessionManager ${verdict} an untrusted peer's ${kind} to port ${port}`, async () => {
    const { net, a, b } = await pair();
    b.trusted = false;
    const answersBefore = net.sentBy(b, T.DATA).length;
    assert.equal(await sendKind(a, b, kind, port), true);
    await net.pump();
    if (reason === null) {
      assert.equal(b.delivered.length, 1);
      assert.equal(b.delivered[0]!.packet.kind, kind);
      assert.equal(b.dropTotal, 0);
    } else {
      assert.deepEqual(b.delivered, [], "nothing reaches the layers above");
      assert.equal(b.manager.drops[reason], 1);
      assert.equal(b.manager.peers()[0]!.dropped, 1, "counted against the peer");
    }
    // A keepalive may answer anything; a reset or any other data may not.
    for (const d of net.sentBy(b, T.DATA).slice(answersBefore)) {
      assert.equal(d.bytes.length, 29, "only keepalives go back");
    }
    b.trusted = true;
    assert.equal(await sendKind(a, b, kind, port), true);
    await net.pump();
    assert.equal(b.delivered.at(-1)?.packet.kind, kind, "a trusted peer's packet passes");
  });
}

Deno.test("SessionManager accepts an untrusted peer's keepalives without counting a drop", async () => {
  // a holds a NAT mapping: it sends keepalives every 25 s.
  const { net, a, b } = await pair({ a: { manager: { holdsMapping: () => true } } });
  b.trusted = false;
  const received = () => b.manager.peers()[0]!.dropped;
  net.clock.advance(30_000);
  await a.manager.tick(); // the persistent keepalive is due
  await net.pump();
  assert.ok(net.sentBy(a, T.DATA).some((d) => d.bytes.length === 29), "a keepalive went out");
  assert.equal(received(), 0);
  assert.equal(b.dropTotal, 0);
  assert.deepEqual(b.delivered, []);
});

Deno.test("SessionManager refuses a handshake with its own endpoint, with a clear error", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const err = await net.connect(a, a).then(() => null, (e: unknown) => e);
  assert.ok(err instanceof PilotError, `expected a PilotError, got ${err}`);
  assert.equal(err.code, "invalid_argument");
  assert.match(err.message, /this node itself/);
  assert.deepEqual(a.manager.peers(), [], "no session with itself is listed");
  assert.equal(a.manager.sessionCount, 0);
  assert.equal(a.manager.drops.self, 1);
  assert.equal(net.sentBy(a, T.FINAL).length, 0, "no message 3 to itself");
});

Deno.test("SessionManager refuses to connect to its own key before sending anything", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!);
  const err = await a.manager.connect(b.endpoint, { publicKey: a.identity.publicKey }, 5000)
    .then(() => null, (e: unknown) => e);
  assert.ok(err instanceof PilotError && err.code === "invalid_argument", `${err}`);
  assert.deepEqual(net.sent, []);
});

Deno.test("SessionManager as responder refuses a message 3 carrying its own key", async () => {
  const net = new FakeNetwork();
  const b = net.node(IDS[1]!);
  // An initiator holding b's own identity (a clone, or b reached through a relay).
  const clone = localIdentity(IDS[1]!);
  const h = await InitiatorHandshake.start({
    local: clone,
    localIndex: 77,
    endpoint: b.endpoint,
    expected: {},
    mac1Key: undefined,
    now: net.clock.ms,
  });
  const from = { hostname: "198.18.3.3", port: 3000 };
  await net.inject(await h.frame(), from, b);
  const resp = net.take().find((d) => d.bytes[0] === T.RESP)!;
  const frame = decodeFrame(resp.bytes);
  assert.equal(frame.type, "resp");
  const { final } = await h.complete(frame, b.endpoint, net.clock.ms);
  await net.inject(final, from, b);
  assert.equal(b.manager.drops.self, 1);
  assert.equal(b.manager.sessionCount, 0);
  assert.deepEqual(b.manager.peers(), []);
  assert.deepEqual(net.take(), [], "nothing is sent to itself");
});

Deno.test("SessionManager sheds an untrusted peer's frame flood before decrypting, and never a trusted peer's", async () => {
  const { net, a, b } = await pair();
  b.trusted = false;
  const flood = UNTRUSTED_FRAME_RATE.burst + 100;
  for (let i = 0; i < flood; i++) await sendKind(a, b, "datagram", PORT_TRUST);
  await net.pump();
  assert.equal(b.manager.drops.untrusted_rate, flood - UNTRUSTED_FRAME_RATE.burst);
  assert.equal(b.delivered.length, UNTRUSTED_FRAME_RATE.burst, "the bucket's worth went through");
  b.trusted = true;
  for (let i = 0; i < flood; i++) await sendKind(a, b, "datagram", PORT_ECHO);
  await net.pump();
  assert.equal(b.delivered.length, UNTRUSTED_FRAME_RATE.burst + flood, "trusted: all delivered");
  assert.equal(b.manager.drops.untrusted_rate, flood - UNTRUSTED_FRAME_RATE.burst);
});

Deno.test("SessionManager gives an untrusted peer that relays (a rendezvous) the relay frame rate, still shed before decrypting", async () => {
  const { net, a, b } = await pair({
    b: { manager: { untrustedPort: (_peer, port) => port === 445, relaysFor: () => true } },
  });
  b.trusted = false;
  const within = UNTRUSTED_FRAME_RATE.burst * 4;
  for (let i = 0; i < within; i++) await sendKind(a, b, "datagram", 445);
  await net.pump();
  assert.equal(b.manager.drops.untrusted_rate ?? 0, 0, "four strangers' bursts pass");
  assert.equal(b.delivered.length, within);
  const flood = RELAY_FRAME_RATE.burst + 50 - within;
  for (let i = 0; i < flood; i++) await sendKind(a, b, "datagram", 445);
  await net.pump({ max: 2 * RELAY_FRAME_RATE.burst });
  assert.ok((b.manager.drops.untrusted_rate ?? 0) >= 1, "past the relay burst, shed");
  assert.ok(b.delivered.length <= RELAY_FRAME_RATE.burst + 5);
});

Deno.test("SessionManager lets an untrusted peer's datagrams reach a port the node opens to strangers, never its streams", async () => {
  const { net, a, b } = await pair({
    b: { manager: { untrustedPort: (_peer, port) => port === 445 } },
  });
  b.trusted = false;
  assert.equal(await sendKind(a, b, "datagram", 445), true);
  assert.equal(await sendKind(a, b, "stream", 445), true);
  assert.equal(await sendKind(a, b, "datagram", 446), true);
  await net.pump();
  assert.deepEqual(b.delivered.map((d) => [d.packet.kind, d.packet.dstPort]), [["datagram", 445]]);
  assert.equal(b.manager.drops.not_trusted_stream, 1);
  assert.equal(b.manager.drops.not_trusted, 1);
});

Deno.test("SessionManager lets an untrusted peer's stream segments through only where the node opens that stream port to it", async () => {
  const { net, a, b } = await pair({
    b: { manager: { untrustedStream: (_peer, segment) => segment.dstPort === 447 } },
  });
  b.trusted = false;
  assert.equal(await sendKind(a, b, "stream", 447), true);
  assert.equal(await sendKind(a, b, "stream", 448), true);
  assert.equal(await sendKind(a, b, "datagram", 447), true);
  await net.pump();
  assert.deepEqual(b.delivered.map((d) => [d.packet.kind, d.packet.dstPort]), [["stream", 447]]);
  assert.equal(b.manager.drops.not_trusted_stream, 1, "a stream to another port is still refused");
  assert.equal(b.manager.drops.not_trusted, 1, "the stream port opens no datagram port");
});
