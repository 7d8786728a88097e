/**
 * The control API's routes: each maps one CLI command onto the node. Input
 * is checked here, once, so every caller (CLI or agent) gets the same errors.
 *
 * @module
 */
import { API_VERSION, VERSION } from "../constants.ts";
import { invalid } from "../errors.ts";
import type { Node } from "../daemon/node.ts";
import type { Routes } from "./server.ts";

/** Default and largest `timeout_ms` of a blocking call. */
export const TIMEOUTS = { defaultMs: 10_000, maxMs: 600_000 } as const;

function objectBody(body: unknown): Record<string, unknown> {
  if (body === undefined) return {};
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw invalid("Request body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

function stringField(o: Record<string, unknown>, name: string): string {
  const v = o[name];
  if (typeof v !== "string" || v === "") {
    throw invalid(`Field "${name}" must be a non-empty string`);
  }
  return v;
}

/** Reads an optional `timeout_ms`, bounded so every call ends. */
export function timeoutField(o: Record<string, unknown>): number {
  const v = o.timeout_ms;
  if (v === undefined) return TIMEOUTS.defaultMs;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > TIMEOUTS.maxMs) {
    throw invalid(`Field "timeout_ms" must be a whole number from 1 to ${TIMEOUTS.maxMs}`);
  }
  return v;
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
    "POST /v1/shutdown": () => {
      setTimeout(shutdown, 0);
      return Promise.resolve({ stopped: true });
    },
  };
}
