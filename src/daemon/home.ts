/**
 * The node's home directory: where it is, its permissions, atomic state
 * writes and the one-daemon-per-home lock.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../errors.ts";

/** File names inside a home. */
export const HOME_FILES = {
  identity: "identity.json",
  trust: "trust.json",
  config: "config.json",
  control: "control.json",
  controlSocket: "control.sock",
  lock: "daemon.lock",
  log: "daemon.log",
  inbox: "inbox.log",
  dedup: "dedup.log",
  outbox: "outbox.log",
  outboxDir: "outbox",
  handshakeQueue: "handshake_queue.json",
  /** A rendezvous's mailboxes (sealed items for offline nodes). */
  mailboxes: "mailboxes",
} as const;

/** Resolves the home: `--home` flag, else `PILOT_HOME`, else `~/.pilot`. */
export function resolveHome(flag?: string): string {
  if (flag !== undefined && flag !== "") return flag;
  const env = Deno.env.get("PILOT_HOME");
  if (env !== undefined && env !== "") return env;
  const user = Deno.env.get("HOME");
  if (user === undefined || user === "") {
    throw new PilotError(
      "invalid_argument",
      "Cannot find a home for the node: HOME is not set",
      "pass --home DIR or set PILOT_HOME",
    );
  }
  return join(user, ".pilot");
}

/** Creates the home with mode 0700, or checks that an existing one is private. */
export async function ensureHome(dir: string): Promise<void> {
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new PilotError(
      "invalid_argument",
      `Cannot create home "${dir}": ${(e as Error).message}`,
      HOME_WRITE_HINT,
    );
  }
  const info = await Deno.stat(dir);
  if (!info.isDirectory) {
    throw new PilotError(
      "invalid_argument",
      `Home "${dir}" is not a directory`,
      "pass --home with a directory",
    );
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new PilotError(
      "invalid_argument",
      `Home "${dir}" is accessible to other users (mode ${(info.mode & 0o777).toString(8)})`,
      `run: chmod 700 ${dir}`,
    );
  }
  // A home the daemon cannot write fails here, named, not halfway through a first start.
  let probe: string;
  try {
    probe = await Deno.makeTempFile({ dir, prefix: ".write-check-" });
  } catch (e) {
    throw new PilotError(
      "invalid_argument",
      `Home "${dir}" is not writable: ${(e as Error).message}`,
      HOME_WRITE_HINT,
    );
  }
  await Deno.remove(probe).catch(() => {});
}

const HOME_WRITE_HINT =
  "give --home (or PILOT_HOME) a directory this user can create and write, or fix its permissions";

/**
 * Writes a file so that a crash at any instant leaves the old or the new
 * content, never a torn file: temp file, fsync, rename, fsync of the directory.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  mode = 0o600,
): Promise<void> {
  const tmp = await writeTemp(path, data, mode);
  await Deno.rename(tmp, path);
  await syncDirectory(dirOf(path));
}

/**
 * Like {@linkcode writeFileAtomic}, but only when `path` does not exist yet:
 * returns false (and writes nothing) when another process got there first.
 */
export async function createFileAtomic(
  path: string,
  data: Uint8Array | string,
  mode = 0o600,
): Promise<boolean> {
  const tmp = await writeTemp(path, data, mode);
  try {
    await Deno.link(tmp, path);
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
  await syncDirectory(dirOf(path));
  return true;
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || ".";
}

async function writeTemp(path: string, data: Uint8Array | string, mode: number): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  return tmp;
}

/** Fsyncs a folder, so a rename, link or removal in it is durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } catch {
    // Some platforms refuse fsync on a directory; the rename or link itself is atomic.
  } finally {
    d.close();
  }
}

/**
 * Reads a file that holds secrets, refusing it when other users could read it
 * (like ssh with a private key). Returns null when the file does not exist.
 */
export async function readPrivateFile(path: string): Promise<string | null> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new PilotError(
      "invalid_argument",
      `File "${path}" is readable by other users (mode ${(info.mode & 0o777).toString(8)})`,
      `run: chmod 600 ${path}`,
    );
  }
  return await Deno.readTextFile(path);
}

/** How long a starting daemon retries a lock held by a probe before calling it held. */
const LOCK_PROBE_GRACE_MS = 500;
/** Interval between those retries. */
const LOCK_RETRY_MS = 10;

/** An exclusive lock on a home, held for the daemon's lifetime. */
export class HomeLock {
  #file: Deno.FsFile;

  private constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  /**
   * Takes the lock, or returns null when another daemon holds it. A CLI
   * probe (`isHomeLocked`) holds it shared for an instant, so a busy lock is
   * retried for LOCK_PROBE_GRACE_MS before the answer is "held".
   */
  static async acquire(home: string): Promise<HomeLock | null> {
    const file = await Deno.open(join(home, HOME_FILES.lock), {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
    const deadline = performance.now() + LOCK_PROBE_GRACE_MS;
    while (!(await file.tryLock(true))) {
      if (performance.now() >= deadline) {
        file.close();
        return null;
      }
      await new Promise((r) => setTimeout(r, LOCK_RETRY_MS));
    }
    return new HomeLock(file);
  }

  /** Releases the lock. */
  release(): void {
    try {
      this.#file.unlock();
    } finally {
      this.#file.close();
    }
  }
}

/** Tells whether a daemon holds this home's lock right now. */
export async function isHomeLocked(home: string): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(join(home, HOME_FILES.lock), { read: true, write: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  try {
    // Shared: probes never exclude one another, only a daemon's exclusive lock excludes them.
    const got = await file.tryLock(false);
    if (got) file.unlock();
    return !got;
  } finally {
    file.close();
  }
}

/**
 * A state file rewritten atomically on every change. Writes are queued so a
 * slower earlier write can never land after a later one.
 */
export class StateFile {
  #path: string;
  #queue: Promise<void> = Promise.resolve();

  /** A state file at `path` (mode 0600). */
  constructor(path: string) {
    this.#path = path;
  }

  /** The file's path. */
  get path(): string {
    return this.#path;
  }

  /** Writes `value` as JSON once every earlier write has landed. */
  write(value: unknown): Promise<void> {
    const text = JSON.stringify(value, null, 1) + "\n";
    const next = this.#queue.then(() => writeFileAtomic(this.#path, text, 0o600));
    this.#queue = next.catch(() => {});
    return next;
  }
}
