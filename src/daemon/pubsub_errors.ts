/**
 * Pub/sub failures mapped onto the published error codes.
 *
 * @module
 */
import { invalid, PilotError } from "../errors.ts";
import { PubSubError } from "../services/pubsub/client.ts";

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
