/**
 * Private TCP between agents: `pilot expose` lets trusted peers reach a local
 * TCP service (an agent's HTTP or A2A endpoint) on a virtual port, and
 * `pilot forward` listens on 127.0.0.1 and carries each TCP connection over
 * one reliable stream to a peer's exposure. The tunnel is plain stream bytes
 * on the virtual port (PROTOCOL.md, ports): no framing of its own, so
 * anything that speaks TCP goes through, and only trusted peers get in (the
 * session gate drops every other peer's stream segments before they reach a
 * port).
 *
 * Ports: an exposure's virtual port is never a built-in service's (7,
 * 444-447, 1000-1023), nor one an API client is listening on (`pilot
 * listen`); while a port is exposed, `pilot listen` there is refused too.
 *
 * Failures are said where they can be read: the exposing side resets the
 * stream with a reason (`service at 127.0.0.1:8080 is not answering`,
 * `not allowed ...`, `busy ...`); the forwarding side turns a tunnel that
 * would not open, or was reset before any byte came back, into an HTTP
 * `502 Bad Gateway` (503 when the forward is at its cap) whose body is the
 * API's error object on one line, when the client's first bytes look like
 * HTTP; other clients see the connection close.
 *
 * @module
 */
import { PilotError } from "../../errors.ts";
import type { PeerIdentity } from "../../session/peer_identity.ts";
import { type Connection, StreamError } from "../../stream/mod.ts";
import { withTimeout } from "../../with_timeout.ts";
import {
  type ExposeEntry,
  exposeJson,
  formatTarget,
  type ForwardEntry,
  forwardJson,
  parseAllow,
  parseServiceTarget,
  saveConfigTunnel,
  type ServiceTarget,
} from "../config.ts";
import type { NodeContext } from "../context.ts";
import { checkPort } from "../user_ports.ts";

/**
 * Tunnels open at once through one exposure, and connections through one
 * forward: half the per-peer stream cap (STREAM_MAX_CONNECTIONS), so one
 * busy tunnel never starves a peer's messages.
 */
export const MAX_TUNNEL_CONNECTIONS = 128;

/** Exposures, and forwards, one node keeps. */
export const MAX_TUNNELS = 64;

/** How long the exposing side waits for its TCP service to accept (ms). */
export const SERVICE_CONNECT_TIMEOUT_MS = 5_000;

/** How long a forward waits for a client's first bytes to tell HTTP from not (ms). */
const SNIFF_MS = 1_000;

/** Bytes read from a TCP socket at a time. */
const CHUNK = 16 * 1024;

/** Stream reset reasons the exposing side sends (the forwarding side reads them back). */
const REASON = {
  notAllowed: "not allowed: this exposure lets other peers in",
  busy: "busy: too many tunnels open on this exposure",
  down: "is not answering",
  gone: "exposure removed",
} as const;

/** One exposure as `tunnels` and `info` list it. */
export interface ExposureInfo {
  /** The virtual port. */
  vport: number;
  /** The service, `HOST:PORT`. */
  target: string;
  /** Keys or fingerprints allowed; empty: every trusted peer. */
  allow: string[];
  /** Whether config.json holds it. */
  saved: boolean;
  /** Tunnels open now. */
  active: number;
  /** Tunnels served since it began. */
  served: number;
  /** Streams refused (`allow`, or the cap). */
  refused: number;
  /** Streams reset because the service did not answer. */
  failed: number;
}

/** One forward as `tunnels` and `info` list it. */
export interface ForwardInfo {
  /** The TCP port on 127.0.0.1. */
  localPort: number;
  /** `127.0.0.1:PORT`. */
  listen: string;
  /** The peer as the user named it. */
  peer: string;
  /** The peer's virtual port. */
  vport: number;
  /** How long each tunnel may take to open (ms). */
  timeoutMs: number;
  /** Whether config.json holds it. */
  saved: boolean;
  /** Connections open now. */
  active: number;
  /** Tunnels opened. */
  served: number;
  /** Connections answered with an error (or closed) because no tunnel opened. */
  failed: number;
  /** Connections over the cap (503). */
  busy: number;
}

/** Exposures and forwards. */
export interface TunnelList {
  /** Local services trusted peers reach. */
  exposed: ExposureInfo[];
  /** Local ports carried to peers. */
  forwarded: ForwardInfo[];
}

