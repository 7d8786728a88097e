/**
 * `pilot status` (this node and its peers on one screen), `pilot events`
 * (the event feed from the terminal) and the `last_seen` of `pilot peers`,
 * against real daemons.
 */
import assert from "node:assert/strict";
import {
  fixture,
  okOf,
  PAIR_A_NAME,
  PAIR_B_NAME,
  runPilot,
  startNode,
  stopAll,
  type TestNode,
  trustedPair,
  trustEntry,
} from "./_daemon_harness.ts";
import { statusOf } from "../src/cli/commands/status.ts";

Deno.test("pilot status lists this node, each peer's trust, path, last seen and counts, and never the node itself", async () => {
  const { a, b } = await trustedPair();
  let c: TestNode | undefined;
  try {
    okOf(await a.pilot("send", PAIR_B_NAME, "--data", "hello", "--json"), "send");
    c = await startNode({ identity: 2 });
    okOf(await c.pilot("handshake", b.listen, "--reason", "let me in", "--json"), "handshake");

    const s = okOf(await b.pilot("status", "--json"), "status");
    assert.equal(s.node.address, b.identity!.address);
    assert.equal(s.node.hostname, PAIR_B_NAME);
    assert.equal(s.node.fingerprint, b.identity!.fingerprint);
    assert.equal(s.node.listen, b.listen);
    assert.equal(typeof s.node.version, "string");
    assert.ok(!s.peers.some((p: { address: string }) => p.address === b.identity!.address));
    const peerA = s.peers.find((p: { address: string }) => p.address === a.identity!.address);
    assert.ok(peerA, JSON.stringify(s.peers));
    assert.deepEqual(
      [peerA.hostname, peerA.trusted, peerA.mutual, peerA.pending, peerA.path, peerA.inbox],
      [PAIR_A_NAME, true, true, false, "direct", 1],
    );
    assert.equal(peerA.endpoint, a.listen);
    assert.ok(Math.abs(Date.parse(peerA.last_seen) - Date.now()) < 60_000, peerA.last_seen);
    const peerC = s.peers.find((p: { address: string }) => p.address === c!.identity!.address);
    assert.ok(peerC, JSON.stringify(s.peers));
    assert.deepEqual([peerC.trusted, peerC.pending, peerC.inbox], [false, true, 0]);
    assert.deepEqual(
      [s.counts.pending, s.counts.inbox, s.counts.queued],
      [1, 1, 0],
    );

    // The session table's own view: last seen, and no entry for the node itself.
    const peers = await b.peers();
    assert.ok(peers.length >= 2, JSON.stringify(peers));
    assert.ok(!peers.some((p) => p.public_key === b.identity!.publicKey));
    for (const p of peers) assert.ok(!Number.isNaN(Date.parse(p.last_seen)), p.last_seen);
    const table = await b.pilot("peers");
    assert.match(table.stdout, /LAST SEEN/);
    assert.match(table.stdout, /\d+s ago/);

    const human = await b.pilot("status");
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.split("\n");
    assert.ok(lines[0]!.includes(b.identity!.address), human.stdout);
    const rowA = lines.find((l) => l.startsWith(a.identity!.address));
    assert.ok(rowA, human.stdout);
    assert.match(rowA, /mutual +direct /);
    assert.ok(rowA.indexOf(a.identity!.fingerprint) < rowA.indexOf(PAIR_A_NAME), rowA);
    assert.match(lines.find((l) => l.startsWith(c!.identity!.address)) ?? "", / pending /);

    // Events: a page, filtered by type, and followed as NDJSON.
    const all = okOf(await b.pilot("events", "--json"), "events");
    assert.ok(all.events.some((e: { type: string }) => e.type === "message.received"));
    const trustOnly = okOf(await b.pilot("events", "--type", "trust.*", "--json"), "events");
    assert.ok(trustOnly.events.length >= 1, JSON.stringify(all.events));
    assert.ok(trustOnly.events.every((e: { type: string }) => e.type.startsWith("trust.")));
    assert.equal(trustOnly.next, all.next, "the filter keeps the page's resume point");
    const followed = await b.pilot(
      "events",
      "--follow",
      "--type",
      "message.received",
      "--timeout",
      "1s",
      "--json",
    );
    assert.equal(followed.code, 0, followed.stderr);
    const lines2 = followed.stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
    assert.ok(lines2.length >= 1 && lines2.every((e) => e.type === "message.received"));
    const people = await b.pilot("events", "--type", "message.received");
    assert.match(
      people.stdout,
      new RegExp(`^#\\d+ \\S+ message\\.received ${a.identity!.address} \\(${PAIR_A_NAME}\\)`),
    );
    const bad = await b.pilot("events", "--type", "no such", "--json");
    assert.equal(bad.code, 2, bad.stdout);
  } finally {
    await stopAll(a, b, c);
  }
});

