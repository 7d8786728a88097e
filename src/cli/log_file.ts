/**
 * Reading the daemon's log file (`daemon/log.ts` writes it): its last lines,
 * filled from the rotated `daemon.log.1`, and following it as it grows and
 * rotates. Reads only, so the CLI needs no daemon for it.
 *
 * @module
 */

/**
 * The last `n` lines of `path`, filled from `path.1` when `path` has fewer
 * (none when neither exists), and the length of `path` they were read from,
 * where {@linkcode followLog} goes on.
 */
export async function lastLogLines(
  path: string,
  n: number,
): Promise<{ lines: string[]; end: number }> {
  const lines: string[] = [];
  let end = 0;
  for (const p of [path, `${path}.1`]) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(p);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    if (p === path) end = bytes.length;
    if (lines.length >= n) break;
    const text = new TextDecoder().decode(bytes);
    const own = text === "" ? [] : text.replace(/\n$/, "").split("\n");
    lines.unshift(...own.slice(Math.max(0, own.length - (n - lines.length))));
  }
  return { lines, end };
}

/**
 * Calls `onLines` with each batch of whole lines written to `path` from byte
 * `from` on (a file not there yet is read from its start), polling every
 * `intervalMs`, until `signal` aborts. Survives rotation: the old file is
 * read to its end before the new one is opened.
 */
export async function followLog(
  path: string,
  onLines: (lines: string[]) => void,
  options: { signal: AbortSignal; from?: number; intervalMs?: number },
): Promise<void> {
  const intervalMs = options.intervalMs ?? 250;
  const decoder = new TextDecoder();
  let file: Deno.FsFile | undefined;
  let partial = "";
  const buf = new Uint8Array(64 * 1024);
  const drain = async (f: Deno.FsFile) => {
    let text = "";
    for (;;) {
      const n = await f.read(buf);
      if (n === null || n === 0) break;
      text += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    if (text === "") return;
    const parts = (partial + text).split("\n");
    partial = parts.pop()!;
    if (parts.length > 0) onLines(parts);
  };
  const openAt = async (offset: number) => {
    try {
      const f = await Deno.open(path, { read: true });
      await f.seek(offset, Deno.SeekMode.Start);
      return f;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  };
  file = await openAt(options.from ?? 0);
  try {
    while (!options.signal.aborted) {
      if (file !== undefined) await drain(file);
      const now = await Deno.stat(path).catch(() => null);
      if (now !== null && (file === undefined || now.ino !== (await file.stat()).ino)) {
        // Rotated (or created): finish the old file; all of the new one is new.
        if (file !== undefined) await drain(file);
        file?.close();
        file = await openAt(0);
        partial = "";
        continue;
      }
      if (file !== undefined && now !== null) {
        const pos = await file.seek(0, Deno.SeekMode.Current);
        if (now.size < pos) await file.seek(0, Deno.SeekMode.Start); // truncated
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, intervalMs);
        options.signal.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
    }
  } finally {
    file?.close();
  }
}