/** What `expose` or `forward` did. */
export interface TunnelChange<T> {
  /** The entry now. */
  entry: T;
  /** Whether the running node or config.json changed. */
  changed: boolean;
}

/** What `unexpose` or `unforward` did. */
export interface TunnelRemoval {
  /** The virtual port (unexpose) or local port (unforward). */
  port: number;
  /** The service (unexpose) or peer (unforward) removed; null when there was none. */
  what: string | null;
  /** The peer's virtual port a removed forward reached, else null. */
  vport: number | null;
  /** Whether the running node or config.json changed. */
  changed: boolean;
  /** Whether config.json was asked to change. */
  saved: boolean;
}

interface Exposure {
  entry: ExposeEntry;
  saved: boolean;
  stop: AbortController;
  tunnels: Set<Connection>;
  served: number;
  refused: number;
  failed: number;
}

interface Forward {
  entry: ForwardEntry;
  saved: boolean;
  listener: Deno.TcpListener;
  sockets: Set<Deno.TcpConn>;
  served: number;
  failed: number;
  busy: number;
}

/**
 * Ports an exposure never takes besides the service table's: the rendezvous
 * (445), path (446) and mailbox (447) ports, and 1000-1023, the built-in
 * services' range (stdio, messages, pub/sub, tasks and those to come).
 */
function isReservedPort(p: number): boolean {
  return (p >= 444 && p <= 447) || (p >= 1000 && p <= 1023);
}

/** The expose and forward commands over a node's context. */
export class TunnelsFeature {
  #ctx: NodeContext;
  #home: string;
  #exposed = new Map<number, Exposure>();
  #forwards = new Map<number, Forward>();
  /** API clients waiting in `pilot listen`, by port. */
  #apiListening = new Map<number, number>();
  /** Changes one after another: each may read and write config.json whole. */
  #queue: Promise<unknown> = Promise.resolve();

  /** Works over the node's streams and reach, and its home's config.json. */
  constructor(ctx: NodeContext, home: string) {
    this.#ctx = ctx;
    this.#home = home;
  }

  /** Starts the exposures and forwards of config.json; a forward whose port is taken fails start. */
  async restore(): Promise<void> {
    for (const e of this.#ctx.config.expose) {
      await this.expose(formatTarget(e.target), e.vport, e.allow, false, true);
    }
    for (const f of this.#ctx.config.forward) {
      await this.forward(f.localPort, f.peer, f.vport, f.timeoutMs, false, true);
    }
  }

  /** Whether a virtual port is exposed (`pilot listen` is refused there). */
  isExposed(port: number): boolean {
    return this.#exposed.has(port);
  }

