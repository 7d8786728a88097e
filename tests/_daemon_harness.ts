/**
 * Integration-test harness: real `pilot` processes in temporary homes on
 * loopback, a recording UDP relay to put between two of them, and an
 * in-process raw peer. Every helper that starts something returns a way to
 * stop it, and the objects are async-disposable: `await using pair = await
 * startPair()` (or `stop()`/`close()` in `finally`) reaps processes and temp
 * dirs even when an assertion fails.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import fixtures from "./fixtures/identities.json" with { type: "json" };
import { RUNTIME_V8_FLAGS } from "../src/constants.ts";
import type { Endpoint } from "../src/discovery/endpoint.ts";
import { isHomeLocked } from "../src/daemon/home.ts";
import type { TrustEntry } from "../src/daemon/trust_store.ts";
import { decodeIdentityFile, type Identity } from "../src/identity/identity.ts";
import { localNodeIdentity } from "../src/session/local_identity.ts";
import { SessionManager } from "../src/session/manager.ts";
import { withTimeout } from "../src/with_timeout.ts";
import type { PortPacket } from "../src/wire/inner.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const MAIN = join(ROOT, "main.ts");
const CONFIG = join(ROOT, "deno.json");

/** One committed test identity, as stored in an identity file. */
export type FixtureIdentity = (typeof fixtures)[number];

/** The committed test identities (`tests/fixtures/identities.json`). */
export const FIXTURES: readonly FixtureIdentity[] = fixtures;

/** Returns fixture identity `index`, or throws when there is no such fixture. */
export function fixture(index: number): FixtureIdentity {
  const f = FIXTURES[index];
  if (f === undefined) {
    throw new RangeError(`No fixture identity ${index}: there are ${FIXTURES.length}`);
  }
  return f;
}

/** A trust-file entry for fixture identity `who` (an index) or another identity, at `endpoint` if given. */
export function trustEntry(
  who: number | { public_key: string; address: string },
  options: { hostname?: string | null; mutual?: boolean; endpoint?: string } = {},
): TrustEntry {
  const f = typeof who === "number" ? fixture(who) : who;
  return {
    public_key: f.public_key,
    address: f.address,
    hostname: options.hostname ?? null,
    since: new Date().toISOString(),
    mutual: options.mutual ?? false,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
  };
}

/** What one `pilot` run printed and returned. */
export interface PilotResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
  /** Standard output parsed as JSON, or undefined when it is not JSON. */
  // deno-lint-ignore no-explicit-any
  json: any;
}

// The tests decide every input; a developer's PILOT_* settings must not leak in.
function childEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const k of Object.keys(env)) if (k.startsWith("PILOT_")) delete env[k];
  return env;
}

/** Runs `pilot ARGS` (with `--home HOME` first when given) and waits for it to exit. */
export async function runPilot(
  args: string[],
  options: { home?: string } = {},
): Promise<PilotResult> {
  const home = options.home === undefined ? [] : ["--home", options.home];
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--config", CONFIG, MAIN, ...home, ...args],
    clearEnv: true,
    env: childEnv(),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return pilotResultOf(out);
}

/** What a finished `pilot` process printed and returned, its stdout parsed when it is JSON. */
export function pilotResultOf(out: Deno.CommandOutput): PilotResult {
  const stdout = new TextDecoder().decode(out.stdout);
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { code: out.code, stdout, stderr: new TextDecoder().decode(out.stderr), json };
}

/** What to put in a new home. */
export interface HomeOptions {
  /** Fixture identity to install (default 0), or null for none (the daemon then creates one). */
  identity?: number | null;
  /** Exact identity-file text instead of a fixture (for corrupt-file tests). */
  identityText?: string;
  /** Mode of the identity file (default 0600). */
  identityMode?: number;
  /** Entries of `trust.json` (none: no file). */
  trust?: TrustEntry[];
  /** Contents of `config.json` (none: no file). */
  config?: Record<string, unknown>;
}

