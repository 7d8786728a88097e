/**
 * Fault tests: two real daemons with a deterministic lossy UDP proxy
 * between them (loss, reordering, duplication, corruption), a peer that
 * never reads, many streams at once, and a request nobody answers.
 *
 * Both daemons trust each other from the start (pre-seeded trust files), so
 * each test spends its time on its fault, not on the trust flow (which
 * `lossy_proxy_test.ts` runs through the proxy). Stream RTO timers are
 * shortened in `config.json` so losses are recovered in tens of ms; nothing
 * here asserts a timing.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { StreamSocket } from "../src/control/stream_client.ts";
import { type LinkConfig, LossyProxy } from "./_lossy_proxy.ts";
import {
  endpointOf,
  okOf,
  PAIR_A_NAME,
  PAIR_B_NAME,
  spawnPilot,
  startNode,
  stopAll,
  type TestNode,
  trustEntry,
  waitFor,
} from "./_daemon_harness.ts";
import { tempDir } from "./_tmp.ts";

const MiB = 1024 * 1024;

/** Shorter stream timers (keys of `config.json` "timers"). */
const FAST_STREAMS = { timers: { stream_min_rto_ms: 20, stream_initial_rto_ms: 200 } };

/** Two daemons that trust each other; A reaches B only through the proxy. */
interface LossyPair extends AsyncDisposable {
  a: TestNode;
  b: TestNode;
  proxy: LossyProxy;
}

/**
 * Starts B, a {@linkcode LossyProxy} in front of it with `faults` both ways,
 * and A with `--peer PAIR_B_NAME=<proxy>`. `await using pair = …` stops both
 * daemons and then the proxy; on failure nothing is left running.
 */
async function startLossyPair(seed: number, faults: Partial<LinkConfig>): Promise<LossyPair> {
  // Until the pair is handed over, the stack undoes whatever was started.
  await using stack = new AsyncDisposableStack();
  const b = stack.use(
    await startNode({
      identity: 1,
      hostname: PAIR_B_NAME,
      trust: [trustEntry(0, { hostname: PAIR_A_NAME, mutual: true })],
      config: FAST_STREAMS,
    }),
  );
  const proxy = stack.adopt(
    new LossyProxy({ target: endpointOf(b.listen), seed, both: { holdMs: 20, ...faults } }),
    (p) => p.close(),
  );
  const a = stack.use(
    await startNode({
      identity: 0,
      hostname: PAIR_A_NAME,
      trust: [trustEntry(1, { hostname: PAIR_B_NAME, mutual: true })],
      config: FAST_STREAMS,
      args: ["--peer", `${PAIR_B_NAME}=127.0.0.1:${proxy.listen.port}`],
    }),
  );
  stack.move();
  return {
    a,
    b,
    proxy,
    async [Symbol.asyncDispose]() {
      await stopAll(a, b);
      await proxy.close();
    },
  };
}

// Files.

/** Writes `size` random bytes to a new file in `dir`; returns its path and SHA-256. */
async function randomFile(dir: string, size: number): Promise<{ path: string; sha256: string }> {
  const path = join(dir, `random-${size}.bin`);
  const hash = createHash("sha256");
  using file = await Deno.open(path, { write: true, createNew: true });
  const chunk = new Uint8Array(MiB);
  for (let left = size; left > 0; left -= chunk.length) {
    const part = chunk.subarray(0, Math.min(left, chunk.length));
    for (let o = 0; o < part.length; o += 65_536) {
      crypto.getRandomValues(part.subarray(o, o + 65_536));
    }
    hash.update(part);
    for (let w = 0; w < part.length;) w += await file.write(part.subarray(w));
  }
  return { path, sha256: hash.digest("hex") };
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Sends a random file from A to B, then checks B's listing and the stored bytes. */
async function sendFileAndVerify(pair: LossyPair, size: number): Promise<void> {
  await using dir = await tempDir("pilot-faults-");
  const file = await randomFile(dir.path, size);
  const sent = okOf(
    await pair.a.pilot("send-file", PAIR_B_NAME, file.path, "--timeout", "150s", "--json"),
    "send-file",
  );
  assert.equal(sent.sha256, file.sha256);
  assert.equal(sent.bytes, size);
  assert.equal(sent.receipt.status, "stored");
  const listed = okOf(await pair.b.pilot("received", "--json"), "received").files;
  assert.equal(listed.length, 1);
  assert.equal(listed[0].sha256, file.sha256);
  assert.equal(listed[0].bytes, size);
  assert.equal(await sha256OfFile(listed[0].path), file.sha256);
}

// Process and connection observations.

/** Resident set size of a process (bytes), from /proc (Linux). */
async function rssOf(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`No VmRSS for pid ${pid}`);
  return Number(kb) * 1024;
}

