import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname, resolve } from "node:path";
import { MAX_STREAM_MESSAGE, PORT_MESSAGES } from "../src/constants.ts";
import { ReceivedFiles } from "../src/daemon/received_files.ts";
import { MessagesClient, type OutgoingFile } from "../src/services/messages/client.ts";
import {
  type MessageSink,
  MessagesServer,
  type MessagesServerOptions,
} from "../src/services/messages/server.ts";
import { ConflictRefusal, Refusal, type RefusalCode } from "../src/services/refusal.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { type Connection, StreamError } from "../src/stream/mod.ts";
import type { Envelope } from "../src/wire/data_message.ts";
import {
  encodeFrame,
  encodeFrameHeader,
  FRAME_MESSAGE,
  frameCap,
  MESSAGE_FRAMES,
  type MessageFrame,
  nextMessageFrame,
  type ReceiptFrame,
} from "../src/wire/message_frame.ts";
import { FrameReader } from "../src/wire/framing.ts";
import { IDS, peerOf } from "./_service_helpers.ts";
import { patternBytes, sha256, SimLink, type SimLinkOptions, track } from "./_sim_link.ts";

const MIB = 1024 * 1024;
const ALICE = peerOf(IDS[0]!);
const BOB = peerOf(IDS[1]!);

/** Timers on the simulated clock: the service's stall timeouts fire as `settle` advances it. */
class SimTimers {
  #clock: { now: number };
  #due = new Set<{ at: number; fn: () => void }>();

  constructor(clock: { now: number }) {
    this.#clock = clock;
  }

  /** The service's `now` option. */
  readonly now = (): number => this.#clock.now;

