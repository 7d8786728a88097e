/**
 * Webhooks: the daemon POSTs the events a webhook asked for, as JSON, to its
 * URL (`webhooks` in config.json, `pilot webhook add|list|remove`).
 *
 * Delivery never slows the daemon: the event bus hands each event to
 * {@linkcode WebhookDispatcher.enqueue}, which only appends to the webhook's
 * bounded queue and returns. Each webhook has its own queue and at most one
 * request in flight, so events reach it in order and a webhook that hangs or
 * fails delays no other. The event itself is already in the event log (and a
 * message in the durable inbox) before any webhook hears of it: a webhook
 * that loses an event loses a notification, never the data.
 *
 * Per event and webhook:
 *
 * ```
 * queued ──POST──> 2xx ─────────────────────────> delivered
 *          │
 *          ├─> network error, timeout, 429, 5xx ─> wait 1 s, 2 s, 4 s, 8 s ─> POST again
 *          │                                       (5 attempts in all, then failed)
 *          └─> any other status (3xx, 4xx) ─────> failed (no retry)
 * ```
 *
 * A full queue (1000 events waiting, besides the one in flight) drops its
 * oldest waiting event to take the new one and
 * counts it in `dropped`: after an outage the receiver gets the most recent
 * events, and the gap in `seq` shows what it missed (`GET /v1/events?after=`
 * still has it while the ring keeps it). Retries reuse the event's
 * `x-pilot-delivery` id, so a receiver can tell a retry from a new event.
 *
 * The transport and the clock are injected, so tests run it without sockets
 * or real time.
 *
 * @module
 */
import { invalid } from "../errors.ts";
import { GLOBAL_TIMERS, type Timers } from "./timers.ts";

/** Events a webhook's queue holds; past it the oldest is dropped. */
export const WEBHOOK_QUEUE_LIMIT = 1000;
/** How long one POST may take, headers and body, before it counts as a timeout (ms). */
export const WEBHOOK_TIMEOUT_MS = 5_000;
/** Attempts per event, the first included. */
export const WEBHOOK_ATTEMPTS = 5;
/** The wait before the first retry; each later one doubles it (ms). */
export const WEBHOOK_BACKOFF_MS = 1_000;
/** The most webhooks a node keeps. */
export const MAX_WEBHOOKS = 32;
/** The most event patterns one webhook lists. */
export const MAX_WEBHOOK_EVENTS = 64;
/** The longest secret, in characters. */
export const MAX_WEBHOOK_SECRET = 256;
/** The longest URL, in characters. */
const MAX_WEBHOOK_URL = 2048;

/** One webhook as configured. */
export interface WebhookSpec {
  /** Where to POST (canonical `URL.href`): it names the webhook. */
  url: string;
  /** Event types, `prefix.*` or `*`. */
  events: string[];
  /** HMAC-SHA256 key of `x-pilot-signature`, or null for unsigned requests. */
  secret: string | null;
}

/** One webhook's delivery counters. */
export interface WebhookStats {
  /** Events the receiver accepted (2xx). */
  delivered: number;
  /** Events given up on: attempts used up, or a status that is not retried. */
  failed: number;
  /** Events dropped because the queue was full. */
  dropped: number;
  /** Events waiting now, the one in flight included. */
  queued: number;
  /** The HTTP status of the last answer, or null (none yet, or the last attempt got none). */
  lastStatus: number | null;
  /** Why the last failed attempt failed, or null when the last attempt succeeded or none was made. */
  lastError: string | null;
  /** When the last attempt ended (epoch ms), or null. */
  lastAttemptAt: number | null;
}

/** A webhook with its counters. */
export interface WebhookState extends WebhookSpec, WebhookStats {}

/** An event as posted: the event bus's, with any type (later event kinds included). */
export interface WebhookEvent {
  /** The event's seq. */
  seq: number;
  /** Its type, e.g. `message.received`. */
  type: string;
  /** ISO time. */
  time: string;
  /** Its details. */
  data: Record<string, unknown>;
}

/** The HTTP client a dispatcher posts with (`fetch`, or a fake in tests). */
export type WebhookFetch = (url: string, init: RequestInit) => Promise<Response>;

/** Options of {@linkcode WebhookDispatcher}; every one has a default. */
export interface WebhookDispatcherOptions {
  /** The HTTP client (default {@linkcode directFetch}). */
  fetch?: WebhookFetch;
  /** The timers (default the global ones). */
  timers?: Timers;
  /** Wall-clock time in epoch ms, for `lastAttemptAt` (default `Date.now`). */
  now?: () => number;
  /** Called once per event given up on, with the reason (the daemon logs it). */
  onFailed?: (url: string, event: WebhookEvent, reason: string) => void;
  /** Queue bound (default {@linkcode WEBHOOK_QUEUE_LIMIT}). */
  queueLimit?: number;
  /** Per-request timeout (default {@linkcode WEBHOOK_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Attempts per event (default {@linkcode WEBHOOK_ATTEMPTS}). */
  attempts?: number;
  /** First retry wait (default {@linkcode WEBHOOK_BACKOFF_MS}). */
  backoffMs?: number;
}

