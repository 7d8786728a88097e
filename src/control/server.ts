/**
 * The daemon's local HTTP control API: the only path between the CLI (or any
 * agent) and the daemon. JSON in and out, `/v1/...` routes, one place that
 * turns errors into responses.
 *
 * @module
 */
import { API_VERSION, VERSION } from "../constants.ts";
import { errorBody, PilotError } from "../errors.ts";
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
  /** The raw request (for WebSocket upgrades). */
  raw: Request;
}

/** A route handler: returns the `data` of an ok response, or throws PilotError. */
export type Handler = (req: ApiRequest) => Promise<unknown>;

/** Routes keyed as `"GET /v1/info"`. */
export type Routes = Record<string, Handler>;

/** Largest request body accepted (bytes): a 16 MiB message as base64, with room. */
const MAX_BODY = 32 * 1024 * 1024;

/** A running control server. */
export interface ControlServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Stops accepting requests and waits for the listener to close. */
  close(): Promise<void>;
}

/** Starts the control API on an OS-chosen loopback port. */
export function startControlServer(routes: Routes, token: string): Promise<ControlServer> {
  let port = 0;
  const { promise, resolve } = Promise.withResolvers<ControlServer>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: (addr) => {
      port = addr.port;
      resolve({ url: `http://127.0.0.1:${port}`, close: () => server.shutdown() });
    },
  }, (req) => handle(req, routes, token, port));
  return promise;
}

async function handle(req: Request, routes: Routes, token: string, port: number) {
  const requestId = crypto.randomUUID();
  try {
    checkHost(req.headers.get("host"), port);
    checkOrigin(req.headers.get("origin"), port);
    const url = new URL(req.url);
    const key = `${req.method} ${url.pathname}`;
    if (key !== "GET /v1/health") checkToken(req.headers.get("authorization"), token);
    const handler = Object.hasOwn(routes, key) ? routes[key] : undefined;
    if (handler === undefined) {
      throw new PilotError(
        "not_found",
        `No route ${key}`,
        "see `pilot help --json` for the API routes",
      );
    }
    const body = req.headers.get("upgrade")?.toLowerCase() === "websocket"
      ? undefined
      : await readBody(req);
    const data = await handler({
      query: url.searchParams,
      body,
      signal: req.signal,
      headers: req.headers,
      raw: req,
    });
    if (data instanceof Response) return data;
    return json(200, { status: "ok", data });
  } catch (e) {
    const err = e instanceof PilotError
      ? e
      : new PilotError("internal", `Internal error: ${(e as Error).message}`, "see the daemon log");
    err.requestId = requestId;
    return json(err.httpStatus, errorBody(err));
  }
}

async function readBody(req: Request): Promise<unknown> {
  if (req.body === null) return undefined;
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY) {
    throw new PilotError("too_large", `Request body of ${declared} bytes is over ${MAX_BODY}`);
  }
  const buf = new Uint8Array(await req.arrayBuffer());
  if (buf.length > MAX_BODY) {
    throw new PilotError("too_large", `Request body of ${buf.length} bytes is over ${MAX_BODY}`);
  }
  if (buf.length === 0) return undefined;
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