  /** The service's `after` option. */
  readonly after = (ms: number, fn: () => void): () => void => {
    const t = { at: this.#clock.now + ms, fn };
    this.#due.add(t);
    return () => this.#due.delete(t);
  };

  /** Runs the timers that are due. */
  fire(): void {
    for (const t of [...this.#due]) {
      if (t.at > this.#clock.now) continue;
      this.#due.delete(t);
      t.fn();
    }
  }
}

/** A message sink in memory: dedup by (sender, id), seqs from 1; `hold` delays every store. */
class MemorySink implements MessageSink {
  readonly stored: { peer: PeerIdentity; envelope: Envelope }[] = [];
  calls = 0;
  refuse: RefusalCode | null = null;
  #seen = new Map<string, number>();

  async store(peer: PeerIdentity, envelope: Envelope) {
    this.calls++;
    await Promise.resolve();
    if (this.refuse !== null) throw new Refusal(this.refuse);
    const key = `${peer.keyHex}:${envelope.id}`;
    const seen = this.#seen.get(key);
    if (seen !== undefined) return { seq: seen, duplicate: true };
    this.stored.push({ peer, envelope });
    this.#seen.set(key, this.stored.length);
    return { seq: this.stored.length, duplicate: false };
  }
}

function envelope(id: string, data: Uint8Array, type: Envelope["type"] = "binary"): Envelope {
  return { id, type, correlationId: "", inReplyTo: "", expiresAt: 0, meta: {}, data };
}

interface World {
  link: SimLink;
  sink: MemorySink;
  files: ReceivedFiles;
  server: MessagesServer;
  client: MessagesClient;
  /** Server ends of accepted streams, in order. */
  accepted: Connection[];
  /** Opens a client stream to port 1001. */
  connect(): Promise<Connection>;
  /** Opens a client stream to port 1001 from another peer, over its own link. */
  connectAs(peer: PeerIdentity): Promise<Connection>;
  /** Runs the simulation until `p` settles; returns its value or throws its error. */
  settle<T>(p: Promise<T>, maxMs?: number): Promise<T>;
  /** Runs the simulation until `done()` holds; throws after `maxMs` simulated ms. */
  until(done: () => boolean, maxMs?: number): Promise<void>;
  /** Names of everything in received/. */
  received(): Promise<string[]>;
}

async function withWorld(
  fn: (w: World) => Promise<void>,
  options: { link?: SimLinkOptions; service?: Partial<MessagesServerOptions> } = {},
): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "pilot-messages-" });
  const files = await ReceivedFiles.open(home);
  try {
    const link = new SimLink(options.link);
    const links = [link];
    const timers = new SimTimers(link.clock);
    const sink = new MemorySink();
    const server = new MessagesServer({
      sink,
      files,
      now: timers.now,
      after: timers.after,
      // Real file I/O runs beside simulated time, which advances 1 ms per turn
      // while an fsync is pending: under load the protocol's 30 s would pass
      // in simulated time before a slow fsync ends. Stall tests set their own.
      stallMs: 3_600_000,
      ...options.service,
    });
    const client = new MessagesClient({ open: () => Promise.reject(new Error("not used")) });
    const accepted: Connection[] = [];
    link.b.listen(PORT_MESSAGES, (conn) => {
      accepted.push(conn);
      void server.serve(conn, ALICE);
    });
    const settle = async <T>(p: Promise<T>, maxMs = 600_000): Promise<T> => {
      const t = track(p);
      const limit = link.clock.now + maxMs;
      // Real file I/O (writes, fsyncs) runs beside the simulation. SimLink.run() would jump
      // the fake clock from timer to timer while an fsync is pending, straight into
      // keepalives and idle timeouts; stepping 1 ms at a time keeps the two in proportion.
      while (!t.settled) {
        if (link.clock.now > limit) throw new Error(`Not settled after ${maxMs} simulated ms`);
        for (const l of links) await l.advance(1);
        timers.fire();
      }
      if ("error" in t) throw t.error;
      return t.value as T;
    };
    const received = async () => {
      const names: string[] = [];
      for await (const e of Deno.readDir(files.dir)) names.push(e.name);
      return names.sort();
    };
    await fn({
      link,
      sink,
      files,
      server,
      client,
      accepted,
      connect: () => settle(link.a.connect(PORT_MESSAGES)),
      until: async (done, maxMs = 60_000) => {
        const limit = link.clock.now + maxMs;
        while (!done()) {
          if (link.clock.now > limit) throw new Error(`Not done after ${maxMs} simulated ms`);
          for (const l of links) await l.advance(1);
          timers.fire();
        }
      },
      connectAs: (peer) => {
        const other = new SimLink({ ...options.link, seed: links.length + 1 });
        other.clock.now = link.clock.now;
        other.b.listen(PORT_MESSAGES, (conn) => void server.serve(conn, peer));
        links.push(other);
        return settle(other.a.connect(PORT_MESSAGES));
      },
      settle,
      received,
    });
  } finally {
    await files.close();
    await Deno.remove(home, { recursive: true });
  }
}

/** A source that yields `data` in `chunk`-byte steps through ONE reused buffer. */
async function* reusing(data: Uint8Array, chunk = 100_000): AsyncGenerator<Uint8Array> {
  const buf = new Uint8Array(chunk);
  for (let o = 0; o < data.length; o += chunk) {
    const n = Math.min(chunk, data.length - o);
    buf.set(data.subarray(o, o + n));
    yield buf.subarray(0, n);
    buf.fill(0xee); // anything still referring to the last chunk now sees garbage
  }
}

function outgoing(name: string, data: Uint8Array, extra: Partial<OutgoingFile> = {}): OutgoingFile {
  return {
    name,
    size: data.length,
    sha256: new Uint8Array(createHash("sha256").update(data).digest()),
    read: reusing(data),
    ...extra,
  };
}

async function fileSha(path: string): Promise<string> {
  return sha256(await Deno.readFile(path));
}

