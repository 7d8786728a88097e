/**
 * The daemon's local HTTP control API: the only path between the CLI (or any
 * agent) and the daemon. JSON in and out, `/v1/...` routes, one place that
 * turns errors into responses.
 *
 * @module
 */
import { join } from "node:path";
import {
  API_VERSION,
  CONTROL_ACCEPT_BACKOFF_MS,
  CONTROL_BODY_TIMEOUT_MS,
  CONTROL_HEADER_TIMEOUT_MS,
  CONTROL_IDLE_TIMEOUT_MS,
  CONTROL_MAX_BODY,
  CONTROL_MAX_CONNECTIONS,
  CONTROL_MAX_FOLLOWS,
  CONTROL_MAX_LONG_POLLS,
  CONTROL_MAX_SOCKETS,
  VERSION,
} from "../constants.ts";
import { asPilotError, errorBody, PilotError } from "../errors.ts";
import { log, logs } from "../daemon/log.ts";
import { ConnGate, type GateDrop } from "./conn_gate.ts";
import { type HoldKind, Holds } from "./holds.ts";
import { checkHost, checkOrigin, checkToken } from "./security.ts";

/** What a route handler receives. */
export interface ApiRequest {
  /** Query parameters. */
  query: URLSearchParams;
  /** Parsed JSON body (undefined for GET or an empty body). */
  body: unknown;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
  /** Request headers (e.g. `Idempotency-Key`). */
  headers: Headers;
  /** The raw request. */
  raw: Request;
  /** Upgrades to a WebSocket; its slot is freed when the socket closes. */
  upgrade(): { socket: WebSocket; response: Response };
}

/** A route handler: returns the `data` of an ok response, or throws PilotError. */
export type Handler = (req: ApiRequest) => Promise<unknown>;

/** Routes keyed as `"GET /v1/info"`. */
export type Routes = Record<string, Handler>;

/**
 * The routes served without a token: the liveness probe and the API's own
 * description, which reveal nothing. GET only; `Host` and `Origin` are still checked.
 */
export const TOKEN_FREE: ReadonlySet<string> = new Set(["GET /v1/health", "GET /v1/openapi.json"]);

/** Limits of the control API (tests shorten the timeouts; nothing may lengthen them). */
export interface ControlLimits {
  /** Connections open at once. */
  maxConnections: number;
  /** Time to send complete request headers (ms). */
  headerTimeoutMs: number;
  /** Time a keep-alive connection with nothing in flight stays open (ms). */
  idleTimeoutMs: number;
  /** Time to send the whole request body (ms). */
  bodyTimeoutMs: number;
  /** Largest request body (bytes). */
  maxBody: number;
  /** Open long polls, follow streams and WebSockets, per kind. */
  holds: Readonly<Record<HoldKind, number>>;
}

/** The control API's default limits (src/constants.ts). */
export const CONTROL_LIMITS: Readonly<ControlLimits> = {
  maxConnections: CONTROL_MAX_CONNECTIONS,
  headerTimeoutMs: CONTROL_HEADER_TIMEOUT_MS,
  idleTimeoutMs: CONTROL_IDLE_TIMEOUT_MS,
  bodyTimeoutMs: CONTROL_BODY_TIMEOUT_MS,
  maxBody: CONTROL_MAX_BODY,
  holds: {
    long_poll: CONTROL_MAX_LONG_POLLS,
    follow: CONTROL_MAX_FOLLOWS,
    socket: CONTROL_MAX_SOCKETS,
  },
};

/** Options of {@linkcode startControlServer}. */
export interface ControlServerOptions {
  /** Overrides of {@linkcode CONTROL_LIMITS}. */
  limits?: Partial<ControlLimits>;
  /** Told of each failed accept (EMFILE and the like), so the daemon can log it. */
  onAcceptError?: (error: Error) => void;
  /** Unix socket of the HTTP server behind the gate, in a private directory (default: a new temporary one). */
  socketPath?: string;
}

/** Longest Unix socket path the kernel takes (108 bytes with the NUL), with room. */
const MAX_SOCKET_PATH = 100;

