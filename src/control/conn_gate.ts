/**
 * The control API's front door: an accept loop on the public loopback port
 * that relays each connection to the HTTP server behind it. `Deno.serve`
 * has no connection cap, header timeout or idle timeout, and its accept loop
 * dies on EMFILE; this loop has all four, so no local user (who needs no
 * token to connect) can exhaust the daemon's descriptors or kill it.
 *
 * Each connection is in one phase, read from the bytes it relays:
 *
 *   headers --"\r\n\r\n" from client--> request --bytes from server--> idle
 *      ^                                                                 |
 *      +------------------------- bytes from client ---------------------+
 *   request --"HTTP/1.1 101" from server--> upgraded (WebSocket)
 *   request --an NDJSON response head--> streaming --bytes from client--> headers
 *
 * `headers` must end within the header timeout and `idle` within the idle
 * timeout (any byte either way restarts it); `request` (a handler at work,
 * e.g. a long poll), `streaming` (a follow stream, which may be quiet for
 * long) and `upgraded` are bounded by the server's caps on held requests,
 * which only a client with the token can reach.
 *
 * @module
 */

/** Why the gate closed a connection. */
export type GateDrop =
  | "header_timeout"
  | "header_too_large"
  | "idle_timeout"
  | "evicted"
  | "full"
  | "accept_error";

/** Limits and the server behind a {@linkcode ConnGate}. */
export interface ConnGateOptions {
  /** Connections relayed at once, at most. */
  maxConnections: number;
  /** Time a connection has to send complete request headers (ms). */
  headerTimeoutMs: number;
  /** Time a connection with nothing in flight may stay quiet (ms). */
  idleTimeoutMs: number;
  /** First and longest pause after a failed accept (ms). */
  acceptBackoffMs: { min: number; max: number };
  /** Opens a connection to the HTTP server behind the gate. */
  upstream: () => Promise<Deno.Conn>;
  /** Told once per failed accept, so the daemon can log it. */
  onAcceptError?: (error: Error) => void;
}

type Phase = "headers" | "request" | "idle" | "streaming" | "upgraded";

const CRLF2 = [13, 10, 13, 10];
const UPGRADED = new TextEncoder().encode("HTTP/1.1 101");
const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 ");
const RESPONSE = new TextEncoder().encode("HTTP/1.1 ");
const STREAMING = /\r\ncontent-type: *application\/x-ndjson/i;
/** Bytes of a response's first chunk searched for its content type. */
const HEAD_SCAN = 2048;
/** Relay buffer sizes: an idle connection holds the smallest, a busy stream grows to the largest. */
const RELAY_BUFFER = { min: 4 * 1024, max: 256 * 1024 } as const;
/** Request headers longer than this are refused before reaching the server. */
const MAX_HEADER_BYTES = 64 * 1024;

/** One relayed connection and the phase its bytes put it in. */
class Link {
  phase: Phase = "headers";
  /** When the current phase's clock started (ms). */
  since: number;
  /** Bytes of `\r\n\r\n` matched so far, across chunk boundaries. */
  #matched = 0;
  readonly client: Deno.Conn;
  upstream: Deno.Conn | undefined;
  #closed = false;

  constructor(client: Deno.Conn, now: number) {
    this.client = client;
    this.since = now;
  }

  fromClient(chunk: Uint8Array, now: number): void {
    if (this.phase === "upgraded") return;
    if (this.phase === "idle" || this.phase === "streaming") {
      this.phase = "headers";
      this.since = now;
      this.#matched = 0;
    }
    if (this.phase !== "headers") return;
    for (const b of chunk) {
      this.#matched = b === CRLF2[this.#matched] ? this.#matched + 1 : (b === 13 ? 1 : 0);
      if (this.#matched === 4) {
        this.phase = "request";
        return;
      }
    }
  }

  fromServer(chunk: Uint8Array, now: number): void {
    if (this.phase === "upgraded" || this.phase === "streaming") return;
    // `100 Continue` (curl sends `Expect` for large bodies) is not the answer: the request goes on.
    if (this.phase === "request" && startsWith(chunk, CONTINUE)) return;
    if (this.phase === "request" && startsWith(chunk, UPGRADED)) {
      this.phase = "upgraded";
      return;
    }
    if (this.phase === "request" && isStreamingHead(chunk)) {
      this.phase = "streaming";
      return;
    }
    // Each chunk of an answer restarts the idle clock: a large one may take a slow reader a while.
    if (this.phase === "request" || this.phase === "idle") {
      this.phase = "idle";
      this.since = now;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of [this.client, this.upstream]) {
      try {
        c?.close();
      } catch {
        // already closed by the other relay direction
      }
    }
  }
}

function startsWith(chunk: Uint8Array, prefix: Uint8Array): boolean {
  return chunk.length >= prefix.length && prefix.every((b, i) => chunk[i] === b);
}

/** True when `chunk` starts a response whose body is NDJSON (our own server wrote it). */
function isStreamingHead(chunk: Uint8Array): boolean {
  if (!startsWith(chunk, RESPONSE)) return false;
  const head = new TextDecoder().decode(chunk.subarray(0, HEAD_SCAN));
  const end = head.indexOf("\r\n\r\n");
  return STREAMING.test(end === -1 ? head : head.slice(0, end));
}

