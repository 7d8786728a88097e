/**
 * Messages between real daemons: idempotent retries, input checks, data from
 * files and stdin, the size limit, inbox reads and removal, privacy on the
 * wire, and a durable inbox after `kill -9`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MAX_STREAM_MESSAGE } from "../src/constants.ts";
import { Inbox } from "../src/daemon/inbox.ts";
import {
  callApi,
  endpointOf,
  establishTrust,
  fixture,
  makeHome,
  okOf,
  PAIR_A_NAME,
  PAIR_B_NAME,
  type PilotResult,
  runPilotInput,
  startNode,
  startPair,
  stopAll,
  TestNode,
  trustEntry,
  UdpRelay,
  waitFor,
} from "./_daemon_harness.ts";

function assertError(r: PilotResult, code: string, exit: number, what: string): void {
  assert.equal(r.code, exit, `${what}: exit code (${r.stdout}${r.stderr})`);
  assert.equal(r.json?.status, "error", `${what}: ${r.stdout}`);
  assert.equal(r.json.code, code, `${what}: ${r.json.message}`);
}

// deno-lint-ignore no-explicit-any
async function inboxOf(node: TestNode, ...args: string[]): Promise<any> {
  return okOf(await node.pilot("inbox", ...args, "--json"), `inbox ${args.join(" ")}`);
}

/** Deterministic pseudo-random bytes (every byte value occurs). */
function bytesOf(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (x >>> 16) & 0xff;
  }
  return out;
}

async function tempFile(dir: string, name: string, bytes: Uint8Array): Promise<string> {
  const path = join(dir, name);
  await Deno.writeFile(path, bytes);
  return path;
}

