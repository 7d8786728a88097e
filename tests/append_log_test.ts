import assert from "node:assert/strict";
import { join } from "node:path";
import { AppendLog, encodeRecord } from "../src/daemon/append_log.ts";
import { PilotError } from "../src/errors.ts";
import { tempDir } from "./_tmp.ts";

/** A sync hook that counts fsyncs. */
function counter(): { syncs: number; sync: (f: Deno.FsFile) => Promise<void> } {
  const c = {
    syncs: 0,
    sync: async (f: Deno.FsFile) => {
      c.syncs++;
      await f.sync();
    },
  };
  return c;
}

Deno.test("AppendLog records round-trip through close and reopen, stored as ASCII in a 0600 file", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  const records = [
    { op: "msg", text: "héllo ∂ 😀 \u2028 \n \u0000 end" },
    null,
    42,
    "a string",
    [1, { nested: [true, false] }],
  ];
  const { log, records: before } = await AppendLog.open(path);
  assert.deepEqual(before, []);
  for (const r of records) await log.append(r);
  assert.equal(log.count, records.length);
  await log.close();

  const bytes = await Deno.readFile(path);
  assert.ok(bytes.every((b) => b < 0x80), "the file is pure ASCII");
  assert.equal(bytes.length, (await Deno.stat(path)).size);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);

  const again = await AppendLog.open(path);
  assert.deepEqual(again.records, records);
  assert.equal(again.log.size, bytes.length);
  await again.log.close();
});

Deno.test("AppendLog fsyncs once per append when appends are sequential", async () => {
  await using dir = await tempDir("pilot-log-");
  const c = counter();
  const { log } = await AppendLog.open(join(dir.path, "a.log"), { sync: c.sync });
  for (let i = 0; i < 5; i++) await log.append({ i });
  assert.equal(c.syncs, 5);
  await log.close();
});

Deno.test("AppendLog groups 200 concurrent appends into far fewer than 200 fsyncs", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  const c = counter();
  const { log } = await AppendLog.open(path, { sync: c.sync });
  await Promise.all(Array.from({ length: 200 }, (_, i) => log.append({ i })));
  assert.ok(c.syncs >= 1 && c.syncs <= 2, `${c.syncs} fsyncs for 200 appends`);
  await log.close();
  const { log: again, records } = await AppendLog.open(path);
  assert.deepEqual(records, Array.from({ length: 200 }, (_, i) => ({ i })));
  await again.close();
});

Deno.test("AppendLog appends made during an fsync share the next single fsync", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  let syncs = 0;
  const gate = Promise.withResolvers<void>();
  const entered = Promise.withResolvers<void>();
  const { log } = await AppendLog.open(path, {
    sync: async (f) => {
      syncs++;
      if (syncs === 1) {
        entered.resolve();
        await gate.promise;
      }
      await f.sync();
    },
  });
  const first = log.append({ i: 0 });
  await entered.promise;
  let settled = false;
  const rest = Promise.all(Array.from({ length: 100 }, (_, i) => log.append({ i: i + 1 })))
    .then(() => (settled = true));
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(settled, false, "appends resolve only after their own fsync");
  gate.resolve();
  await first;
  await rest;
  assert.equal(syncs, 2);
  await log.close();
  const { log: again, records } = await AppendLog.open(path);
  assert.equal(records.length, 101);
  await again.close();
});

Deno.test("AppendLog.open drops a torn last line and truncates it away", async () => {
  const cases: [string, string][] = [
    ["a partial record", '{"a":1}\n{"b":2}\n{"c":'],
    ["a whole record without its newline", '{"a":1}\n{"b":2}\n{"c":3}'],
    ["an unparsable final line", '{"a":1}\n{"b":2}\n\u0000\u0000\u0000\n'],
    ["torn non-ASCII bytes", '{"a":1}\n{"b":2}\n\u00e9'],
  ];
  for (const [what, content] of cases) {
    await using dir = await tempDir("pilot-log-");
    const path = join(dir.path, "a.log");
    await Deno.writeTextFile(path, content, { mode: 0o600 });
    const { log, records } = await AppendLog.open(path);
    assert.deepEqual(records, [{ a: 1 }, { b: 2 }], what);
    assert.equal(await Deno.readTextFile(path), '{"a":1}\n{"b":2}\n', what);
    await log.append({ d: 4 });
    await log.close();
    assert.equal(await Deno.readTextFile(path), '{"a":1}\n{"b":2}\n{"d":4}\n', what);
  }
});

