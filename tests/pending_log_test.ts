/**
 * Pending trust requests persist by appending to `trust_pending.log` (a
 * stranger's request costs one line, not a rewrite of every pending
 * request), survive kill -9 at any moment, and older homes keep theirs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PENDING_LOG_SLACK } from "../src/constants.ts";
import { TrustFlowStore } from "../src/daemon/trust_flow_store.ts";
import type { OutgoingRequest, PendingRequest } from "../src/services/trust_types.ts";
import { writerRemoves, writerRequest } from "./_kill9_pending_writer.ts";
import { runWriterUntilKilled } from "./_kill9.ts";

const WRITER = "_kill9_pending_writer.ts";

async function withHome(f: (home: string) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "pilot-test-pending-" });
  await Deno.chmod(home, 0o700);
  try {
    await f(home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

function request(i: number, reason = "r".repeat(1000)): PendingRequest {
  return { ...writerRequest(0, i), reason };
}

async function sizeOf(path: string): Promise<number> {
  return await Deno.stat(path).then((s) => s.size, () => 0);
}

Deno.test("each pending change appends one line to the pending log and leaves trust_flow.json alone", async () => {
  await withHome(async (home) => {
    const flow = await TrustFlowStore.load(home);
    for (let i = 0; i < 100; i++) await flow.putPending(request(i));
    const flowFile = join(home, "trust_flow.json");
    const before = await Deno.readTextFile(flowFile).catch(() => "");
    const log = join(home, "trust_pending.log");
    const logBefore = await sizeOf(log);
    // A request refreshing an entry (a stranger's new request id) with 100 pending.
    await flow.putPending({ ...request(7), request_hash: "ee".repeat(32) });
    const grew = (await sizeOf(log)) - logBefore;
    assert.ok(grew > 1000 && grew < 2 * 1300, `one record appended (${grew} bytes)`);
    assert.equal(await Deno.readTextFile(flowFile).catch(() => ""), before);
    await flow.removePending(request(8).public_key);
    assert.equal(await Deno.readTextFile(flowFile).catch(() => ""), before);

    const again = await TrustFlowStore.load(home);
    assert.equal(again.pending.length, 99);
    assert.equal(again.pendingFrom(request(7).public_key)?.request_hash, "ee".repeat(32));
    assert.equal(again.pendingFrom(request(8).public_key), undefined);
    // The refreshed entry moved to the end, as it does in memory.
    assert.deepEqual(again.pending.map((p) => p.public_key), flow.pending.map((p) => p.public_key));
  });
});

Deno.test("the pending log is compacted once it holds PENDING_LOG_SLACK records more than pending entries", async () => {
  await withHome(async (home) => {
    const flow = await TrustFlowStore.load(home);
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < PENDING_LOG_SLACK + 10; i++) {
      writes.push(flow.putPending(request(i % 5, `refresh ${i}`)));
    }
    await Promise.all(writes);
    const lines = (await Deno.readTextFile(join(home, "trust_pending.log"))).split("\n");
    assert.ok(lines.length < 50, `compacted to ${lines.length} lines`);
    const again = await TrustFlowStore.load(home);
    assert.deepEqual(again.pending, flow.pending);
    assert.equal(again.pending.length, 5);
  });
});

Deno.test("a version-1 flow file's pending requests are read and moved to the pending log", async () => {
  await withHome(async (home) => {
    const old = {
      version: 1,
      pending: [request(1), request(2)],
      outgoing: [],
      outbox: [],
      suppressed: { ["ab".repeat(32)]: 5 },
      replay: {},
    };
    await Deno.writeTextFile(join(home, "trust_flow.json"), JSON.stringify(old), { mode: 0o600 });
    const flow = await TrustFlowStore.load(home);
    assert.deepEqual(flow.pending, old.pending);
    const now = JSON.parse(await Deno.readTextFile(join(home, "trust_flow.json")));
    assert.equal(now.version, 2);
    assert.equal(now.pending, undefined);
    assert.equal(now.suppressed["ab".repeat(32)], 5);
    await flow.removePending(request(1).public_key);
    const again = await TrustFlowStore.load(home);
    assert.deepEqual(again.pending, [request(2)]);
  });
});

Deno.test("an outgoing request keeps its pinned flag, and one stored without it reads as not pinned", async () => {
  await withHome(async (home) => {
    const out: OutgoingRequest = {
      public_key: "ab".repeat(32),
      address: "3fa2.09c1.77e4",
      hostname: null,
      reason: "",
      created_at: new Date(0).toISOString(),
      expires_at: 5,
      status: "pending",
      hashes: [],
    };
    const flow = await TrustFlowStore.load(home);
    await flow.putOutgoing({ ...out, pinned: true });
    await flow.putOutgoing({ ...out, public_key: "cd".repeat(32) });
    const again = await TrustFlowStore.load(home);
    assert.equal(again.outgoingTo("ab".repeat(32))?.pinned, true);
    assert.equal(again.outgoingTo("cd".repeat(32))?.pinned ?? false, false);
  });
});

Deno.test("the pending log survives kill -9 at random moments: every acknowledged change holds", async () => {
  await withHome(async (home) => {
    for (let round = 0; round < 4; round++) {
      const delay = Math.floor(Math.random() * 100) + round * 150;
      const lines = await runWriterUntilKilled(WRITER, [home, String(round)], delay);
      /** true: must be present; false: must be gone; undefined: a removal was cut short. */
      const expect = new Map<number, boolean | undefined>();
      for (const line of lines) {
        const [kind, n] = line.split(" ");
        const i = Number(n);
        if (kind === "P") expect.set(i, writerRemoves(i) ? undefined : true);
        if (kind === "R") expect.set(i, false);
      }
      if (round % 2 === 1) {
        // A kill rarely cuts a regular-file write short on Linux: leave what one would.
        await Deno.writeTextFile(join(home, "trust_pending.log"), '{"op":"put","requ', {
          append: true,
        });
      }
      const flow = await TrustFlowStore.load(home);
      for (const [i, present] of expect) {
        const got = flow.pendingFrom(writerRequest(round, i).public_key);
        if (present === true) {
          assert.deepEqual(got, writerRequest(round, i), `round ${round}: ${i}`);
        }
        if (present === false) assert.equal(got, undefined, `round ${round}: ${i} was removed`);
      }
      assert.ok(lines.length > 20, `the writer got going (${lines.length} lines)`);
    }
  });
});
