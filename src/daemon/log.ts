/**
 * The daemon's log: stderr in the foreground, the home's `daemon.log` when
 * started in the background. One line per event, with an ISO time.
 *
 * @module
 */

let file: Deno.FsFile | undefined;

/** Sends log lines to `path` (appending) instead of stderr. */
export function logToFile(path: string): void {
  file = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
}

/** Writes one log line. */
export function log(message: string): void {
  const line = `${new Date().toISOString()} ${message}\n`;
  const bytes = new TextEncoder().encode(line);
  if (file) file.writeSync(bytes);
  else Deno.stderr.writeSync(bytes);
}

/** Closes the log file, if any. */
export function closeLog(): void {
  file?.close();
  file = undefined;
}
