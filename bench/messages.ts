/**
 * Message, task and tunnel figures: durable sends per second, task round
 * trips, and HTTP through `pilot forward` beside direct HTTP.
 *
 * @module
 */

import type { TestNode } from "../tests/_daemon_harness.ts";
import {
  Api,
  cleanups,
  type Context,
  cpuMs,
  daemonsOf,
  type Figures,
  type Json,
  NAME_B,
  percentile,
  pool,
  progress,
  round,
  settings,
} from "./_common.ts";
import type { Targets } from "./targets.ts";

/** Targets of the message figures. */
export const MESSAGE_TARGETS: Targets = {
  msgs_per_s: { min: 5000 },
  msgs_per_s_batch: { min: 5000 },
};

const MESSAGE_COUNT = 5000;

const MESSAGE_SECONDS = 5;

/** Messages in each request of the batch run (`POST /v1/send-batch`). */
const BATCH_SIZE = 64;

/** Batch requests in flight at once in the batch run. */
const BATCH_INFLIGHT = 4;

/** Messages of the batch run: 128 batches, within B's inbox cap (10,000) once emptied. */
const BATCH_COUNT = 128 * BATCH_SIZE;

/**
 * One timed burst of sends on A's API (the CLI's socket, or TCP through the
 * gate): `count` messages, `inflight` requests at once, each request one
 * message (`POST /v1/send`) or, with `batch` > 1, that many (`POST
 * /v1/send-batch`). A message counts when its answer carries B's receipt;
 * its latency is its request's.
 */
async function timedSends(
  a: TestNode,
  b: TestNode,
  api: Api,
  label: string,
  count: number,
  options: { inflight?: number; batch?: number } = {},
): Promise<{ sent: number; ms: number; latencies: number[]; detail: Json }> {
  const inflight = options.inflight ?? settings.messageInflight;
  const batch = options.batch ?? 1;
  let sent = 0;
  let failed = 0;
  const failures: Record<string, number> = {};
  const latencies: number[] = [];
  const cpuA = await cpuMs(a.pid);
  const cpuB = await cpuMs(b.pid);
  const cpuSelf = await cpuMs("self");
  const deadline = performance.now() + MESSAGE_SECONDS * 1000;
  let issued = 0;
  const message = (i: number) => ({
    type: "json",
    data: JSON.stringify({ n: i, task: "bench", at: Date.now() }),
    id: `bench-${label}-${i}`,
  });
  // deno-lint-ignore no-explicit-any
  const count1 = (answer: any, s0: number) => {
    // "duplicate": stored once already, by an earlier copy of this same request's datagrams.
    const receipt = answer?.data?.receipt?.status;
    if (answer?.status === "ok" && (receipt === "stored" || receipt === "duplicate")) {
      sent++;
      latencies.push(performance.now() - s0);
    } else {
      failed++;
      const code = String(answer?.code ?? receipt ?? "no answer");
      failures[code] = (failures[code] ?? 0) + 1;
    }
  };
  const t0 = performance.now();
  await pool(Math.ceil(count / batch), inflight, async (k) => {
    if (performance.now() > deadline) return;
    const s0 = performance.now();
    const ids = Array.from({ length: Math.min(batch, count - k * batch) }, (_, j) => k * batch + j);
    issued += ids.length;
    const r = await (batch === 1
      ? api.call("POST", "/v1/send", { peer: NAME_B, ...message(ids[0]!) })
      : api.call("POST", "/v1/send-batch", { peer: NAME_B, messages: ids.map(message) }))
      .catch((e) => ({ status: 0, json: { code: (e as Error).name } }));
    const answers = r.status !== 200
      ? ids.map(() =>
        r.json
      )
      : batch === 1
      ? [r.json]
      : r.json.data.results;
    for (const answer of answers) count1(answer, s0);
  });
  const ms = performance.now() - t0;
  const cpuA2 = await cpuMs(a.pid);
  const cpuB2 = await cpuMs(b.pid);
  const cpuSelf2 = await cpuMs("self");
  const pct = (x: number | null, y: number | null) =>
    x === null || y === null ? null : round((y - x) / ms * 100, 0);
  return {
    sent,
    ms,
    latencies,
    detail: {
      issued,
      stored: sent,
      failed,
      failures,
      seconds: round(ms / 1000),
      inflight,
      batch,
      msg_latency_ms_p50: round(percentile(latencies, 0.5) ?? NaN),
      daemon_a_cpu_percent: pct(cpuA, cpuA2),
      daemon_b_cpu_percent: pct(cpuB, cpuB2),
      client_cpu_percent: pct(cpuSelf, cpuSelf2),
    },
  };
}

