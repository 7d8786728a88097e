/**
 * The daemon's log: stderr in the foreground (journald or launchd collect
 * it), the home's `daemon.log` when started in the background. One line per
 * event, with an ISO time, a level and the event's name: text
 * (`TIME LEVEL EVENT: MESSAGE`) or JSON lines (`{"time", "level", "event",
 * "msg", "code"?, …fields}`). Lines below the level set are never formatted.
 * The file rotates by size: `daemon.log` becomes
 * `daemon.log.1`, `.1` becomes `.2`, and so on up to `keep`. Only the daemon
 * writes the file (one per home, under the home's lock), so renaming needs no
 * lock; a reader that holds the old file open finishes it, then reopens.
 *
 * @module
 */

import { LOG_KEEP, LOG_ROTATE_BYTES } from "../constants.ts";
import { PilotError } from "../errors.ts";

/** The log levels, most severe first: a level shows its own lines and those above it. */
export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
/** One log level. */
export type LogLevel = typeof LOG_LEVELS[number];
/** How lines are written: text for people, JSON lines for machines. */
export const LOG_FORMATS = ["text", "json"] as const;
/** One log format. */
export type LogFormat = typeof LOG_FORMATS[number];

/** What a line says beside its message. */
export interface LogLine {
  /** How much it matters (default info). */
  level?: LogLevel;
  /** What happened, e.g. `peer.up` (default `log`). */
  event?: string;
  /** The error code, for a line about an error. */
  code?: string;
  /** Details; in JSON lines each is a key (the keys above win over a field of the same name). */
  fields?: Record<string, unknown>;
}

/** `{ code }` of an error that has one (a PilotError), for a line about it; else `{}`. */
export function codeOf(e: unknown): { code?: string } {
  return e instanceof PilotError ? { code: e.code } : {};
}

let shown: number = LOG_LEVELS.indexOf("info");
let format: LogFormat = "text";

/** Sets the lowest level written and the format of the lines. */
export function configureLog(options: { level?: LogLevel; format?: LogFormat }): void {
  if (options.level !== undefined) shown = LOG_LEVELS.indexOf(options.level);
  if (options.format !== undefined) format = options.format;
}

/** Whether a line at `level` would be written (to skip building one that would not). */
export function logs(level: LogLevel): boolean {
  return LOG_LEVELS.indexOf(level) <= shown;
}

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

/** Writes one log line (at info unless `line` says otherwise), if its level is shown. */
export function log(message: string, line: LogLine = {}): void {
  const level = line.level ?? "info";
  if (!logs(level)) return;
  write(`${formatLine(new Date().toISOString(), level, message, line)}\n`);
}

/** One line, without its newline. */
function formatLine(time: string, level: LogLevel, message: string, line: LogLine): string {
  const event = line.event ?? "log";
  if (format === "json") {
    const head: Record<string, unknown> = { time, level, event, msg: message };
    if (line.code !== undefined) head.code = line.code;
    for (const [k, v] of Object.entries(line.fields ?? {})) {
      if (!Object.hasOwn(head, k)) head[k] = v;
    }
    return JSON.stringify(head);
  }
  const code = line.code === undefined ? "" : ` (${line.code})`;
  return `${time} ${level.toUpperCase().padEnd(5)} ${event}: ${message}${code}`;
}

function write(text: string): void {
  const bytes = new TextEncoder().encode(text);
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
