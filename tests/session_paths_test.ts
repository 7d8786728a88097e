/**
 * Paths in the session table (issue 9): roaming between a relay path and a
 * direct one, the fallback to the relay when a direct path goes quiet,
 * probes to another endpoint, and keepalives that hold a NAT mapping.
 */
import assert from "node:assert/strict";
import {
  KEEPALIVE_TIMEOUT_MS,
  PERSISTENT_KEEPALIVE_MS,
  SESSION_SILENCE_MS,
} from "../src/constants.ts";
import { type Endpoint, formatEndpoint, relayEndpoint } from "../src/discovery/endpoint.ts";
import { pair, T, type TestNode } from "./_session_helpers.ts";

function datagram(from: TestNode, to: TestNode, options: { to?: Endpoint } = {}) {
  return from.manager.send(
    to.keyHex,
    { kind: "datagram", srcPort: 49_152, dstPort: 7, payload: Uint8Array.of(1, 2, 3) },
    options,
  );
}

async function setup(options: { holdsMapping?: boolean } = {}) {
  const changes: string[] = [];
  const { net, a, b } = await pair({
    b: {
      manager: {
        onPathChanged: (_peer, e) => changes.push(formatEndpoint(e)),
        ...(options.holdsMapping ? { holdsMapping: () => true } : {}),
      },
    },
  });
  const relay = relayEndpoint({ via: b.identity.address, peer: a.identity.address });
  const viaRelay = () => net.filter = (d) => d.by === a ? { from: relay } : "deliver";
  const direct = () => net.filter = undefined;
  const pathAtB = () => formatEndpoint(b.manager.peers()[0]!.endpoint!);
  return { net, a, b, relay, changes, viaRelay, direct, pathAtB };
}

/** A fresh handshake from a to b through a relay: a sends to b's relay path, b sees a's. */
async function handshakeThroughRelay(
  { net, a, b, relay }: Pick<Awaited<ReturnType<typeof setup>>, "net" | "a" | "b" | "relay">,
): Promise<void> {
  const toB = relayEndpoint({ via: a.identity.address, peer: b.identity.address });
  net.route(toB, b);
  net.filter = (d) => d.by === a ? { from: relay } : "deliver";
  net.route(relay, a);
  // Message 1 on the wire first: pump() alone may run before it is sealed.
  const pending = await net.begin(a, toB, { publicKey: b.identity.publicKey }, { fresh: true });
  await net.pump();
  await pending.result;
  await net.pump();
}

Deno.test("roaming: a relayed frame moves a path unless a direct frame came within the silence window; each move is announced", async () => {
  const { net, a, b, relay, changes, viaRelay, direct, pathAtB } = await setup();
  viaRelay();
  await datagram(a, b);
  await net.pump();
  assert.equal(pathAtB(), formatEndpoint(relay));
  assert.deepEqual(changes, [formatEndpoint(relay)]);
  direct();
  await datagram(a, b);
  await net.pump();
  assert.equal(pathAtB(), formatEndpoint(a.endpoint), "a direct frame upgrades at once");
  assert.deepEqual(changes, [formatEndpoint(relay), formatEndpoint(a.endpoint)]);
  viaRelay();
  await datagram(a, b);
  await net.pump();
  assert.equal(pathAtB(), formatEndpoint(a.endpoint), "a late relayed frame does not undo it");
  assert.equal(b.delivered.length, 3, "and is still delivered");
  net.clock.advance(SESSION_SILENCE_MS);
  await datagram(a, b);
  await net.pump();
  assert.equal(pathAtB(), formatEndpoint(relay), "once the direct path is quiet, the relay wins");
  assert.equal(changes.length, 3);
});

Deno.test("a direct path whose data goes unanswered falls back to the relay it came through, and the rekey goes there", async () => {
  const { net, a, b, relay, changes, viaRelay, direct, pathAtB } = await setup();
  viaRelay();
  await datagram(a, b);
  await net.pump();
  direct();
  await datagram(a, b);
  await net.pump();
  assert.equal(pathAtB(), formatEndpoint(a.endpoint));
  net.filter = () => "drop"; // the punched mapping is gone: nothing gets through
  await datagram(b, a);
  await net.pump();
  net.clock.advance(SESSION_SILENCE_MS);
  await b.manager.tick();
  assert.equal(pathAtB(), formatEndpoint(relay));
  assert.equal(changes.at(-1), formatEndpoint(relay));
  await net.waitFor(() => net.sentBy(b, T.INIT).length > 0, "the rekey's message 1");
  assert.equal(formatEndpoint(net.sentBy(b, T.INIT).at(-1)!.to), formatEndpoint(relay));
});

Deno.test("a probe goes to the endpoint given, leaves the path alone, and never makes the session look silent", async () => {
  const { net, a, b, pathAtB } = await setup();
  const before = pathAtB();
  const elsewhere = { hostname: "198.18.9.9", port: 9 };
  net.filter = () => "drop";
  assert.equal(await datagram(b, a, { to: elsewhere }), true);
  assert.equal(formatEndpoint(net.sentBy(b, T.DATA).at(-1)!.to), formatEndpoint(elsewhere));
  await net.pump();
  assert.equal(pathAtB(), before);
  net.clock.advance(SESSION_SILENCE_MS * 2);
  await b.manager.tick();
  await net.pump();
  assert.equal(net.sentBy(b, T.INIT).length, 0, "no rekey for a lost probe");
});

Deno.test("a path that holds a NAT mapping gets a keepalive every 25 s; others none", async () => {
  for (const holds of [true, false]) {
    const { net, b } = await setup({ holdsMapping: holds });
    // Past the handshake's own frames first.
    net.clock.advance(KEEPALIVE_TIMEOUT_MS);
    await b.manager.tick();
    await net.pump();
    const before = net.sentBy(b, T.DATA).length;
    net.clock.advance(PERSISTENT_KEEPALIVE_MS);
    await b.manager.tick();
    await net.pump();
    const keepalives = net.sentBy(b, T.DATA).length - before;
    assert.equal(keepalives > 0, holds, `holdsMapping ${holds}: ${keepalives} keepalives`);
  }
});

Deno.test("a new session over another kind of path (a handshake through the relay) is announced as a change of path", async () => {
  const { net, a, b, relay, changes, pathAtB } = await setup();
  await handshakeThroughRelay({ net, a, b, relay });
  assert.equal(pathAtB(), formatEndpoint(relay));
  assert.deepEqual(changes, [formatEndpoint(relay)]);
});

Deno.test("a handshake through the relay within the silence window of a direct frame keeps the direct path (both sides rekeyed when it went quiet)", async () => {
  const { net, a, b, relay, changes, pathAtB } = await setup();
  await datagram(a, b);
  await net.pump();
  assert.equal(pathAtB(), formatEndpoint(a.endpoint));
  const before = b.manager.binding(a.keyHex);
  await handshakeThroughRelay({ net, a, b, relay });
  assert.notDeepEqual(b.manager.binding(a.keyHex), before, "a new session");
  assert.equal(pathAtB(), formatEndpoint(a.endpoint), "still the direct path");
  assert.deepEqual(changes, [], "no change announced");
});
