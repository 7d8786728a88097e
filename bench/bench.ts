/**
 * `deno task bench`: starts real daemons on loopback in temporary homes and
 * prints ONE JSON object of figures on stdout, each beside the raw baseline
 * measured in the same run (plain UDP, AES-GCM alone). Progress goes to
 * stderr. Not part of the tests: nothing here asserts anything.
 *
 * Usage: `deno task bench [--datagram-bytes N] [--volume-mib N] [--only a,b,...]
 * [--msg-inflight N] [--profile NAME] [--profile-dir DIR]`.
 *
 * - `--only` picks among: idle, aead, raw_udp, sweep, stream, ping, messages, tasks,
 *   forward, handshakes, rendezvous, relay.
 * - `--profile NAME` measures only NAME, with this process and every daemon it starts
 *   under V8's `--cpu-prof`: the profiles go to `profiles/NAME/` (or `--profile-dir`),
 *   with `summary.txt` (each profile's top functions by self and total time), and the
 *   JSON's `details.profile` lists them. Open a `.cpuprofile` in Chrome DevTools
 *   (Performance, "Load profile") to read it whole.
 * - `--profile-dir DIR` alone profiles the daemons of every measurement run into DIR.
 *
 * Daemons: A (fixture 0) and B (fixture 1) trust each other (seeded
 * trust.json, `mutual: true`); B also trusts fixture 2, the in-process peer
 * that pings B's echo service. C (fixture 3) trusts nobody and takes the
 * handshakes of the benchmark identities (`tests/fixtures/bench_identities.json`,
 * made once by `scripts/make_bench_identities.ts`).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { type Row, summarise } from "./profile_summary.ts";
import { LOOPBACK_DATAGRAM } from "../src/constants.ts";
import {
  cleanup,
  type Context,
  type Figures,
  MESSAGE_INFLIGHT,
  MIB,
  progress,
  settings,
} from "./_common.ts";
import { measureHandshakes, measureIdle, SESSION_TARGETS } from "./sessions.ts";
import {
  measureAead,
  measureRawUdp,
  measureStream,
  measureSweep,
  THROUGHPUT_TARGETS,
} from "./throughput.ts";
import { LATENCY_TARGETS, measurePing } from "./latency.ts";
import { measureForward, measureMessages, measureTasks, MESSAGE_TARGETS } from "./messages.ts";
import { metOf, type Targets } from "./targets.ts";
import { measureRelay, measureRendezvous, RENDEZVOUS_TARGETS } from "./rendezvous.ts";

const MEASUREMENTS = [
  "idle",
  "aead",
  "raw_udp",
  "sweep",
  "stream",
  "ping",
  "messages",
  "tasks",
  "forward",
  "handshakes",
  "rendezvous",
  "relay",
] as const;

type Measurement = (typeof MEASUREMENTS)[number];

/**
 * Every target (issue 13, on the 2-core reference machine), from the module
 * that measures its figure.
 */
export const TARGETS: Targets = {
  ...THROUGHPUT_TARGETS,
  ...LATENCY_TARGETS,
  ...MESSAGE_TARGETS,
  ...SESSION_TARGETS,
  ...RENDEZVOUS_TARGETS,
};

export async function machine(): Promise<Record<string, unknown>> {
  let cpu: string | null = null;
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? null;
  } catch {
    // Not Linux.
  }
  // A new UDP socket's receive buffer (the system's default): the daemons ask for more
  // (`udp_buffers` in `pilot info`), and loopback streams keep their flight within this one.
  let rmemDefault: number | null = null;
  try {
    rmemDefault = Number((await Deno.readTextFile("/proc/sys/net/core/rmem_default")).trim());
  } catch {
    // Not Linux.
  }
  let load: number[] | null = null;
  try {
    load = Deno.loadavg();
  } catch {
    // Not available.
  }
  return {
    cores: navigator.hardwareConcurrency,
    cpu,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    loadavg_at_start: load,
    udp_receive_buffer_bytes: rmemDefault,
  };
}

