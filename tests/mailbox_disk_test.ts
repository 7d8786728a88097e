/**
 * Durable mailboxes (daemon/mailbox_disk.ts): what a deposit answered is
 * there after a reopen or a `kill -9`, ids keep increasing, acks and expiry
 * survive restarts, a torn tail is ignored, and the quotas still hold.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { DurableMailboxes, MAILBOX_ITEMS_DIR, MAILBOX_LOG } from "../src/daemon/mailbox_disk.ts";
import {
  type Deposit,
  MAILBOX_LIMITS,
  type MailboxLimits,
} from "../src/services/rendezvous/mailbox.ts";
import { tempDir } from "./_tmp.ts";

const R1 = "11".repeat(32);
const R2 = "22".repeat(32);
const S1 = "aa".repeat(32);
const DAY = 86_400_000;
const ALL = 1 << 30;

/** A wall clock the test moves by hand (Unix ms). */
function wallClock() {
  const clock = { ms: Date.UTC(2026, 0, 1) };
  return { clock, now: () => clock.ms };
}

function item(n: number, size = 100): Uint8Array {
  return new Uint8Array(size).map((_, i) => (i * 31 + n) & 0xff);
}

function dep(recipient: string, sealed: Uint8Array, ttlMs = DAY): Deposit {
  return { recipient, sender: S1, source: "198.18.0.1", sealed, ttlMs };
}

async function deposited(boxes: DurableMailboxes, d: Deposit): Promise<number> {
  const r = await boxes.deposit(d);
  assert.ok(r.ok, `refused: ${JSON.stringify(r)}`);
  return r.id;
}

async function files(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(join(dir, MAILBOX_ITEMS_DIR))) names.push(e.name);
  return names.sort();
}

Deno.test("a deposit is fetched after a reopen with the same id, bytes and deposit time", async () => {
  await using dir = await tempDir("pilot-mailbox-");
  const { clock, now } = wallClock();
  const first = await DurableMailboxes.open(dir.path, { now });
  const a = await deposited(first, dep(R1, item(1)));
  clock.ms += 1_000;
  const b = await deposited(first, dep(R1, item(2, 5000)));
  const c = await deposited(first, dep(R2, item(3)));
  await first.close();

  const again = await DurableMailboxes.open(dir.path, { now });
  assert.deepEqual(again.fetch(R1, 0, 64, ALL), {
    items: [
      { id: a, sealed: item(1), depositedAt: Date.UTC(2026, 0, 1) },
      { id: b, sealed: item(2, 5000), depositedAt: Date.UTC(2026, 0, 1) + 1_000 },
    ],
    more: false,
  });
  assert.deepEqual(again.fetch(R2, 0, 64, ALL).items.map((i) => i.id), [c]);
  const d = await deposited(again, dep(R1, item(4)));
  assert.ok(d > c, "ids keep increasing across a reopen");
  assert.deepEqual(again.stats().items, 4);
  await again.close();
});

Deno.test("an acknowledged item is gone after a reopen, its file too, and its id is never given again", async () => {
  await using dir = await tempDir("pilot-mailbox-");
  const { now } = wallClock();
  const first = await DurableMailboxes.open(dir.path, { now });
  const a = await deposited(first, dep(R1, item(1)));
  const b = await deposited(first, dep(R1, item(2)));
  assert.equal(await first.ack(R2, [a, b]), 0, "another recipient acks nothing");
  assert.equal(await first.ack(R1, [b, b, 999]), 1);
  await first.close();
  assert.deepEqual(await files(dir.path), [`${a}.bin`]);

  const again = await DurableMailboxes.open(dir.path, { now });
  assert.deepEqual(again.fetch(R1, 0, 64, ALL).items.map((i) => i.id), [a]);
  assert.equal(await again.ack(R1, [a]), 1);
  await again.close();

  // Every item acknowledged and the log compacted: the next id still follows the last.
  const third = await DurableMailboxes.open(dir.path, { now });
  assert.deepEqual(third.fetch(R1, 0, 64, ALL).items, []);
  assert.ok(await deposited(third, dep(R1, item(3))) > b);
  await third.close();
});

Deno.test("compaction keeps live items and the next id once the log is mostly acks", async () => {
  await using dir = await tempDir("pilot-mailbox-");
  const { now } = wallClock();
  const boxes = await DurableMailboxes.open(dir.path, { now });
  const kept = await deposited(boxes, dep(R2, item(0)));
  let last = 0;
  for (let i = 1; i <= 100; i++) {
    last = await deposited(boxes, dep(R1, item(i)));
    assert.equal(await boxes.ack(R1, [last]), 1);
  }
  await boxes.close();
  const lines = (await Deno.readTextFile(join(dir.path, MAILBOX_LOG))).trim().split("\n");
  assert.ok(lines.length < 100, `the log was compacted (${lines.length} records)`);
  const again = await DurableMailboxes.open(dir.path, { now });
  assert.deepEqual(again.fetch(R2, 0, 64, ALL).items.map((i) => [i.id, i.sealed]), [[
    kept,
    item(0),
  ]]);
  assert.ok(await deposited(again, dep(R1, item(1))) > last);
  await again.close();
});

