/**
 * The webhook dispatcher in simulated time, with a fake HTTP client: which
 * events a webhook gets, the request it receives (body, headers, HMAC
 * signature), retries and their backoff, timeouts, the queue bound, and
 * that one bad webhook never delays another or the event bus. Config
 * parsing and saving of `webhooks` too.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { loadConfig, saveConfigWebhook } from "../src/daemon/config.ts";
import { EventBus } from "../src/daemon/events.ts";
import { HOME_FILES } from "../src/daemon/home.ts";
import {
  eventMatches,
  parseWebhookEvents,
  parseWebhookUrl,
  WebhookDispatcher,
  type WebhookDispatcherOptions,
  type WebhookEvent,
  type WebhookFetch,
} from "../src/daemon/webhooks.ts";
import { PilotError } from "../src/errors.ts";
import { FakeTimers } from "./_fake_timers.ts";
import { tempDir } from "./_tmp.ts";

/** Fake timers whose `advance` also lets the work each timer starts run (it is async). */
class FakeClock extends FakeTimers {
  /** Moves time forward by `ms`, firing due timers in order and letting their work run. */
  override async advance(ms: number): Promise<void> {
    const end = this.now + ms;
    do await settle(); while (this.fireNext(end));
    this.now = end;
    await settle();
  }
}

/** Lets queued promise work (WebCrypto included) run to its next wait. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 1));
}

/** One request the fake client received. */
interface Call {
  url: string;
  body: string;
  headers: Headers;
  at: number;
  signal: AbortSignal;
}

type Answer = number | "network" | "hang";

/** A fake HTTP client answering each request from a script (the last entry repeats). */
function fakeFetch(clock: FakeClock, script: Answer[] | ((url: string) => Answer)) {
  const calls: Call[] = [];
  const fetch = (url: string, init: RequestInit): Promise<Response> => {
    const body = new TextDecoder().decode(init.body as Uint8Array);
    calls.push({
      url,
      body,
      headers: new Headers(init.headers),
      at: clock.now,
      signal: init.signal!,
    });
    const answer = typeof script === "function"
      ? script(url)
      : script[Math.min(calls.filter((c) => c.url === url).length - 1, script.length - 1)]!;
    if (answer === "network") return Promise.reject(new TypeError("connection refused"));
    if (answer === "hang") {
      return new Promise((_, reject) => {
        init.signal!.addEventListener(
          "abort",
          () => reject(new DOMException("aborted", "AbortError")),
        );
      });
    }
    return Promise.resolve(new Response(answer === 204 ? null : "body", { status: answer }));
  };
  return { fetch, calls };
}

function dispatcher(
  clock: FakeClock,
  fetch: WebhookFetch,
  options: WebhookDispatcherOptions = {},
): WebhookDispatcher {
  return new WebhookDispatcher({ fetch, timers: clock, now: () => clock.now, ...options });
}

function event(seq: number, type = "message.received"): WebhookEvent {
  return {
    seq,
    type,
    time: "2026-12-03T18:00:00.000Z",
    data: { peer: { address: "3fa2.09c1.77e4" }, seq },
  };
}

const HOOK = "http://127.0.0.1:8080/pilot";
const OTHER = "http://127.0.0.1:8081/pilot";

Deno.test("eventMatches() takes an exact type, a prefix.* at any depth, or *", () => {
  assert.equal(eventMatches("message.received", ["message.received"]), true);
  assert.equal(eventMatches("message.received", ["message.*"]), true);
  assert.equal(eventMatches("task.progress", ["task.*"]), true, "types that do not exist yet");
  assert.equal(eventMatches("a.b.c", ["a.*"]), true);
  assert.equal(eventMatches("peer.up", ["*"]), true);
  assert.equal(eventMatches("messages.x", ["message.*"]), false, "a prefix ends at a dot");
  assert.equal(eventMatches("message", ["message.*"]), false);
  assert.equal(eventMatches("peer.up", ["peer.down", "trust.*"]), false);
});