/** The daemon's pid, as its control file says. */
async function daemonPid(node: TestNode): Promise<number> {
  return (await node.controlFile()).pid;
}

interface ConnectionView {
  local_port: number;
  remote_port: number;
  state: string;
  bytes_in_flight: number;
  sent: number;
  received: number;
}

/** `pilot connections --json` entries matching `pred`. */
async function connectionsOf(
  node: TestNode,
  pred: (c: ConnectionView) => boolean,
): Promise<ConnectionView[]> {
  const list: ConnectionView[] = okOf(await node.pilot("connections", "--json"), "connections")
    .connections;
  return list.filter(pred);
}

// Stream clients of the control API (`GET /v1/stream`), lighter than a CLI process each.

/** A direct HTTP client to a node's control API (never through a proxy from the environment). */
async function controlClient(node: TestNode) {
  const control = await node.controlFile();
  const url = new URL(control.url);
  const http = Deno.createHttpClient({
    proxy: { transport: "tcp", hostname: url.hostname, port: Number(url.port) },
  });
  return { control, http };
}

/** Opens a stream from `node` to `peer`:`port`, retrying while nothing listens there yet. */
async function openStream(
  client: { control: { url: string; token: string }; http: Deno.HttpClient },
  peer: string,
  port: number,
): Promise<StreamSocket> {
  const url = new URL("/v1/stream", client.control.url.replace(/^http/, "ws"));
  url.searchParams.set("peer", peer);
  url.searchParams.set("port", String(port));
  url.searchParams.set("timeout_ms", "30000");
  return await waitFor(`a listener on port ${port}`, async () => {
    try {
      return await StreamSocket.open(url, client.control.token, client.http);
    } catch (e) {
      // Refused before anything was accepted: the listener is not up yet.
      if ((e as { code?: string }).code === "not_found") return undefined;
      throw e;
    }
  }, 30_000);
}

/** Reads a stream to its end; returns the bytes and how it ended. */
async function readAll(s: StreamSocket): Promise<{ bytes: Uint8Array; code: number }> {
  const chunks: Uint8Array[] = [];
  for await (const c of s.data()) chunks.push(c);
  const end = await s.ended;
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    bytes.set(c, o);
    o += c.length;
  }
  return { bytes, code: end.code };
}

/**
 * A control-API client on B that accepts a stream on `port` and then never
 * reads its socket again: a raw WebSocket upgrade over TCP, so nothing in
 * this process drains what the daemon sends (a browser-style WebSocket
 * would read everything eagerly).
 */
async function silentListener(node: TestNode, port: number): Promise<Deno.TcpConn> {
  const control = await node.controlFile();
  const url = new URL(control.url);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  try {
    const request = [
      `GET /v1/listen?port=${port}&timeout_ms=120000 HTTP/1.1`,
      `Host: ${url.host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${crypto.getRandomValues(new Uint8Array(16)).toBase64()}`,
      "Sec-WebSocket-Version: 13",
      `Authorization: Bearer ${control.token}`,
      "",
      "",
    ].join("\r\n");
    await conn.write(new TextEncoder().encode(request));
    // Read exactly the response head; the daemon sends nothing more until a stream arrives.
    let head = "";
    const one = new Uint8Array(1);
    while (!head.endsWith("\r\n\r\n")) {
      if ((await conn.read(one)) === null) throw new Error(`Upgrade refused: ${head}`);
      head += String.fromCharCode(one[0]!);
    }
    assert.match(head, /^HTTP\/1\.1 101 /, head);
    return conn;
  } catch (e) {
    conn.close();
    throw e;
  }
}

/** A `pilot connect PEER PORT` in pipe mode fed with up to `total` bytes, as fast as it takes them. */
interface Pipe {
  child: Deno.ChildProcess;
  /** Bytes the CLI has taken on its stdin so far. */
  written(): number;
  /** Kills the CLI and waits for it and the feeder. */
  kill(): Promise<void>;
}

/**
 * Starts `connect` from `a` to B's `port` and feeds it; retries while the
 * listener is not up yet (the CLI then exits at once with "no listener").
 */
