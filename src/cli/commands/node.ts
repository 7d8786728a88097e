/**
 * Commands that ask a running node: `info`, `peers`, `connect`.
 *
 * @module
 */
import { ControlClient } from "../../control/client.ts";
import { invalid } from "../../errors.ts";
import type { CommandSpec } from "../command.ts";
import { keyValues, table } from "../output.ts";
import { peerText } from "../peer_text.ts";
import { arr, bool, int, nullable, num, obj, str } from "../schema.ts";

const peerRef = obj({ address: str, hostname: nullable(str), fingerprint: str, public_key: str });

const info: CommandSpec = {
  name: "info",
  summary: "show this node's identity, address and counters",
  args: [],
  flags: {},
  output: obj({
    address: str,
    hostname: nullable(str),
    public_key: str,
    fingerprint: str,
    listen: str,
    uptime_s: int,
    peers: int,
    trusted: int,
  }),
  errors: ["not_running", "version_mismatch"],
  async run(ctx) {
    return await (await ControlClient.open(ctx.home)).call("GET", "/v1/info");
  },
  human: (d) => {
    const o = d as Record<string, unknown>;
    return keyValues([
      ["address", o.address],
      ["hostname", o.hostname ?? "-"],
      ["fingerprint", o.fingerprint],
      ["public key", o.public_key],
      ["listen", o.listen],
      ["uptime", `${o.uptime_s}s`],
      ["peers", `${o.peers} (${o.trusted} trusted)`],
    ]);
  },
};

const peers: CommandSpec = {
  name: "peers",
  summary: "list peers with a live session",
  args: [],
  flags: {},
  output: obj({
    peers: arr(obj({
      address: str,
      hostname: nullable(str),
      fingerprint: str,
      public_key: str,
      endpoint: nullable(str),
      trusted: bool,
      path: str,
      rtt_ms: nullable(num),
      session_age_s: nullable(int),
      dropped: int,
    })),
  }),
  errors: ["not_running", "version_mismatch"],
  async run(ctx) {
    return await (await ControlClient.open(ctx.home)).call("GET", "/v1/peers");
  },
  human: (d) => {
    const list = (d as { peers: Record<string, unknown>[] }).peers;
    if (list.length === 0) return "no peers";
    return table(
      ["ADDRESS", "FINGERPRINT", "ENDPOINT", "TRUSTED", "AGE", "DROPPED", "HOSTNAME"],
      list.map((p) => [
        String(p.address),
        String(p.fingerprint),
        String(p.endpoint ?? "-"),
        p.trusted ? "yes" : "no",
        p.session_age_s === null ? "-" : `${p.session_age_s}s`,
        String(p.dropped),
        p.hostname === null ? "-" : peerText(String(p.hostname)),
      ]),
    );
  },
};

const ping: CommandSpec = {
  name: "ping",
  summary: "measure round trips through a trusted peer's echo service (port 7)",
  args: [{ name: "peer", description: "address, hostname, or endpoint IP:PORT", required: true }],
  flags: {
    count: { type: "integer", value: "N", description: "probes to send (default 4)" },
    interval: { type: "duration", description: "pause between probes (default 1s)" },
    timeout: { type: "duration", description: "wait this long for each reply (default 5s)" },
  },
  output: obj({
    peer: peerRef,
    sent: int,
    received: int,
    rtt_ms: arr(nullable(num)),
    min_ms: nullable(num),
    avg_ms: nullable(num),
    max_ms: nullable(num),
  }),
  errors: ["not_running", "not_trusted", "unreachable", "key_changed", "conflict", "not_found"],
  async run(ctx) {
    const count = typeof ctx.flags.count === "number" ? ctx.flags.count : 4;
    const intervalMs = typeof ctx.flags.interval === "number" ? ctx.flags.interval : 1000;
    const timeoutMs = typeof ctx.flags.timeout === "number" ? ctx.flags.timeout : 5_000;
    return await (await ControlClient.open(ctx.home)).call("POST", "/v1/ping", {
      body: { peer: ctx.args.peer, count, interval_ms: intervalMs, timeout_ms: timeoutMs },
      timeoutMs: count * (intervalMs + timeoutMs) + 10_000,
    });
  },
  human: (d) => {
    const o = d as {
      peer: Record<string, unknown>;
      sent: number;
      received: number;
      rtt_ms: (number | null)[];
      min_ms: number | null;
      avg_ms: number | null;
      max_ms: number | null;
    };
    const lines = o.rtt_ms.map((r, i) =>
      r === null ? `probe ${i + 1}: timeout` : `probe ${i + 1}: ${r} ms`
    );
    const loss = Math.round(((o.sent - o.received) / o.sent) * 100);
    lines.push(`${o.sent} sent, ${o.received} received, ${loss}% loss`);
    if (o.min_ms !== null) lines.push(`rtt min/avg/max = ${o.min_ms}/${o.avg_ms}/${o.max_ms} ms`);
    return lines.join("\n");
  },
};

const bench: CommandSpec = {
  name: "bench",
  summary: "measure stream throughput through a trusted peer's echo (hash-verified)",
  args: [{ name: "peer", description: "address, hostname, or endpoint IP:PORT", required: true }],
  flags: {
    size: { type: "string", value: "MB", description: "megabytes to send (default 16)" },
    timeout: { type: "duration", description: "give up after this long (default 2m)" },
  },
  output: obj({
    peer: peerRef,
    bytes: int,
    seconds: num,
    mbps: num,
    mbps_one_way: num,
    sha256_verified: { type: "boolean" },
    retransmits: int,
  }),
  errors: ["not_running", "not_trusted", "unreachable", "timeout", "not_found"],
  async run(ctx) {
    const size = typeof ctx.flags.size === "string" ? Number(ctx.flags.size) : 16;
    if (!(size > 0) || size > 4096) {
      throw invalid(`Cannot bench ${ctx.flags.size} MB`, "give --size from 0 to 4096");
    }
    const timeoutMs = typeof ctx.flags.timeout === "number" ? ctx.flags.timeout : 120_000;
    return await (await ControlClient.open(ctx.home)).call("POST", "/v1/bench", {
      body: { peer: ctx.args.peer, size_mb: size, timeout_ms: timeoutMs },
      timeoutMs: timeoutMs + 5_000,
    });
  },
  human: (d) => {
    const o = d as {
      bytes: number;
      seconds: number;
      mbps: number;
      mbps_one_way: number;
      retransmits: number;
    };
    return `${
      (o.bytes / 1048576).toFixed(1)
    } MiB echoed in ${o.seconds} s: ${o.mbps_one_way} Mbit/s each way ` +
      `(${o.mbps} Mbit/s total), SHA-256 verified, ${o.retransmits} retransmits`;
  },
};

/** Commands that ask a running node. */
export const NODE_COMMANDS: CommandSpec[] = [info, peers, ping, bench];
