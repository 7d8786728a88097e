/**
 * The version is written once, in deno.json, and `pilot version`,
 * `pilot --version` and `pilot -V` print it with the control API version, the
 * build target and the Deno version.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import denoJson from "../deno.json" with { type: "json" };
import { API_VERSION } from "../src/constants.ts";
import { runPilot } from "./_daemon_harness.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

Deno.test("pilot version --json prints deno.json's version, the API version, target and Deno version", async () => {
  const r = await runPilot(["version", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.json, {
    status: "ok",
    data: {
      version: denoJson.version,
      api_version: API_VERSION,
      target: Deno.build.target,
      deno: Deno.version.deno,
    },
  });
});

Deno.test("pilot --version and -V print the version line, alone or with --home and --json", async () => {
  const line = `pilot ${denoJson.version} (control API ${API_VERSION}, ${Deno.build.target}, ` +
    `Deno ${Deno.version.deno})\n`;
  for (const args of [["--version"], ["-V"], ["version"], ["--home", ROOT, "--version"]]) {
    const r = await runPilot(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, line, args.join(" "));
  }
  const json = await runPilot(["--json", "-V"]);
  assert.equal(json.json?.data?.version, denoJson.version);
  // --version is no flag of other commands.
  const misuse = await runPilot(["info", "--version", "--json"]);
  assert.equal(misuse.code, 2);
  assert.equal(misuse.json?.code, "invalid_argument");
});

Deno.test("no source file states the version: it is read from deno.json", async () => {
  assert.match(denoJson.version, /^\d+\.\d+\.\d+/);
  const quoted = new RegExp(`["'\`]${denoJson.version.replaceAll(".", "\\.")}["'\`]`);
  const stating: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) await walk(path);
      else if (/\.ts$/.test(e.name) && quoted.test(await Deno.readTextFile(path))) {
        stating.push(relative(ROOT, path));
      }
    }
  };
  await walk(join(ROOT, "src"));
  if (quoted.test(await Deno.readTextFile(join(ROOT, "main.ts")))) stating.push("main.ts");
  assert.deepEqual(stating, [], "these files state the version instead of reading deno.json");
});
