/**
 * `control_connections`: idle TCP connections to the victim's control port
 * (no token, no bytes), up to {@linkcode MAX_OPEN} open at once, held until
 * the deadline and all closed at the end.
 *
 * @module
 */
import { type Attack, sleep } from "./_attack.ts";

/** Most connections open at once. */
export const MAX_OPEN = 1500;
/** Connections opened per second at most. */
const OPEN_RATE = 1000;

/** A flood of idle local TCP connections to the control API. */
export const controlConnections: Attack = {
  name: "control_connections",
  async run(ctx) {
    const url = ctx.victim.controlUrl;
    const open: Deno.TcpConn[] = [];
    let failed = 0;
    let lastError = "";
    let closedByPeer = 0;
    const rate = Math.min(ctx.rate, OPEN_RATE);
    const start = performance.now();
    try {
      while (performance.now() < ctx.deadline && open.length < MAX_OPEN) {
        const due = Math.min(MAX_OPEN, Math.floor(((performance.now() - start) / 1000) * rate));
        if (open.length + failed >= due) {
          await sleep(5);
          continue;
        }
        try {
          const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
          open.push(conn);
          // A read that ends tells us the daemon closed the connection (a timeout or a cap).
          conn.read(new Uint8Array(1)).then(() => closedByPeer++, () => closedByPeer++);
        } catch (e) {
          failed++;
          lastError = (e as Error).message;
          if (failed > MAX_OPEN) break;
          await sleep(10);
        }
      }
      const peakOpen = open.length;
      const fds = await openFiles(ctx.victim.pid);
      while (performance.now() < ctx.deadline) await sleep(50);
      return {
        packets_sent: peakOpen,
        notes: {
          what: "packets_sent counts TCP connections opened",
          opened: peakOpen,
          connect_failures: failed,
          ...(lastError === "" ? {} : { last_connect_error: lastError }),
          closed_by_daemon_before_end: closedByPeer,
          victim_open_fds_at_peak: fds.open,
          victim_fd_soft_limit: fds.limit,
        },
      };
    } finally {
      for (const c of open) {
        try {
          c.close();
        } catch {
          // Already closed by the daemon.
        }
      }
    }
  },
};

/** Open descriptors of a process and its soft RLIMIT_NOFILE (Linux), nulls when unreadable. */
async function openFiles(pid: number): Promise<{ open: number | null; limit: number | null }> {
  let open: number | null = null;
  let limit: number | null = null;
  try {
    open = 0;
    for await (const _ of Deno.readDir(`/proc/${pid}/fd`)) open++;
  } catch {
    open = null;
  }
  try {
    const m = /^Max open files\s+(\d+)/m.exec(await Deno.readTextFile(`/proc/${pid}/limits`));
    limit = m ? Number(m[1]) : null;
  } catch {
    limit = null;
  }
  return { open, limit };
}
