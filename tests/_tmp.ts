/**
 * Temporary directories for tests, removed by `await using` however the test
 * ends:
 *
 * ```ts
 * await using dir = await tempDir("pilot-log-");
 * const path = join(dir.path, "a.log");
 * ```
 *
 * @module
 */

/** A temporary directory that removes itself, with everything in it, when disposed. */
export interface TempDir extends AsyncDisposable {
  /** Absolute path of the directory (mode 0700, like a node's home). */
  readonly path: string;
}

/** Creates a temporary directory for `await using`; `prefix` names it for whoever finds a leftover. */
export async function tempDir(prefix = "pilot-test-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  // Homes must be 0700; making it explicit keeps that true under any umask.
  await Deno.chmod(path, 0o700);
  return {
    path,
    async [Symbol.asyncDispose]() {
      try {
        await Deno.remove(path, { recursive: true });
      } catch (e) {
        // A test may remove its directory itself (to test a missing home).
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    },
  };
}
