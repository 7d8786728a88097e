/**
 * `pilot logs`: the background daemon's log (`HOME/daemon.log`, rotated by
 * size), read from the file, so no daemon needs to run.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../../errors.ts";
import { HOME_FILES } from "../../daemon/boot.ts";
import { followLog, lastLogLines } from "../log_file.ts";
import { arr, obj, str } from "../../control/schema.ts";
import { command } from "../command.ts";
import { numberFlag } from "../flags.ts";
import { printLine } from "../output.ts";
import { escapeText } from "../peer_text.ts";

/** Lines shown when `--lines` is not given. */
const DEFAULT_LINES = 50;

/** Log lines quote peer-supplied text (hostnames, reasons): escaped for a terminal. */
function humanLines(lines: string[]): string {
  return lines.map(escapeText).join("\n");
}

const logs = command({
  name: "logs",
  routes: [],
  summary: "print the background daemon's log (HOME/daemon.log); --follow for new lines " +
    "(NDJSON with --json)",
  args: [],
  flags: {
    lines: {
      type: "integer",
      value: "N",
      description: "how many of the last lines to print",
      default: String(DEFAULT_LINES),
      min: 0,
      max: 100_000,
    },
    follow: { type: "boolean", description: "keep printing lines as they are written" },
    timeout: {
      type: "duration",
      description: "how long --follow keeps printing",
      default: "10m",
      unlimited: true,
    },
  },
  // With --follow and --json, each NDJSON line is one such object (its new lines).
  output: obj({ file: str, lines: arr(str) }),
  errors: ["not_found"],
  async run(ctx) {
    const file = join(ctx.home, HOME_FILES.log);
    const { lines, end } = await lastLogLines(file, numberFlag(ctx, "lines"));
    const follow = ctx.flags.follow === true;
    if (!follow) {
      if (lines.length === 0 && !(await exists(file))) {
        throw new PilotError(
          "not_found",
          `No daemon log at "${file}"`,
          "only `pilot daemon start` (and a launchd service) write it; a foreground daemon " +
            "logs to stderr: under systemd see `journalctl --user -u pilot`",
        );
      }
      return { file, lines };
    }
    const print = (batch: string[]) => {
      if (ctx.json) printLine(JSON.stringify({ file, lines: batch }));
      else printLine(humanLines(batch));
    };
    if (lines.length > 0 || ctx.json) print(lines);
    const timeoutMs = numberFlag(ctx, "timeout");
    const stop = new AbortController();
    const timer = timeoutMs > 0 ? setTimeout(() => stop.abort(), timeoutMs) : undefined;
    const onInterrupt = () => stop.abort();
    Deno.addSignalListener("SIGINT", onInterrupt);
    try {
      await followLog(file, print, { signal: stop.signal, from: end });
    } finally {
      clearTimeout(timer);
      Deno.removeSignalListener("SIGINT", onInterrupt);
    }
    return undefined;
  },
  human: (o) => humanLines(o.lines),
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The `logs` command. */
export const LOG_COMMANDS = [logs];