async function startPipe(a: TestNode, port: number, total: number): Promise<Pipe> {
  for (let attempt = 0;; attempt++) {
    const child = spawnPilot(["connect", PAIR_B_NAME, String(port)], { home: a.home, stdin: true });
    let written = 0;
    const writer = child.stdin.getWriter();
    const feeding = (async () => {
      const chunk = new Uint8Array(256 * 1024).fill(0x61);
      try {
        while (written < total) {
          await writer.write(chunk);
          written += chunk.length;
        }
        await writer.close();
      } catch {
        // The CLI went away (killed, or refused): it takes no more.
      }
    })();
    let exited = false;
    const output = child.output().finally(() => exited = true);
    const up = await waitFor("the stream to open or the CLI to end", async () => {
      if (exited) return "ended";
      return (await connectionsOf(a, (c) => c.remote_port === port)).length > 0 && "up";
    }) === "up";
    const pipe: Pipe = {
      child,
      written: () => written,
      kill: async () => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
        await output;
        await feeding;
      },
    };
    if (up) return pipe;
    const out = await output;
    await feeding;
    const stderr = new TextDecoder().decode(out.stderr);
    if (!/listener|not_found|nothing listens/.test(stderr) || attempt >= 50) {
      throw new Error(`connect failed (exit ${out.code}): ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Waits until A's stream to `port` stops moving: two consecutive looks at
 * A's `sent` and B's `received` agree. Returns the last look.
 */
async function waitForStall(pair: LossyPair, port: number) {
  let last = "";
  return await waitFor("the stream to stall", async () => {
    const [sender] = await connectionsOf(pair.a, (c) => c.remote_port === port);
    const [receiver] = await connectionsOf(pair.b, (c) => c.local_port === port);
    if (sender === undefined || receiver === undefined) return undefined;
    const now = `${sender.sent}/${receiver.received}`;
    const stalled = now === last;
    last = now;
    return stalled ? { sender, receiver } : undefined;
  }, 60_000);
}

/** The pid a command wrote to `path`, if it got that far. */
async function readPid(path: string): Promise<number | undefined> {
  try {
    return Number((await Deno.readTextFile(path)).trim()) || undefined;
  } catch {
    return undefined;
  }
}

function killQuietly(pid: number): void {
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

/** Both daemons still answer, and a message still goes from A to B. */
async function assertStillServing(pair: LossyPair, data: string): Promise<void> {
  await pair.a.info();
  await pair.b.info();
  const sent = okOf(await pair.a.pilot("send", PAIR_B_NAME, "--data", data, "--json"), "send");
  assert.equal(sent.receipt.status, "stored");
}

Deno.test({
  name:
    "a 16 MiB file arrives with the right SHA-256 through a proxy that loses 10% and reorders, both ways",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using pair = await startLossyPair(1601, { loss: 0.1, reorder: 0.1, reorderDepth: 3 });
    await sendFileAndVerify(pair, 16 * MiB);
    // The faults really happened, both ways (a fixed seed decides them).
    const c = pair.proxy.counters;
    assert.ok(c.a_to_b.dropped > 0 && c.a_to_b.reordered > 0, JSON.stringify(c));
    assert.ok(c.b_to_a.dropped > 0 && c.b_to_a.reordered > 0, JSON.stringify(c));
  },
});

Deno.test({
  name:
    "corrupted datagrams are dropped by the AEAD and recovered by retransmission: an 8 MiB file arrives intact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using pair = await startLossyPair(2002, { corrupt: 0.08 });
    await sendFileAndVerify(pair, 8 * MiB);
    const c = pair.proxy.counters;
    assert.ok(c.a_to_b.corrupted > 0, JSON.stringify(c));
    const drops = (await pair.b.info()).drops as Record<string, number>;
    assert.ok((drops.auth ?? 0) > 0, `B's drops: ${JSON.stringify(drops)}`);
    await assertStillServing(pair, "after corruption");
  },
});

