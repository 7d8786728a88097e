/**
 * `pilot service`: the systemd unit and launchd plist it generates, and
 * install/uninstall/status into a temporary folder (`--dir`), so no service
 * manager on this machine is ever asked.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { RUNTIME_V8_FLAGS } from "../src/constants.ts";
import { launchdPlist, selfInvocation, servicePath, systemdUnit } from "../src/cli/service.ts";
import { makeHome, runPilot, TestNode } from "./_daemon_harness.ts";
import { tempDir } from "./_tmp.ts";

const EXEC = ["/usr/local/bin/pilot"];

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("the V8 flags are the same on every path: compile.sh bakes them, selfInvocation() passes them", async () => {
  const compile = await Deno.readTextFile(join(ROOT, "compile.sh"));
  assert.match(compile, new RegExp(`^V8_FLAGS=${RUNTIME_V8_FLAGS}$`, "m"));
  assert.match(compile, /^FLAGS=\([^)]*"--v8-flags=\$V8_FLAGS"\)/m);
  assert.ok(
    selfInvocation().includes(`--v8-flags=${RUNTIME_V8_FLAGS}`),
    selfInvocation().join(" "),
  );
});

const PROC_SKIP = Deno.build.os !== "linux" ? "reads the daemon's /proc/PID/cmdline" : null;

Deno.test({
  name: "a daemon started by `pilot daemon start` from source runs with the V8 flags" +
    (PROC_SKIP ? ` (skipped: ${PROC_SKIP})` : ""),
  ignore: PROC_SKIP !== null,
  async fn() {
    const node = new TestNode(await makeHome({ identity: 0 }), { identity: 0 });
    try {
      await node.start();
      const cmdline = (await Deno.readTextFile(`/proc/${node.pid}/cmdline`)).split("\0");
      assert.ok(cmdline.includes(`--v8-flags=${RUNTIME_V8_FLAGS}`), cmdline.join(" "));
    } finally {
      await node.stop();
    }
  },
});

function hasTool(name: string): boolean {
  try {
    new Deno.Command(name, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
    return true;
  } catch {
    return false;
  }
}

Deno.test("systemdUnit() runs the foreground daemon of the home, restarted on failure", () => {
  const unit = systemdUnit({ exec: EXEC, home: "/home/ann/.pilot" });
  const lines = unit.split("\n");
  assert.ok(lines.includes("ExecStart=/usr/local/bin/pilot daemon --home /home/ann/.pilot"), unit);
  for (
    const l of [
      "[Unit]",
      "After=network-online.target",
      "Wants=network-online.target",
      "[Service]",
      "Restart=on-failure",
      "RestartSec=5",
      "NoNewPrivileges=yes",
      "[Install]",
      "WantedBy=default.target",
    ]
  ) assert.ok(lines.includes(l), `${l} in\n${unit}`);
  assert.ok(!unit.includes("multi-user.target"));
});

Deno.test("systemdUnit() with system is wanted by multi-user.target", () => {
  const unit = systemdUnit({ exec: EXEC, home: "/var/lib/pilot", system: true });
  assert.ok(unit.split("\n").includes("WantedBy=multi-user.target"), unit);
  assert.ok(!unit.includes("default.target"), unit);
});

Deno.test("systemdUnit() quotes a home with spaces and escapes % and $", () => {
  const unit = systemdUnit({ exec: EXEC, home: '/srv/my "node" 100%$x' });
  const exec = unit.split("\n").find((l) => l.startsWith("ExecStart="));
  assert.equal(exec, 'ExecStart=/usr/local/bin/pilot daemon --home "/srv/my \\"node\\" 100%%$$x"');
});

const VERIFY_SKIP = !hasTool("systemd-analyze") ? "no systemd-analyze on this machine" : null;

Deno.test({
  name: "systemd-analyze verify accepts the user and the system unit" +
    (VERIFY_SKIP ? ` (skipped: ${VERIFY_SKIP})` : ""),
  ignore: VERIFY_SKIP !== null,
  async fn() {
    await using dir = await tempDir("pilot-unit-");
    for (const system of [false, true]) {
      // verify checks that ExecStart's program exists: this deno does.
      const unit = systemdUnit({ exec: [Deno.execPath()], home: dir.path, system });
      const path = join(dir.path, "pilot.service");
      await Deno.writeTextFile(path, unit);
      // The system manager's rules (a user manager needs a user session); the syntax is one.
      const out = await new Deno.Command("systemd-analyze", {
        args: ["verify", path],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      // Warnings about our unit name it; others (the host's own units) do not count.
      assert.ok(!stderr.includes("pilot.service"), stderr);
    }
  },
});

Deno.test("launchdPlist() is well-formed XML with Label, ProgramArguments, RunAtLoad and KeepAlive", () => {
  const plist = launchdPlist({ exec: EXEC, home: "/Users/ann/pilot & co" });
  assert.equal(XMLValidator.validate(plist), true);
  const doc = new XMLParser({ ignoreAttributes: false, preserveOrder: true }).parse(plist);
  // The top <dict>: alternating <key> and value elements, in order.
  const plistNode = doc.find((n: Record<string, unknown>) => "plist" in n);
  const dict = plistNode.plist.find((n: Record<string, unknown>) => "dict" in n).dict;
  const entries = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < dict.length; i += 2) {
    assert.ok("key" in dict[i], JSON.stringify(dict[i]));
    entries.set(String(dict[i].key[0]["#text"]), dict[i + 1]);
  }
  const text = (n: unknown) => String((n as { "#text": unknown }[])[0]!["#text"]);
  assert.equal(text(entries.get("Label")!.string), "net.pilot.daemon");
  const args = (entries.get("ProgramArguments")!.array as { string: unknown }[]).map((a) =>
    text(a.string)
  );
  assert.deepEqual(args, ["/usr/local/bin/pilot", "daemon", "--home", "/Users/ann/pilot & co"]);
  assert.ok("true" in entries.get("RunAtLoad")!);
  const keepAlive = entries.get("KeepAlive")!.dict as Record<string, unknown>[];
  assert.equal(text(keepAlive[0]!.key), "SuccessfulExit");
  assert.ok("false" in keepAlive[1]!);
  assert.equal(text(entries.get("StandardErrorPath")!.string), "/Users/ann/pilot & co/launchd.log");
});

Deno.test("servicePath() honours XDG_CONFIG_HOME, --system and --dir", () => {
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  assert.equal(
    servicePath("systemd", { env: env({ HOME: "/home/ann" }) }),
    "/home/ann/.config/systemd/user/pilot.service",
  );
  assert.equal(
    servicePath("systemd", { env: env({ HOME: "/home/ann", XDG_CONFIG_HOME: "/cfg" }) }),
    "/cfg/systemd/user/pilot.service",
  );
  assert.equal(servicePath("systemd", { system: true }), "/etc/systemd/system/pilot.service");
  assert.equal(
    servicePath("launchd", { env: env({ HOME: "/Users/ann" }) }),
    "/Users/ann/Library/LaunchAgents/net.pilot.daemon.plist",
  );
  assert.equal(servicePath("systemd", { dir: "/tmp/x" }), "/tmp/x/pilot.service");
});

const LINUX_SKIP = Deno.build.os !== "linux" ? "the CLI tests install systemd units" : null;

Deno.test({
  name: "pilot service install writes the unit once, refuses another, and uninstall removes it" +
    (LINUX_SKIP ? ` (skipped: ${LINUX_SKIP})` : ""),
  ignore: LINUX_SKIP !== null,
  async fn() {
    await using dir = await tempDir("pilot-service-");
    const units = join(dir.path, "units");
    const home = join(dir.path, "home");
    const unit = join(units, "pilot.service");
    const pilot = (...args: string[]) => runPilot([...args, "--dir", units, "--json"], { home });

    const first = await pilot("service", "install");
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal(first.json.data.changed, true);
    assert.equal(first.json.data.enabled, false, "--dir never asks systemctl");
    assert.match(first.json.data.enable_command, /systemctl --user enable --now pilot\.service/);
    const text = await Deno.readTextFile(unit);
    assert.ok(text.includes(` daemon --home ${home}\n`), text);
    assert.equal((await Deno.stat(home)).isDirectory, true, "the home exists for the daemon");

    const again = await pilot("service", "install");
    assert.equal(again.code, 0, again.stdout);
    assert.equal(again.json.data.changed, false);

    const other = await runPilot(
      ["service", "install", "--dir", units, "--json"],
      { home: join(dir.path, "other") },
    );
    assert.equal(other.code, 1, other.stdout);
    assert.equal(other.json.code, "conflict");
    assert.match(other.json.hint, /--force/);
    assert.equal(await Deno.readTextFile(unit), text, "the installed unit is untouched");

    const status = await pilot("service", "status");
    assert.equal(status.code, 0, status.stdout);
    assert.equal(status.json.data.installed, true);
    assert.equal(status.json.data.unit_text, text);
    assert.equal(status.json.data.enabled, null, "--dir never asks systemctl");

    const forced = await runPilot(
      ["service", "install", "--dir", units, "--exec", Deno.execPath(), "--force", "--json"],
      { home },
    );
    assert.equal(forced.code, 0, forced.stdout);
    assert.deepEqual(forced.json.data.exec, [Deno.execPath()]);
    assert.ok((await Deno.readTextFile(unit)).includes(`ExecStart=${Deno.execPath()} daemon`));

    const removed = await pilot("service", "uninstall");
    assert.deepEqual([removed.code, removed.json.data.changed], [0, true]);
    await assert.rejects(Deno.stat(unit), Deno.errors.NotFound);
    const twice = await pilot("service", "uninstall");
    assert.deepEqual([twice.code, twice.json.data.changed], [0, false]);
    const none = await pilot("service", "status");
    assert.equal(none.json.data.installed, false);
  },
});

Deno.test({
  name:
    "pilot service install with an unusable home or --exec fails in one line and writes nothing" +
    (LINUX_SKIP ? ` (skipped: ${LINUX_SKIP})` : ""),
  ignore: LINUX_SKIP !== null,
  async fn() {
    await using dir = await tempDir("pilot-service-");
    const units = join(dir.path, "units");
    // A home inside a regular file cannot be created, even by root.
    await Deno.writeTextFile(join(dir.path, "file"), "");
    const bad = await runPilot(
      ["service", "install", "--dir", units, "--json"],
      { home: join(dir.path, "file", "home") },
    );
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.equal(bad.json.code, "invalid_argument");
    assert.ok(!bad.json.message.includes("\n") && bad.json.hint !== "", bad.stdout);
    await assert.rejects(Deno.stat(units), Deno.errors.NotFound, "nothing half-installed");

    const noExec = await runPilot(
      ["service", "install", "--dir", units, "--exec", join(dir.path, "nope"), "--json"],
      { home: join(dir.path, "home") },
    );
    assert.equal(noExec.code, 2, noExec.stdout);
    assert.match(noExec.json.message, /No program at --exec/);
    await assert.rejects(Deno.stat(units), Deno.errors.NotFound, "nothing half-installed");
  },
});

const ROOT_SKIP = LINUX_SKIP ?? (Deno.uid() === 0 ? "running as root, --system is allowed" : null);

Deno.test({
  name: "pilot service install --system without root is refused in one line" +
    (ROOT_SKIP ? ` (skipped: ${ROOT_SKIP})` : ""),
  ignore: ROOT_SKIP !== null,
  async fn() {
    await using dir = await tempDir("pilot-service-");
    const r = await runPilot(
      // No --dir: refused before /etc/systemd/system is touched.
      ["service", "install", "--system", "--json"],
      { home: join(dir.path, "home") },
    );
    assert.equal(r.code, 2, r.stdout);
    assert.match(r.json.message, /needs root/);
    assert.match(r.json.hint, /sudo/);
  },
});
