/**
 * `spoofed_init`: message 1s whose IPv4 source is the friend's own endpoint
 * (`127.0.0.1:FRIEND_PORT`), sent through a raw socket by
 * `_spoof_sender.py` (python3, CAP_NET_RAW): what an off-path attacker does
 * to lock a peer out through per-IP limits. Deno has no raw-socket API, so
 * without python3 or the capability the attack reports `skipped` with why.
 *
 * @module
 */
import { freshInit } from "./handshake_frames.ts";
import type { Attack } from "./_attack.ts";

const SENDER = new URL("./_spoof_sender.py", import.meta.url).pathname;

async function rawSocketProblem(): Promise<string | null> {
  try {
    const out = await new Deno.Command("python3", {
      args: ["-c", "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 255)"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success) return null;
    const why = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1) ?? "";
    return `python3 cannot open a raw socket as this user: ${why}`;
  } catch (e) {
    return `python3 is not available to send raw packets (${(e as Error).message}); ` +
      "Deno has no raw-socket API";
  }
}

/** Message 1s from a spoofed source: the friend's endpoint. */
export const spoofedInit: Attack = {
  name: "spoofed_init",
  async run(ctx) {
    const problem = await rawSocketProblem();
    if (problem !== null) return { packets_sent: 0, skipped: problem };
    const seconds = Math.max(0, (ctx.deadline - performance.now()) / 1000);
    const child = new Deno.Command("python3", {
      args: [
        SENDER,
        ctx.friend.hostname,
        String(ctx.friend.port),
        ctx.victim.endpoint.hostname,
        String(ctx.victim.endpoint.port),
        String(ctx.rate),
        seconds.toFixed(3),
        freshInit().toHex(),
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // The sender stops by itself at the deadline; this timer only guards against a hang.
    const guard = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, seconds * 1000 + 5000);
    try {
      const out = await child.output();
      const sent = Number(new TextDecoder().decode(out.stdout).trim());
      return {
        packets_sent: Number.isFinite(sent) ? sent : 0,
        notes: {
          spoofed_source: `${ctx.friend.hostname}:${ctx.friend.port} (the friend's endpoint)`,
          sender: "raw IPv4 socket (python3), UDP checksum 0",
          ...(out.success ? {} : {
            attack_error: new TextDecoder().decode(out.stderr).slice(-300),
          }),
        },
      };
    } finally {
      clearTimeout(guard);
    }
  },
};