Deno.test("retries with the same --id store one message, also after the inbox is cleared", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    await establishTrust(a, b, PAIR_B_NAME);
    const send = (id: string) =>
      a!.pilot("send", PAIR_B_NAME, "--data", `job ${id}`, "--id", id, "--json");

    const first = okOf(await send("job-1"), "send");
    assert.equal(first.id, "job-1");
    assert.equal(first.receipt.status, "stored");
    for (const i of [2, 3]) {
      const again = okOf(await send("job-1"), `send #${i}`);
      assert.deepEqual(again.receipt, { status: "duplicate", seq: first.receipt.seq });
    }
    const inbox = await inboxOf(b);
    assert.equal(inbox.messages.length, 1);
    assert.equal(inbox.messages[0].id, "job-1");
    assert.equal(inbox.messages[0].seq, first.receipt.seq);

    const cleared = await inboxOf(b, "--clear");
    assert.equal(cleared.messages.length, 1, "--json is exactly the inbox route's answer");
    const late = okOf(await send("job-1"), "send after clear");
    assert.deepEqual(late.receipt, { status: "duplicate", seq: first.receipt.seq });
    assert.deepEqual((await inboxOf(b)).messages, [], "a late retry never comes back in");

    // Retries racing each other: still one stored copy.
    const racing = await Promise.all([1, 2, 3].map(() => send("job-2")));
    const receipts = racing.map((r) => okOf(r, "racing send").receipt);
    assert.equal(receipts.filter((r) => r.status === "stored").length, 1, JSON.stringify(receipts));
    assert.equal(new Set(receipts.map((r) => r.seq)).size, 1, JSON.stringify(receipts));
    const after = (await inboxOf(b)).messages;
    assert.deepEqual(after.map((m: { id: string }) => m.id), ["job-2"]);
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("a reused --id with new content is refused as conflict naming both sizes and digests, and the first content stays", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    await establishTrust(a, b, PAIR_B_NAME);
    const send = (data: string) =>
      a!.pilot("send", PAIR_B_NAME, "--data", data, "--id", "job-1", "--json");

    const first = okOf(await send("first"), "send");
    assert.equal(first.receipt.status, "stored");
    const retry = okOf(await send("first"), "the same content again");
    assert.deepEqual(retry.receipt, { status: "duplicate", seq: first.receipt.seq });

    const other = await send("second, longer");
    assertError(other, "conflict", 1, "new content under a used id");
    assert.match(other.json.message, /job-1/);
    assert.match(other.json.message, /\b5 bytes\b/, "the stored size");
    assert.match(other.json.message, /\b14 bytes\b/, "this message's size");
    assert.match(other.json.message, /sha256 [0-9a-f]{8}.*sha256 [0-9a-f]{8}/, "both digests");
    assert.match(other.json.hint, /--id/);

    const inbox = await inboxOf(b);
    assert.deepEqual(inbox.messages.map((m: { id: string; data: string }) => [m.id, m.data]), [
      ["job-1", "first"],
    ]);
    // Acknowledged, the id is still remembered: new content stays refused.
    okOf(await b.pilot("inbox", "ack", "job-1", "--json"), "inbox ack");
    assertError(await send("third"), "conflict", 1, "new content after the ack");
    assert.deepEqual((await inboxOf(b)).messages, []);
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("inbox ack of an id two senders used is a conflict unless scoped by --from, which removes only that sender's", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let c: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    c = await startNode({ identity: 2, hostname: "third-node" });
    await establishTrust(a, b, PAIR_B_NAME);
    await establishTrust(c, b, b.listen);
    okOf(await a.pilot("send", b.listen, "--data", "from a", "--id", "job-1", "--json"), "a");
    okOf(await c.pilot("send", b.listen, "--data", "from c", "--id", "job-1", "--json"), "c");

    const unscoped = await b.pilot("inbox", "ack", "job-1", "--json");
    assertError(unscoped, "conflict", 1, "ack of an id two senders used");
    assert.match(unscoped.json.message, new RegExp(a.identity!.address.replaceAll(".", "\\.")));
    assert.match(unscoped.json.message, new RegExp(c.identity!.address.replaceAll(".", "\\.")));
    assert.equal((await inboxOf(b)).messages.length, 2, "a refused ack removes nothing");

    const viaApi = await callApi(b, "POST", "/v1/inbox/ack", { body: { ids: ["job-1"] } });
    assert.equal(viaApi.status, 409, JSON.stringify(viaApi.json));

    // A reply is scoped the same way: it must not guess which sender's job-1 it answers.
    const unscopedReply = await b.pilot("reply", "job-1", "--data", "done", "--json");
    assertError(unscopedReply, "conflict", 1, "reply to an id two senders used");
    assert.match(unscopedReply.json.hint, /--from/);
    const toA = okOf(
      await b.pilot(
        "reply",
        "job-1",
        "--from",
        a.identity!.fingerprint,
        "--data",
        "done",
        "--json",
      ),
      "scoped reply",
    );
    assert.equal(toA.to.public_key, a.identity!.publicKey);
    const atA = (await inboxOf(a)).messages;
    assert.deepEqual(atA.map((m: { in_reply_to: string }) => m.in_reply_to), ["job-1"]);

    const scoped = okOf(
      await b.pilot("inbox", "ack", "job-1", "--from", a.identity!.fingerprint, "--json"),
      "scoped ack",
    );
    assert.equal(scoped.removed, 1);
    const left = (await inboxOf(b)).messages;
    assert.deepEqual(left.map((m: { data: string }) => m.data), ["from c"]);
    // One sender left: the id is unambiguous again.
    assert.equal(okOf(await b.pilot("inbox", "ack", "job-1", "--json"), "ack").removed, 1);
  } finally {
    await stopAll(a, b, c);
  }
});

