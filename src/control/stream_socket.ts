/**
 * A reliable stream carried over a WebSocket of the control API.
 *
 * Frames: binary frames are stream bytes, both ways. Text frames are JSON
 * control messages: the daemon sends `{"type":"open",...}` first, `{"type":
 * "credit","bytes":N}` once N bytes the client sent were taken by the
 * stream (clients keep at most WS_WINDOW unacknowledged bytes in flight),
 * and `{"type":"fin"}` when the peer finished sending. The client sends
 * `{"type":"fin"}` to finish its side (half-close). Close codes: 1000 when
 * both sides finished (with client credits, once the client credited every
 * byte); 4000 reset by the peer, 4001 timeout, 4002 refused,
 * 4003 a limit was hit, 4004 closed, 4005 the client broke the protocol.
 *
 * @module
 */
import type { Connection, StreamError } from "../stream/mod.ts";

/** Bytes a client may send ahead of the daemon's credits. */
export const WS_WINDOW = 4 * 1024 * 1024;
/** Bytes a client may have queued before the daemon gives up on it. */
const WS_HARD_LIMIT = 4 * WS_WINDOW;

const CLOSE_CODES: Record<string, number> = {
  reset: 4000,
  timeout: 4001,
  refused: 4002,
  limit: 4003,
  closed: 4004,
};

/**
 * Wires an open WebSocket to a stream connection until both are done. With
 * `clientCredits` (the client asked for `flow=credit`), the daemon sends at
 * most WS_WINDOW bytes the client has not credited back, so a client that
 * stops reading holds the stream back instead of filling its own memory.
 */
export function bridge(
  socket: WebSocket,
  conn: Connection,
  hello: Record<string, unknown>,
  clientCredits = false,
): void {
  socket.binaryType = "arraybuffer";
  let localDone = false;
  let finRequested = false;
  let peerDone = false;
  let ended = false;
  let queued = 0;
  let unacked = 0;
  let creditWake: (() => void) | undefined;
  let writing: Promise<void> = Promise.resolve();

  const finish = (code: number, reason: string) => {
    if (ended) return;
    ended = true;
    try {
      socket.close(code, reason.slice(0, 120));
    } catch {
      // already closing
    }
  };
  const maybeDone = () => {
    // A client that credits what it reads sends until it has read everything;
    // once the socket is closing, the runtime drops the connection at its next
    // message, and the client loses what it had not read (the end of the
    // stream among it). So the socket closes once every byte was credited.
    if (localDone && peerDone && (!clientCredits || unacked === 0)) finish(1000, "done");
  };

  const pump = async () => {
    for (;;) {
      const chunk = await conn.read().catch(() => null);
      if (chunk === null) break;
      // Do not let the socket buffer grow without bound behind a slow client.
      while (socket.readyState === WebSocket.OPEN && socket.bufferedAmount > WS_WINDOW) {
        await new Promise((r) => setTimeout(r, 2));
      }
      while (clientCredits && socket.readyState === WebSocket.OPEN && unacked > WS_WINDOW) {
        await new Promise<void>((r) => creditWake = r);
      }
      if (socket.readyState !== WebSocket.OPEN) return;
      unacked += chunk.length;
      socket.send(chunk);
    }
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "fin" }));
    peerDone = true;
    maybeDone();
  };

  // The socket is already open: the route upgraded before the stream opened.
  socket.send(JSON.stringify({ type: "open", ...hello }));
  pump();
  socket.onmessage = (ev) => {
    if (typeof ev.data === "string") {
      let msg: { type?: string; bytes?: unknown } | undefined;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        msg = undefined;
      }
      if (msg?.type === "credit" && typeof msg.bytes === "number" && msg.bytes >= 0) {
        unacked = Math.max(0, unacked - msg.bytes);
        creditWake?.();
        maybeDone();
        return;
      }
      if (msg?.type !== "fin") {
        conn.reset("control client protocol error");
        finish(4005, "unknown control message");
        return;
      }
      finRequested = true;
      writing = writing.then(() => conn.close()).then(() => {
        localDone = true;
        maybeDone();
      }).catch(() => {});
      return;
    }
    const bytes = new Uint8Array(ev.data as ArrayBuffer);
    queued += bytes.length;
    if (queued > WS_HARD_LIMIT) {
      conn.reset("control client overran its window");
      finish(4003, "client sent past its window");
      return;
    }
    writing = writing.then(async () => {
      await conn.write(bytes);
      queued -= bytes.length;
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: "credit", bytes: bytes.length }));
      }
    }).catch(() => {});
  };
  socket.onclose = () => {
    ended = true;
    creditWake?.();
    // A client that finished its side may leave before the peer acknowledged
    // everything: its bytes still go out. Without a fin, leaving is a reset.
    if (!finRequested) conn.reset("control client went away");
  };
  conn.closed.then((err: StreamError | null) => {
    if (err !== null) finish(CLOSE_CODES[err.code] ?? 4004, err.reason || err.code);
  });
}
