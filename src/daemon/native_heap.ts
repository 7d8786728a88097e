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

/** A function that trims the C heap, or null where it cannot (another system, no FFI). */
export function nativeHeapTrim(): (() => void) | null {
  if (Deno.build.os !== "linux") return null;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
  try {
    // Kept open for the process's life: one small mapping.
    const libc = Deno.dlopen("libc.so.6", {
      malloc_trim: { parameters: ["usize"], result: "i32" },
    });
    return () => void libc.symbols.malloc_trim(0n);
  } catch {
    // Not glibc (musl has no malloc_trim), or no C library where expected.
    return null;
  }
}
