/**
 * Whether a newer release of `pilot` exists, for `pilot version --check`:
 * the one-line `VERSION` file each release publishes beside its binaries
 * and SHA256SUMS, fetched from the folder `install.sh` installs from, and
 * compared with this program's version. Nothing here runs unless asked.
 *
 * @module
 */
import { DEFAULT_RELEASE_REPO } from "../constants.ts";
import { PilotError } from "../errors.ts";

// A VERSION file is one short line; a longer answer is not one and need not be read whole.
const MAX_VERSION_BYTES = 256;

/** The environment variables that choose the release folder (install.sh's). */
export interface ReleaseEnv {
  /** URL of a folder holding the release's files (a mirror); wins over the rest. */
  PILOT_INSTALL_BASE?: string | undefined;
  /** GitHub owner/name of the releases. */
  PILOT_REPO?: string | undefined;
  /** GitHub's address, for tests. */
  PILOT_GITHUB_URL?: string | undefined;
}

/** Reads the {@linkcode ReleaseEnv} variables from the process environment. */
export function releaseEnv(): ReleaseEnv {
  return {
    PILOT_INSTALL_BASE: Deno.env.get("PILOT_INSTALL_BASE"),
    PILOT_REPO: Deno.env.get("PILOT_REPO"),
    PILOT_GITHUB_URL: Deno.env.get("PILOT_GITHUB_URL"),
  };
}

/** The release's GitHub owner/name: `PILOT_REPO`, checked as install.sh checks it, else the default. */
export function releaseRepo(env: ReleaseEnv): string {
  const repo = env.PILOT_REPO || DEFAULT_RELEASE_REPO;
  if (!/^[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+$/.test(repo)) {
    throw new PilotError(
      "invalid_argument",
      `PILOT_REPO=${JSON.stringify(repo)} is not a GitHub owner/name`,
      `unset it, or set it like PILOT_REPO=${DEFAULT_RELEASE_REPO}`,
    );
  }
  return repo;
}

/**
 * The URL of the folder holding the latest release's files, by install.sh's
 * rule: `PILOT_INSTALL_BASE`, else the latest release of `PILOT_REPO` on
 * `PILOT_GITHUB_URL`. `PILOT_VERSION`, which pins the release install.sh
 * installs, does not apply: the question is what the latest one is.
 *
 * @example
 * ```ts
 * import { releaseBase } from "./release_check.ts";
 * releaseBase({}); // "https://github.com/pilot-net/pilot/releases/latest/download"
 * ```
 */
export function releaseBase(env: ReleaseEnv): string {
  if (env.PILOT_INSTALL_BASE) return httpUrl("PILOT_INSTALL_BASE", env.PILOT_INSTALL_BASE);
  const repo = releaseRepo(env);
  const github = httpUrl("PILOT_GITHUB_URL", env.PILOT_GITHUB_URL || "https://github.com");
  return `${github}/${repo}/releases/latest/download`;
}

// `value` without one trailing slash (as install.sh's ${X%/}), when it is an http(s) URL.
function httpUrl(name: string, value: string): string {
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new PilotError(
      "invalid_argument",
      `${name}=${JSON.stringify(value)} is not an http(s) URL`,
      `unset it, or set it to the URL of a folder, like https://example.com/pilot`,
    );
  }
  return value.endsWith("/") ? value.slice(0, -1) : value;
}

/**
 * README's command that installs the latest release over this one; it runs
 * install.sh in the same environment, so PILOT_INSTALL_BASE or PILOT_REPO,
 * when set, apply to it as they did to the check.
 */
export const UPGRADE_COMMAND =
  `curl -fsSL https://raw.githubusercontent.com/${DEFAULT_RELEASE_REPO}/main/install.sh | sh`;

/** A version as `major.minor.patch`, with an optional pre-release (`-rc.1`) and build (`+…`). */
export interface Version {
  /** `major`, `minor`, `patch`. */
  core: [number, number, number];
  /** The pre-release's dot-separated identifiers; empty for a release. */
  pre: string[];
}

const VERSION_RE =
  /^v?(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

/**
 * Parses a semantic version such as `1.2.3`, `v1.2.3` or `1.3.0-rc.1`, or
 * returns undefined for anything else.
 */
export function parseVersion(text: string): Version | undefined {
  const m = VERSION_RE.exec(text);
  if (m === null) return undefined;
  return { core: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4]?.split(".") ?? [] };
}

