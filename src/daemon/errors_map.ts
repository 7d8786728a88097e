/**
 * The one place the daemon turns internal failures into the published error
 * codes (src/errors.ts): a peer's refusal of a message or file, pub/sub
 * failures, and a stream that would not open. Layers below throw their own
 * typed errors (`Refusal`, `PubSubError`, `StreamError`, `DecodeError`);
 * features map them here, never inline.
 *
 * @module
 */
import { type ErrorCode, invalid, PilotError } from "../errors.ts";
import { PubSubError } from "../services/pubsub/client.ts";
import { conflictReason, type RefusalCode } from "../services/refusal.ts";
import { StreamError } from "../stream/mod.ts";
import type { Envelope } from "../wire/data_message.ts";
import { messageDigest } from "../wire/message_digest.ts";
import type { StoredContent } from "../wire/message_frame.ts";

/** The user's error code for a peer's refusal: codes a user can act on pass, the rest are `internal`. */
const USER_CODES: Partial<Record<RefusalCode, ErrorCode>> = {
  invalid_argument: "invalid_argument",
  too_large: "too_large",
  // A full disk at the peer is, to the sender, a message or file too large to take now.
  disk_full: "too_large",
  rate_limited: "rate_limited",
  conflict: "conflict",
};

/**
 * The user's error for a peer's refused receipt of `envelope`: a conflict
 * names both contents; a full inbox says to retry later.
 */
export function messageRefusalError(
  peer: string,
  envelope: Envelope,
  receipt: { detail: RefusalCode | ""; stored?: StoredContent },
): PilotError {
  const code = receipt.detail || "internal";
  if (code === "conflict" && receipt.stored !== undefined) {
    const mine = { size: envelope.data.length, digest: messageDigest(envelope) };
    return refusalError(code, {
      peer,
      what: "the message",
      why: conflictReason(envelope.id, receipt.stored, mine),
      hint: "send new content under a new --id; the same id with the same content is a safe retry",
    });
  }
  const hint = code === "rate_limited" ? "its inbox is full; retry later" : "";
  return refusalError(code, { peer, what: "the message", hint });
}

/**
 * The user's error for a peer's refusal of `what` ("the message", "the
 * file"): a published code, the peer's reason in the message, and a hint.
 */
export function refusalError(
  code: RefusalCode,
  options: { peer: string; what: string; why?: string; hint?: string },
): PilotError {
  const { peer, what, why = "", hint = "" } = options;
  return new PilotError(
    USER_CODES[code] ?? "internal",
    `${peer} refused ${what} (${code})${why === "" ? "" : `: ${why}`}`,
    hint,
  );
}

/** Runs a topic/pattern check, turning its TypeError into `invalid_argument`. */
export function pubsubInput(check: () => void): void {
  try {
    check();
  } catch (e) {
    throw invalid((e as Error).message, "topics are dot-separated labels of a-z, 0-9, _ and -");
  }
}

/** Maps pub/sub failures onto the published error codes. */
export function pubsubError(e: unknown): Error {
  if (e instanceof PilotError) return e;
  if (e instanceof PubSubError) {
    const code = e.code === "bad_topic" || e.code === "bad_pattern"
      ? "invalid_argument"
      : e.code === "limit"
      ? "rate_limited"
      : e.code === "too_large"
      ? "too_large"
      : "unreachable";
    return new PilotError(code, e.message, code === "unreachable" ? "retry" : "");
  }
  if (e instanceof RangeError) return new PilotError("too_large", e.message);
  if (e instanceof TypeError) return invalid(e.message);
  return new PilotError("unreachable", (e as Error).message, "retry");
}

/** Maps a failed stream open to `port` of `address`: nothing listening is `not_found`. */
export function streamOpenError(e: unknown, address: string, port: number): PilotError {
  if (e instanceof PilotError) return e;
  const refused = e instanceof StreamError && e.code === "refused";
  return new PilotError(
    refused ? "not_found" : "unreachable",
    `Cannot open a stream to ${address}:${port}: ${(e as Error).message}`,
    refused ? "nothing listens on that port" : "retry",
  );
}