Deno.test({
  name:
    "a peer that never reads cannot grow either daemon's memory without bound, and both keep serving",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using pair = await startLossyPair(3003, {});
    const port = 9400;
    const total = 64 * MiB;
    // Run the stream path once, so memory the daemons keep after any
    // transfer is in the baseline, not counted as growth.
    okOf(await pair.a.pilot("bench", PAIR_B_NAME, "--size", "8", "--json"), "bench");
    // 8 MiB each way is churn at both ends: the memory settle ran minor GCs (each 4 MiB).
    for (const node of [pair.a, pair.b]) {
      const settle = okOf(await node.pilot("info", "--json"), "info").memory.settle;
      assert.ok(settle.minor_gcs >= 2, JSON.stringify(settle));
    }
    const pids = [await daemonPid(pair.a), await daemonPid(pair.b)];
    const before = await Promise.all(pids.map(rssOf));
    const silent = await silentListener(pair.b, port);
    let pipe: Pipe | undefined;
    try {
      pipe = await startPipe(pair.a, port, total);
      const { sender, receiver } = await waitForStall(pair, port);
      // Backpressure reached the writer: the CLI stopped taking its stdin.
      assert.ok(pipe.written() < total, `the CLI took all ${pipe.written()} bytes`);
      assert.ok(receiver.received < total, JSON.stringify(receiver));
      // No more in flight than B's receive window (1 MiB) allows.
      assert.ok(sender.bytes_in_flight <= MiB, JSON.stringify(sender));
      const after = await Promise.all(pids.map(rssOf));
      for (const [i, name] of ["A", "B"].entries()) {
        const growth = after[i]! - before[i]!;
        assert.ok(
          growth < 64 * MiB,
          `${name}'s daemon grew by ${(growth / MiB).toFixed(1)} MiB ` +
            `(${(before[i]! / MiB).toFixed(1)} -> ${(after[i]! / MiB).toFixed(1)} MiB)`,
        );
      }
      // The writer dies: its stream is reset and leaves both daemons.
      await pipe.kill();
      pipe = undefined;
      await waitFor(
        "the stream to leave both daemons",
        async () =>
          (await connectionsOf(pair.a, (c) => c.remote_port === port)).length === 0 &&
          (await connectionsOf(pair.b, (c) => c.local_port === port)).length === 0,
      );
      await assertStillServing(pair, "after the stall");
    } finally {
      await pipe?.kill();
      silent.close();
    }
  },
});

Deno.test({
  name: "a listen --exec whose command never reads holds back the sender instead of buffering",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using pair = await startLossyPair(3004, {});
    const port = 9401;
    const total = 64 * MiB;
    // The command records its pid, so the test can reap it: killing the
    // listen CLI does not end the commands it started.
    const pidFile = join(pair.b.home, "never-reads.pid");
    const listener = spawnPilot(
      [
        "listen",
        String(port),
        "--exec",
        `echo $$ > '${pidFile}'; exec sleep 60`,
        "--count",
        "1",
        "--timeout",
        "120s",
      ],
      { home: pair.b.home },
    );
    let pipe: Pipe | undefined;
    try {
      pipe = await startPipe(pair.a, port, total);
      const { receiver } = await waitForStall(pair, port);
      assert.ok(pipe.written() < total, `the CLI took all ${pipe.written()} bytes`);
      assert.ok(receiver.received < total / 2, JSON.stringify(receiver));
      await pipe.kill();
      pipe = undefined;
      await assertStillServing(pair, "after the stall");
    } finally {
      await pipe?.kill();
      // The command first, so the listen CLI (its parent) reaps it and ends.
      const pid = await readPid(pidFile);
      if (pid !== undefined) killQuietly(pid);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ended = await Promise.race([
        listener.status.then(() => true),
        new Promise<false>((r) => timer = setTimeout(() => r(false), 5_000)),
      ]);
      clearTimeout(timer);
      if (!ended) killQuietly(listener.pid);
      await listener.output();
    }
  },
});