/** Creates a private temporary home (`pilot-test-*`, mode 0700) with the given files. */
export async function makeHome(options: HomeOptions = {}): Promise<string> {
  const home = await Deno.makeTempDir({ prefix: "pilot-test-" });
  try {
    await Deno.chmod(home, 0o700);
    const index = options.identity === undefined ? 0 : options.identity;
    const text = options.identityText ??
      (index === null ? undefined : JSON.stringify(fixture(index)));
    if (text !== undefined) {
      await writePrivate(join(home, "identity.json"), text, options.identityMode ?? 0o600);
    }
    if (options.trust !== undefined) {
      const body = JSON.stringify({ version: 1, trusted: options.trust });
      await writePrivate(join(home, "trust.json"), body, 0o600);
    }
    if (options.config !== undefined) {
      await writePrivate(join(home, "config.json"), JSON.stringify(options.config), 0o600);
    }
  } catch (e) {
    await Deno.remove(home, { recursive: true }).catch(() => {});
    throw e;
  }
  return home;
}

async function writePrivate(path: string, text: string, mode: number): Promise<void> {
  await Deno.writeTextFile(path, text, { mode });
  // The umask may have cleared bits of `mode`; set exactly what the test asked for.
  await Deno.chmod(path, mode);
}

/** A UDP port free right now on loopback (for a daemon that must come back on the same port). */
export function freeUdpPort(): number {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (s.addr as Deno.NetAddr).port;
  s.close();
  return port;
}

/** Kills a process hard (`kill -9`) and waits until it is gone. */
export async function kill9(pid: number): Promise<void> {
  Deno.kill(pid, "SIGKILL");
  await waitFor(`pid ${pid} to exit`, () => {
    try {
      Deno.kill(pid, "SIGCONT");
      return Promise.resolve(false);
    } catch {
      return Promise.resolve(true);
    }
  }, 10_000);
}

/**
 * A (fixture 0, hostname {@linkcode PAIR_A_NAME}) and B (fixture 1,
 * {@linkcode PAIR_B_NAME}) trusting each other from their trust files, each
 * on a fixed UDP port and naming the other with `--peer`, so either can come
 * back after a restart (or a kill -9) where the other looks for it. Started;
 * on failure nothing is left running.
 */
export async function trustedPair(): Promise<{ a: TestNode; b: TestNode }> {
  const [aPort, bPort] = [freeUdpPort(), freeUdpPort()];
  const a = new TestNode(
    await makeHome({
      identity: 0,
      trust: [trustEntry(1, { mutual: true, hostname: PAIR_B_NAME })],
    }),
    {
      identity: 0,
      hostname: PAIR_A_NAME,
      args: ["--listen", `127.0.0.1:${aPort}`, "--peer", `${PAIR_B_NAME}=127.0.0.1:${bPort}`],
    },
  );
  const b = new TestNode(
    await makeHome({
      identity: 1,
      trust: [trustEntry(0, { mutual: true, hostname: PAIR_A_NAME })],
    }),
    {
      identity: 1,
      hostname: PAIR_B_NAME,
      args: ["--listen", `127.0.0.1:${bPort}`, "--peer", `${PAIR_A_NAME}=127.0.0.1:${aPort}`],
    },
  );
  try {
    await a.start();
    await b.start();
  } catch (e) {
    await stopAll(a, b);
    throw e;
  }
  return { a, b };
}

/** Options of {@linkcode startNode}. */
export interface NodeOptions extends HomeOptions {
  /** `--hostname` for the daemon. */
  hostname?: string;
  /** More `daemon start` arguments. */
  args?: string[];
  /**
   * Runs the daemon in the foreground under V8's `--cpu-prof`, writing
   * `DIR/NAME` when it exits cleanly (on `stop()`), instead of `daemon start`.
   */
  profile?: { dir: string; name: string };
  /**
   * Deno flags for the daemon (e.g. `--inspect=127.0.0.1:PORT`): it then
   * runs in the foreground as with `profile`, instead of `daemon start`.
   */
  runtimeFlags?: string[];
}

/** A node's identity as the tests compare it. */
export interface NodeIdentity {
  /** Text address. */
  address: string;
  /** Ed25519 public key, hex. */
  publicKey: string;
  /** Fingerprint. */
  fingerprint: string;
}

/** A background daemon in its own temporary home. */
export class TestNode {
  /** The home directory. */
  readonly home: string;
  /** The fixture identity installed, or null when the daemon made its own. */
  readonly identity: NodeIdentity | null;
  /** UDP endpoint the daemon listens on (`127.0.0.1:PORT`), set by {@linkcode TestNode.start}. */
  listen = "";
  /** Process id of the current daemon. */
  pid = 0;
  #options: NodeOptions;
  #pids = new Set<number>();

