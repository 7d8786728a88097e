/**
 * The queue of trust requests waiting for their peer (daemon/handshake_queue.ts):
 * durable across a reopen, one per name, bounded, and a file that is not a
 * queue is refused naming it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { HandshakeQueue, MAX_QUEUED_HANDSHAKES } from "../src/daemon/handshake_queue.ts";
import { HOME_FILES } from "../src/daemon/home.ts";
import { PilotError } from "../src/errors.ts";
import { tempDir } from "./_tmp.ts";

const item = (name: string) => ({
  name,
  reason: "run jobs",
  expect_fingerprint: "",
  created_at: "2026-12-03T00:00:00.000Z",
  expires_at: "2026-12-04T00:00:00.000Z",
});

Deno.test("a queued handshake survives a reopen with its attempts, once per name, until removed", async () => {
  await using dir = await tempDir();
  const q = await HandshakeQueue.open(dir.path);
  assert.equal((await q.add(item("worker"))).attempts, 0);
  await q.attempt("worker", "not_found");
  assert.equal((await q.add(item("worker"))).attempts, 1, "the same name: the queued one");
  const again = await HandshakeQueue.open(dir.path);
  assert.deepEqual(again.list().map((i) => [i.name, i.attempts, i.last_error]), [
    ["worker", 1, "not_found"],
  ]);
  assert.equal(await again.remove("worker"), true);
  assert.equal(await again.remove("worker"), false);
  assert.deepEqual((await HandshakeQueue.open(dir.path)).list(), []);
});

Deno.test("a full queue refuses with rate_limited; a file that is not a queue is refused naming it", async () => {
  await using dir = await tempDir();
  const q = await HandshakeQueue.open(dir.path);
  for (let i = 0; i < MAX_QUEUED_HANDSHAKES; i++) await q.add(item(`n${i}`));
  await assert.rejects(
    q.add(item("one-more")),
    (e) => e instanceof PilotError && e.code === "rate_limited",
  );
  const path = join(dir.path, HOME_FILES.handshakeQueue);
  await Deno.writeTextFile(path, '{"not":"a list"}', { mode: 0o600 });
  await assert.rejects(
    HandshakeQueue.open(dir.path),
    (e) => e instanceof PilotError && e.code === "internal" && e.message.includes(path),
  );
});