const PATTERN = /^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$/;

/**
 * Whether an event type matches one of a webhook's patterns: the exact type,
 * `prefix.*` (any type under `prefix.`, at any depth), or `*` (every type).
 *
 * @example
 * ```ts
 * import { eventMatches } from "./webhooks.ts";
 * eventMatches("message.received", ["message.*"]); // true
 * eventMatches("peer.up", ["message.*", "trust.requested"]); // false
 * ```
 */
export function eventMatches(type: string, patterns: readonly string[]): boolean {
  return patterns.some((p) =>
    p === "*" || p === type || (p.endsWith(".*") && type.startsWith(p.slice(0, -1)))
  );
}

const LIST_HINT =
  'list event types (e.g. "message.received"), "prefix.*" (e.g. "trust.*") or "*"; see docs/API.md "Events"';

/** Checks a webhook's event patterns: 1 to 64 of a type, `prefix.*` or `*`; duplicates dropped. */
export function parseWebhookEvents(v: unknown, where: string): string[] {
  if (
    !Array.isArray(v) || v.length === 0 || v.length > MAX_WEBHOOK_EVENTS ||
    !v.every((x) => typeof x === "string")
  ) {
    throw invalid(
      `${where}: a webhook's "events" must be a list of 1 to ${MAX_WEBHOOK_EVENTS} event types, not ${
        quote(v)
      }`,
      LIST_HINT,
    );
  }
  for (const p of v as string[]) {
    if (p.length > 64 || !PATTERN.test(p)) {
      throw invalid(`${where}: cannot use ${quote(p)} as a webhook event`, LIST_HINT);
    }
  }
  return [...new Set(v as string[])];
}

/** Whether a URL's host is this machine: `localhost`, 127.0.0.0/8 or `[::1]`. */
export function isLoopbackUrl(url: URL): boolean {
  const h = url.hostname.toLowerCase();
  return h === "localhost" || h === "[::1]" ||
    /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(h);
}

/**
 * Checks a webhook URL: http or https, at most 2048 characters, and on
 * this machine unless `allowRemote`; returns its canonical text.
 */
export function parseWebhookUrl(text: unknown, where: string, allowRemote: boolean): string {
  const hint = "e.g. http://127.0.0.1:8080/pilot (a loopback address, or localhost)";
  if (typeof text !== "string" || text.length > MAX_WEBHOOK_URL) {
    throw invalid(`${where}: a webhook's "url" must be a URL string, not ${quote(text)}`, hint);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`${where}: cannot parse webhook URL ${quote(text)}`, hint);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid(`${where}: webhook URL ${quote(text)} must be http or https`, hint);
  }
  if (!allowRemote && !isLoopbackUrl(url)) {
    throw invalid(
      `${where}: webhook URL ${quote(text)} is not on this machine`,
      "use a loopback address (127.0.0.1, [::1], localhost), or run the daemon with " +
        '--allow-remote-webhooks ("allow_remote_webhooks": true in config.json)',
    );
  }
  return url.href;
}

/** Checks a webhook secret: absent/null, or 1 to 256 characters. */
export function parseWebhookSecret(v: unknown, where: string): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== "string" || v.length === 0 || v.length > MAX_WEBHOOK_SECRET) {
    throw invalid(
      `${where}: a webhook's "secret" must be a string of 1 to ${MAX_WEBHOOK_SECRET} characters`,
      "leave it out for unsigned requests",
    );
  }
  return v;
}

/** Checks one `webhooks` entry of config.json: `{url, events, secret?}`. */
export function parseWebhook(v: unknown, where: string, allowRemote: boolean): WebhookSpec {
  const hint = 'write {"url": "http://127.0.0.1:8080/pilot", "events": ["message.received"]}';
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw invalid(`${where}: each webhook must be an object, not ${quote(v)}`, hint);
  }
  const entry = v as Record<string, unknown>;
  const unknown = Object.keys(entry).find((k) => !["url", "events", "secret"].includes(k));
  if (unknown !== undefined) {
    throw invalid(`${where}: unknown webhook field "${unknown}"`, "fields: url, events, secret");
  }
  return {
    url: parseWebhookUrl(entry.url, where, allowRemote),
    events: parseWebhookEvents(entry.events, where),
    secret: parseWebhookSecret(entry.secret, where),
  };
}

