/**
 * Crash-test writer: opens the inbox of the home given as first argument and
 * adds messages from several concurrent loops until it is killed, acking
 * every third one so compactions run too. Prints one line per event, only
 * after the event is durable (or, for `K`, before it starts):
 *
 * - `S <seq> <id>`: the message was stored (add resolved)
 * - `K <seq>`: an ack of that message is starting
 * - `A <seq>`: that ack resolved
 *
 * Usage: `deno run --allow-read --allow-write tests/_kill9_writer.ts HOME TAG`
 *
 * @module
 */
import { Inbox, type NewInboxMessage } from "../src/daemon/inbox.ts";

const KEY_A = "aa".repeat(32);
const KEY_B = "bb".repeat(32);

/** The message the writer stores under `id` (number `i` of its run). */
export function writerMessage(id: string, i: number): NewInboxMessage {
  const binary = i % 2 === 1;
  // Sizes up to ~48 KiB make writes long enough for a kill to land inside one.
  const n = (i * 7919) % 12_000;
  const data = binary
    ? new Uint8Array(n).map((_, j) => (j * 31 + i) & 0xff).toBase64()
    : `${id}:` + "é∂x\u0001".repeat(Math.floor(n / 4));
  const from_key = i % 3 === 0 ? KEY_A : KEY_B;
  return {
    id,
    from: "0:0000.0000.0001",
    from_key,
    hostname: i % 5 === 0 ? null : `host-${i % 5}`,
    fingerprint: from_key.slice(0, 16),
    type: binary ? "binary" : "text",
    data,
    bytes: binary ? n : new TextEncoder().encode(data).length,
    received_at: new Date(1_700_000_000_000 + i).toISOString(),
    meta: { i: String(i) },
  };
}

/** Whether writer message `i` gets acked. */
export function writerAcks(i: number): boolean {
  return i % 3 !== 0;
}

async function main(home: string, tag: string): Promise<void> {
  const inbox = await Inbox.open(home, { compactMargin: 20 });
  const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  let next = 0;
  const loop = async () => {
    for (;;) {
      const i = next++;
      const id = `${tag}-${i}`;
      const msg = await inbox.add(writerMessage(id, i));
      out(`S ${msg.seq} ${id}`);
      if (writerAcks(i)) {
        out(`K ${msg.seq}`);
        await inbox.ack([id]);
        out(`A ${msg.seq}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, loop));
}

if (import.meta.main) {
  const [home, tag] = Deno.args;
  if (home === undefined || tag === undefined) {
    console.error("usage: _kill9_writer.ts HOME TAG");
    Deno.exit(2);
  }
  await main(home, tag);
}
