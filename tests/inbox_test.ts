import assert from "node:assert/strict";
import { join } from "node:path";
import { HOME_FILES } from "../src/daemon/home.ts";
import { Inbox, type InboxMessage, type NewInboxMessage } from "../src/daemon/inbox.ts";
import { PilotError } from "../src/errors.ts";
import { Refusal } from "../src/services/refusal.ts";
import { writerAcks, writerMessage } from "./_kill9_writer.ts";
import { tempDir } from "./_tmp.ts";
import { runWriterUntilKilled } from "./_kill9.ts";

const WRITER = "_kill9_writer.ts";
const KEY_A = "aa".repeat(32);
const KEY_B = "bb".repeat(32);

/** Runs `fn` in a fresh home from the shared `tempDir` (a wrapper, so its many call sites stay as they are). */
async function withHome(fn: (home: string) => Promise<void>): Promise<void> {
  await using home = await tempDir("pilot-inbox-");
  await fn(home.path);
}

function message(id: string, fromKey = KEY_A, data = `data of ${id}`): NewInboxMessage {
  return {
    id,
    from: fromKey === KEY_A ? "0:0000.0000.000a" : "0:0000.0000.000b",
    from_key: fromKey,
    hostname: null,
    fingerprint: fromKey.slice(0, 16),
    type: "text",
    data,
    bytes: new TextEncoder().encode(data).length,
    received_at: "2025-01-01T00:00:00.000Z",
  };
}

function seqs(messages: InboxMessage[]): number[] {
  return messages.map((m) => m.seq);
}

/** Every stored message, read page by page the way a client would. */
function listAll(inbox: Inbox): InboxMessage[] {
  const all: InboxMessage[] = [];
  let after = 0;
  for (;;) {
    const page = inbox.list({ after, limit: 1000 });
    if (page.messages.length === 0) return all;
    all.push(...page.messages);
    after = page.next;
  }
}

async function logLines(home: string): Promise<number> {
  const text = await Deno.readTextFile(join(home, HOME_FILES.inbox));
  return text.split("\n").length - 1;
}

Deno.test("Inbox stores every field, optional ones and non-ASCII text included, across reopen", async () => {
  await withHome(async (home) => {
    const full: NewInboxMessage = {
      ...message("m1", KEY_A, "héllo ∂ 😀 \u0001 \n"),
      hostname: "alice",
      correlation_id: "c-1",
      in_reply_to: "m0",
      expires_at: "2030-01-01T00:00:00.000Z",
      meta: { k: "v", "ü": "ß" },
    };
    const inbox = await Inbox.open(home);
    const stored = await inbox.add(full);
    assert.deepEqual(stored, { ...full, seq: 1 });
    stored.meta!.k = "changed by the caller";
    inbox.list().messages[0]!.meta!.k = "changed by the caller";
    assert.equal(inbox.list().messages[0]!.meta!.k, "v");
    await inbox.close();
    const again = await Inbox.open(home);
    assert.deepEqual(again.list().messages, [{ ...full, seq: 1 }]);
    await again.close();
    assert.equal((await Deno.stat(join(home, HOME_FILES.inbox))).mode! & 0o777, 0o600);
  });
});

Deno.test("Inbox seqs increase across restarts, acks and clears and are never reused", async () => {
  await withHome(async (home) => {
    let inbox = await Inbox.open(home);
    assert.equal((await inbox.add(message("a"))).seq, 1);
    assert.equal((await inbox.add(message("b"))).seq, 2);
    assert.equal((await inbox.add(message("c"))).seq, 3);
    assert.equal(await inbox.ack(["c"]), 1);
    assert.equal((await inbox.add(message("d"))).seq, 4);
    assert.equal(await inbox.clear(4), 3);
    assert.equal(inbox.size, 0);
    await inbox.close();
    // Each reopen compacts (only the high-water mark survives); it must keep the seq.
    for (let round = 0; round < 3; round++) {
      inbox = await Inbox.open(home);
      assert.equal(inbox.size, 0);
      const m = await inbox.add(message(`r${round}`));
      assert.equal(m.seq, 5 + round);
      assert.equal(await inbox.ack([m.id]), 1);
      await inbox.close();
    }
    inbox = await Inbox.open(home);
    assert.equal((await inbox.add(message("last"))).seq, 8);
    await inbox.close();
    assert.ok(await logLines(home) <= 2, "the reopened log was compacted");
  });
});