/** Removes every message from `node`'s inbox (POST /v1/inbox/clear up to the highest seq). */
async function clearInbox(node: TestNode): Promise<void> {
  const api = await Api.of(node);
  const r = await api.call("POST", "/v1/inbox/clear", { up_to: Number.MAX_SAFE_INTEGER });
  if (r.status !== 200) {
    throw new Error(`POST /v1/inbox/clear answered ${r.status}: ${JSON.stringify(r.json)}`);
  }
}

/** Durable messages per second from A to B, and their latency. */
export async function measureMessages(ctx: Context): Promise<Figures> {
  const { a, b } = await daemonsOf(ctx);
  const api = await Api.of(a);
  progress("messages: warm-up (session A -> B, 50 messages)");
  const warm = await timedSends(a, b, api, "warm-up", 50);
  if (warm.sent === 0) {
    ctx.notes.msgs_per_s = `no message went through in the warm-up: ` +
      JSON.stringify(warm.detail.failures);
    return {
      msgs_per_s: null,
      msg_latency_ms_p99: null,
      msgs_per_s_tcp: null,
      msgs_per_s_batch: null,
      msg_latency_ms_p99_batch: null,
    };
  }
  progress(
    `messages: up to ${MESSAGE_COUNT} in ${MESSAGE_SECONDS} s, ${settings.messageInflight} in flight`,
  );
  const main = await timedSends(a, b, api, "socket", MESSAGE_COUNT);
  // B's inbox holds at most MAX_INBOX_MESSAGES: empty it, so the TCP run
  // starts from where the socket run did instead of meeting a full inbox.
  await clearInbox(b);
  progress(`messages: the same over TCP, through the connection gate`);
  const tcp = await timedSends(a, b, await Api.of(a, "tcp"), "tcp", MESSAGE_COUNT);
  await clearInbox(b);
  progress(
    `messages: up to ${BATCH_COUNT} in ${MESSAGE_SECONDS} s in batches of ${BATCH_SIZE}, ` +
      `${BATCH_INFLIGHT} batches in flight`,
  );
  const batched = await timedSends(a, b, api, "batch", BATCH_COUNT, {
    inflight: BATCH_INFLIGHT,
    batch: BATCH_SIZE,
  });
  ctx.details.messages = { ...main.detail, tcp: tcp.detail, batch: batched.detail };
  ctx.notes.msgs_per_s = `POST /v1/send on A's control API over its Unix socket, as the CLI ` +
    `calls it (bearer token from control.json), ` +
    `small JSON messages to B (mutual trust seeded in both trust.json), ${settings.messageInflight} ` +
    `requests in flight, each counted when its answer carries B's receipt ("stored", or ` +
    `"duplicate": stored once already); ` +
    `up to ${MESSAGE_COUNT} messages or ${MESSAGE_SECONDS} s, after a 50-message warm-up`;
  ctx.notes.msgs_per_s_tcp = "the same over A's TCP port, which relays each connection " +
    "through the connection gate (src/control/conn_gate.ts) to that socket, right after";
  ctx.notes.msgs_per_s_batch = `the same messages through POST /v1/send-batch on A's Unix ` +
    `socket, ${BATCH_SIZE} per request and ${BATCH_INFLIGHT} requests in flight ` +
    `(${BATCH_SIZE * BATCH_INFLIGHT} messages), up to ${BATCH_COUNT} messages or ` +
    `${MESSAGE_SECONDS} s, each counted when its own result carries B's receipt; B's inbox ` +
    `emptied before; msg_latency_ms_p99_batch is a message's request's. The batch route is ` +
    `item 3's answer to an HTTP round trip per message: msgs_per_s keeps one request each`;
  return {
    msgs_per_s: round(main.sent / (main.ms / 1000), 0),
    msg_latency_ms_p99: round(percentile(main.latencies, 0.99) ?? NaN),
    msgs_per_s_tcp: round(tcp.sent / (tcp.ms / 1000), 0),
    msgs_per_s_batch: round(batched.sent / (batched.ms / 1000), 0),
    msg_latency_ms_p99_batch: round(percentile(batched.latencies, 0.99) ?? NaN),
  };
}