Deno.test("AppendLog.open drops a lone torn line in an otherwise empty log", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  await Deno.writeTextFile(path, '{"a":', { mode: 0o600 });
  const { log, records } = await AppendLog.open(path);
  assert.deepEqual(records, []);
  assert.equal((await Deno.stat(path)).size, 0);
  await log.close();
});

Deno.test("AppendLog.open refuses a corrupt middle line with a PilotError naming the file and line", async () => {
  const cases: [string, string][] = [
    ["bad JSON", '{"a":1}\nnot json\n{"b":2}\n'],
    ["an empty line", '{"a":1}\n\n{"b":2}\n'],
    ["a non-ASCII byte", '{"a":1}\n{"x":"\u00e9"}\n{"b":2}\n'],
    ["a bad last complete line before a torn tail", '{"a":1}\n{"x\n{"b":'],
  ];
  for (const [what, content] of cases) {
    await using dir = await tempDir("pilot-log-");
    const path = join(dir.path, "a.log");
    await Deno.writeTextFile(path, content, { mode: 0o600 });
    await assert.rejects(AppendLog.open(path), (e: unknown) => {
      assert.ok(e instanceof PilotError, what);
      assert.equal(e.code, "internal");
      assert.ok(e.message.includes(path), e.message);
      assert.ok(e.message.includes("line 2"), e.message);
      assert.ok(!e.message.includes("\n"), "one-line message");
      assert.match(e.hint, /move the file away/);
      return true;
    });
    assert.equal(await Deno.readTextFile(path), content, `${what}: the file is untouched`);
  }
});

Deno.test("AppendLog.rewrite is atomic: a concurrent reader always sees a whole old or new log", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  const { log } = await AppendLog.open(path);
  const big = "x".repeat(2000);
  const version = (v: number) => Array.from({ length: 300 }, (_, i) => ({ v, i, big }));
  await log.rewrite(version(0));
  let done = false;
  let reads = 0;
  const reader = (async () => {
    while (!done) {
      const text = await Deno.readTextFile(path);
      assert.ok(text.endsWith("\n"), "no torn tail");
      const lines = text.slice(0, -1).split("\n").map((l) => JSON.parse(l));
      assert.equal(lines.length, 300, "the whole log");
      const v = lines[0].v;
      assert.ok(lines.every((r, i) => r.v === v && r.i === i), "one version only");
      reads++;
    }
  })();
  reader.catch(() => {}); // reported by the await below, not as an unhandled rejection
  try {
    for (let v = 1; v <= 20; v++) await log.rewrite(version(v));
  } finally {
    done = true;
    await reader;
  }
  assert.ok(reads > 0);
  await log.close();
  const again = await AppendLog.open(path);
  assert.deepEqual(again.records, version(20));
  await again.log.close();
});

Deno.test("AppendLog.rewrite keeps appends called before it before it, and later ones after it", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  const c = counter();
  const { log } = await AppendLog.open(path, { sync: c.sync });
  await log.append({ old: 0 });
  const ops = [
    log.append({ lost: 1 }),
    log.rewrite([{ kept: 0 }]),
    log.append({ after: 1 }),
    log.append({ after: 2 }),
  ];
  await Promise.all(ops);
  assert.equal(log.count, 3);
  await log.append({ after: 3 });
  await log.close();
  const again = await AppendLog.open(path);
  assert.deepEqual(again.records, [{ kept: 0 }, { after: 1 }, { after: 2 }, { after: 3 }]);
  assert.equal(again.log.size, (await Deno.stat(path)).size);
  await again.log.close();
});

Deno.test("AppendLog.append throws RangeError for a record over the size cap and writes nothing", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  const { log } = await AppendLog.open(path, { maxRecordBytes: 100 });
  await assert.rejects(log.append({ s: "y".repeat(100) }), RangeError);
  await assert.rejects(log.rewrite([{ s: "y".repeat(100) }]), RangeError);
  await log.append({ s: "ok" });
  await log.close();
  assert.equal(await Deno.readTextFile(path), '{"s":"ok"}\n');
});