Deno.test("Inbox.add calls made at once get distinct seqs in call order", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    const added = await Promise.all(
      Array.from({ length: 50 }, (_, i) => inbox.add(message(`m${i}`))),
    );
    assert.deepEqual(seqs(added), Array.from({ length: 50 }, (_, i) => i + 1));
    assert.deepEqual(inbox.list().messages.map((m) => m.id), added.map((m) => m.id));
    await inbox.close();
  });
});

Deno.test("Inbox.list pages oldest first with after and limit and filters by sender key", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    for (let i = 1; i <= 10; i++) await inbox.add(message(`m${i}`, i % 2 === 0 ? KEY_B : KEY_A));
    assert.deepEqual(seqs(inbox.list().messages), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const p1 = inbox.list({ limit: 4 });
    assert.deepEqual(seqs(p1.messages), [1, 2, 3, 4]);
    assert.equal(p1.next, 4);
    const p2 = inbox.list({ after: p1.next, limit: 4 });
    assert.deepEqual(seqs(p2.messages), [5, 6, 7, 8]);
    const p3 = inbox.list({ after: p2.next, limit: 4 });
    assert.deepEqual(seqs(p3.messages), [9, 10]);
    const empty = inbox.list({ after: p3.next });
    assert.deepEqual(empty, { messages: [], next: 10 });
    const fromB = inbox.list({ fromKey: KEY_B, after: 3, limit: 2 });
    assert.deepEqual(seqs(fromB.messages), [4, 6]);
    assert.equal(fromB.next, 6);
    assert.deepEqual(seqs(inbox.list({ fromKey: "cc".repeat(32) }).messages), []);
    // A returned message is a copy: changing it does not change the inbox.
    p1.messages[0]!.data = "changed";
    assert.equal(inbox.list().messages[0]!.data, "data of m1");
    await inbox.close();
  });
});

Deno.test("Inbox.list rejects a limit outside 1 to 1000 and a negative after", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    for (const limit of [0, 1001, 1.5, -1]) {
      assert.throws(() => inbox.list({ limit }), (e: unknown) => {
        assert.ok(e instanceof PilotError);
        assert.equal(e.code, "invalid_argument");
        return true;
      });
    }
    assert.throws(() => inbox.list({ after: -1 }), PilotError);
    assert.equal(inbox.list({ limit: 1000 }).messages.length, 0);
    await inbox.close();
  });
});

Deno.test("Inbox.ack removes only the messages with those ids, durably, and ignores unknown ids", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    for (const id of ["a", "b", "c", "d"]) await inbox.add(message(id));
    assert.equal(await inbox.ack(["b", "d", "nope"]), 2);
    assert.equal(await inbox.ack(["b", "nope"]), 0);
    assert.deepEqual(inbox.list().messages.map((m) => m.id), ["a", "c"]);
    await inbox.close();
    const again = await Inbox.open(home);
    assert.deepEqual(again.list().messages.map((m) => m.id), ["a", "c"]);
    await again.close();
  });
});

Deno.test("Inbox.ack of an id two senders both chose is a conflict unless scoped to one sender", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    await inbox.add(message("same", KEY_A));
    await inbox.add(message("other", KEY_A));
    await inbox.add(message("same", KEY_B));
    await assert.rejects(inbox.ack(["other", "same"]), (e: unknown) => {
      assert.ok(e instanceof PilotError && e.code === "conflict");
      assert.match(e.message, /"same" is used by 2 senders/);
      return true;
    });
    assert.equal(inbox.size, 3, "a refused ack removes nothing");
    assert.equal(await inbox.ack(["same"], { fromKey: KEY_B }), 1);
    await inbox.close();
    const again = await Inbox.open(home);
    assert.deepEqual(again.list().messages.map((m) => [m.id, m.from_key]), [
      ["same", KEY_A],
      ["other", KEY_A],
    ]);
    assert.equal(await again.ack(["same", "other"]), 2, "one sender left: no conflict");
    await again.close();
  });
});

Deno.test("Inbox.clear(upTo) never removes messages added after the list that returned upTo", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    for (const id of ["a", "b", "c"]) await inbox.add(message(id));
    const page = inbox.list();
    await inbox.add(message("d"));
    await inbox.add(message("e"));
    assert.equal(await inbox.clear(page.next), 3);
    assert.deepEqual(inbox.list().messages.map((m) => m.id), ["d", "e"]);
    assert.equal(await inbox.clear(page.next), 0);
    await inbox.close();
    const again = await Inbox.open(home);
    assert.deepEqual(again.list().messages.map((m) => m.id), ["d", "e"]);
    await again.close();
  });
});

