/**
 * The CLI contract, checked on the real program: the catalog, `--help`,
 * usage errors and exit codes, and `--json` output against the schemas the
 * catalog publishes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Schema, validate } from "../src/control/schema.ts";
import { COMMANDS } from "../src/cli/table.ts";
import { ROUTES } from "../src/control/contract/mod.ts";
import {
  makeHome,
  type PilotResult,
  runPilot,
  startNode,
  stopAll,
  TestNode,
  waitFor,
} from "./_daemon_harness.ts";

/** A home path that does not exist: commands that need no daemon must not need one either. */
async function withEmptyHome(fn: (home: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "pilot-test-" });
  try {
    await fn(join(dir, "home"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertErrorJson(r: PilotResult, code: string, exit: number, what: string): void {
  assert.equal(r.code, exit, `${what}: exit code (${r.stdout}${r.stderr})`);
  assert.ok(r.json !== undefined, `${what}: stdout is JSON: ${r.stdout}`);
  assert.equal(r.stdout.trimEnd().split("\n").length, 1, `${what}: one JSON line`);
  assert.deepEqual(Object.keys(r.json).sort(), [
    "code",
    "hint",
    "message",
    "request_id",
    "retryable",
    "status",
  ], what);
  assert.equal(r.json.status, "error", what);
  assert.equal(r.json.code, code, `${what}: ${r.json.message}`);
  assert.equal(typeof r.json.message, "string");
  assert.ok(!r.json.message.includes("\n"), `${what}: one-line message`);
  assert.equal(r.json.retryable, false);
}

// deno-lint-ignore no-explicit-any
let catalogCache: Promise<any> | undefined;

/** The catalog `pilot help --json` publishes (run once per test file). */
// deno-lint-ignore no-explicit-any
function publishedCatalog(): Promise<any> {
  catalogCache ??= runPilot(["help", "--json"]).then((r) => {
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return r.json.data;
  });
  return catalogCache;
}

/** Checks `r` is `name`'s ok answer with data that has no field its published schema lacks. */
async function assertMatchesSchema(name: string, r: PilotResult): Promise<void> {
  assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
  assert.equal(r.json?.status, "ok", `${name}: ${r.stdout}`);
  assert.deepEqual(Object.keys(r.json).sort(), ["data", "status"]);
  const entry = (await publishedCatalog()).commands.find((c: { name: string }) => c.name === name);
  assert.ok(entry, `the catalog lists ${name}`);
  assert.deepEqual(
    validate(entry.output as Schema, r.json.data, { closed: true }),
    [],
    `${name}: ${r.stdout}`,
  );
}

Deno.test("pilot help --json lists every command of the table with its output schema", async () => {
  const catalog = await publishedCatalog();
  const names = catalog.commands.map((c: { name: string }) => c.name);
  assert.deepEqual(names, COMMANDS.map((c) => c.name));
  for (const c of catalog.commands) {
    assert.equal(typeof c.summary, "string", c.name);
    assert.ok(c.usage.startsWith(`pilot ${c.name}`), c.usage);
    assert.ok(c.output !== null && typeof c.output === "object", `${c.name} has an output schema`);
    // A schema that accepts nothing or everything would make the checks below empty.
    assert.notDeepEqual(validate(c.output, "not an object"), [], `${c.name}: schema rejects junk`);
    assert.ok(c.errors.includes("invalid_argument"), `${c.name} lists the global errors`);
    for (const code of c.errors) assert.ok(code in catalog.errors, `${c.name}: ${code} published`);
  }
  // Streaming routes publish the schema of their lines (or WebSocket frames) too.
  const streaming = catalog.routes.filter((r: { lines?: Schema }) => r.lines !== undefined);
  assert.deepEqual(
    streaming.map((r: { route: string }) => r.route).sort(),
    ROUTES.filter((r) => r.lines !== undefined).map((r) => r.route).sort(),
  );
  for (const r of streaming) {
    assert.notDeepEqual(validate(r.lines, "not a line"), [], `${r.route}: lines reject junk`);
  }
  assert.equal(catalog.errors.not_running.exit_code, 3);
  assert.equal(catalog.errors.invalid_argument.exit_code, 2);
  assert.equal(catalog.errors.unauthorized.http_status, 401);
  await assertMatchesSchema("help", await runPilot(["help", "--json"]));
  await assertMatchesSchema("help", await runPilot(["help", "daemon", "start", "--json"]));
});

Deno.test("every command's --help exits 0 and shows its usage", async () => {
  await withEmptyHome(async (home) => {
    const runs = COMMANDS.map(async (c) => {
      const words = c.name.split(" ");
      const human = await runPilot([...words, "--help"], { home });
      assert.equal(human.code, 0, `${c.name} --help: ${human.stderr}`);
      assert.ok(human.stdout.startsWith(`Usage: pilot ${c.name}`), human.stdout);
      assert.equal(human.stderr, "");
      const json = await runPilot([...words, "--help", "--json"], { home });
      assert.equal(json.code, 0, `${c.name} --help --json: ${json.stderr}`);
      assert.equal(json.json.status, "ok");
      assert.equal(json.json.data.help, human.stdout.trimEnd());
    });
    await Promise.all(runs);
    const overview = await runPilot([], { home });
    assert.equal(overview.code, 0);
    for (const c of COMMANDS) assert.ok(overview.stdout.includes(c.name), c.name);
    await assert.rejects(Deno.stat(home), Deno.errors.NotFound, "--help creates no home");
  });
});

Deno.test("usage errors exit 2 and print an invalid_argument error object with --json", async () => {
  await withEmptyHome(async (home) => {
    const cases: [string, string[]][] = [
      ["unknown command", ["frobnicate", "--json"]],
      ["unknown command, --json first", ["--json", "frobnicate"]],
      ["unknown flag", ["info", "--bogus", "--json"]],
      ["missing argument", ["connect", "--json"]],
      ["extra argument", ["info", "extra", "--json"]],
      ["bad duration", ["connect", "127.0.0.1:9", "--timeout", "soon", "--json"]],
      ["flag without its value", ["connect", "127.0.0.1:9", "--json", "--timeout"]],
      ["unknown help topic", ["help", "frobnicate", "--json"]],
    ];
    await Promise.all(cases.map(async ([what, args]) => {
      const r = await runPilot(args, { home });
      assertErrorJson(r, "invalid_argument", 2, what);
      assert.notEqual(r.json.hint, "", `${what} has a hint`);
    }));
    const human = await runPilot(["frobnicate"], { home });
    assert.equal(human.code, 2);
    assert.equal(human.stdout, "");
    assert.deepEqual(human.stderr.trimEnd().split("\n").map((l) => l.split(":")[0]), [
      "error",
      "hint",
    ]);
    await assert.rejects(Deno.stat(home), Deno.errors.NotFound, "no home was created");
  });
});

Deno.test("commands that need a daemon exit 3 with not_running when none runs", async () => {
  await withEmptyHome(async (home) => {
    for (const args of [["info"], ["peers"], ["connect", "127.0.0.1:9"]]) {
      const r = await runPilot([...args, "--json"], { home });
      assertErrorJson(r, "not_running", 3, args[0]!);
    }
    const human = await runPilot(["info"], { home });
    assert.equal(human.code, 3);
    assert.match(human.stderr, /^error: No daemon is running for home /);
    assert.match(human.stderr, /\nhint: .*pilot daemon start/);
  });
});

Deno.test("--json output of daemon start, status, info, peers, connect and stop matches the catalog", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  try {
    a = new TestNode(await makeHome({ identity: 0 }), { identity: 0, hostname: "schema-a" });
    const idle = await a.pilot("daemon", "status", "--json");
    assertErrorJson(idle, "not_running", 3, "daemon status with no daemon");
    assert.match(idle.json.hint, /pilot daemon start/);
    const idleText = await a.pilot("daemon", "status");
    assert.equal(idleText.code, 3);
    assert.match(idleText.stderr, /No daemon is running for home/);
    await assertMatchesSchema("daemon stop", await a.pilot("daemon", "stop", "--json"));
    await assertMatchesSchema("daemon start", await a.start());
    b = await startNode({ identity: 1 });
    await assertMatchesSchema("daemon status", await a.pilot("daemon", "status", "--json"));
    const same = await a.pilot("daemon", "start", "--ensure", "--listen", "127.0.0.1:0", "--json");
    await assertMatchesSchema("daemon start", same);
    assert.deepEqual([same.json.data.changed, same.json.data.differs], [false, []]);
    // --ensure keeps the running daemon, and names the given flags it was not started with.
    const other = await a.pilot(
      "daemon",
      "start",
      "--ensure",
      "--hostname",
      "schema-b",
      "--auto-approve",
      b.identity!.fingerprint,
      "--json",
    );
    await assertMatchesSchema("daemon start", other);
    assert.deepEqual(other.json.data.differs, ["--hostname", "--auto-approve"]);
    const otherText = await a.pilot("daemon", "start", "--ensure", "--hostname", "schema-b");
    assert.equal(otherText.code, 0, otherText.stderr);
    assert.match(otherText.stdout, /already running \(pid \d+\), started without the --hostname/);
    assert.match(otherText.stdout, /pilot daemon stop/);
    await assertMatchesSchema("info", await a.pilot("info", "--json"));
    await assertMatchesSchema("peers", await a.pilot("peers", "--json"));
    await assertMatchesSchema("connect", await a.pilot("connect", b.listen, "--json"));
    await assertMatchesSchema("connect", await a.pilot("connect", b.listen, "--json"));
    const closed = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const silent = `127.0.0.1:${(closed.addr as Deno.NetAddr).port}`;
    closed.close();
    const unreachable = await a.pilot("connect", silent, "--timeout", "500ms", "--json");
    assert.equal(unreachable.code, 5, unreachable.stdout + unreachable.stderr);
    assert.equal(unreachable.json.code, "unreachable");
    assert.equal(unreachable.json.retryable, true);
    const peers = await a.pilot("peers", "--json");
    await assertMatchesSchema("peers", peers);
    assert.equal(peers.json.data.peers.length, 1, "the peer list is not empty");
    // B's view has a hostname of null: the nullable branch of the schema.
    await waitFor("B to list A", async () => (await b!.peers()).length === 1);
    await assertMatchesSchema("peers", await b.pilot("peers", "--json"));
    await assertMatchesSchema("info", await b.pilot("info", "--json"));
    await assertMatchesSchema("daemon stop", await a.pilot("daemon", "stop", "--json"));
    assertErrorJson(
      await a.pilot("daemon", "status", "--json"),
      "not_running",
      3,
      "daemon status after stop",
    );
  } finally {
    await stopAll(a, b);
  }
});

Deno.test("daemon start with a hostname that looks like an address fails and leaves no daemon", async () => {
  const node = new TestNode(await makeHome({ identity: 3 }), { identity: 3 });
  try {
    for (const hostname of ["3fa209c177e4", "Not_A_Hostname"]) {
      const r = await node.pilot(
        "daemon",
        "start",
        "--hostname",
        hostname,
        "--listen",
        "127.0.0.1:0",
        "--json",
      );
      assert.notEqual(r.code, 0, `${hostname}: ${r.stdout}`);
      assert.equal(r.json.status, "error");
      const status = await node.pilot("daemon", "status", "--json");
      assert.deepEqual([status.code, status.json.code], [3, "not_running"], hostname);
    }
  } finally {
    await node.stop();
  }
});

Deno.test({
  name: "daemon start refuses a hostname that looks like an address with exit 2",
  async fn() {
    const node = new TestNode(await makeHome({ identity: 3 }), { identity: 3 });
    try {
      const r = await node.pilot(
        "daemon",
        "start",
        "--hostname",
        "3fa209c177e4",
        "--listen",
        "127.0.0.1:0",
        "--json",
      );
      assertErrorJson(r, "invalid_argument", 2, "address-like hostname");
      assert.match(r.json.message, /3fa209c177e4/);
      const badListen = await node.pilot("daemon", "start", "--listen", "nonsense", "--json");
      assertErrorJson(badListen, "invalid_argument", 2, "bad --listen");
    } finally {
      await node.stop();
    }
  },
});
