/**
 * The daemon's one timer. An idle node wakes once a beat (a second); while
 * work needs a finer clock (a handshake being retried, punch probes due),
 * every `fastMs`. Each wake costs the runtime far more than the little the
 * timers then do (about 0.3% of a core per wake a second, measured), so an
 * idle daemon with thousands of sessions must not wake four times a second
 * for nothing.
 *
 * @module
 */

import { GLOBAL_TIMERS, type Timers } from "./timers.ts";

/** What a {@linkcode Ticker} runs, and how often. */
export interface TickerOptions {
  /** The finer period, while `busy()` (ms). */
  fastMs: number;
  /** The beat: `run` gets `beat` true at most this often, and is called at least this often (ms). */
  beatMs: number;
  /** Whether the next run should come after `fastMs` rather than at the next beat. */
  busy: () => boolean;
  /** The work; `beat` when a beat is due, which is also when it runs at all while idle. */
  run: (now: number, beat: boolean) => void;
  /** Receives what `run` throws; the timer is re-armed either way. */
  onError?: (e: unknown) => void;
  /** Clock (ms); `performance.now` by default. */
  now?: () => number;
  /** Timers; the global ones by default. */
  timers?: Timers;
}

/** One timer re-armed after every run: at the next beat, or sooner while busy or woken. */
export class Ticker {
  #o: TickerOptions;
  #now: () => number;
  #timers: Timers;
  #id: unknown;
  /** When the armed timer fires; Infinity when none is (stopped). */
  #firesAt = Infinity;
  #beatAt = 0;
  #running = false;
  /** Inside `run`: the timer is re-armed when it returns, so a wake then has nothing to move. */
  #firing = false;

  /** A stopped ticker; `start()` arms it. */
  constructor(options: TickerOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
    this.#timers = options.timers ?? GLOBAL_TIMERS;
  }

  /** Arms the timer: the first beat comes `beatMs` from now. */
  start(): void {
    this.stop();
    this.#running = true;
    const now = this.#now();
    this.#beatAt = now + this.#o.beatMs;
    this.#arm(now);
  }

  /**
   * Work that needs the finer clock has begun (call after it makes `busy()`
   * true): a timer armed for later than `fastMs` from now is brought forward.
   */
  wake(): void {
    if (!this.#running || this.#firing) return;
    const now = this.#now();
    if (this.#firesAt - now <= this.#o.fastMs) return;
    this.#timers.clearTimeout(this.#id);
    this.#set(now, this.#o.fastMs);
  }

  /** Cancels the timer; wakes do nothing until `start()`. */
  stop(): void {
    this.#running = false;
    if (this.#firesAt !== Infinity) this.#timers.clearTimeout(this.#id);
    this.#firesAt = Infinity;
  }

  #fire(): void {
    this.#firesAt = Infinity;
    const now = this.#now();
    // Half a fast period early counts: a timer firing a little early must not skip a beat.
    const beat = now >= this.#beatAt - this.#o.fastMs / 2;
    if (beat) {
      this.#beatAt += this.#o.beatMs;
      // After a stall (the event loop blocked for seconds) the beat starts
      // again from now, a whole beat later: none is run early to catch up.
      if (this.#beatAt <= now) this.#beatAt = now + this.#o.beatMs;
    }
    this.#firing = true;
    try {
      this.#o.run(now, beat);
    } catch (e) {
      this.#o.onError?.(e);
    } finally {
      this.#firing = false;
      if (this.#running) this.#arm(this.#now());
    }
  }

  #arm(now: number): void {
    const untilBeat = Math.max(0, this.#beatAt - now);
    this.#set(now, this.#o.busy() ? Math.min(this.#o.fastMs, untilBeat) : untilBeat);
  }

  #set(now: number, ms: number): void {
    this.#firesAt = now + ms;
    this.#id = this.#timers.setTimeout(() => this.#fire(), ms);
  }
}