Deno.test("Inbox.clear with a seq beyond every listed one spares a message still being stored", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    await inbox.add(message("a"));
    const inFlight = inbox.add(message("b"));
    assert.equal(await inbox.clear(1_000_000), 1);
    assert.equal((await inFlight).seq, 2);
    assert.deepEqual(inbox.list().messages.map((m) => m.id), ["b"]);
    await inbox.close();
    const again = await Inbox.open(home);
    assert.deepEqual(again.list().messages.map((m) => m.id), ["b"]);
    await again.close();
  });
});

Deno.test("Inbox.waitFor resolves on add and rejects with the reason when its signal aborts", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    const never = new AbortController().signal;
    let woke = false;
    const waiting = inbox.waitFor(0, never).then(() => (woke = true));
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(woke, false, "nothing stored yet");
    await inbox.add(message("a"));
    await waiting;
    assert.equal(woke, true);

    await inbox.waitFor(0, never); // a message after 0 exists: resolves at once

    const ac = new AbortController();
    const aborted = inbox.waitFor(1, ac.signal);
    ac.abort(new Error("gave up"));
    await assert.rejects(aborted, /gave up/);
    await assert.rejects(inbox.waitFor(1, AbortSignal.abort(new Error("early"))), /early/);
    await inbox.close();
  });
});

Deno.test("Inbox.waitFor with a sender key ignores messages from other senders", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    let woke = false;
    const ac = new AbortController();
    const waiting = inbox.waitFor(0, ac.signal, { fromKey: KEY_B }).then(() => (woke = true));
    await inbox.add(message("from-a", KEY_A));
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(woke, false);
    await inbox.add(message("from-b", KEY_B));
    await waiting;
    assert.equal(woke, true);
    await inbox.close();
  });
});

Deno.test("Inbox.close rejects pending waitFor calls", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home);
    const waiting = inbox.waitFor(0, new AbortController().signal);
    await inbox.close();
    await assert.rejects(waiting, (e: unknown) => e instanceof PilotError);
  });
});

Deno.test("Inbox refuses new messages when full instead of evicting old ones", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home, { maxMessages: 3 });
    for (const id of ["a", "b", "c"]) await inbox.add(message(id));
    await assert.rejects(inbox.add(message("d")), (e: unknown) => {
      assert.ok(e instanceof Refusal);
      assert.equal(e.code, "rate_limited");
      return true;
    });
    assert.deepEqual(inbox.list().messages.map((m) => m.id), ["a", "b", "c"]);
    await inbox.ack(["a"]);
    assert.equal((await inbox.add(message("d"))).seq, 4, "the refused add used no seq");
    await inbox.close();
  });
});

Deno.test("Inbox refuses a message that would take it past its byte cap", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home, { maxBytes: 2000 });
    await inbox.add(message("a", KEY_A, "x".repeat(1000)));
    await assert.rejects(inbox.add(message("b", KEY_A, "x".repeat(1000))), Refusal);
    await inbox.add(message("c", KEY_A, "small"));
    assert.ok(inbox.bytes <= 2000);
    await inbox.close();
  });
});

Deno.test("Inbox compacts its log once dead records outnumber live ones by the margin", async () => {
  await withHome(async (home) => {
    const inbox = await Inbox.open(home, { compactMargin: 5 });
    await inbox.add(message("keep"));
    for (let i = 0; i < 100; i++) {
      await inbox.add(message(`m${i}`));
      await inbox.ack([`m${i}`]);
    }
    assert.ok(await logLines(home) <= 2 * 1 + 5 + 3, `${await logLines(home)} lines`);
    await inbox.close();
    const again = await Inbox.open(home);
    assert.deepEqual(again.list().messages.map((m) => m.id), ["keep"]);
    assert.equal((await again.add(message("next"))).seq, 102);
    await again.close();
  });
});

