/**
 * The daemon's UDP socket sends datagrams in the order it was given them:
 * the runtime's concurrent sends can leave out of order under a burst, and
 * a stream takes datagrams that far out of order for loss.
 */
import assert from "node:assert/strict";
import { UdpSocket } from "../src/daemon/udp.ts";

const DATAGRAMS = 20_000;
const SIZE = 8_000;
const BURST = 2_000;

/** Sends numbered datagrams with `send` in bursts; returns how many arrived and how many came before a lower number. */
async function burstOrder(send: (bytes: Uint8Array) => void, rx: Deno.DatagramConn) {
  let received = 0;
  let reordered = 0;
  let last = -1;
  const buffer = new Uint8Array(SIZE);
  const reading = (async () => {
    try {
      for (;;) {
        const [b] = await rx.receive(buffer);
        const n = new DataView(b.buffer, b.byteOffset).getUint32(0);
        if (n < last) reordered++;
        last = n;
        received++;
      }
    } catch {
      // Closed.
    }
  })();
  for (let i = 0; i < DATAGRAMS; i++) {
    const bytes = new Uint8Array(SIZE);
    new DataView(bytes.buffer).setUint32(0, i);
    send(bytes);
    if (i % BURST === 0) await new Promise((r) => setTimeout(r, 0));
  }
  await new Promise((r) => setTimeout(r, 500));
  rx.close();
  await reading;
  return { received, reordered };
}

// Without the one-at-a-time sends this failed here with 186 of 201 datagrams
// reordered; the runtime's own sends reorder such a burst on an idle machine,
// not always under the parallel test suite, so that is not asserted.
Deno.test("UdpSocket.send() keeps a burst's datagrams in order", async () => {
  const rx = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const to = { hostname: "127.0.0.1", port: (rx.addr as Deno.NetAddr).port };
  const udp = UdpSocket.open({ hostname: "127.0.0.1", port: 0 });
  try {
    const ours = await burstOrder((b) => udp.send(b, to), rx);
    assert.ok(ours.received > 0, "nothing arrived");
    assert.equal(ours.reordered, 0, JSON.stringify(ours));
  } finally {
    udp.close();
  }
});
