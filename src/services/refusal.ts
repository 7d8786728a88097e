/**
 * A refusal: a store or service declining one message or file for a reason
 * the sender is told in its receipt. Stores throw it, the data-exchange
 * service turns it into the receipt's detail, and the sending daemon turns
 * the detail back into the user's error with {@linkcode refusalError}.
 *
 * @module
 */
import { type ErrorCode, PilotError } from "../errors.ts";
import type { Envelope } from "../wire/data_message.ts";
import type { StoredContent } from "../wire/message_frame.ts";
import { messageDigest } from "../wire/message_digest.ts";
import type { RefusalCode } from "../wire/refusal_code.ts";

export { isRefusalCode, REFUSAL_CODES, type RefusalCode } from "../wire/refusal_code.ts";

/** A refusal with its code; the message says why, for logs. */
export class Refusal extends Error {
  /** The code the receipt carries. */
  readonly code: RefusalCode;

  /** Creates a refusal; the message defaults to the code. */
  constructor(code: RefusalCode, message: string = code) {
    super(message);
    this.name = "Refusal";
    this.code = code;
  }
}

/**
 * A `conflict`: the sender already stored other content under this message
 * id. It names what is stored, so the sender can tell the user both sides.
 */
export class ConflictRefusal extends Refusal {
  /** Size and content digest of the message stored under the id. */
  readonly stored: StoredContent;

  /** Creates a conflict naming the stored content. */
  constructor(stored: StoredContent, message = "conflict") {
    super("conflict", message);
    this.stored = stored;
  }
}

/** The code of a thrown value: a refusal's own, anything else `internal`. */
export function refusalCodeOf(e: unknown): RefusalCode {
  if (!(e instanceof Refusal)) return "internal";
  // A message conflict travels with what is stored; one that cannot say it is a bug.
  if (e.code === "conflict" && !(e instanceof ConflictRefusal)) return "internal";
  return e.code;
}

/** A digest as people compare it: the first 8 hex digits. */
export function shortDigest(digest: Uint8Array): string {
  return `sha256 ${digest.subarray(0, 4).toHex()}…`;
}

/**
 * Why a message id conflicts, for the sender: the id, what the peer stored
 * under it and what this message is (sizes and short digests).
 */
export function conflictReason(id: string, stored: StoredContent, mine: StoredContent): string {
  return `id ${JSON.stringify(id)} already names a message of ${stored.size} bytes ` +
    `(${shortDigest(stored.digest)}) from this node; this one is ${mine.size} bytes ` +
    `(${shortDigest(mine.digest)})`;
}

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
