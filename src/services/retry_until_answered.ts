/**
 * Reliable request/answer over datagrams: send, wait for the answer with the
 * same id, resend with backoff until it comes or time runs out. The trust
 * service (port 444) uses it for every signed message it sends; the messages
 * service rides on streams and has no need of it.
 *
 * @module
 */
import { TRUST_RETRY_MAX_MS, TRUST_RETRY_MIN_MS } from "../constants.ts";

/** Datagram requests resent until the answer with their id (hex) arrives. */
export class RetryUntilAnswered<T> {
  #waiting = new Map<string, (answer: T) => void>();

  /** Delivers an answer; false when nobody waits for that id. */
  answer(id: string, value: T): boolean {
    const resolve = this.#waiting.get(id);
    if (resolve === undefined) return false;
    this.#waiting.delete(id);
    resolve(value);
    return true;
  }

  /**
   * Calls `send` now and again with backoff until an answer for `id` arrives
   * or `timeoutMs` passes (then resolves undefined).
   */
  async run(id: string, send: () => Promise<void>, timeoutMs: number): Promise<T | undefined> {
    const { promise, resolve } = Promise.withResolvers<T | undefined>();
    this.#waiting.set(id, resolve);
    const deadline = Date.now() + timeoutMs;
    let interval = TRUST_RETRY_MIN_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const attempt = async () => {
      if (!this.#waiting.has(id)) return;
      const left = deadline - Date.now();
      if (left <= 0) {
        this.#waiting.delete(id);
        resolve(undefined);
        return;
      }
      await send().catch(() => {});
      timer = setTimeout(attempt, Math.min(interval, left));
      interval = Math.min(interval * 2, TRUST_RETRY_MAX_MS);
    };
    await attempt();
    try {
      return await promise;
    } finally {
      clearTimeout(timer);
      this.#waiting.delete(id);
    }
  }
}