/** Writes raw frames and reads raw receipts: a client that may lie. */
async function rawReceipt(w: World, reader: FrameReader): Promise<ReceiptFrame> {
  const frame = await w.settle(nextMessageFrame(reader));
  assert.ok(frame !== null && frame.kind === "receipt", JSON.stringify(frame?.kind));
  return frame.receipt;
}

function writeFrames(conn: Connection, frames: MessageFrame[]): Promise<unknown> {
  return Promise.all(frames.map((f) => conn.write(encodeFrame(f))));
}

Deno.test("a 16 MiB message arrives intact and is stored once with its receipt", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect();
    const data = patternBytes(16 * MIB, 7);
    const big = envelope("big-1", data);
    const receipt = await w.settle(w.client.sendMessage(conn, big));
    assert.deepEqual(receipt, { status: "stored", seq: 1, detail: "" });
    assert.equal(w.sink.stored.length, 1);
    const got = w.sink.stored[0]!;
    assert.equal(got.peer.keyHex, ALICE.keyHex);
    assert.equal(got.envelope.data.length, data.length);
    assert.equal(sha256(got.envelope.data), sha256(data));
    // A retry of the same id on the same stream stores nothing new.
    const again = await w.settle(w.client.sendMessage(conn, big));
    assert.deepEqual(again, { status: "duplicate", seq: 1, detail: "" });
    assert.equal(w.sink.stored.length, 1);
    assert.equal(w.server.stats().bufferedBytes, 0);
    assert.equal(w.server.stats().pendingReceipts, 0);
  }, { link: { limits: { sendBuffer: 4 * MIB, receiveBuffer: 4 * MIB } } });
});

Deno.test("a message above the cap is refused before its body is read, and the service goes on serving", async () => {
  await withWorld(async (w) => {
    // The honest client refuses locally.
    const conn = await w.connect();
    await assert.rejects(
      w.client.sendMessage(conn, envelope("x", new Uint8Array(MAX_STREAM_MESSAGE + 1))),
      RangeError,
    );
    // A raw client announces a frame over the cap and sends nothing else.
    const header = Uint8Array.of(FRAME_MESSAGE, 0, 0, 0, 0);
    new DataView(header.buffer).setUint32(1, frameCap(FRAME_MESSAGE) + 1);
    await w.settle(conn.write(header));
    const error = await w.settle(conn.read().then(() => null, (e) => e));
    assert.ok(error instanceof StreamError, String(error));
    assert.equal(error.code, "reset");
    assert.ok(error.remote);
    assert.match(error.reason, /^too_large: MESSAGE frame of \d+ bytes is over its cap/);
    assert.equal(conn.stats().sent, 5);
    assert.equal(w.server.refused.too_large, 1);
    assert.equal(w.sink.calls, 0);
    // Other streams are unaffected.
    const next = await w.connect();
    const receipt = await w.settle(w.client.sendMessage(next, envelope("ok", Uint8Array.of(1))));
    assert.equal(receipt.status, "stored");
  });
});

Deno.test("a 5 MiB file and a 0-byte file arrive with the right SHA-256 at 10% loss with reordering", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect();
    const data = patternBytes(5 * MIB, 5);
    const progress: number[] = [];
    const receipt = await w.settle(w.client.sendFile(
      conn,
      outgoing("data.bin", data, { onProgress: (sent) => progress.push(sent) }),
    ));
    assert.equal(receipt.status, "stored");
    assert.equal(receipt.name, "data.bin");
    assert.equal(receipt.size, data.length);
    assert.equal(receipt.sha256, sha256(data));
    assert.equal(receipt.seq, 1);
    assert.equal(progress.at(-1), data.length);
    assert.ok(progress.every((p, i) => i === 0 || p > progress[i - 1]!));
    const listed = w.files.list().files;
    assert.equal(listed.length, 1);
    assert.equal(await fileSha(listed[0]!.path), sha256(data));

    const empty = await w.settle(w.client.sendFile(conn, outgoing("empty.txt", new Uint8Array(0))));
    assert.equal(empty.status, "stored");
    assert.equal(empty.sha256, sha256(new Uint8Array(0)));
    assert.equal((await Deno.stat(w.files.list().files[1]!.path)).size, 0);
    assert.deepEqual(await w.received(), ["data.bin", "empty.txt"]);
    const c = w.link.counters;
    assert.ok(c.lost > 200 && c.reordered > 200, JSON.stringify(c));
  }, {
    link: {
      seed: 5,
      link: { loss: 0.1, reorder: 0.1, reorderMs: 15, delayMs: 10, jitterMs: 2 },
      timers: { minRtoMs: 50 },
    },
  });
});

