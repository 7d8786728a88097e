/**
 * The stdlib-only Python worker of docs/API.md (`examples/task_worker.py`)
 * against a real daemon: it takes the tasks given to its node, runs them and
 * posts the results, which the submitter's `task wait` returns. Skipped, with
 * the reason printed, where python3 is not installed.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { establishTrust, PAIR_B_NAME, startPair } from "./_daemon_harness.ts";

const WORKER = fileURLToPath(new URL("../examples/task_worker.py", import.meta.url));

async function python3(): Promise<string | null> {
  try {
    const r = await new Deno.Command("python3", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return r.success ? "python3" : null;
  } catch {
    return null;
  }
}

const python = await python3();

Deno.test({
  name: "the Python worker example takes a text and a JSON task and posts their results",
  ignore: python === null,
  async fn() {
    await using pair = await startPair();
    const { a, b } = pair;
    await establishTrust(a, b, PAIR_B_NAME);
    for (const [id, type, data] of [["py-1", "text", "hello"], ["py-2", "json", '{"b":1,"a":2}']]) {
      const s = await a.pilot(
        "task",
        "submit",
        PAIR_B_NAME,
        "--data",
        data!,
        "--type",
        type!,
        "--id",
        id!,
        "--json",
      );
      assert.equal(s.code, 0, s.stdout + s.stderr);
      const run = await new Deno.Command(python!, {
        args: [WORKER, "--home", b.home, "--once"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const out = new TextDecoder().decode(run.stdout);
      assert.ok(run.success, out + new TextDecoder().decode(run.stderr));
      assert.match(out, new RegExp(`task ${id} from ${a.identity!.address}: done`));
    }
    const text = await a.pilot("task", "wait", "py-1", "--timeout", "10s", "--json");
    assert.equal(text.json.data.result.data, "HELLO", text.stdout);
    const json = await a.pilot("task", "wait", "py-2", "--timeout", "10s", "--json");
    assert.deepEqual(JSON.parse(json.json.data.result.data), { keys: ["a", "b"] });
  },
});

if (python === null) {
  console.log("task_worker_example_test: skipped: python3 is not installed here");
}
