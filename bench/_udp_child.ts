/**
 * The plain-UDP side of the benchmark's baselines, in its own process so the
 * raw figures pay for a process boundary as the daemon figures do.
 *
 * - `sink`: counts datagrams and bytes; whenever nothing arrived for `IDLE_MS`
 *   after a burst, prints `{"datagrams","bytes","first_ms","last_ms"}` for that
 *   burst and starts counting again, until killed.
 * - `echo`: sends every datagram back to its sender until killed.
 * - `sealed-echo`: the same, but as a tunnel would: each datagram (a u64
 *   counter, then AES-256-GCM ciphertext under an all-zero bench key with
 *   the counter as associated data) is opened, and its plaintext sealed
 *   again under the next counter of its own, with the same WebCrypto calls
 *   as a session (`AeadKey`); datagrams that do not open are dropped.
 *
 * Either way the first line on stdout is the bound UDP port.
 *
 * Usage: `deno run --allow-net --unstable-net bench/_udp_child.ts sink|echo|sealed-echo`
 *
 * @module
 */

import { AeadKey, nonceFromCounter } from "../src/session/crypto.ts";

/** Quiet time after which the sink reports (ms). */
export const IDLE_MS = 500;

async function sink(conn: Deno.DatagramConn): Promise<void> {
  const buffer = new Uint8Array(65_536);
  let datagrams = 0;
  let bytes = 0;
  let first = 0;
  let last = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // One report per burst of traffic; the counters start again for the next.
  const report = () => {
    console.log(JSON.stringify({ datagrams, bytes, first_ms: first, last_ms: last }));
    datagrams = 0;
    bytes = 0;
  };
  for (;;) {
    const [data] = await conn.receive(buffer);
    const now = performance.now();
    if (datagrams === 0) first = now;
    datagrams++;
    bytes += data.length;
    last = now;
    // Re-arming on every datagram costs little next to the receive op itself.
    clearTimeout(timer);
    timer = setTimeout(report, IDLE_MS);
  }
}

async function echo(conn: Deno.DatagramConn): Promise<void> {
  const buffer = new Uint8Array(65_536);
  for (;;) {
    const [data, from] = await conn.receive(buffer);
    await conn.send(data, from);
  }
}

/** Bytes of a sealed datagram's counter, before its ciphertext. */
export const SEALED_COUNTER_BYTES = 8;

/** A datagram of `sealed-echo`: `counter` in clear (and as associated data), then `plaintext` sealed. */
export async function sealDatagram(
  key: AeadKey,
  counter: number,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const header = new Uint8Array(SEALED_COUNTER_BYTES);
  new DataView(header.buffer).setBigUint64(0, BigInt(counter));
  const sealed = await key.seal(nonceFromCounter(counter), plaintext, header);
  const out = new Uint8Array(SEALED_COUNTER_BYTES + sealed.length);
  out.set(header);
  out.set(sealed, SEALED_COUNTER_BYTES);
  return out;
}

/** The plaintext of a {@linkcode sealDatagram} datagram, or null when it does not open. */
export function openDatagram(key: AeadKey, datagram: Uint8Array): Promise<Uint8Array | null> {
  if (datagram.length < SEALED_COUNTER_BYTES) return Promise.resolve(null);
  const header = datagram.subarray(0, SEALED_COUNTER_BYTES);
  const counter = Number(new DataView(header.buffer, header.byteOffset).getBigUint64(0));
  return key.open(nonceFromCounter(counter), datagram.subarray(SEALED_COUNTER_BYTES), header);
}

/** The all-zero key of `sealed-echo` (a baseline's, never a tunnel's). */
export function benchKey(): Promise<AeadKey> {
  return AeadKey.create(new Uint8Array(32));
}

async function sealedEcho(conn: Deno.DatagramConn): Promise<void> {
  const key = await benchKey();
  const buffer = new Uint8Array(65_536);
  // Its own counters, in their own half of the nonce space.
  let counter = 2 ** 40;
  for (;;) {
    const [data, from] = await conn.receive(buffer);
    const plaintext = await openDatagram(key, data.slice());
    if (plaintext === null) continue;
    await conn.send(await sealDatagram(key, counter++, plaintext), from);
  }
}

const MODES = { sink, echo, "sealed-echo": sealedEcho } as const;

/** What the child does. */
export type UdpChildMode = keyof typeof MODES;

if (import.meta.main) {
  const mode = Deno.args[0];
  if (mode === undefined || !Object.hasOwn(MODES, mode)) {
    console.error(
      `Unknown mode ${JSON.stringify(mode)}: expected ${Object.keys(MODES).join(", ")}`,
    );
    Deno.exit(2);
  }
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  console.log((conn.addr as Deno.NetAddr).port);
  await MODES[mode as UdpChildMode](conn);
}
