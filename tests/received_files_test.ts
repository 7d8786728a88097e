import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, join, relative, resolve } from "node:path";
import { storageErrorCode } from "../src/daemon/incoming_file.ts";
import { RECEIVED_DIR, RECEIVED_INDEX, ReceivedFiles } from "../src/daemon/received_files.ts";
import { MAX_STORED_NAME } from "../src/daemon/safe_file_name.ts";
import type { StoredFile } from "../src/services/messages/file_receiver.ts";
import type { FileOffer } from "../src/wire/message_frame.ts";
import { PilotError } from "../src/errors.ts";
import { Refusal } from "../src/services/refusal.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { IDS, peerOf } from "./_service_helpers.ts";

const ALICE = peerOf(IDS[0]!, "alice-host");
const BOB = peerOf(IDS[1]!);
const encoder = new TextEncoder();

async function withHome(fn: (home: string) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "pilot-received-" });
  try {
    await fn(home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

function offer(name: string, content: Uint8Array, id: string = crypto.randomUUID()): FileOffer {
  const sha256 = new Uint8Array(createHash("sha256").update(content).digest());
  return { id, name, size: content.length, sha256 };
}

/** Stores `content` through the FileSink interface, as the exchange service would. */
async function receive(
  files: ReceivedFiles,
  from: PeerIdentity,
  o: FileOffer,
  content: Uint8Array,
): Promise<{ file: StoredFile; duplicate: boolean }> {
  const begun = await files.begin(from, o);
  if ("existing" in begun) return { file: begun.existing, duplicate: true };
  for (let i = 0; i < content.length; i += 1000) {
    await begun.writer.write(content.subarray(i, i + 1000));
  }
  return await begun.writer.commit();
}

async function entries(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

function inside(dir: string, path: string): boolean {
  const rel = relative(dir, resolve(path));
  return rel !== "" && !rel.startsWith("..") && dirname(resolve(path)) === dir;
}

Deno.test("hostile names are stored inside received/ under safe names, never outside or hidden", async () => {
  await withHome(async (home) => {
    const files = await ReceivedFiles.open(home);
    const dir = resolve(home, RECEIVED_DIR);
    assert.equal(files.dir, dir);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    const names = [
      "../../etc/passwd",
      "a/b",
      "..",
      ".hidden",
      "nul\u0000name",
      "ctl\u0001\u001b[31mred",
      "n".repeat(300),
      "/absolute/path.txt",
    ];
    for (const [i, name] of names.entries()) {
      const content = encoder.encode(`content ${i}`);
      const { file, duplicate } = await receive(files, ALICE, offer(name, content), content);
      assert.equal(duplicate, false);
      const listed = files.list().files.find((f) => f.seq === file.seq)!;
      assert.ok(inside(dir, listed.path), `${JSON.stringify(name)} -> ${listed.path}`);
      assert.equal(listed.name, file.name);
      assert.equal(listed.original_name, name);
      assert.ok(!file.name.startsWith("."), file.name);
      const bad = [...file.name].filter((c) => c === "/" || c.charCodeAt(0) < 0x20);
      assert.deepEqual(bad, [], JSON.stringify(file.name));
      assert.ok(encoder.encode(file.name).length <= MAX_STORED_NAME);
      assert.deepEqual(await Deno.readFile(listed.path), content);
      assert.equal((await Deno.stat(listed.path)).mode! & 0o777, 0o600);
    }
    // Nothing escaped: the home holds only the folder and the index.
    assert.deepEqual(await entries(home), [RECEIVED_DIR, RECEIVED_INDEX].sort());
    assert.deepEqual(await entries(dir), files.list().files.map((f) => f.name).sort());
    await files.close();
  });
});

Deno.test("a second file with the same name gets name (1).ext, a third name (2).ext; nothing is overwritten", async () => {
  await withHome(async (home) => {
    const files = await ReceivedFiles.open(home);
    const stored: string[] = [];
    for (const [i, from] of [ALICE, ALICE, BOB].entries()) {
      const content = encoder.encode(`version ${i}`);
      stored.push((await receive(files, from, offer("report.pdf", content), content)).file.name);
    }
    assert.deepEqual(stored, ["report.pdf", "report (1).pdf", "report (2).pdf"]);
    for (const [i, name] of stored.entries()) {
      assert.equal(await Deno.readTextFile(join(files.dir, name)), `version ${i}`);
    }
    await files.close();
  });
});

Deno.test("the same content from the same sender is stored once and answered with the earlier entry, across reopen", async () => {
  await withHome(async (home) => {
    const content = encoder.encode("same bytes");
    let files = await ReceivedFiles.open(home);
    const first = await receive(files, ALICE, offer("a.txt", content, "first"), content);
    const again = await receive(files, ALICE, offer("b.txt", content, "second"), content);
    assert.equal(again.duplicate, true);
    assert.deepEqual(again.file, first.file);
    // Another sender's identical content is its own file.
    const bob = await receive(files, BOB, offer("a.txt", content), content);
    assert.equal(bob.duplicate, false);
    assert.equal(bob.file.name, "a (1).txt");
    await files.close();

    files = await ReceivedFiles.open(home);
    const later = await receive(files, ALICE, offer("c.txt", content), content);
    assert.equal(later.duplicate, true);
    assert.equal(later.file.seq, first.file.seq);
    // Acknowledging the entry keeps the file and its memory: still a duplicate.
    assert.equal(await files.ack(["first"]), 1);
    assert.equal((await receive(files, ALICE, offer("d.txt", content), content)).duplicate, true);
    assert.ok(await Deno.stat(join(files.dir, "a.txt")));
    // A file the user deleted is stored afresh.
    await Deno.remove(join(files.dir, "a.txt"));
    const fresh = await receive(files, ALICE, offer("e.txt", content), content);
    assert.equal(fresh.duplicate, false);
    assert.equal(fresh.file.name, "e.txt");
    assert.deepEqual(await entries(files.dir), ["a (1).txt", "e.txt"]);
    await files.close();
  });
});

Deno.test("a stored copy the user changed in place is no longer a duplicate: the content is stored afresh", async () => {
  await withHome(async (home) => {
    const files = await ReceivedFiles.open(home);
    const content = encoder.encode("original");
    const first = await receive(files, ALICE, offer("o.txt", content), content);
    await Deno.writeTextFile(join(files.dir, "o.txt"), "ORIGINAL"); // same size, other bytes
    const again = await receive(files, ALICE, offer("o.txt", content), content);
    assert.equal(again.duplicate, false);
    assert.notEqual(again.file.seq, first.file.seq);
    assert.equal(await Deno.readTextFile(join(files.dir, again.file.name)), "original");
    await files.close();
  });
});

Deno.test("two transfers of the same content racing each other store one copy", async () => {
  await withHome(async (home) => {
    const files = await ReceivedFiles.open(home);
    const content = encoder.encode("raced");
    const o = offer("race.bin", content);
    const a = await files.begin(ALICE, o);
    const b = await files.begin(ALICE, o);
    assert.ok("writer" in a && "writer" in b);
    await a.writer.write(content);
    await b.writer.write(content);
    const [ra, rb] = await Promise.all([a.writer.commit(), b.writer.commit()]);
    assert.deepEqual([ra.duplicate, rb.duplicate].sort(), [false, true]);
    assert.deepEqual(await entries(files.dir), ["race.bin"]);
    await files.close();
  });
});

Deno.test("abort() removes the temp file, and temp files a crash left are removed at open", async () => {
  await withHome(async (home) => {
    let files = await ReceivedFiles.open(home);
    const begun = await files.begin(ALICE, offer("x", encoder.encode("xy")));
    assert.ok("writer" in begun);
    await begun.writer.write(encoder.encode("x"));
    assert.equal((await entries(files.dir)).length, 1); // the temp file
    await begun.writer.abort();
    await begun.writer.abort();
    assert.deepEqual(await entries(files.dir), []);
    // A crash mid-transfer: the temp file stays until the next open.
    const crashed = await files.begin(ALICE, offer("y", encoder.encode("y")));
    assert.ok("writer" in crashed);
    await crashed.writer.write(encoder.encode("y"));
    await files.close();
    assert.equal((await entries(join(home, RECEIVED_DIR))).length, 1);
    files = await ReceivedFiles.open(home);
    assert.deepEqual(await entries(files.dir), []);
    assert.equal(files.size, 0);
    await files.close();
  });
});

Deno.test("list(), ack() and clear() follow the inbox's cursor model and survive reopen and compaction", async () => {
  await withHome(async (home) => {
    let files = await ReceivedFiles.open(home);
    for (let i = 1; i <= 5; i++) {
      const content = encoder.encode(`file ${i}`);
      await receive(files, i % 2 ? ALICE : BOB, offer(`f${i}.txt`, content, `id${i}`), content);
    }
    const page = files.list({ limit: 2 });
    assert.deepEqual(page.files.map((f) => f.seq), [1, 2]);
    assert.equal(page.next, 2);
    assert.deepEqual(files.list({ after: 2 }).files.map((f) => f.id), ["id3", "id4", "id5"]);
    assert.deepEqual(files.list({ fromKey: BOB.keyHex }).files.map((f) => f.seq), [2, 4]);
    const first = files.list().files[0]!;
    assert.equal(first.from, ALICE.address);
    assert.equal(first.from_key, ALICE.keyHex);
    assert.equal(first.hostname, "alice-host");
    assert.equal(first.fingerprint, ALICE.fingerprint);
    assert.equal(first.bytes, 6);
    assert.match(first.sha256, /^[0-9a-f]{64}$/);
    assert.equal(await files.ack(["id2", "nope"]), 1);
    assert.equal(await files.clear(3), 2);
    assert.deepEqual(files.list().files.map((f) => f.seq), [4, 5]);
    await files.close();

    files = await ReceivedFiles.open(home);
    assert.deepEqual(files.list().files.map((f) => f.seq), [4, 5]);
    // Files stay on disk after ack and clear.
    assert.equal((await entries(files.dir)).length, 5);
    const content = encoder.encode("file 6");
    const six = await receive(files, ALICE, offer("f6.txt", content), content);
    assert.equal(six.file.seq, 6);
    await files.clear(6);
    await files.close();
    // The log was compacted at open (acks folded in); seqs are never reused.
    files = await ReceivedFiles.open(home);
    const seven = encoder.encode("file 7");
    assert.equal((await receive(files, ALICE, offer("f7.txt", seven), seven)).file.seq, 7);
    const one = encoder.encode("file 1");
    assert.equal((await receive(files, ALICE, offer("again", one), one)).duplicate, true);
    await files.close();
  });
});

Deno.test("ack() of a transfer id two senders chose is a conflict unless scoped to one sender", async () => {
  await withHome(async (home) => {
    const files = await ReceivedFiles.open(home);
    const a = encoder.encode("from alice");
    const b = encoder.encode("from bob");
    await receive(files, ALICE, offer("a.txt", a, "t-1"), a);
    await receive(files, BOB, offer("b.txt", b, "t-1"), b);
    await assert.rejects(
      files.ack(["t-1"]),
      (e) => e instanceof PilotError && e.code === "conflict" && e.message.includes(ALICE.address),
    );
    assert.equal(files.size, 2);
    assert.equal(await files.ack(["t-1"], { fromKey: BOB.keyHex }), 1);
    assert.deepEqual(files.list().files.map((f) => f.from_key), [ALICE.keyHex]);
    await files.close();
  });
});

Deno.test("waitFor() resolves when a file arrives and rejects when aborted", async () => {
  await withHome(async (home) => {
    const files = await ReceivedFiles.open(home);
    const waiting = files.waitFor(0, new AbortController().signal, { fromKey: BOB.keyHex });
    let done = false;
    void waiting.then(() => done = true);
    const a = encoder.encode("a");
    await receive(files, ALICE, offer("a", a), a);
    await Promise.resolve();
    assert.equal(done, false);
    const b = encoder.encode("b");
    await receive(files, BOB, offer("b", b), b);
    await waiting;
    const ctl = new AbortController();
    const aborted = files.waitFor(2, ctl.signal);
    ctl.abort(new Error("gave up"));
    await assert.rejects(aborted, /gave up/);
    await files.close();
  });
});

Deno.test("caps refuse with short codes: too_large over maxFileBytes, rate_limited when the listing is full", async () => {
  await withHome(async (home) => {
    const files = await ReceivedFiles.open(home, { maxFileBytes: 10, maxFiles: 1 });
    await assert.rejects(
      files.begin(ALICE, offer("big", new Uint8Array(11))),
      (e) => e instanceof Refusal && e.code === "too_large",
    );
    const a = encoder.encode("a");
    await receive(files, ALICE, offer("a", a), a);
    await assert.rejects(
      files.begin(ALICE, offer("b", encoder.encode("b"))),
      (e) => e instanceof Refusal && e.code === "rate_limited",
    );
    await files.close();
  });
});

Deno.test("an unwritable received/ folder refuses with io_error instead of throwing anything else", async () => {
  await withHome(async (home) => {
    const files = await ReceivedFiles.open(home);
    const content = encoder.encode("c");
    const begun = await files.begin(ALICE, offer("c", content));
    assert.ok("writer" in begun);
    await begun.writer.write(content);
    // The folder is replaced by a file under the daemon's feet.
    await Deno.remove(files.dir, { recursive: true });
    await Deno.writeTextFile(files.dir, "not a folder");
    await assert.rejects(
      begun.writer.commit(),
      (e) => e instanceof Refusal && e.code === "io_error",
    );
    await assert.rejects(
      files.begin(ALICE, offer("d", encoder.encode("d"))),
      (e) => e instanceof Refusal && e.code === "io_error",
    );
    await files.close();
  });
});

Deno.test({
  name: "storageErrorCode() maps a real ENOSPC (a write to /dev/full) to disk_full",
  // /dev/full exists on Linux only; elsewhere there is no portable way to fill a disk in a test.
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const full = await Deno.open("/dev/full", { write: true });
    try {
      await full.write(new Uint8Array(16));
      assert.fail("a write to /dev/full succeeded");
    } catch (e) {
      assert.equal(storageErrorCode(e), "disk_full");
    } finally {
      full.close();
    }
    assert.equal(storageErrorCode(new Deno.errors.PermissionDenied("no")), "io_error");
  },
});

/** Counts how often `path` is opened while `fn` runs (the stored file's reads). */
async function opensOf(path: string, fn: () => Promise<void>): Promise<number> {
  const original = Deno.open;
  let n = 0;
  (Deno as { open: typeof Deno.open }).open = (p, o) => {
    if (resolve(String(p)) === resolve(path)) n++;
    return original(p, o);
  };
  try {
    await fn();
  } finally {
    (Deno as { open: typeof Deno.open }).open = original;
  }
  return n;
}

Deno.test("offering a stored file again does not re-read it until its size, mtime or inode change", async () => {
  await withHome(async (home) => {
    const files = await ReceivedFiles.open(home);
    const content = encoder.encode("a large file, in spirit");
    const first = await receive(files, ALICE, offer("big.bin", content), content);
    const path = join(files.dir, first.file.name);
    const unchanged = await opensOf(path, async () => {
      for (let i = 0; i < 3; i++) {
        assert.equal(
          (await receive(files, ALICE, offer("big.bin", content), content)).duplicate,
          true,
        );
      }
    });
    assert.equal(unchanged, 0, "a verified, unchanged file is not read again");
    // Rewritten in place (same bytes, new mtime): verified once more, then cached again.
    await Deno.writeFile(path, content);
    const rewritten = await opensOf(path, async () => {
      for (let i = 0; i < 2; i++) {
        assert.equal(
          (await receive(files, ALICE, offer("big.bin", content), content)).duplicate,
          true,
        );
      }
    });
    assert.equal(rewritten, 1);
    await files.close();
  });
});

Deno.test("offers of a file the peer already stored are refused rate_limited beyond their rate, per peer", async () => {
  await withHome(async (home) => {
    let now = 0;
    const files = await ReceivedFiles.open(home, {
      duplicateRate: { burst: 3, perSecond: 1 },
      now: () => now,
    });
    const content = encoder.encode("offered again and again");
    await receive(files, ALICE, offer("x.bin", content), content);
    for (let i = 0; i < 3; i++) {
      assert.equal((await receive(files, ALICE, offer("x.bin", content), content)).duplicate, true);
    }
    await assert.rejects(
      files.begin(ALICE, offer("x.bin", content)),
      (e) => e instanceof Refusal && e.code === "rate_limited",
    );
    // Another peer's offers are its own; new content is never limited here.
    await receive(files, BOB, offer("x.bin", content), content);
    assert.equal((await receive(files, BOB, offer("x.bin", content), content)).duplicate, true);
    const other = encoder.encode("new content");
    assert.equal((await receive(files, ALICE, offer("y.bin", other), other)).duplicate, false);
    now += 1_000;
    assert.equal((await receive(files, ALICE, offer("x.bin", content), content)).duplicate, true);
    await files.close();
  });
});
