/**
 * Session figures: idle memory, handshakes per second at one daemon, and
 * memory per session.
 *
 * @module
 */

import {
  COOKIE_LOAD_THRESHOLD,
  HANDSHAKE_RATE_PER_KEY,
  HANDSHAKE_RATE_PER_SOURCE,
} from "../src/constants.ts";
import { join } from "node:path";
import { endpointOf, type TestNode } from "../tests/_daemon_harness.ts";
import { BenchPeer } from "./_peer.ts";
import {
  Api,
  cleanups,
  type Context,
  cpuMs,
  daemonsOf,
  type Figures,
  type Json,
  loadBenchIdentities,
  type Memory,
  memoryOf,
  percentile,
  pool,
  profileIn,
  progress,
  round,
  RSS_SETTLE_MS,
  rssKb,
  settings,
  settledMemory,
  sleep,
} from "./_common.ts";
import type { Targets } from "./targets.ts";

/** Targets of the session figures. */
export const SESSION_TARGETS: Targets = {
  handshakes_per_s: { min: 1000 },
  idle_rss_mb: { max: 80 },
  rss_per_session_kb: { max: 16 },
  // The per-session figure counts only over at least 1,000 sessions.
  rss_per_session_sessions: { min: 1000 },
  // "No measurable CPU": under 1% of one core.
  idle_cpu_percent_with_sessions: { max: 1 },
};

const HANDSHAKE_CONCURRENCY = 64;

const HANDSHAKE_ROUNDS = 3;

/**
 * How long the idle daemons run before their memory is read (ms): V8 keeps
 * the young generation its startup grew (up to 2 x 8 MiB here) until its
 * memory reducer first runs, 30 s after the heap is set up
 * (`--gc-memory-reducer-start-delay-ms`); an idle daemon sits at the
 * smaller figure from then on.
 */
const IDLE_SETTLE_MS = 35_000;

/** Memory of the daemons at rest: right after start, and once V8 has settled. */
export async function measureIdle(ctx: Context): Promise<Figures> {
  const { a, b, c } = await daemonsOf(ctx);
  const started = performance.now();
  await sleep(1500);
  const early = { a: await rssKb(a.pid), b: await rssKb(b.pid) };
  progress(`idle: the daemons' memory again ${IDLE_SETTLE_MS / 1000} s after start`);
  await sleep(IDLE_SETTLE_MS - (performance.now() - started));
  const kb = {
    a: await rssKb(a.pid),
    b: await rssKb(b.pid),
  };
  // C runs under the inspector (for the per-session figure), which holds memory of its own.
  ctx.details.idle_rss_kb = {
    ...kb,
    right_after_start: early,
    c_under_inspector: await rssKb(c.pid),
  };
  const values = Object.values(kb).filter((v): v is number => v !== null);
  if (values.length === 0) {
    ctx.notes.idle_rss_mb = "VmRSS is not readable here (/proc/PID/status is Linux only)";
    return { idle_rss_mb: null };
  }
  ctx.notes.idle_rss_mb =
    `VmRSS of each idle daemon (no peers) ${IDLE_SETTLE_MS / 1000} s after start, once V8's ` +
    "memory reducer has first run (30 s after start) and given back the young generation " +
    "the startup grew; the larger of A and B. details.idle_rss_kb.right_after_start: the " +
    "same 1.5 s after start (C runs under V8's inspector for rss_per_session_kb: " +
    "details.idle_rss_kb.c_under_inspector)";
  return { idle_rss_mb: round(Math.max(...values) / 1024, 1) };
}

/** A distinct loopback source address per initiator: 127.0.1.2, 127.0.1.3, ... */
function sourceAddress(i: number): string {
  return `127.0.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`;
}

