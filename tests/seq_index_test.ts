import assert from "node:assert/strict";
import { join } from "node:path";
import { isSeq, type SeqCodec, SeqIndex, type SeqIndexOptions } from "../src/daemon/seq_index.ts";
import { PilotError } from "../src/errors.ts";
import { Refusal } from "../src/services/refusal.ts";

const KEY_A = "aa".repeat(32);
const KEY_B = "bb".repeat(32);

interface Note {
  seq: number;
  id: string;
  from_key: string;
  from: string;
  fingerprint: string;
  text: string;
}

const CODEC: SeqCodec<Note> = {
  op: "note",
  what: "note",
  parse: (o) => {
    const { seq, id, from_key, from, fingerprint, text } = o;
    if (!isSeq(seq)) return undefined;
    for (const v of [id, from_key, from, fingerprint, text]) if (typeof v !== "string") return;
    return {
      seq,
      id: id as string,
      from_key: from_key as string,
      from: from as string,
      fingerprint: fingerprint as string,
      text: text as string,
    };
  },
  fields: (n) => ({ ...n }),
  copy: (n) => ({ ...n }),
};

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pilot-seq-index-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function open(
  dir: string,
  options: Partial<SeqIndexOptions<Note>> = {},
): Promise<SeqIndex<Note>> {
  return SeqIndex.open(join(dir, "notes.log"), CODEC, { label: "Notes", ...options });
}

function note(text: string, from_key = KEY_A, id = text): Omit<Note, "seq"> {
  return {
    id,
    from_key,
    from: `addr-${from_key.slice(0, 2)}`,
    fingerprint: from_key.slice(0, 8),
    text,
  };
}

function texts(index: SeqIndex<Note>, after = 0): string[] {
  return index.list({ after, limit: 1000 }).entries.map((n) => n.text);
}

async function lines(dir: string): Promise<number> {
  return (await Deno.readTextFile(join(dir, "notes.log"))).split("\n").length - 1;
}

Deno.test("SeqIndex seqs increase across acks, clears, compaction and reopen, and are never reused", async () => {
  await withDir(async (dir) => {
    let index = await open(dir, { compactMargin: 0 });
    for (const t of ["a", "b", "c"]) await index.add(note(t));
    assert.equal(await index.ack([3]), 1);
    assert.equal(await index.clear(2), 2);
    await index.close();
    // Everything was removed: the reopened log is only the high-water mark.
    index = await open(dir);
    assert.equal(await lines(dir), 1);
    assert.equal((await index.add(note("d"))).seq, 4);
    await index.close();
  });
});

Deno.test("SeqIndex.list pages by after and limit, filters by sender key and returns copies", async () => {
  await withDir(async (dir) => {
    const index = await open(dir);
    for (const [t, k] of [["a1", KEY_A], ["b1", KEY_B], ["a2", KEY_A], ["b2", KEY_B]]) {
      await index.add(note(t!, k));
    }
    const page = index.list({ limit: 2 });
    assert.deepEqual(page.entries.map((n) => n.text), ["a1", "b1"]);
    assert.equal(page.next, 2);
    assert.deepEqual(texts(index, page.next), ["a2", "b2"]);
    const fromB = index.list({ limit: 10, fromKey: KEY_B });
    assert.deepEqual(fromB.entries.map((n) => n.seq), [2, 4]);
    fromB.entries[0]!.text = "changed";
    assert.equal(index.get(2)?.entry.text, "b1");
    assert.throws(() => index.list({ after: -1, limit: 1 }), PilotError);
    await index.close();
  });
});

Deno.test("SeqIndex.clear never takes an entry whose append was still in flight", async () => {
  await withDir(async (dir) => {
    const index = await open(dir);
    await index.add(note("seen"));
    const late = index.add(note("unseen"));
    // The caller passes a seq beyond everything it has seen.
    assert.equal(await index.clear(1_000), 1);
    assert.equal((await late).seq, 2);
    assert.deepEqual(texts(index), ["unseen"]);
    await index.close();
    const again = await open(dir);
    assert.deepEqual(texts(again), ["unseen"]);
    await again.close();
  });
});

Deno.test("SeqIndex refuses with rate_limited past its caps, uses no seq for the refusal, and never evicts", async () => {
  await withDir(async (dir) => {
    const index = await open(dir, { maxListed: 2 });
    await index.add(note("a"));
    await index.add(note("b"));
    await assert.rejects(
      index.add(note("c")),
      (e) => e instanceof Refusal && e.code === "rate_limited",
    );
    assert.throws(() => index.assertRoom(), Refusal);
    assert.deepEqual(texts(index), ["a", "b"]);
    await index.ack([1]);
    assert.equal((await index.add(note("c"))).seq, 3);
    await index.close();
    const small = await open(dir, { maxBytes: 10 });
    await assert.rejects(
      small.add(note("x")),
      (e) => e instanceof Refusal && e.code === "rate_limited",
    );
    await small.close();
  });
});