  /** Wraps a home made by {@linkcode makeHome}; call `start()` to run the daemon. */
  constructor(home: string, options: NodeOptions = {}) {
    this.home = home;
    this.#options = options;
    const index = options.identity === undefined ? 0 : options.identity;
    const f = options.identityText === undefined && index !== null ? fixture(index) : null;
    this.identity = f === null
      ? null
      : { address: f.address, publicKey: f.public_key, fingerprint: f.fingerprint };
  }

  /** Runs `pilot --home HOME ARGS`. */
  pilot(...args: string[]): Promise<PilotResult> {
    return runPilot(args, { home: this.home });
  }

  /**
   * A daemon of this home run in the foreground (`start()` with runtime
   * flags, or one handed over by {@linkcode TestNode.waitForExitOf}): it may
   * write what its flags ask for, such as a CPU profile, only as it exits
   * cleanly, so stop() waits for it before anything is killed.
   */
  #foreground: Deno.ChildProcess | undefined;

  /** `pilot daemon start` on an OS-chosen loopback port; throws when it fails. */
  async start(): Promise<PilotResult> {
    const { profile, runtimeFlags } = this.#options;
    if (profile !== undefined || runtimeFlags !== undefined) {
      return await this.#startForeground([
        ...(profile === undefined
          ? []
          : ["--cpu-prof", "--cpu-prof-dir", profile.dir, "--cpu-prof-name", profile.name]),
        ...(runtimeFlags ?? []),
      ]);
    }
    const hostname = this.#options.hostname === undefined
      ? []
      : ["--hostname", this.#options.hostname];
    const r = await this.pilot(
      "daemon",
      "start",
      "--listen",
      "127.0.0.1:0",
      ...hostname,
      ...(this.#options.args ?? []),
      "--json",
    );
    if (r.code !== 0 || r.json?.status !== "ok") {
      throw new Error(`pilot daemon start failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
    }
    this.listen = r.json.data.listen;
    this.pid = r.json.data.pid;
    this.#pids.add(this.pid);
    return r;
  }

  // The daemon in the foreground with Deno `flags`.
  async #startForeground(flags: string[]): Promise<PilotResult> {
    const hostname = this.#options.hostname === undefined
      ? []
      : ["--hostname", this.#options.hostname];
    this.#foreground = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--unstable-net",
        `--v8-flags=${RUNTIME_V8_FLAGS}`,
        ...flags,
        "--config",
        CONFIG,
        MAIN,
        "daemon",
        "--home",
        this.home,
        "--listen",
        "127.0.0.1:0",
        ...hostname,
        ...(this.#options.args ?? []),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    this.#pids.add(this.#foreground.pid);
    await waitFor("the foreground daemon's control file", async () => {
      try {
        this.pid = (await this.controlFile()).pid;
        this.listen = (await this.info()).listen;
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    const data = { listen: this.listen, pid: this.pid };
    return { code: 0, stdout: JSON.stringify(data), stderr: "", json: { status: "ok", data } };
  }

  /** Reads the home's control file (url, token, pid, ...). */
  async controlFile(): Promise<{ url: string; token: string; pid: number }> {
    return JSON.parse(await Deno.readTextFile(join(this.home, "control.json")));
  }

  /** `pilot info --json` data; throws unless it answers ok. */
  // deno-lint-ignore no-explicit-any
  async info(): Promise<any> {
    return okData(await this.pilot("info", "--json"), "info");
  }

  /** `pilot peers --json` peer list; throws unless it answers ok. */
  // deno-lint-ignore no-explicit-any
  async peers(): Promise<any[]> {
    return okData(await this.pilot("peers", "--json"), "peers").peers;
  }

  /** Makes {@linkcode TestNode.stop} wait for `child`, a daemon of this home run in the foreground, as for its own. */
  waitForExitOf(child: Deno.ChildProcess): void {
    this.#foreground = child;
  }

  /**
   * Stops everything and removes the home: `daemon stop`, then SIGKILL of any
   * daemon this node started that is still alive, then the directory.
   */
  async stop(): Promise<void> {
    await this.pilot("daemon", "stop", "--timeout", "10s").catch(() => {});
    const foreground = this.#foreground;
    if (foreground !== undefined) {
      this.#foreground = undefined;
      await withTimeout(foreground.status, 15_000, "the foreground daemon's exit").catch(() => {});
    }
    try {
      this.#pids.add((await this.controlFile()).pid);
    } catch {
      // No control file: the daemon removed it on a clean exit.
    }
    for (const pid of this.#pids) {
      if (await this.#isOurs(pid)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // It exited meanwhile.
        }
        await waitFor(`pid ${pid} to exit`, async () => !(await this.#isOurs(pid)), 5_000)
          .catch(() => {});
      }
    }
    await Deno.remove(this.home, { recursive: true }).catch(() => {});
  }

  /** `await using node = await startNode()`: {@linkcode TestNode.stop} when the scope ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  // A pid is ours when that process runs with this home on its command line
  // (Linux); elsewhere, when the home's lock is still held.
  async #isOurs(pid: number): Promise<boolean> {
    if (Deno.build.os === "linux") {
      try {
        return (await Deno.readTextFile(`/proc/${pid}/cmdline`)).includes(this.home);
      } catch {
        return false;
      }
    }
    return pid === this.pid && await isHomeLocked(this.home);
  }
}

// deno-lint-ignore no-explicit-any
function okData(r: PilotResult, what: string): any {
  if (r.code !== 0 || r.json?.status !== "ok") {
    throw new Error(`pilot ${what} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
  return r.json.data;
}

/** Makes a home and starts a daemon in it; on failure nothing is left behind. */
export async function startNode(options: NodeOptions = {}): Promise<TestNode> {
  const node = new TestNode(await makeHome(options), options);
  try {
    await node.start();
  } catch (e) {
    await node.stop();
    throw e;
  }
  return node;
}

/** Stops every node given (undefined entries are skipped), even when some stops fail. */
export async function stopAll(...nodes: (TestNode | undefined)[]): Promise<void> {
  await Promise.allSettled(nodes.map((n) => n?.stop()));
}

/**
 * Polls `probe` until it returns something other than undefined, null or
 * false; throws after `timeoutMs` (a generous bound, never a measurement).
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`Gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Parses `IP:PORT` (IPv4) as the tests use it. */
export function endpointOf(text: string): Endpoint {
  const i = text.lastIndexOf(":");
  return { hostname: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

/** One datagram the relay forwarded. */
export interface RelayedDatagram {
  /** `"a->b"` (client to target) or `"b->a"`. */
  direction: "a->b" | "b->a";
  /** The bytes, copied. */
  bytes: Uint8Array;
  /** Local port of the relay socket facing B that forwarded (a->b) or received (b->a) it. */
  port: number;
}

/**
 * A UDP relay in the test process: a client (A) talks to `listen`; the relay
 * forwards to `target` (B) from its own socket and sends B's answers back to
 * A's last endpoint, recording every datagram both ways.
 */
export class UdpRelay {
  /** Endpoint A sends to. */
  readonly listen: Endpoint;
  /** Every datagram forwarded, in order. */
  readonly log: RelayedDatagram[] = [];
  #front: Deno.DatagramConn;
  #back: Deno.DatagramConn;
  #target: Endpoint;
  #client: Endpoint | undefined;
  #loops: Promise<void>[] = [];
  #closed = false;

  /** Opens the relay in front of `target`. */
  constructor(target: Endpoint) {
    this.#target = target;
    this.#front = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const a = this.#front.addr as Deno.NetAddr;
    this.listen = { hostname: a.hostname, port: a.port };
    this.#back = this.#openBack();
    this.#loops.push(this.#frontLoop());
  }

  /** The relay's current source endpoint towards B. */
  get backEndpoint(): Endpoint {
    return { hostname: "127.0.0.1", port: portOf(this.#back) };
  }

  #openBack(): Deno.DatagramConn {
    const back = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#loops.push(this.#backLoop(back));
    return back;
  }

  async #frontLoop(): Promise<void> {
    try {
      for (;;) {
        const [bytes, from] = await this.#front.receive();
        const f = from as Deno.NetAddr;
        this.#client = { hostname: f.hostname, port: f.port };
        const back = this.#back;
        this.log.push({ direction: "a->b", bytes: bytes.slice(), port: portOf(back) });
        await this.#sendTo(back, bytes, this.#target);
      }
    } catch (e) {
      if (!this.#closed) throw e;
    }
  }

  async #backLoop(back: Deno.DatagramConn): Promise<void> {
    try {
      for (;;) {
        const [bytes] = await back.receive();
        this.log.push({ direction: "b->a", bytes: bytes.slice(), port: portOf(back) });
        if (this.#client) await this.#sendTo(this.#front, bytes, this.#client);
      }
    } catch {
      // Closed: at the end, or replaced by `roam()`.
    }
  }

  async #sendTo(conn: Deno.DatagramConn, bytes: Uint8Array, to: Endpoint): Promise<void> {
    await conn.send(bytes, { transport: "udp", hostname: to.hostname, port: to.port })
      .catch(() => {});
  }

  /** Sends `bytes` to B from the relay's current back socket, as if A sent them again. */
  async replay(bytes: Uint8Array): Promise<void> {
    await this.#sendTo(this.#back, bytes, this.#target);
  }

  /** Moves traffic towards B to a new local socket (a new source port), as a NAT rebinding would. */
  roam(): Endpoint {
    const old = this.#back;
    this.#back = this.#openBack();
    old.close();
    return this.backEndpoint;
  }

  /** Closes every socket and waits for the loops to end. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#front.close();
    try {
      this.#back.close();
    } catch {
      // Already closed.
    }
    await Promise.allSettled(this.#loops);
  }

  /** `await using relay = new UdpRelay(…)`: {@linkcode UdpRelay.close} when the scope ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function portOf(conn: Deno.DatagramConn): number {
  return (conn.addr as Deno.NetAddr).port;
}

/**
 * A peer without a daemon: a {@linkcode SessionManager} in the test process,
 * wired as `src/daemon/node.ts` wires it, on a real loopback UDP socket. It
 * trusts everyone and records every packet delivered to it.
 */
export class RawPeer {
  /** Its identity. */
  readonly identity: Identity;
  /** Its session table. */
  readonly sessions: SessionManager;
  /** Packets delivered to it, in order. */
  readonly received: PortPacket[] = [];
  #conn: Deno.DatagramConn;
  #timer: ReturnType<typeof setInterval>;
  #serving: Promise<void>;
  #closed = false;

  /** Binds 127.0.0.1:0 with fixture identity `index`. */
  constructor(index: number) {
    const identity = decodeIdentityFile(JSON.stringify(fixture(index)));
    this.identity = identity;
    const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    this.#conn = conn;
    this.sessions = new SessionManager({
      local: localNodeIdentity(identity, null),
      transmit: (bytes, to) => {
        if (this.#closed) return;
        conn.send(bytes, { transport: "udp", hostname: to.hostname, port: to.port })
          .catch(() => {});
      },
      isTrusted: () => true,
      deliver: (_session, packet) => {
        this.received.push({ ...packet, payload: packet.payload.slice() });
      },
    });
    this.#timer = setInterval(() => this.sessions.tick().catch(() => {}), 250);
    this.#serving = this.#serve();
  }

  async #serve(): Promise<void> {
    try {
      for (;;) {
        const [bytes, from] = await this.#conn.receive();
        const f = from as Deno.NetAddr;
        this.sessions.handle(bytes, { hostname: f.hostname, port: f.port }).catch(() => {});
      }
    } catch (e) {
      if (!this.#closed) throw e;
    }
  }

  /** Closes the socket and stops the timers. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#conn.close();
    await this.#serving.catch(() => {});
  }

  /** `await using peer = new RawPeer(…)`: {@linkcode RawPeer.close} when the scope ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// Helpers of the trust-flow, messaging, events and CLI-schema tests.

/** Runs `pilot ARGS` with `input` on its standard input and waits for it to exit. */
export async function runPilotInput(
  args: string[],
  options: { home?: string; input: Uint8Array },
): Promise<PilotResult> {
  const child = spawnPilot(args, { ...options, stdin: true });
  const writer = child.stdin.getWriter();
  // The CLI may stop reading early (too much data): a broken pipe is its answer, not ours.
  await writer.write(options.input).catch(() => {});
  await writer.close().catch(() => {});
  const out = await child.output();
  const stdout = new TextDecoder().decode(out.stdout);
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { code: out.code, stdout, stderr: new TextDecoder().decode(out.stderr), json };
}

/**
 * Starts `pilot ARGS` without waiting (a foreground daemon, a follow stream)
 * with the V8 flags the binary has baked in; stdout and stderr piped, stdin
 * piped only when `stdin` is true. The caller reaps it (`child.output()` or
 * kill + `child.status`).
 */
export function spawnPilot(
  args: string[],
  options: { home?: string; stdin?: boolean; runtimeFlags?: string[] } = {},
): Deno.ChildProcess {
  const home = options.home === undefined ? [] : ["--home", options.home];
  const runtime = options.runtimeFlags ?? [];
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      `--v8-flags=${RUNTIME_V8_FLAGS}`,
      ...runtime,
      "--config",
      CONFIG,
      MAIN,
      ...home,
      ...args,
    ],
    clearEnv: true,
    env: childEnv(),
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** What {@linkcode callApi} got back. */
export interface ApiResult {
  /** HTTP status. */
  status: number;
  /** The parsed JSON body. */
  // deno-lint-ignore no-explicit-any
  json: any;
}

// A direct connection to the loopback API, never through an HTTP proxy from the environment.
function directClient(url: URL): Deno.HttpClient {
  return Deno.createHttpClient({
    proxy: { transport: "tcp", hostname: url.hostname, port: Number(url.port) },
  });
}

/** Calls a node's control API with fetch and the bearer token of its control file. */
export async function callApi(
  node: TestNode,
  method: string,
  path: string,
  options: {
    body?: unknown;
    query?: Record<string, string | number | boolean>;
    headers?: Record<string, string>;
  } = {},
): Promise<ApiResult> {
  const control = await node.controlFile();
  const url = new URL(path, control.url);
  for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, String(v));
  const client = directClient(url);
  try {
    const res = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${control.token}`,
        "content-type": "application/json",
        ...options.headers,
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
      client,
    });
    return { status: res.status, json: await res.json() };
  } finally {
    client.close();
  }
}

/** An NDJSON follow stream of a node's control API, read line by line. */
export class NdjsonStream {
  /** Every line read so far, parsed, in order. */
  // deno-lint-ignore no-explicit-any
  readonly lines: any[] = [];
  #ac: AbortController;
  #client: Deno.HttpClient;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffer = "";
  #decoder = new TextDecoder();
  #pending: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;

  private constructor(
    ac: AbortController,
    client: Deno.HttpClient,
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ) {
    this.#ac = ac;
    this.#client = client;
    this.#reader = reader;
  }

  /** Opens `GET path?query` with the node's token; throws unless it answers an NDJSON stream. */
  static async open(
    node: TestNode,
    path: string,
    query: Record<string, string | number | boolean> = {},
  ): Promise<NdjsonStream> {
    const control = await node.controlFile();
    const url = new URL(path, control.url);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, String(v));
    const ac = new AbortController();
    const client = directClient(url);
    try {
      const res = await fetch(url, {
        headers: { authorization: `Bearer ${control.token}` },
        signal: ac.signal,
        client,
      });
      const type = res.headers.get("content-type") ?? "";
      if (res.status !== 200 || !type.includes("ndjson") || res.body === null) {
        const text = await res.text();
        throw new Error(`GET ${url.pathname} is not an NDJSON stream (${res.status}): ${text}`);
      }
      return new NdjsonStream(ac, client, res.body.getReader());
    } catch (e) {
      ac.abort();
      client.close();
      throw e;
    }
  }

  /** The next line, parsed; throws when none comes within `timeoutMs` or the stream ends. */
  // deno-lint-ignore no-explicit-any
  async next(timeoutMs = 15_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        if (line.trim() === "") continue;
        const parsed = JSON.parse(line);
        this.lines.push(parsed);
        return parsed;
      }
      // A read left pending by a timeout is picked up again, never lost.
      this.#pending ??= this.#reader.read();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), Math.max(0, deadline - Date.now()));
      });
      const r = await Promise.race([this.#pending, timeout]);
      clearTimeout(timer);
      if (r === "timeout") throw new Error(`No NDJSON line within ${timeoutMs} ms`);
      this.#pending = undefined;
      if (r.done) throw new Error("The NDJSON stream ended");
      this.#buffer += this.#decoder.decode(r.value, { stream: true });
    }
  }

  /** Reads lines until one satisfies `pred`, and returns it. */
  // deno-lint-ignore no-explicit-any
  async nextWhere(pred: (line: any) => boolean, timeoutMs = 15_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = await this.next(Math.max(1, deadline - Date.now()));
      if (pred(line)) return line;
    }
  }

  /** Ends the stream and releases the connection. */
  async close(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    await this.#pending?.catch(() => {});
    this.#ac.abort();
    this.#client.close();
  }

  /** `await using s = await NdjsonStream.open(…)`: {@linkcode NdjsonStream.close} when the scope ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Hostname of B in {@linkcode startPair}: A's `--peer` names it so. */
export const PAIR_B_NAME = "data-processor-node";
/** Hostname of A in {@linkcode startPair}. */
export const PAIR_A_NAME = "secure-orchestrator";

/** Two running nodes that `await using` stops together (in parallel) and removes. */
export interface TestPair extends AsyncDisposable {
  /** Fixture 0, hostname {@linkcode PAIR_A_NAME}. */
  a: TestNode;
  /** Fixture 1, hostname {@linkcode PAIR_B_NAME}. */
  b: TestNode;
}

/**
 * Starts B (fixture 1, hostname {@linkcode PAIR_B_NAME}) and then A (fixture
 * 0, hostname {@linkcode PAIR_A_NAME}, `--peer PAIR_B_NAME=<B's listen>`);
 * `bArgs`/`aArgs` add daemon flags. On failure nothing is left running.
 * `await using pair = await startPair()` stops both when the scope ends;
 * `const { a, b } = await startPair()` leaves stopping to the caller.
 */
export async function startPair(
  options: { aArgs?: string[]; bArgs?: string[]; bConfig?: Record<string, unknown> } = {},
): Promise<TestPair> {
  const b = await startNode({
    identity: 1,
    hostname: PAIR_B_NAME,
    args: options.bArgs ?? [],
    ...(options.bConfig === undefined ? {} : { config: options.bConfig }),
  });
  try {
    const a = await startNode({
      identity: 0,
      hostname: PAIR_A_NAME,
      args: ["--peer", `${PAIR_B_NAME}=${b.listen}`, ...(options.aArgs ?? [])],
    });
    return { a, b, [Symbol.asyncDispose]: () => stopAll(a, b) };
  } catch (e) {
    await b.stop();
    throw e;
  }
}

/**
 * Makes `a` and `b` trust each other through the real flow: `a` runs
 * `handshake NAME`, `b` approves `a` by fingerprint. Throws unless both
 * steps answer ok.
 */
export async function establishTrust(
  a: TestNode,
  b: TestNode,
  nameOfB: string,
  reason = "test",
): Promise<void> {
  okData(await a.pilot("handshake", nameOfB, "--reason", reason, "--json"), "handshake");
  const approved = okData(
    await b.pilot("approve", a.identity!.fingerprint, "--json"),
    "approve",
  );
  if (approved.status !== "trusted") throw new Error(`approve answered ${approved.status}`);
  await waitFor("A to see trust as mutual", async () => {
    const t = okData(await a.pilot("trust", "--json"), "trust").trusted;
    return t.some((e: { public_key: string; mutual: boolean }) =>
      e.public_key === b.identity!.publicKey && e.mutual
    );
  });
}

/** Data of an ok `--json` result; throws with the output otherwise. */
// deno-lint-ignore no-explicit-any
export function okOf(r: PilotResult, what: string): any {
  return okData(r, what);
}

/**
 * Starts `pilot listen ARGS` on `node` and resolves once it printed
 * "listening on port N" (the daemon registered the port: peers may connect);
 * `done` is the command's whole result.
 */
export async function listenReady(
  node: TestNode,
  args: string[],
): Promise<{ done: Promise<PilotResult> }> {
  const child = spawnPilot(["listen", ...args], { home: node.home });
  const stdout = new Response(child.stdout).text();
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stderr = "";
  while (!/listening on port \d+/.test(stderr)) {
    const { value, done } = await lines.read();
    if (done) {
      const status = await child.status;
      throw new Error(`pilot listen ended before listening (exit ${status.code}): ${stderr}`);
    }
    stderr += value;
  }
  const rest = (async () => {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) return;
      stderr += value;
    }
  })();
  const done = (async () => {
    const [status, out] = await Promise.all([child.status, stdout, rest]);
    let json: unknown;
    try {
      json = JSON.parse(out);
    } catch {
      json = undefined;
    }
    return { code: status.code, stdout: out, stderr, json };
  })();
  return { done };
}

/** A rendezvous run by `pilot rendezvous` in the foreground, in its own temporary home. */
export interface TestRendezvous extends AsyncDisposable {
  /** Its home, for `pilot rendezvous status` and the API. */
  node: TestNode;
  /** `KEY@IP:PORT`, as `--rendezvous` takes it. */
  at: string;
  /** Its UDP endpoint. */
  endpoint: Endpoint;
  /** The last lines it printed (a foreground daemon logs to stderr). */
  output(): string;
}

/** What {@linkcode drainOutput} keeps of a child's output. */
export interface DrainedOutput {
  /** The last lines printed on stdout and stderr, interleaved as they came. */
  lines: string[];
  /** Settles when both streams have ended. */
  done: Promise<void>;
}

/**
 * Reads `child`'s stdout and stderr as it runs, keeping the last `keep`
 * lines: a foreground daemon logs to stderr, and one whose pipe nobody
 * reads blocks on its next write once the pipe is full.
 */
export function drainOutput(child: Deno.ChildProcess, keep = 40): DrainedOutput {
  const lines: string[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      lines.push(...text.split("\n").filter((l) => l !== ""));
      lines.splice(0, Math.max(0, lines.length - keep));
    }
  };
  const done = Promise.all([drain(child.stdout), drain(child.stderr)]).then(() => {});
  return { lines, done };
}

/** A foreground `pilot rendezvous` started by {@linkcode spawnRendezvous}. */
export interface ForegroundRendezvous {
  child: Deno.ChildProcess;
  /** Its output, drained as it runs. */
  output: DrainedOutput;
  /** Stops it (`daemon stop`, then SIGKILL if it is still there) and waits for its output to end. */
  stop(): Promise<void>;
}

/**
 * Spawns `pilot rendezvous --listen LISTEN` in `node`'s home (`runtimeFlags`
 * for Deno, such as a CPU profile's) and waits for its API, setting
 * `node.listen` and `node.pid`. A start that fails (it exited, or no API
 * within 30 s) is stopped and throws with its last output lines.
 */
export async function spawnRendezvous(
  node: TestNode,
  listen: string,
  runtimeFlags: string[] = [],
): Promise<ForegroundRendezvous> {
  const child = spawnPilot(["rendezvous", "--listen", listen], { home: node.home, runtimeFlags });
  const output = drainOutput(child);
  // Its CPU profile, if asked for, is written as it exits: stop() waits for that.
  node.waitForExitOf(child);
  const stop = async () => {
    await node.stop().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // It stopped already.
    }
    await child.status;
    await output.done;
  };
  let exited: Deno.CommandStatus | undefined;
  void child.status.then((s) => exited = s);
  try {
    const info = await waitFor("the rendezvous's API", async () => {
      if (exited !== undefined) throw new Error(`the rendezvous exited with ${exited.code}`);
      try {
        return await node.info();
      } catch {
        return undefined;
      }
    }, 30_000);
    node.listen = info.listen;
    node.pid = info.pid;
    return { child, output, stop };
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}; its output:\n${output.lines.join("\n")}`);
  }
}

/**
 * Starts `pilot rendezvous --listen 127.0.0.1:0` with fixture identity
 * `index` (and `config` as its config.json; `runtimeFlags` for Deno, such
 * as a CPU profile's); waits for its API.
 */
export async function startRendezvous(
  index: number,
  config?: Record<string, unknown>,
  runtimeFlags: string[] = [],
): Promise<TestRendezvous> {
  const home = await makeHome({ identity: index, ...(config && { config }) });
  const node = new TestNode(home, { identity: index });
  const run = await spawnRendezvous(node, "127.0.0.1:0", runtimeFlags);
  return {
    node,
    at: `${fixture(index).public_key}@${node.listen}`,
    endpoint: endpointOf(node.listen),
    output: () => run.output.lines.join("\n"),
    [Symbol.asyncDispose]: run.stop,
  };
}
