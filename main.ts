/**
 * `pilot`: daemon and CLI in one program. This file only dispatches.
 *
 * @module
 */
import { runCli } from "./src/cli/run.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