Deno.test("parseWebhookEvents() refuses what is not a type, prefix.* or *, quoting it, and drops repeats", () => {
  assert.deepEqual(parseWebhookEvents(["trust.*", "trust.*", "*"], "t"), ["trust.*", "*"]);
  for (const bad of [[], ["message."], ["*.received"], [""], ["Message.Received"], [1], "x"]) {
    assert.throws(
      () => parseWebhookEvents(bad, "config.json"),
      (e) => e instanceof PilotError && e.code === "invalid_argument" && e.hint.includes("prefix"),
      JSON.stringify(bad),
    );
  }
  assert.throws(() => parseWebhookEvents(Array(65).fill("peer.up"), "t"), /1 to 64/);
});

Deno.test("parseWebhookUrl() takes loopback http(s) URLs and refuses others unless remote ones are allowed", () => {
  for (
    const ok of [
      "http://127.0.0.1:9/x",
      "https://127.4.5.6/",
      "http://localhost:80",
      "http://[::1]:8/",
    ]
  ) {
    assert.equal(parseWebhookUrl(ok, "t", false), new URL(ok).href, ok);
  }
  for (
    const remote of [
      "http://example.com/hook",
      "http://10.0.0.1/",
      "http://[::2]/",
      "http://127.0.0.1.nip.io/",
    ]
  ) {
    assert.throws(
      () => parseWebhookUrl(remote, "webhook add", false),
      (e) =>
        e instanceof PilotError && e.code === "invalid_argument" &&
        e.message.includes("not on this machine") && e.hint.includes("--allow-remote-webhooks"),
      remote,
    );
    assert.equal(parseWebhookUrl(remote, "t", true), new URL(remote).href);
  }
  for (const bad of ["ftp://127.0.0.1/", "not a url", "", 7]) {
    assert.throws(() => parseWebhookUrl(bad, "t", true), PilotError, String(bad));
  }
});

Deno.test("a webhook gets only the events it asked for, as JSON {type, seq, time, data} with its headers", async () => {
  const clock = new FakeClock();
  const { fetch, calls } = fakeFetch(clock, [200]);
  const d = dispatcher(clock, fetch);
  d.set({ url: HOOK, events: ["message.*", "trust.requested"], secret: null });
  d.enqueue(event(1, "peer.up"));
  d.enqueue(event(2, "message.received"));
  d.enqueue(event(3, "trust.requested"));
  d.enqueue(event(4, "trust.approved"));
  await d.idle();
  assert.deepEqual(calls.map((c) => JSON.parse(c.body).seq), [2, 3]);
  const first = calls[0]!;
  assert.equal(first.url, HOOK);
  assert.deepEqual(JSON.parse(first.body), {
    type: "message.received",
    seq: 2,
    time: "2026-12-03T18:00:00.000Z",
    data: { peer: { address: "3fa2.09c1.77e4" }, seq: 2 },
  });
  assert.equal(first.headers.get("content-type"), "application/json");
  assert.equal(first.headers.get("x-pilot-event"), "message.received");
  assert.match(first.headers.get("x-pilot-delivery")!, /^[0-9a-f-]{36}$/);
  assert.notEqual(first.headers.get("x-pilot-delivery"), calls[1]!.headers.get("x-pilot-delivery"));
  assert.equal(first.headers.get("x-pilot-signature"), null, "no secret, no signature");
  const [state] = d.list();
  assert.deepEqual(
    [
      state!.delivered,
      state!.failed,
      state!.dropped,
      state!.queued,
      state!.lastStatus,
      state!.lastError,
    ],
    [2, 0, 0, 0, 200, null],
  );
  d.close();
});

