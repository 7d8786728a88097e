/**
 * A bound on any wait: every blocking call ends.
 *
 * @module
 */
import { PilotError } from "./errors.ts";

/** Rejects with `timeout` when `p` takes longer than `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new PilotError("timeout", `${what} did not finish within ${ms} ms`, "retry")),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