Deno.test("sending the same file again returns the existing receipt without a second copy or a second upload", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect();
    const data = patternBytes(4 * MIB, 9);
    const first = await w.settle(w.client.sendFile(conn, outgoing("report.pdf", data)));
    assert.equal(first.status, "stored");
    const before = conn.stats().sent;
    const again = await w.settle(w.client.sendFile(conn, outgoing("renamed.pdf", data)));
    assert.deepEqual(again, { ...first, status: "duplicate" });
    assert.deepEqual(await w.received(), ["report.pdf"]);
    assert.equal(w.files.list().files.length, 1);
    // The early receipt stopped the upload: what went out is about what the windows held
    // while the receiver re-hashed its copy, far from the whole file.
    const uploaded = conn.stats().sent - before;
    assert.ok(uploaded < MIB, `re-sent ${uploaded} bytes`);
  }, { link: { limits: { sendBuffer: 256 * 1024, receiveBuffer: 256 * 1024 } } });
});

Deno.test("a sender lying about the hash or the size gets a refused receipt, no file and no temp file remain", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect();
    const data = patternBytes(300_000, 3);
    // A wrong hash, through the ordinary client.
    const wrongHash = await w.settle(w.client.sendFile(
      conn,
      outgoing("a.bin", data, { sha256: new Uint8Array(32).fill(1) }),
    ));
    assert.equal(wrongHash.status, "refused");
    assert.equal(wrongHash.detail, "hash_mismatch");
    assert.equal(wrongHash.seq, 0);
    // Raw frames: a size larger than the content, then a size smaller than it.
    const reader = new FrameReader(MESSAGE_FRAMES, conn);
    const sha = new Uint8Array(createHash("sha256").update(data).digest());
    const chunk = data.subarray(0, 60_000);
    void writeFrames(conn, [
      { kind: "file_begin", file: { id: "long", name: "b.bin", size: 100_000, sha256: sha } },
      { kind: "file_data", data: chunk },
      { kind: "file_end", cancelled: false },
    ]);
    const short = await rawReceipt(w, reader);
    assert.equal(short.status, "refused");
    assert.equal(short.detail, "size_mismatch");
    assert.equal(short.id, "long");
    void writeFrames(conn, [
      { kind: "file_begin", file: { id: "small", name: "c.bin", size: 50_000, sha256: sha } },
      { kind: "file_data", data: chunk },
      { kind: "file_data", data: chunk },
      { kind: "file_end", cancelled: false },
    ]);
    const over = await rawReceipt(w, reader);
    assert.equal(over.detail, "too_large");
    // The client's source yields less than it announced: cancelled, and the caller learns why.
    await assert.rejects(
      w.settle(w.client.sendFile(conn, { ...outgoing("d.bin", data), size: data.length + 1 })),
      /changed while it was sent/,
    );
    assert.deepEqual(await w.received(), []);
    assert.equal(w.files.list().files.length, 0);
    // The stream is still in step: an honest file goes through after all that.
    const ok = await w.settle(w.client.sendFile(conn, outgoing("e.bin", data)));
    assert.equal(ok.status, "stored");
    assert.deepEqual(await w.received(), ["e.bin"]);
    assert.equal(w.server.refused.hash_mismatch, 1);
    assert.equal(w.server.refused.size_mismatch, 1);
    assert.equal(w.server.refused.cancelled, 1);
  });
});

