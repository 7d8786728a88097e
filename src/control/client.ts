/**
 * The control API client: the CLI's only way to the daemon. It checks the
 * home's lock before it trusts the control file, so a stale file left by a
 * killed daemon is never followed.
 *
 * @module
 */
import { join } from "node:path";
import { API_VERSION } from "../constants.ts";
import { isErrorCode, PilotError } from "../errors.ts";
import { HOME_FILES, isHomeLocked, readPrivateFile } from "../daemon/home.ts";
import { StreamSocket } from "./stream_client.ts";

/** Contents of the home's control file (written by the daemon, mode 0600). */
export interface ControlFile {
  /** Base URL of the control API. */
  url: string;
  /** Bearer token, new at every start. */
  token: string;
  /** Daemon process id. */
  pid: number;
  /** Daemon program version. */
  version: string;
  /** Control API version. */
  api_version: number;
  /**
   * The API's Unix socket (mode 0600, only this user can connect), which
   * clients on this host use instead of `url`: the TCP port goes through the
   * connection gate that protects the daemon from other local users, one
   * relay hop per request. Absent in files of daemons before it existed.
   */
  socket?: string;
  /**
   * The configuration flags the daemon was started with (`ConfigFlags`:
   * `listen`, `hostname`, `autoApprove`, …), so that `daemon start --ensure`
   * can say which given flags a running daemon does not have. Absent in
   * files of daemons before it existed.
   */
  flags?: Record<string, unknown>;
}

/** Reads and validates the control file; null when there is none. */
export async function readControlFile(home: string): Promise<ControlFile | null> {
  const path = join(home, HOME_FILES.control);
  const text = await readPrivateFile(path);
  if (text === null) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new PilotError(
      "internal",
      `Control file "${path}" is not valid JSON`,
      "restart the daemon",
    );
  }
  const o = v as Record<string, unknown>;
  if (
    typeof o.url !== "string" || typeof o.token !== "string" || typeof o.pid !== "number" ||
    typeof o.version !== "string" || typeof o.api_version !== "number"
  ) {
    throw new PilotError("internal", `Control file "${path}" is malformed`, "restart the daemon");
  }
  const flagsOk = o.flags === undefined ||
    (typeof o.flags === "object" && o.flags !== null && !Array.isArray(o.flags));
  if ((o.socket !== undefined && typeof o.socket !== "string") || !flagsOk) {
    throw new PilotError("internal", `Control file "${path}" is malformed`, "restart the daemon");
  }
  return {
    url: o.url,
    token: o.token,
    pid: o.pid,
    version: o.version,
    api_version: o.api_version,
    ...(o.socket === undefined ? {} : { socket: o.socket }),
    ...(o.flags === undefined ? {} : { flags: o.flags as Record<string, unknown> }),
  };
}

/** Options of one API call. */
export interface CallOptions {
  /** Query parameters. */
  query?: Record<string, string | number | boolean | undefined>;
  /** JSON body. */
  body?: unknown;
  /** Give up after this many milliseconds (default 30 s). */
  timeoutMs?: number;
}

/** A connection to one home's daemon. */
export class ControlClient {
  #control!: ControlFile;
  #http!: Deno.HttpClient;
  /** The home it was opened from: its control file is read again after `unauthorized`. */
  #home: string | undefined;

  /** Wraps an already validated control file (of `home`, when known). */
  constructor(control: ControlFile, home?: string) {
    this.#home = home;
    this.#use(control);
  }