/** Tasks in the task round-trip figure, and how many are in flight at once. */
const TASK_COUNT = 200;

const TASK_INFLIGHT = 8;

/**
 * Durable tasks A -> B, each a full round trip: A submits (answered once B
 * stored it), a worker loop on B's API takes each submitted task and posts
 * its result, and A's `task wait` returns it. Tasks per second over the
 * whole run, and the p50/p99 of one round trip.
 */
export async function measureTasks(ctx: Context): Promise<Figures> {
  const { a, b } = await daemonsOf(ctx);
  const apiA = await Api.of(a);
  const apiB = await Api.of(b);
  const run = `${Date.now()}`;
  let stop = false;
  const worker = (async () => {
    while (!stop) {
      const r = await apiB.call("GET", "/v1/tasks?state=submitted&wait=200");
      for (const t of r.json.data?.tasks ?? []) {
        await apiB.call("POST", "/v1/tasks/result", { id: t.id, data: "ok" });
      }
    }
  })();
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let next = 0;
  const t0 = performance.now();
  progress(`tasks: ${TASK_COUNT} round trips (submit -> result -> wait), ${TASK_INFLIGHT} at once`);
  await Promise.all(Array.from({ length: TASK_INFLIGHT }, async () => {
    while (next < TASK_COUNT) {
      const id = `bench-${run}-${next++}`;
      const s0 = performance.now();
      const sub = await apiA.call("POST", "/v1/tasks/submit", { peer: NAME_B, data: "job", id });
      const done = sub.status === 200
        ? await apiA.call("GET", `/v1/tasks/wait?id=${id}&timeout_ms=30000`)
        : sub;
      if (done.status === 200 && done.json.data?.state === "done") {
        latencies.push(performance.now() - s0);
      } else {
        const code = String(done.json?.code ?? done.status);
        failures[code] = (failures[code] ?? 0) + 1;
      }
    }
  }));
  const ms = performance.now() - t0;
  stop = true;
  await worker;
  ctx.details.tasks = { completed: latencies.length, failures, seconds: round(ms / 1000) };
  ctx.notes.tasks_per_s = `task submit on A's API, a loop on B's API posting each task's ` +
    `result as it shows in GET /v1/tasks?state=submitted, and task wait on A until done; ` +
    `${TASK_COUNT} tasks, ${TASK_INFLIGHT} in flight; every change fsynced on both sides`;
  return {
    tasks_per_s: round(latencies.length / (ms / 1000), 0),
    task_round_trip_ms_p50: round(percentile(latencies, 0.5) ?? NaN),
    task_round_trip_ms_p99: round(percentile(latencies, 0.99) ?? NaN),
  };
}

const HTTP_WARMUP = 50;

const HTTP_SEQUENTIAL = 500;

const HTTP_CONCURRENT = 32;

const HTTP_TOTAL = 2000;

const HTTP_NEW_CONNECTIONS = 100;

interface HttpRun {
  p50: number | null;
  p99: number | null;
  rps: number;
  newConnectionP50: number | null;
}

/** One GET of `url`, its body read; throws unless it answers 200. */
async function httpGet(url: string, client: Deno.HttpClient): Promise<void> {
  const res = await fetch(url, { client });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
}

