/**
 * The plain-UDP side of the benchmark's baselines, in its own process so the
 * raw figures pay for a process boundary as the daemon figures do.
 *
 * - `sink`: counts datagrams and bytes; whenever nothing arrived for `IDLE_MS`
 *   after a burst, prints `{"datagrams","bytes","first_ms","last_ms"}` for that
 *   burst and starts counting again, until killed.
 * - `echo`: sends every datagram back to its sender until killed.
 *
 * Either way the first line on stdout is the bound UDP port.
 *
 * Usage: `deno run --allow-net --unstable-net bench/_udp_child.ts sink|echo`
 *
 * @module
 */

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

if (import.meta.main) {
  const mode = Deno.args[0];
  if (mode !== "sink" && mode !== "echo") {
    console.error(`Unknown mode ${JSON.stringify(mode)}: expected sink or echo`);
    Deno.exit(2);
  }
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  console.log((conn.addr as Deno.NetAddr).port);
  await (mode === "sink" ? sink(conn) : echo(conn));
}
