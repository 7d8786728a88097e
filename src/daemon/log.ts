/**
 * The daemon's log: stderr in the foreground (journald or launchd collect
 * it), the home's `daemon.log` when started in the background. One line per
 * event, with an ISO time. The file rotates by size: `daemon.log` becomes
 * `daemon.log.1`, `.1` becomes `.2`, and so on up to `keep`. Only the daemon
 * writes the file (one per home, under the home's lock), so renaming needs no
 * lock; a reader that holds the old file open finishes it, then reopens.
 *
 * @module
 */

/** Size at which `daemon.log` rotates. */
export const LOG_ROTATE_BYTES = 10 * 1024 * 1024;
/** Rotated files kept beside `daemon.log` (`daemon.log.1` … `.3`). */
export const LOG_KEEP = 3;

interface LogFile {
  path: string;
  file: Deno.FsFile;
  /** Bytes in the current file: counted, so a write costs no stat. */
  size: number;
  maxBytes: number;
  keep: number;
}

let current: LogFile | undefined;

/** How `logToFile` rotates; the defaults are `LOG_ROTATE_BYTES` and `LOG_KEEP` (tests make them small). */
export interface RotateOptions {
  /** Rotate before a line would take the file past this many bytes. */
  maxBytes?: number;
  /** Rotated files to keep (at least 1). */
  keep?: number;
}

function open(path: string): Deno.FsFile {
  return Deno.openSync(path, { append: true, create: true, mode: 0o600 });
}

/** Sends log lines to `path` (appending, rotating by size) instead of stderr. */
export function logToFile(path: string, options: RotateOptions = {}): void {
  closeLog();
  const file = open(path);
  current = {
    path,
    file,
    size: file.statSync().size,
    maxBytes: options.maxBytes ?? LOG_ROTATE_BYTES,
    keep: Math.max(1, options.keep ?? LOG_KEEP),
  };
}

/** Shifts `path.N` up by one (the oldest falls off), moves `path` to `path.1`, opens a new `path`. */
function rotate(log: LogFile): void {
  log.file.close();
  for (let i = log.keep - 1; i >= 1; i--) {
    try {
      Deno.renameSync(`${log.path}.${i}`, `${log.path}.${i + 1}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  Deno.renameSync(log.path, `${log.path}.1`);
  log.file = open(log.path);
  log.size = 0;
}

/** Writes one log line. */
export function log(message: string): void {
  const line = `${new Date().toISOString()} ${message}\n`;
  const bytes = new TextEncoder().encode(line);
  const f = current;
  if (f === undefined) {
    Deno.stderr.writeSync(bytes);
    return;
  }
  if (f.size > 0 && f.size + bytes.length > f.maxBytes) {
    try {
      rotate(f);
    } catch {
      // A failed rename (disk trouble) must not stop the daemon: keep appending.
      if (!isOpen(f)) f.file = open(f.path);
    }
  }
  f.file.writeSync(bytes);
  f.size += bytes.length;
}

function isOpen(f: LogFile): boolean {
  try {
    f.file.statSync();
    return true;
  } catch {
    return false;
  }
}

/** Closes the log file, if any. */
export function closeLog(): void {
  current?.file.close();
  current = undefined;
}
