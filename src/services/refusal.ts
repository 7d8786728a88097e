/**
 * A refusal: a store or service declining one message or file for a reason
 * the sender is told in its receipt. Stores throw it, the data-exchange
 * service turns it into the receipt's detail, and the sending daemon turns
 * the detail back into the user's error with {@linkcode refusalError}.
 *
 * @module
 */
import { type ErrorCode, PilotError } from "../errors.ts";
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

/** The code of a thrown value: a refusal's own, anything else `internal`. */
export function refusalCodeOf(e: unknown): RefusalCode {
  return e instanceof Refusal ? e.code : "internal";
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
