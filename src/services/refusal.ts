/**
 * A refusal: a store or service declining one message or file for a reason
 * the sender is told in its receipt. Stores throw it, the data-exchange
 * service turns it into the receipt's detail, and the sending daemon turns
 * the detail back into the user's error (daemon/errors_map.ts).
 *
 * @module
 */
import type { StoredContent } from "../wire/message_frame.ts";
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