Deno.test("a disk failure while a file is written becomes a refused receipt, and the stream goes on", async () => {
  await withWorld(async (w) => {
    // The disk fills up after the first chunk of "big.bin".
    const begin = w.files.begin.bind(w.files);
    w.files.begin = async (peer, offer) => {
      const begun = await begin(peer, offer);
      if (!("writer" in begun) || offer.name !== "big.bin") return begun;
      const inner = begun.writer;
      let writes = 0;
      return {
        writer: {
          write: (b) => writes++ === 0 ? inner.write(b) : Promise.reject(new Refusal("disk_full")),
          commit: () => inner.commit(),
          abort: () => inner.abort(),
        },
      };
    };
    const conn = await w.connect();
    const big = await w.settle(w.client.sendFile(conn, outgoing("big.bin", patternBytes(MIB, 2))));
    assert.equal(big.status, "refused");
    assert.equal(big.detail, "disk_full");
    assert.deepEqual(await w.received(), []);
    const small = await w.settle(w.client.sendFile(conn, outgoing("small.bin", Uint8Array.of(1))));
    assert.equal(small.status, "stored");
    assert.deepEqual(await w.received(), ["small.bin"]);
  });
});

Deno.test("hostile file names are stored safely inside received/", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect();
    const names = [
      "../../etc/passwd",
      "a/b",
      "..",
      ".hidden",
      "nul\u0000.txt",
      "bell\u0007\u001b]0;title\u0007",
      "x".repeat(296) + ".txt", // 300 bytes: the sender cuts it to 255, the receiver to 200
    ];
    const stored: string[] = [];
    for (const [i, name] of names.entries()) {
      const r = await w.settle(w.client.sendFile(conn, outgoing(name, Uint8Array.of(i))));
      assert.equal(r.status, "stored", `${JSON.stringify(name)}: ${r.detail}`);
      stored.push(r.name);
    }
    assert.deepEqual(stored.slice(0, 6), [
      "passwd",
      "b",
      "file",
      "hidden",
      "nul_.txt",
      "bell__]0;title_",
    ]);
    assert.ok(stored[6]!.endsWith(".txt") && stored[6]!.length <= 200);
    for (const f of w.files.list().files) {
      assert.equal(dirname(resolve(f.path)), w.files.dir, f.path);
    }
    assert.deepEqual(await w.received(), [...stored].sort());
  });
});

Deno.test("a second file with the same name is stored as name (1).ext", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect();
    const a = await w.settle(w.client.sendFile(conn, outgoing("notes.txt", Uint8Array.of(1))));
    const b = await w.settle(w.client.sendFile(conn, outgoing("notes.txt", Uint8Array.of(2))));
    assert.deepEqual([a.name, b.name], ["notes.txt", "notes (1).txt"]);
  });
});

Deno.test("messages and files sent at once on one stream each get their own receipt, in order", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect();
    const calls: Promise<{ status: string; seq: number }>[] = [];
    for (let i = 0; i < 40; i++) {
      calls.push(w.client.sendMessage(conn, envelope(`m${i}`, patternBytes(i * 500, i))));
      if (i === 20) {
        calls.push(w.client.sendFile(conn, outgoing("mid.bin", patternBytes(200_000, 1))));
      }
    }
    const receipts = await w.settle(Promise.all(calls));
    const messages = receipts.filter((_, i) => i !== 21);
    assert.deepEqual(messages.map((r) => r.seq), Array.from({ length: 40 }, (_, i) => i + 1));
    assert.ok(receipts.every((r) => r.status === "stored"));
    assert.deepEqual(
      w.sink.stored.map((s) => s.envelope.id),
      calls.slice(0, 40).map((_, i) => `m${i}`),
    );
    assert.deepEqual(await w.received(), ["mid.bin"]);
    // A refusal from the sink travels back as its code.
    w.sink.refuse = "rate_limited";
    const refused = await w.settle(w.client.sendMessage(conn, envelope("late", Uint8Array.of(0))));
    assert.deepEqual(refused, { status: "refused", seq: 0, detail: "rate_limited" });
  });
});

