/** The daemon's side of a stream WebSocket (`control/stream_socket.ts`), with a fake socket and connection. */
import assert from "node:assert/strict";
import { bridge } from "../src/control/stream_socket.ts";
import type { Connection, StreamError } from "../src/stream/mod.ts";

/** A WebSocket that records what the bridge sends and whether it closed. */
function fakeSocket() {
  const socket = {
    binaryType: "blob",
    readyState: WebSocket.OPEN as number,
    bufferedAmount: 0,
    sent: [] as unknown[],
    closed: null as [number, string] | null,
    send(data: unknown) {
      this.sent.push(data);
    },
    close(code: number, reason: string) {
      this.closed = [code, reason];
      this.readyState = WebSocket.CLOSING;
    },
    onmessage: null as ((ev: { data: unknown }) => void) | null,
    onclose: null as (() => void) | null,
  };
  return socket;
}

/** A connection whose peer sent `chunks` and finished; our side closes at once. */
function finishedConnection(chunks: Uint8Array[]): Connection {
  const queue: (Uint8Array | null)[] = [...chunks, null];
  return {
    read: () => Promise.resolve(queue.shift() ?? null),
    write: () => Promise.resolve(),
    close: () => Promise.resolve(),
    reset: () => {},
    closed: new Promise<StreamError | null>(() => {}),
  } as unknown as Connection;
}

const turn = () => new Promise((r) => setTimeout(r, 0));
const text = (o: unknown) => ({ data: JSON.stringify(o) });

Deno.test("a stream socket with client credits closes only once the client credited every byte it was sent", async () => {
  const socket = fakeSocket();
  bridge(socket as unknown as WebSocket, finishedConnection([new Uint8Array(1000)]), {}, true);
  await turn();
  socket.onmessage!(text({ type: "fin" }));
  await turn();
  // Both directions are done, but the client has not read (credited) the 1000 bytes:
  // it will still send credits, and a closing socket would drop it at the first one.
  assert.deepEqual(socket.sent.map((f) => typeof f === "string" ? JSON.parse(f).type : "bytes"), [
    "open",
    "bytes",
    "fin",
  ]);
  assert.equal(socket.closed, null);
  socket.onmessage!(text({ type: "credit", bytes: 600 }));
  assert.equal(socket.closed, null);
  socket.onmessage!(text({ type: "credit", bytes: 400 }));
  assert.deepEqual(socket.closed, [1000, "done"]);
});

Deno.test("a stream socket without client credits closes as soon as both directions are done", async () => {
  const socket = fakeSocket();
  bridge(socket as unknown as WebSocket, finishedConnection([new Uint8Array(1000)]), {}, false);
  await turn();
  assert.equal(socket.closed, null); // the client has not finished its side
  socket.onmessage!(text({ type: "fin" }));
  await turn();
  assert.deepEqual(socket.closed, [1000, "done"]);
});
