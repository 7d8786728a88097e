/**
 * `deno task floods`: the flood harness of issue 8. Starts a victim daemon, a
 * friend it trusts (mutual trust through the real handshake and approve) and,
 * for every attack, a fresh honest stranger, each in a temporary home on
 * 127.0.0.1; runs each attack from this process for a fixed time while the
 * friend pings and sends, the stranger asks for trust and the local user
 * calls the API; prints ONE JSON object per attack (NDJSON) on stdout and a
 * summary line last. Progress goes to stderr. Not part of the tests.
 *
 * The friend also pings a bystander, a third daemon that trusts it and that
 * nobody attacks, at the same rate, half an interval apart:
 * `bystander_ping_ms` is what the attack does to a ping on this machine
 * without touching the daemon that answers it (the attacker and every
 * daemon share the same cores). It is a reference, not a target.
 *
 * Usage: `deno task floods [--seconds N] [--only NAME[,NAME]] [--rate N] [--victim-nofile N]
 * [--profile DIR]` (`--victim-nofile` lowers the victim's descriptor limit with
 * `prlimit`, as on a machine whose limit is the usual 1,024; `--profile` runs
 * the victim and the friend in the foreground under V8's `--cpu-prof` and
 * writes `DIR/victim.cpuprofile` and `DIR/friend.cpuprofile` when the run ends: summarise them with
 * `bench/profile_summary.ts`, one attack per run).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { decodeIdentityFile } from "../src/identity/identity.ts";
import benchIdentities from "../tests/fixtures/bench_identities.json" with { type: "json" };
import {
  establishTrust,
  fixture,
  makeHome,
  TestNode,
  trustEntry,
} from "../tests/_daemon_harness.ts";
import { type Attack, type AttackOutcome, sleep, type Victim } from "./floods/_attack.ts";
import { Api, cpuMs, percentile, round, rssMb, RssSampler } from "./floods/_measure.ts";
import { ATTACKS } from "./floods/mod.ts";
import { HOSTILE_FIXTURE } from "./floods/trusted_streams.ts";

/** Targets of issue 8, item 10. */
export const TARGETS = {
  rss_peak_over_start_mb: 50,
  rss_end_over_start_mb: 10,
  friend_ping_p99_ms: 20,
  stranger_request_ms: 2000,
  local_api_ms: 250,
} as const;

const VICTIM_FIXTURE = 1;
const FRIEND_FIXTURE = 0;
/** Never trusted by anyone: the key `untrust` is timed with. */
const UNKNOWN_FIXTURE = 6;
/** Honest strangers take bench identities from here down (the many-identities attack uses the rest). */
const STRANGER_BENCH_FROM = 255;
/** The bystander's bench identity (below the strangers', above the many-identities attack's). */
const BYSTANDER_BENCH = 220;
const PING_INTERVAL_MS = 100;
const PING_TIMEOUT_MS = 1000;
const STRANGER_WAIT_MS = 10_000;
const API_PROBE = new URL("./floods/_api_probe.ts", import.meta.url).pathname;
const DRAIN_MIN_MS = 3000;
const DRAIN_MAX_MS = 15_000;
const DRAIN_QUIET_PCT = 10;

