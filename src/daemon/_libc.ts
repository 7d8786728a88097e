/**
 * The C library through Deno's FFI, for what the runtime's own APIs do not
 * offer (socket options, `malloc_trim`). Needs `--allow-ffi`.
 *
 * @module
 */

const LIBRARIES: Partial<Record<typeof Deno.build.os, string>> = {
  linux: "libc.so.6",
  darwin: "/usr/lib/libSystem.B.dylib",
};

/** Opens the C library with `symbols`, or says why it cannot (another system, no permission, not found). */
export function openLibc<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> | string {
  const path = LIBRARIES[Deno.build.os];
  if (path === undefined) return `not supported on ${Deno.build.os}`;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "the program runs without --allow-ffi";
  }
  try {
    return Deno.dlopen(path, symbols);
  } catch (e) {
    return `cannot load ${path}: ${(e as Error).message}`;
  }
}
