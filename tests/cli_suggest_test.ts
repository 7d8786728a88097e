/**
 * Usage errors say what was wrong in our words, and suggest the nearest
 * command or flag (issue 12 item 8): never the parser's own text.
 */
import assert from "node:assert/strict";
import { PilotError } from "../src/errors.ts";
import { parseCommandLine } from "../src/cli/parse.ts";
import { COMMANDS } from "../src/cli/table.ts";

function refusal(argv: string[]): PilotError {
  try {
    parseCommandLine(COMMANDS, argv);
  } catch (e) {
    assert.ok(e instanceof PilotError && e.code === "invalid_argument", String(e));
    return e;
  }
  throw new Error(`${argv.join(" ")} parsed`);
}

Deno.test("a mistyped command suggests the nearest one, a group names its subcommands", () => {
  assert.match(refusal(["sned", "x"]).hint, /did you mean `pilot send`\?/);
  assert.match(refusal(["inbx"]).hint, /did you mean `pilot inbox`\?/);
  const group = refusal(["task", "sumbit", "x"]);
  assert.equal(group.message, 'Unknown command "task sumbit"');
  assert.match(group.hint, /did you mean `pilot task submit`\?/);
  assert.match(refusal(["task"]).message, /`pilot task` needs one of: submit, list, /);
  assert.match(refusal(["webhok", "list"]).hint, /`pilot webhook list`/);
  assert.equal(refusal(["zzzz"]).hint, "run `pilot help` to list the commands");
});

Deno.test("a mistyped flag suggests the nearest one; a flag without its value says so", () => {
  const flag = refusal(["send", "x", "--dat", "y"]);
  assert.equal(flag.message, "Unknown flag --dat for `pilot send`");
  assert.match(flag.hint, /did you mean --data\?/);
  assert.equal(refusal(["send", "x", "--data"]).message, "--data needs a value for `pilot send`");
  const short = refusal(["send", "x", "-z"]);
  assert.doesNotMatch(short.message, /ERR_PARSE|TypeError|node:util/);
  assert.match(short.message, /unexpected -z/);
});
