/**
 * Input-field helpers the contract (`contract/spec.ts`) does not cover: the
 * heartbeat query integer of follow streams, the bytes of a `data` field, and
 * a message's `data` as text. (Output is shaped in views.ts.)
 *
 * @module
 */
import { invalid } from "../errors.ts";

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
export function bytesField(data: string, encoding: string): Uint8Array {
  if (encoding === "text") return new TextEncoder().encode(data);
  try {
    return Uint8Array.fromBase64(data);
  } catch {
    throw invalid('Field "data" is not valid base64');
  }
}

/**
 * A message's `data` as the daemon takes it (text). For `type: json` it may
 * be any JSON value, written here as its JSON text, so agents need not encode
 * twice; a string is still taken as the JSON text itself.
 */
export function messageData(type: string, data: unknown): string {
  if (typeof data === "string") return data;
  if (type === "json") return JSON.stringify(data);
  throw invalid('Field "data" must be a string', 'only "type": "json" takes a JSON value');
}