Deno.test("invalid JSON is refused before sending, and an untrusted peer fails at once with not_trusted", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    const untrusted = await a.pilot("send", PAIR_B_NAME, "--data", "hello", "--json");
    assertError(untrusted, "not_trusted", 4, "send to an untrusted peer");
    assert.match(untrusted.json.hint, /handshake/);
    assert.equal(untrusted.json.retryable, false);

    await establishTrust(a, b, PAIR_B_NAME);
    const bad = await a.pilot(
      "send",
      PAIR_B_NAME,
      "--data",
      "{not json",
      "--type",
      "json",
      "--json",
    );
    assertError(bad, "invalid_argument", 2, "invalid JSON");
    const viaApi = await callApi(a, "POST", "/v1/send", {
      body: { peer: PAIR_B_NAME, type: "json", data: "{not json" },
    });
    assert.equal(viaApi.status, 400, JSON.stringify(viaApi.json));
    assert.equal(viaApi.json.code, "invalid_argument");
    const badType = await a.pilot("send", PAIR_B_NAME, "--data", "x", "--type", "xml", "--json");
    assertError(badType, "invalid_argument", 2, "unknown --type");
    const noData = await a.pilot("send", PAIR_B_NAME, "--json");
    assertError(noData, "invalid_argument", 2, "no data");

    assert.deepEqual((await inboxOf(b)).messages, []);
    const events = (await callApi(b, "GET", "/v1/events")).json.data.events;
    assert.ok(!events.some((e: { type: string }) => e.type === "message.received"));
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("data from --data-file and stdin arrives byte for byte, and more than 16 MiB is too_large", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  const dir = await Deno.makeTempDir({ prefix: "pilot-test-data-" });
  try {
    ({ a, b } = await startPair());
    await establishTrust(a, b, PAIR_B_NAME);
    const text = "line of text ✓\n".repeat(Math.floor(60 * 1024 / 17));
    const textBytes = new TextEncoder().encode(text);
    const binary = bytesOf(60 * 1024);
    const full = bytesOf(MAX_STREAM_MESSAGE, 11);
    const over = bytesOf(MAX_STREAM_MESSAGE + 1, 13);
    const textPath = await tempFile(dir, "text.txt", textBytes);
    const binPath = await tempFile(dir, "data.bin", binary);
    const overPath = await tempFile(dir, "over.bin", over);
    const home = { home: a.home };

    const sends: [string, PilotResult][] = [
      ["text file", await a.pilot("send", PAIR_B_NAME, "--data-file", textPath, "--json")],
      [
        "binary file",
        await a.pilot("send", PAIR_B_NAME, "--data-file", binPath, "--type", "binary", "--json"),
      ],
      [
        "stdin text",
        await runPilotInput(["send", PAIR_B_NAME, "--data", "-", "--json"], {
          ...home,
          input: new TextEncoder().encode("from stdin"),
        }),
      ],
      [
        "stdin binary, exactly 16 MiB",
        await runPilotInput(["send", PAIR_B_NAME, "--data", "-", "--type", "binary", "--json"], {
          ...home,
          input: full,
        }),
      ],
    ];
    const receipts = sends.map(([what, r]) => okOf(r, what));
    assert.deepEqual(receipts.map((d) => d.bytes), [
      textBytes.length,
      binary.length,
      10,
      MAX_STREAM_MESSAGE,
    ]);

    const tooLarge: [string, PilotResult][] = [
      [
        "file over 16 MiB",
        await a.pilot("send", PAIR_B_NAME, "--data-file", overPath, "--type", "binary", "--json"),
      ],
      [
        "stdin over 16 MiB",
        await runPilotInput(["send", PAIR_B_NAME, "--data", "-", "--type", "binary", "--json"], {
          ...home,
          input: over,
        }),
      ],
    ];
    for (const [what, r] of tooLarge) assertError(r, "too_large", 1, what);
    const viaApi = await callApi(a, "POST", "/v1/send", {
      body: { peer: PAIR_B_NAME, type: "binary", data: over.toBase64() },
    });
    assert.equal(viaApi.status, 413, JSON.stringify(viaApi.json));
    assert.equal(viaApi.json.code, "too_large");
    const textViaApi = await callApi(a, "POST", "/v1/send", {
      body: { peer: PAIR_B_NAME, data: "x".repeat(MAX_STREAM_MESSAGE + 1) },
    });
    assert.equal(textViaApi.json.code, "too_large");

    const notUtf8 = await tempFile(dir, "latin1.txt", new Uint8Array([0x63, 0x61, 0x66, 0xe9]));
    assertError(
      await a.pilot("send", PAIR_B_NAME, "--data-file", notUtf8, "--json"),
      "invalid_argument",
      2,
      "text that is not UTF-8",
    );
    assertError(
      await a.pilot("send", PAIR_B_NAME, "--data-file", join(dir, "missing"), "--json"),
      "invalid_argument",
      2,
      "missing file",
    );

    const messages = (await inboxOf(b)).messages;
    assert.equal(messages.length, 4, "nothing refused was stored");
    const [t, bin, stdin, exact] = messages;
    assert.equal(t.type, "text");
    assert.equal(t.data, text);
    assert.equal(bin.type, "binary");
    assert.deepEqual(Uint8Array.fromBase64(bin.data), binary);
    assert.equal(bin.bytes, binary.length);
    assert.equal(stdin.data, "from stdin");
    assert.deepEqual(Uint8Array.fromBase64(exact.data), full);
  } finally {
    await stopAll(a, b);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("inbox reads by seq, limit and sender, removes by ack, and --clear never removes unseen messages", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let c: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    c = await startNode({ identity: 2, hostname: "third-node" });
    await establishTrust(a, b, PAIR_B_NAME);
    await establishTrust(c, b, b.listen);
    const send = async (from: TestNode, data: string, id: string) =>
      okOf(await from.pilot("send", b!.listen, "--data", data, "--id", id, "--json"), id);
    const m1 = await send(a, "one", "m1");
    const m2 = await send(a, "two", "m2");
    const c1 = await send(c, "from c", "c1");
    const m3 = await send(a, "three", "m3");
    const seqs = [m1, m2, c1, m3].map((r) => r.receipt.seq);
    assert.deepEqual([...seqs].sort((x, y) => x - y), seqs, "seqs increase");

    const all = await inboxOf(b);
    assert.deepEqual(all.messages.map((m: { id: string }) => m.id), ["m1", "m2", "c1", "m3"]);
    assert.equal(all.next, m3.receipt.seq);
    assert.equal(all.timed_out, false);
    const first = all.messages[0];
    assert.equal(first.from, a.identity!.address);
    assert.equal(first.from_key, a.identity!.publicKey);
    assert.equal(first.fingerprint, a.identity!.fingerprint);
    assert.equal(first.hostname, PAIR_A_NAME);

    const after = await inboxOf(b, "--after", String(m1.receipt.seq));
    assert.deepEqual(after.messages.map((m: { id: string }) => m.id), ["m2", "c1", "m3"]);
    const limited = await inboxOf(b, "--limit", "2");
    assert.deepEqual(limited.messages.map((m: { id: string }) => m.id), ["m1", "m2"]);
    assert.equal(limited.next, m2.receipt.seq);
    const fromC = await inboxOf(b, "--from", "third-node");
    assert.deepEqual(fromC.messages.map((m: { id: string }) => m.id), ["c1"]);
    const fromA = await inboxOf(b, "--from", a.identity!.fingerprint);
    assert.deepEqual(fromA.messages.map((m: { id: string }) => m.id), ["m1", "m2", "m3"]);

    const acked = okOf(await b.pilot("inbox", "ack", "m2", "--json"), "inbox ack");
    assert.equal(acked.removed, 1);
    const ackedAgain = okOf(await b.pilot("inbox", "ack", "m2", "--json"), "inbox ack again");
    assert.equal(ackedAgain.removed, 0);

    // --clear removes exactly what this read returned.
    const clearedOne = await inboxOf(b, "--limit", "1", "--clear");
    assert.deepEqual(clearedOne.messages.map((m: { id: string }) => m.id), ["m1"]);
    assert.ok(!("removed" in clearedOne), "--json is exactly the inbox route's answer");
    assert.deepEqual(
      (await inboxOf(b)).messages.map((m: { id: string }) => m.id),
      ["c1", "m3"],
    );

    // A message that lands between a read and the clear survives the clear.
    const seen = await inboxOf(b);
    const lastSeen = seen.messages.at(-1).seq;
    await send(a, "four", "m4");
    const clear = await callApi(b, "POST", "/v1/inbox/clear", { body: { up_to: lastSeen } });
    assert.equal(clear.status, 200, JSON.stringify(clear.json));
    assert.equal(clear.json.data.removed, 2);
    const left = await inboxOf(b);
    assert.deepEqual(left.messages.map((m: { id: string }) => m.id), ["m4"]);

    const cursor = String(left.next);
    const idle = await inboxOf(b, "--after", cursor, "--wait", "--timeout", "1s");
    assert.deepEqual(idle.messages, []);
    assert.equal(idle.timed_out, true);

    const waiting = b.pilot("inbox", "--after", cursor, "--wait", "--timeout", "60s", "--json");
    // Send only once the long poll holds its slot: the message then has to wake it.
    await waitFor("the inbox long poll to be waiting", async () => {
      const held = (await b!.info()).control?.held?.long_poll ?? 0;
      return held >= 1;
    });
    await send(c, "wake up", "c2");
    const woke = okOf(await waiting, "inbox --wait");
    assert.equal(woke.timed_out, false);
    assert.deepEqual(woke.messages.map((m: { id: string }) => m.id), ["c2"]);
  } finally {
    await stopAll(a, b, c);
  }
});

/** The forms a secret might take in a datagram: raw bytes, base64 (every alignment), hex. */
function encodings(secret: string): Uint8Array[] {
  const raw = new TextEncoder().encode(secret);
  const forms = [raw];
  for (let shift = 0; shift < 3; shift++) {
    const padded = new Uint8Array(shift + raw.length);
    padded.set(raw, shift);
    const b64 = padded.toBase64();
    // Only the characters that depend on the secret alone, whatever precedes it.
    const start = shift === 0 ? 0 : 4;
    const end = Math.floor((shift + raw.length) / 3) * 4;
    forms.push(new TextEncoder().encode(b64.slice(start, end)));
  }
  forms.push(new TextEncoder().encode(raw.toHex()));
  forms.push(new TextEncoder().encode(raw.toHex().toUpperCase()));
  return forms;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("neither the handshake reason nor message data appear on the wire in any encoding", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let relay: UdpRelay | undefined;
  try {
    b = await startNode({ identity: 1, hostname: PAIR_B_NAME });
    relay = new UdpRelay(endpointOf(b.listen));
    a = await startNode({
      identity: 0,
      hostname: PAIR_A_NAME,
      args: ["--peer", `${PAIR_B_NAME}=127.0.0.1:${relay.listen.port}`],
    });
    const reason = "REASON-zq8x7c1f-ultraviolet-ledger";
    const payload = "PAYLOAD-k3v9-marmalade-quartz-42";
    const binaryPayload = new TextEncoder().encode("BINARY-7rr2-periwinkle-sextant");

    okOf(await a.pilot("handshake", PAIR_B_NAME, "--reason", reason, "--json"), "handshake");
    assert.equal(
      (await okOf(await b.pilot("pending", "--json"), "pending")).pending[0].reason,
      reason,
    );
    okOf(await b.pilot("approve", PAIR_A_NAME, "--json"), "approve");
    await waitFor(
      "A to trust B",
      async () => okOf(await a!.pilot("trust", "--json"), "trust").trusted.length === 1,
    );
    okOf(await a.pilot("send", PAIR_B_NAME, "--data", payload, "--json"), "send text");
    okOf(
      await a.pilot(
        "send",
        PAIR_B_NAME,
        "--data",
        binaryPayload.toBase64(),
        "--type",
        "binary",
        "--json",
      ),
      "send binary",
    );
    const inbox = (await inboxOf(b)).messages;
    assert.equal(inbox[0].data, payload, "the message went through the relay");
    assert.deepEqual(Uint8Array.fromBase64(inbox[1].data), binaryPayload);

    assert.ok(relay.log.some((d) => d.direction === "a->b"), "the relay carried A's traffic");
    assert.ok(relay.log.some((d) => d.direction === "b->a"), "the relay carried B's traffic");
    const secrets = [reason, payload, new TextDecoder().decode(binaryPayload)];
    for (const secret of secrets) {
      for (const form of encodings(secret)) {
        const leak = relay.log.findIndex((d) => contains(d.bytes, form));
        assert.equal(leak, -1, `"${new TextDecoder().decode(form)}" found in datagram ${leak}`);
      }
    }
    // The search itself works: a datagram carrying the text would be caught.
    const probe = new TextEncoder().encode(`xx${btoa("y" + payload)}xx`);
    assert.ok(encodings(payload).some((f) => contains(probe, f)));
  } finally {
    await stopAll(a, b);
    await relay?.close();
  }
});

Deno.test("a daemon killed with -9 during a burst restarts with every receipted message exactly once", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    await establishTrust(a, b, PAIR_B_NAME);
    const pid = (await b.controlFile()).pid;
    const count = 120;
    const body = (i: number) => `burst message ${i} `.repeat(1000);
    const burst = Array.from({ length: count }, (_, i) =>
      callApi(a!, "POST", "/v1/send", {
        body: {
          peer: PAIR_B_NAME,
          type: "text",
          data: body(i),
          id: `burst-${i}`,
          timeout_ms: 2_000,
        },
      }));
    // Kill once a few receipts are back: the rest of the burst is still in flight.
    let receipts = 0;
    for (const p of burst) p.then((r) => r.status === 200 && receipts++, () => {});
    for (let polls = 0; receipts < 3; polls++) {
      if (polls > 10_000) throw new Error("No receipts came back from the burst");
      await new Promise((r) => setTimeout(r, 2));
    }
    Deno.kill(pid, "SIGKILL");
    const results = await Promise.all(burst);
    const receipted = results.flatMap((r, i) =>
      r.status === 200 && r.json.data.receipt.status === "stored" ? [`burst-${i}`] : []
    );

    assert.ok(receipted.length >= 3, `receipted ${receipted.length} of ${count}`);
    await b.start();
    const listed = await b.pilot("inbox", "--limit", "1000", "--json");
    assert.equal(listed.code, 0, listed.stdout + listed.stderr);
    const ids: string[] = listed.json.data.messages.map((m: { id: string }) => m.id);
    for (const id of receipted) {
      assert.equal(ids.filter((x) => x === id).length, 1, `${id} is stored exactly once`);
    }
    assert.equal(new Set(ids).size, ids.length, "no message is stored twice");
    const seqs = listed.json.data.messages.map((m: { seq: number }) => m.seq);
    assert.deepEqual([...seqs].sort((x, y) => x - y), seqs);
    for (const m of listed.json.data.messages) {
      assert.equal(m.data, body(Number(m.id.slice(6))), `${m.id} is whole`);
    }
  } finally {
    await stopAll(a, b);
  }
});

