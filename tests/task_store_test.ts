/**
 * The task store (daemon/task_store.ts): the last record of a task wins on
 * reopen, data files live as long as their task, and a record that is not
 * a task change is refused with the file named.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PilotError } from "../src/errors.ts";
import { type Task, TaskStore } from "../src/daemon/task_store.ts";
import { tempDir } from "./_tmp.ts";

const PEER = {
  address: "2a87.aa10.6c67",
  hostname: "data-processor-node",
  fingerprint: "f",
  public_key: "ab".repeat(32),
};

async function task(store: TaskStore, id: string): Promise<Task> {
  const now = new Date().toISOString();
  return {
    role: "worker",
    id,
    peer: PEER,
    input: { type: "text", bytes: 3, file: await store.writeData(new TextEncoder().encode("abc")) },
    deadline: null,
    state: "submitted",
    reason: "",
    error: null,
    result: null,
    progress: [],
    progressCount: 0,
    pending: [],
    seen: [`task/${id}/submit`],
    createdAt: now,
    updatedAt: now,
  };
}

Deno.test("a task's last state survives a reopen, with its data; removing it removes its data", async () => {
  await using dir = await tempDir();
  const store = await TaskStore.open(dir.path);
  const t = await task(store, "job-1");
  await store.put(t);
  await store.put({ ...t, state: "accepted", pending: ["accept"] });
  const other = await task(store, "job-2");
  await store.put(other);
  const again = await TaskStore.open(dir.path);
  assert.deepEqual(again.list().map((x) => [x.id, x.state, x.pending]), [
    ["job-1", "accepted", ["accept"]],
    ["job-2", "submitted", []],
  ]);
  const got = again.get("worker", PEER.public_key, "job-1")!;
  assert.equal(new TextDecoder().decode(await again.readData(got.input)), "abc");
  assert.equal(again.withId("submitter", "job-1").length, 0, "roles apart");
  assert.equal(await again.remove("worker", PEER.public_key, "job-1"), true);
  await assert.rejects(again.readData(got.input), Deno.errors.NotFound);
  const third = await TaskStore.open(dir.path);
  assert.deepEqual(third.list().map((x) => x.id), ["job-2"]);
});

Deno.test("data files no task names are deleted at open (a crash between a file and its record)", async () => {
  await using dir = await tempDir();
  const store = await TaskStore.open(dir.path);
  const orphan = await store.writeData(new Uint8Array(10));
  await TaskStore.open(dir.path);
  await assert.rejects(Deno.stat(join(dir.path, "tasks", orphan)), Deno.errors.NotFound);
});

Deno.test("a record that is not a task change is refused, naming the file", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "tasks.log"), '{"op":"nonsense"}\n', { mode: 0o600 });
  await assert.rejects(
    TaskStore.open(dir.path),
    (e) => e instanceof PilotError && e.code === "internal" && e.message.includes("tasks.log"),
  );
});