/** The `x-pilot-signature` value of a body: `sha256=` and the hex HMAC-SHA256 under `secret`. */
export async function webhookSignature(secret: string, body: Uint8Array): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, body as BufferSource));
  return `sha256=${mac.toHex()}`;
}

/**
 * The daemon's HTTP client for webhooks. A loopback URL is reached directly,
 * never through an `HTTP_PROXY` of the environment (which would carry the
 * events off the machine the URL names); a remote one the usual way.
 */
export function directFetch(): WebhookFetch & { close(): void } {
  const clients = new Map<string, Deno.HttpClient>();
  const post = (url: string, init: RequestInit) => {
    const u = new URL(url);
    if (!isLoopbackUrl(u)) return fetch(url, init);
    const port = Number(u.port || (u.protocol === "https:" ? 443 : 80));
    const host = u.hostname.replace(/^\[|\]$/g, "");
    const at = `${host}:${port}`;
    let client = clients.get(at);
    if (client === undefined) {
      client = Deno.createHttpClient({ proxy: { transport: "tcp", hostname: host, port } });
      clients.set(at, client);
    }
    return fetch(url, { ...init, client });
  };
  return Object.assign(post, {
    close: () => {
      for (const c of clients.values()) c.close();
      clients.clear();
    },
  });
}

/** Whether a status is worth another attempt: the receiver is overloaded or broken, for now. */
function retryable(status: number): boolean {
  return status === 429 || status >= 500;
}

/** One webhook: its spec, its queue, its counters and its delivery loop. */
class Hook {
  spec: WebhookSpec;
  stats: WebhookStats = {
    delivered: 0,
    failed: 0,
    dropped: 0,
    queued: 0,
    lastStatus: null,
    lastError: null,
    lastAttemptAt: null,
  };
  /** Events waiting, oldest first (the one in flight is not among them). */
  queue: { event: WebhookEvent; delivery: string }[] = [];
  /** Whether an event is in flight (its loop runs). */
  running = false;
  closed = false;
  /** Aborts the request or the wait under way when the webhook is removed. */
  abort = new AbortController();

  constructor(spec: WebhookSpec) {
    this.spec = spec;
  }
}

/** Delivers events to webhooks: one bounded queue and one request at a time per webhook. */
export class WebhookDispatcher {
  #hooks = new Map<string, Hook>();
  #fetch: WebhookFetch;
  #ownFetch: (WebhookFetch & { close(): void }) | null = null;
  #timers: Timers;
  #now: () => number;
  #onFailed: (url: string, event: WebhookEvent, reason: string) => void;
  #queueLimit: number;
  #timeoutMs: number;
  #attempts: number;
  #backoffMs: number;
  #idle = new Set<() => void>();

  /** A dispatcher with no webhooks; {@linkcode WebhookDispatcher.set} gives it some. */
  constructor(options: WebhookDispatcherOptions = {}) {
    if (options.fetch === undefined) this.#ownFetch = directFetch();
    this.#fetch = options.fetch ?? this.#ownFetch!;
    this.#timers = options.timers ?? GLOBAL_TIMERS;
    this.#now = options.now ?? Date.now;
    this.#onFailed = options.onFailed ?? (() => {});
    this.#queueLimit = options.queueLimit ?? WEBHOOK_QUEUE_LIMIT;
    this.#timeoutMs = options.timeoutMs ?? WEBHOOK_TIMEOUT_MS;
    this.#attempts = options.attempts ?? WEBHOOK_ATTEMPTS;
    this.#backoffMs = options.backoffMs ?? WEBHOOK_BACKOFF_MS;
  }

  /**
   * Adds a webhook, or changes the events and secret of the one at its URL
   * (its queue and counters kept).
   */
  set(spec: WebhookSpec): void {
    const hook = this.#hooks.get(spec.url);
    if (hook === undefined) this.#hooks.set(spec.url, new Hook({ ...spec }));
    else hook.spec = { ...spec };
  }

  /** Removes the webhook at `url`: its request in flight is aborted, its queue dropped. */
  remove(url: string): boolean {
    const hook = this.#hooks.get(url);
    if (hook === undefined) return false;
    this.#hooks.delete(url);
    this.#stop(hook);
    return true;
  }