Deno.test("a torn last record is ignored on reopen, and a data file without a record is deleted", async () => {
  await using dir = await tempDir("pilot-mailbox-");
  const { now } = wallClock();
  const first = await DurableMailboxes.open(dir.path, { now });
  const a = await deposited(first, dep(R1, item(1)));
  await first.close();
  // A deposit killed after its data file but inside its record.
  await Deno.writeFile(join(dir.path, MAILBOX_ITEMS_DIR, `${a + 1}.bin`), item(2));
  await Deno.writeTextFile(join(dir.path, MAILBOX_LOG), `{"op":"add","id":${a + 1},"recip`, {
    append: true,
  });
  const again = await DurableMailboxes.open(dir.path, { now });
  assert.deepEqual(again.fetch(R1, 0, 64, ALL).items.map((i) => i.id), [a]);
  assert.deepEqual(await files(dir.path), [`${a}.bin`]);
  await deposited(again, dep(R1, item(3)));
  await again.close();
  const third = await DurableMailboxes.open(dir.path, { now });
  assert.equal(third.fetch(R1, 0, 64, ALL).items.length, 2, "appends after the cut tail read back");
  await third.close();
});

Deno.test("reopening without close (a crash) keeps every answered deposit and ack", async () => {
  await using dir = await tempDir("pilot-mailbox-");
  const { now } = wallClock();
  const crashed = await DurableMailboxes.open(dir.path, { now });
  const ids = await Promise.all([1, 2, 3, 4].map((n) => deposited(crashed, dep(R1, item(n)))));
  assert.equal(await crashed.ack(R1, [ids[1]!]), 1);
  // No close(): the process is gone; whatever was answered is on disk.
  const again = await DurableMailboxes.open(dir.path, { now });
  assert.deepEqual(again.fetch(R1, 0, 64, ALL).items.map((i) => i.id), [ids[0], ids[2], ids[3]]);
  await again.close();
  await crashed.close();
});

Deno.test("expiry holds across a reopen: deposit times and TTLs survive, expired items are dropped", async () => {
  await using dir = await tempDir("pilot-mailbox-");
  const { clock, now } = wallClock();
  const first = await DurableMailboxes.open(dir.path, { now });
  const short = await deposited(first, dep(R1, item(1), 60_000));
  const long = await deposited(first, dep(R1, item(2), DAY));
  await first.close();

  clock.ms += 59_999;
  const before = await DurableMailboxes.open(dir.path, { now });
  assert.deepEqual(before.fetch(R1, 0, 64, ALL).items.map((i) => i.id), [short, long]);
  await before.close();

  clock.ms += 1;
  const after = await DurableMailboxes.open(dir.path, { now });
  assert.deepEqual(after.fetch(R1, 0, 64, ALL).items.map((i) => i.id), [long]);
  assert.deepEqual(await files(dir.path), [`${long}.bin`]);
  clock.ms += DAY;
  assert.equal(await after.expire(), 1);
  assert.deepEqual(await files(dir.path), []);
  assert.equal(after.stats().expired, 1);
  await after.close();
});

Deno.test("quotas hold after a reopen: the restored items are counted", async () => {
  await using dir = await tempDir("pilot-mailbox-");
  const { now } = wallClock();
  const limits: MailboxLimits = { ...MAILBOX_LIMITS, perRecipient: { items: 2, bytes: 1e9 } };
  const first = await DurableMailboxes.open(dir.path, { now, limits });
  await deposited(first, dep(R1, item(1)));
  await deposited(first, dep(R1, item(2)));
  assert.deepEqual(await first.deposit(dep(R1, item(3))), { ok: false, reason: "mailbox_full" });
  await first.close();
  const again = await DurableMailboxes.open(dir.path, { now, limits });
  assert.deepEqual(await again.deposit(dep(R1, item(3))), { ok: false, reason: "mailbox_full" });
  assert.equal((await again.deposit(dep(R2, item(3)))).ok, true);
  assert.deepEqual([again.stats().items, again.stats().refused.mailbox_full], [3, 1]);
  await again.close();
});

