/**
 * Gives back the memory a burst (of datagrams, of handshakes) leaves behind.
 *
 * Every datagram costs the runtime buffers V8 does not weigh as heap: the
 * socket's copy and the decrypted bytes are ArrayBuffers whose memory lives
 * outside the young generation, so a scavenge comes only every few
 * megabytes of small objects while those buffers pile up to V8's external
 * limit (64 MiB) before a full GC frees them. After a burst, V8 keeps the
 * young generation it grew until its memory reducer runs, which it may never
 * do in a daemon that goes idle. Measured with `deno task floods` (10 s
 * each): `pinned_segments` (60 KB datagrams) peaked 62-71 MB over start and
 * ended 57-60 over; `spoofed_init` (10,000 message 1s a second) ended 45
 * over, 16 of it V8 heap.
 *
 * So, with V8's `gc` exposed (RUNTIME_V8_FLAGS):
 *
 * - a minor GC (a scavenge, well under a millisecond here) each
 *   `minorEveryBytes` of datagram churn (received and sent) frees the young
 *   buffers before they pile up;
 * - on a quiet beat (under `quietBytes` of churn), once the V8 heap has
 *   grown by `slackBytes` since the last settle and holds at least that
 *   much beyond what is in use, one memory-reducing full GC (V8's
 *   `last-resort` flavour: 40-55 ms here on a 15 MB heap) shrinks it back;
 *   at most once per `intervalMs`. The heap's growth, not the datagrams',
 *   is what counts here: a few hundred handshakes grow it by 20 MB;
 * - with a `trim` (glibc's `malloc_trim`, `native_heap.ts`), a settle also
 *   comes once `trimAfterBytes` of datagrams came since the last one, heap
 *   grown or not (at most once per `trimIntervalMs`), and after each settle
 *   the C allocator gives its free pages back: the datagrams' buffers live
 *   there, and it keeps them;
 * - with a `keepFree` (glibc's M_TRIM_THRESHOLD, `native_heap.ts`), from
 *   a minor GC to the next quiet beat the C allocator keeps `keepFreeBytes`
 *   of free pages instead of giving back all but 128 KiB at once: the
 *   buffers freed by one minor GC are then reused by the next ones, not
 *   written to fresh pages again (each a page fault).
 *
 * A stranger can cause at most one minor GC per `minorEveryBytes` it sends
 * (cheaper than the datagrams themselves) and one settle per interval.
 *
 * @module
 */
import {
  MEMORY_MINOR_GC_BYTES,
  MEMORY_SETTLE_INTERVAL_MS,
  MEMORY_SETTLE_QUIET_BYTES,
  MEMORY_SETTLE_SLACK_BYTES,
  MEMORY_TRIM_AFTER_BYTES,
  MEMORY_TRIM_INTERVAL_MS,
  NATIVE_HEAP_KEEP_FREE,
} from "../constants.ts";

/**
 * Bytes of churn a datagram counts for beside its own: the objects its
 * handling allocates (a promise chain, a decoded frame, an endpoint), so
 * that a flood of small datagrams counts too.
 */
export const DATAGRAM_CHURN = 256;

/** V8's `gc` as `--expose-gc` defines it (the options this module uses). */
export type V8Gc = (options?: { type?: "minor" | "major"; flavor?: "last-resort" }) => void;

/** V8's `gc` when the runtime exposes it (`--expose-gc`), else null. */
export function exposedGc(): V8Gc | null {
  const gc = (globalThis as { gc?: unknown }).gc;
  return typeof gc === "function" ? gc as V8Gc : null;
}

/** The thresholds (bytes, ms); the defaults are in constants.ts. */
export interface MemorySettleLimits {
  /** Churn between two minor GCs. */
  minorEveryBytes: number;
  /** Churn in one beat under which the beat is quiet. */
  quietBytes: number;
  /** Least time between two settles (ms). */
  intervalMs: number;
  /** Least heap growth since the last settle, and reserve beyond what is in use, worth a settle's pause. */
  slackBytes: number;
  /** Datagram churn since the last settle after which a quiet beat settles, heap grown or not (with a trim). */
  trimAfterBytes: number;
  /** Least time since the last settle for one brought by that churn (ms): shorter than `intervalMs`. */
  trimIntervalMs: number;
  /** Free bytes the C heap keeps at its top while datagrams churn (from a minor GC to the next quiet beat). */
  keepFreeBytes: number;
}

/** What a {@linkcode MemorySettle} uses. */
export interface MemorySettleOptions {
  /** V8's gc; null (not exposed) turns this into counting nothing. */
  gc: V8Gc | null;
  /** Gives the C allocator's free memory back (`native_heap.ts`), after each settle; null: none. */
  trim?: (() => void) | null;
  /**
   * Sets how much free memory the C allocator keeps at its heap's top
   * (`native_heap.ts`; null: its own default): `keepFreeBytes` while
   * datagrams churn, its default again on a quiet beat. Null: never set.
   */
  keepFree?: ((bytes: number | null) => void) | null;
  /** The V8 heap's reserved and used bytes. */
  heap?: () => { total: number; used: number };
  now?: () => number;
  limits?: MemorySettleLimits;
}