Deno.test("only a Refusal names its code: a sink's other error refuses as internal, whatever its text", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect();
    w.sink.store = () => Promise.reject(new Error("rate_limited"));
    const plain = await w.settle(w.client.sendMessage(conn, envelope("plain", Uint8Array.of(1))));
    assert.deepEqual(plain, { status: "refused", seq: 0, detail: "internal" });
    w.sink.store = () => Promise.reject(new Refusal("rate_limited", "Inbox is full"));
    const typed = await w.settle(w.client.sendMessage(conn, envelope("typed", Uint8Array.of(1))));
    assert.deepEqual(typed, { status: "refused", seq: 0, detail: "rate_limited" });
    // A conflict travels with what is stored; one that cannot name it is a bug, hence internal.
    const stored = { size: 3, digest: new Uint8Array(32).fill(9) };
    w.sink.store = () => Promise.reject(new ConflictRefusal(stored));
    const conflict = await w.settle(w.client.sendMessage(conn, envelope("c1", Uint8Array.of(1))));
    assert.deepEqual(conflict, { status: "refused", seq: 0, detail: "conflict", stored });
    w.sink.store = () => Promise.reject(new Refusal("conflict"));
    const bare = await w.settle(w.client.sendMessage(conn, envelope("c2", Uint8Array.of(1))));
    assert.deepEqual(bare, { status: "refused", seq: 0, detail: "internal" });
  });
});

Deno.test("a malformed envelope is refused alone, a frame out of place resets the stream with its reason", async () => {
  await withWorld(async (w) => {
    const conn = await w.connect();
    const reader = new FrameReader(MESSAGE_FRAMES, conn);
    const garbage = Uint8Array.of(9, 9, 9);
    void conn.write(Uint8Array.of(FRAME_MESSAGE, 0, 0, 0, garbage.length, ...garbage));
    const refused = await rawReceipt(w, reader);
    assert.deepEqual(refused, {
      subject: "message",
      status: "refused",
      seq: 0,
      id: "",
      detail: "invalid_argument",
    });
    void writeFrames(conn, [{ kind: "file_data", data: Uint8Array.of(1) }]);
    const error = await w.settle(nextMessageFrame(reader).then(() => null, (e) => e));
    assert.ok(error instanceof StreamError);
    assert.match(error.reason, /^unexpected_frame: FILE_DATA frame outside a file/);
  });
});

Deno.test("a peer that stops reading its receipts stalls only its stream: the server's buffers stay bounded", async () => {
  const limits = { sendBuffer: 16 * 1024, receiveBuffer: 16 * 1024, reserve: 16 * 1024 };
  await withWorld(async (w) => {
    const conn = await w.connect();
    const N = 20_000;
    let written = 0;
    const writing = (async () => {
      for (let i = 0; i < N; i++) {
        await conn.write(
          encodeFrame({ kind: "message", envelope: envelope(`n${i}`, Uint8Array.of(i & 255)) }),
        );
        written++;
      }
    })();
    writing.catch(() => {});
    await w.link.advance(20_000);
    const stalledAt = w.sink.calls;
    const writtenAt = written;
    await w.link.advance(60_000);
    // Nothing moved in a minute: the writer is blocked, the server stopped reading.
    assert.equal(w.sink.calls, stalledAt);
    assert.equal(written, writtenAt);
    assert.ok(stalledAt < N / 4, `stored ${stalledAt} of ${N}`);
    const stats = w.server.stats();
    assert.ok(stats.pendingReceipts <= 8, `pending ${stats.pendingReceipts}`);
    const s = w.accepted[0]!.stats();
    assert.ok(s.sendBuffered <= limits.sendBuffer, `send buffered ${s.sendBuffered}`);
    assert.ok(s.receiveBuffered <= limits.receiveBuffer, `receive buffered ${s.receiveBuffered}`);
    // Reading again lets everything through, in order, each stored once.
    const reader = new FrameReader(MESSAGE_FRAMES, conn);
    const seqs: number[] = [];
    const reading = (async () => {
      while (seqs.length < N) {
        const f = await nextMessageFrame(reader);
        if (f === null || f.kind !== "receipt") throw new Error("expected a receipt");
        seqs.push(f.receipt.seq);
      }
    })();
    await w.settle(Promise.all([writing, reading]));
    assert.deepEqual(seqs, Array.from({ length: N }, (_, i) => i + 1));
    assert.equal(w.sink.stored.length, N);
  }, { link: { limits }, service: { maxPipelined: 8 } });
});

