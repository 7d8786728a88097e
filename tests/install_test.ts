/**
 * `install.sh` against a local release server serving stand-in binaries
 * (shell scripts that print their version): platform choice, checksum
 * refusals, interrupted downloads, upgrades and the PATH hint. The server is
 * plain TCP rather than `Deno.serve` so it can promise more bytes than it
 * sends. Skipped, with the reason printed, where neither curl nor wget is
 * installed.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { tempDir } from "./_tmp.ts";

const SCRIPT = fileURLToPath(new URL("../install.sh", import.meta.url));
const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
];

function standIn(target: string, version = "9.9.9"): string {
  return `#!/bin/sh\necho "pilot ${version} ${target}"\n`;
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * What the server answers for one path: `sendBytes` below the body's length
 * cuts the body short, then closes the connection, or with `hold` keeps it
 * open until the server is disposed.
 */
interface Asset {
  body: string;
  sendBytes?: number;
  hold?: boolean;
}

/** A release folder on 127.0.0.1: `files` maps a path to its answer; other paths are 404. */
class ReleaseServer implements AsyncDisposable {
  readonly files = new Map<string, Asset>();
  readonly requests: string[] = [];
  readonly #listener: Deno.TcpListener;
  readonly #serving: Promise<void>;
  readonly #answers = new Set<Promise<void>>();
  readonly #closing = Promise.withResolvers<void>();

  constructor() {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#serving = this.#serve();
  }

  get base(): string {
    return `http://127.0.0.1:${this.#listener.addr.port}`;
  }

  /** Serves the stand-ins of `version` under `prefix`, with a SHA256SUMS that lists them all. */
  async release(prefix = "", version = "9.9.9"): Promise<void> {
    const lines = [];
    for (const target of TARGETS) {
      const body = standIn(target, version);
      this.files.set(`${prefix}/pilot-${target}`, { body });
      lines.push(`${await sha256(body)}  pilot-${target}`);
    }
    this.files.set(`${prefix}/SHA256SUMS`, { body: lines.join("\n") + "\n" });
  }

  async #serve(): Promise<void> {
    for await (const conn of this.#listener) {
      const answer = this.#answer(conn).catch(() => {}).finally(() => conn.close());
      this.#answers.add(answer);
      answer.finally(() => this.#answers.delete(answer));
    }
  }

