/**
 * The request/answer channel of the stream services' clients (messages on
 * port 1001, publishing on port 1002): requests are written in call order,
 * the peer answers each in the same order, and a single read loop settles
 * the waiters in that order. The loop runs only while answers are owed, so
 * an idle stream is not read. A broken answer (the stream ended, bytes that
 * do not decode, an answer that does not fit its request) fails the channel:
 * every waiter and every later request rejects with that error.
 *
 * @module
 */

/** What an answer means for its request: a value, or a refusal of this request alone. */
export type Settled<R> = { value: R } | { error: unknown };

/** How a {@linkcode StreamRpc} reads answers and reports a broken channel. */
export interface StreamRpcOptions<A> {
  /** The next answer, or null at the end of the stream; throws for bad bytes. */
  read(): Promise<A | null>;
  /** The error for a stream that ended while answers were owed. */
  ended(): unknown;
  /** Maps the error that broke the channel to what callers see (and may reset the stream). */
  failed?(e: unknown): unknown;
}

interface Waiter<A> {
  settle(answer: A): void;
  reject(e: unknown): void;
}

const noop = () => {};

/** One stream's requests and their answers, matched in order. */
export class StreamRpc<A> {
  #options: StreamRpcOptions<A>;
  /** Owed answers from `#head` on; settled ones are cleared, and the array compacted now and then. */
  #waiters: (Waiter<A> | undefined)[] = [];
  #head = 0;
  #reading = false;
  #failure: { error: unknown } | null = null;
  #tail: Promise<unknown> = Promise.resolve();

  /** A channel reading answers with `options.read`. */
  constructor(options: StreamRpcOptions<A>) {
    this.#options = options;
  }

  /** The error that broke the channel, if it is broken. */
  get failure(): { error: unknown } | null {
    return this.#failure;
  }

  /**
   * The answer to the next request written: call it in write order, just
   * before writing. `match` turns the answer into the request's result or
   * refusal, and throws when the answer does not fit the request (which
   * breaks the channel). The promise never goes unhandled.
   */
  expect<R>(match: (answer: A) => Settled<R>): { answer: Promise<R>; settled(): boolean } {
    let done = false;
    const answer = new Promise<R>((resolve, reject) => {
      if (this.#failure !== null) return reject(this.#failure.error);
      this.#waiters.push({
        settle: (a) => {
          const s = match(a);
          if ("value" in s) resolve(s.value);
          else reject(s.error);
        },
        reject,
      });
    });
    answer.then(() => done = true, () => done = true);
    if (!this.#reading && this.#failure === null) void this.#readLoop();
    return { answer, settled: () => done };
  }

  /** Runs `fn` (a request's writes) after every earlier request's writes finished. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(noop);
    return run;
  }

  async #readLoop(): Promise<void> {
    this.#reading = true;
    try {
      while (this.#head < this.#waiters.length) {
        const a = await this.#options.read();
        if (a === null) throw this.#options.ended();
        const w = this.#waiters[this.#head]!;
        // Settling first: an answer that does not fit throws and breaks the channel with w still owed.
        w.settle(a);
        this.#waiters[this.#head++] = undefined;
        if (this.#head === this.#waiters.length) {
          this.#waiters = [];
          this.#head = 0;
        } else if (this.#head >= 1024 && this.#head * 2 >= this.#waiters.length) {
          this.#waiters = this.#waiters.slice(this.#head);
          this.#head = 0;
        }
      }
    } catch (e) {
      const error = this.#options.failed?.(e) ?? e;
      this.#failure = { error };
      const owed = this.#waiters.slice(this.#head);
      this.#waiters = [];
      this.#head = 0;
      for (const w of owed) w?.reject(error);
    } finally {
      this.#reading = false;
    }
  }
}
