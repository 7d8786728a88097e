/**
 * `pilot version --check` against a local release folder served on
 * 127.0.0.1: the same, a newer, an older and a pre-release VERSION; a 404, a
 * server error, garbage, a server that never answers, a closed port; the
 * release variables install.sh reads (checked as install.sh checks them);
 * and `pilot version` alone, which never touches the network.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { API_VERSION, VERSION } from "../src/constants.ts";
import {
  compareVersions,
  parseVersion,
  UPGRADE_COMMAND,
  type Version,
} from "../src/cli/release_check.ts";
import { type PilotResult, pilotResultOf } from "./_daemon_harness.ts";
import { tempDir } from "./_tmp.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const MAIN = join(ROOT, "main.ts");
const CONFIG = join(ROOT, "deno.json");

// The tests decide every release variable; a developer's PILOT_* or proxy must not leak in.
function childEnv(extra: Record<string, string>): Record<string, string> {
  const env = Deno.env.toObject();
  for (const k of Object.keys(env)) {
    if (k.startsWith("PILOT_") || /^(https?|all|no)_proxy$/i.test(k)) delete env[k];
  }
  return { ...env, ...extra };
}

/** Runs `pilot ARGS` with `env` added to a clean environment. */
async function pilot(args: string[], env: Record<string, string> = {}): Promise<PilotResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--config", CONFIG, MAIN, ...args],
    clearEnv: true,
    env: childEnv(env),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return pilotResultOf(out);
}

/** A release server on 127.0.0.1 that records the paths asked and answers with `answer`. */
function releaseServer(answer: (path: string) => Response | Promise<Response>) {
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      const path = new URL(req.url).pathname;
      requests.push(path);
      return answer(path);
    },
  );
  return {
    base: `http://127.0.0.1:${server.addr.port}`,
    requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** A server whose VERSION at `/rel/VERSION` says `body`; other paths are 404. */
function versionServer(body: string) {
  return releaseServer((path) =>
    path === "/rel/VERSION" ? new Response(body) : new Response("Not Found", { status: 404 })
  );
}

/** A loopback port nothing listens on. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

/** The error a failed run printed: one `error:` line and one `hint:` line, no stack trace. */
function assertCleanError(r: PilotResult, code: number, message: RegExp): void {
  assert.equal(r.code, code, r.stdout + r.stderr);
  assert.equal(r.stdout, "");
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0]!, /^error: /);
  assert.match(lines[0]!, message);
  assert.match(lines[1]!, /^hint: \S/);
}

const mine = parseVersion(VERSION)!;
const next = `${mine.core[0] + 1}.0.0`;
const here = {
  version: VERSION,
  api_version: API_VERSION,
  target: Deno.build.target,
  deno: Deno.version.deno,
};

Deno.test("pilot version --check says this is the latest release when VERSION states this version", async () => {
  await using srv = versionServer(`${VERSION}\n`);
  // One trailing slash is dropped, as install.sh drops it.
  const env = { PILOT_INSTALL_BASE: `${srv.base}/rel/` };
  const json = await pilot(["version", "--check", "--json"], env);
  assert.equal(json.code, 0, json.stderr);
  assert.deepEqual(json.json, {
    status: "ok",
    data: { ...here, latest: VERSION, newer: false, base: `${srv.base}/rel` },
  });
  const human = await pilot(["version", "--check"], env);
  assert.equal(human.code, 0, human.stderr);
  assert.equal(human.stdout, `pilot ${VERSION} is the latest release\n`);
  assert.deepEqual(srv.requests, ["/rel/VERSION", "/rel/VERSION"]);
});

Deno.test("pilot version --check names a newer release and README's upgrade command, and exits 0", async () => {
  await using srv = versionServer(`${next}\n`);
  const env = { PILOT_INSTALL_BASE: `${srv.base}/rel` };
  const json = await pilot(["version", "--check", "--json"], env);
  assert.equal(json.code, 0, json.stderr);
  assert.equal(json.json.data.latest, next);
  assert.equal(json.json.data.newer, true);
  const human = await pilot(["version", "--check"], env);
  assert.equal(human.code, 0, human.stderr);
  assert.equal(
    human.stdout,
    `pilot ${next} is out (you have ${VERSION}): upgrade with \`${UPGRADE_COMMAND}\`\n`,
  );
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  assert.ok(readme.includes(UPGRADE_COMMAND), "the upgrade command is README's install command");
});

