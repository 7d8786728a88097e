/**
 * The control API's routes: each maps one CLI command onto the node. Input
 * is checked here, once, so every caller (CLI or agent) gets the same errors.
 *
 * @module
 */
import { API_VERSION, VERSION } from "../constants.ts";
import type { Node } from "../daemon/node.ts";
import type { Routes } from "./server.ts";
import {
  objectBody,
  optionalBool,
  optionalString,
  queryInt,
  stringField,
  timeoutField,
} from "./fields.ts";

/** Heartbeat interval of follow streams (ms); a query may shorten it. */
export const HEARTBEAT_MS = 15_000;

/**
 * Waits for `next()` or until a heartbeat is due; yields a heartbeat line in
 * the latter case so readers can tell a quiet stream from a dead one.
 */
async function* waitOrHeartbeat(
  next: () => Promise<void>,
  cursor: number,
  heartbeatMs: number,
  signal: AbortSignal,
): AsyncGenerator<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const beat = new Promise<"beat">((r) => timer = setTimeout(() => r("beat"), heartbeatMs));
  const woke = await Promise.race([next().then(() => "next" as const), beat]);
  clearTimeout(timer);
  if (woke === "beat" && !signal.aborted) {
    yield { type: "heartbeat", seq: cursor, time: new Date().toISOString() };
  }
}

/** An NDJSON streaming response fed by `lines`, ended when the client goes away. */
export function ndjson(
  signal: AbortSignal,
  lines: (signal: AbortSignal) => AsyncGenerator<unknown>,
): Response {
  const encoder = new TextEncoder();
  const ac = new AbortController();
  signal.addEventListener("abort", () => ac.abort(), { once: true });
  const it = lines(ac.signal);
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(encoder.encode(JSON.stringify(value) + "\n"));
    },
    cancel() {
      ac.abort();
    },
  });
  return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
}

/** Builds the route table for a node; `shutdown` stops the daemon. */
export function nodeRoutes(node: Node, shutdown: () => void): Routes {
  return {
    "GET /v1/health": () =>
      Promise.resolve({ ok: true, pid: Deno.pid, version: VERSION, api_version: API_VERSION }),
    "GET /v1/info": () => Promise.resolve({ ...node.info(), pid: Deno.pid, version: VERSION }),
    "GET /v1/peers": () => Promise.resolve({ peers: node.peers() }),
    "POST /v1/connect": async (req) => {
      const body = objectBody(req.body);
      return await node.connect(stringField(body, "peer"), timeoutField(body));
    },
    "POST /v1/handshake": async (req) => {
      const b = objectBody(req.body);
      return await node.handshake(
        stringField(b, "peer"),
        optionalString(b, "reason"),
        optionalBool(b, "wait"),
        timeoutField(b),
      );
    },
    "GET /v1/pending": () => Promise.resolve(node.pending()),
    "POST /v1/approve": async (req) => {
      const b = objectBody(req.body);
      return await node.approve(stringField(b, "peer"), timeoutField(b));
    },
    "POST /v1/reject": async (req) => {
      const b = objectBody(req.body);
      return await node.reject(
        stringField(b, "peer"),
        optionalString(b, "reason"),
        timeoutField(b),
      );
    },
    "GET /v1/trust": () => Promise.resolve(node.trusted()),
    "POST /v1/untrust": async (req) => {
      const b = objectBody(req.body);
      return await node.untrust(stringField(b, "peer"), timeoutField(b));
    },
    "GET /v1/events": (req) => {
      const after = queryInt(req.query, "after", 0, Number.MAX_SAFE_INTEGER);
      const limit = queryInt(req.query, "limit", 1000, 10_000);
      if (req.query.get("follow") !== "true") {
        const events = node.events.since(after, limit);
        return Promise.resolve({ events, next: events.at(-1)?.seq ?? after });
      }
      const heartbeatMs = queryInt(req.query, "heartbeat_ms", HEARTBEAT_MS, HEARTBEAT_MS);
      return Promise.resolve(ndjson(req.signal, async function* (signal) {
        let cursor = after;
        while (!signal.aborted) {
          for (const e of node.events.since(cursor, limit)) {
            cursor = e.seq;
            yield e;
          }
          yield* waitOrHeartbeat(() => node.events.next(signal), cursor, heartbeatMs, signal);
        }
      }));
    },
    "POST /v1/shutdown": () => {
      setTimeout(shutdown, 0);
      return Promise.resolve({ stopped: true });
    },
  };
}
