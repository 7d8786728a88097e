/**
 * Crash-test writer for the pending log: opens the trust-flow store of the
 * home given as first argument and adds pending requests from several
 * concurrent loops until it is killed, removing two of every three so that
 * compactions run too. Prints one line per event, only after the event is
 * durable (or, for `K`, before it starts):
 *
 * - `P <i>`: request `i` was stored (putPending resolved)
 * - `K <i>`: its removal is starting
 * - `R <i>`: that removal resolved
 *
 * Usage: `deno run --allow-read --allow-write tests/_kill9_pending_writer.ts HOME ROUND`
 *
 * @module
 */
import { TrustFlowStore } from "../src/daemon/trust_flow_store.ts";
import type { PendingRequest } from "../src/services/trust_types.ts";

/** The request the writer stores as number `i` of round `round`. */
export function writerRequest(round: number, i: number): PendingRequest {
  const key = (round * 1_000_000 + i).toString(16).padStart(64, "0");
  return {
    public_key: key,
    stamp: "00".repeat(8),
    address: "0000.0000.0001",
    hostname: i % 2 === 0 ? null : `host-${i}`,
    fingerprint: key.slice(0, 16),
    // Up to ~1 KiB with escapes, so a kill can land inside a write.
    reason: `é\u0001${i}:` + "x".repeat((i * 7919) % 1000),
    received_at: new Date(1_700_000_000_000 + i).toISOString(),
    request_hash: key,
  };
}

/** Whether the writer removes request `i` again. */
export function writerRemoves(i: number): boolean {
  return i % 3 !== 0;
}

async function main(home: string, round: number): Promise<void> {
  const flow = await TrustFlowStore.load(home);
  const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
  let next = 0;
  const loop = async () => {
    for (;;) {
      const i = next++;
      const request = writerRequest(round, i);
      await flow.putPending(request);
      out(`P ${i}`);
      if (writerRemoves(i)) {
        out(`K ${i}`);
        await flow.removePending(request.public_key);
        out(`R ${i}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, loop));
}

if (import.meta.main) {
  const [home, round] = Deno.args;
  if (home === undefined || round === undefined) {
    console.error("usage: _kill9_pending_writer.ts HOME ROUND");
    Deno.exit(2);
  }
  await main(home, Number(round));
}
