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

async function pilot(node: string, ...args: string[]): Promise<string> {
  console.log(`\n[${node}]$ pilot ${args.join(" ")}`);
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
  console.log("Two nodes, each in its own home; the first start creates an identity.");
  await pilot(
    "worker",
    "daemon",
    "start",
    "--hostname",
    "data-processor-node",
    "--listen",
    "127.0.0.1:0",
  );
  await pilot(
    "orchestrator",
    "daemon",
    "start",
    "--hostname",
    "secure-orchestrator",
    "--listen",
    "127.0.0.1:0",
  );
  const worker = JSON.parse(await pilot("worker", "info", "--json")).data;
  await pilot("orchestrator", "info");
  console.log("\nThe orchestrator opens a Noise_XX session to the worker's UDP endpoint:");
  await pilot("orchestrator", "connect", worker.listen);
  console.log("\nBoth sides now know each other by key, address and hostname:");
  await pilot("orchestrator", "peers");
  await pilot("worker", "peers");
  console.log("\nThe session is reused when the peer is named by its hostname:");
  await pilot("orchestrator", "connect", "data-processor-node");
  console.log("\nNeither trusts the other yet: only port 444 (the trust handshake) is reachable.");
} finally {
  for (const node of Object.keys(homes)) {
    await pilot(node, "daemon", "stop").catch(() => {});
    await Deno.remove(homes[node]!, { recursive: true }).catch(() => {});
  }
}