/** A running control server. */
export interface ControlServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`: the TCP port, behind the connection gate. */
  url: string;
  /** The Unix socket the HTTP server itself listens on (mode 0600): this user's clients skip the gate. */
  socket: string;
  /** Connections open, requests held open by kind, and connections dropped by reason. */
  stats(): { connections: number; held: Record<HoldKind, number>; drops: Record<GateDrop, number> };
  /** Stops accepting requests and waits for the listener to close. */
  close(): Promise<void>;
}

/**
 * Starts the control API on an OS-chosen loopback port. The HTTP server
 * listens on a Unix socket (mode 0600: `socketPath`, or one in a private
 * temporary directory when that path is too long); only the
 * {@linkcode ConnGate} in front of it listens on TCP. Clients of the same
 * user may call the socket directly: the gate guards the daemon against
 * other local users, who cannot open it.
 */
export async function startControlServer(
  routes: Routes,
  token: string,
  options: ControlServerOptions = {},
): Promise<ControlServer> {
  const limits = { ...CONTROL_LIMITS, ...options.limits };
  const holds = new Holds(limits.holds);
  const wanted = options.socketPath;
  const dir = wanted === undefined || new TextEncoder().encode(wanted).length > MAX_SOCKET_PATH
    ? await Deno.makeTempDir({ prefix: "pilot-api-" })
    : undefined;
  const path = dir === undefined ? wanted! : join(dir, "api.sock");
  // A socket left by a daemon killed with -9: its owner is gone (the caller holds the home's lock).
  await Deno.remove(path).catch(() => {});
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" });
  const port = listener.addr.port;
  const ctx: Context = { routes, token, port, limits, holds };
  let closing = false;
  let server = await serveOn(path, ctx);
  // Deno.serve's own accept loop ends on EMFILE: serve again after a pause, never exit.
  const revive = async (e: unknown): Promise<void> => {
    while (!closing) {
      options.onAcceptError?.(e as Error);
      await new Promise((r) => setTimeout(r, CONTROL_ACCEPT_BACKOFF_MS.max));
      if (closing) return;
      try {
        await Deno.remove(path).catch(() => {});
        server = await serveOn(path, ctx);
        server.finished.catch(revive);
        return;
      } catch (again) {
        e = again;
      }
    }
  };
  server.finished.catch(revive);
  const gate = new ConnGate(listener, {
    maxConnections: limits.maxConnections,
    headerTimeoutMs: limits.headerTimeoutMs,
    idleTimeoutMs: limits.idleTimeoutMs,
    acceptBackoffMs: CONTROL_ACCEPT_BACKOFF_MS,
    upstream: () => Deno.connect({ transport: "unix", path }),
    ...(options.onAcceptError ? { onAcceptError: options.onAcceptError } : {}),
  });
  return {
    url: `http://127.0.0.1:${port}`,
    socket: path,
    stats: () => ({ connections: gate.open, held: holds.open, drops: gate.drops }),
    close: async () => {
      closing = true;
      await gate.close();
      await server.shutdown().catch(() => {});
      await Deno.remove(dir ?? path, { recursive: true }).catch(() => {});
    },
  };
}

/** Serves the API's routes on the Unix socket at `path`. */
async function serveOn(path: string, ctx: Context): Promise<Deno.HttpServer<Deno.UnixAddr>> {
  const { promise, resolve } = Promise.withResolvers<void>();
  const server = Deno.serve({ path, onListen: () => resolve() }, (req) => handle(req, ctx));
  await promise;
  await Deno.chmod(path, 0o600);
  return server;
}

interface Context {
  routes: Routes;
  token: string;
  port: number;
  limits: ControlLimits;
  holds: Holds;
}

/** The kind of slot a request holds while open, read from the API's own conventions. */
function holdOf(req: Request, url: URL): HoldKind | undefined {
  if (req.headers.get("upgrade")?.toLowerCase() === "websocket") return "socket";
  if (url.searchParams.get("follow") === "true") return "follow";
  const wait = url.searchParams.get("wait");
  if (wait !== null && wait !== "0") return "long_poll";
  return undefined;
}

/**
 * A failed request in the daemon's log: an internal error (the daemon's own
 * fault) at error with its stack, any other (the caller's to handle) at debug.
 */