const started = performance.now();
function progress(message: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
  console.error(`[floods ${s}s] ${message}`);
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** `info.memory` (bytes) in MB, one decimal; null when the victim did not answer. */
function memoryMb(m: Json): Json {
  if (m === undefined || m === null) return null;
  return {
    rss: round(m.rss / 2 ** 20),
    heap_total: round(m.heap_total / 2 ** 20),
    heap_used: round(m.heap_used / 2 ** 20),
    external: round(m.external / 2 ** 20),
  };
}

/** Per-reason increase between two `{reason: count}` objects, nonzero ones only. */
function deltas(before: Record<string, number> = {}, after: Record<string, number> = {}) {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

async function isAlive(node: TestNode): Promise<boolean> {
  if ((await cpuMs(node.pid)) === null) return false;
  const api = await Api.of(node.home).catch(() => undefined);
  if (api === undefined) return false;
  try {
    return (await api.call("GET", "/v1/health", undefined, 5000)).status === 200;
  } finally {
    api.close();
  }
}

/** The friend's pings to `victim` through `POST /v1/ping` on its own API, spanning `seconds`. */
async function friendPings(friend: Api, victim: string, seconds: number) {
  const count = Math.max(1, Math.floor((seconds * 1000) / PING_INTERVAL_MS) - 5);
  const r = await friend.call("POST", "/v1/ping", {
    peer: victim,
    count,
    interval_ms: PING_INTERVAL_MS,
    timeout_ms: PING_TIMEOUT_MS,
  }, seconds * 1000 + 30_000);
  if (r.status !== 200) {
    return { p50: null, p99: null, lost: count, error: JSON.stringify(r.json).slice(0, 300) };
  }
  const rtts: (number | null)[] = r.json.data.rtt_ms;
  const got = rtts.filter((v): v is number => v !== null);
  const p50 = percentile(got, 0.5);
  const p99 = percentile(got, 0.99);
  return {
    p50: p50 === null ? null : round(p50, 2),
    p99: p99 === null ? null : round(p99, 2),
    lost: rtts.length - got.length,
    // Which probes were slow (over half the target), as [probe, ms]: probe i
    // left about i × PING_INTERVAL_MS into the attack.
    slow: rtts.flatMap((v, i) =>
      v !== null && v > TARGETS.friend_ping_p99_ms / 2 ? [[i, round(v, 1)]] : []
    ),
  };
}

/** The stranger's `handshake` to the victim: ms until the request shows in the victim's pending. */
async function strangerRequest(
  stranger: Api,
  strangerKey: string,
  victimApi: Api,
  victimEndpoint: string,
): Promise<{ ms: number | null; error?: string }> {
  const t0 = performance.now();
  const asked = stranger.call("POST", "/v1/handshake", {
    peer: victimEndpoint,
    reason: "honest stranger during a flood",
    timeout_ms: STRANGER_WAIT_MS,
  }, STRANGER_WAIT_MS + 5000);
  let found: number | null = null;
  while (performance.now() - t0 < STRANGER_WAIT_MS) {
    const p = await victimApi.call("GET", "/v1/pending", undefined, STRANGER_WAIT_MS);
    const list: Json[] = p.json?.data?.pending ?? [];
    if (list.some((e) => e.public_key === strangerKey)) {
      found = performance.now() - t0;
      break;
    }
    await sleep(50);
  }
  const answer = await asked;
  const error = answer.status === 200 ? undefined : JSON.stringify(answer.json).slice(0, 300);
  return { ms: found === null ? null : Math.round(found), ...(error ? { error } : {}) };
}

/**
 * Local `info` and `untrust` of an unknown key, once a second for `seconds`,
 * from a process of its own (`floods/_api_probe.ts`): this one is busy
 * sending the flood, and its event loop would add its own delay.
 */
async function localApi(home: string, seconds: number, unknownKey: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-net", API_PROBE, home, String(seconds), unknownKey],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  try {
    return JSON.parse(text);
  } catch {
    const why = new TextDecoder().decode(out.stderr).trim().slice(0, 200);
    return { info: null, untrust: null, samples: 0, failures: [`probe failed: ${why}`] };
  }
}

/**
 * Waits, from `t0` (the attack's end), until the victim's CPU is below DRAIN_QUIET_PCT of
 * a core and its RSS is back within the end target of `rssStart` (at least
 * DRAIN_MIN_MS, at most DRAIN_MAX_MS); returns the seconds that took and
 * whether both happened.
 */
async function drain(
  pid: number,
  rssStart: number,
  t0: number,
): Promise<{ s: number; drained: boolean; cpuPct: number | null }> {
  const c0 = performance.now();
  const first = await cpuMs(pid);
  let last = first;
  const result = (drained: boolean) => {
    const span = performance.now() - c0;
    const pct = first === null || last === null || span <= 0
      ? null
      : Math.round(((last - first) / span) * 100);
    return { s: round((performance.now() - t0) / 1000, 2), drained, cpuPct: pct };
  };
  for (;;) {
    await sleep(250);
    const now = await cpuMs(pid);
    const rss = await rssMb(pid);
    if (now === null || last === null || rss === null) return result(false);
    const quiet = ((now - last) / 250) * 100 < DRAIN_QUIET_PCT &&
      rss <= rssStart + TARGETS.rss_end_over_start_mb;
    last = now;
    const elapsed = performance.now() - t0;
    if (quiet) {
      const r = result(true);
      if (elapsed < DRAIN_MIN_MS) await sleep(DRAIN_MIN_MS - elapsed);
      return r;
    }
    if (elapsed >= DRAIN_MAX_MS) return result(false);
  }
}

/** The victim's last log lines (to explain a failed send or a death). */
async function logTail(home: string, lines = 6): Promise<string[]> {
  try {
    const text = await Deno.readTextFile(`${home}/daemon.log`);
    return text.trimEnd().split("\n").slice(-lines).map((l) => l.slice(0, 300));
  } catch {
    return [];
  }
}

/**
 * Sets the victim's RLIMIT_NOFILE (soft and hard) to `n` with util-linux
 * `prlimit`, as on a machine with the usual 1,024: the daemon raised its own
 * limit at start, so this is the only way to probe descriptor exhaustion here.
 */
async function limitFiles(pid: number, n: number): Promise<void> {
  const out = await new Deno.Command("prlimit", {
    args: ["--pid", String(pid), `--nofile=${n}:${n}`],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`prlimit failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  progress(`victim pid ${pid}: RLIMIT_NOFILE set to ${n}`);
}

interface Nodes {
  victim: TestNode;
  friend: TestNode;
  /** The address of the bystander the friend pings too. */
  bystander: string;
}

/**
 * The bystander and the friend's home, trusting each other from the start
 * (the friend's entry carries the bystander's endpoint): it never meets an
 * attacker, so nothing but the shared machine delays its answers.
 */
async function startBystander(): Promise<{ node: TestNode; friendHome: string }> {
  const id = benchIdentities[BYSTANDER_BENCH]!;
  const node = new TestNode(
    await makeHome({
      identityText: JSON.stringify(id),
      trust: [trustEntry(FRIEND_FIXTURE, { mutual: true })],
    }),
    { identityText: "", hostname: "flood-bystander" },
  );
  try {
    await node.start();
    const friendHome = await makeHome({
      identity: FRIEND_FIXTURE,
      trust: [trustEntry(id, { mutual: true, endpoint: node.listen })],
    });
    return { node, friendHome };
  } catch (e) {
    await node.stop();
    throw e;
  }
}

async function startStranger(index: number): Promise<{ node: TestNode; key: string }> {
  const id = benchIdentities[index];
  if (id === undefined) throw new RangeError(`No bench identity ${index}`);
  const home = await makeHome({ identityText: JSON.stringify(id) });
  const node = new TestNode(home, { identityText: "", hostname: `stranger-${index}` });
  try {
    await node.start();
  } catch (e) {
    await node.stop();
    throw e;
  }
  return { node, key: id.public_key };
}

async function runOne(
  attack: Attack,
  nodes: Nodes,
  strangerIndex: number,
  seconds: number,
  rate: number,
): Promise<Json> {
  const { victim, friend, bystander } = nodes;
  const stranger = await startStranger(strangerIndex).catch((e: Error) => e);
  if (stranger instanceof Error) progress(`no honest stranger: ${stranger.message.slice(0, 200)}`);
  const victimApi = await Api.of(victim.home);
  const friendApi = await Api.of(friend.home);
  const strangerApi = stranger instanceof Error ? undefined : await Api.of(stranger.node.home);
  const victimKey = decodeIdentityFile(JSON.stringify(fixture(VICTIM_FIXTURE))).publicKey;
  const address = fixture(VICTIM_FIXTURE).address;
  const pid = victim.pid;
  try {
    const info0 = (await victimApi.call("GET", "/v1/info")).json?.data ?? {};
    const rssStart = (await rssMb(pid)) ?? 0;
    const sampler = new RssSampler(pid);
    const cpu0 = (await cpuMs(pid)) ?? 0;
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    const v: Victim = {
      endpoint: { hostname: "127.0.0.1", port: Number(victim.listen.split(":").at(-1)) },
      publicKey: victimKey,
      address,
      controlUrl: victimApi.url,
      pid,
    };
    const run = attack.run({
      victim: v,
      friend: {
        hostname: "127.0.0.1",
        port: Number(friend.listen.split(":").at(-1)),
      },
      rate,
      deadline,
      log: (m) => progress(m),
    }).catch((e): AttackOutcome => ({
      packets_sent: 0,
      notes: { attack_error: (e as Error).message },
    }));
    const ping = friendPings(friendApi, address, seconds);
    const reference = sleep(PING_INTERVAL_MS / 2).then(() =>
      friendPings(friendApi, bystander, seconds)
    );
    const send = sleep(seconds * 250).then(() =>
      friendApi.call("POST", "/v1/send", {
        peer: address,
        data: `flood probe during ${attack.name}`,
        timeout_ms: 10_000,
      }, 20_000)
    );
    const request = stranger instanceof Error || strangerApi === undefined
      ? Promise.resolve({ ms: null, error: `stranger did not start: ${stranger}`.slice(0, 300) })
      : sleep(seconds * 100).then(() =>
        strangerRequest(strangerApi, stranger.key, victimApi, victim.listen)
      );
    const local = localApi(victim.home, seconds, fixture(UNKNOWN_FIXTURE).public_key);
    const outcome = await run;
    const cpu1 = await cpuMs(pid);
    const elapsed = performance.now() - t0;
    const [pingR, referenceR, sendR, requestR, localR] = await Promise.all([
      ping,
      reference,
      send,
      request,
      local,
    ]);
    const drained = await drain(pid, rssStart, t0 + elapsed);
    sampler.stop();
    const rssEnd = await rssMb(pid);
    const alive = await isAlive(victim);
    const info1 = alive ? (await victimApi.call("GET", "/v1/info")).json?.data ?? {} : {};
    const peak = Math.max(sampler.peak, rssStart);
    const sendOk = sendR.status === 200 && sendR.json?.status === "ok";
    const log = sendOk && alive ? [] : await logTail(victim.home);
    const result: Json = {
      attack: attack.name,
      seconds,
      ...(outcome.skipped === undefined ? {} : { skipped: outcome.skipped }),
      packets_sent: outcome.packets_sent,
      packets_per_s: Math.round(outcome.packets_sent / (elapsed / 1000)),
      victim_cpu_pct: cpu1 === null ? null : Math.round(((cpu1 - cpu0) / elapsed) * 100),
      rss_mb: {
        start: round(rssStart),
        peak: round(peak),
        end: rssEnd === null ? null : round(rssEnd),
      },
      friend_ping_ms: pingR,
      bystander_ping_ms: referenceR,
      friend_send_ok: sendOk,
      ...(sendOk ? {} : { friend_send_error: JSON.stringify(sendR.json).slice(0, 300) }),
      stranger_request_ms: requestR.ms,
      ...(requestR.error === undefined ? {} : { stranger_error: requestR.error }),
      local_api_ms: localR,
      // The victim's own view (GET /v1/info) before and after, MB: RSS against the V8
      // heap tells heap growth from memory the runtime holds elsewhere (threads, allocator).
      victim_memory_mb: { start: memoryMb(info0.memory), end: memoryMb(info1.memory) },
      drain_s: drained.s,
      drained: drained.drained,
      drain_cpu_pct: drained.cpuPct,
      drops: {
        drops: deltas(info0.drops, info1.drops),
        trust_refused: deltas(info0.trust_refused, info1.trust_refused),
      },
      daemon_alive: alive,
      ...(log.length === 0 ? {} : { victim_log_tail: log }),
      ...(outcome.notes === undefined ? {} : { notes: outcome.notes }),
    };
    result.targets = outcome.skipped !== undefined ? {} : {
      rss_peak: peak <= rssStart + TARGETS.rss_peak_over_start_mb,
      rss_end: rssEnd !== null && rssEnd <= rssStart + TARGETS.rss_end_over_start_mb,
      friend_ping: pingR.lost === 0 && pingR.p99 !== null &&
        pingR.p99 <= TARGETS.friend_ping_p99_ms,
      friend_send: sendOk,
      stranger_pending: requestR.ms !== null && requestR.ms <= TARGETS.stranger_request_ms,
      local_api: localR.info !== null && localR.untrust !== null &&
        Math.max(localR.info, localR.untrust) <= TARGETS.local_api_ms,
      daemon_alive: alive,
    };
    return result;
  } finally {
    victimApi.close();
    friendApi.close();
    strangerApi?.close();
    if (!(stranger instanceof Error)) await stranger.node.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seconds: { type: "string", default: "30" },
      only: { type: "string" },
      rate: { type: "string", default: "10000" },
      "victim-nofile": { type: "string" },
      profile: { type: "string" },
    },
  });
  const seconds = Number(values.seconds);
  const rate = Number(values.rate);
  if (!(seconds > 0 && seconds <= 600)) throw new RangeError(`Bad --seconds ${values.seconds}`);
  if (!(rate > 0 && rate <= 1_000_000)) throw new RangeError(`Bad --rate ${values.rate}`);
  const names = values.only?.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const n of names ?? []) {
    if (!ATTACKS.some((a) => a.name === n)) {
      throw new RangeError(
        `Unknown attack "${n}": expected one of ${ATTACKS.map((a) => a.name).join(", ")}`,
      );
    }
  }
  const nofile = values["victim-nofile"] === undefined
    ? undefined
    : Number(values["victim-nofile"]);
  if (nofile !== undefined && !(Number.isInteger(nofile) && nofile >= 64)) {
    throw new RangeError(
      `Bad --victim-nofile ${values["victim-nofile"]}: expected an integer ≥ 64`,
    );
  }
  const profileDir = values.profile;
  if (profileDir !== undefined) await Deno.mkdir(profileDir, { recursive: true });
  const profile = profileDir === undefined
    ? {}
    : { profile: { dir: profileDir, name: "victim.cpuprofile" } };
  const chosen = names === undefined ? ATTACKS : ATTACKS.filter((a) => names.includes(a.name));

  let victim: TestNode | undefined;
  let friend: TestNode | undefined;
  let bystander: TestNode | undefined;
  const summary: Record<string, { held: string[]; missed: string[] }> = {};
  try {
    progress("starting the victim (fixture 1, trusts fixture 2) and the friend (fixture 0)");
    victim = new TestNode(
      await makeHome({ identity: VICTIM_FIXTURE, trust: [trustEntry(HOSTILE_FIXTURE)] }),
      { identity: VICTIM_FIXTURE, hostname: "flood-victim", ...profile },
    );
    await victim.start();
    if (nofile !== undefined) await limitFiles(victim.pid, nofile);
    const pair = await startBystander();
    bystander = pair.node;
    friend = new TestNode(pair.friendHome, {
      identity: FRIEND_FIXTURE,
      hostname: "flood-friend",
      ...(profileDir === undefined
        ? {}
        : { profile: { dir: profileDir, name: "friend.cpuprofile" } }),
    });
    await friend.start();
    progress(
      `victim ${victim.listen} pid ${victim.pid}; friend ${friend.listen}; ` +
        `bystander ${bystander.listen}`,
    );
    await establishTrust(friend, victim, victim.listen, "flood harness friend");
    progress("friend and victim trust each other");
    let strangerIndex = STRANGER_BENCH_FROM;
    for (const attack of chosen) {
      progress(`${attack.name}: ${seconds} s at up to ${rate}/s`);
      const result = await runOne(
        attack,
        { victim, friend, bystander: benchIdentities[BYSTANDER_BENCH]!.address },
        strangerIndex--,
        seconds,
        rate,
      );
      console.log(JSON.stringify(result));
      const t = result.targets as Record<string, boolean>;
      summary[attack.name] = {
        held: Object.keys(t).filter((k) => t[k]),
        missed: Object.keys(t).filter((k) => !t[k]),
      };
      if (!result.daemon_alive) {
        progress(`${attack.name}: the victim died; restarting it for the next attack`);
        await victim.start();
        if (nofile !== undefined) await limitFiles(victim.pid, nofile);
      }
    }
    console.log(JSON.stringify({ summary, targets: TARGETS }));
  } finally {
    progress("stopping daemons and removing homes");
    await Promise.allSettled([victim?.stop(), friend?.stop(), bystander?.stop()]);
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`floods: ${(e as Error).stack ?? e}`);
    Deno.exit(1);
  }
}