  /**
   * Marks `port` as one an API client listens on until disposed (so it
   * cannot be exposed meanwhile); refuses a port that is exposed.
   */
  apiListen(port: number): Disposable {
    if (this.isExposed(port)) {
      throw new PilotError(
        "conflict",
        `Port ${port} is exposed (pilot expose)`,
        `pick another port, or run \`pilot unexpose ${port}\``,
      );
    }
    this.#apiListening.set(port, (this.#apiListening.get(port) ?? 0) + 1);
    return {
      [Symbol.dispose]: () => {
        const n = (this.#apiListening.get(port) ?? 1) - 1;
        if (n === 0) this.#apiListening.delete(port);
        else this.#apiListening.set(port, n);
      },
    };
  }

  /** `tunnels`, and `tunnels` in `info`. */
  list(): TunnelList {
    return {
      exposed: [...this.#exposed.values()].map((e) => this.#exposureInfo(e)),
      forwarded: [...this.#forwards.values()].map((f) => this.#forwardInfo(f)),
    };
  }

  /**
   * `pilot expose TARGET [--as VPORT] [--allow K]... [--save]`: the same
   * exposure again answers changed: false; another target or allow list on
   * the same port replaces it.
   */
  expose(
    targetText: string,
    vport: number,
    allowText: readonly string[],
    save: boolean,
    restoring = false,
  ): Promise<TunnelChange<ExposureInfo>> {
    checkPort(vport);
    const target = parseServiceTarget(targetText, "expose");
    const allow = [...new Set(allowText.map((a) => parseAllow(a, "--allow")))];
    this.#checkVport(vport);
    const entry: ExposeEntry = { vport, target, allow };
    return this.#serial(async () => {
      const existing = this.#exposed.get(vport);
      if (existing === undefined && this.#exposed.size >= MAX_TUNNELS) {
        throw new PilotError(
          "too_large",
          `Cannot expose port ${vport}: the node keeps at most ${MAX_TUNNELS} exposures`,
          "remove some with `pilot unexpose VPORT`",
        );
      }
      const written = save ? await this.#save("expose", vport, exposeJson(entry)) : false;
      const same = existing !== undefined &&
        JSON.stringify(exposeJson(existing.entry)) === JSON.stringify(exposeJson(entry));
      if (existing !== undefined) {
        existing.entry = entry;
        existing.saved ||= save || restoring;
        return { entry: this.#exposureInfo(existing), changed: !same || written };
      }
      const e: Exposure = {
        entry,
        saved: save || restoring,
        stop: new AbortController(),
        tunnels: new Set(),
        served: 0,
        refused: 0,
        failed: 0,
      };
      this.#exposed.set(vport, e);
      const reserved = (p: number) => this.#ctx.datagrams.isServicePort(p);
      this.#ctx.streams.listen(vport, reserved);
      void this.#acceptLoop(e, reserved);
      return { entry: this.#exposureInfo(e), changed: true };
    });
  }

  /** `pilot unexpose VPORT [--save]`: its open tunnels are reset; an unknown port is changed: false. */
  unexpose(vport: number, save: boolean): Promise<TunnelRemoval> {
    checkPort(vport);
    return this.#serial(async () => {
      const e = this.#exposed.get(vport);
      const written = save ? await this.#save("expose", vport, null) : false;
      if (e !== undefined) {
        this.#exposed.delete(vport);
        e.stop.abort();
        for (const c of e.tunnels) c.reset(REASON.gone);
      }
      return {
        port: vport,
        what: e === undefined ? null : formatTarget(e.entry.target),
        vport: null,
        changed: e !== undefined || written,
        saved: save,
      };
    });
  }

  /**
   * `pilot forward LOCAL PEER [VPORT] [--save]`: listens on 127.0.0.1:LOCAL
   * (0: any free port). The same forward again answers changed: false; the
   * same port to another peer or port is a `conflict`.
   */
  forward(
    localPort: number,
    peer: string,
    vport: number,
    timeoutMs: number,
    save: boolean,
    restoring = false,
  ): Promise<TunnelChange<ForwardInfo>> {
    checkPort(vport);
    if (!Number.isInteger(localPort) || localPort < 0 || localPort > 65_535) {
      throw new PilotError(
        "invalid_argument",
        `Local port ${localPort} is out of range`,
        "use 0-65535",
      );
    }
    this.#checkPeer(peer);
    return this.#serial(async () => {
      const existing = localPort === 0 ? undefined : this.#forwards.get(localPort);
      if (existing !== undefined) {
        if (existing.entry.peer !== peer || existing.entry.vport !== vport) {
          throw new PilotError(
            "conflict",
            `127.0.0.1:${localPort} already forwards to ${existing.entry.peer} port ${existing.entry.vport}`,
            `run \`pilot unforward ${localPort}\` first, or pick another local port`,
          );
        }
        existing.entry.timeoutMs = timeoutMs;
        const written = save
          ? await this.#save("forward", localPort, forwardJson(existing.entry))
          : false;
        existing.saved ||= save;
        return { entry: this.#forwardInfo(existing), changed: written };
      }
      if (this.#forwards.size >= MAX_TUNNELS) {
        throw new PilotError(
          "too_large",
          `Cannot forward: the node keeps at most ${MAX_TUNNELS} forwards`,
          "remove some with `pilot unforward LOCAL_PORT`",
        );
      }
      let listener: Deno.TcpListener;
      try {
        listener = Deno.listen({ hostname: "127.0.0.1", port: localPort, transport: "tcp" });
      } catch (e) {
        const taken = e instanceof Deno.errors.AddrInUse;
        throw new PilotError(
          taken ? "conflict" : "invalid_argument",
          `Cannot listen on 127.0.0.1:${localPort}: ${taken ? "in use" : (e as Error).message}`,
          "pick another local port, or 0 for any free one",
        );
      }
      const port = (listener.addr as Deno.NetAddr).port;
      const entry: ForwardEntry = { localPort: port, peer, vport, timeoutMs };
      let written = false;
      try {
        written = save ? await this.#save("forward", port, forwardJson(entry)) : false;
      } catch (e) {
        listener.close();
        throw e;
      }
      const f: Forward = {
        entry,
        saved: save || restoring || written,
        listener,
        sockets: new Set(),
        served: 0,
        failed: 0,
        busy: 0,
      };
      this.#forwards.set(port, f);
      void this.#forwardLoop(f);
      return { entry: this.#forwardInfo(f), changed: true };
    });
  }

  /** `pilot unforward LOCAL [--save]`: its open connections are closed; an unknown port is changed: false. */
  unforward(localPort: number, save: boolean): Promise<TunnelRemoval> {
    return this.#serial(async () => {
      const f = this.#forwards.get(localPort);
      const written = save ? await this.#save("forward", localPort, null) : false;
      if (f !== undefined) this.#stopForward(f);
      return {
        port: localPort,
        what: f?.entry.peer ?? null,
        vport: f?.entry.vport ?? null,
        changed: f !== undefined || written,
        saved: save,
      };
    });
  }

  /** Ends every exposure and forward (the daemon stops). */
  close(): void {
    for (const e of this.#exposed.values()) {
      e.stop.abort();
      for (const c of e.tunnels) c.reset("daemon stopping");
    }
    this.#exposed.clear();
    for (const f of this.#forwards.values()) this.#stopForward(f);
  }

  // ---- Exposing side ----

  #checkVport(vport: number): void {
    if (this.#ctx.datagrams.isServicePort(vport) || isReservedPort(vport)) {
      throw new PilotError(
        "conflict",
        `Port ${vport} is used by a built-in service`,
        "pick another virtual port with --as (built-in: 7, 444-447, 1000-1023)",
      );
    }
    if (this.#apiListening.has(vport)) {
      throw new PilotError(
        "conflict",
        `Port ${vport} is taken by an API client (pilot listen)`,
        "pick another virtual port with --as",
      );
    }
  }

  async #acceptLoop(e: Exposure, reserved: (p: number) => boolean): Promise<void> {
    const { streams } = this.#ctx;
    while (!e.stop.signal.aborted) {
      let conn: Connection;
      let peer: PeerIdentity;
      try {
        ({ conn, peer } = await streams.accept(e.entry.vport, e.stop.signal, reserved));
      } catch {
        return;
      }
      void this.#serveTunnel(e, conn, peer);
    }
  }

  async #serveTunnel(e: Exposure, conn: Connection, peer: PeerIdentity): Promise<void> {
    const { allow, target } = e.entry;
    if (allow.length > 0 && !allow.some((a) => a === peer.keyHex || a === peer.fingerprint)) {
      e.refused++;
      conn.reset(REASON.notAllowed);
      return;
    }
    if (e.tunnels.size >= MAX_TUNNEL_CONNECTIONS) {
      e.refused++;
      conn.reset(REASON.busy);
      return;
    }
    e.tunnels.add(conn);
    try {
      let tcp: Deno.TcpConn;
      try {
        tcp = await connectService(target);
      } catch {
        e.failed++;
        conn.reset(`service at ${formatTarget(target)} ${REASON.down}`);
        return;
      }
      e.served++;
      await splice(conn, tcp);
    } finally {
      e.tunnels.delete(conn);
    }
  }

  // ---- Forwarding side ----

  /** Refuses peer text that names this node or a known peer that is not trusted. */
  #checkPeer(text: string): void {
    let r;
    try {
      r = this.#ctx.reach.resolve(text);
    } catch (e) {
      // A name only discovery knows is looked up per connection.
      if (e instanceof PilotError && e.code === "not_found") return;
      throw e;
    }
    const key = r.expected.publicKey?.toHex();
    if (key !== undefined && !this.#ctx.trust.has(key)) {
      throw new PilotError(
        "not_trusted",
        `"${text}" is not a trusted peer`,
        `run \`pilot handshake ${text}\` and wait for its approval`,
      );
    }
  }

  async #forwardLoop(f: Forward): Promise<void> {
    try {
      for await (const tcp of f.listener) {
        if (f.sockets.size >= MAX_TUNNEL_CONNECTIONS) {
          f.busy++;
          void answerError(
            tcp,
            readChunk(tcp),
            new PilotError(
              "rate_limited",
              `The forward on 127.0.0.1:${f.entry.localPort} has ${MAX_TUNNEL_CONNECTIONS} connections open`,
              "retry when some have closed",
            ),
          );
          continue;
        }
        f.sockets.add(tcp);
        this.#carry(f, tcp).catch(() => {}).finally(() => f.sockets.delete(tcp));
      }
    } catch {
      // The listener was closed (unforward, or the daemon stops).
    }
  }

  async #carry(f: Forward, tcp: Deno.TcpConn): Promise<void> {
    const first = readChunk(tcp);
    const { peer: text, vport, timeoutMs } = f.entry;
    let conn: Connection;
    let peer: PeerIdentity;
    try {
      const deadline = Date.now() + timeoutMs;
      peer = await this.#ctx.reach.reachTrusted(text, timeoutMs);
      conn = await this.#ctx.streams.open(
        peer,
        this.#ctx.reach.endpointOf(peer.keyHex),
        vport,
        Math.max(1, deadline - Date.now()),
      );
    } catch (e) {
      f.failed++;
      await answerError(tcp, first, openError(e, text, vport));
      return;
    }
    f.served++;
    await splice(conn, tcp, {
      first,
      beforeAnyReply: async (e) => {
        f.failed++;
        await answerError(tcp, first, resetError(e, text, vport));
      },
    });
  }

  #stopForward(f: Forward): void {
    this.#forwards.delete(f.entry.localPort);
    try {
      f.listener.close();
    } catch {
      // Already closed.
    }
    for (const s of f.sockets) closeQuietly(s);
  }

  // ---- Shared ----

  #exposureInfo(e: Exposure): ExposureInfo {
    return {
      vport: e.entry.vport,
      target: formatTarget(e.entry.target),
      allow: [...e.entry.allow],
      saved: e.saved,
      active: e.tunnels.size,
      served: e.served,
      refused: e.refused,
      failed: e.failed,
    };
  }

  #forwardInfo(f: Forward): ForwardInfo {
    return {
      localPort: f.entry.localPort,
      listen: `127.0.0.1:${f.entry.localPort}`,
      peer: f.entry.peer,
      vport: f.entry.vport,
      timeoutMs: f.entry.timeoutMs,
      saved: f.saved,
      active: f.sockets.size,
      served: f.served,
      failed: f.failed,
      busy: f.busy,
    };
  }

  async #save(
    list: "expose" | "forward",
    id: number,
    entry: Record<string, unknown> | null,
  ): Promise<boolean> {
    return await saveConfigTunnel(this.#home, list, id, entry);
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work);
    this.#queue = next.catch(() => {});
    return next;
  }
}

