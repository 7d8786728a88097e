/**
 * Checks of API request fields and query parameters, done once for every
 * route: each bad value becomes an `invalid_argument` naming the field.
 *
 * @module
 */
import { invalid } from "../errors.ts";

/** Default and largest `timeout_ms` of a blocking call. */
export const TIMEOUTS = { defaultMs: 10_000, maxMs: 600_000 } as const;

/** The body as an object (an absent body is an empty object). */
export function objectBody(body: unknown): Record<string, unknown> {
  if (body === undefined) return {};
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw invalid("Request body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/** A required non-empty string field. */
export function stringField(o: Record<string, unknown>, name: string): string {
  const v = o[name];
  if (typeof v !== "string" || v === "") {
    throw invalid(`Field "${name}" must be a non-empty string`);
  }
  return v;
}

/** An optional string field ("" when absent). */
export function optionalString(o: Record<string, unknown>, name: string): string {
  const v = o[name];
  if (v === undefined) return "";
  if (typeof v !== "string") throw invalid(`Field "${name}" must be a string`);
  return v;
}

/** An optional boolean field (false when absent). */
export function optionalBool(o: Record<string, unknown>, name: string): boolean {
  const v = o[name];
  if (v === undefined) return false;
  if (typeof v !== "boolean") throw invalid(`Field "${name}" must be true or false`);
  return v;
}

/** An optional `timeout_ms`, bounded so every call ends. */
export function timeoutField(o: Record<string, unknown>): number {
  const v = o.timeout_ms;
  if (v === undefined) return TIMEOUTS.defaultMs;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > TIMEOUTS.maxMs) {
    throw invalid(`Field "timeout_ms" must be a whole number from 1 to ${TIMEOUTS.maxMs}`);
  }
  return v;
}

/** A non-negative whole-number query parameter. */
export function queryInt(q: URLSearchParams, name: string, fallback: number, max: number): number {
  const v = q.get(name);
  if (v === null || v === "") return fallback;
  if (!/^\d+$/.test(v) || Number(v) > max) {
    throw invalid(`Query parameter "${name}" must be a whole number from 0 to ${max}`);
  }
  return Number(v);
}

/** The bytes of a `data` field: text as UTF-8, or base64 when `encoding` says so. */
export function bytesField(o: Record<string, unknown>): Uint8Array {
  if (typeof o.data !== "string") throw invalid('Field "data" must be a string');
  const encoding = optionalString(o, "encoding") || "text";
  if (encoding === "text") return new TextEncoder().encode(o.data);
  if (encoding !== "base64") throw invalid('Field "encoding" must be "text" or "base64"');
  try {
    return Uint8Array.fromBase64(o.data);
  } catch {
    throw invalid('Field "data" is not valid base64');
  }
}
