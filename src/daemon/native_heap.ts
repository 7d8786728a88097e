/**
 * The C allocator's heap (glibc's, through Deno's FFI). The runtime's
 * buffers for datagrams live outside V8's heap, in the C heap, and only a
 * GC frees them.
 *
 * - After a burst they are freed, but glibc keeps the pages in its arenas,
 *   so the process's resident memory stays high long after V8's own heap
 *   is back (`deno task floods --only pinned_segments`: 20-28 MB over start
 *   at the end): {@linkcode NativeHeap.trim} gives them back.
 * - During a burst, glibc's default gives the top of its heap back as soon
 *   as 128 KiB of it is free: each minor GC freed a few megabytes of
 *   buffers, the heap shrank, and the next ones were written to fresh pages
 *   again, each a page fault (a one-way loopback stream: 25,000 faults a
 *   second in the sender, a fifth of its CPU in the kernel).
 *   {@linkcode NativeHeap.keepFree} raises that threshold while datagrams
 *   churn (`memory_settle.ts`), and puts it back once they are quiet.
 *
 * Only where it can work: Linux with glibc and `--allow-ffi`.
 *
 * @module
 */

import { openLibc } from "./_libc.ts";

/** glibc's mallopt parameter for the free top of the heap kept before it is given back. */
const M_TRIM_THRESHOLD = -1;
/** glibc's default for it (bytes). */
const DEFAULT_TRIM_THRESHOLD = 128 * 1024;

/** The C heap of this process. */
export interface NativeHeap {
  /** Gives the allocator's free pages back to the system (`malloc_trim`). */
  trim(): void;
  /**
   * Keeps up to `bytes` free at the top of the heap instead of giving it
   * back at once (null: glibc's default, 128 KiB); false when refused.
   */
  keepFree(bytes: number | null): boolean;
}

/** The C heap, or null where it cannot be managed (another system, not glibc, no FFI). */
export function nativeHeap(): NativeHeap | null {
  if (Deno.build.os !== "linux") return null;
  // Kept open for the process's life: one small mapping. Null where it does
  // not open: not glibc (musl has no malloc_trim), or no permission.
  const libc = openLibc({
    malloc_trim: { parameters: ["usize"], result: "i32" },
    mallopt: { parameters: ["i32", "i32"], result: "i32" },
  });
  if (typeof libc === "string") return null;
  return {
    trim: () => void libc.symbols.malloc_trim(0n),
    keepFree: (bytes) =>
      libc.symbols.mallopt(M_TRIM_THRESHOLD, bytes ?? DEFAULT_TRIM_THRESHOLD) === 1,
  };
}