// ---- Byte pumps ----

async function connectService(target: ServiceTarget): Promise<Deno.TcpConn> {
  const connecting = Deno.connect({ hostname: target.hostname, port: target.port });
  try {
    return await withTimeout(connecting, SERVICE_CONNECT_TIMEOUT_MS, "Connecting to the service");
  } catch (e) {
    connecting.then(closeQuietly, () => {});
    throw e;
  }
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch {
    // Already closed.
  }
}

/** The next bytes from a socket, or null at its end (or on any error). */
async function readChunk(tcp: Deno.Conn): Promise<Uint8Array | null> {
  const buf = new Uint8Array(CHUNK);
  try {
    const n = await tcp.read(buf);
    return n === null ? null : buf.subarray(0, n);
  } catch {
    return null;
  }
}

async function writeAll(tcp: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await tcp.write(bytes.subarray(off));
}

/**
 * Carries bytes both ways between a stream and a TCP socket until both
 * directions end: each end is passed on as a half-close (FIN one way,
 * `closeWrite` the other), a failure on either side resets the stream and
 * closes the socket. Backpressure is the stream's: a write waits for room
 * in its send buffer, a read leaves bytes in its receive window.
 * `beforeAnyReply` runs when the stream fails before any byte came from it.
 */
async function splice(
  conn: Connection,
  tcp: Deno.TcpConn,
  options: {
    first?: Promise<Uint8Array | null>;
    beforeAnyReply?: (e: StreamError) => Promise<void>;
  } = {},
): Promise<void> {
  let replied = false;
  const up = (async () => {
    let chunk = options.first === undefined ? await readChunk(tcp) : await options.first;
    try {
      while (chunk !== null) {
        await conn.write(chunk);
        chunk = await readChunk(tcp);
      }
      await conn.close();
    } catch (e) {
      // A reset stream is reported by the reading side.
      if (!(e instanceof StreamError)) throw e;
    }
  })();
  const down = (async () => {
    try {
      for (;;) {
        const chunk = await conn.read();
        if (chunk === null) break;
        replied = true;
        await writeAll(tcp, chunk);
      }
    } catch (e) {
      if (e instanceof StreamError && !replied && options.beforeAnyReply !== undefined) {
        await options.beforeAnyReply(e);
        return;
      }
      throw e;
    }
    await tcp.closeWrite().catch(() => {});
  })();
  try {
    await Promise.all([up, down]);
  } catch (e) {
    conn.reset(e instanceof StreamError ? e.reason : "the TCP side failed");
  } finally {
    up.catch(() => {});
    down.catch(() => {});
    closeQuietly(tcp);
  }
}

