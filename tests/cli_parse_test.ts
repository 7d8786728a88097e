/**
 * CLI parsing, driven only by the command table: durations, two-word
 * commands, flags anywhere, defaults and bounds from the route contract, and
 * usage errors as JSON. In-process: no daemon is needed.
 */
import assert from "node:assert/strict";
import { mock } from "node:test";
import { formatDuration, parseCommandLine, parseDuration } from "../src/cli/parse.ts";
import { catalog } from "../src/cli/help.ts";
import { runCli } from "../src/cli/run.ts";
import { COMMANDS } from "../src/cli/table.ts";
import { INBOX, MAX_TIMEOUT_MS, ROUTES, SEND } from "../src/control/contract/mod.ts";
import { nodeRoutes } from "../src/control/routes.ts";
import type { Node } from "../src/daemon/node.ts";
import { PilotError } from "../src/errors.ts";

function parse(...argv: string[]) {
  return parseCommandLine(COMMANDS, argv);
}

function usageError(argv: string[]): PilotError {
  try {
    parse(...argv);
  } catch (e) {
    assert.ok(e instanceof PilotError, String(e));
    assert.equal(e.code, "invalid_argument");
    return e;
  }
  assert.fail(`${argv.join(" ")} parsed`);
}

Deno.test("parseDuration() reads ms, s, m, h and bare seconds", () => {
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("10s"), 10_000);
  assert.equal(parseDuration("2m"), 120_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("1.5"), 1500);
  assert.throws(() => parseDuration("ten", "timeout"), /--timeout "ten"/);
  assert.throws(() => parseDuration("-1s", "timeout"), /--timeout/);
});

Deno.test("formatDuration() writes the shortest text that parses back", () => {
  for (const ms of [1, 500, 1000, 30_000, 90_000, 600_000, 3_600_000, 5_400_000]) {
    assert.equal(parseDuration(formatDuration(ms)), ms, formatDuration(ms));
  }
  assert.equal(formatDuration(30_000), "30s");
  assert.equal(formatDuration(600_000), "10m");
});

Deno.test("a two-word command wins over its first word, with variadic arguments after it", () => {
  const p = parse("inbox", "ack", "job-1", "job-2");
  assert.equal(p.command?.name, "inbox ack");
  assert.deepEqual(p.args.id, ["job-1", "job-2"]);
  assert.equal(parse("inbox", "--limit", "5").command?.name, "inbox");
  assert.equal(parse("daemon", "status").command?.name, "daemon status");
  assert.equal(parse("send-message", "peer", "--data", "x").command?.name, "send");
});

Deno.test("flags may come before, between and after the command words and arguments", () => {
  for (
    const argv of [
      ["--json", "send", "peer", "--data", "x"],
      ["send", "--data", "x", "peer", "--json"],
      ["--home", "/tmp/h", "send", "peer", "--json", "--data", "x"],
    ]
  ) {
    const p = parse(...argv);
    assert.equal(p.command?.name, "send", argv.join(" "));
    assert.equal(p.args.peer, "peer");
    assert.equal(p.flags.data, "x");
    assert.equal(p.flags.json, true);
  }
});

Deno.test("flag defaults come from the route contract and are applied by the parser", () => {
  const send = parse("send", "peer", "--data", "x");
  assert.equal(send.flags.timeout, SEND.input.timeout_ms.default);
  assert.equal(send.flags.type, "text");
  const inbox = parse("inbox");
  assert.equal(inbox.flags.limit, INBOX.input.limit.default);
  assert.equal(inbox.flags.after, 0);
  assert.equal(inbox.flags.timeout, 30_000);
  assert.equal(parse("inbox", "--follow").flags.timeout, 600_000, "a follow has its own default");
  assert.equal(parse("send", "p", "--data", "x", "--timeout", "2s").flags.timeout, 2000);
});

Deno.test("send and the API agree on the default timeout", () => {
  const flag = COMMANDS.find((c) => c.name === "send")!.flags.timeout!;
  assert.equal(parseDuration(String(flag.default)), SEND.input.timeout_ms.default);
});

