/**
 * Long waits from the CLI as a series of bounded polls: the API bounds each
 * call (a dead client never pins the daemon), while `--timeout` may be longer
 * or `0` for no limit.
 *
 * @module
 */

/**
 * Calls `poll(ms)` with waits of at most `maxMs` until it returns true or
 * `totalMs` has passed (`0`: no limit). Returns whether `poll` finished.
 */
export async function renewing(
  totalMs: number,
  maxMs: number,
  poll: (ms: number) => Promise<boolean>,
  now: () => number = Date.now,
): Promise<boolean> {
  const deadline = totalMs === 0 ? Infinity : now() + totalMs;
  while (true) {
    const left = deadline - now();
    if (left <= 0) return false;
    if (await poll(Math.max(1, Math.min(left, maxMs)))) return true;
  }
}
