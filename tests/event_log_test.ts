/**
 * What the daemon's log says about events and drops: one line per event at
 * its level, peer-written text quoted, and one summary of drops per interval
 * (nothing when nothing was dropped).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DropSummary, eventMessage, logEvents } from "../src/daemon/event_log.ts";
import { EventBus, type NodeEvent } from "../src/daemon/events.ts";
import { closeLog, configureLog, logToFile } from "../src/daemon/log.ts";
import { tempDir } from "./_tmp.ts";

const ALPHA = {
  address: "0:0000.0000.00a1",
  hostname: "alpha",
  fingerprint: "x",
  public_key: "00",
};

/** The lines `run` logs, read back from a log file, at `level` in JSON. */
async function linesOf(level: "info" | "debug", run: () => void): Promise<NodeEvent[]> {
  await using dir = await tempDir("pilot-eventlog-");
  const path = join(dir.path, "daemon.log");
  logToFile(path);
  configureLog({ level, format: "json" });
  try {
    run();
  } finally {
    configureLog({ level: "info", format: "text" });
    closeLog();
  }
  const text = await Deno.readTextFile(path);
  return text.trimEnd().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

Deno.test("logEvents() logs peer and trust events at info, messages and tasks only at debug", async () => {
  const publishAll = (bus: EventBus) => {
    bus.publish("peer.up", { peer: ALPHA });
    bus.publish("trust.requested", { peer: ALPHA, reason: 'deploy"\nbot' });
    bus.publish("message.received", { peer: ALPHA, id: "m1", seq: 1, type: "json", bytes: 9 });
    bus.publish("task.accepted", { peer: ALPHA, id: "t1", role: "worker", state: "accepted" });
    bus.publish("trust.revoked", { peer: ALPHA, direction: "incoming" });
  };
  for (const level of ["info", "debug"] as const) {
    const bus = new EventBus();
    const stop = logEvents((l) => bus.listen(l), (key) => key === ALPHA.public_key);
    const lines = await linesOf(level, () => {
      publishAll(bus);
      stop();
      bus.publish("peer.down", { peer: ALPHA });
    });
    // deno-lint-ignore no-explicit-any
    const events = lines.map((l: any) => l.event);
    assert.deepEqual(
      events,
      level === "info"
        ? ["peer.up", "trust.requested", "trust.revoked"]
        : ["peer.up", "trust.requested", "message.received", "task.accepted", "trust.revoked"],
      "after stop() nothing more is logged",
    );
    // deno-lint-ignore no-explicit-any
    const asked = lines[1] as any;
    assert.equal(asked.msg, 'alpha (0:0000.0000.00a1) asks for trust: "deploy\\"\\nbot"');
    assert.deepEqual(asked.peer, ALPHA, "the event's data are the line's fields");
  }
});

Deno.test("logEvents() logs a stranger's session coming and going only at debug", async () => {
  const stranger = { ...ALPHA, public_key: "11", hostname: null };
  for (const level of ["info", "debug"] as const) {
    const bus = new EventBus();
    const stop = logEvents((l) => bus.listen(l), (key) => key === ALPHA.public_key);
    const lines = await linesOf(level, () => {
      bus.publish("peer.up", { peer: stranger });
      bus.publish("peer.path_changed", { peer: stranger, path: "direct", endpoint: "x" });
      bus.publish("trust.requested", { peer: stranger, reason: "" });
      bus.publish("peer.down", { peer: stranger });
      bus.publish("peer.down", { peer: ALPHA });
      stop();
    });
    // deno-lint-ignore no-explicit-any
    const seen = lines.map((l: any) => `${l.event} ${l.peer.public_key}`);
    assert.deepEqual(
      seen,
      level === "info" ? ["trust.requested 11", "peer.down 00"] : [
        "peer.up 11",
        "peer.path_changed 11",
        "trust.requested 11",
        "peer.down 11",
        "peer.down 00",
      ],
    );
  }
});

Deno.test("eventMessage() words both directions of trust and the path of a peer", () => {
  const ev = (type: NodeEvent["type"], data: Record<string, unknown>): NodeEvent => ({
    seq: 1,
    type,
    time: "",
    data,
  });
  const bare = { ...ALPHA, hostname: null };
  assert.equal(
    eventMessage(ev("trust.rejected", { peer: ALPHA, direction: "incoming", reason: "no" })),
    'alpha (0:0000.0000.00a1) rejected our trust request: "no"',
  );
  assert.equal(
    eventMessage(ev("trust.rejected", { peer: bare, direction: "outgoing", reason: "" })),
    "rejected 0:0000.0000.00a1's trust request",
  );
  assert.equal(
    eventMessage(ev("peer.path_changed", { peer: bare, path: "relay", via: "0:0000.0000.0bbb" })),
    "0:0000.0000.00a1 is now reached through the relay 0:0000.0000.0bbb",
  );
  assert.equal(
    eventMessage(ev("message.expired", { peer: bare, id: "m9" })),
    'message "m9" to 0:0000.0000.00a1 expired',
  );
});

Deno.test("DropSummary logs one line per interval, by reason, only when something was dropped", async () => {
  let now = 0;
  const totals: Record<string, number> = { auth: 5, malformed: 0 };
  const summary = new DropSummary(() => ({ ...totals }), 60_000, () => now);
  const lines = await linesOf("info", () => {
    totals.malformed = 1200;
    totals.auth = 8;
    now = 59_999;
    summary.tick(); // not yet
    now = 60_000;
    summary.tick();
    now = 120_000;
    summary.tick(); // nothing new: no line
    totals.replay = 2;
    now = 185_000;
    summary.tick();
  });
  assert.equal(lines.length, 2, JSON.stringify(lines));
  // deno-lint-ignore no-explicit-any
  const [first, second] = lines as any[];
  assert.equal(first.event, "drops");
  assert.equal(first.msg, "1203 datagrams dropped in the last 60 s: malformed 1200, auth 3");
  assert.deepEqual(first.by_reason, { malformed: 1200, auth: 3 });
  assert.equal(second.msg, "2 datagrams dropped in the last 65 s: replay 2");
});

Deno.test("EventBus keeps at least the last 10,000 events, consecutive, and since() pages them from any seq", () => {
  const bus = new EventBus();
  const total = 12_345;
  for (let i = 1; i <= total; i++) bus.publish("message.received", { i });
  assert.equal(bus.lastSeq, total);
  const all = bus.since(0, 100_000);
  assert.ok(all.length >= 10_000 && all.length < 12_000, `${all.length} kept`);
  assert.equal(all.at(-1)!.seq, total);
  all.forEach((e, k) => assert.equal(e.seq, all[0]!.seq + k, "consecutive"));
  assert.deepEqual(bus.since(total - 3).map((e) => e.seq), [total - 2, total - 1, total]);
  assert.deepEqual(bus.since(total - 10, 2).map((e) => e.seq), [total - 9, total - 8]);
  assert.deepEqual(bus.since(total), []);
  assert.deepEqual(bus.since(total + 5), []);
  assert.equal(bus.since(-1, 1)[0]!.seq, all[0]!.seq, "older than the ring: from its oldest");
  assert.deepEqual(new EventBus().since(0), []);
});
