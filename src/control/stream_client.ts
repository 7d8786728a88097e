/**
 * The client side of a stream WebSocket (see stream_socket.ts): writes that
 * respect the daemon's credits, reads as an async iterator, half-close.
 *
 * @module
 */
import { isErrorCode, PilotError } from "../errors.ts";
import { WS_WINDOW } from "./stream_socket.ts";

/** How a stream socket ended. */
export interface StreamEnd {
  /** WebSocket close code (1000 = both sides finished). */
  code: number;
  /** Close reason. */
  reason: string;
}

/** One stream as seen through the control API. */
export class StreamSocket {
  /** The daemon's `open` message (peer, port, …). */
  readonly hello: Record<string, unknown>;
  /** Resolves when the socket closes. */
  readonly ended: Promise<StreamEnd>;
  #ws: WebSocket;
  #chunks: (Uint8Array | null)[] = [];
  #wake: (() => void) | undefined;
  #inFlight = 0;
  #creditWake: (() => void) | undefined;
  #peerFinished = false;
  #finished = false;

  private constructor(ws: WebSocket, hello: Record<string, unknown>, ended: Promise<StreamEnd>) {
    this.#ws = ws;
    this.hello = hello;
    this.ended = ended;
  }

  /**
   * Opens a stream socket and waits for the daemon's `open` message (or its
   * error); `onListening` hears a listening socket's `listening` message,
   * sent once the port is registered.
   */
  static open(
    url: URL,
    token: string,
    client: Deno.HttpClient,
    onListening?: (port: number) => void,
  ): Promise<StreamSocket> {
    // Ask the daemon to wait for our credits: we only take what we read.
    url.searchParams.set("flow", "credit");
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, client });
    ws.binaryType = "arraybuffer";
    const { promise: ended, resolve: end } = Promise.withResolvers<StreamEnd>();
    return new Promise((resolve, reject) => {
      let self: StreamSocket | undefined;
      let failure: PilotError | undefined;
      ws.onmessage = (ev) => {
        if (typeof ev.data !== "string") {
          if (self !== undefined) self.#push(new Uint8Array(ev.data as ArrayBuffer));
          return;
        }
        const msg = JSON.parse(ev.data) as Record<string, unknown>;
        if (msg.type === "open") {
          self = new StreamSocket(ws, msg, ended);
          resolve(self);
        } else if (msg.status === "error") {
          const code = isErrorCode(msg.code) ? msg.code : "internal";
          failure = new PilotError(code, String(msg.message ?? ""), String(msg.hint ?? ""));
        } else if (msg.type === "listening" && self === undefined) {
          onListening?.(Number(msg.port));
        } else if (self === undefined) {
          return;
        } else if (msg.type === "credit") self.#credit(Number(msg.bytes));
        else if (msg.type === "fin") {
          self.#peerFinished = true;
          self.#push(null);
        }
      };
      ws.onerror = () => {};
      ws.onclose = (ev) => {
        // Both sides said fin: the stream completed, whatever code the socket
        // itself closed with (under load a clean close has been seen as 0).
        const completed = self !== undefined && self.#peerFinished && self.#finished;
        end(
          completed
            ? { code: 1000, reason: ev.reason || "done" }
            : { code: ev.code, reason: ev.reason },
        );
        if (self !== undefined) {
          self.#push(null);
          self.#credit(Infinity);
          return;
        }
        reject(
          failure ??
            new PilotError(
              "not_running",
              `The stream closed before it opened (${ev.code} ${ev.reason})`,
              "check that the daemon runs",
            ),
        );
      };
    });
  }

  #push(chunk: Uint8Array | null): void {
    if (this.#chunks.at(-1) === null) return;
    this.#chunks.push(chunk);
    this.#wake?.();
  }

  #credit(bytes: number): void {
    this.#inFlight = Math.max(0, this.#inFlight - bytes);
    this.#creditWake?.();
  }

  /** Sends bytes, waiting while the daemon has not taken enough of what was sent. */
  async write(bytes: Uint8Array): Promise<void> {
    while (this.#inFlight + bytes.length > WS_WINDOW && this.#inFlight > 0) {
      if (this.#ws.readyState !== WebSocket.OPEN) {
        throw new PilotError("unreachable", "The stream closed");
      }
      await new Promise<void>((r) => this.#creditWake = r);
    }
    if (this.#ws.readyState !== WebSocket.OPEN) {
      throw new PilotError("unreachable", "The stream closed");
    }
    this.#inFlight += bytes.length;
    this.#ws.send(bytes);
  }

  /** Finishes our direction (the peer reads end-of-stream). */
  fin(): void {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify({ type: "fin" }));
    this.#finished = true;
  }

  /** Aborts the stream (the peer sees a reset). */
  abort(): void {
    this.#ws.close(4000, "aborted");
  }

  /** The peer's bytes until it finishes. */
  async *data(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const next = this.#chunks.shift();
      if (next === null) {
        this.#chunks.unshift(null);
        return;
      }
      if (next !== undefined) {
        // The reader took these bytes: the daemon may send as many more.
        if (this.#ws.readyState === WebSocket.OPEN) {
          this.#ws.send(JSON.stringify({ type: "credit", bytes: next.length }));
        }
        yield next;
        continue;
      }
      await new Promise<void>((r) => this.#wake = r);
    }
  }
}
