/**
 * Commands that ask a running node: `info`, `peers`, `connect`.
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { BENCH, INFO, PEERS, PING } from "../../control/contract/diagnostics.ts";
import { invalid, noAnswer } from "../../errors.ts";
import { command, type CommandSpec } from "../command.ts";
import { keyValues, table } from "../output.ts";
import { peerText } from "../peer_text.ts";
import { ago } from "../time_ago.ts";
import { durationFlag, integerFlag, numberFlag, PEER_ARG } from "../flags.ts";

const info = command({
  name: "info",
  routes: [INFO.route],
  summary: "show this node's identity, address and counters",
  args: [],
  flags: {},
  output: INFO.output,
  errors: ["not_running", "version_mismatch"],
  async run(ctx) {
    return await (await PilotClient.open(ctx.home)).call("GET", "/v1/info");
  },
  human: (o) => {
    return keyValues([
      ["address", o.address],
      ["hostname", o.hostname ?? "-"],
      ["fingerprint", o.fingerprint],
      ["public key", o.public_key],
      ["listen", o.listen],
      ...(o.reachability === null ? [] : [
        ["observed", o.reachability.observed ?? "-"] as [string, string],
        ["nat", o.reachability.nat] as [string, string],
        [
          "rendezvous",
          o.reachability.rendezvous.map((r) =>
            `${r.address ?? "(connecting)"} ${
              r.published ? "published" : `not published${r.error ? ` (${r.error})` : ""}`
            }`
          ).join(", "),
        ] as [string, string],
      ]),
      ["uptime", `${o.uptime_s}s`],
      ["peers", `${o.peers} (${o.trusted} trusted)`],
      ...o.tunnels.exposed.map((e) =>
        ["exposed", `virtual port ${e.vport} -> ${e.target} (${e.served} served)`] as [
          string,
          string,
        ]
      ),
      ...o.tunnels.forwarded.map((f) =>
        [
          "forwarded",
          `${f.listen} -> ${peerText(f.peer)} port ${f.vport} (${f.served} served)`,
        ] as [
          string,
          string,
        ]
      ),
    ]);
  },
});

const peers = command({
  name: "peers",
  routes: [PEERS.route],
  summary: "list peers with a live session and when each was last heard",
  args: [],
  flags: {},
  output: PEERS.output,
  errors: ["not_running", "version_mismatch"],
  async run(ctx) {
    return await (await PilotClient.open(ctx.home)).call("GET", "/v1/peers");
  },
  human: ({ peers: list }) => {
    if (list.length === 0) return "no peers";
    return table(
      [
        "ADDRESS",
        "FINGERPRINT",
        "PATH",
        "ENDPOINT",
        "RTT",
        "TRUSTED",
        "AGE",
        "LAST SEEN",
        "DROPPED",
        "HOSTNAME",
      ],
      list.map((p) => [
        p.address,
        p.fingerprint,
        p.path,
        p.path === "relay" ? `via ${p.via}` : p.endpoint ?? "-",
        p.rtt_ms === null ? "-" : `${p.rtt_ms}ms`,
        p.trusted ? "yes" : "no",
        p.session_age_s === null ? "-" : `${p.session_age_s}s`,
        ago(p.last_seen),
        String(p.dropped),
        p.hostname === null ? "-" : peerText(p.hostname),
      ]),
    );
  },
});

const ping = command({
  name: "ping",
  routes: [PING.route],
  summary: "measure round trips through a trusted peer's echo service (port 7)",
  args: [PEER_ARG],
  flags: {
    count: integerFlag(PING.input.count, "N", "probes to send"),
    interval: durationFlag(PING.input.interval_ms, "pause between probes"),
    timeout: durationFlag(PING.input.timeout_ms, "wait this long for each reply"),
  },
  output: PING.output,
  errors: ["not_running", "not_trusted", "unreachable", "key_changed", "conflict", "not_found"],
  async run(ctx) {
    const count = numberFlag(ctx, "count");
    const intervalMs = numberFlag(ctx, "interval");
    const timeoutMs = numberFlag(ctx, "timeout");
    const client = await PilotClient.open(ctx.home);
    const result = await client.request(PING, {
      peer: String(ctx.args.peer),
      count,
      interval_ms: intervalMs,
      timeout_ms: timeoutMs,
    }, { timeoutMs: count * (intervalMs + timeoutMs) + 10_000 });
    // Like ping(8): no reply at all is a failure, not a report of 100% loss.
    if (result.received === 0) {
      const { peers } = await client.request(PEERS, {});
      const endpoint = peers.find((p) => p.public_key === result.peer.public_key)?.endpoint;
      throw noAnswer(
        "unreachable",
        String(ctx.args.peer),
        endpoint ?? null,
        `none of ${result.sent} probes came back (a peer run with --disable echo answers none); ` +
          "`pilot peers` shows the path to it",
      );
    }
    return result;
  },
  human: (o) => {
    const lines = o.rtt_ms.map((r, i) =>
      r === null ? `probe ${i + 1}: timeout` : `probe ${i + 1}: ${r} ms`
    );
    const loss = Math.round(((o.sent - o.received) / o.sent) * 100);
    lines.push(`${o.sent} sent, ${o.received} received, ${loss}% loss`);
    if (o.min_ms !== null) lines.push(`rtt min/avg/max = ${o.min_ms}/${o.avg_ms}/${o.max_ms} ms`);
    return lines.join("\n");
  },
});

const bench = command({
  name: "bench",
  routes: [BENCH.route],
  summary: "measure stream throughput through a trusted peer's echo (hash-verified)",
  args: [PEER_ARG],
  flags: {
    size: {
      type: "string",
      value: "MB",
      description: "megabytes to send",
      default: String(BENCH.input.size_mb.default),
    },
    timeout: durationFlag(BENCH.input.timeout_ms, "give up after this long"),
  },
  output: BENCH.output,
  errors: ["not_running", "not_trusted", "unreachable", "timeout", "not_found"],
  async run(ctx) {
    const size = Number(ctx.flags.size);
    if (!(size > 0) || size > BENCH.input.size_mb.max) {
      throw invalid(
        `Cannot bench ${ctx.flags.size} MB`,
        `give --size from 0 to ${BENCH.input.size_mb.max}`,
      );
    }
    const timeoutMs = numberFlag(ctx, "timeout");
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/bench", {
      body: { peer: ctx.args.peer, size_mb: size, timeout_ms: timeoutMs },
      timeoutMs: timeoutMs + 5_000,
    });
  },
  human: (o) => {
    return `${
      (o.bytes / 1048576).toFixed(1)
    } MiB echoed in ${o.seconds} s: ${o.mbps_one_way} Mbit/s each way ` +
      `(${o.mbps} Mbit/s total), SHA-256 verified, ${o.retransmits} retransmits`;
  },
});

/** Commands that ask a running node. */
export const NODE_COMMANDS: CommandSpec[] = [info, peers, ping, bench];
