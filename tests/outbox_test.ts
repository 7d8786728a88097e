/**
 * The local outbox's store (daemon/outbox.ts): durable before acknowledged,
 * replayed after a restart, bounded, and tidy (no data file outlives its
 * message).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { HOME_FILES } from "../src/daemon/home.ts";
import { Outbox } from "../src/daemon/outbox.ts";
import { PilotError } from "../src/errors.ts";
import { tempDir } from "./_tmp.ts";

const TO = "ab".repeat(32);

function message(id: string, to = TO) {
  return {
    id,
    to,
    name: "data-processor-node",
    address: "3fa2.09c1.77e4",
    hostname: "data-processor-node",
    fingerprint: "fp",
    type: "json" as const,
    correlation_id: "",
    in_reply_to: "",
    meta: { k: "v" },
    created_at: "2026-12-03T00:00:00.000Z",
    expires_at: "2026-12-04T00:00:00.000Z",
  };
}

async function files(home: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(home, HOME_FILES.outboxDir))) out.push(e.name);
  return out.sort();
}

Deno.test("the outbox keeps a queued message and its data across a reopen, attempts counted", async () => {
  await using dir = await tempDir();
  const box = await Outbox.open(dir.path);
  const data = new TextEncoder().encode('{"command":"run"}');
  const queued = await box.add(message("m-1"), data);
  assert.equal(queued.bytes, data.length);
  assert.equal(queued.attempts, 0);
  await box.attempt(TO, "m-1", "unreachable");
  const again = await Outbox.open(dir.path);
  const [m] = again.list();
  assert.equal(m?.id, "m-1");
  assert.equal(m.attempts, 1);
  assert.equal(m.last_error, "unreachable");
  assert.deepEqual(m.meta, { k: "v" });
  assert.deepEqual(await again.data(m), data);
});

Deno.test("a finished message is gone after a reopen, with its data file", async () => {
  await using dir = await tempDir();
  const box = await Outbox.open(dir.path);
  await box.add(message("m-1"), Uint8Array.of(1));
  await box.add(message("m-2"), Uint8Array.of(2));
  assert.equal((await box.finish(TO, "m-1", "delivered"))?.id, "m-1");
  assert.equal(await box.finish(TO, "m-1", "delivered"), undefined, "once");
  assert.deepEqual(await files(dir.path), ["2.bin"]);
  const again = await Outbox.open(dir.path);
  assert.deepEqual(again.list().map((m) => m.id), ["m-2"]);
});

Deno.test("an id is queued once per peer; another peer may use it", async () => {
  await using dir = await tempDir();
  const box = await Outbox.open(dir.path);
  await box.add(message("m-1"), Uint8Array.of(1));
  await assert.rejects(
    box.add(message("m-1"), Uint8Array.of(1)),
    (e) => e instanceof PilotError && e.code === "conflict",
  );
  await box.add(message("m-1", "cd".repeat(32)), Uint8Array.of(1));
  assert.equal(box.size, 2);
});

Deno.test("a full outbox refuses with rate_limited and keeps what it holds; room comes back as messages end", async () => {
  await using dir = await tempDir();
  const box = await Outbox.open(dir.path, { messages: 2, bytes: 10 });
  await box.add(message("a"), new Uint8Array(4));
  await assert.rejects(
    box.add(message("b"), new Uint8Array(7)),
    (e) => e instanceof PilotError && e.code === "rate_limited",
    "over the byte bound",
  );
  await box.add(message("b"), new Uint8Array(6));
  await assert.rejects(
    box.add(message("c"), new Uint8Array(0)),
    (e) => e instanceof PilotError && e.code === "rate_limited",
    "over the message bound",
  );
  assert.deepEqual(box.list().map((m) => m.id), ["a", "b"]);
  await box.finish(TO, "a", "expired");
  await box.add(message("c"), new Uint8Array(4));
});

Deno.test("data files no live message names are deleted on open (a crash between file and record)", async () => {
  await using dir = await tempDir();
  const box = await Outbox.open(dir.path);
  await box.add(message("m-1"), Uint8Array.of(1));
  await Deno.writeFile(join(dir.path, HOME_FILES.outboxDir, "7.bin"), Uint8Array.of(9));
  const again = await Outbox.open(dir.path);
  assert.deepEqual(await files(dir.path), ["1.bin"]);
  const next = await again.add(message("m-2"), Uint8Array.of(2));
  assert.equal(next.file, "2.bin");
});

Deno.test("the log is compacted once finished messages outnumber live ones, and replays the same", async () => {
  await using dir = await tempDir();
  const box = await Outbox.open(dir.path);
  await box.add(message("keep"), Uint8Array.of(1));
  await box.attempt(TO, "keep", "timeout");
  for (let i = 0; i < 40; i++) {
    await box.add(message(`x${i}`), Uint8Array.of(i));
    await box.finish(TO, `x${i}`, "delivered");
  }
  const lines = (await Deno.readTextFile(join(dir.path, HOME_FILES.outbox))).trim().split("\n");
  assert.ok(lines.length < 20, `${lines.length} lines after compaction`);
  const again = await Outbox.open(dir.path);
  assert.deepEqual(again.list().map((m) => [m.id, m.attempts, m.last_error]), [
    ["keep", 1, "timeout"],
  ]);
});

Deno.test("a record that is not an outbox change is refused naming the file", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, HOME_FILES.outbox), '{"op":"nonsense"}\n', {
    mode: 0o600,
  });
  await assert.rejects(
    Outbox.open(dir.path),
    (e) => e instanceof PilotError && e.code === "internal" && e.message.includes("outbox.log"),
  );
});