Deno.test("encodeRecord() escapes non-ASCII and counts the escaped size against the cap", () => {
  assert.equal(encodeRecord({ s: "é" }), '{"s":"\\u00e9"}');
  assert.equal(JSON.parse(encodeRecord({ s: "😀\u007f" })).s, "😀\u007f");
  assert.throws(() => encodeRecord("é".repeat(10), 50), RangeError);
  assert.throws(() => encodeRecord(undefined), TypeError);
});

Deno.test("AppendLog refuses appends after close but flushes those made before", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  const { log } = await AppendLog.open(path);
  const pending = log.append({ a: 1 });
  await log.close();
  await pending;
  await assert.rejects(log.append({ b: 2 }), /closed/);
  assert.equal(await Deno.readTextFile(path), '{"a":1}\n');
});

Deno.test("AppendLog.open refuses a log other users can read", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  await Deno.writeTextFile(path, "");
  await Deno.chmod(path, 0o644);
  await assert.rejects(AppendLog.open(path), PilotError);
});

Deno.test("AppendLog.open removes the temp files a rewrite killed mid-way left behind", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  await Deno.writeTextFile(path, '{"a":1}\n', { mode: 0o600 });
  const stale = `${path}.tmp-${crypto.randomUUID()}`;
  await Deno.writeTextFile(stale, '{"half":', { mode: 0o600 });
  const other = join(dir.path, "b.log.tmp-1");
  await Deno.writeTextFile(other, "", { mode: 0o600 });
  const { log, records } = await AppendLog.open(path);
  assert.deepEqual(records, [{ a: 1 }]);
  await assert.rejects(Deno.stat(stale), Deno.errors.NotFound);
  await Deno.stat(other); // another file's temp is not ours to remove
  await log.close();
});

Deno.test("AppendLog resolves each of 300 staggered appends only after an fsync that began with its bytes written", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  /** File size when each completed fsync began: every byte below it is durable. */
  let durable = 0;
  let syncs = 0;
  const { log } = await AppendLog.open(path, {
    sync: async (f) => {
      syncs++;
      const size = (await f.stat()).size;
      await new Promise((r) => setTimeout(r, 2)); // a slow disk: later appends pile up
      await f.sync();
      durable = Math.max(durable, size);
    },
  });
  const coveredAt: number[] = [];
  const appends: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) {
    appends.push(log.append({ i }).then(() => void (coveredAt[i] = durable)));
    if (i % 7 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(appends);
  await log.close();
  const text = await Deno.readTextFile(path);
  let end = 0;
  for (const [i, line] of text.split("\n").slice(0, -1).entries()) {
    end += line.length + 1;
    const { i: n } = JSON.parse(line) as { i: number };
    assert.equal(n, i, "records stay in call order");
    assert.ok(coveredAt[n]! >= end, `append ${n} resolved before an fsync covered byte ${end}`);
  }
  assert.equal(coveredAt.length, 300);
  assert.ok(syncs < 300 && syncs >= 2, `${syncs} fsyncs for 300 staggered appends`);
});

Deno.test("AppendLog rejects every append a failed fsync covered, and every later one", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "a.log");
  let syncs = 0;
  const gate = Promise.withResolvers<void>();
  const entered = Promise.withResolvers<void>();
  const { log } = await AppendLog.open(path, {
    sync: async (f) => {
      syncs++;
      if (syncs === 1) {
        await f.sync();
        return;
      }
      entered.resolve();
      await gate.promise;
      throw new Error("EIO");
    },
  });
  await log.append({ i: 0 });
  const covered = Array.from({ length: 50 }, (_, i) => log.append({ i: i + 1 }));
  await entered.promise;
  // These arrive while the failing fsync runs: they would share the next one.
  const waiting = Array.from({ length: 20 }, (_, i) => log.append({ i: i + 51 }));
  gate.resolve();
  const results = await Promise.allSettled([...covered, ...waiting]);
  for (const r of results) {
    assert.equal(r.status, "rejected");
    assert.ok(r.reason instanceof PilotError && r.reason.code === "internal");
    assert.match(r.reason.message, /EIO/);
  }
  assert.equal(syncs, 2, "no fsync after the failed one");
  await assert.rejects(log.append({ late: true }), /EIO/);
  await log.close();
  const { log: again, records } = await AppendLog.open(path);
  assert.ok(records.length >= 1, "the acknowledged record is kept");
  assert.deepEqual(records[0], { i: 0 });
  await again.close();
});
