/**
 * The README's `alias pilot=…` lines, run as written (with `$PWD` the
 * checkout) from another directory: each prints this version. The Node.js
 * one runs where `npx` exists (CI installs Deno through it, so it does).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { VERSION } from "../src/constants.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const README = await Deno.readTextFile(`${ROOT}/README.md`);
const ALIASES = [...README.matchAll(/^alias pilot="([^"]+)"$/gm)].map((m) => m[1]!);

function onPath(program: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((dir) => {
    try {
      return Deno.statSync(`${dir}/${program}`).isFile;
    } catch {
      return false;
    }
  });
}

Deno.test("the README gives an alias for a machine with only Node.js and one with Deno", () => {
  assert.equal(ALIASES.length, 2, ALIASES.join("\n"));
  assert.ok(ALIASES[0]!.startsWith("npx -y deno@2.9.6 run -A "), ALIASES[0]);
  assert.ok(ALIASES[1]!.startsWith("deno run -A "), ALIASES[1]);
});

for (const alias of ALIASES) {
  const program = alias.split(" ")[0]!;
  Deno.test({
    name: `\`${alias}\` runs pilot from another directory` +
      (onPath(program) ? "" : ` (skipped: no ${program} on PATH)`),
    ignore: !onPath(program),
  }, async () => {
    const [exec, ...args] = alias.replaceAll("$PWD", ROOT).split(" ");
    const out = await new Deno.Command(exec!, {
      args: [...args, "version", "--json"],
      cwd: "/",
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
    assert.equal(JSON.parse(text).data.version, VERSION);
  });
}
