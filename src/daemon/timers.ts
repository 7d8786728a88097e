/**
 * The timer functions the daemon's schedulers take (the ticker, webhook
 * retries), so that tests can drive them with a fake clock.
 *
 * @module
 */

/** `setTimeout` and `clearTimeout`, as a component uses them. */
export interface Timers {
  /** Calls `fn` after `ms`; returns what `clearTimeout` takes. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer of `setTimeout`. */
  clearTimeout(id: unknown): void;
}

/** The global timers. */
export const GLOBAL_TIMERS: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};