Deno.test("SeqIndex keeps acknowledged entries up to maxRemembered, forgets the oldest first, across reopen", async () => {
  await withDir(async (dir) => {
    const forgotten: string[] = [];
    const onForget = (n: Note) => forgotten.push(n.text);
    let index = await open(dir, { maxRemembered: 3, onForget });
    for (const t of ["a", "b", "c", "d"]) await index.add(note(t));
    // Four listed entries exceed the cap, but listed entries are never forgotten.
    assert.deepEqual(forgotten, []);
    await index.ack([1, 2]);
    assert.deepEqual(forgotten, ["a"], "the oldest acknowledged one goes first");
    assert.deepEqual(index.get(2), { entry: { seq: 2, ...note("b") }, acked: true });
    assert.deepEqual(texts(index), ["c", "d"]);
    await index.close();
    index = await open(dir, { maxRemembered: 3, onForget });
    assert.equal(index.get(2)?.acked, true);
    assert.equal(index.get(1), undefined);
    assert.deepEqual([...index.remembered()].map((n) => n.text), ["b", "c", "d"]);
    await index.close();
    // Without maxRemembered an acknowledged entry is gone at once.
    index = await open(dir);
    assert.equal(index.get(2), undefined);
    await index.close();
  });
});

Deno.test("SeqIndex.waitFor wakes on a listed entry from the wanted sender and rejects on abort and close", async () => {
  await withDir(async (dir) => {
    const index = await open(dir);
    await index.add(note("old"));
    await index.ack([1]);
    let woke = false;
    const waiting = index.waitFor(0, new AbortController().signal, { fromKey: KEY_B }).then(
      () => woke = true,
    );
    await index.add(note("from a"));
    await Promise.resolve();
    assert.equal(woke, false, "an acknowledged entry and another sender's do not count");
    await index.add(note("from b", KEY_B));
    await waiting;
    const ctl = new AbortController();
    const aborted = index.waitFor(10, ctl.signal);
    ctl.abort(new Error("gave up"));
    await assert.rejects(aborted, /gave up/);
    const closing = index.waitFor(10, new AbortController().signal);
    await index.close();
    await assert.rejects(closing, (e) => e instanceof PilotError && e.code === "not_running");
    await assert.rejects(index.add(note("late")), (e) => e instanceof Refusal);
  });
});

Deno.test("SeqIndex.ackIds refuses an id two senders chose as a conflict naming them, unless scoped to one sender", async () => {
  await withDir(async (dir) => {
    const index = await open(dir);
    await index.add(note("a's job", KEY_A, "job-1"));
    await index.add(note("b's job", KEY_B, "job-1"));
    await index.add(note("other", KEY_A));
    await assert.rejects(index.ackIds(["other", "job-1"]), (e: unknown) => {
      assert.ok(e instanceof PilotError && e.code === "conflict");
      assert.match(
        e.message,
        /"job-1" is used by 2 senders: addr-aa \(aaaaaaaa\), addr-bb \(bbbbbbbb\)/,
      );
      return true;
    });
    assert.equal(index.listed, 3, "a refused ack takes nothing");
    assert.equal(await index.ackIds(["job-1", "other"], { fromKey: KEY_A }), 2);
    assert.deepEqual(texts(index), ["b's job"]);
    assert.equal(await index.ackIds(["job-1", "unknown"]), 1, "one sender left: no conflict");
    await index.close();
  });
});

Deno.test("SeqIndex compacts once dead records outnumber live ones by the margin", async () => {
  await withDir(async (dir) => {
    const index = await open(dir, { compactMargin: 5 });
    await index.add(note("keep"));
    for (let i = 0; i < 50; i++) {
      const n = await index.add(note(`n${i}`));
      await index.ack([n.seq]);
    }
    assert.ok(await lines(dir) <= 2 * 1 + 5 + 3, `${await lines(dir)} lines`);
    await index.close();
    const again = await open(dir);
    assert.deepEqual(texts(again), ["keep"]);
    assert.equal((await again.add(note("next"))).seq, 52);
    await again.close();
  });
});

Deno.test("SeqIndex.open refuses a malformed log, naming the line", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "notes.log");
    const good = JSON.stringify({ op: "note", seq: 1, ...note("a") });
    const bad = [
      '{"op":"note","seq":2}',
      JSON.stringify({ op: "note", seq: 2, ...note("t"), acked: "yes" }),
      '{"op":"ack","seqs":[-1]}',
      '{"op":"clear"}',
      '{"op":"hwm","seq":0}',
      '{"op":"msg"}',
      "7",
    ];
    for (const line of bad) {
      await Deno.writeTextFile(path, `${good}\n${line}\n`, { mode: 0o600 });
      await assert.rejects(open(dir), (e: unknown) => {
        assert.ok(e instanceof PilotError && e.code === "internal", line);
        assert.match(e.message, /line 2/, line);
        return true;
      });
    }
    await Deno.writeTextFile(path, `${good}\n${good}\n`, { mode: 0o600 });
    await assert.rejects(open(dir), /seq 1 does not increase/);
  });
});
