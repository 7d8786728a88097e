/**
 * Running `pilot daemon` at boot: the systemd unit and the launchd property
 * list that `pilot service install` writes, and where they go. Pure text
 * generation, so tests read exactly what would be installed.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { RUNTIME_V8_FLAGS } from "../constants.ts";

/** The unit's name under systemd. */
export const SYSTEMD_UNIT_NAME = "pilot.service";
/** The job's label under launchd (also the plist's file name). */
export const LAUNCHD_LABEL = "net.pilot.daemon";
/** Where launchd sends what the daemon prints before its own log opens. */
export const LAUNCHD_OUTPUT = "launchd.log";

/** Which service manager runs the daemon. */
export type ServiceManager = "systemd" | "launchd";

/** What a unit or plist runs: the program (with any arguments before `daemon`) and the home. */
export interface ServiceOptions {
  /** The program and its leading arguments, e.g. `["/usr/local/bin/pilot"]`. */
  exec: readonly string[];
  /** The node's home, absolute. */
  home: string;
  /** A system-wide service (root) rather than the user's own. */
  system?: boolean;
}

/**
 * How to run this program again: the compiled binary itself, or, run from
 * source, `deno run` with this checkout's `main.ts` and its `deno.json` (a
 * bundle, which has none, runs with `--no-config`) and the V8 flags the
 * binary has baked in ({@linkcode RUNTIME_V8_FLAGS}). `daemon start`
 * re-spawns itself with it too.
 */
export function selfInvocation(): string[] {
  const exec = Deno.execPath();
  if (!/^deno(\.exe)?$/.test(basename(exec))) return [exec];
  const main = fileURLToPath(Deno.mainModule);
  const config = join(dirname(main), "deno.json");
  const configFlags = isFile(config) ? ["--config", config] : ["--no-config"];
  return [
    exec,
    "run",
    "--allow-all",
    "--unstable-net",
    `--v8-flags=${RUNTIME_V8_FLAGS}`,
    ...configFlags,
    main,
  ];
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The command line the service runs: the foreground daemon of `home`. */
export function daemonCommandLine(options: ServiceOptions): string[] {
  return [...options.exec, "daemon", "--home", options.home];
}

/** Quotes one word for systemd's `ExecStart=` (which expands `%` specifiers and `$` variables). */
function systemdWord(word: string): string {
  const escaped = word.replaceAll("\\", "\\\\").replaceAll('"', '\\"')
    .replaceAll("%", "%%").replaceAll("$", "$$$$");
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? escaped : `"${escaped}"`;
}

/**
 * The systemd unit: the foreground daemon, restarted on failure, its stderr
 * going to the journal (`journalctl -u pilot`).
 *
 * @example
 * ```ts
 * import { systemdUnit } from "./service.ts";
 * const unit = systemdUnit({ exec: ["/usr/local/bin/pilot"], home: "/home/ann/.pilot" });
 * console.assert(unit.includes("ExecStart=/usr/local/bin/pilot daemon --home /home/ann/.pilot"));
 * ```
 */
export function systemdUnit(options: ServiceOptions): string {
  const lines = [
    "# Written by `pilot service install`; remove with `pilot service uninstall`.",
    "[Unit]",
    "Description=Pilot node (peer-to-peer overlay for agents)",
    "After=network-online.target",
    "Wants=network-online.target",
    // A daemon that cannot boot stops retrying after 5 tries a minute; `status` shows why.
    "StartLimitIntervalSec=60",
    "StartLimitBurst=5",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${daemonCommandLine(options).map(systemdWord).join(" ")}`,
    "Restart=on-failure",
    "RestartSec=5",
    // The daemon stops cleanly on SIGTERM (control file removed, logs flushed).
    "KillSignal=SIGTERM",
    "TimeoutStopSec=15",
    "NoNewPrivileges=yes",
    // Run from source, deno writes its cache under the user's home: no ProtectHome.
    ...(options.system ? ["PrivateTmp=yes", "ProtectSystem=full"] : []),
    "",
    "[Install]",
    `WantedBy=${options.system ? "multi-user.target" : "default.target"}`,
    "",
  ];
  return lines.join("\n");
}

function xmlText(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/**
 * The launchd property list: the foreground daemon, started at load and
 * restarted when it exits with a failure. The daemon writes its own rotated
 * `daemon.log` (as in the background); launchd's capture of its output holds
 * only what comes before that log opens.
 */
export function launchdPlist(options: ServiceOptions & { label?: string }): string {
  const args = daemonCommandLine(options).map((a) => `    <string>${xmlText(a)}</string>`);
  const output = xmlText(join(options.home, LAUNCHD_OUTPUT));
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" ' +
    '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    '<plist version="1.0">',
    "<dict>",
    "  <key>Label</key>",
    `  <string>${xmlText(options.label ?? LAUNCHD_LABEL)}</string>`,
    "  <key>ProgramArguments</key>",
    "  <array>",
    ...args,
    "  </array>",
    "  <key>EnvironmentVariables</key>",
    "  <dict>",
    "    <key>PILOT_DAEMON_LOG_FILE</key>",
    "    <string>1</string>",
    "  </dict>",
    "  <key>RunAtLoad</key>",
    "  <true/>",
    "  <key>KeepAlive</key>",
    "  <dict>",
    "    <key>SuccessfulExit</key>",
    "    <false/>",
    "  </dict>",
    "  <key>ThrottleInterval</key>",
    "  <integer>5</integer>",
    "  <key>StandardOutPath</key>",
    `  <string>${output}</string>`,
    "  <key>StandardErrorPath</key>",
    `  <string>${output}</string>`,
    "</dict>",
    "</plist>",
    "",
  ].join("\n");
}

/** Where the service file goes, by manager and scope; `dir` replaces the manager's folder. */
export function servicePath(
  manager: ServiceManager,
  options: { system?: boolean; dir?: string; env?: (name: string) => string | undefined } = {},
): string {
  const env = options.env ?? ((n: string) => Deno.env.get(n));
  const file = manager === "systemd" ? SYSTEMD_UNIT_NAME : `${LAUNCHD_LABEL}.plist`;
  if (options.dir !== undefined) return join(options.dir, file);
  if (manager === "systemd") {
    if (options.system) return join("/etc/systemd/system", file);
    const config = env("XDG_CONFIG_HOME") || join(userHome(env), ".config");
    return join(config, "systemd", "user", file);
  }
  if (options.system) return join("/Library/LaunchDaemons", file);
  return join(userHome(env), "Library", "LaunchAgents", file);
}

function userHome(env: (name: string) => string | undefined): string {
  const home = env("HOME");
  if (home === undefined || home === "") {
    throw new TypeError("Cannot place a user service: HOME is not set");
  }
  return home;
}

/** The manager of this platform, or null where neither systemd nor launchd is expected. */
export function platformManager(os: string = Deno.build.os): ServiceManager | null {
  if (os === "linux") return "systemd";
  if (os === "darwin") return "launchd";
  return null;
}