Deno.test("a peer holding three 16 MiB message headers open with no body does not delay another peer's message", async () => {
  await withWorld(async (w) => {
    const hostile: Connection[] = [];
    for (let i = 0; i < 3; i++) {
      const conn = await w.connect();
      await w.settle(conn.write(encodeFrameHeader(FRAME_MESSAGE, frameCap(FRAME_MESSAGE))));
      hostile.push(conn);
    }
    await w.until(() => w.server.stats().streams === 3);
    const honest = await w.connectAs(BOB);
    const receipt = await w.settle(
      w.client.sendMessage(honest, envelope("ok", Uint8Array.of(1))),
      5_000,
    );
    assert.deepEqual(receipt, { status: "stored", seq: 1, detail: "" });
    assert.equal(w.sink.stored[0]!.peer.keyHex, BOB.keyHex);
    // Announcing is free: nothing is charged before bytes arrive.
    assert.equal(w.server.stats().bufferedBytes, 0);
    for (const conn of hostile) conn.reset("done");
  }, { service: { stallMs: 60_000 } });
});

Deno.test("a message body that makes no progress for the stall timeout resets its stream and releases its bytes", async () => {
  const stallMs = 10_000;
  await withWorld(async (w) => {
    const conn = await w.connect();
    const length = 256 * 1024;
    await w.settle(conn.write(encodeFrameHeader(FRAME_MESSAGE, length)));
    await w.settle(conn.write(new Uint8Array(length / 2)));
    // Charged as the bytes arrive, not as declared.
    await w.until(() => w.server.stats().bufferedBytes === length / 2);
    const since = w.link.clock.now;
    const error = await w.settle(conn.read().then(() => null, (e) => e), 3 * stallMs);
    assert.ok(error instanceof StreamError, String(error));
    assert.match(error.reason, /^stalled: /);
    assert.ok(w.link.clock.now - since >= stallMs, `reset after ${w.link.clock.now - since} ms`);
    await w.until(() => w.server.stats().streams === 0);
    assert.equal(w.server.stats().bufferedBytes, 0);
    assert.equal(w.server.refused.stalled, 1);
    assert.equal(w.sink.calls, 0);
  }, { service: { stallMs } });
});

Deno.test("a peer owing its cap of receipts across two streams stops being read while another peer's message is stored", async () => {
  const limits = { sendBuffer: 16 * 1024, receiveBuffer: 16 * 1024, reserve: 16 * 1024 };
  await withWorld(async (w) => {
    const writers = [await w.connect(), await w.connect()].map(async (conn, s) => {
      for (let i = 0; i < 5_000; i++) {
        const e = envelope(`s${s}-${i}`, Uint8Array.of(i & 255));
        await conn.write(encodeFrame({ kind: "message", envelope: e }));
      }
    });
    for (const p of writers) p.catch(() => {});
    await w.link.advance(30_000);
    const stats = w.server.stats();
    assert.ok(stats.pendingReceipts <= 12, `pending ${stats.pendingReceipts}`);
    assert.ok(stats.throttled > 0, "the second stream waited for the peer's cap");
    const honest = await w.connectAs(BOB);
    const receipt = await w.settle(
      w.client.sendMessage(honest, envelope("ok", Uint8Array.of(1))),
      5_000,
    );
    assert.equal(receipt.status, "stored");
    for (const conn of w.accepted) conn.reset("done");
  }, { link: { limits }, service: { maxPipelined: 8, peerReceipts: 12 } });
});

