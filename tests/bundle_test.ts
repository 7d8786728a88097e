/**
 * The self-contained artifact: `deno task bundle` writes one JavaScript file
 * with every dependency inside, and two daemons started from a copy of that
 * file alone (an empty directory, an empty Deno cache, `--cached-only`, so
 * nothing can be fetched or found beside it) run the seed's flow. This proves
 * the artifact on every CI run, also where `deno compile` cannot.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isHomeLocked } from "../src/daemon/home.ts";
import { fixture, makeHome, pilotResultOf, waitFor } from "./_daemon_harness.ts";
import { tempDir } from "./_tmp.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** The `bundle` task of deno.json as argv, writing to `output` instead of dist/. */
async function bundleTask(output: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  const words = String(config.tasks.bundle).split(/\s+/);
  const at = words.indexOf("--output");
  assert(words[0] === "deno" && at > 0, `unexpected bundle task: ${config.tasks.bundle}`);
  words[at + 1] = output;
  return words.slice(1);
}

/** What one run of the bundled `pilot` printed. */
interface Run {
  code: number;
  stdout: string;
  stderr: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

Deno.test({
  name: "two daemons started from the bundled file alone handshake, approve and deliver a message",
  // The daemons' timers and child processes outlive single steps; `finally` reaps them.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using work = await tempDir("pilot-bundle-");
    const built = join(work.path, "build", "pilot.js");
    const bundled = await new Deno.Command(Deno.execPath(), {
      args: await bundleTask(built),
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(bundled.success, `deno task bundle failed: ${new TextDecoder().decode(bundled.stderr)}`);

    // Only the file, in a directory with nothing else: no deno.json, no
    // node_modules, and a Deno cache with nothing in it.
    const alone = join(work.path, "alone");
    const cache = join(work.path, "deno-dir");
    await Deno.mkdir(alone);
    await Deno.mkdir(cache);
    const program = join(alone, "pilot.js");
    await Deno.copyFile(built, program);

    const env = Deno.env.toObject();
    for (const k of Object.keys(env)) if (k.startsWith("PILOT_")) delete env[k];
    env.DENO_DIR = cache;
    env.NO_COLOR = "1";
    const pilot = async (home: string, ...args: string[]): Promise<Run> => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--unstable-net", "--cached-only", program, "--home", home, ...args],
        cwd: alone,
        clearEnv: true,
        env,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      return pilotResultOf(out);
    };
    // deno-lint-ignore no-explicit-any
    const ok = async (home: string, ...args: string[]): Promise<any> => {
      const r = await pilot(home, ...args, "--json");
      if (r.code !== 0 || r.json?.status !== "ok") {
        throw new Error(`pilot ${args.join(" ")} failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
      }
      return r.json.data;
    };

    const homeA = await makeHome({ identity: 0 });
    const homeB = await makeHome({ identity: 1 });
    const pids: [string, number][] = [];
    try {
      const b = await ok(homeB, "daemon", "start", "--listen", "127.0.0.1:0");
      pids.push([homeB, b.pid]);
      const a = await ok(homeA, "daemon", "start", "--listen", "127.0.0.1:0");
      pids.push([homeA, a.pid]);
      // `daemon start` ran the bundle again in the background, not main.ts.
      if (Deno.build.os === "linux") {
        const cmdline = await Deno.readTextFile(`/proc/${b.pid}/cmdline`);
        assert(cmdline.includes(program), `the daemon runs ${cmdline.replaceAll("\0", " ")}`);
      }

      await ok(homeA, "handshake", b.listen, "--reason", "bundle test");
      const approved = await ok(homeB, "approve", fixture(0).fingerprint);
      assert.equal(approved.status, "trusted");
      await waitFor("A to see trust as mutual", async () => {
        const t = await ok(homeA, "trust");
        return t.trusted.some((e: { public_key: string; mutual: boolean }) =>
          e.public_key === fixture(1).public_key && e.mutual
        );
      });

      const data = '{"job":"rotate_logs"}';
      await ok(
        homeA,
        "send",
        fixture(1).address,
        "--type",
        "json",
        "--data",
        data,
        "--id",
        "bundle-1",
      );
      const inbox = await ok(homeB, "inbox");
      const got = inbox.messages.find((m: { id: string }) => m.id === "bundle-1");
      assert(got !== undefined, `bundle-1 is not in the inbox: ${JSON.stringify(inbox)}`);
      assert.equal(got.type, "json");
      assert.equal(got.data, data);
      assert.equal(got.from, fixture(0).address);

      for (const home of [homeA, homeB]) {
        const stopped = await pilot(home, "daemon", "stop", "--json");
        assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
      }
    } finally {
      for (const home of [homeA, homeB]) {
        await pilot(home, "daemon", "stop", "--timeout", "10s").catch(() => {});
      }
      // A daemon whose home is still locked did not stop: kill it.
      for (const [home, pid] of pids) {
        if (!(await isHomeLocked(home))) continue;
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // It exited meanwhile.
        }
      }
      for (const home of [homeA, homeB]) {
        await Deno.remove(home, { recursive: true }).catch(() => {});
      }
    }
  },
});
