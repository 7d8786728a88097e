/**
 * `pilot version [--json]` (also `pilot --version`, `pilot -V`): the
 * program's version, which deno.json states once, with the control API
 * version, the build target and the Deno version. With `--check`, and only
 * then, it also asks the release folder install.sh uses whether a newer
 * release is out.
 *
 * @module
 */
import { API_VERSION, RELEASE_CHECK_TIMEOUT_MS, VERSION } from "../../constants.ts";
import { bool, int, obj, str } from "../../control/schema.ts";
import { command, type CommandSpec } from "../command.ts";
import { optionalNumber } from "../flags.ts";
import { formatDuration } from "../parse.ts";
import { checkRelease, compareVersions, parseVersion, UPGRADE_COMMAND } from "../release_check.ts";
import { invalid } from "../../errors.ts";

/** The `version` command. */
export const VERSION_COMMAND: CommandSpec = command({
  name: "version",
  routes: [],
  summary: "show the version, control API version, target and Deno version (also --version, -V)",
  args: [],
  flags: {
    check: {
      type: "boolean",
      description: "also ask the release server whether a newer release is out",
    },
    timeout: {
      type: "duration",
      description: "how long --check waits for the release server",
      defaultWith: { flag: "check", value: formatDuration(RELEASE_CHECK_TIMEOUT_MS) },
      min: 1,
      max: 60_000,
    },
  },
  // latest, newer and base only with --check.
  output: obj(
    { version: str, api_version: int, target: str, deno: str },
    { latest: str, newer: bool, base: str },
  ),
  errors: ["unreachable", "not_found"],
  async run(ctx) {
    const here = {
      version: VERSION,
      api_version: API_VERSION,
      target: Deno.build.target,
      deno: Deno.version.deno,
    };
    const timeoutMs = optionalNumber(ctx, "timeout");
    if (ctx.flags.check !== true) {
      if (timeoutMs !== undefined) {
        throw invalid("--timeout applies only with --check", "add --check, or drop --timeout");
      }
      return here;
    }
    return { ...here, ...await checkRelease(VERSION, { timeoutMs: timeoutMs! }) };
  },
  human: (d) => {
    if (d.latest === undefined) {
      return `pilot ${d.version} (control API ${d.api_version}, ${d.target}, Deno ${d.deno})`;
    }
    if (d.newer) {
      return `pilot ${d.latest} is out (you have ${d.version}): upgrade with \`${UPGRADE_COMMAND}\``;
    }
    // Equal but for build metadata (`+…`) is the same release.
    if (compareVersions(parseVersion(d.latest)!, parseVersion(d.version)!) === 0) {
      return `pilot ${d.version} is the latest release`;
    }
    return `pilot ${d.version} is newer than the latest release, ${d.latest}`;
  },
});