// ---- Errors for the forwarding side's clients ----

function openError(e: unknown, peer: string, vport: number): PilotError {
  if (e instanceof PilotError && e.code === "not_found" && /stream/i.test(e.message)) {
    return new PilotError(
      "not_found",
      `Nothing is exposed on port ${vport} of ${peer}`,
      `ask its operator to run \`pilot expose PORT --as ${vport}\``,
    );
  }
  if (e instanceof PilotError) return e;
  return new PilotError("unreachable", `Cannot reach ${peer}: ${(e as Error).message}`, "retry");
}

function resetError(e: StreamError, peer: string, vport: number): PilotError {
  const why = JSON.stringify(e.reason.slice(0, 128));
  if (e.code === "timeout") {
    return new PilotError("timeout", `The tunnel to ${peer} port ${vport} timed out`, "retry");
  }
  if (e.reason.startsWith("not allowed")) {
    return new PilotError(
      "not_trusted",
      `${peer} does not let this node reach port ${vport} (${why})`,
      "ask its operator to add this node's fingerprint with `pilot expose ... --allow`",
    );
  }
  if (e.reason.startsWith("busy")) {
    return new PilotError("rate_limited", `${peer} port ${vport} is busy (${why})`, "retry later");
  }
  if (e.reason.endsWith(REASON.down)) {
    return new PilotError(
      "unreachable",
      `The service ${peer} exposes on port ${vport} is down (${why})`,
      "retry later, or ask the peer's operator to start it",
    );
  }
  if (e.reason === "not listening" || e.reason === REASON.gone) {
    return new PilotError(
      "not_found",
      `Nothing is exposed on port ${vport} of ${peer} (${why})`,
      `ask its operator to run \`pilot expose PORT --as ${vport}\``,
    );
  }
  return new PilotError(
    "unreachable",
    `The tunnel to ${peer} port ${vport} failed (${why})`,
    "retry",
  );
}