Deno.test("with a secret, x-pilot-signature is sha256= the HMAC-SHA256 of the exact body, verifiable with node:crypto", async () => {
  const clock = new FakeClock();
  const { fetch, calls } = fakeFetch(clock, [200]);
  const d = dispatcher(clock, fetch);
  d.set({ url: HOOK, events: ["*"], secret: "s3cret ünïcode" });
  d.enqueue(event(7));
  await d.idle();
  const call = calls[0]!;
  const expected = createHmac("sha256", "s3cret ünïcode").update(call.body).digest("hex");
  assert.equal(call.headers.get("x-pilot-signature"), `sha256=${expected}`);
  const wrong = createHmac("sha256", "other").update(call.body).digest("hex");
  assert.notEqual(call.headers.get("x-pilot-signature"), `sha256=${wrong}`);
  d.close();
});

Deno.test("a 500 is retried after 1 s, then 2 s, with the same delivery id, until a 2xx", async () => {
  const clock = new FakeClock();
  const { fetch, calls } = fakeFetch(clock, [500, 503, 204]);
  const d = dispatcher(clock, fetch);
  d.set({ url: HOOK, events: ["*"], secret: null });
  d.enqueue(event(1));
  await clock.advance(0);
  assert.equal(calls.length, 1);
  assert.equal(d.stats(HOOK)!.lastStatus, 500);
  assert.match(d.stats(HOOK)!.lastError!, /HTTP 500.*attempt 1 of 5/);
  await clock.advance(999);
  assert.equal(calls.length, 1, "not before the backoff");
  await clock.advance(1);
  assert.equal(calls.length, 2);
  await clock.advance(2000);
  assert.equal(calls.length, 3);
  assert.deepEqual(calls.map((c) => c.at), [0, 1000, 3000]);
  assert.equal(new Set(calls.map((c) => c.headers.get("x-pilot-delivery"))).size, 1);
  const s = d.stats(HOOK)!;
  assert.deepEqual([s.delivered, s.failed, s.lastStatus, s.lastError], [1, 0, 204, null]);
  d.close();
});

Deno.test("a 429 and network errors are retried; a 400 is not", async () => {
  const clock = new FakeClock();
  const { fetch, calls } = fakeFetch(
    clock,
    (url) => url === HOOK ? 400 : calls.filter((c) => c.url === url).length === 1 ? 429 : "network",
  );
  const failed: string[] = [];
  const d = dispatcher(clock, fetch, { onFailed: (url, _e, why) => failed.push(`${url} ${why}`) });
  d.set({ url: HOOK, events: ["*"], secret: null });
  d.set({ url: OTHER, events: ["*"], secret: null });
  d.enqueue(event(1));
  await clock.advance(60_000);
  assert.equal(calls.filter((c) => c.url === HOOK).length, 1, "400: one attempt");
  const bad = d.stats(HOOK)!;
  assert.deepEqual([bad.delivered, bad.failed, bad.lastStatus], [0, 1, 400]);
  assert.match(bad.lastError!, /HTTP 400/);
  const other = calls.filter((c) => c.url === OTHER);
  assert.deepEqual(
    other.map((c) => c.at),
    [0, 1000, 3000, 7000, 15000],
    "5 attempts, backoff doubling",
  );
  const s = d.stats(OTHER)!;
  assert.deepEqual([s.failed, s.lastStatus], [1, null]);
  assert.match(s.lastError!, /connection refused \(attempt 5 of 5\)/);
  assert.equal(failed.length, 2, "each give-up reported once");
  d.close();
});

Deno.test("a webhook that never answers times out after 5 s per attempt, and the next event still goes", async () => {
  const clock = new FakeClock();
  let hanging = true;
  const { fetch, calls } = fakeFetch(clock, () => hanging ? "hang" : 200);
  const d = dispatcher(clock, fetch);
  d.set({ url: HOOK, events: ["*"], secret: null });
  d.enqueue(event(1));
  d.enqueue(event(2));
  await clock.advance(4999);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.signal.aborted, false);
  await clock.advance(1);
  assert.equal(calls[0]!.signal.aborted, true, "aborted at the timeout");
  assert.match(d.stats(HOOK)!.lastError!, /no answer within 5000 ms \(attempt 1 of 5\)/);
  // 5 attempts of 5 s with waits of 1+2+4+8 s between them: given up at 40 s.
  await clock.advance(35_000);
  assert.deepEqual(calls.map((c) => JSON.parse(c.body).seq), [1, 1, 1, 1, 1, 2]);
  assert.deepEqual(calls.map((c) => c.at), [0, 6000, 13000, 22000, 35000, 40000]);
  assert.equal(d.stats(HOOK)!.failed, 1);
  // Event 2's first attempt hangs too; its retry is answered.
  hanging = false;
  await clock.advance(6000);
  await d.idle();
  assert.equal(JSON.parse(calls.at(-1)!.body).seq, 2);
  assert.equal(d.stats(HOOK)!.delivered, 1);
  d.close();
});