Deno.test({
  name: "50 concurrent streams through a lossy proxy all deliver correct data to listen --exec",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const faults = { loss: 0.03, reorder: 0.05, reorderDepth: 3, duplicate: 0.03 };
    await using pair = await startLossyPair(5050, faults);
    const port = 9500;
    const n = 50;
    // A session first: concurrent first contact is the ignored test below.
    okOf(await pair.a.pilot("send", PAIR_B_NAME, "--data", "warm", "--json"), "send");
    const listener = spawnPilot(
      ["listen", String(port), "--exec", "tr a-z A-Z", "--count", String(n), "--json"],
      { home: pair.b.home },
    );
    const client = await controlClient(pair.a);
    const streams: StreamSocket[] = [];
    // The listen CLI reports each stream it accepts on stderr.
    const collect = async (from: ReadableStream<Uint8Array>, to: { text: string }) => {
      const decoder = new TextDecoder();
      for await (const chunk of from) to.text += decoder.decode(chunk, { stream: true });
    };
    const stdout = { text: "" };
    const stderr = { text: "" };
    const reading = Promise.all([
      collect(listener.stdout, stdout),
      collect(listener.stderr, stderr),
    ]);
    const accepted = () => stderr.text.match(/stream from /g)?.length ?? 0;
    try {
      // Waves of 10 keep the listen backlog (16) from overflowing: each
      // wave is open and accepted before the next; no stream finishes
      // until all 50 are open at once.
      const payloads = Array.from(
        { length: n },
        (_, i) => new TextEncoder().encode(`stream ${i} of ${n}; `.repeat(4000) + `end ${i}`),
      );
      for (let wave = 0; wave < n; wave += 10) {
        const opened = await Promise.all(
          payloads.slice(wave, wave + 10).map(async (p) => {
            const s = await openStream(client, PAIR_B_NAME, port);
            await s.write(p);
            return s;
          }),
        ).catch((e) => {
          throw new Error(`wave ${wave}: ${(e as Error).message}; listen stderr: ${stderr.text}`);
        });
        streams.push(...opened);
        await waitFor(`${wave + 10} streams accepted`, () => accepted() >= wave + 10, 30_000);
      }
      assert.equal(accepted(), n);
      for (const s of streams) s.fin();
      const replies = await Promise.all(streams.map(readAll));
      for (const [i, r] of replies.entries()) {
        const want = new TextDecoder().decode(payloads[i]).toUpperCase();
        assert.equal(new TextDecoder().decode(r.bytes), want, `stream ${i}`);
        assert.equal(r.code, 1000, `stream ${i} ended with ${r.code}`);
      }
      assert.equal((await listener.status).code, 0, stderr.text);
      await reading;
      assert.equal(JSON.parse(stdout.text).data.accepted, n);
      const c = pair.proxy.counters;
      // The link did interfere. Which faults hit depends on how many datagrams
      // the run made (coalescing varies with load), so any of them counts.
      const faults = (d: typeof c.a_to_b) => d.dropped + d.duplicated + d.reordered;
      assert.ok(faults(c.a_to_b) + faults(c.b_to_a) > 0, JSON.stringify(c));
    } finally {
      for (const s of streams) s.abort();
      try {
        listener.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await listener.status;
      await reading.catch(() => {});
      client.http.close();
    }
  },
});

Deno.test({
  name: "50 concurrent first streams to a peer with no session yet all open through a lossy link",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const faults = { loss: 0.03, reorder: 0.05, reorderDepth: 3, duplicate: 0.03 };
    await using pair = await startLossyPair(5051, faults);
    const client = await controlClient(pair.a);
    try {
      // To the built-in echo service (port 7): no listener backlog in the way.
      const replies = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        const payload = new TextEncoder().encode(`first contact ${i}`);
        const s = await openStream(client, PAIR_B_NAME, 7);
        await s.write(payload);
        s.fin();
        return { payload, reply: await readAll(s) };
      }));
      for (const { payload, reply } of replies) {
        assert.equal(reply.code, 1000);
        assert.deepEqual(reply.bytes, payload);
      }
    } finally {
      client.http.close();
    }
  },
});

Deno.test({
  name: "a call to a worker that never replies ends at its timeout with exit 5 and code timeout",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using pair = await startLossyPair(5005, { loss: 0.05, reorder: 0.05, reorderDepth: 2 });
    // The session and message stream first, so the whole timeout is spent waiting for the reply.
    okOf(
      await pair.a.pilot("send", PAIR_B_NAME, "--data", "warm", "--id", "warm-up", "--json"),
      "send",
    );
    const r = await pair.a.pilot(
      "call",
      PAIR_B_NAME,
      "--data",
      "decrypt job 1",
      "--id",
      "job-1",
      "--timeout",
      "3s",
      "--json",
    );
    assert.equal(r.code, 5, r.stdout + r.stderr);
    assert.equal(r.json?.status, "error");
    assert.equal(r.json.code, "timeout");
    assert.equal(r.json.retryable, true);
    // The request itself was delivered: it is the reply that never came.
    const inbox = okOf(await pair.b.pilot("inbox", "--json"), "inbox").messages;
    assert.deepEqual(inbox.map((m: { id: string }) => m.id), ["warm-up", "job-1"]);
    // A late reply still lands in A's inbox, and both daemons keep serving.
    okOf(await pair.b.pilot("reply", "job-1", "--data", "late", "--json"), "reply");
    const late = okOf(await pair.a.pilot("inbox", "--json"), "inbox").messages;
    assert.equal(late.length, 1);
    assert.equal(late[0].in_reply_to, "job-1");
    assert.equal(late[0].data, "late");
    await assertStillServing(pair, "after the timeout");
  },
});