  /** Every webhook with its counters, in the order they were added. */
  list(): WebhookState[] {
    return [...this.#hooks.values()].map((h) => ({
      ...h.spec,
      ...h.stats,
      events: [...h.spec.events],
    }));
  }

  /** The counters of the webhook at `url`, or undefined. */
  stats(url: string): WebhookStats | undefined {
    const hook = this.#hooks.get(url);
    return hook && { ...hook.stats };
  }

  /** Queues `event` for every webhook that asked for its type; never waits. */
  enqueue(event: WebhookEvent): void {
    for (const hook of this.#hooks.values()) {
      if (hook.closed || !eventMatches(event.type, hook.spec.events)) continue;
      if (hook.queue.length >= this.#queueLimit) {
        hook.queue.shift();
        hook.stats.dropped++;
      }
      hook.queue.push({ event, delivery: crypto.randomUUID() });
      this.#count(hook);
      if (!hook.running) void this.#run(hook);
    }
  }

  /** Resolves once no webhook has an event queued or in flight (tests, shutdown). */
  idle(): Promise<void> {
    if (![...this.#hooks.values()].some((h) => h.running)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.add(resolve));
  }

  /** Stops every webhook: requests in flight aborted, queues dropped. */
  close(): void {
    for (const hook of this.#hooks.values()) this.#stop(hook);
    this.#hooks.clear();
    this.#ownFetch?.close();
    this.#wakeIdle();
  }

  #stop(hook: Hook): void {
    hook.closed = true;
    hook.queue = [];
    hook.stats.queued = 0;
    hook.abort.abort();
  }

  #count(hook: Hook): void {
    hook.stats.queued = hook.queue.length + (hook.running ? 1 : 0);
  }

  async #run(hook: Hook): Promise<void> {
    hook.running = true;
    try {
      for (let item = hook.queue.shift(); item !== undefined; item = hook.queue.shift()) {
        this.#count(hook);
        await this.#deliver(hook, item.event, item.delivery);
        if (hook.closed) break;
      }
    } finally {
      hook.running = false;
      if (!hook.closed) this.#count(hook);
      this.#wakeIdle();
    }
  }

  #wakeIdle(): void {
    if ([...this.#hooks.values()].some((h) => h.running)) return;
    for (const wake of this.#idle) wake();
    this.#idle.clear();
  }

  /** One event to one webhook, with its retries; settles the counters. */
  async #deliver(hook: Hook, event: WebhookEvent, delivery: string): Promise<void> {
    const body = new TextEncoder().encode(JSON.stringify({
      type: event.type,
      seq: event.seq,
      time: event.time,
      data: event.data,
    }));
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "x-pilot-event": event.type,
      "x-pilot-delivery": delivery,
    };
    if (hook.spec.secret !== null) {
      headers["x-pilot-signature"] = await webhookSignature(hook.spec.secret, body);
    }
    for (let attempt = 1; attempt <= this.#attempts; attempt++) {
      const outcome = await this.#attempt(hook, body, headers, attempt);
      if (hook.closed) return;
      hook.stats.lastAttemptAt = this.#now();
      hook.stats.lastStatus = outcome.status;
      hook.stats.lastError = outcome.error;
      if (outcome.error === null) {
        hook.stats.delivered++;
        return;
      }
      if (!outcome.retry || attempt === this.#attempts) {
        hook.stats.failed++;
        this.#onFailed(hook.spec.url, event, outcome.error);
        return;
      }
      await this.#sleep(this.#backoffMs * 2 ** (attempt - 1), hook.abort.signal);
      if (hook.closed) return;
    }
  }

  /** One POST, bounded by the timeout; never throws. */
  async #attempt(
    hook: Hook,
    body: Uint8Array,
    headers: Record<string, string>,
    attempt: number,
  ): Promise<{ status: number | null; error: string | null; retry: boolean }> {
    const of = `attempt ${attempt} of ${this.#attempts}`;
    const timeout = new AbortController();
    const signal = AbortSignal.any([timeout.signal, hook.abort.signal]);
    const timer = this.#timers.setTimeout(() => timeout.abort(), this.#timeoutMs);
    try {
      const res = await this.#fetch(hook.spec.url, {
        method: "POST",
        headers,
        body: body as BodyInit,
        signal,
        // A redirect could lead anywhere, off this machine too: never followed.
        redirect: "manual",
      });
      await res.body?.cancel().catch(() => {});
      if (res.status >= 200 && res.status < 300) {
        return { status: res.status, error: null, retry: false };
      }
      const text = `${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
      return {
        status: res.status,
        error: `answered HTTP ${text} (${of})`,
        retry: retryable(res.status),
      };
    } catch (e) {
      const error = timeout.signal.aborted
        ? `no answer within ${this.#timeoutMs} ms (${of})`
        : `${(e as Error).message || String(e)} (${of})`;
      return { status: null, error, retry: true };
    } finally {
      this.#timers.clearTimeout(timer);
    }
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        this.#timers.clearTimeout(id);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const id = this.#timers.setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

/** A value as an error quotes it: JSON, shortened. */
function quote(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