Deno.test("pilot status shows a trusted peer without a session as offline", async () => {
  const node = await startNode({
    identity: 0,
    trust: [trustEntry(5, { hostname: "far-away", mutual: true })],
  });
  try {
    const s = okOf(await node.pilot("status", "--json"), "status");
    assert.equal(s.peers.length, 1, JSON.stringify(s.peers));
    const [p] = s.peers;
    assert.deepEqual(
      [p.address, p.hostname, p.trusted, p.mutual, p.path, p.endpoint, p.rtt_ms],
      [fixture(5).address, "far-away", true, true, null, null, null],
    );
    const human = await node.pilot("status");
    const row = human.stdout.split("\n").find((l) => l.startsWith(fixture(5).address));
    assert.match(row ?? "", /mutual +offline /);
  } finally {
    await node.stop();
  }
});

Deno.test("pilot status without a daemon is not_running with exit code 3", async () => {
  const home = await Deno.makeTempDir({ prefix: "pilot-test-" });
  try {
    const r = await runPilot(["status", "--json"], { home });
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.equal(r.json.code, "not_running");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("statusOf() merges sessions, trust and pending by key and drops the node's own key", () => {
  const ref = (i: number, hostname: string | null) => ({
    address: fixture(i).address,
    hostname,
    fingerprint: fixture(i).fingerprint,
    public_key: fixture(i).public_key,
  });
  const info = {
    ...ref(0, "me"),
    listen: "127.0.0.1:7440",
    uptime_s: 5,
    version: "0.1.0",
    reachability: { observed: "198.51.100.7:40000" },
    drops: { auth: 2, no_service: 1 },
  };
  const session = {
    ...ref(1, "worker"),
    endpoint: null,
    trusted: true,
    path: "relay" as const,
    via: fixture(3).address,
    rtt_ms: 12,
    session_age_s: 1,
    last_seen: "2026-12-03T09:00:00.000Z",
    dropped: 4,
    name_conflict: null,
  };
  const s = statusOf({
    // deno-lint-ignore no-explicit-any
    info: info as any,
    peers: { peers: [session, { ...session, ...ref(0, "me") }] },
    trust: {
      trusted: [
        { ...ref(1, "worker"), since: "", mutual: false, endpoint: null, last_seen: null },
        {
          ...ref(2, null),
          since: "",
          mutual: true,
          endpoint: null,
          last_seen: "2026-12-01T00:00:00.000Z",
        },
      ],
    },
    pending: {
      pending: [{ ...ref(4, "asker"), reason: "hi", received_at: "", name_conflict: null }],
    },
    inbox: new Map([[fixture(1).public_key, 3]]),
    outbox: { messages: [] },
  });
  assert.deepEqual(s.node.observed, "198.51.100.7:40000");
  assert.deepEqual(s.counts, { pending: 1, inbox: 3, queued: 0, dropped: 3 });
  assert.deepEqual(
    s.peers.map((p) => [p.address, p.trusted, p.mutual, p.pending, p.path, p.endpoint, p.inbox]),
    [
      [fixture(1).address, true, false, false, "relay", fixture(3).address, 3],
      ...[
        [fixture(2).address, true, true, false, null, null, 0],
        [fixture(4).address, false, false, true, null, null, 0],
      ].sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
    ],
  );
  assert.equal(
    s.peers.find((p) => p.address === fixture(2).address)?.last_seen,
    "2026-12-01T00:00:00.000Z",
  );
});