Deno.test("pilot version --check is not newer for an older release, and says so", async () => {
  assert.ok(compareVersions(mine, parseVersion("0.0.0")!) > 0, "this version is above 0.0.0");
  await using srv = versionServer("0.0.0\n");
  const env = { PILOT_INSTALL_BASE: `${srv.base}/rel` };
  const json = await pilot(["version", "--check", "--json"], env);
  assert.equal(json.code, 0, json.stderr);
  assert.equal(json.json.data.newer, false);
  const human = await pilot(["version", "--check"], env);
  assert.equal(human.stdout, `pilot ${VERSION} is newer than the latest release, 0.0.0\n`);
});

Deno.test("pilot version --check ranks a pre-release below its release", async () => {
  for (
    const [latest, newer] of [
      [`${mine.core.join(".")}-rc.1`, false], // this release's own release candidate
      [`${next}-rc.1`, true], // the next release's
      [`v${next}`, true], // a tag-style v is read too
    ] as const
  ) {
    await using srv = versionServer(`${latest}\n`);
    const r = await pilot(["version", "--check", "--json"], {
      PILOT_INSTALL_BASE: `${srv.base}/rel`,
    });
    assert.equal(r.code, 0, `${latest}: ${r.stderr}`);
    assert.equal(r.json.data.newer, newer, latest);
    assert.equal(r.json.data.latest, latest.replace(/^v/, ""));
  }
});

Deno.test("compareVersions() orders versions as semver does, pre-releases below their release", () => {
  const ordered = [
    "0.9.9",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.2.0",
    "1.10.0",
    "2.0.0",
    "10.0.0",
  ].map((v) => [v, parseVersion(v)] as [string, Version | undefined]);
  for (const [v, p] of ordered) assert.ok(p, `${v} parses`);
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      const [a, pa] = ordered[i]!;
      const [b, pb] = ordered[j]!;
      assert.equal(Math.sign(compareVersions(pa!, pb!)), Math.sign(i - j), `${a} vs ${b}`);
    }
  }
  assert.equal(compareVersions(parseVersion("1.2.3+build.5")!, parseVersion("1.2.3")!), 0);
});

Deno.test("parseVersion() refuses what is not major.minor.patch", () => {
  for (const bad of ["", "1.2", "1.2.3.4", "01.2.3", "1.2.3-", "1.2.3-a..b", "<html>", "1.2.3 x"]) {
    assert.equal(parseVersion(bad), undefined, JSON.stringify(bad));
  }
});

Deno.test("pilot version --check asks the latest GitHub release of PILOT_REPO, ignoring PILOT_VERSION", async () => {
  await using srv = releaseServer(() => new Response(`${VERSION}\n`));
  for (
    const [repo, path] of [
      [undefined, "/pilot-net/pilot/releases/latest/download/VERSION"],
      ["", "/pilot-net/pilot/releases/latest/download/VERSION"],
      ["acme/pilot-fork", "/acme/pilot-fork/releases/latest/download/VERSION"],
      ["a.b/c_d-e", "/a.b/c_d-e/releases/latest/download/VERSION"],
    ] as const
  ) {
    srv.requests.length = 0;
    const env: Record<string, string> = {
      PILOT_GITHUB_URL: `${srv.base}/`,
      // It pins what install.sh installs; the check is about the latest.
      PILOT_VERSION: "0.0.1",
      ...(repo === undefined ? {} : { PILOT_REPO: repo }),
    };
    const r = await pilot(["version", "--check", "--json"], env);
    assert.equal(r.code, 0, `${repo}: ${r.stdout}${r.stderr}`);
    assert.deepEqual(srv.requests, [path]);
    assert.equal(r.json.data.base, `${srv.base}${path.slice(0, -"/VERSION".length)}`);
  }
});