Deno.test("deliver() carries every message to a peer on one reused stream", async () => {
  await withWorld(async (w) => {
    let opens = 0;
    const client = new MessagesClient({
      open: () => {
        opens++;
        return w.link.a.connect(PORT_MESSAGES);
      },
    });
    const delivery = { reach: () => Promise.resolve(ALICE), timeoutMs: 60_000 };
    for (let i = 0; i < 3; i++) {
      const { peer, receipt } = await w.settle(
        client.deliver(envelope(`r${i}`, Uint8Array.of(i)), delivery),
      );
      assert.equal(peer.keyHex, ALICE.keyHex);
      assert.deepEqual(receipt, { status: "stored", seq: i + 1, detail: "" });
    }
    assert.equal(opens, 1);
    assert.equal(w.accepted.length, 1);
  });
});

Deno.test("deliver() replaces a broken stream once, reaching the peer again first, and the message is stored once", async () => {
  await withWorld(async (w) => {
    let opens = 0;
    let reaches = 0;
    const client = new MessagesClient({
      open: async () => {
        opens++;
        const conn = await w.link.a.connect(PORT_MESSAGES);
        if (opens === 1) conn.reset("broken on purpose");
        return conn;
      },
    });
    const { receipt } = await w.settle(client.deliver(envelope("once", Uint8Array.of(1)), {
      reach: () => {
        reaches++;
        return Promise.resolve(ALICE);
      },
      timeoutMs: 60_000,
    }));
    assert.equal(receipt.status, "stored");
    assert.equal(opens, 2);
    assert.equal(reaches, 2);
    assert.equal(w.sink.stored.length, 1);
  });
});

Deno.test("a body waiting for its peer's share is reset by the stall timeout at once, releasing its bytes", async () => {
  const stallMs = 10_000;
  const cap = frameCap(FRAME_MESSAGE);
  let unblock!: () => void;
  const blocked = new Promise<void>((r) => unblock = r);
  // Stores never finish until the end: the first message keeps its bytes charged.
  const sink: MessageSink = {
    store: () => blocked.then(() => ({ seq: 1, duplicate: false })),
  };
  await withWorld(async (w) => {
    const first = await w.connect();
    const held = w.client.sendMessage(first, envelope("big", new Uint8Array(MAX_STREAM_MESSAGE)));
    held.catch(() => {});
    await w.until(() => w.server.stats().pendingReceipts === 1, 600_000);
    const firstBytes = w.server.stats().bufferedBytes;
    // A second body pushes the peer past its share and waits for it.
    const second = await w.connect();
    const room = cap - firstBytes;
    await w.settle(second.write(encodeFrameHeader(FRAME_MESSAGE, room + 64 * 1024)));
    void second.write(new Uint8Array(room + 32 * 1024)).catch(() => {});
    await w.until(() => w.server.stats().bufferedBytes >= cap);
    const error = await w.settle(second.read().then(() => null, (e) => e), 3 * stallMs);
    assert.ok(error instanceof StreamError, String(error));
    assert.match(error.reason, /^stalled: /);
    await w.until(() => w.server.stats().streams === 1);
    assert.equal(w.server.stats().bufferedBytes, firstBytes);
    unblock();
    await w.settle(held);
  }, {
    link: { limits: { sendBuffer: 4 * MIB, receiveBuffer: 4 * MIB } },
    service: { sink, stallMs, peerBuffer: cap, totalBuffer: cap },
  });
});