Deno.test("a full queue drops its oldest waiting events, counts them, and keeps the one in flight", async () => {
  const clock = new FakeClock();
  let answer: Answer = "hang";
  const { fetch, calls } = fakeFetch(clock, () => answer);
  const d = dispatcher(clock, fetch, { queueLimit: 3, timeoutMs: 60_000 });
  d.set({ url: HOOK, events: ["*"], secret: null });
  for (let seq = 1; seq <= 10; seq++) d.enqueue(event(seq));
  await clock.advance(0);
  const s = d.stats(HOOK)!;
  assert.deepEqual([s.queued, s.dropped], [4, 6], "1 in flight + 3 waiting; 6 dropped");
  answer = 200;
  await clock.advance(60_000 + 1000);
  await d.idle();
  assert.deepEqual(
    calls.map((c) => JSON.parse(c.body).seq),
    [1, 1, 8, 9, 10],
    "the first (timed out once, then retried), then the newest three",
  );
  assert.deepEqual([d.stats(HOOK)!.delivered, d.stats(HOOK)!.queued], [4, 0]);
  d.close();
});

Deno.test("a hanging webhook and a failing one delay neither another webhook nor the event bus", async () => {
  const clock = new FakeClock();
  const HANG = "http://127.0.0.1:1/hang";
  const FAIL = "http://127.0.0.1:2/fail";
  const { fetch, calls } = fakeFetch(
    clock,
    (url) => url === HANG ? "hang" : url === FAIL ? 500 : 200,
  );
  const d = dispatcher(clock, fetch);
  for (const url of [HANG, FAIL, HOOK]) d.set({ url, events: ["*"], secret: "k" });
  const bus = new EventBus();
  bus.listen(() => {
    throw new Error("a broken listener");
  });
  bus.listen((e) => d.enqueue(e));
  const before = performance.now();
  for (let i = 0; i < 3; i++) bus.publish("message.received", { i });
  assert.ok(performance.now() - before < 50, "publish only queues");
  assert.equal(bus.lastSeq, 3, "a throwing listener does not stop publishing");
  assert.equal(bus.since(0).length, 3, "the events are in the ring regardless");
  await clock.advance(0);
  assert.equal(d.stats(HOOK)!.delivered, 3, "all three delivered with no time passing");
  assert.equal(calls.filter((c) => c.url === HANG).length, 1);
  assert.equal(d.stats(HANG)!.queued, 3);
  assert.equal(d.stats(FAIL)!.queued, 3);
  d.close();
});

Deno.test("remove() aborts the request in flight and drops the queue; set() changes events in place", async () => {
  const clock = new FakeClock();
  const { fetch, calls } = fakeFetch(clock, ["hang"]);
  const d = dispatcher(clock, fetch);
  d.set({ url: HOOK, events: ["peer.*"], secret: null });
  d.enqueue(event(1, "message.received"));
  assert.equal(d.stats(HOOK)!.queued, 0, "not asked for");
  d.set({ url: HOOK, events: ["message.*"], secret: null });
  d.enqueue(event(2, "message.received"));
  d.enqueue(event(3, "message.received"));
  await clock.advance(0);
  assert.equal(calls.length, 1);
  assert.equal(d.remove(HOOK), true);
  assert.equal(calls[0]!.signal.aborted, true);
  await d.idle();
  assert.deepEqual(d.list(), []);
  assert.equal(d.remove(HOOK), false);
  await clock.advance(60_000);
  assert.equal(calls.length, 1, "nothing more after removal");
});

