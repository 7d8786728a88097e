/**
 * The control API's event and inbox streams, read with fetch and the token
 * from the control file: a page of events, NDJSON follow resumed with
 * `after`, heartbeats on a quiet stream, and the inbox in follow mode.
 */
import assert from "node:assert/strict";
import {
  callApi,
  establishTrust,
  NdjsonStream,
  okOf,
  PAIR_B_NAME,
  spawnPilot,
  startPair,
  type TestNode,
} from "./_daemon_harness.ts";

interface Event {
  seq: number;
  type: string;
  time: string;
  data: Record<string, unknown> & { peer?: { public_key: string } };
}

async function events(node: TestNode, query: Record<string, string | number> = {}) {
  const r = await callApi(node, "GET", "/v1/events", { query });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.data as { events: Event[]; next: number };
}

function assertIncreasing(seqs: number[], what: string): void {
  for (let i = 1; i < seqs.length; i++) {
    assert.ok(seqs[i]! > seqs[i - 1]!, `${what}: seqs increase: ${seqs}`);
  }
}

Deno.test("GET /v1/events lists peer.up, trust and message events in seq order and pages with after", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  await establishTrust(a, b, PAIR_B_NAME);
  okOf(await a.pilot("send", PAIR_B_NAME, "--data", "hi", "--id", "ev-1", "--json"), "send");

  const page = await events(b);
  const types = page.events.map((e) => e.type);
  for (const t of ["peer.up", "trust.requested", "trust.approved", "message.received"]) {
    assert.ok(types.includes(t), `B's events include ${t}: ${types}`);
  }
  assertIncreasing(page.events.map((e) => e.seq), "B");
  assert.equal(page.next, page.events.at(-1)!.seq);
  const keyA = a.identity!.publicKey;
  for (const e of page.events) {
    assert.ok(!Number.isNaN(Date.parse(e.time)), e.time);
    assert.equal(e.data.peer?.public_key, keyA, `${e.type} names A`);
  }
  const requested = page.events.find((e) => e.type === "trust.requested")!;
  assert.equal(requested.data.reason, "test");
  const received = page.events.find((e) => e.type === "message.received")!;
  assert.equal(received.data.id, "ev-1");
  assert.equal(received.data.type, "text");
  assert.ok(
    types.indexOf("trust.requested") < types.indexOf("trust.approved") &&
      types.indexOf("trust.approved") < types.indexOf("message.received"),
    `${types}`,
  );

  const rest = await events(b, { after: requested.seq });
  assert.deepEqual(rest.events, page.events.filter((e) => e.seq > requested.seq));
  const one = await events(b, { after: requested.seq, limit: 1 });
  assert.deepEqual(one.events.map((e) => e.seq), [rest.events[0]!.seq]);
  assert.equal(one.next, rest.events[0]!.seq);
  const none = await events(b, { after: page.next });
  assert.deepEqual(none, { events: [], next: page.next });

  const aTypes = (await events(a)).events.map((e) => e.type);
  assert.ok(aTypes.includes("trust.approved"), `A hears of the approval: ${aTypes}`);

  const control = await b.controlFile();
  const noToken = await fetch(new URL("/v1/events", control.url));
  assert.equal(noToken.status, 401);
  assert.equal((await noToken.json()).code, "unauthorized");
});

Deno.test("GET /v1/events?follow=true streams NDJSON from after N, and heartbeats on a quiet stream", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  await establishTrust(a, b, PAIR_B_NAME);
  const page = await events(b);
  const requested = page.events.find((e) => e.type === "trust.requested")!;

  await using follow = await NdjsonStream.open(b, "/v1/events", {
    follow: true,
    after: requested.seq,
  });
  const replayed: Event[] = [];
  for (const _ of page.events.filter((e) => e.seq > requested.seq)) {
    replayed.push(await follow.next());
  }
  assert.deepEqual(replayed, page.events.filter((e) => e.seq > requested.seq));

  okOf(await a.pilot("send", PAIR_B_NAME, "--data", "live", "--id", "live-1", "--json"), "send");
  const live = await follow.nextWhere((l) => l.type !== "heartbeat");
  assert.equal(live.type, "message.received");
  assert.equal(live.data.id, "live-1");
  assert.ok(live.seq > page.next, "new events continue the numbering");

  await using quiet = await NdjsonStream.open(b, "/v1/events", {
    follow: true,
    after: live.seq,
    heartbeat_ms: 200,
  });
  const beats = [await quiet.next(), await quiet.next()];
  for (const beat of beats) {
    assert.equal(beat.type, "heartbeat");
    assert.equal(beat.seq, live.seq, "a heartbeat carries the cursor to resume from");
    assert.ok(!Number.isNaN(Date.parse(beat.time)), beat.time);
  }
  okOf(await a.pilot("send", PAIR_B_NAME, "--data", "late", "--id", "live-2", "--json"), "send");
  const after = await quiet.nextWhere((l) => l.type !== "heartbeat");
  assert.equal(after.type, "message.received");
  assert.equal(after.data.id, "live-2");
  assert.equal(after.seq, live.seq + 1);

  const bad = await callApi(b, "GET", "/v1/events", { query: { follow: true, after: "x" } });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.code, "invalid_argument");
});

Deno.test("GET /v1/inbox?follow=true streams stored and new messages, and pilot inbox --follow prints them", async () => {
  await using pair = await startPair();
  const { a, b } = pair;
  await establishTrust(a, b, PAIR_B_NAME);
  const first = okOf(
    await a.pilot("send", PAIR_B_NAME, "--data", "stored", "--id", "in-1", "--json"),
    "send",
  );

  await using stream = await NdjsonStream.open(b, "/v1/inbox", { follow: true, heartbeat_ms: 200 });
  const old = await stream.nextWhere((l) => l.type !== "heartbeat");
  assert.equal(old.id, "in-1");
  assert.equal(old.seq, first.receipt.seq);
  assert.equal(old.data, "stored");
  assert.equal(old.from_key, a.identity!.publicKey);
  const beat = await stream.next();
  assert.equal(beat.type, "heartbeat", "the stream is quiet until a message arrives");

  okOf(
    await a.pilot(
      "send",
      PAIR_B_NAME,
      "--data",
      '{"n":2}',
      "--type",
      "json",
      "--id",
      "in-2",
      "--json",
    ),
    "send",
  );
  const fresh = await stream.nextWhere((l) => l.type !== "heartbeat");
  assert.equal(fresh.id, "in-2");
  assert.equal(fresh.type, "json");
  assert.equal(fresh.data, '{"n":2}');
  assert.ok(fresh.seq > old.seq);

  // The CLI prints the same stream, one JSON line per message, resumed with --after.
  const child = spawnPilot(
    ["inbox", "--follow", "--after", String(old.seq), "--timeout", "3s", "--json"],
    { home: b.home },
  );
  okOf(await a.pilot("send", PAIR_B_NAME, "--data", "third", "--id", "in-3", "--json"), "send");
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const lines = new TextDecoder().decode(out.stdout).trimEnd().split("\n").map((l) =>
    JSON.parse(l)
  );
  const ids = lines.filter((l) => l.type !== "heartbeat").map((l) => l.id);
  assert.deepEqual(ids, ["in-2", "in-3"]);
});