/** `p`'s value, or null once `ms` passed first. */
async function within<T>(p: Promise<T | null>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<null>((r) => timer = setTimeout(() => r(null), ms))]);
  } finally {
    clearTimeout(timer);
  }
}

const HTTP_REQUEST = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE) \S/;

/**
 * Answers a client whose tunnel failed: an HTTP error whose body is the
 * API's error object on one line when its first bytes look like an HTTP
 * request (within SNIFF_MS), else nothing; then closes the connection.
 */
async function answerError(
  tcp: Deno.Conn,
  first: Promise<Uint8Array | null>,
  err: PilotError,
): Promise<void> {
  try {
    const head = await within(first, SNIFF_MS);
    if (head === null) return;
    const text = new TextDecoder("latin1").decode(head.subarray(0, 16));
    if (!HTTP_REQUEST.test(text)) return;
    const body = JSON.stringify({
      status: "error",
      code: err.code,
      message: err.message,
      hint: err.hint,
      retryable: err.retryable,
    }) + "\n";
    const bytes = new TextEncoder().encode(body);
    const status = err.code === "rate_limited" ? "503 Service Unavailable" : "502 Bad Gateway";
    const header = `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\n` +
      `content-length: ${bytes.length}\r\nx-pilot-error: ${err.code}\r\nconnection: close\r\n\r\n`;
    await writeAll(tcp, new Uint8Array([...new TextEncoder().encode(header), ...bytes]));
    await tcp.closeWrite().catch(() => {});
    // Read what the client still sends (briefly), so closing does not reset the answer away.
    const until = Date.now() + SNIFF_MS;
    while (Date.now() < until) {
      if (await within(readChunk(tcp), until - Date.now()) === null) break;
    }
  } catch {
    // The client went away.
  } finally {
    closeQuietly(tcp);
  }
}
