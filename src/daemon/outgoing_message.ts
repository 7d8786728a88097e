/**
 * What the user hands to `send`, `call` and `reply`, checked and turned into
 * an envelope before anything is sent; and the check of trust reasons.
 *
 * @module
 */
import {
  MAX_MESSAGE_ID,
  MAX_META_ENTRIES,
  MAX_META_KEY,
  MAX_META_VALUE,
  MAX_STREAM_MESSAGE,
  TRUST_REASON_MAX,
} from "../constants.ts";
import { invalid, PilotError } from "../errors.ts";
import { type Envelope, MESSAGE_TYPES, type MessageType } from "../wire/data_message.ts";

/** Checks a user-supplied reason (untrusted text travels to the peer). */
export function checkReason(reason: string): string {
  if (new TextEncoder().encode(reason).length > TRUST_REASON_MAX) {
    throw new PilotError("too_large", `Reason is over ${TRUST_REASON_MAX} bytes`, "shorten it");
  }
  if (reason.includes("\0")) throw invalid("Reason must not contain NUL characters");
  return reason;
}

/** A message as `pilot send` gives it. */
export interface OutgoingMessage {
  /** Data type. */
  type: string;
  /** Text, JSON text (a JSON value given to the API arrives here as its text), or base64 for binary. */
  data: string;
  /** Idempotency id ("" = a new random one). */
  id: string;
  /** Optional envelope fields. */
  correlationId?: string;
  /** Id of the message this answers. */
  inReplyTo?: string;
  /** Small string map. */
  meta?: Record<string, string>;
}

/** Checks and builds an envelope before anything is sent. */
export function buildEnvelope(m: OutgoingMessage): Envelope {
  if (!(MESSAGE_TYPES as readonly string[]).includes(m.type)) {
    throw invalid(`Unknown message type "${m.type}"`, "use text, json or binary");
  }
  const type = m.type as MessageType;
  let data: Uint8Array;
  if (type === "binary") {
    try {
      data = Uint8Array.fromBase64(m.data);
    } catch {
      throw invalid("Binary data is not valid base64", "send binary data base64-encoded");
    }
  } else {
    // The one check of json text on the way out: the API turns a JSON value
    // into its text first, so only a string holding bad JSON reaches here.
    if (type === "json") {
      try {
        JSON.parse(m.data);
      } catch (e) {
        throw invalid(
          `Field "data" is not valid JSON text: ${(e as Error).message}`,
          'give "data" as a JSON value, or a string holding JSON text',
        );
      }
    }
    data = new TextEncoder().encode(m.data);
  }
  if (data.length > MAX_STREAM_MESSAGE) {
    throw new PilotError(
      "too_large",
      `Message data is ${data.length} bytes; at most ${MAX_STREAM_MESSAGE}`,
      "split it, or send it as a file (pilot send-file)",
    );
  }
  const id = m.id === "" ? crypto.randomUUID() : m.id;
  if (new TextEncoder().encode(id).length > MAX_MESSAGE_ID) {
    throw invalid(`Message id is over ${MAX_MESSAGE_ID} bytes`);
  }
  const bytes = (t: string) => new TextEncoder().encode(t).length;
  for (const [name, v] of [["correlation_id", m.correlationId], ["in_reply_to", m.inReplyTo]]) {
    if (v !== undefined && bytes(v) > MAX_MESSAGE_ID) {
      throw invalid(`${name} is over ${MAX_MESSAGE_ID} bytes`);
    }
  }
  const meta = m.meta ?? {};
  const entries = Object.entries(meta);
  if (entries.length > MAX_META_ENTRIES) {
    throw invalid(`meta has ${entries.length} entries; at most ${MAX_META_ENTRIES}`);
  }
  for (const [k, v] of entries) {
    if (k === "" || bytes(k) > MAX_META_KEY || bytes(v) > MAX_META_VALUE) {
      throw invalid(
        `meta entry "${k}" is out of bounds`,
        `keys 1-${MAX_META_KEY} bytes, values up to ${MAX_META_VALUE} bytes`,
      );
    }
  }
  return {
    id,
    type,
    correlationId: m.correlationId ?? "",
    inReplyTo: m.inReplyTo ?? "",
    expiresAt: 0,
    meta,
    data,
  };
}