  async #answer(conn: Deno.TcpConn): Promise<void> {
    let head = "";
    const buf = new Uint8Array(4096);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buf);
      if (n === null) return;
      head += new TextDecoder().decode(buf.subarray(0, n));
    }
    const path = head.split(" ")[1] ?? "";
    this.requests.push(path);
    const asset = this.files.get(path);
    const body = new TextEncoder().encode(asset?.body ?? "not found\n");
    const status = asset ? "200 OK" : "404 Not Found";
    const sent = body.subarray(0, asset?.sendBytes ?? body.length);
    const header = `HTTP/1.1 ${status}\r\nContent-Length: ${body.length}\r\n` +
      `Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n`;
    await writeAll(conn, new TextEncoder().encode(header));
    await writeAll(conn, sent);
    if (asset?.hold) await this.#closing.promise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    this.#closing.resolve();
    await this.#serving.catch(() => {});
    await Promise.all(this.#answers);
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

async function hasCommand(name: string): Promise<boolean> {
  const r = await new Deno.Command("sh", { args: ["-c", `command -v ${name}`], stdout: "null" })
    .output();
  return r.success;
}

const HAS_CURL = await hasCommand("curl");
const HAS_WGET = await hasCommand("wget");
const HAS_SETSID = await hasCommand("setsid");
if (!HAS_CURL && !HAS_WGET) {
  console.log("install_test: skipped: neither curl nor wget is installed");
} else {
  if (!HAS_WGET) console.log("install_test: the wget download test skipped: wget is not installed");
  if (!HAS_CURL) {
    console.log("install_test: the curl-only tests skipped: curl is not installed");
  }
  if (!HAS_SETSID) console.log("install_test: the Ctrl-C test skipped: setsid is not installed");
}

/** A scratch place per test: the install folder, and a `sudo` that records being called. */
interface Scratch extends AsyncDisposable {
  dir: string;
  installDir: string;
  fakeBin: string;
}

async function scratch(): Promise<Scratch> {
  const tmp = await tempDir("pilot-install-test-");
  const fakeBin = `${tmp.path}/fakebin`;
  await Deno.mkdir(fakeBin);
  await Deno.writeTextFile(
    `${fakeBin}/sudo`,
    `#!/bin/sh\necho "$@" >> "${tmp.path}/sudo-called"\n`,
  );
  await Deno.chmod(`${fakeBin}/sudo`, 0o755);
  return {
    dir: tmp.path,
    installDir: `${tmp.path}/bin`,
    fakeBin,
    async [Symbol.asyncDispose]() {
      await assert.rejects(Deno.stat(`${tmp.path}/sudo-called`), Deno.errors.NotFound);
      await tmp[Symbol.asyncDispose]();
    },
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function install(
  s: Scratch,
  env: Record<string, string>,
  path = `${s.fakeBin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
): Promise<Run> {
  const r = await new Deno.Command("sh", {
    args: [SCRIPT],
    env: { PILOT_INSTALL_DIR: s.installDir, HOME: s.dir, SHELL: "/bin/sh", PATH: path, ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

async function listing(dir: string): Promise<string[]> {
  try {
    return (await Array.fromAsync(Deno.readDir(dir), (e) => e.name)).sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** One line of reason on stderr, and nothing but that. */
function assertRefused(r: Run, reason: RegExp): void {
  assert.notEqual(r.code, 0, r.stdout + r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, reason);
}

function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, ignore: !HAS_CURL && !HAS_WGET, fn });
}

test("install.sh passes sh -n and never calls sudo", async () => {
  const r = await new Deno.Command("sh", { args: ["-n", SCRIPT], stderr: "piped" }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  const code = (await Deno.readTextFile(SCRIPT)).split("\n")
    .filter((line) => !line.trimStart().startsWith("#"));
  assert.deepEqual(code.filter((line) => /\bsudo\b/.test(line)), []);
});

test("install.sh picks the binary of each supported OS and architecture", async () => {
  await using server = new ReleaseServer();
  await server.release();
  const cases: [string, string, string][] = [
    ["Linux", "x86_64", "x86_64-unknown-linux-gnu"],
    ["Linux", "amd64", "x86_64-unknown-linux-gnu"],
    ["Linux", "aarch64", "aarch64-unknown-linux-gnu"],
    ["Linux", "arm64", "aarch64-unknown-linux-gnu"],
    ["Darwin", "arm64", "aarch64-apple-darwin"],
    ["Darwin", "x86_64", "x86_64-apple-darwin"],
  ];
  for (const [os, arch, target] of cases) {
    await using s = await scratch();
    server.requests.length = 0;
    const r = await install(s, {
      PILOT_INSTALL_BASE: server.base,
      PILOT_INSTALL_OS: os,
      PILOT_INSTALL_ARCH: arch,
    });
    assert.equal(r.code, 0, `${os}/${arch}: ${r.stdout}${r.stderr}`);
    assert.deepEqual(server.requests, ["/SHA256SUMS", `/pilot-${target}`]);
    assert.equal(await Deno.readTextFile(`${s.installDir}/pilot`), standIn(target));
    assert.equal((await Deno.stat(`${s.installDir}/pilot`)).mode! & 0o777, 0o755);
    assert.deepEqual(await listing(s.installDir), ["pilot"]);
    // The stand-in runs here, so the script shows its version.
    assert.match(r.stdout, new RegExp(`pilot 9\\.9\\.9 ${target}`));
  }
});

test("install.sh refuses an unsupported OS or architecture before downloading", async () => {
  await using server = new ReleaseServer();
  await server.release();
  for (
    const [os, arch, reason] of [
      ["FreeBSD", "amd64", /unsupported operating system "freebsd"/],
      ["Linux", "mips", /unsupported architecture "mips"/],
      ["Darwin", "ppc", /unsupported architecture "ppc"/],
    ] as const
  ) {
    await using s = await scratch();
    const r = await install(s, {
      PILOT_INSTALL_BASE: server.base,
      PILOT_INSTALL_OS: os,
      PILOT_INSTALL_ARCH: arch,
    });
    assertRefused(r, reason);
    assert.deepEqual(await listing(s.installDir), []);
  }
  assert.deepEqual(server.requests, []);
});

test("install.sh refuses a checksum mismatch and installs nothing", async () => {
  await using server = new ReleaseServer();
  await server.release();
  server.files.set("/pilot-x86_64-unknown-linux-gnu", {
    body: standIn("x86_64-unknown-linux-gnu").replace("9.9.9", "6.6.6"),
  });
  await using s = await scratch();
  const r = await install(s, {
    PILOT_INSTALL_BASE: server.base,
    PILOT_INSTALL_OS: "Linux",
    PILOT_INSTALL_ARCH: "x86_64",
  });
  assertRefused(r, /checksum mismatch for pilot-x86_64-unknown-linux-gnu .*nothing was installed/);
  assert.deepEqual(await listing(s.installDir), []);
});

test("install.sh refuses a release whose SHA256SUMS lacks this platform", async () => {
  await using server = new ReleaseServer();
  await server.release();
  const sums = server.files.get("/SHA256SUMS")!.body.split("\n")
    .filter((line) => !line.endsWith("aarch64-apple-darwin")).join("\n");
  server.files.set("/SHA256SUMS", { body: sums });
  await using s = await scratch();
  const r = await install(s, {
    PILOT_INSTALL_BASE: server.base,
    PILOT_INSTALL_OS: "Darwin",
    PILOT_INSTALL_ARCH: "arm64",
  });
  assertRefused(r, /lists no checksum for pilot-aarch64-apple-darwin/);
  assert.deepEqual(await listing(s.installDir), []);
  assert.deepEqual(server.requests, ["/SHA256SUMS"]);
});

test("install.sh refuses a release with no SHA256SUMS at all", async () => {
  await using server = new ReleaseServer();
  await server.release();
  server.files.delete("/SHA256SUMS");
  await using s = await scratch();
  const r = await install(s, {
    PILOT_INSTALL_BASE: server.base,
    PILOT_INSTALL_OS: "Linux",
    PILOT_INSTALL_ARCH: "x86_64",
  });
  assertRefused(r, /could not download .*\/SHA256SUMS .*nothing was installed/);
  assert.deepEqual(await listing(s.installDir), []);
});

for (const tool of ["curl", "wget"] as const) {
  Deno.test({
    name: `a download cut short (${tool}) leaves neither a binary nor a temporary file`,
    ignore: tool === "curl" ? !HAS_CURL : !HAS_WGET,
    async fn() {
      await using server = new ReleaseServer();
      await server.release();
      const asset = server.files.get("/pilot-x86_64-unknown-linux-gnu")!;
      asset.sendBytes = Math.floor(asset.body.length / 2);
      await using s = await scratch();
      const r = await install(
        s,
        {
          PILOT_INSTALL_BASE: server.base,
          PILOT_INSTALL_OS: "Linux",
          PILOT_INSTALL_ARCH: "x86_64",
        },
        tool === "wget" ? await pathWithout("curl", s) : undefined,
      );
      assertRefused(
        r,
        /could not download .*pilot-x86_64-unknown-linux-gnu.*nothing was installed/,
      );
      assert.deepEqual(await listing(s.installDir), []);
    },
  });
}

Deno.test({
  name:
    "an install interrupted by Ctrl-C mid-download keeps the old binary and leaves no temporary file",
  ignore: !HAS_CURL || !HAS_SETSID,
  async fn() {
    await using server = new ReleaseServer();
    await server.release("", "1.0.0");
    await using s = await scratch();
    const env = {
      PILOT_INSTALL_BASE: server.base,
      PILOT_INSTALL_OS: "Linux",
      PILOT_INSTALL_ARCH: "x86_64",
    };
    assert.equal((await install(s, env)).code, 0);
    await server.release("", "2.0.0");
    const asset = server.files.get("/pilot-x86_64-unknown-linux-gnu")!;
    asset.sendBytes = 10;
    asset.hold = true;
    // Its own process group, so the signal reaches sh and curl together, as a terminal's would.
    const child = new Deno.Command("setsid", {
      args: ["sh", SCRIPT],
      env: {
        ...env,
        PILOT_INSTALL_DIR: s.installDir,
        PATH: `${s.fakeBin}:${Deno.env.get("PATH")}`,
      },
      clearEnv: true,
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 10_000;
    while (!(await listing(s.installDir)).some((n) => n.startsWith(".pilot.download."))) {
      assert.ok(Date.now() < deadline, "the download never started");
      await new Promise((r) => setTimeout(r, 20));
    }
    Deno.kill(-child.pid, "SIGINT");
    const status = await child.status;
    assert.ok(!status.success);
    assert.deepEqual(await listing(s.installDir), ["pilot"]);
    assert.equal(
      await Deno.readTextFile(`${s.installDir}/pilot`),
      standIn("x86_64-unknown-linux-gnu", "1.0.0"),
    );
  },
});

/** A PATH with every program of /usr/bin and /bin but `name` (and the fake sudo). */
async function pathWithout(name: string, s: Scratch): Promise<string> {
  const bin = `${s.dir}/without-${name}`;
  await Deno.mkdir(bin);
  for (const from of ["/usr/bin", "/bin"]) {
    for await (const e of Deno.readDir(from)) {
      if (e.name === name || e.name === "sudo") continue;
      try {
        await Deno.symlink(`${from}/${e.name}`, `${bin}/${e.name}`);
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      }
    }
  }
  return `${s.fakeBin}:${bin}`;
}

test("rerunning install.sh upgrades by a rename, and a failed upgrade keeps the old binary", async () => {
  await using server = new ReleaseServer();
  await server.release("", "1.0.0");
  await using s = await scratch();
  const env = {
    PILOT_INSTALL_BASE: server.base,
    PILOT_INSTALL_OS: "Linux",
    PILOT_INSTALL_ARCH: "aarch64",
  };
  assert.equal((await install(s, env)).code, 0);
  const pilot = `${s.installDir}/pilot`;
  assert.equal(await Deno.readTextFile(pilot), standIn("aarch64-unknown-linux-gnu", "1.0.0"));
  // A second name for the old file: a rename leaves it whole, an in-place write would not.
  await Deno.link(pilot, `${s.dir}/old-pilot`);

  await server.release("", "2.0.0");
  const up = await install(s, env);
  assert.equal(up.code, 0, up.stdout + up.stderr);
  assert.equal(await Deno.readTextFile(pilot), standIn("aarch64-unknown-linux-gnu", "2.0.0"));
  assert.equal(
    await Deno.readTextFile(`${s.dir}/old-pilot`),
    standIn("aarch64-unknown-linux-gnu", "1.0.0"),
  );

  // 3.0.0 arrives corrupted, then cut short: 2.0.0 stays, untouched.
  await server.release("", "3.0.0");
  const good = server.files.get("/pilot-aarch64-unknown-linux-gnu")!;
  server.files.set("/pilot-aarch64-unknown-linux-gnu", { body: good.body + "tampered\n" });
  assertRefused(await install(s, env), /checksum mismatch/);
  assert.equal(await Deno.readTextFile(pilot), standIn("aarch64-unknown-linux-gnu", "2.0.0"));
  server.files.set("/pilot-aarch64-unknown-linux-gnu", { ...good, sendBytes: 10 });
  assertRefused(await install(s, env), /could not download/);
  assert.equal(await Deno.readTextFile(pilot), standIn("aarch64-unknown-linux-gnu", "2.0.0"));
  assert.deepEqual(await listing(s.installDir), ["pilot"]);
});

test("install.sh takes PILOT_VERSION and PILOT_REPO to a GitHub release folder", async () => {
  await using server = new ReleaseServer();
  await server.release("/pilot-net/pilot/releases/latest/download", "2.0.0");
  await server.release("/acme/pilot-fork/releases/download/v1.2.3", "1.2.3");
  const env = {
    PILOT_GITHUB_URL: server.base,
    PILOT_INSTALL_OS: "Linux",
    PILOT_INSTALL_ARCH: "x86_64",
  };
  await using s = await scratch();
  const latest = await install(s, env);
  assert.equal(latest.code, 0, latest.stdout + latest.stderr);
  assert.match(await Deno.readTextFile(`${s.installDir}/pilot`), /pilot 2\.0\.0/);
  const pinned = await install(s, {
    ...env,
    PILOT_REPO: "acme/pilot-fork",
    PILOT_VERSION: "v1.2.3",
  });
  assert.equal(pinned.code, 0, pinned.stdout + pinned.stderr);
  assert.match(await Deno.readTextFile(`${s.installDir}/pilot`), /pilot 1\.2\.3/);
  assertRefused(
    await install(s, { ...env, PILOT_VERSION: "1.2.3; rm -rf /" }),
    /PILOT_VERSION="1\.2\.3; rm -rf \/" is not a version/,
  );
  assertRefused(await install(s, { ...env, PILOT_REPO: "just-a-name" }), /is not a GitHub owner/);
});

test("install.sh prints how to add the folder to PATH only when it is not there", async () => {
  await using server = new ReleaseServer();
  await server.release();
  await using s = await scratch();
  const env = {
    PILOT_INSTALL_BASE: server.base,
    PILOT_INSTALL_OS: "Linux",
    PILOT_INSTALL_ARCH: "x86_64",
  };
  const off = await install(s, env);
  assert.equal(off.code, 0, off.stderr);
  assert.ok(off.stdout.includes(`export PATH="${s.installDir}:$PATH"`), off.stdout);
  const on = await install(s, env, `${s.fakeBin}:${s.installDir}:${Deno.env.get("PATH")}`);
  assert.equal(on.code, 0, on.stderr);
  assert.ok(!on.stdout.includes("export PATH"), on.stdout);
});

test("install.sh defaults to ~/.pilot/bin and creates ~/.pilot private", async () => {
  await using server = new ReleaseServer();
  await server.release();
  await using s = await scratch();
  const r = await new Deno.Command("sh", {
    args: [SCRIPT],
    env: {
      HOME: s.dir,
      PATH: `${s.fakeBin}:${Deno.env.get("PATH")}`,
      PILOT_INSTALL_BASE: server.base,
      PILOT_INSTALL_OS: "Linux",
      PILOT_INSTALL_ARCH: "x86_64",
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  assert.deepEqual(await listing(`${s.dir}/.pilot/bin`), ["pilot"]);
  // ~/.pilot is the node's home too, which the daemon wants private.
  assert.equal((await Deno.stat(`${s.dir}/.pilot`)).mode! & 0o777, 0o700);
});
