/**
 * `deno task demo`: two nodes on loopback, driven through the real `pilot`
 * CLI exactly as a user types it, each command printed with its output.
 * Everything runs in temporary homes that are removed at the end.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const homes: Record<string, string> = {};

/** Quotes an argument the way a user would type it in a POSIX shell. */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

async function pilot(node: string, ...args: string[]): Promise<string> {
  console.log(`\n[${node}]$ pilot ${args.map(shellQuote).join(" ")}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--config",
      join(root, "deno.json"),
      join(root, "main.ts"),
      ...args,
    ],
    env: { PILOT_HOME: homes[node]! },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trimEnd();
  const err = new TextDecoder().decode(out.stderr).trimEnd();
  if (text) console.log(text);
  if (err) console.log(err.split("\n").map((l) => `  (stderr) ${l}`).join("\n"));
  if (!out.success) throw new Error(`pilot ${args[0]} failed with exit code ${out.code}`);
  return text;
}

try {
  for (const node of ["orchestrator", "worker"]) {
    homes[node] = await Deno.makeTempDir({ prefix: `pilot-demo-${node}-` });
  }
  console.log("Two nodes on loopback, each in its own home; a first start creates an identity.");
  await pilot(
    "worker",
    "daemon",
    "start",
    "--hostname",
    "data-processor-node",
    "--listen",
    "127.0.0.1:0",
  );
  const worker = JSON.parse(await pilot("worker", "info", "--json")).data;
  await pilot(
    "orchestrator",
    "daemon",
    "start",
    "--hostname",
    "secure-orchestrator",
    "--listen",
    "127.0.0.1:0",
    "--peer",
    `data-processor-node=${worker.listen}`,
  );
  console.log("\nThe orchestrator asks the worker to trust it (a signed request to port 444):");
  await pilot(
    "orchestrator",
    "handshake",
    "data-processor-node",
    "--reason",
    "I schedule the nightly decrypt jobs",
  );
  console.log("\nThe worker sees the request, compares the fingerprint, and approves:");
  await pilot("worker", "pending");
  await pilot("worker", "approve", "secure-orchestrator");
  await pilot("orchestrator", "trust");
  console.log("\nNow the orchestrator can send; the receipt means the worker stored it durably:");
  await pilot(
    "orchestrator",
    "send-message",
    "data-processor-node",
    "--data",
    '{"command":"decrypt_payload"}',
    "--type",
    "json",
  );
  await pilot("worker", "inbox");
  await pilot("worker", "peers");
} finally {
  for (const node of Object.keys(homes)) {
    await pilot(node, "daemon", "stop").catch(() => {});
    await Deno.remove(homes[node]!, { recursive: true }).catch(() => {});
  }
}