Deno.test("a deposit is not fetched until it is durable, and a fetch stops before it", async () => {
  await using dir = await tempDir("pilot-mailbox-");
  const { now } = wallClock();
  let hold: PromiseWithResolvers<void> | null = null;
  const boxes = await DurableMailboxes.open(dir.path, {
    now,
    sync: async (f) => {
      await hold?.promise;
      await f.sync();
    },
  });
  const a = await deposited(boxes, dep(R1, item(1)));
  hold = Promise.withResolvers<void>();
  const slow = boxes.deposit(dep(R1, item(2)));
  // Let the data file be written; the log's fsync waits for `hold`.
  for (let i = 0; i < 50 && boxes.stats().pending === 1; i++) {
    await new Promise((r) => setTimeout(r, 5));
    if ((await files(dir.path)).length === 2) break;
  }
  assert.equal(boxes.stats().pending, 1);
  assert.equal((await files(dir.path)).length, 2, "its data file is written");
  assert.deepEqual(boxes.fetch(R1, 0, 64, ALL), {
    items: [{ id: a, sealed: item(1), depositedAt: now() }],
    more: false,
  });
  assert.equal(await boxes.ack(R1, [a + 1]), 0, "an ack of a deposit in flight is ignored");
  hold.resolve();
  const r = await slow;
  assert.ok(r.ok);
  assert.deepEqual(boxes.fetch(R1, a, 64, ALL).items.map((i) => i.id), [r.id]);
  await boxes.close();
});

Deno.test("fetch() pages by items and sealed bytes, with more", async () => {
  await using dir = await tempDir("pilot-mailbox-");
  const { now } = wallClock();
  const boxes = await DurableMailboxes.open(dir.path, { now });
  for (let i = 0; i < 5; i++) await deposited(boxes, dep(R1, item(i, 1000)));
  const p = boxes.fetch(R1, 0, 2, ALL);
  assert.deepEqual([p.items.length, p.more], [2, true]);
  const q = boxes.fetch(R1, p.items[1]!.id, 64, 2500);
  assert.deepEqual([q.items.length, q.more], [2, true]);
  const r = boxes.fetch(R1, q.items[1]!.id, 64, ALL);
  assert.deepEqual([r.items.length, r.more], [1, false]);
  await boxes.close();
});

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/**
 * A writer in its own process, killed with SIGKILL mid-run: prints `D <id>
 * <n>` once deposit n is answered, `K <id>` before acking it and `A <id>`
 * once the ack is answered.
 */
const WRITER = `
import { DurableMailboxes } from ${JSON.stringify(join(ROOT, "src/daemon/mailbox_disk.ts"))};
const boxes = await DurableMailboxes.open(Deno.args[0]);
const out = (s) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\\n"));
const R = "11".repeat(32);
let n = 0;
async function loop() {
  for (;;) {
    const i = n++;
    const sealed = new Uint8Array(1 + (i * 7919) % 40000).fill(i & 0xff);
    const r = await boxes.deposit({ recipient: R, sender: "aa".repeat(32), source: "x", sealed, ttlMs: 86400000 });
    if (!r.ok) throw new Error(r.reason);
    out("D " + r.id + " " + i);
    if (i % 3 !== 0) {
      out("K " + r.id);
      await boxes.ack(R, [r.id]);
      out("A " + r.id);
    }
  }
}
await Promise.all([loop(), loop(), loop()]);
`;

Deno.test("kill -9 mid-run: every answered deposit is there, every answered ack is gone", async () => {
  await using dir = await tempDir("pilot-mailbox-kill-");
  for (const delay of [5, 40]) {
    const home = join(dir.path, `run-${delay}`);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=js", WRITER, home],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    let text = "";
    let killed = false;
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (!killed && text.split("\n").length > 60) {
        killed = true;
        setTimeout(() => child.kill("SIGKILL"), delay);
      }
    }
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL", `the writer died on its own: ${await stderr}`);
    const lines = text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter((l) => l !== "");
    const deposits = new Map<number, number>();
    const acked = new Set<number>();
    const acking = new Set<number>();
    for (const l of lines) {
      const [op, id, n] = l.split(" ");
      if (op === "D") deposits.set(Number(id), Number(n));
      else if (op === "K") acking.add(Number(id));
      else acked.add(Number(id));
    }
    const boxes = await DurableMailboxes.open(home);
    const held = new Map<number, Uint8Array>();
    for (let after = 0;;) {
      const page = boxes.fetch(R1, after, 64, ALL);
      for (const i of page.items) held.set(i.id, i.sealed);
      if (page.items.length === 0) break;
      after = page.items.at(-1)!.id;
    }
    for (const [id, n] of deposits) {
      if (acked.has(id)) {
        assert.ok(!held.has(id), `acked item ${id} came back`);
      } else if (!acking.has(id)) {
        const sealed = held.get(id);
        assert.ok(sealed !== undefined, `answered deposit ${id} was lost`);
        assert.equal(sealed.length, 1 + (n * 7919) % 40000);
        assert.ok(sealed.every((b) => b === (n & 0xff)));
      }
    }
    // Deposits and acks keep working on the reopened store.
    const r = await boxes.deposit(dep(R1, item(1)));
    assert.ok(r.ok && r.id > Math.max(...deposits.keys()));
    await boxes.close();
  }
});
