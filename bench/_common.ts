/**
 * What every measurement of `deno task bench` shares: run-wide settings, small
 * helpers, the plain-UDP child processes, the daemons A, B and C, and the
 * control API client.
 *
 * @module
 */

import { decodeIdentityFile, type Identity } from "../src/identity/identity.ts";
import { makeHome, TestNode, trustEntry } from "../tests/_daemon_harness.ts";
import type { UdpChildMode } from "./_udp_child.ts";

/** Bytes in a MiB. */
export const MIB = 1024 * 1024;

/** Send requests in flight by default (`--msg-inflight`). */
export const MESSAGE_INFLIGHT = 64;

/** Daemon B's hostname, by which A names it. */
export const NAME_B = "bench-b";

const BENCH_IDENTITIES = new URL("../tests/fixtures/bench_identities.json", import.meta.url);

const UDP_CHILD = new URL("./_udp_child.ts", import.meta.url).pathname;

/** Run-wide settings from the command line (`--profile`, `--msg-inflight`). */
export const settings: { profileDir: string | undefined; messageInflight: number } = {
  /** Where daemons write CPU profiles (`--profile DIR`); unset: daemons run as `daemon start`. */
  profileDir: undefined,
  /** Send requests in flight (`--msg-inflight`). */
  messageInflight: MESSAGE_INFLIGHT,
};

const started = performance.now();

/** Says on stderr how far the bench is, with the seconds since it started. */
export function progress(message: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  console.error(`[bench ${s}s] ${message}`);
}