/** Handshakes per second at daemon C, and memory per session. */
export async function measureHandshakes(ctx: Context): Promise<Figures> {
  const ids = await loadBenchIdentities();
  if (typeof ids === "string") {
    const why = `${ids}; run \`deno run -A scripts/make_bench_identities.ts\` once`;
    ctx.notes.handshakes_per_s = why;
    ctx.notes.rss_per_session_kb = why;
    return { handshakes_per_s: null, rss_per_session_kb: null };
  }
  const { c } = await daemonsOf(ctx);
  const cApi = await Api.of(c);
  const cKey = Uint8Array.fromHex(c.identity!.publicKey);
  const to = endpointOf(c.listen);
  progress(`handshakes: binding ${ids.length} initiators to distinct 127.0.x.y addresses`);
  let distinctSources = true;
  const peers: BenchPeer[] = [];
  for (const [i, id] of ids.entries()) {
    let peer: BenchPeer;
    try {
      peer = new BenchPeer(id, distinctSources ? sourceAddress(i) : "127.0.0.1");
    } catch {
      // Not Linux (only 127.0.0.1 is loopback): one source, so the per-source limit binds.
      distinctSources = false;
      peer = new BenchPeer(id, "127.0.0.1");
    }
    peers.push(peer);
    cleanups.push(() => peer.close());
  }

  const run = async (label: string, group: BenchPeer[], rounds: number) => {
    const latencies: number[] = [];
    const errors: Record<string, number> = {};
    const cpu0 = await cpuMs(c.pid);
    const self0 = await cpuMs("self");
    const t0 = performance.now();
    await pool(group.length * rounds, HANDSHAKE_CONCURRENCY, async (j) => {
      const peer = group[j % group.length]!;
      peer.renew();
      const h0 = performance.now();
      try {
        await peer.handshake(to, cKey, 20_000);
        latencies.push(performance.now() - h0);
      } catch (e) {
        const m = (e as Error).message.slice(0, 60);
        errors[m] = (errors[m] ?? 0) + 1;
      }
    });
    const ms = performance.now() - t0;
    const cpu1 = await cpuMs(c.pid);
    const self1 = await cpuMs("self");
    const done = latencies.length;
    const detail = {
      handshakes: done,
      failed: group.length * rounds - done,
      errors,
      seconds: round(ms / 1000),
      per_s: round(done / (ms / 1000), 0),
      latency_ms_p50: round(percentile(latencies, 0.5) ?? NaN),
      latency_ms_p99: round(percentile(latencies, 0.99) ?? NaN),
      daemon_cpu_ms_per_handshake: cpu0 === null || cpu1 === null || done === 0
        ? null
        : round((cpu1 - cpu0) / done, 2),
      daemon_cpu_percent: cpu0 === null || cpu1 === null
        ? null
        : round((cpu1 - cpu0) / ms * 100, 0),
      initiators_cpu_percent: self0 === null || self1 === null
        ? null
        : round((self1 - self0) / ms * 100, 0),
    };
    progress(`handshakes (${label}): ${JSON.stringify(detail)}`);
    return detail;
  };

  // Memory first: every identity holds one session with C, made in two
  // halves so that the growth of the second half (after the one-time costs:
  // runtime threads, heap and allocator growth, compiled code) shows apart.
  // Idle is read after the same settle as the figures after the handshakes, so that the
  // runtime's worker threads (and their arenas) are in the same state at both ends.
  await sleep(RSS_SETTLE_MS.at(-1)!);
  const idleUnforced = await memoryOf(c, cApi, 0);
  const idle = await memoryOf(c, cApi, 0, true);
  progress(`handshakes: first contact, ${peers.length} distinct identities in two halves`);
  const half = Math.floor(peers.length / 2);
  const firstHalf = await run("first contact, first half", peers.slice(0, half), 1);
  const mid = await settledMemory(c, cApi);
  const secondHalf = await run("first contact, second half", peers.slice(half), 1);
  const end = await settledMemory(c, cApi);
  // Idle CPU now: every identity holds a session with C, the last handshake
  // was RSS_SETTLE_MS ago, and no session has expired yet (the first half's
  // are well under UNTRUSTED_IDLE_MS old).
  progress(`handshakes: daemon C's CPU over ${IDLE_CPU_MS / 1000} s with its sessions idle`);
  const idleCpu = await profiledPhase(
    c,
    "daemon-bench-c-idle-window",
    () => idleCpuPercent(c, cApi, IDLE_CPU_MS),
  );
  if (idleCpu.sessions_after < idleCpu.sessions_before) {
    ctx.notes.idle_cpu_percent_with_sessions_changed = `sessions went from ` +
      `${idleCpu.sessions_before} to ${idleCpu.sessions_after} during the idle window ` +
      `(expired: this machine ran the handshakes too slowly for the window to fit)`;
  }
  const last = end.at(-1)!;
  const midLast = mid.at(-1)!;
  const lastUnforced = end.findLast((m) => !m.after_gc)!;
  const perSession = (a: Memory, b: Memory) =>
    a.rss_kb === null || b.rss_kb === null || b.sessions <= a.sessions
      ? null
      : round((b.rss_kb - a.rss_kb) / (b.sessions - a.sessions), 1);
  const heapPerSession = (a: Memory, b: Memory) =>
    b.sessions <= a.sessions
      ? null
      : round((b.heap_used_kb - a.heap_used_kb) / (b.sessions - a.sessions), 1);
  const growth = perSession(idle, last);
  // RSS that fell is noise larger than the sessions' memory: no figure rather than a negative one.
  const rssPerSession = growth !== null && growth < 0 ? null : growth;
  if (rssPerSession === null && growth !== null) {
    ctx.notes.rss_per_session_kb_missing = `RSS fell by ${-growth} KiB per session from idle ` +
      "to the last reading: the allocator returned more than the sessions took (noise)";
  }
  ctx.details.rss_per_session = {
    idle_before_gc: idleUnforced,
    idle,
    after_first_half: mid,
    after_second_half: end,
    total_growth_per_session_kb: rssPerSession,
    second_half_growth_per_session_kb: perSession(midLast, last),
    // The same growth without the forced GCs: garbage the daemon had not collected counted in.
    growth_per_session_before_gc_kb: perSession(idleUnforced, lastUnforced),
    heap_per_session_kb: heapPerSession(idle, last),
    second_half_heap_per_session_kb: heapPerSession(midLast, last),
  };
  ctx.notes.rss_per_session_kb = `VmRSS growth of daemon C from idle to ${last.sessions} live ` +
    `sessions, one per distinct identity (${peers.length} from ` +
    `tests/fixtures/bench_identities.json, real difficulty), divided by the sessions; read ` +
    `${RSS_SETTLE_MS.at(-1)! / 1000} s after the last handshake, when the runtime's blocking ` +
    `threads (WebCrypto runs on them) have idled out, and at both ends right after two full ` +
    `GCs run through V8's inspector (C runs with --inspect on loopback; ` +
    `HeapProfiler.collectGarbage) and half a second for the allocator: what the sessions ` +
    `hold, not the handshakes' garbage. It still includes what the burst left in the ` +
    `allocator and V8's heap capacity. details.rss_per_session: ` +
    `growth_per_session_before_gc_kb is the same growth read without the GCs; ` +
    `second_half_growth_per_session_kb the second half's alone, after the one-time costs. ` +
    "heap_per_session_kb is the growth of V8's heap in use (GET /v1/info memory.heap_used) " +
    "over the same span (after the GCs: live objects only)";

  progress(`handshakes: ${HANDSHAKE_ROUNDS} more rounds of ${peers.length}`);
  const steady = await run("steady", peers, HANDSHAKE_ROUNDS);
  progress(`handshakes: daemon C's CPU over ${AFTER_BURST_CPU_MS / 1000} s right after the rounds`);
  const afterBurst = await idleCpuPercent(c, cApi, AFTER_BURST_CPU_MS);
  ctx.details.idle_with_sessions = { ...idleCpu, right_after_the_rounds: afterBurst };
  ctx.notes.idle_cpu_percent_with_sessions = `daemon C's user + system CPU time over ` +
    `${IDLE_CPU_MS / 1000} s with its ${idleCpu.sessions_before} sessions idle, as a percent ` +
    `of one core: nothing is sent, timers only (the sessions are untrusted at C, so no ` +
    `keepalives: a trusted direct path behind a NAT would add one every 25 s per session), ` +
    `measured after the first-contact ` +
    `handshakes and the memory readings (${RSS_SETTLE_MS.at(-1)! / 1000} s after the last ` +
    `handshake), before the steady rounds. details.idle_with_sessions.right_after_the_rounds ` +
    `is ${
      AFTER_BURST_CPU_MS / 1000
    } s right after the steady rounds, which includes forgetting the sessions ` +
    `they replaced and collecting the burst's garbage`;
  // What C refused, by reason: the why behind any failed handshake above.
  const info = (await cApi.call("GET", "/v1/info")).json as { data?: { drops?: Json } };
  const drops = Object.fromEntries(
    Object.entries((info.data?.drops ?? {}) as Record<string, number>).filter(([, n]) => n > 0),
  );
  ctx.details.handshakes = {
    first_contact: [firstHalf, secondHalf],
    steady,
    concurrency: HANDSHAKE_CONCURRENCY,
    daemon_drops: drops,
  };
  ctx.details.handshake_limits_profile = {
    per_source_ip: HANDSHAKE_RATE_PER_SOURCE,
    per_key: HANDSHAKE_RATE_PER_KEY,
    cookie_threshold_half_open: COOKIE_LOAD_THRESHOLD,
    daemon_config: "defaults (no config.json knobs changed)",
    distinct_source_ips: distinctSources ? peers.length : 1,
  };
  ctx.notes.handshakes_per_s = `complete handshakes (message 3 processed and answered by the ` +
    `responder) per second at daemon C, from ${peers.length} in-process initiators with ` +
    `distinct identities, ${HANDSHAKE_CONCURRENCY} handshakes in flight, ` +
    `${HANDSHAKE_ROUNDS} rounds (each a fresh handshake replacing the previous session). ` +
    `Limits profile: the daemon's defaults, unchanged — ${HANDSHAKE_RATE_PER_SOURCE.burst} message 1 per source IP at once then ${HANDSHAKE_RATE_PER_SOURCE.perSecond}/s, ` +
    `${HANDSHAKE_RATE_PER_KEY.burst} completed per key then ${HANDSHAKE_RATE_PER_KEY.perSecond}/s, ` +
    `cookies above ${COOKIE_LOAD_THRESHOLD} half-open. ` +
    (distinctSources
      ? `Each initiator binds its own source address in 127/8 (127.0.1.2, ...), so no source ` +
        `exceeds its burst and the per-source limit never throttles; the per-key limit is ` +
        `not reached either (${1 + HANDSHAKE_ROUNDS} handshakes per key). `
      : `Only 127.0.0.1 could be bound, so the per-source limit throttles this figure. `) +
    `The initiators share this machine's cores with the daemon (see details.handshakes)`;
  return {
    handshakes_per_s: steady.per_s,
    rss_per_session_kb: rssPerSession,
    rss_per_session_sessions: last.sessions,
    heap_per_session_kb: heapPerSession(idle, last),
    idle_cpu_percent_with_sessions: idleCpu.percent,
  };
}