Deno.test("loadConfig() reads webhooks, refuses a remote URL without allow_remote_webhooks, and takes it with the flag", async () => {
  await using home = await tempDir("pilot-config-");
  const path = join(home.path, HOME_FILES.config);
  const write = (v: unknown) => Deno.writeTextFile(path, JSON.stringify(v));
  await write({
    webhooks: [{ url: "http://127.0.0.1:9000", events: ["message.received"], secret: "k" }],
  });
  const cfg = await loadConfig(home.path, {});
  assert.deepEqual(cfg.webhooks, [
    { url: "http://127.0.0.1:9000/", events: ["message.received"], secret: "k" },
  ]);
  assert.equal(cfg.allowRemoteWebhooks, false);
  const remote = { webhooks: [{ url: "https://hooks.example.com/p", events: ["*"] }] };
  await write(remote);
  await assert.rejects(
    () => loadConfig(home.path, {}),
    (e) =>
      e instanceof PilotError && /not on this machine/.test(e.message) &&
      /--allow-remote-webhooks/.test(e.hint),
  );
  assert.equal((await loadConfig(home.path, { allowRemoteWebhooks: true })).webhooks.length, 1);
  await write({ ...remote, allow_remote_webhooks: true });
  assert.equal((await loadConfig(home.path, {})).allowRemoteWebhooks, true);
  for (
    const [bad, said] of [
      [{ webhooks: {} }, "must be a list"],
      [
        { webhooks: [{ url: "http://127.0.0.1/", events: ["*"], retries: 3 }] },
        'unknown webhook field "retries"',
      ],
      [{ webhooks: [{ url: "http://127.0.0.1/", events: [] }] }, '"events" must be a list'],
      [
        { webhooks: [{ url: "http://127.0.0.1/", events: ["*"], secret: "x".repeat(257) }] },
        '"secret"',
      ],
      [{
        webhooks: [{ url: "http://127.0.0.1/", events: ["*"] }, {
          url: "http://127.0.0.1",
          events: ["peer.up"],
        }],
      }, "listed twice"],
      [{ allow_remote_webhooks: "yes" }, "must be true or false"],
    ] as const
  ) {
    await write(bad);
    await assert.rejects(
      () => loadConfig(home.path, {}),
      (e) => e instanceof PilotError && e.message.includes(said),
      said,
    );
  }
});

Deno.test("saveConfigWebhook() adds, replaces and removes one webhook by URL, keeping every other key", async () => {
  await using home = await tempDir("pilot-config-");
  const path = join(home.path, HOME_FILES.config);
  await Deno.writeTextFile(
    path,
    JSON.stringify({ hostname: "me", webhooks: [{ url: "http://localhost/a", events: ["*"] }] }),
  );
  const spec = { url: "http://127.0.0.1:9000/", events: ["peer.*"], secret: "k" };
  assert.equal(await saveConfigWebhook(home.path, spec.url, spec), true);
  assert.equal(
    await saveConfigWebhook(home.path, spec.url, spec),
    false,
    "the same again changes nothing",
  );
  assert.equal(await saveConfigWebhook(home.path, spec.url, { ...spec, secret: null }), true);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), {
    hostname: "me",
    webhooks: [{ url: "http://localhost/a", events: ["*"] }, { url: spec.url, events: ["peer.*"] }],
  });
  assert.equal((await Deno.stat(path)).mode! & 0o077, 0, "config.json stays private");
  assert.equal(
    await saveConfigWebhook(home.path, "http://localhost/a", null),
    true,
    "matched by canonical URL",
  );
  assert.equal(await saveConfigWebhook(home.path, "http://localhost/a", null), false);
  assert.deepEqual(JSON.parse(await Deno.readTextFile(path)).webhooks, [{
    url: spec.url,
    events: ["peer.*"],
  }]);
});