/** Latencies of sequential GETs on kept-alive connections, rps with many at once, and new-connection latency. */
async function httpRun(url: string): Promise<HttpRun> {
  const u = new URL(url);
  // Straight to the port, never through an HTTP proxy from the environment.
  const direct = { transport: "tcp" as const, hostname: u.hostname, port: Number(u.port) };
  const client = Deno.createHttpClient({ proxy: direct });
  const fresh = Deno.createHttpClient({ proxy: direct, poolMaxIdlePerHost: 0 });
  try {
    for (let i = 0; i < HTTP_WARMUP; i++) await httpGet(url, client);
    const latencies: number[] = [];
    for (let i = 0; i < HTTP_SEQUENTIAL; i++) {
      const t = performance.now();
      await httpGet(url, client);
      latencies.push(performance.now() - t);
    }
    const t0 = performance.now();
    await pool(HTTP_TOTAL, HTTP_CONCURRENT, () => httpGet(url, client));
    const rps = HTTP_TOTAL / ((performance.now() - t0) / 1000);
    const opened: number[] = [];
    for (let i = 0; i < HTTP_NEW_CONNECTIONS; i++) {
      const t = performance.now();
      await httpGet(url, fresh);
      opened.push(performance.now() - t);
    }
    return {
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      rps,
      newConnectionP50: percentile(opened, 0.5),
    };
  } finally {
    client.close();
    fresh.close();
  }
}

/** HTTP through `pilot expose`/`forward`, beside direct HTTP. */
export async function measureForward(ctx: Context): Promise<Figures> {
  const { a, b } = await daemonsOf(ctx);
  const card = JSON.stringify({ name: "bench-agent", url: "http://127.0.0.1/a2a", skills: [] });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response(card, { headers: { "content-type": "application/json" } }),
  );
  cleanups.push(() => server.shutdown());
  const target = server.addr.port;
  const exposed = await (await Api.of(b)).call("POST", "/v1/expose", {
    target: String(target),
    vport: 80,
  });
  if (exposed.status !== 200) throw new Error(`expose answered ${JSON.stringify(exposed.json)}`);
  const forwarded = await (await Api.of(a)).call("POST", "/v1/forward", { peer: NAME_B });
  if (forwarded.status !== 200) {
    throw new Error(`forward answered ${JSON.stringify(forwarded.json)}`);
  }
  const listen = forwarded.json.data.forward.listen;
  const path = "/.well-known/agent.json";
  progress(`forward: HTTP GETs to 127.0.0.1:${target} directly, then through ${listen}`);
  const direct = await httpRun(`http://127.0.0.1:${target}${path}`);
  const through = await httpRun(`http://${listen}${path}`);
  const view = (r: HttpRun) => ({
    rps: round(r.rps, 0),
    p50_ms: r.p50 === null ? null : round(r.p50, 3),
    p99_ms: r.p99 === null ? null : round(r.p99, 3),
    new_connection_p50_ms: r.newConnectionP50 === null ? null : round(r.newConnectionP50, 3),
  });
  ctx.details.forward = { direct: view(direct), forward: view(through) };
  ctx.notes.forward_http_rps = `B exposes a Deno.serve HTTP server (a ${card.length}-byte JSON ` +
    `agent card) on virtual port 80, A forwards ${listen} to it: GETs through A's forward, ` +
    `one tunnel stream per TCP connection, against the same server on loopback (direct_*). ` +
    `p50: ${HTTP_SEQUENTIAL} sequential GETs on a kept-alive connection; rps: ${HTTP_TOTAL} ` +
    `GETs, ${HTTP_CONCURRENT} at once over pooled connections; details.forward also has a new ` +
    `connection (and tunnel) per GET`;
  return {
    forward_http_rps: round(through.rps, 0),
    forward_http_p50_ms: through.p50 === null ? null : round(through.p50, 3),
    direct_http_rps: round(direct.rps, 0),
    direct_http_p50_ms: direct.p50 === null ? null : round(direct.p50, 3),
  };
}
