/**
 * Shell completion: scripts generated from the command table, and the peer
 * names they ask a running daemon for.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../src/cli/table.ts";
import { bashScript, fishScript, zshScript } from "../src/cli/completion.ts";
import { makeHome, PAIR_B_NAME, runPilot, startNode, trustEntry } from "./_daemon_harness.ts";

function installed(shell: string): boolean {
  try {
    return new Deno.Command(shell, { args: ["-c", "exit 0"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

async function syntaxCheck(shell: string, script: string): Promise<void> {
  const path = await Deno.makeTempFile({ prefix: "pilot-completion-" });
  try {
    await Deno.writeTextFile(path, script);
    const out = await new Deno.Command(shell, { args: ["-n", path], stderr: "piped" }).output();
    assert.equal(out.code, 0, `${shell} -n: ${new TextDecoder().decode(out.stderr)}`);
  } finally {
    await Deno.remove(path);
  }
}

/** Completions bash offers for the words of `line` (the last one being completed). */
async function complete(script: string, line: string[], pilot: string): Promise<string[]> {
  const words = ["pilot", ...line];
  const program = [
    script,
    // The daemon lookup runs this test's own `pilot` wrapper.
    `pilot() { ${pilot} "$@"; }`,
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})`,
    `COMP_CWORD=${words.length - 1}`,
    "_pilot",
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join("\n");
  const out = await new Deno.Command("bash", { args: ["-c", program], stderr: "piped" }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).split("\n").filter((w) => w !== "").sort();
}

Deno.test("the bash script passes bash -n and names every command, alias and flag", async () => {
  const script = bashScript(COMMANDS);
  await syntaxCheck("bash", script);
  for (const c of COMMANDS) {
    for (const name of [c.name, ...(c.aliases ?? [])]) {
      for (const word of name.split(" ")) assert.ok(script.includes(word), word);
      assert.ok(script.includes(`'${name}')`), `flags of "${name}"`);
    }
    for (const flag of Object.keys(c.flags)) assert.ok(script.includes(`--${flag}`), flag);
  }
  for (const flag of ["--json", "--home"]) assert.ok(script.includes(flag), flag);
});

Deno.test("bash completes command words, sub-commands and a command's flags", async () => {
  const script = bashScript(COMMANDS);
  const none = "false";
  assert.deepEqual(await complete(script, ["sta"], none), ["status"]);
  assert.deepEqual(await complete(script, ["task", "sub"], none), ["submit"]);
  assert.ok((await complete(script, ["daemon", ""], none)).includes("start"));
  assert.deepEqual(await complete(script, ["events", "--fol"], none), ["--follow"]);
  assert.deepEqual(await complete(script, ["--home", "/tmp", "task", "submit", "--ti"], none), [
    "--timeout",
  ]);
  assert.deepEqual(await complete(script, ["completion", "z"], none), ["zsh"]);
});

Deno.test("the zsh and fish scripts name every command", async (t) => {
  for (const [shell, script] of [["zsh", zshScript(COMMANDS)], ["fish", fishScript(COMMANDS)]]) {
    for (const c of COMMANDS) {
      // zsh: the flags of each command by its full name; fish: each word offered with -a.
      const words = shell === "zsh" ? [`'${c.name}')`] : c.name.split(" ").map((w) => `-a '${w}'`);
      for (const w of words) assert.ok(script!.includes(w), `${shell}: ${w}`);
    }
    await t.step({
      name: `${shell} -n accepts it (ignored where ${shell} is not installed)`,
      ignore: !installed(shell!),
      fn: () => syntaxCheck(shell!, script!),
    });
  }
});

Deno.test("pilot completion peers prints a trusted peer's hostname from the daemon, and nothing without one", async () => {
  const node = await startNode({
    identity: 0,
    trust: [trustEntry(1, { hostname: PAIR_B_NAME, mutual: true })],
    args: ["--peer", "lab-box=127.0.0.1:9"],
  });
  const idle = await makeHome();
  try {
    const names = await node.pilot("completion", "peers");
    assert.equal(names.code, 0, names.stderr);
    assert.deepEqual(names.stdout.trimEnd().split("\n"), ["data-processor-node", "lab-box"]);
    // bash asks the same command, with the --home typed on the line.
    const pilot = `${Deno.execPath()} run -A --config ${
      new URL("../deno.json", import.meta.url).pathname
    } ${new URL("../main.ts", import.meta.url).pathname}`;
    assert.deepEqual(
      await complete(bashScript(COMMANDS), ["--home", node.home, "send", "data"], pilot),
      ["data-processor-node"],
    );

    const none = await runPilot(["completion", "peers"], { home: idle });
    assert.deepEqual([none.code, none.stdout, none.stderr], [0, "", ""]);
    const json = await runPilot(["completion", "peers", "--json"], { home: idle });
    assert.deepEqual(json.json, { status: "ok", data: { names: [] } });
  } finally {
    await node.stop();
    await Deno.remove(idle, { recursive: true });
  }
});

Deno.test("pilot completion refuses an unknown shell with exit code 2", async () => {
  const r = await runPilot(["completion", "tcsh", "--json"]);
  assert.equal(r.code, 2, r.stdout);
  assert.equal(r.json.code, "invalid_argument");
});