/**
 * Orders two versions by semver precedence: negative when `a` is older,
 * positive when newer, 0 when equal. A pre-release is older than its release.
 *
 * @example
 * ```ts
 * import { compareVersions, parseVersion } from "./release_check.ts";
 * compareVersions(parseVersion("1.3.0-rc.1")!, parseVersion("1.3.0")!); // negative
 * ```
 */
export function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < 3; i++) {
    const d = a.core[i]! - b.core[i]!;
    if (d !== 0) return d;
  }
  if (a.pre.length === 0 || b.pre.length === 0) return b.pre.length - a.pre.length;
  for (let i = 0; i < Math.min(a.pre.length, b.pre.length); i++) {
    const d = compareIdentifiers(a.pre[i]!, b.pre[i]!);
    if (d !== 0) return d;
  }
  return a.pre.length - b.pre.length;
}

// Numeric identifiers compare as numbers and below alphanumeric ones (semver 11.4).
function compareIdentifiers(a: string, b: string): number {
  const an = /^\d+$/.test(a);
  const bn = /^\d+$/.test(b);
  if (an && bn) return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
  if (an !== bn) return an ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** What {@linkcode checkRelease} found. */
export interface ReleaseCheck {
  /** The latest release's version, as its VERSION file states it. */
  latest: string;
  /** Whether it is newer than `current`. */
  newer: boolean;
  /** The release folder asked. */
  base: string;
}

/** Options of {@linkcode checkRelease}. */
export interface CheckOptions {
  /** How long to wait for the whole answer, in ms. */
  timeoutMs: number;
  /** The release environment (default: the process's). */
  env?: ReleaseEnv;
}

/**
 * Fetches `<base>/VERSION` and compares it with `current`. Throws
 * `unreachable` when no answer came (network failure, timeout, a server
 * error), `not_found` when the folder has no VERSION file or it holds no
 * version, and `invalid_argument` for a malformed release variable.
 */
export async function checkRelease(current: string, options: CheckOptions): Promise<ReleaseCheck> {
  const mine = parseVersion(current);
  if (mine === undefined) throw new TypeError(`This program's version "${current}" is not semver`);
  const base = releaseBase(options.env ?? releaseEnv());
  const url = `${base}/VERSION`;
  const text = await fetchVersionFile(url, options.timeoutMs);
  const latest = text.trim();
  const theirs = parseVersion(latest);
  if (theirs === undefined) {
    const shown = latest.length > 40 ? `${latest.slice(0, 40)}…` : latest;
    throw new PilotError(
      "not_found",
      `${url} holds no release version: it says ${JSON.stringify(shown)}, expected one like 1.2.3`,
      "a proxy or login page may have answered; else PILOT_INSTALL_BASE or PILOT_REPO " +
        "names a folder that is no release",
    );
  }
  return { latest: latest.replace(/^v/, ""), newer: compareVersions(theirs, mine) > 0, base };
}

async function fetchVersionFile(url: string, timeoutMs: number): Promise<string> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, { signal, redirect: "follow" });
    if (!res.ok) {
      await res.body?.cancel();
      if (res.status >= 500) {
        throw new PilotError(
          "unreachable",
          `${url} answered HTTP ${res.status}`,
          "the release server failed; try again later",
        );
      }
      throw new PilotError(
        "not_found",
        `${url} answered HTTP ${res.status}: the release there has no VERSION file`,
        "releases before `pilot version --check` existed have none; else PILOT_INSTALL_BASE " +
          "or PILOT_REPO names the wrong place",
      );
    }
    return await readCapped(res);
  } catch (e) {
    if (e instanceof PilotError) throw e;
    if (signal.aborted) {
      throw new PilotError(
        "unreachable",
        `No answer from ${url} within ${timeoutMs} ms`,
        "check the network (or give a longer --timeout); `pilot version` alone needs none",
      );
    }
    throw new PilotError(
      "unreachable",
      `Cannot reach ${url}: ${reason(e)}`,
      "check the network, or set PILOT_INSTALL_BASE to a mirror; `pilot version` alone needs none",
    );
  }
}

// The body as text, cut at MAX_VERSION_BYTES (a longer one is then refused as no version).
async function readCapped(res: Response): Promise<string> {
  if (res.body === null) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  try {
    while (size <= MAX_VERSION_BYTES) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    bytes.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(bytes.subarray(0, MAX_VERSION_BYTES + 1));
}

// Deno's fetch says only "fetch failed"; the reason (refused, DNS, TLS) is in its cause.
function reason(e: unknown): string {
  let inner = e;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  const message = inner instanceof Error ? inner.message : String(inner);
  return message.split("\n")[0]!
    .replace(/^error sending request for url \([^)]*\): /, "")
    .replace(/^client error \(\w+\): /, "");
}
