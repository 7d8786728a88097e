/**
 * Input-field helpers the contract (`contract/spec.ts`) does not cover: the
 * heartbeat query integer of follow streams, the bytes of a `data` field, a
 * message's `data` as text, and the messages of a batch. (Output is shaped in
 * views.ts.)
 *
 * @module
 */
import { asPilotError, invalid, PilotError } from "../errors.ts";
import { buildEnvelope, type OutgoingMessage } from "../daemon/outgoing_message.ts";
import type { Envelope } from "../wire/data_message.ts";
import { BATCH_MESSAGE, type Input, MAX_BATCH_MESSAGES, parseInput } from "./contract/mod.ts";

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

/** A message's input fields (`POST /v1/send`, each of a batch) as the daemon takes them. */
export function outgoingMessage(b: Input<typeof BATCH_MESSAGE.input>): OutgoingMessage {
  const meta = b.meta ?? {};
  if (
    typeof meta !== "object" || meta === null || Array.isArray(meta) ||
    !Object.values(meta).every((v) => typeof v === "string")
  ) {
    throw invalid('Field "meta" must be an object of strings');
  }
  return {
    type: b.type,
    data: messageData(b.type, b.data),
    id: b.id,
    correlationId: b.correlation_id,
    inReplyTo: b.in_reply_to,
    meta: meta as Record<string, string>,
  };
}

/**
 * The `messages` of `POST /v1/send-batch`, each checked as `POST /v1/send`
 * checks its body and built into its envelope: one bad message refuses the
 * whole batch, naming it (`messages[3]: …`), before anything is sent.
 */
export function batchEnvelopes(messages: unknown): Envelope[] {
  if (!Array.isArray(messages) || messages.length === 0 || messages.length > MAX_BATCH_MESSAGES) {
    throw invalid(
      `Field "messages" must be a list of 1 to ${MAX_BATCH_MESSAGES} messages`,
      "send a longer list as several batches",
    );
  }
  return messages.map((m, i) => {
    try {
      return buildEnvelope(outgoingMessage(parseInput(BATCH_MESSAGE, m)));
    } catch (e) {
      const err = asPilotError(e);
      throw new PilotError(err.code, `messages[${i}]: ${err.message}`, err.hint);
    }
  });
}
