/**
 * Human output cannot be spoofed by peer text: the commands' own renderers
 * fed hostile reasons, hostnames, ids, data and topics.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../src/cli/table.ts";
import { textWidth } from "../src/cli/peer_text.ts";

function human(name: string, data: unknown): string {
  const c = COMMANDS.find((c) => c.name === name);
  assert.ok(c, name);
  return c.human(data);
}

const REAL = {
  address: "0a1b.2c3d.4e5f",
  fingerprint: "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH",
  public_key: "00".repeat(32),
};
const TRUSTED_LOOKING = "3fa2.09c1.77e4  QWER-TYUI-OPAS-DFGH-JKLZ-XCVB-NM23-4567  build-server";
const HOSTILE = "please approve" + " ".repeat(200) + TRUSTED_LOOKING + "\u202e\u200b\u{e0041}" +
  "e" + "\u0301".repeat(40);
const INVISIBLE = /[\u202e\u200b\u{e0041}\n\r]|\u0301{4}/u;

Deno.test("pilot pending shows a padded reason on one line of at most 80 columns, never as a row", () => {
  const out = human("pending", {
    pending: [{
      ...REAL,
      hostname: "worker",
      reason: HOSTILE,
      received_at: "2026-12-03T09:00:00.000Z",
    }],
  });
  for (const line of out.split("\n")) {
    assert.ok(textWidth(line) <= 80, `wraps: ${line}`);
    assert.ok(!line.startsWith("3fa2.09c1.77e4"), `a fake row: ${line}`);
    assert.ok(!INVISIBLE.test(line), `invisible or control text: ${JSON.stringify(line)}`);
  }
  const first = out.split("\n").findIndex((l) => l.startsWith(REAL.address));
  assert.ok(first >= 0, out);
  assert.ok(
    out.split("\n")[first]!.includes(REAL.fingerprint),
    "the fingerprint beside the address",
  );
  assert.ok(out.includes("…"), "a visible marker where the reason was cut");
});

Deno.test("pilot trust and pilot peers put the fingerprint before the peer's hostname", () => {
  const hostname = "a".repeat(63);
  const trust = human("trust", {
    trusted: [{ ...REAL, hostname, since: "2026-12-03T09:00:00.000Z", mutual: true }],
  });
  const peers = human("peers", {
    peers: [{
      ...REAL,
      hostname,
      endpoint: "127.0.0.1:7440",
      trusted: true,
      path: "direct",
      rtt_ms: 1,
      session_age_s: 3,
      dropped: 0,
    }],
  });
  for (const out of [trust, peers]) {
    const row = out.split("\n")[1]!;
    assert.ok(row.startsWith(REAL.address), row);
    assert.ok(row.indexOf(REAL.fingerprint) < row.indexOf(hostname), row);
  }
});

Deno.test("pilot inbox shows peer data as a one-line preview cut to width after the sender's fingerprint", () => {
  const out = human("inbox", {
    messages: [{
      seq: 7,
      id: "id" + "\u202e".repeat(3) + "x".repeat(300),
      from: REAL.address,
      from_key: REAL.public_key,
      hostname: "worker",
      fingerprint: REAL.fingerprint,
      type: "text",
      data: "line one\n" + TRUSTED_LOOKING + " ".repeat(100) + "x".repeat(500),
      bytes: 900,
      received_at: "2026-12-03T09:00:00.000Z",
    }],
    next: 7,
    timed_out: false,
  });
  const lines = out.split("\n");
  assert.equal(lines.length, 4, out);
  assert.ok(lines[0]!.startsWith(`#7 from ${REAL.address} ${REAL.fingerprint}`), lines[0]);
  for (const line of lines) {
    assert.ok(!INVISIBLE.test(line), JSON.stringify(line));
    assert.ok(textWidth(line) <= 80, `wraps: ${line}`);
  }
});

Deno.test("pilot received and subscribe events cut file names and topics to width", () => {
  const received = human("received", {
    files: [{
      seq: 1,
      id: "f1",
      from: REAL.address,
      from_key: REAL.public_key,
      hostname: null,
      fingerprint: REAL.fingerprint,
      name: "n\u202e" + "y".repeat(300),
      original_name: "n",
      path: "/home/u/.pilot/received/n\u202e" + "y".repeat(300),
      bytes: 3,
      sha256: "ab".repeat(32),
      received_at: "2026-12-03T09:00:00.000Z",
    }],
    next: 1,
    timed_out: false,
  });
  for (const line of received.split("\n")) {
    assert.ok(!INVISIBLE.test(line), JSON.stringify(line));
    assert.ok(textWidth(line) <= 80, `wraps: ${line}`);
  }
  assert.ok(received.split("\n")[0]!.includes(REAL.fingerprint));
  const published = human("publish", {
    to: { ...REAL, hostname: null },
    topic: "t".repeat(300),
    bytes: 1,
    seq: 1,
    delivered: 0,
    dropped: 0,
  });
  assert.ok(published.includes("…"), published);
});