const BAD_REPOS = ["just-a-name", "a/b/c", "a//b", "/a", "a/", "a b/c", "a/b;rm", "é/x"];

Deno.test("pilot version --check refuses a PILOT_REPO that is no owner/name, asking nothing", async () => {
  await using srv = releaseServer(() => new Response(`${VERSION}\n`));
  for (const repo of BAD_REPOS) {
    const env = { PILOT_GITHUB_URL: srv.base, PILOT_REPO: repo };
    const r = await pilot(["version", "--check"], env);
    assertCleanError(r, 2, /PILOT_REPO=.* is not a GitHub owner\/name/);
    assert.ok(r.stderr.includes(JSON.stringify(repo)), r.stderr);
    const json = await pilot(["version", "--check", "--json"], env);
    assert.equal(json.json.code, "invalid_argument");
  }
  assert.deepEqual(srv.requests, []);
  // PILOT_INSTALL_BASE wins, as in install.sh: PILOT_REPO then does not apply.
  await using rel = versionServer(`${VERSION}\n`);
  const r = await pilot(["version", "--check", "--json"], {
    PILOT_INSTALL_BASE: `${rel.base}/rel`,
    PILOT_REPO: "just-a-name",
  });
  assert.equal(r.code, 0, r.stderr);
});

Deno.test("pilot version --check refuses a release URL that is not http(s)", async () => {
  const cases: [string, string][] = [
    ["PILOT_INSTALL_BASE", "ftp://x/rel"],
    ["PILOT_GITHUB_URL", "github.com"],
  ];
  for (const [name, value] of cases) {
    const r = await pilot(["version", "--check"], { [name]: value });
    assertCleanError(r, 2, new RegExp(`${name}="${value}" is not an http\\(s\\) URL`));
  }
});

async function hasCommand(name: string): Promise<boolean> {
  const r = await new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "null" })
    .output();
  return r.success;
}
const CAN_INSTALL = (await hasCommand("curl")) || (await hasCommand("wget"));
if (!CAN_INSTALL) {
  console.log(
    "version_check_test: the install.sh comparison skipped: neither curl nor wget is installed",
  );
}

Deno.test({
  name: "install.sh refuses exactly the PILOT_REPO values pilot version --check refuses",
  ignore: !CAN_INSTALL,
  async fn() {
    await using tmp = await tempDir("pilot-version-check-");
    const port = closedPort();
    for (const repo of [...BAD_REPOS, "acme/pilot-fork", "a.b/c_d-e"]) {
      const out = await new Deno.Command("sh", {
        args: [join(ROOT, "install.sh")],
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          HOME: tmp.path,
          PILOT_INSTALL_DIR: join(tmp.path, "bin"),
          PILOT_INSTALL_OS: "Linux",
          PILOT_INSTALL_ARCH: "x86_64",
          PILOT_GITHUB_URL: `http://127.0.0.1:${port}`,
          PILOT_REPO: repo,
        },
        stdout: "null",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, `${repo}: ${stderr}`);
      const refused = /is not a GitHub owner\/name/.test(stderr);
      assert.equal(refused, BAD_REPOS.includes(repo), `${repo}: ${stderr}`);
      // An accepted one got as far as the download, from the closed port.
      if (!refused) assert.match(stderr, /could not download/, `${repo}: ${stderr}`);
    }
  },
});

Deno.test("pilot version --check reports a release without VERSION (404) as not_found, naming the URL", async () => {
  await using srv = versionServer(`${VERSION}\n`);
  const env = { PILOT_INSTALL_BASE: `${srv.base}/old-release` };
  const r = await pilot(["version", "--check"], env);
  assertCleanError(r, 1, new RegExp(`${srv.base}/old-release/VERSION answered HTTP 404`));
  const json = await pilot(["version", "--check", "--json"], env);
  assert.equal(json.code, 1);
  assert.equal(json.json.code, "not_found");
});

