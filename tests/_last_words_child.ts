/**
 * A child process for control_limits_test.ts: writes a control file,
 * installs the daemon's last words, then ends the way `Deno.args[2]` says
 * (`rejection`, `error` or `exit`).
 *
 * @module
 */
import { installLastWords } from "../src/control/last_words.ts";
import { logToFile } from "../src/daemon/log.ts";

const [logPath, controlPath, how] = Deno.args;
if (logPath === undefined || controlPath === undefined) throw new Error("usage: LOG CONTROL HOW");
logToFile(logPath);
Deno.writeTextFileSync(controlPath, "{}\n");
installLastWords(controlPath);
if (how === "rejection") Promise.reject(new Error("boom from a promise"));
else if (how === "error") setTimeout(() => failInTimer(), 0);
else Deno.exit(3);

function failInTimer(): never {
  throw new Error("boom from a timer");
}
