/**
 * What the flood harness reads about the victim: CPU and RSS from /proc, and
 * timed calls to a daemon's control API (fetch, one HTTP client per node).
 *
 * @module
 */

/** User + system CPU time of a process in ms (Linux), or null when it is gone. */
export async function cpuMs(pid: number): Promise<number | null> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after the command name (which may contain spaces) start at ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // USER_HZ is 100 on Linux
  } catch {
    return null;
  }
}

/** VmRSS of a process in MB (2^20 bytes), or null when it is gone. */
export async function rssMb(pid: number): Promise<number | null> {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(await Deno.readTextFile(`/proc/${pid}/status`));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Samples a process's RSS every `everyMs` until stopped; keeps the peak. */
export class RssSampler {
  /** Highest RSS seen (MB). */
  peak = 0;
  /** Samples taken. */
  samples = 0;
  #timer: ReturnType<typeof setInterval>;
  #pid: number;

  /** Starts sampling `pid`. */
  constructor(pid: number, everyMs = 100) {
    this.#pid = pid;
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }

  async #sample(): Promise<void> {
    const v = await rssMb(this.#pid);
    if (v === null) return;
    this.samples++;
    if (v > this.peak) this.peak = v;
  }

  /** Stops sampling. */
  stop(): void {
    clearInterval(this.#timer);
  }
}

/** The q-quantile (0..1) of `values` by the nearest-rank method; null when empty. */
export function percentile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = values.toSorted((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Rounds to `digits` decimals. */
export function round(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** One answer of the control API, timed. */
export interface ApiAnswer {
  /** HTTP status, or 0 when the call failed (refused, reset, timed out). */
  status: number;
  /** Parsed body (`{status, data}` or `{status, error}`), or the failure message. */
  // deno-lint-ignore no-explicit-any
  json: any;
  /** Wall time of the call (ms). */
  ms: number;
}

/** A daemon's control API from its control file: URL and bearer token. */
export class Api {
  /** Base URL. */
  readonly url: URL;
  #token: string;
  #client: Deno.HttpClient;

  /** A client for the daemon whose `control.json` says `url` and `token`. */
  constructor(url: string, token: string) {
    this.url = new URL(url);
    this.#token = token;
    // Straight to loopback, never through an HTTP proxy from the environment.
    this.#client = Deno.createHttpClient({
      proxy: { transport: "tcp", hostname: this.url.hostname, port: Number(this.url.port) },
    });
  }

  /** Reads `home/control.json` and returns a client for it. */
  static async of(home: string): Promise<Api> {
    const c = JSON.parse(await Deno.readTextFile(`${home}/control.json`));
    return new Api(c.url, c.token);
  }

  /** Calls `METHOD path` with a JSON body; never throws (failures answer status 0). */
  async call(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<ApiAnswer> {
    const t0 = performance.now();
    try {
      const res = await fetch(new URL(path, this.url), {
        method,
        headers: { authorization: `Bearer ${this.#token}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        client: this.#client,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const json = await res.json().catch(() => null);
      return { status: res.status, json, ms: performance.now() - t0 };
    } catch (e) {
      return { status: 0, json: (e as Error).message, ms: performance.now() - t0 };
    }
  }

  /** Releases the HTTP client. */
  close(): void {
    this.#client.close();
  }
}
