/**
 * compile.sh proves what it built: a host-target binary counts as built only
 * when it runs as this version of Pilot (`--version`, `help --json`). Checked
 * with stand-ins for the binary, and end to end with `DENORT_BIN` naming a
 * plain `deno`, which gives a file that is only Deno.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import denoJson from "../deno.json" with { type: "json" };
import { tempDir } from "./_tmp.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** Runs `bash compile.sh ARGS` with this Deno; returns its exit code and stderr. */
async function compileSh(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command("bash", {
    args: [join(ROOT, "compile.sh"), ...args],
    env: { DENO: Deno.execPath(), NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/** Writes an executable shell script `name` into `dir`. */
async function script(dir: string, name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("compile.sh --verify accepts a program that runs as this version of Pilot", async () => {
  await using dir = await tempDir("pilot-compile-");
  const pilot = await script(
    dir.path,
    "pilot",
    `exec "${Deno.execPath()}" run -A --config "${join(ROOT, "deno.json")}" "${
      join(ROOT, "main.ts")
    }" "$@"`,
  );
  const r = await compileSh(["--verify", pilot]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`runs: pilot ${denoJson.version.replaceAll(".", "\\.")} \\(`));
});

Deno.test("compile.sh --verify refuses plain Deno and a program that only claims the version", async () => {
  await using dir = await tempDir("pilot-compile-");
  const deno = await script(dir.path, "deno", `exec "${Deno.execPath()}" "$@"`);
  const plain = await compileSh(["--verify", deno]);
  assert.equal(plain.code, 1);
  assert.match(plain.stderr, /is not Pilot .*`--version` printed "deno /);

  // The right version line, but `help --json` is no catalog of Pilot.
  const claims = await script(
    dir.path,
    "claims",
    `[ "$1" = --version ] && { echo "pilot ${denoJson.version} (control API 1)"; exit 0; }\n` +
      `echo '{"status":"ok","data":{"version":"${denoJson.version}","commands":[]}}'`,
  );
  const claimed = await compileSh(["--verify", claims]);
  assert.equal(claimed.code, 1);
  assert.match(claimed.stderr, /`help --json` printed no catalog/);

  const failing = await script(dir.path, "failing", "exit 3");
  assert.equal((await compileSh(["--verify", failing])).code, 1);
});

Deno.test("compile.sh with DENORT_BIN naming plain deno fails and leaves no binary", async () => {
  await using dir = await tempDir("pilot-compile-");
  const r = await compileSh([], { DENORT_BIN: Deno.execPath(), OUT_DIR: dir.path });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /is not Pilot .*`--version` printed "deno /);
  assert.doesNotMatch(r.stderr, /compile\.sh: built /);
  const left = [];
  for await (const e of Deno.readDir(dir.path)) if (e.name.startsWith("pilot-")) left.push(e.name);
  assert.deepEqual(left, []);
});