/**
 * How long an idle daemon's CPU is measured with its sessions up (ms): CPU
 * time is counted in 10 ms clock ticks, so 20 s resolve 0.05%. It must end
 * before C forgets the first sessions (untrusted there, UNTRUSTED_IDLE_MS
 * after their handshake), about 30 s after it starts.
 */
const IDLE_CPU_MS = 20_000;
/** The same, right after the steady rounds (ms): how long the burst's aftermath lasts. */
const AFTER_BURST_CPU_MS = 10_000;

/**
 * `phase()`, and under `--profile` (or `--profile-dir`) also a CPU profile of
 * `node` over just that phase, written as `NAME.cpuprofile` beside the
 * whole-process ones: an idle window is lost in a profile of the whole run.
 */
async function profiledPhase<T>(node: TestNode, name: string, phase: () => Promise<T>): Promise<T> {
  if (settings.profileDir === undefined) return await phase();
  let result: T | undefined;
  const profile = await profileIn(node, async () => {
    result = await phase();
  });
  if (profile === null) return await phase();
  await Deno.writeTextFile(
    join(settings.profileDir, `${name}.cpuprofile`),
    JSON.stringify(profile),
  );
  return result!;
}

/** `node`'s CPU use while nothing is asked of it, and its sessions before and after. */
async function idleCpuPercent(
  node: TestNode,
  api: Api,
  ms: number,
): Promise<{ percent: number | null; sessions_before: number; sessions_after: number }> {
  const sessions = async () => (await api.call("GET", "/v1/info")).json.data.sessions as number;
  const before = await sessions();
  const cpu0 = await cpuMs(node.pid);
  const t0 = performance.now();
  await sleep(ms);
  const cpu1 = await cpuMs(node.pid);
  const wall = performance.now() - t0;
  const after = await sessions();
  return {
    percent: cpu0 === null || cpu1 === null ? null : round((cpu1 - cpu0) / wall * 100, 2),
    sessions_before: before,
    sessions_after: after,
  };
}