Deno.test("a flag over the API's bound is refused naming the flag, never the API field", () => {
  const e = usageError(["send", "peer", "--data", "x", "--timeout", "11m"]);
  assert.match(e.message, /^--timeout 11m is over the most allowed, 10m/);
  assert.ok(!/timeout_ms|Query parameter|Field/.test(e.message + e.hint), e.message);
  const limit = usageError(["inbox", "--limit", "5000"]);
  assert.match(limit.message, /^--limit 5000 is over the most allowed, 1000/);
  const zero = usageError(["send", "peer", "--data", "x", "--timeout", "0"]);
  assert.match(zero.message, /^--timeout 0 is below/);
});

Deno.test("long-lived consumers take --timeout 0 or none for no limit, and longer than one poll", () => {
  assert.equal(parse("inbox", "--wait", "--timeout", "0").flags.timeout, 0);
  assert.equal(parse("inbox", "--follow", "--timeout", "none").flags.timeout, 0);
  assert.equal(parse("listen", "7000", "--timeout", "0").flags.timeout, 0);
  assert.equal(
    parse("listen", "7000", "--exec", "cat").flags.timeout,
    0,
    "a service runs until stopped",
  );
  assert.equal(parse("listen", "7000").flags.timeout, 600_000);
  assert.equal(parse("subscribe", "p", "jobs.*", "--timeout", "none").flags.timeout, 0);
  assert.equal(parse("received", "--wait", "--timeout", "0").flags.timeout, 0);
  assert.equal(parse("inbox", "--wait", "--timeout", "11m").flags.timeout, 660_000);
  assert.ok(660_000 > MAX_TIMEOUT_MS, "renewed underneath");
});

Deno.test("unknown flags, missing arguments and unknown commands are usage errors", () => {
  assert.match(usageError(["send", "peer", "--dta", "x"]).message, /dta/);
  assert.match(usageError(["send"]).message, /Missing <peer>/);
  assert.match(usageError(["sned", "peer"]).message, /Unknown command "sned"/);
  assert.match(usageError(["inbox", "--limit", "many"]).message, /--limit "many"/);
});

Deno.test("a usage error with --json prints the API's error object on stdout and exits 2", async () => {
  const out: string[] = [];
  const log = mock.method(console, "log", (line: string) => out.push(line));
  const err = mock.method(console, "error", () => {});
  try {
    const code = await runCli(["send", "--json", "--timeout", "11m", "peer", "--data", "x"]);
    assert.equal(code, 2);
  } finally {
    log.mock.restore();
    err.mock.restore();
  }
  assert.equal(out.length, 1);
  const body = JSON.parse(out[0]!);
  assert.equal(body.status, "error");
  assert.equal(body.code, "invalid_argument");
  assert.match(body.message, /--timeout/);
});

// Routes an agent uses that no command wraps, each with its reason.
const API_ONLY = new Set([
  "GET /v1/health", // the token-free liveness probe
  "GET /v1/openapi.json", // the token-free OpenAPI document, for tools
  "POST /v1/send-batch", // many messages in one request, for agents: a command sends one per call
]);

Deno.test("every route in help --json exists in the control API's route table, and every route has a command", () => {
  const fake = { features: {}, ctx: {} } as unknown as Node;
  const table = new Set(Object.keys(nodeRoutes(fake, () => {})));
  const commands = catalog(COMMANDS).commands as { name: string; routes: string[] }[];
  const used = new Set(commands.flatMap((c) => c.routes));
  for (const r of used) assert.ok(table.has(r), `${r} (from the catalog) is served`);
  for (const r of table) {
    assert.ok(used.has(r) || API_ONLY.has(r), `${r} is reached by a command or listed as API-only`);
  }
  assert.deepEqual(
    new Set(ROUTES.map((r) => r.route)),
    table,
    "the contract lists exactly the served routes",
  );
});

Deno.test("help --json publishes each route's input fields with the defaults the CLI applies", () => {
  const routes = catalog(COMMANDS).routes as { route: string; input: Record<string, unknown> }[];
  assert.deepEqual(routes.map((r) => r.route), ROUTES.map((r) => r.route));
  const send = routes.find((r) => r.route === SEND.route)!;
  assert.deepEqual(send.input.timeout_ms, SEND.input.timeout_ms);
  const one = catalog(COMMANDS.filter((c) => c.name === "send"), { onlyUsed: true });
  assert.deepEqual((one.routes as { route: string }[]).map((r) => r.route), [SEND.route]);
});