Deno.test("Inbox keeps a 16 MiB message of control characters in a record about its size and counts its bytes against the cap", async () => {
  await withHome(async (home) => {
    const MIB = 1024 * 1024;
    const data = "\u0001".repeat(16 * MIB);
    const inbox = await Inbox.open(home);
    await inbox.add({ ...message("ctl"), data, bytes: 16 * MIB });
    const wide = "漢字とかな、".repeat(1000);
    await inbox.add({
      ...message("wide"),
      data: wide,
      bytes: new TextEncoder().encode(wide).length,
    });
    await inbox.add(message("plain", KEY_A, "hello"));
    const logBytes = (await Deno.stat(join(home, HOME_FILES.inbox))).size;
    assert.ok(logBytes < 16 * MIB * 1.4, `${logBytes} bytes of log for 16 MiB of data`);
    assert.ok(inbox.bytes >= 16 * MIB && inbox.bytes < 16 * MIB + 64 * 1024, `${inbox.bytes}`);
    // Printable text stays readable in the log.
    assert.match(await Deno.readTextFile(join(home, HOME_FILES.inbox)), /"data":"hello"/);
    await inbox.close();
    const again = await Inbox.open(home);
    const [ctl, back, plain] = again.list().messages;
    assert.equal(ctl?.data, data);
    assert.equal(back?.data, wide);
    assert.equal(plain?.data, "hello");
    await again.close();
  });
});

Deno.test("Inbox.open refuses a log whose records are malformed, naming the line", async () => {
  await withHome(async (home) => {
    const path = join(home, HOME_FILES.inbox);
    const good = JSON.stringify({ op: "msg", seq: 1, ...message("a") });
    for (const bad of ['{"op":"msg","seq":2}', '{"op":"ack","seqs":"x"}', '{"op":"nope"}', "[]"]) {
      await Deno.writeTextFile(path, `${good}\n${bad}\n${good}\n`, { mode: 0o600 });
      await assert.rejects(Inbox.open(home), (e: unknown) => {
        assert.ok(e instanceof PilotError && e.code === "internal", bad);
        assert.match(e.message, /line 2/);
        return true;
      });
    }
    await Deno.writeTextFile(path, `${good}\n${good}\n`, { mode: 0o600 });
    await assert.rejects(Inbox.open(home), /seq 1 does not increase/);
  });
});

interface Expect {
  id: string;
  i: number;
  /** true: must be present; false: must be gone; undefined: either (an ack was cut short). */
  present: boolean | undefined;
}

Deno.test("Inbox survives kill -9 at random moments: acknowledged messages intact, seqs increasing", async () => {
  await withHome(async (home) => {
    const expect = new Map<number, Expect>();
    for (let round = 0; round < 5; round++) {
      const tag = `r${round}`;
      const delay = Math.floor(Math.random() * 60) + round * 40;
      const lines = await runWriterUntilKilled(WRITER, [home, tag], delay);
      for (const line of lines) {
        const [kind, seqText, id] = line.split(" ");
        const seq = Number(seqText);
        if (kind === "S") {
          const i = Number(id!.slice(tag.length + 1));
          expect.set(seq, { id: id!, i, present: writerAcks(i) ? undefined : true });
        } else if (kind === "A") {
          expect.get(seq)!.present = false;
        }
      }

      const temps = [...Deno.readDirSync(home)].filter((e) => e.name.includes(".tmp-"));
      if (round % 2 === 1) {
        // A regular-file write on Linux is rarely cut short by SIGKILL, so
        // also leave what one cut short would: half a record, no newline.
        await Deno.writeTextFile(join(home, HOME_FILES.inbox), '{"op":"msg","seq":99999,"da', {
          append: true,
        });
      }

      const inbox = await Inbox.open(home);
      for (const t of temps) {
        await assert.rejects(Deno.stat(join(home, t.name)), Deno.errors.NotFound);
      }
      const all = listAll(inbox);
      for (let k = 1; k < all.length; k++) {
        assert.ok(all[k]!.seq > all[k - 1]!.seq, "seqs strictly increase");
      }
      const bySeq = new Map(all.map((m) => [m.seq, m]));
      for (const [seq, e] of expect) {
        const m = bySeq.get(seq);
        if (e.present === false) assert.equal(m, undefined, `acked seq ${seq} is gone`);
        if (m === undefined) {
          assert.notEqual(e.present, true, `round ${round}: acknowledged seq ${seq} is missing`);
          e.present = false;
          continue;
        }
        const { seq: _, ...rest } = m;
        assert.deepEqual(rest, writerMessage(e.id, e.i), `seq ${seq} is intact`);
        e.present = true; // settled now: nothing acks it any more
      }
      const top = Math.max(0, ...expect.keys(), ...all.map((m) => m.seq));
      const added = await inbox.add(message(`after-${tag}`));
      assert.ok(added.seq > top, `new seq ${added.seq} above ${top}`);
      assert.equal(await inbox.ack([added.id]), 1);
      await inbox.close();
    }
  });
});