const RUNNERS: Record<Measurement, (ctx: Context) => Promise<Figures>> = {
  idle: measureIdle,
  aead: measureAead,
  raw_udp: measureRawUdp,
  sweep: measureSweep,
  stream: measureStream,
  ping: measurePing,
  messages: measureMessages,
  tasks: measureTasks,
  forward: measureForward,
  handshakes: measureHandshakes,
  rendezvous: measureRendezvous,
  relay: measureRelay,
};

/** Profiles kept per function in `summary.txt`. */
const PROFILE_TOP = 25;

/** A flag the bench cannot take: reported in one line, with no stack. */
class UsageError extends Error {}

/**
 * `--profile NAME`: runs this bench again with `--only NAME` under
 * `--cpu-prof` (its daemons too, through `--profile-dir`), then writes
 * `summary.txt` beside the profiles and prints the run's JSON with
 * `details.profile` added.
 */
async function profileOne(name: string, dirFlag: string | undefined): Promise<void> {
  if (!(MEASUREMENTS as readonly string[]).includes(name)) {
    throw new UsageError(
      `Unknown measurement "${name}" for --profile: expected one of ${MEASUREMENTS.join(", ")} ` +
        "(to profile the daemons of a whole run into a folder, use --profile-dir DIR)",
    );
  }
  const dir = resolve(dirFlag ?? join("profiles", name));
  await Deno.mkdir(dir, { recursive: true });
  const passed = Deno.args.flatMap((a, i, all) =>
    a === "--profile" || all[i - 1] === "--profile" || a.startsWith("--profile=") ||
      a === "--only" || all[i - 1] === "--only" || a.startsWith("--only=") ||
      a === "--profile-dir" || all[i - 1] === "--profile-dir" || a.startsWith("--profile-dir=")
      ? []
      : [a]
  );
  progress(`profile: ${name}, this process and its daemons under --cpu-prof into ${dir}`);
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--v8-flags=--expose-gc",
      "--cpu-prof",
      "--cpu-prof-dir",
      dir,
      "--cpu-prof-name",
      "bench.cpuprofile",
      new URL(import.meta.url).pathname,
      ...passed,
      "--only",
      name,
      "--profile-dir",
      dir,
      "--profiled",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!child.success) throw new Error(`the profiled run of ${name} exited ${child.code}`);
  const out = JSON.parse(new TextDecoder().decode(child.stdout));
  const files = [...Deno.readDirSync(dir)].map((e) => e.name)
    .filter((n) => n.endsWith(".cpuprofile")).sort();
  const lines: string[] = [];
  const top: Record<string, string[]> = {};
  for (const f of files) {
    const { total, self, inclusive } = summarise(JSON.parse(await Deno.readTextFile(join(dir, f))));
    const row = (r: Row) =>
      `${r.percent.toFixed(1).padStart(6)}%  ${r.ms.toString().padStart(7)} ms  ${r.name}`;
    lines.push(`${f}: ${Math.round(total)} ms sampled`, "", `self time (top ${PROFILE_TOP}):`);
    lines.push(...self.slice(0, PROFILE_TOP).map(row), "", `total time (top ${PROFILE_TOP}):`);
    lines.push(...inclusive.slice(0, PROFILE_TOP).map(row), "", "");
    // What the CPU did: idle time is not a hot spot.
    top[f] = self.filter((r) => !r.name.startsWith("(idle)")).slice(0, 5)
      .map((r) => `${r.percent}% ${r.name}`);
  }
  await Deno.writeTextFile(join(dir, "summary.txt"), lines.join("\n"));
  out.details.profile = { measurement: name, dir, files, summary: "summary.txt", top_self: top };
  console.log(JSON.stringify(out, null, 2));
}

