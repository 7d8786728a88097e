/**
 * The content digest of a message: what "the same message" means for
 * idempotency (docs/PROTOCOL.md §9.3). A retry with the same id and the same
 * digest is the harmless duplicate; the same id with another digest is a
 * `conflict`. It covers everything a sender chose except the id:
 *
 * SHA-256 of `"pilot/message-digest/v1"` ‖ `type` u8 (1 text, 2 json,
 * 3 binary) ‖ `correlation_id` ‖ `in_reply_to` ‖ `expires_at` u64 ‖
 * `meta_count` u32 ‖ per entry, keys in UTF-8 byte order: key ‖ value ‖
 * `data`, where each string or byte field is a u32 length and its bytes.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { compareBytes, utf8 } from "../bytes.ts";
import { type Envelope, MESSAGE_TYPES } from "./data_message.ts";

/** Bytes of a content digest (SHA-256). */
export const MESSAGE_DIGEST_SIZE = 32;

/** A message's content: its envelope without the id. */
export type MessageContent = Omit<Envelope, "id">;

const DOMAIN = utf8("pilot/message-digest/v1");

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/**
 * The content digest (32 bytes) of a message, id excluded.
 *
 * @example
 * ```ts
 * import { messageDigest } from "./message_digest.ts";
 * const content = {
 *   type: "text" as const,
 *   correlationId: "",
 *   inReplyTo: "",
 *   expiresAt: 0,
 *   meta: {},
 *   data: new TextEncoder().encode("hi"),
 * };
 * messageDigest(content).length; // 32
 * ```
 */
export function messageDigest(content: MessageContent): Uint8Array {
  const hash = createHash("sha256");
  const field = (b: Uint8Array) => hash.update(u32(b.length)).update(b);
  hash.update(DOMAIN);
  hash.update(Uint8Array.of(MESSAGE_TYPES.indexOf(content.type) + 1));
  field(utf8(content.correlationId));
  field(utf8(content.inReplyTo));
  const expires = new Uint8Array(8);
  new DataView(expires.buffer).setBigUint64(0, BigInt(content.expiresAt));
  hash.update(expires);
  const entries = Object.entries(content.meta).map(([k, v]) => [utf8(k), utf8(v)] as const);
  entries.sort((x, y) => compareBytes(x[0], y[0]));
  hash.update(u32(entries.length));
  for (const [k, v] of entries) {
    field(k);
    field(v);
  }
  field(content.data);
  return new Uint8Array(hash.digest());
}