/** The accept loop with a connection cap, header and idle timeouts, and accept back-off. */
export class ConnGate {
  #listener: Deno.TcpListener;
  #options: ConnGateOptions;
  #links = new Set<Link>();
  #drops: Record<GateDrop, number> = {
    header_timeout: 0,
    header_too_large: 0,
    idle_timeout: 0,
    evicted: 0,
    full: 0,
    accept_error: 0,
  };
  /** Expires stalled connections; armed only while there are any, so an idle daemon does not wake for it. */
  #sweep: ReturnType<typeof setInterval> | undefined;
  #sweepMs: number;
  #closing = false;
  #loop: Promise<void>;

  /** Starts accepting on `listener`, relaying to `options.upstream()`. */
  constructor(listener: Deno.TcpListener, options: ConnGateOptions) {
    this.#listener = listener;
    this.#options = options;
    this.#sweepMs = Math.min(1_000, Math.max(20, options.headerTimeoutMs / 4));
    this.#loop = this.#acceptLoop();
  }

  /** Connections relayed right now. */
  get open(): number {
    return this.#links.size;
  }

  /** Connections closed by the gate, by reason. */
  get drops(): Readonly<Record<GateDrop, number>> {
    return { ...this.#drops };
  }

  /** Stops accepting, closes every relayed connection and waits for the loop to end. */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#sweep);
    this.#sweep = undefined;
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    for (const link of this.#links) link.close();
    this.#links.clear();
    await this.#loop;
  }

  async #acceptLoop(): Promise<void> {
    const { min, max } = this.#options.acceptBackoffMs;
    let pause = 0;
    while (!this.#closing) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#closing || e instanceof Deno.errors.BadResource) return;
        // EMFILE and friends pass: back off so the loop does not spin, never exit.
        this.#drops.accept_error++;
        this.#options.onAcceptError?.(e as Error);
        pause = Math.min(max, Math.max(min, pause * 2));
        await new Promise((r) => setTimeout(r, pause));
        continue;
      }
      pause = 0;
      if (this.#closing) {
        conn.close();
        return;
      }
      if (this.#links.size >= this.#options.maxConnections && !this.#evict()) {
        // Every slot holds a request in flight (bounded by the server's caps): the newcomer waits outside.
        this.#drops.full++;
        conn.close();
        continue;
      }
      this.#relay(new Link(conn, performance.now()));
    }
  }

  /** Makes room: the connection quiet longest without a request in flight goes; false when none can. */
  #evict(): boolean {
    let oldest: Link | undefined;
    for (const link of this.#links) {
      if (link.phase !== "headers" && link.phase !== "idle") continue;
      if (oldest === undefined || link.since < oldest.since) oldest = link;
    }
    if (oldest === undefined) return false;
    this.#drops.evicted++;
    this.#drop(oldest);
    return true;
  }

  #expire(now: number): void {
    const { headerTimeoutMs, idleTimeoutMs } = this.#options;
    for (const link of this.#links) {
      if (link.phase === "headers" && now - link.since > headerTimeoutMs) {
        this.#drops.header_timeout++;
        this.#drop(link);
      } else if (link.phase === "idle" && now - link.since > idleTimeoutMs) {
        this.#drops.idle_timeout++;
        this.#drop(link);
      }
    }
  }

  #drop(link: Link): void {
    link.close();
    this.#links.delete(link);
    if (this.#links.size === 0) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  async #relay(link: Link): Promise<void> {
    this.#links.add(link);
    this.#sweep ??= setInterval(() => this.#expire(performance.now()), this.#sweepMs);
    try {
      // The server behind costs two more descriptors: only a complete request earns them.
      const head = await this.#readHead(link);
      if (head === null || link.closed) return;
      link.upstream = await this.#options.upstream();
      if (link.closed) {
        link.upstream.close();
        return;
      }
      await writeAll(link.upstream, head);
      await Promise.all([
        pipe(link.client, link.upstream, (c) => link.fromClient(c, performance.now())),
        pipe(link.upstream, link.client, (c) => link.fromServer(c, performance.now())),
      ]);
    } catch {
      // The server behind is gone or out of descriptors: this client is dropped, the loop lives.
    } finally {
      this.#drop(link);
    }
  }

  /** The client's bytes up to and including complete request headers, or null when it left. */
  async #readHead(link: Link): Promise<Uint8Array | null> {
    // Small reads: a half-open connection costs its kernel socket and little more.
    const chunks: Uint8Array[] = [];
    let size = 0;
    while (link.phase === "headers") {
      if (size > MAX_HEADER_BYTES) {
        this.#drops.header_too_large++;
        return null;
      }
      const buf = new Uint8Array(RELAY_BUFFER.min);
      const n = await link.client.read(buf);
      if (n === null) return null;
      const chunk = buf.subarray(0, n);
      link.fromClient(chunk, performance.now());
      chunks.push(chunk);
      size += n;
    }
    const head = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      head.set(c, at);
      at += c.length;
    }
    return head;
  }
}

async function writeAll(to: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await to.write(bytes.subarray(off));
}

/** Copies `from` to `to` until end of file, then half-closes `to`. */
async function pipe(
  from: Deno.Conn,
  to: Deno.Conn,
  seen: (chunk: Uint8Array) => void,
): Promise<void> {
  let buf = new Uint8Array(RELAY_BUFFER.min);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      const chunk = buf.subarray(0, n);
      // A full read asks for a bigger buffer next time; a quiet one gives memory back.
      const size = n === buf.length
        ? Math.min(RELAY_BUFFER.max, buf.length * 2)
        : n < buf.length / 4
        ? Math.max(RELAY_BUFFER.min, buf.length / 2)
        : buf.length;
      seen(chunk);
      await writeAll(to, chunk);
      if (size !== buf.length) buf = new Uint8Array(size);
    }
    await to.closeWrite();
  } catch {
    // Either side closed: the other direction ends on its own read or write.
    try {
      from.close();
    } catch {
      // already closed
    }
    try {
      to.close();
    } catch {
      // already closed
    }
  }
}