function logFailure(req: Request, err: PilotError, cause: unknown): void {
  const level = err.code === "internal" ? "error" : "debug";
  if (!logs(level)) return;
  const route = `${req.method} ${new URL(req.url).pathname}`;
  const stack = level === "error" && cause instanceof Error ? { stack: cause.stack } : {};
  log(`${route}: ${err.message}`, {
    level,
    event: "api.error",
    code: err.code,
    fields: { route, request_id: err.requestId, ...stack },
  });
}

async function handle(req: Request, ctx: Context): Promise<Response> {
  const { routes, token, port, limits, holds } = ctx;
  const requestId = crypto.randomUUID();
  let release: (() => void) | undefined;
  try {
    checkHost(req.headers.get("host"), port);
    checkOrigin(req.headers.get("origin"), port);
    const url = new URL(req.url);
    const key = `${req.method} ${url.pathname}`;
    if (!TOKEN_FREE.has(key)) checkToken(req.headers.get("authorization"), token);
    const handler = Object.hasOwn(routes, key) ? routes[key] : undefined;
    if (handler === undefined) {
      throw new PilotError(
        "not_found",
        `No route ${key}`,
        "see `pilot help --json` for the API routes",
      );
    }
    const kind = holdOf(req, url);
    if (kind !== undefined) release = holds.take(kind);
    const body = kind === "socket" ? undefined : await readBody(req, limits);
    let upgraded: WebSocket | undefined;
    const data = await handler({
      query: url.searchParams,
      body,
      // Made only for the routes that use it: Deno aborts every request's
      // signal once answered, and that abort costs a DOMException each.
      get signal() {
        return req.signal;
      },
      headers: req.headers,
      raw: req,
      upgrade: () => {
        const pair = Deno.upgradeWebSocket(req);
        upgraded = pair.socket;
        return pair;
      },
    });
    if (!(data instanceof Response)) return json(200, { status: "ok", data });
    if (release === undefined && isStream(data)) {
      // A stream the query did not announce (subscribe, send-file progress) counts as a follow.
      try {
        release = holds.take("follow");
      } catch (e) {
        await data.body?.cancel().catch(() => {});
        throw e;
      }
    }
    if (release === undefined) return data;
    const done = release;
    release = undefined;
    if (upgraded !== undefined) {
      upgraded.addEventListener("close", done, { once: true });
      return data;
    }
    if (data.body === null) {
      done();
      return data;
    }
    // The slot is held while the body streams, and freed however it ends.
    const relay = new TransformStream<Uint8Array, Uint8Array>();
    data.body.pipeTo(relay.writable).catch(() => {}).finally(done);
    return new Response(relay.readable, { status: data.status, headers: data.headers });
  } catch (e) {
    const err = asPilotError(e);
    err.requestId = requestId;
    logFailure(req, err, e);
    return json(err.httpStatus, errorBody(err));
  } finally {
    release?.();
  }
}

function isStream(res: Response): boolean {
  return res.body !== null && res.headers.get("content-type") === "application/x-ndjson";
}

/** Reads a JSON body, counting bytes as they arrive: nothing past `maxBody` is buffered. */
async function readBody(req: Request, limits: ControlLimits): Promise<unknown> {
  if (req.body === null) return undefined;
  const { maxBody, bodyTimeoutMs } = limits;
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBody) {
    throw new PilotError("too_large", `Request body of ${declared} bytes is over ${maxBody}`);
  }
  const reader = req.body.getReader();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    reader.cancel().catch(() => {});
  }, bodyTimeoutMs);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > maxBody) {
        reader.cancel().catch(() => {});
        throw new PilotError("too_large", `Request body of over ${maxBody} bytes is too large`);
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof PilotError) throw e;
    if (!timedOut) throw e;
  } finally {
    clearTimeout(timer);
  }
  if (timedOut) {
    throw new PilotError(
      "timeout",
      `Request body not received within ${bodyTimeoutMs} ms (${size} bytes came)`,
      "send the whole body at once",
    );
  }
  if (size === 0) return undefined;
  const buf = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    buf.set(c, at);
    at += c.length;
  }
  try {
    return JSON.parse(new TextDecoder().decode(buf));
  } catch {
    throw new PilotError(
      "invalid_argument",
      "Request body is not valid JSON",
      "send a JSON object",
    );
  }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json",
      "x-pilot-version": VERSION,
      "x-pilot-api-version": String(API_VERSION),
    },
  });
}