Deno.test({
  name: "a retry of a message that reached the inbox but not the dedup store is still a duplicate",
  async fn() {
    let a: TestNode | undefined;
    let b: TestNode | undefined;
    try {
      // The state kill -9 leaves between the inbox append and the dedup append.
      const bHome = await makeHome({
        identity: 1,
        trust: [trustEntry(0, { hostname: PAIR_A_NAME, mutual: true })],
      });
      const inbox = await Inbox.open(bHome);
      const stored = await inbox.add({
        id: "crash-1",
        from: fixture(0).address,
        from_key: fixture(0).public_key,
        hostname: PAIR_A_NAME,
        fingerprint: fixture(0).fingerprint,
        type: "text",
        data: "once",
        bytes: 4,
        received_at: new Date().toISOString(),
      });
      await inbox.close();
      b = new TestNode(bHome, { identity: 1, hostname: PAIR_B_NAME });
      await b.start();
      a = await startNode({
        identity: 0,
        hostname: PAIR_A_NAME,
        trust: [trustEntry(1, { hostname: PAIR_B_NAME, mutual: true })],
      });
      const retry = okOf(
        await a.pilot("send", b.listen, "--data", "once", "--id", "crash-1", "--json"),
        "retry",
      );
      assert.deepEqual(retry.receipt, { status: "duplicate", seq: stored.seq });
      assert.equal((await inboxOf(b)).messages.length, 1);
    } finally {
      await stopAll(a, b);
    }
  },
});