/** A full GC when the bench runs with --expose-gc (deno task bench does), so heap figures hold no garbage. */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** `v` rounded to `digits` decimals. */
export function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** The q-quantile (0..1) of `values` by the nearest-rank method; null when empty. */
export function percentile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = values.toSorted((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Megabytes (10^6 bytes) per second. */
export function mbps(bytes: number, ms: number): number {
  return round(bytes / 1e6 / (ms / 1000));
}

/** VmRSS of a process in KiB (Linux), or null. */
export function rssKb(pid: number): Promise<number | null> {
  return statusKb(pid, "VmRSS");
}

/** A `kB` field of a process's /proc status (Linux), or null. */
async function statusKb(pid: number, field: string): Promise<number | null> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Number of threads of a process (Linux), or null. */
async function threadCount(pid: number): Promise<number | null> {
  try {
    const m = /^Threads:\s+(\d+)/m.exec(await Deno.readTextFile(`/proc/${pid}/status`));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** User + system CPU time of a process in ms (Linux), or null. */
export async function cpuMs(pid: number | "self"): Promise<number | null> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the command name (which may contain spaces) start at ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks * 10; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/** Closes a UDP socket that may be closed already. */
export function closeQuietly(conn: Deno.DatagramConn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs `job(i)` for i in [0, n) with at most `width` running at once. */
export async function pool(
  n: number,
  width: number,
  job: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(width, n) }, async () => {
    while (next < n) await job(next++);
  });
  await Promise.all(lanes);
}

/** Everything to undo at the end (or on Ctrl-C), last first. */
export const cleanups: (() => Promise<void>)[] = [];

/** Runs every cleanup registered, newest first, each once. */
export async function cleanup(): Promise<void> {
  while (cleanups.length > 0) {
    const f = cleanups.pop()!;
    try {
      await f();
    } catch (e) {
      // One failed step (even a synchronous throw) never skips the rest.
      progress(`cleanup failed: ${(e as Error).message}`);
    }
  }
}

interface Child {
  process: Deno.ChildProcess;
  port: number;
  /** The next stdout line. */
  line(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a plain-UDP sink or echo in its own process; resolves once it told its port. */
export async function spawnUdpChild(mode: UdpChildMode): Promise<Child> {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--unstable-net", UDP_CHILD, mode],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const line = async (): Promise<string> => {
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const l = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        return l;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`UDP ${mode} child ended its output`);
      buffered += value;
    }
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await reader.cancel().catch(() => {});
    await process.status;
  };
  cleanups.push(stop);
  const port = Number(await line());
  return { process, port, line, stop };
}

interface Daemons {
  a: TestNode;
  b: TestNode;
  c: TestNode;
}

async function startDaemon(
  index: number,
  hostname: string,
  trust: number[],
  trustHostnames: Record<number, string> = {},
  args: string[] = [],
  runtimeFlags?: string[],
): Promise<TestNode> {
  const home = await makeHome({
    identity: index,
    trust: trust.map((i) => trustEntry(i, { mutual: true, hostname: trustHostnames[i] ?? null })),
  });
  const profile = settings.profileDir === undefined
    ? undefined
    : { dir: settings.profileDir, name: `daemon-${hostname}.cpuprofile` };
  const node = new TestNode(home, {
    identity: index,
    hostname,
    args,
    ...(profile && { profile }),
    ...(runtimeFlags && { runtimeFlags }),
  });
  cleanups.push(() => node.stop());
  await node.start();
  return node;
}

async function startDaemons(): Promise<Daemons> {
  progress("starting daemons B, C, then A");
  const b = await startDaemon(1, NAME_B, [0, 2]);
  // C under V8's inspector on loopback, so that the per-session memory is
  // read after a full GC (collectGarbage) and garbage does not count.
  const inspector = freePort();
  const c = await startDaemon(3, "bench-c", [], {}, [], [`--inspect=127.0.0.1:${inspector}`]);
  inspectorPorts.set(c, inspector);
  const a = await startDaemon(0, "bench-a", [1], { 1: NAME_B }, [
    "--peer",
    `${NAME_B}=${b.listen}`,
  ]);
  return { a, b, c };
}

/** The inspector port of each daemon started under `--inspect`. */
const inspectorPorts = new Map<TestNode, number>();

/** A TCP port free on 127.0.0.1 now. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Sends one inspector method (with its params) and resolves with its result. */
type InspectorCall = (method: string, params?: Record<string, unknown>) => Promise<Json>;

/**
 * Runs `use` with a session on `node`'s V8 inspector; null when the daemon
 * runs without one. Every call times out after 60 s.
 */
async function withInspector<T>(
  node: TestNode,
  use: (call: InspectorCall) => Promise<T>,
): Promise<T | null> {
  const port = inspectorPorts.get(node);
  if (port === undefined) return null;
  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl);
  try {
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    let id = 0;
    const call: InspectorCall = (method, params = {}) =>
      new Promise((resolve, reject) => {
        const mine = ++id;
        const timer = setTimeout(() => reject(new Error(`inspector: ${method} timed out`)), 60_000);
        ws.onmessage = (e) => {
          const answer = JSON.parse(e.data);
          if (answer.id !== mine) return;
          clearTimeout(timer);
          if (answer.error) reject(new Error(`inspector: ${method}: ${answer.error.message}`));
          else resolve(answer.result);
        };
        ws.send(JSON.stringify({ id: mine, method, params }));
      });
    return await use(call);
  } finally {
    ws.close();
  }
}

/**
 * Runs V8's full garbage collection twice in `node` through its inspector
 * (HeapProfiler.collectGarbage); false when it runs without one.
 */
export async function collectGarbageIn(node: TestNode): Promise<boolean> {
  const done = await withInspector(node, async (call) => {
    await call("HeapProfiler.enable");
    await call("HeapProfiler.collectGarbage");
    await call("HeapProfiler.collectGarbage");
    await call("HeapProfiler.disable");
    return true;
  });
  return done ?? false;
}

/**
 * A CPU profile of `node` over what `during` does, through its inspector:
 * one phase of a measurement on its own (`--cpu-prof` profiles a whole
 * process). Null when it runs without an inspector.
 */
export async function profileIn(node: TestNode, during: () => Promise<void>): Promise<Json | null> {
  return await withInspector(node, async (call) => {
    await call("Profiler.enable");
    // V8's default: one sample every 1 ms (as --cpu-prof).
    await call("Profiler.setSamplingInterval", { interval: 1_000 });
    await call("Profiler.start");
    const stop = async () => {
      const { profile } = await call("Profiler.stop");
      await call("Profiler.disable");
      return profile;
    };
    try {
      await during();
    } catch (e) {
      await stop().catch(() => {});
      throw e;
    }
    return await stop();
  });
}

/** A JSON answer, read loosely. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** Calls a node's control API (token from control.json) on a direct connection. */
export class Api {
  #url: string;
  #token: string;
  #client: Deno.HttpClient;

  private constructor(url: string, token: string, socket: string | undefined) {
    this.#url = url;
    this.#token = token;
    const u = new URL(url);
    // Direct to loopback, never through an HTTP proxy from the environment.
    this.#client = Deno.createHttpClient({
      proxy: socket === undefined
        ? { transport: "tcp", hostname: u.hostname, port: Number(u.port) }
        : { transport: "unix", path: socket },
    });
  }

  /**
   * A client of `node`'s API over its Unix socket, as the CLI calls it, or
   * with `via: "tcp"` over its TCP port (through the connection gate).
   */
  static async of(node: TestNode, via: "socket" | "tcp" = "socket"): Promise<Api> {
    const control = await node.controlFile() as { url: string; token: string; socket?: string };
    const api = new Api(control.url, control.token, via === "tcp" ? undefined : control.socket);
    cleanups.push(() => Promise.resolve(api.close()));
    return api;
  }

  async call(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: Json }> {
    const res = await fetch(new URL(path, this.#url), {
      method,
      headers: { authorization: `Bearer ${this.#token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      client: this.#client,
    });
    return { status: res.status, json: await res.json() };
  }

  close(): void {
    this.#client.close();
  }
}

/** Figures of one measurement, by name. */
export type Figures = Record<string, unknown>;

/** What the measurements share in one run. */
export interface Context {
  datagramBytes: number;
  volumeBytes: number;
  daemons: Daemons | undefined;
  notes: Record<string, string>;
  details: Record<string, unknown>;
}

/** Daemons A, B and C, started at the first measurement that needs them. */
export async function daemonsOf(ctx: Context): Promise<Daemons> {
  ctx.daemons ??= await startDaemons();
  return ctx.daemons;
}

/** The benchmark identities, or why there are too few. */
export async function loadBenchIdentities(): Promise<Identity[] | string> {
  let files: unknown[];
  try {
    files = JSON.parse(await Deno.readTextFile(BENCH_IDENTITIES));
  } catch (e) {
    return `cannot read ${BENCH_IDENTITIES.pathname}: ${(e as Error).message}`;
  }
  if (!Array.isArray(files) || files.length < MIN_BENCH_IDENTITIES) {
    return `${BENCH_IDENTITIES.pathname} holds ${
      Array.isArray(files) ? files.length : 0
    } identities; at least ${MIN_BENCH_IDENTITIES} are needed`;
  }
  return files.map((f) => decodeIdentityFile(JSON.stringify(f)));
}

/** A daemon's memory, sessions and threads at one moment. */
export interface Memory {
  after_ms: number;
  /** Whether a full GC ran (through the inspector) just before the reading. */
  after_gc: boolean;
  rss_kb: number | null;
  /** RSS of anonymous memory (heaps, arenas) and of mapped files (the runtime binary), Linux. */
  rss_anon_kb: number | null;
  rss_file_kb: number | null;
  /** V8 heap in use, as the daemon's `GET /v1/info` `memory` says (KiB). */
  heap_used_kb: number;
  /** V8 heap reserved, and memory outside it that JS objects hold (ArrayBuffers), KiB. */
  heap_total_kb: number;
  external_kb: number;
  threads: number | null;
  sessions: number;
}

/**
 * A node's RSS, heap, threads and sessions, labelled `afterMs` after the last
 * handshake; with `gc`, read after a full GC when the node runs under the
 * inspector (and the allocator had half a second to give pages back).
 */
export async function memoryOf(
  node: TestNode,
  api: Api,
  afterMs: number,
  gc = false,
): Promise<Memory> {
  const afterGc = gc && await collectGarbageIn(node);
  if (afterGc) await sleep(500);
  const info = (await api.call("GET", "/v1/info")).json.data;
  return {
    after_ms: afterMs,
    after_gc: afterGc,
    rss_kb: await rssKb(node.pid),
    rss_anon_kb: await statusKb(node.pid, "RssAnon"),
    rss_file_kb: await statusKb(node.pid, "RssFile"),
    heap_used_kb: Math.round(info.memory.heap_used / 1024),
    heap_total_kb: Math.round(info.memory.heap_total / 1024),
    external_kb: Math.round(info.memory.external / 1024),
    threads: await threadCount(node.pid),
    sessions: info.sessions as number,
  };
}

/** Readings at each of RSS_SETTLE_MS after now. */
export async function settledMemory(node: TestNode, api: Api): Promise<Memory[]> {
  const out: Memory[] = [];
  let waited = 0;
  for (const at of RSS_SETTLE_MS) {
    await sleep(at - waited);
    waited = at;
    out.push(await memoryOf(node, api, at));
    progress(`handshakes: memory ${JSON.stringify(out.at(-1))}`);
  }
  if (inspectorPorts.has(node)) {
    out.push(await memoryOf(node, api, waited, true));
    progress(`handshakes: memory after a full GC ${JSON.stringify(out.at(-1))}`);
  }
  return out;
}

const MIN_BENCH_IDENTITIES = 1000;

/** When the per-session memory is read, after the last handshake (ms). */
export const RSS_SETTLE_MS = [2_000, 12_000];