const DEFAULT_LIMITS: MemorySettleLimits = {
  minorEveryBytes: MEMORY_MINOR_GC_BYTES,
  quietBytes: MEMORY_SETTLE_QUIET_BYTES,
  intervalMs: MEMORY_SETTLE_INTERVAL_MS,
  slackBytes: MEMORY_SETTLE_SLACK_BYTES,
  trimAfterBytes: MEMORY_TRIM_AFTER_BYTES,
  trimIntervalMs: MEMORY_TRIM_INTERVAL_MS,
  keepFreeBytes: NATIVE_HEAP_KEEP_FREE,
};

function runtimeHeap(): { total: number; used: number } {
  const m = Deno.memoryUsage();
  return { total: m.heapTotal, used: m.heapUsed };
}

/** What a {@linkcode MemorySettle} has done so far. */
export interface MemorySettleCounts {
  /** Minor GCs run for datagram churn. */
  minor: number;
  /** Memory-reducing full GCs (settles). */
  settled: number;
  /** Times the C heap's free pages were given back. */
  trimmed: number;
}

/** Counts datagram churn; call `received` and `sent` per datagram and `beat` once a second. */
export class MemorySettle {
  #gc: V8Gc | null;
  #trim: (() => void) | null;
  #keepFree: ((bytes: number | null) => void) | null;
  /** Whether the C heap keeps `keepFreeBytes` now (since a minor GC, until a quiet beat). */
  #warm = false;
  #heap: () => { total: number; used: number };
  #now: () => number;
  #limits: MemorySettleLimits;
  #sinceMinor = 0;
  #sinceTrim = 0;
  #beatBytes = 0;
  #lastSettle = -Infinity;
  /** The heap's reserve after the last settle (at the first beat, before any). */
  #settledTotal: number | null = null;
  #minor = 0;
  #settled = 0;
  #trimmed = 0;

  /** A settle over `options.gc`; nothing happens without one. */
  constructor(options: MemorySettleOptions) {
    this.#gc = options.gc;
    this.#trim = options.trim ?? null;
    this.#keepFree = options.keepFree ?? null;
    this.#heap = options.heap ?? runtimeHeap;
    this.#now = options.now ?? (() => performance.now());
    this.#limits = options.limits ?? DEFAULT_LIMITS;
  }

  /** GCs run so far (minor ones, and settles) and trims of the C heap. */
  get counts(): MemorySettleCounts {
    return { minor: this.#minor, settled: this.#settled, trimmed: this.#trimmed };
  }

  /**
   * Work that allocates far beyond its datagram (a handshake's keys, cipher
   * states and promises) happened: it makes the beat busy like `bytes` of
   * datagrams would, so that no settle pauses the event loop in the middle
   * of a handshake flood, whose datagrams alone are a few hundred bytes.
   */
  allocated(bytes: number): void {
    this.#beatBytes += bytes;
  }

  /** A datagram of `size` bytes arrived (accepted or not: its bytes were copied). */
  received(size: number): void {
    this.#churn(size);
  }

  /**
   * A datagram of `size` bytes was sent: its plaintext and its sealed copy
   * are buffers of the same kind, and a sender's only churn (a stream's
   * sender receives nothing but ACKs).
   */
  sent(size: number): void {
    this.#churn(size);
  }

  #churn(size: number): void {
    if (this.#gc === null) return;
    const churn = size + DATAGRAM_CHURN;
    this.#beatBytes += churn;
    this.#sinceMinor += churn;
    this.#sinceTrim += churn;
    if (this.#sinceMinor < this.#limits.minorEveryBytes) return;
    this.#sinceMinor = 0;
    this.#minor++;
    this.#gc({ type: "minor" });
    if (this.#warm || this.#keepFree === null) return;
    this.#warm = true;
    this.#keepFree(this.#limits.keepFreeBytes);
  }

  /**
   * Once a second, once a burst is over: settles a heap the burst grew, and
   * trims the C heap after a settle or after `trimAfterBytes` of datagrams.
   */
  beat(): void {
    if (this.#gc === null) return;
    const quiet = this.#beatBytes < this.#limits.quietBytes;
    this.#beatBytes = 0;
    if (!quiet) return;
    if (this.#warm) {
      this.#warm = false;
      this.#keepFree?.(null);
    }
    const heap = this.#heap();
    this.#settledTotal ??= heap.total;
    const slack = this.#limits.slackBytes;
    const grown = heap.total - this.#settledTotal >= slack && heap.total - heap.used >= slack;
    // Buffers of datagrams that outlived a scavenge are freed only by a full
    // GC: a trim without one finds their pages still in use.
    const churned = this.#trim !== null && this.#sinceTrim >= this.#limits.trimAfterBytes;
    const now = this.#now();
    const since = now - this.#lastSettle;
    if (
      !(grown && since >= this.#limits.intervalMs) &&
      !(churned && since >= this.#limits.trimIntervalMs)
    ) return;
    this.#lastSettle = now;
    this.#settled++;
    this.#gc({ type: "major", flavor: "last-resort" });
    this.#settledTotal = this.#heap().total;
    // The freed buffers went back to the C allocator, which keeps their
    // pages until asked (1.7-5.3 ms here for 100-170 MB of them).
    if (this.#trim !== null) {
      this.#trimmed++;
      this.#sinceTrim = 0;
      this.#trim();
    }
  }
}