/** The command line's flags; a flag the bench does not know is a UsageError. */
function flags() {
  try {
    return parseArgs({
      args: Deno.args,
      options: {
        "datagram-bytes": { type: "string", default: String(LOOPBACK_DATAGRAM) },
        "volume-mib": { type: "string", default: "64" },
        only: { type: "string", default: MEASUREMENTS.join(",") },
        profile: { type: "string" },
        "profile-dir": { type: "string" },
        "msg-inflight": { type: "string", default: String(MESSAGE_INFLIGHT) },
        // Set by --profile for the process it re-runs under --cpu-prof.
        profiled: { type: "boolean", default: false },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export async function main(): Promise<void> {
  const { values } = flags();
  if (values.profile !== undefined && !values.profiled) {
    await profileOne(values.profile, values["profile-dir"]);
    return;
  }
  settings.messageInflight = Number(values["msg-inflight"]);
  if (!Number.isInteger(settings.messageInflight) || settings.messageInflight < 1) {
    throw new UsageError(`Invalid --msg-inflight ${values["msg-inflight"]}`);
  }
  if (values["profile-dir"] !== undefined) {
    settings.profileDir = values["profile-dir"];
    await Deno.mkdir(settings.profileDir, { recursive: true });
  }
  const datagramBytes = Number(values["datagram-bytes"]);
  if (!Number.isInteger(datagramBytes) || datagramBytes < 64 || datagramBytes > 65_507) {
    throw new UsageError(
      `Invalid --datagram-bytes ${values["datagram-bytes"]}: expected 64 to 65507`,
    );
  }
  const volumeMib = Number(values["volume-mib"]);
  if (!(volumeMib > 0)) throw new UsageError(`Invalid --volume-mib ${values["volume-mib"]}`);
  const only = values.only.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const unknown = only.find((s) => !(MEASUREMENTS as readonly string[]).includes(s));
  if (unknown !== undefined) {
    throw new UsageError(`Unknown measurement "${unknown}": expected ${MEASUREMENTS.join(", ")}`);
  }
  const ctx: Context = {
    datagramBytes,
    volumeBytes: volumeMib * MIB,
    daemons: undefined,
    notes: {},
    details: {},
  };
  const figures: Figures = {
    datagram_bytes: datagramBytes,
    stream_mbps: null,
    raw_udp_mbps: null,
    aead_mbps: null,
    aead_mbps_sequential: null,
    ping_rtt_ms_p50: null,
    ping_rtt_ms_p99: null,
    raw_udp_rtt_ms_p50: null,
    aead_call_ms_p50: null,
    ping_floor_ms: null,
    sealed_udp_rtt_ms_p50: null,
    msgs_per_s: null,
    msg_latency_ms_p99: null,
    msgs_per_s_tcp: null,
    msgs_per_s_batch: null,
    msg_latency_ms_p99_batch: null,
    tasks_per_s: null,
    task_round_trip_ms_p50: null,
    task_round_trip_ms_p99: null,
    forward_http_rps: null,
    forward_http_p50_ms: null,
    direct_http_rps: null,
    direct_http_p50_ms: null,
    handshakes_per_s: null,
    rendezvous_lookups_per_s: null,
    rendezvous_verifies_per_s: null,
    rendezvous_bytes_per_record: null,
    relay_stream_mbps: null,
    relay_ping_rtt_ms_p50: null,
    relay_ping_rtt_ms_p99: null,
    relay_bytes_per_pair: null,
    idle_rss_mb: null,
    rss_per_session_kb: null,
  };
  const machineInfo = await machine();
  // Idle memory first: before anything else has touched the daemons.
  for (const m of MEASUREMENTS) {
    if (!only.includes(m)) continue;
    try {
      Object.assign(figures, await RUNNERS[m](ctx));
    } catch (e) {
      progress(`${m} failed: ${(e as Error).stack ?? e}`);
      ctx.notes[`${m}_error`] = (e as Error).message;
    }
  }
  ctx.notes.units = "mbps figures are megabytes (10^6 bytes) per second, as the Go " +
    "reference's 89 MB/s; RSS in MiB (idle) and KiB (per session); times in ms";
  const out = {
    ...figures,
    targets: TARGETS,
    met: metOf(TARGETS, figures),
    machine: machineInfo,
    details: ctx.details,
    notes: ctx.notes,
  };
  console.log(JSON.stringify(out, null, 2));
}

if (import.meta.main) {
  const onSignal = () => {
    progress("interrupted: cleaning up");
    cleanup().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  let usage: UsageError | undefined;
  try {
    await main();
  } catch (e) {
    // Bad flags: one line, no stack.
    if (!(e instanceof UsageError)) throw e;
    usage = e;
  } finally {
    progress("cleaning up");
    await cleanup();
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  if (usage !== undefined) {
    console.error(`bench: ${usage.message}`);
    Deno.exit(2);
  }
}
