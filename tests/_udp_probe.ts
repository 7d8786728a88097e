/**
 * A UDP agent for the NAT lab (`_natlab.ts`), run inside a namespace:
 *
 * ```
 * deno run --allow-net --unstable-net tests/_udp_probe.ts [PORT]
 * ```
 *
 * It binds one socket to `0.0.0.0:PORT` (0 or none: any port) and keeps it
 * for its whole life, so every command below uses the same local endpoint,
 * as a node punching through a NAT must. It is a reflector too: it answers
 * every datagram that starts with `?` with `=IP:PORT`, the source it saw
 * (STUN-like). Every other datagram is kept until a `recv` collects it.
 *
 * It prints `{"ready":PORT}` once bound, then reads one JSON command per line
 * on stdin and prints one JSON answer per line; it exits at the end of stdin:
 *
 * - `{"op":"send","host":H,"port":P,"text":T,"count":N,"intervalMs":MS}`
 *   sends T to H:P N times (default 1), MS apart → `{"sent":N}`
 * - `{"op":"ask","host":H,"port":P,"waitMs":MS}` sends `?` to the reflector
 *   H:P (again every 200 ms) until it answers → `{"seen":"IP:PORT"}`, or
 *   `{"seen":null}` after MS
 * - `{"op":"recv","waitMs":MS,"count":N}` waits until N datagrams are kept
 *   (without N: the whole MS) → `{"got":[{"from":"IP:PORT","text":T}, ...]}`,
 *   and forgets them
 *
 * @module
 */

interface Got {
  from: string;
  text: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const socket = Deno.listenDatagram({
  transport: "udp",
  hostname: "0.0.0.0",
  port: Number(Deno.args[0] ?? "0"),
});
const kept: Got[] = [];
// Woken on every datagram kept, so waits end as soon as they can.
let wake: () => void = () => {};
const arrival = () => new Promise<void>((resolve) => (wake = resolve));

const show = (a: Deno.Addr) => {
  const n = a as Deno.NetAddr;
  return `${n.hostname}:${n.port}`;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function receiveLoop(): Promise<void> {
  try {
    for (;;) {
      const [bytes, from] = await socket.receive();
      const text = decoder.decode(bytes);
      if (text.startsWith("?")) {
        await socket.send(encoder.encode(`=${show(from)}`), from);
        continue;
      }
      kept.push({ from: show(from), text });
      wake();
    }
  } catch {
    // The socket was closed: the agent is exiting.
  }
}

/** Waits until `until()` holds or `ms` has passed. */
async function waitUntil(ms: number, until: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!until() && Date.now() < deadline) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      arrival(),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, deadline - Date.now()))),
    ]);
    clearTimeout(timer);
  }
}

// deno-lint-ignore no-explicit-any
async function handle(cmd: any): Promise<unknown> {
  switch (cmd.op) {
    case "send": {
      const count = cmd.count ?? 1;
      for (let i = 0; i < count; i++) {
        if (i > 0) await sleep(cmd.intervalMs ?? 0);
        await socket.send(encoder.encode(String(cmd.text)), {
          transport: "udp",
          hostname: cmd.host,
          port: cmd.port,
        });
      }
      return { sent: count };
    }
    case "ask": {
      const from = `${cmd.host}:${cmd.port}`;
      const answer = () => kept.findIndex((g) => g.from === from && g.text.startsWith("="));
      const deadline = Date.now() + cmd.waitMs;
      while (Date.now() < deadline) {
        await socket.send(encoder.encode("?"), {
          transport: "udp",
          hostname: cmd.host,
          port: cmd.port,
        });
        await waitUntil(Math.min(200, deadline - Date.now()), () => answer() >= 0);
        const i = answer();
        if (i >= 0) return { seen: kept.splice(i, 1)[0]!.text.slice(1) };
      }
      return { seen: null };
    }
    case "recv": {
      const count = cmd.count ?? Infinity;
      await waitUntil(cmd.waitMs, () => kept.length >= count);
      return { got: kept.splice(0) };
    }
    default:
      return { error: `Unknown op ${JSON.stringify(cmd.op)}: expected send, ask or recv` };
  }
}

const receiving = receiveLoop();
console.log(JSON.stringify({ ready: (socket.addr as Deno.NetAddr).port }));
let buffer = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let nl: number;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    if (line.trim() === "") continue;
    console.log(JSON.stringify(await handle(JSON.parse(line))));
  }
}
socket.close();
await receiving;
