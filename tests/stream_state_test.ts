import assert from "node:assert/strict";
import type { Connection } from "../src/stream/connection.ts";
import { assertTransition, type ConnectionState, TRANSITIONS } from "../src/stream/state.ts";
import { SEG_ACK, SEG_SYN } from "../src/wire/stream_segment.ts";
import {
  openPair,
  patternBytes,
  readAll,
  SimLink,
  type SimLinkOptions,
  track,
  type WirePacket,
  writeAll,
} from "./_sim_link.ts";

const timers = {
  keepaliveMs: 1_000,
  idleTimeoutMs: 5_000,
  timeWaitMs: 2_000,
  connectTimeoutMs: 3_000,
};

/** Every edge the connections of the scenarios took, as "from -> to". */
const taken = new Set<string>();

/** A simulated link that records every state change of its connections in `taken`. */
function observed(options: SimLinkOptions = {}): SimLink {
  return new SimLink({
    timers,
    ...options,
    onStateChange: (_side, conn, from) => void taken.add(`${from} -> ${conn.state}`),
  });
}

/** Runs until `conn` reaches `state`. */
function reach(link: SimLink, conn: Connection, state: ConnectionState): Promise<void> {
  return link.run(() => conn.state === state);
}

/** An ACK with no data, FIN or PROBE: what acknowledges a FIN here. */
const isPureAck = (p: WirePacket) => p.segment.flags === SEG_ACK && p.segment.data.length === 0;

const scenarios: [string, () => Promise<void>][] = [
  ["open, data, and an orderly close, client first, with TIME_WAIT run out", async () => {
    const link = observed();
    const { client, server } = await openPair(link);
    const data = patternBytes(50_000, 3);
    const atServer = readAll(server);
    const w = track(writeAll(client, data));
    await link.run(() => w.settled && atServer.result.ended);
    assert.equal(atServer.result.bytes, data.length);
    assert.equal(client.state, "fin-wait-2");
    assert.equal(server.state, "close-wait");
    void server.close();
    await reach(link, server, "closed");
    assert.equal(client.state, "time-wait");
    await reach(link, client, "closed");
    assert.equal(await client.closed, null);
  }],
  ["both sides close at once, and the first side's ACKs of the FIN are lost", async () => {
    let cut = false;
    const link = observed({ drop: (p) => cut && p.from === "b" && isPureAck(p) });
    const { client, server } = await openPair(link);
    cut = true;
    void client.close();
    void server.close();
    await link.run(() => client.state === "closing" && server.state === "closing");
    await reach(link, server, "time-wait"); // a's ACK arrives
    await reach(link, server, "closed");
    assert.equal(client.state, "closing"); // b's ACKs never do
    // Once b forgot the connection, its mux answers a's next FIN with an RST.
    await reach(link, client, "closed");
    assert.equal((await client.closed)?.reason, "unknown connection");
  }],
  ["connect() to a port without a listener is refused", async () => {
    const link = observed();
    const t = track(link.a.connect(4242));
    await link.run(() => t.settled);
    assert.equal(link.a.connections().length, 0);
  }],
  [
    "the handshake's final ACK never arrives: the acceptor times out and resets the opener",
    async () => {
      const link = observed({ drop: (p) => p.from === "a" && p.segment.flags !== SEG_SYN });
      link.b.listen(1001, () => {});
      const t = track(link.a.connect(1001));
      await link.run(() => t.settled);
      const client = t.value!;
      assert.equal(client.state, "established");
      await reach(link, client, "closed");
      assert.equal((await client.closed)?.reason, "connect timeout");
    },
  ],
  ["reset() after close() but before the FIN is acknowledged", async () => {
    const link = observed();
    const { client, server } = await openPair(link);
    void client.write(patternBytes(10_000, 4)).catch(() => {});
    void client.close();
    assert.equal(client.state, "fin-wait-1");
    client.reset("changed my mind");
    await reach(link, server, "closed");
  }],
  ["reset() from a half-closed side reaches the peer in CLOSE-WAIT", async () => {
    const link = observed();
    const { client, server } = await openPair(link);
    void client.close();
    await link.run(() => client.state === "fin-wait-2" && server.state === "close-wait");
    client.reset("abandon");
    await reach(link, server, "closed");
    assert.equal((await server.closed)?.reason, "abandon");
  }],
  [
    "an established connection whose link goes dead ends by idle timeout on both sides",
    async () => {
      const link = observed();
      const { client, server } = await openPair(link);
      link.impair("a", { loss: 1 });
      link.impair("b", { loss: 1 });
      await link.run(() => client.state === "closed" && server.state === "closed");
      assert.equal((await server.closed)?.reason, "idle timeout");
    },
  ],
];

Deno.test("connections over a simulated link take every edge of the transition table, and no other", async (t) => {
  for (const [name, run] of scenarios) await t.step(name, run);
  const table = Object.entries(TRANSITIONS).flatMap(([from, tos]) =>
    tos.map((to) => `${from} -> ${to}`)
  );
  const missing = table.filter((edge) => !taken.has(edge));
  const extra = [...taken].filter((edge) => !table.includes(edge));
  assert.deepEqual(missing, [], "edges in the table that no scenario took");
  assert.deepEqual(extra, [], "edges taken that the table does not list");
  assert.equal(taken.size, 18);
});

Deno.test("assertTransition() refuses a transition the table does not list", () => {
  assert.throws(
    () => assertTransition("established", "syn-sent"),
    /Illegal stream connection transition established -> syn-sent: expected one of fin-wait-1, close-wait, closed/,
  );
  assert.throws(() => assertTransition("closed", "established"), /expected one of none/);
  assert.throws(() => assertTransition("time-wait", "time-wait"), /Illegal/);
  assertTransition("fin-wait-1", "closing");
});