Deno.test("pilot version --check reports a server error as unreachable (exit 5)", async () => {
  await using srv = releaseServer(() => new Response("oops", { status: 503 }));
  const r = await pilot(["version", "--check"], { PILOT_INSTALL_BASE: srv.base });
  assertCleanError(r, 5, new RegExp(`${srv.base}/VERSION answered HTTP 503`));
});

Deno.test("pilot version --check refuses a VERSION that holds no version, quoting a short piece of it", async () => {
  for (
    const [body, quoted] of [
      [
        "<html><body>Sign in to the Wi-Fi</body></html>\n",
        '"<html><body>Sign in to the Wi-Fi</body><…"',
      ],
      ["", '""'],
      ["1.2\n", '"1.2"'],
      ["9".repeat(100_000), `"${"9".repeat(40)}…"`],
    ]
  ) {
    await using srv = versionServer(body!);
    const env = { PILOT_INSTALL_BASE: `${srv.base}/rel` };
    const r = await pilot(["version", "--check"], env);
    assertCleanError(r, 1, /holds no release version: it says /);
    assert.ok(r.stderr.includes(`${srv.base}/rel/VERSION`), r.stderr);
    assert.ok(r.stderr.includes(quoted!), `${quoted} in ${r.stderr}`);
    const json = await pilot(["version", "--check", "--json"], env);
    assert.equal(json.json.code, "not_found");
  }
});

Deno.test("pilot version --check gives up on a server that never answers after --timeout", async () => {
  const release = Promise.withResolvers<void>();
  // One server holds back the whole answer; the other sends headers and part of a body.
  await using silent = releaseServer(async () => {
    await release.promise;
    return new Response("");
  });
  await using trickle = releaseServer(() =>
    new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode("0."));
          // The client has long cancelled it by then.
          release.promise.then(() => c.close()).catch(() => {});
        },
      }),
    )
  );
  try {
    for (const base of [silent.base, trickle.base]) {
      const started = Date.now();
      const r = await pilot(["version", "--check", "--timeout", "300ms"], {
        PILOT_INSTALL_BASE: base,
      });
      assertCleanError(r, 5, new RegExp(`No answer from ${base}/VERSION within 300 ms`));
      assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms`);
    }
    // Without --timeout, --check waits 5 s at most.
    const started = Date.now();
    const r = await pilot(["version", "--check", "--json"], { PILOT_INSTALL_BASE: silent.base });
    const took = Date.now() - started;
    assert.equal(r.code, 5, r.stdout + r.stderr);
    assert.equal(r.json.code, "unreachable");
    assert.match(r.json.message, /within 5000 ms/);
    assert.ok(took >= 5_000 && took < 20_000, `took ${took} ms`);
  } finally {
    release.resolve();
  }
});

Deno.test("pilot version --check reports a closed port as unreachable (exit 5), naming the URL", async () => {
  const base = `http://127.0.0.1:${closedPort()}`;
  const r = await pilot(["version", "--check"], { PILOT_INSTALL_BASE: base });
  assertCleanError(r, 5, new RegExp(`^error: Cannot reach ${base}/VERSION: .*refused`, "i"));
  const json = await pilot(["version", "--check", "--json"], { PILOT_INSTALL_BASE: base });
  assert.equal(json.json.code, "unreachable");
  assert.equal(json.json.retryable, true);
});

Deno.test("pilot version without --check asks nothing and prints what it always did", async () => {
  await using srv = versionServer(`${next}\n`);
  const env = { PILOT_INSTALL_BASE: `${srv.base}/rel` };
  const human = await pilot(["version"], env);
  assert.equal(
    human.stdout,
    `pilot ${VERSION} (control API ${here.api_version}, ${here.target}, Deno ${here.deno})\n`,
  );
  const json = await pilot(["version", "--json"], env);
  assert.deepEqual(Object.keys(json.json.data).sort(), [
    "api_version",
    "deno",
    "target",
    "version",
  ]);
  assert.equal((await pilot(["--version"], env)).stdout, human.stdout);
  // --timeout means nothing without --check.
  const r = await pilot(["version", "--timeout", "1s"], env);
  assertCleanError(r, 2, /--timeout applies only with --check/);
  assert.deepEqual(srv.requests, []);
});
