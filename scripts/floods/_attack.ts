/**
 * What every flood attack gets and returns, and the paced send loop they share.
 *
 * @module
 */
import type { Endpoint } from "../../src/discovery/endpoint.ts";

/** The victim as an attacker on this machine sees it. */
export interface Victim {
  /** UDP endpoint of the daemon. */
  endpoint: Endpoint;
  /** Its Ed25519 public key. */
  publicKey: Uint8Array;
  /** Its text address. */
  address: string;
  /** Base URL of its control API (TCP on loopback). */
  controlUrl: URL;
  /** Process id of the daemon. */
  pid: number;
}

/** What an attack runs with. */
export interface AttackContext {
  /** The target. */
  victim: Victim;
  /** Packets per second to aim at (the attack may reach less: its natural maximum). */
  rate: number;
  /** UDP endpoint of the friend the victim trusts (whose address a spoofer borrows). */
  friend: Endpoint;
  /** `performance.now()` at which the attack stops sending. */
  deadline: number;
  /** Progress lines (stderr). */
  log(message: string): void;
}

/** What an attack reports. */
export interface AttackOutcome {
  /** Datagrams (or connections) sent. */
  packets_sent: number;
  /** Set instead of running when the attack is impossible here, with why. */
  skipped?: string;
  /** Anything attack-specific worth keeping (what was sent, how it was built). */
  notes?: Record<string, unknown>;
}

/** One attack family member: a name and a run that stops by itself at the deadline. */
export interface Attack {
  /** Name used by `--only` and in the output. */
  name: string;
  /** Runs the attack until `ctx.deadline`; releases everything it opened before it resolves. */
  run(ctx: AttackContext): Promise<AttackOutcome>;
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Calls `send(i)` for i = 0, 1, … at `rate` per second until `deadline`
 * (never bursting more than 50 ms of backlog, so a slow sender runs at its
 * natural maximum); returns how many sends reported success.
 */
export async function paced(
  rate: number,
  deadline: number,
  send: (i: number) => Promise<boolean> | boolean,
): Promise<number> {
  const start = performance.now();
  let due = 0;
  let i = 0;
  let ok = 0;
  for (;;) {
    const now = performance.now();
    if (now >= deadline) break;
    const target = Math.floor(((now - start) / 1000) * rate);
    // Backlog beyond 50 ms of sends is forgiven: the loop is at its maximum.
    due = Math.max(due, target - Math.ceil(rate / 20));
    if (due >= target) {
      await sleep(1);
      continue;
    }
    const batchEnd = Math.min(target, due + 256);
    while (due < batchEnd) {
      due++;
      if (await send(i++)) ok++;
    }
  }
  return ok;
}

/** Random bytes of any length (getRandomValues takes at most 65,536 at once). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65_536) {
    crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65_536)));
  }
  return out;
}

/** A random nonzero u32 (a session index or connection id). */
export function randomIndex(): number {
  const v = new Uint32Array(1);
  do crypto.getRandomValues(v); while (v[0] === 0);
  return v[0]!;
}

/** Opens a UDP socket on `hostname:0` and returns it with a send function to `to`. */
export function udpSender(
  to: Endpoint,
  hostname = "127.0.0.1",
): { conn: Deno.DatagramConn; send(bytes: Uint8Array): Promise<boolean>; close(): void } {
  const conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  const addr = { transport: "udp" as const, hostname: to.hostname, port: to.port };
  // Answers (cookies, message 2s, RSTs) are read and thrown away so they never pile up.
  (async () => {
    const buf = new Uint8Array(65_536);
    try {
      for (;;) await conn.receive(buf);
    } catch {
      // Closed.
    }
  })();
  return {
    conn,
    send: async (bytes) => {
      try {
        await conn.send(bytes, addr);
        return true;
      } catch {
        return false;
      }
    },
    close: () => {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    },
  };
}
