/**
 * Runs a writer script (tests/_kill9_*.ts) in its own process and kills it
 * with SIGKILL a chosen delay after its first lines: the durability tests'
 * way to crash a writer mid-append.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/**
 * Runs `tests/<writer>` with `args` until killed `delayMs` after its first 20
 * lines; returns the lines it completed (one cut short by the kill never was).
 */
export async function runWriterUntilKilled(
  writer: string,
  args: string[],
  delayMs: number,
): Promise<string[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", join(ROOT, "tests", writer), ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decoder = new TextDecoder();
  let text = "";
  let killed = false;
  const stderr = new Response(child.stderr).text();
  try {
    for await (const chunk of child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      if (!killed && text.split("\n").length > 20) {
        killed = true;
        setTimeout(() => child.kill("SIGKILL"), delayMs);
      }
    }
  } finally {
    if (!killed) child.kill("SIGKILL");
    const status = await child.status;
    const err = await stderr;
    assert.equal(status.signal, "SIGKILL", `the writer died on its own: ${err}`);
  }
  return text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter((l) => l !== "");
}