  #use(control: ControlFile): void {
    this.#control = control;
    const url = new URL(control.url);
    // Always a direct connection to the loopback API: fetch and WebSocket
    // would otherwise honour HTTP_PROXY and hand the bearer token to a
    // proxy. Requests and stream sockets (WebSockets) take the Unix socket
    // when the daemon has one, without the TCP port's relay through the
    // connection gate (two more copies of every byte in the daemon: a
    // one-way stream ran about 9% faster in `deno task bench --only stream`).
    this.#http = Deno.createHttpClient({
      proxy: control.socket === undefined
        ? { transport: "tcp", hostname: url.hostname, port: Number(url.port) }
        : { transport: "unix", path: control.socket },
    });
  }

  /** The control file this client uses. */
  get control(): ControlFile {
    return this.#control;
  }

  /**
   * Connects to the daemon of `home`, failing with `not_running` when no
   * daemon holds the home's lock and `version_mismatch` when the API differs.
   */
  static async open(home: string): Promise<ControlClient> {
    return new ControlClient(await ControlClient.controlOf(home), home);
  }

  /** The control file of `home`'s running daemon, checked: `not_running`, `version_mismatch`. */
  protected static async controlOf(home: string): Promise<ControlFile> {
    const notRunning = new PilotError(
      "not_running",
      `No daemon is running for home "${home}"`,
      "start one with `pilot daemon start`",
    );
    if (!(await isHomeLocked(home))) throw notRunning;
    const control = await readControlFile(home);
    if (control === null) throw notRunning;
    if (control.api_version !== API_VERSION) {
      throw new PilotError(
        "version_mismatch",
        `Daemon speaks control API v${control.api_version} (version ${control.version}); this CLI speaks v${API_VERSION}`,
        "restart the daemon with this version: `pilot daemon stop && pilot daemon start`",
      );
    }
    return control;
  }

  /**
   * After an `unauthorized` answer: the daemon may have restarted with a new
   * token (and port). True when the home's control file says so, and this
   * client now uses it.
   */
  async #reload(): Promise<boolean> {
    if (this.#home === undefined) return false;
    const fresh = await readControlFile(this.#home).catch(() => null);
    if (fresh === null || fresh.token === this.#control.token) return false;
    if (fresh.api_version !== API_VERSION) return false;
    this.close();
    this.#use(fresh);
    return true;
  }

  /** Releases the client's HTTP connections. */
  close(): void {
    this.#http.close();
  }

  /**
   * Calls a route and returns its `data`, or throws the daemon's PilotError;
   * an `unauthorized` answer is retried once when the daemon has a new token.
   */
  async call(method: string, path: string, options: CallOptions = {}): Promise<unknown> {
    try {
      return await this.#callOnce(method, path, options);
    } catch (e) {
      if (e instanceof PilotError && e.code === "unauthorized" && await this.#reload()) {
        return await this.#callOnce(method, path, options);
      }
      throw e;
    }
  }

  async #callOnce(method: string, path: string, options: CallOptions): Promise<unknown> {
    const url = new URL(path, this.#control.url);
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const timeoutMs = options.timeoutMs ?? 30_000;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.#control.token}`,
          "content-type": "application/json",
        },
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        signal: AbortSignal.timeout(timeoutMs),
        client: this.#http,
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === "TimeoutError") {
        throw new PilotError(
          "timeout",
          `The daemon did not answer ${method} ${path} within ${timeoutMs} ms`,
          "retry, or check the daemon log",
        );
      }
      throw new PilotError(
        "not_running",
        `Cannot reach the daemon at ${this.#control.url}: ${(e as Error).message}`,
        "start it with `pilot daemon start`",
      );
    }
    return parseResponse(res);
  }

  /** Opens a stream WebSocket (`/v1/stream` or `/v1/listen`). */
  openStream(
    path: string,
    query: Record<string, string | number | undefined>,
    onListening?: (port: number) => void,
  ): Promise<StreamSocket> {
    const url = new URL(path, this.#control.url.replace(/^http/, "ws"));
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    return StreamSocket.open(url, this.#control.token, this.#http, onListening);
  }

  /**
   * Reads an NDJSON stream (a GET, or a POST of `body`), calling `onLine` with each parsed line,
   * until `timeoutMs` passes (then resolves: running out of time is not an
   * error) or the daemon ends the stream.
   */
  async stream(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    onLine: (line: unknown) => void,
    timeoutMs: number,
    body?: unknown,
  ): Promise<void> {
    for await (const line of this.lines(path, query, { timeoutMs, body })) onLine(line);
  }

  /**
   * The parsed lines of an NDJSON stream (a GET, or a POST of `body`), until
   * `timeoutMs` passes or `signal` aborts (the iteration then just ends:
   * running out of time is not an error) or the daemon ends the stream. An
   * error answer throws its PilotError (after `unauthorized`, once more with
   * a new token when the daemon restarted).
   */
  async *lines(
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    options: { timeoutMs?: number; signal?: AbortSignal; body?: unknown } = {},
  ): AsyncGenerator<unknown> {
    const url = new URL(path, this.#control.url);
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const ac = new AbortController();
    const timer = options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => ac.abort(), options.timeoutMs);
    const onAbort = () => ac.abort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      let res: Response | undefined;
      for (let attempt = 0; res === undefined; attempt++) {
        try {
          res = await fetch(new URL(url.pathname + url.search, this.#control.url), {
            method: options.body === undefined ? "GET" : "POST",
            headers: {
              authorization: `Bearer ${this.#control.token}`,
              "content-type": "application/json",
            },
            ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
            signal: ac.signal,
            client: this.#http,
          });
        } catch (e) {
          if (ac.signal.aborted) return;
          throw new PilotError(
            "not_running",
            `Cannot reach the daemon: ${(e as Error).message}`,
            "start it with `pilot daemon start`",
          );
        }
        if (res.status === 401 && attempt === 0 && await this.#reload()) {
          await res.body?.cancel();
          res = undefined;
        }
      }
      if (!res.headers.get("content-type")?.includes("ndjson")) {
        await parseResponse(res);
        return;
      }
      let buffered = "";
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body!) {
          buffered += decoder.decode(chunk, { stream: true });
          let nl;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (line.trim() !== "") yield JSON.parse(line);
          }
        }
      } catch (e) {
        if (!ac.signal.aborted) throw e;
      }
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      ac.abort();
    }
  }
}

async function parseResponse(res: Response): Promise<unknown> {
  let body: Record<string, unknown>;
  try {
    body = await res.json();
  } catch {
    throw new PilotError("internal", `Daemon answered HTTP ${res.status} without JSON`);
  }
  if (body.status === "ok") return body.data;
  const code = isErrorCode(body.code) ? body.code : "internal";
  const message = typeof body.message === "string" ? body.message : `HTTP ${res.status}`;
  const hint = typeof body.hint === "string" ? body.hint : "";
  const requestId = typeof body.request_id === "string" ? body.request_id : undefined;
  throw new PilotError(code, message, hint, requestId);
}
