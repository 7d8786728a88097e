/**
 * Gives the C allocator's free memory back to the system (glibc's
 * `malloc_trim`, through Deno's FFI). The runtime's buffers for datagrams
 * live outside V8's heap; after a burst they are freed, but glibc keeps the
 * pages in its arenas, so the process's resident memory stays high long
 * after V8's own heap is back (`deno task floods --only pinned_segments`:
 * 20-28 MB over start at the end). Only where it can work: Linux with glibc
 * and `--allow-ffi`.
 *
 * @module
 */

import { openLibc } from "./_libc.ts";

/** A function that trims the C heap, or null where it cannot (another system, no FFI). */
export function nativeHeapTrim(): (() => void) | null {
  if (Deno.build.os !== "linux") return null;
  // Kept open for the process's life: one small mapping. Null where it does
  // not open: not glibc (musl has no malloc_trim), or no permission.
  const libc = openLibc({ malloc_trim: { parameters: ["usize"], result: "i32" } });
  return typeof libc === "string" ? null : () => void libc.symbols.malloc_trim(0n);
}
