/**
 * `pilot version [--json]` (also `pilot --version`, `pilot -V`): the
 * program's version, which deno.json states once, with the control API
 * version, the build target and the Deno version it runs on.
 *
 * @module
 */
import { API_VERSION, VERSION } from "../../constants.ts";
import { int, obj, str } from "../../control/schema.ts";
import { command, type CommandSpec } from "../command.ts";

/** The `version` command. */
export const VERSION_COMMAND: CommandSpec = command({
  name: "version",
  routes: [],
  summary: "show the version, control API version, target and Deno version (also --version, -V)",
  args: [],
  flags: {},
  output: obj({ version: str, api_version: int, target: str, deno: str }),
  errors: [],
  run: () =>
    Promise.resolve({
      version: VERSION,
      api_version: API_VERSION,
      target: Deno.build.target,
      deno: Deno.version.deno,
    }),
  human: (d) => `pilot ${d.version} (control API ${d.api_version}, ${d.target}, Deno ${d.deno})`,
});
