/**
 * Integration tests with real `pilot` daemons on loopback: sessions, the
 * identity file across restarts and when damaged, one daemon per home,
 * replayed datagrams, roaming, and the zero-trust gate.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FRAME_DATA, FRAME_HANDSHAKE_FINAL, FRAME_HANDSHAKE_INIT } from "../src/wire/frames.ts";
import {
  endpointOf,
  fixture,
  makeHome,
  RawPeer,
  startNode,
  stopAll,
  TestNode,
  trustEntry,
  UdpRelay,
  waitFor,
} from "./_daemon_harness.ts";

const FAST_KEEPALIVE = { timers: { persistent_keepalive_ms: 300 } };

function modeOf(info: Deno.FileInfo): number {
  assert.notEqual(info.mode, null, "the platform reports file modes");
  return info.mode! & 0o777;
}

Deno.test("two nodes form a session by endpoint, list each other, and reuse it by address but never by an untrusted hostname", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = await startNode({ identity: 0, hostname: "node-a" });
    b = await startNode({ identity: 1, hostname: "node-b" });
    const idA = a.identity!;
    const idB = b.identity!;

    const first = await a.pilot("connect", b.listen, "--json");
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal(first.json.data.changed, true);
    assert.equal(first.json.data.peer.address, idB.address);
    assert.equal(first.json.data.peer.fingerprint, idB.fingerprint);
    assert.equal(first.json.data.peer.hostname, "node-b");
    assert.equal(first.json.data.trusted, false);

    const seenByA = await a.peers();
    assert.equal(seenByA.length, 1);
    assert.equal(seenByA[0].address, idB.address);
    assert.equal(seenByA[0].public_key, idB.publicKey);
    assert.equal(seenByA[0].fingerprint, idB.fingerprint);
    assert.equal(seenByA[0].hostname, "node-b");
    assert.equal(seenByA[0].endpoint, b.listen);
    assert.equal(seenByA[0].trusted, false);

    const seenByB = await waitFor("B to list A", async () => {
      const p = await b!.peers();
      return p.length > 0 ? p : undefined;
    });
    assert.equal(seenByB.length, 1);
    assert.equal(seenByB[0].address, idA.address);
    assert.equal(seenByB[0].public_key, idA.publicKey);
    assert.equal(seenByB[0].fingerprint, idA.fingerprint);
    assert.equal(seenByB[0].hostname, "node-a");
    assert.equal(seenByB[0].endpoint, a.listen);

    const again = await a.pilot("connect", b.listen, "--json");
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(again.json.data.changed, false);
    assert.equal(again.json.data.peer.public_key, idB.publicKey);

    // A hostname claimed on an untrusted session is never followed (PROTOCOL.md §11.2.1).
    const byName = await a.pilot("connect", "node-b", "--json");
    assert.equal(byName.code, 1, byName.stdout + byName.stderr);
    assert.equal(byName.json.code, "not_found");

    const byAddress = await a.pilot("connect", idB.address, "--json");
    assert.equal(byAddress.code, 0, byAddress.stdout + byAddress.stderr);
    assert.equal(byAddress.json.data.changed, false);
    assert.equal(byAddress.json.data.peer.public_key, idB.publicKey);
    assert.equal(byAddress.json.data.endpoint, b.listen);

    assert.equal((await a.peers()).length, 1);
    assert.equal((await a.info()).peers, 1);
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("a daemon that created its identity keeps it and its address across a restart", async () => {
  // The only test that pays for a real stamp search: it checks the files the daemon writes itself.
  const parent = await makeHome({ identity: null });
  const home = join(parent, "node");
  const node = new TestNode(home, { identity: null });
  try {
    await node.start();
    const before = await node.info();
    const identityPath = join(home, "identity.json");
    const bytes = await Deno.readFile(identityPath);
    assert.equal(modeOf(await Deno.stat(home)), 0o700);
    assert.equal(modeOf(await Deno.stat(identityPath)), 0o600);

    const stopped = await node.pilot("daemon", "stop", "--json");
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    assert.equal(stopped.json.data.changed, true);
    await node.start();
    const after = await node.info();

    assert.equal(after.address, before.address);
    assert.equal(after.public_key, before.public_key);
    assert.equal(after.fingerprint, before.fingerprint);
    assert.deepEqual(await Deno.readFile(identityPath), bytes);
    assert.equal(modeOf(await Deno.stat(identityPath)), 0o600);
    assert.equal(modeOf(await Deno.stat(home)), 0o700);
  } finally {
    await node.stop();
    await Deno.remove(parent, { recursive: true }).catch(() => {});
  }
});

Deno.test("a restarted daemon answers with its fixture identity again", async () => {
  let node: TestNode | undefined;
  try {
    node = await startNode({ identity: 2 });
    const before = await node.info();
    assert.equal(before.address, fixture(2).address);
    assert.equal(before.public_key, fixture(2).public_key);
    const stopped = await node.pilot("daemon", "stop", "--json");
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    await node.start();
    const after = await node.info();
    assert.equal(after.address, before.address);
    assert.equal(after.public_key, before.public_key);
    assert.equal(after.fingerprint, before.fingerprint);
  } finally {
    await node?.stop();
  }
});

function flipSeedDigit(text: string): string {
  const o = JSON.parse(text);
  const seed = o.seed as string;
  o.seed = (seed[0] === "0" ? "1" : "0") + seed.slice(1);
  return JSON.stringify(o);
}

Deno.test("a corrupt identity file stops daemon start with a one-line error and stays unchanged", async () => {
  const good = JSON.stringify(fixture(3));
  const cases: [string, string][] = [
    ["truncated JSON", good.slice(0, Math.floor(good.length / 2))],
    ["a flipped hex digit in the seed", flipSeedDigit(good)],
  ];
  for (const [what, text] of cases) {
    const node = new TestNode(await makeHome({ identityText: text }), { identityText: text });
    try {
      const path = join(node.home, "identity.json");
      const before = await Deno.readFile(path);

      const r = await node.pilot("daemon", "start", "--listen", "127.0.0.1:0", "--json");
      assert.notEqual(r.code, 0, `${what}: daemon start must fail`);
      assert.equal(r.json?.status, "error", `${what}: ${r.stdout}`);
      assert.equal(r.json.code, "invalid_argument", `${what}: ${r.stdout}`);
      assert.ok(
        r.json.message.includes(path),
        `${what}: message names the file: ${r.json.message}`,
      );
      assert.ok(!r.json.message.includes("\n"), `${what}: one line`);

      const human = await node.pilot("daemon", "start", "--listen", "127.0.0.1:0");
      assert.equal(human.code, r.code);
      assert.equal(human.stdout, "");
      const lines = human.stderr.trimEnd().split("\n");
      assert.match(lines[0]!, /^error: Identity file ".*identity\.json" is unusable: /, what);
      assert.ok(!human.stderr.includes("    at "), `${what}: no stack trace: ${human.stderr}`);

      assert.deepEqual(await Deno.readFile(path), before, `${what}: file left byte for byte`);
      const status = await node.pilot("daemon", "status", "--json");
      assert.deepEqual([status.code, status.json.code], [3, "not_running"], what);
    } finally {
      await node.stop();
    }
  }
});

Deno.test("an identity file other users can read is refused with a chmod hint", async () => {
  const node = new TestNode(await makeHome({ identity: 4, identityMode: 0o644 }), { identity: 4 });
  try {
    const path = join(node.home, "identity.json");
    const before = await Deno.readFile(path);
    const r = await node.pilot("daemon", "start", "--listen", "127.0.0.1:0", "--json");
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.json.code, "invalid_argument");
    assert.ok(r.json.message.includes(path), r.json.message);
    assert.equal(r.json.hint, `run: chmod 600 ${path}`);

    const human = await node.pilot("daemon", "start", "--listen", "127.0.0.1:0");
    assert.equal(human.code, 2);
    assert.ok(human.stderr.includes(`hint: run: chmod 600 ${path}`), human.stderr);

    const info = await Deno.stat(path);
    assert.equal(modeOf(info), 0o644, "the daemon does not silently fix the mode");
    assert.deepEqual(await Deno.readFile(path), before);
    assert.equal((await node.pilot("daemon", "status", "--json")).code, 3, "not running");
  } finally {
    await node.stop();
  }
});

Deno.test("a home other users can enter is refused with a chmod hint", async () => {
  const node = new TestNode(await makeHome({ identity: 4 }), { identity: 4 });
  try {
    await Deno.chmod(node.home, 0o755);
    const r = await node.pilot("daemon", "start", "--listen", "127.0.0.1:0", "--json");
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.json.code, "invalid_argument");
    assert.ok(r.json.message.includes(node.home), r.json.message);
    assert.equal(r.json.hint, `run: chmod 700 ${node.home}`);
    assert.equal(modeOf(await Deno.stat(node.home)), 0o755, "the mode is not silently changed");
    assert.equal((await node.pilot("daemon", "status", "--json")).code, 3, "not running");
  } finally {
    await node.stop();
  }
});

Deno.test("one daemon runs per home, and repeated start --ensure and stop answer changed: false", async () => {
  let node: TestNode | undefined;
  try {
    node = await startNode({ identity: 5 });

    const second = await node.pilot("daemon", "start", "--listen", "127.0.0.1:0", "--json");
    assert.equal(second.code, 1, second.stdout + second.stderr);
    assert.equal(second.json.code, "already_running");

    const ensure = await node.pilot(
      "daemon",
      "start",
      "--ensure",
      "--listen",
      "127.0.0.1:0",
      "--json",
    );
    assert.equal(ensure.code, 0, ensure.stdout + ensure.stderr);
    assert.equal(ensure.json.data.changed, false);
    assert.equal(ensure.json.data.pid, node.pid);
    assert.equal(ensure.json.data.listen, node.listen);

    const running = await node.pilot("daemon", "status", "--json");
    assert.equal(running.json.data.running, true);
    assert.equal(running.json.data.pid, node.pid);

    const stop1 = await node.pilot("daemon", "stop", "--json");
    assert.equal(stop1.code, 0, stop1.stdout + stop1.stderr);
    assert.deepEqual(stop1.json.data, { stopped: true, changed: true });
    const stop2 = await node.pilot("daemon", "stop", "--json");
    assert.equal(stop2.code, 0, stop2.stdout + stop2.stderr);
    assert.deepEqual(stop2.json.data, { stopped: true, changed: false });

    const status = await node.pilot("daemon", "status", "--json");
    assert.deepEqual([status.code, status.json.code], [3, "not_running"]);
  } finally {
    await node?.stop();
  }
});

function frameType(bytes: Uint8Array): number {
  return bytes[0] ?? -1;
}

Deno.test("replayed handshake and data datagrams are dropped and the session stays as it was", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let relay: UdpRelay | undefined;
  let stranger: Deno.DatagramConn | undefined;
  try {
    // Persistent keepalives on A put authenticated data frames on the wire to replay.
    a = await startNode({ identity: 0, hostname: "node-a", config: FAST_KEEPALIVE });
    b = await startNode({ identity: 1, hostname: "node-b" });
    relay = new UdpRelay(endpointOf(b.listen));
    const r = await a.pilot("connect", `127.0.0.1:${relay.listen.port}`, "--json");
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json.data.peer.public_key, b.identity!.publicKey);

    const log = relay.log;
    await waitFor("two data frames from A", () => {
      return log.filter((d) => d.direction === "a->b" && frameType(d.bytes) === FRAME_DATA)
        .length >= 2;
    });
    // An age of at least 1 s makes a reset to 0 visible.
    const peerBefore = await waitFor("B's session to be 1 s old", async () => {
      const p = await b!.peers();
      return p.length === 1 && p[0].session_age_s >= 1 ? p[0] : undefined;
    });
    const infoBefore = await b.info();
    assert.equal(infoBefore.sessions, 1);

    const recorded = log.filter((d) => d.direction === "a->b").map((d) => d.bytes);
    const count = (t: number) => recorded.filter((x) => frameType(x) === t).length;
    assert.equal(count(FRAME_HANDSHAKE_INIT), 1);
    assert.ok(count(FRAME_HANDSHAKE_FINAL) >= 1);
    for (const bytes of recorded) await relay.replay(bytes);

    const dropsBefore = infoBefore.drops as Record<string, number>;
    const was = (k: string) => dropsBefore[k] ?? 0;
    const infoAfter = await waitFor("B to drop every replay", async () => {
      const info = await b!.info();
      const d = info.drops as Record<string, number>;
      const done = (d.replayed_init ?? 0) >= was("replayed_init") + count(FRAME_HANDSHAKE_INIT) &&
        (d.replay ?? 0) >= was("replay") + count(FRAME_DATA);
      return done ? info : undefined;
    });
    assert.equal(infoAfter.sessions, 1, "no new session from replayed handshake messages");
    assert.equal(infoAfter.peers, 1);

    const peersAfter = await b.peers();
    assert.equal(peersAfter.length, 1);
    assert.equal(peersAfter[0].public_key, a.identity!.publicKey);
    assert.ok(
      peersAfter[0].session_age_s >= peerBefore.session_age_s,
      `session age went from ${peerBefore.session_age_s} to ${peersAfter[0].session_age_s}`,
    );
    assert.equal(peersAfter[0].endpoint, peerBefore.endpoint);
    assert.equal((await a.peers()).length, 1);

    // The same replays from a stranger's socket must not move B's idea of where A is.
    // A goes quiet first, so that none of its own packets could move the endpoint back.
    const stopped = await a.pilot("daemon", "stop", "--json");
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    stranger = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const bEndpoint = endpointOf(b.listen);
    const replayBefore = (infoAfter.drops as Record<string, number>).replay ?? 0;
    for (const bytes of recorded) {
      await stranger.send(bytes, { transport: "udp", ...bEndpoint });
    }
    await waitFor("B to drop the stranger's replays", async () => {
      const d = (await b!.info()).drops as Record<string, number>;
      return (d.replay ?? 0) >= replayBefore + count(FRAME_DATA);
    });
    const peersLast = await b.peers();
    assert.equal(peersLast.length, 1);
    assert.equal(peersLast[0].endpoint, peerBefore.endpoint, "replays do not roam the peer");
    assert.equal((await b.info()).sessions, 1);
  } finally {
    stranger?.close();
    await relay?.close();
    await stopAll(a, b);
  }
});

Deno.test("a peer that roams to a new source port keeps its session and is answered there", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let relay: UdpRelay | undefined;
  try {
    a = await startNode({ identity: 0, hostname: "node-a", config: FAST_KEEPALIVE });
    b = await startNode({ identity: 1, hostname: "node-b", config: FAST_KEEPALIVE });
    relay = new UdpRelay(endpointOf(b.listen));
    const r = await a.pilot("connect", `127.0.0.1:${relay.listen.port}`, "--json");
    assert.equal(r.code, 0, r.stdout + r.stderr);

    const oldEndpoint = `127.0.0.1:${relay.backEndpoint.port}`;
    const before = await waitFor("B's session to be 1 s old", async () => {
      const p = await b!.peers();
      return p.length === 1 && p[0].session_age_s >= 1 ? p[0] : undefined;
    });
    assert.equal(before.endpoint, oldEndpoint);

    const fresh = relay.roam();
    const newEndpoint = `127.0.0.1:${fresh.port}`;
    assert.notEqual(newEndpoint, oldEndpoint);
    const after = await waitFor("B to follow A to its new endpoint", async () => {
      const p = await b!.peers();
      return p.length === 1 && p[0].endpoint === newEndpoint ? p[0] : undefined;
    });
    assert.equal(after.public_key, a.identity!.publicKey);
    assert.ok(
      after.session_age_s >= before.session_age_s,
      `session age went from ${before.session_age_s} to ${after.session_age_s}`,
    );
    assert.equal((await b.info()).sessions, 1, "the same session, not a new handshake");
    await waitFor(
      "B's keepalives to arrive at the new endpoint",
      () => relay!.log.some((d) => d.direction === "b->a" && d.port === fresh.port),
    );
    const seenByA = await a.peers();
    assert.equal(seenByA.length, 1);
    assert.equal(seenByA[0].public_key, b.identity!.publicKey);
  } finally {
    await relay?.close();
    await stopAll(a, b);
  }
});

const ECHO_PORT = 7;
const CLIENT_PORT = 40_000;

Deno.test("an untrusted peer cannot reach the echo service; a trusted one gets its bytes back", async () => {
  const raw = new RawPeer(6);
  const rawKey = raw.identity.publicKey.toHex();
  let b: TestNode | undefined;
  let trusting: TestNode | undefined;
  try {
    b = await startNode({ identity: 1 });
    const peerB = await raw.sessions.connect(endpointOf(b.listen), {}, 10_000);
    assert.equal(peerB.keyHex, b.identity!.publicKey);
    const untrustedPayload = new TextEncoder().encode("untrusted ping");
    // Resent until B counts a drop: a datagram racing message 3 may find no session yet.
    const dropped = await waitFor("B to drop the untrusted datagram", async () => {
      await raw.sessions.send(peerB.keyHex, {
        kind: "datagram",
        srcPort: CLIENT_PORT,
        dstPort: ECHO_PORT,
        payload: untrustedPayload,
      });
      const p = (await b!.peers()).find((x) => x.public_key === rawKey);
      return p !== undefined && p.dropped >= 1 ? p : undefined;
    });
    assert.equal(dropped.trusted, false);
    assert.ok(((await b.info()).drops.not_trusted ?? 0) >= 1);

    trusting = await startNode({ identity: 2, trust: [trustEntry(6)] });
    const peerT = await raw.sessions.connect(endpointOf(trusting.listen), {}, 10_000);
    assert.equal(peerT.keyHex, trusting.identity!.publicKey);
    const payload = new TextEncoder().encode("trusted ping \u0000\u00ff");
    const echo = await waitFor("the echo from the trusting node", async () => {
      await raw.sessions.send(peerT.keyHex, {
        kind: "datagram",
        srcPort: CLIENT_PORT,
        dstPort: ECHO_PORT,
        payload,
      });
      await new Promise((r) => setTimeout(r, 200));
      return raw.received.find((p) => p.srcPort === ECHO_PORT);
    });
    assert.deepEqual(echo.payload, payload);
    assert.equal(echo.dstPort, CLIENT_PORT);
    assert.equal(echo.kind, "datagram");
    assert.equal(echo.srcAddress.toHex(), trusting.identity!.address.replaceAll(".", ""));
    const seen = (await trusting.peers()).find((x) => x.public_key === rawKey);
    assert.equal(seen?.trusted, true);
    assert.equal(seen?.dropped, 0);
    // Ordering barrier instead of a fixed sleep: the untrusted datagrams went
    // out before this whole trusted round trip, and none was ever echoed.
    const fromB = b.identity!.address.replaceAll(".", "");
    assert.deepEqual(
      raw.received.filter((p) => p.srcAddress.toHex() === fromB),
      [],
      "no echo for an untrusted peer",
    );
  } finally {
    await raw.close();
    await stopAll(b, trusting);
  }
});

Deno.test({
  name: "a datagram sent as soon as connect returns is not lost to the handshake still completing",
  async fn() {
    const raw = new RawPeer(6);
    let b: TestNode | undefined;
    try {
      b = await startNode({ identity: 2, trust: [trustEntry(6)] });
      for (let i = 0; i < 5; i++) {
        const peer = await raw.sessions.connect(endpointOf(b.listen), {}, 10_000);
        const srcPort = CLIENT_PORT + i;
        const payload = new TextEncoder().encode(`first datagram ${i}`);
        await raw.sessions.send(peer.keyHex, {
          kind: "datagram",
          srcPort,
          dstPort: ECHO_PORT,
          payload,
        });
        await waitFor(
          `the echo of datagram ${i}`,
          () => raw.received.some((p) => p.dstPort === srcPort),
          5_000,
        );
        // A fresh handshake each round: the race is between message 3 and the first data frame.
        raw.sessions.closePeer(peer.keyHex);
      }
      assert.equal((await b.info()).drops.unknown_index ?? 0, 0);
    } finally {
      await raw.close();
      await b?.stop();
    }
  },
});
