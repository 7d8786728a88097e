/**
 * `pilot service install|uninstall|status`: run this home's daemon at boot,
 * as a systemd unit (Linux) or a launchd job (macOS), in the foreground with
 * restart on failure. Whatever fails on the way is undone: a failed install
 * leaves the previous file (or none) and the manager as they were.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { invalid, PilotError } from "../../errors.ts";
import { ensureHome, writeFileAtomic } from "../../daemon/boot.ts";
import { arr, bool, int, nullable, obj, oneOf, str } from "../../control/schema.ts";
import { command, type CommandContext, type FlagSpec } from "../command.ts";
import { keyValues } from "../output.ts";
import { escapeText } from "../peer_text.ts";
import {
  LAUNCHD_LABEL,
  launchdPlist,
  platformManager,
  selfInvocation,
  type ServiceManager,
  servicePath,
  SYSTEMD_UNIT_NAME,
  systemdUnit,
} from "../service.ts";

/** How long one systemctl/launchctl call may take. */
const TOOL_TIMEOUT_MS = 15_000;
/** How long `install` watches a freshly started daemon for a failure at boot. */
const BOOT_WATCH_MS = 3_000;

const SCOPE_FLAGS: Record<string, FlagSpec> = {
  system: {
    type: "boolean",
    description: "a system-wide service run as root (needs root), not the user's own",
  },
  dir: {
    type: "string",
    value: "DIR",
    description: "put the service file in DIR and leave the service manager alone " +
      "(packaging, tests)",
  },
};

interface Target {
  manager: ServiceManager;
  system: boolean;
  path: string;
  /** Whether systemctl/launchctl is to be asked (not with --dir). */
  managed: boolean;
}

function target(ctx: CommandContext): Target {
  const manager = platformManager();
  if (manager === null) {
    throw invalid(
      `No service manager on ${Deno.build.os}: pilot installs systemd units and launchd jobs`,
      "run `pilot daemon start` from your system's own start-up mechanism",
    );
  }
  const system = ctx.flags.system === true;
  const dir = typeof ctx.flags.dir === "string" ? resolve(ctx.flags.dir) : undefined;
  return {
    manager,
    system,
    path: servicePath(manager, { system, ...(dir !== undefined ? { dir } : {}) }),
    managed: dir === undefined,
  };
}

interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a service manager's tool; null when it is not installed. */
async function tool(program: string, args: string[]): Promise<ToolResult | null> {
  try {
    const out = await new Deno.Command(program, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(TOOL_TIMEOUT_MS),
    }).output();
    const d = new TextDecoder();
    return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

function systemctl(t: Target, ...args: string[]): Promise<ToolResult | null> {
  return tool("systemctl", [...(t.system ? [] : ["--user"]), ...args]);
}

function firstLine(r: ToolResult): string {
  return (r.stderr.trim() || r.stdout.trim()).split("\n")[0] ?? "";
}

/** The command that enables the installed file by hand. */
function enableCommand(t: Target): string {
  if (t.manager === "launchd") return `launchctl load -w ${t.path}`;
  return `systemctl ${t.system ? "" : "--user "}daemon-reload && ` +
    `systemctl ${t.system ? "" : "--user "}enable --now ${SYSTEMD_UNIT_NAME}`;
}

function journalHint(t: Target): string {
  return t.manager === "launchd"
    ? `see \`pilot logs\` and ${dirname(t.path)}`
    : `see \`journalctl ${t.system ? "" : "--user "}-u ${SYSTEMD_UNIT_NAME}\``;
}

interface UnitState {
  enabled: boolean;
  active: boolean;
  state: string;
  exit_code: number | null;
}

async function systemdState(t: Target): Promise<UnitState | null> {
  const r = await systemctl(
    t,
    "show",
    SYSTEMD_UNIT_NAME,
    "--property=UnitFileState,ActiveState,SubState,ExecMainStatus,ExecMainCode",
  );
  if (r === null || r.code !== 0) return null;
  const p = Object.fromEntries(
    r.stdout.trim().split("\n").map((
      l,
    ) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  const exited = p.ExecMainCode !== undefined && p.ExecMainCode !== "0";
  return {
    enabled: p.UnitFileState === "enabled",
    active: p.ActiveState === "active" && p.SubState === "running",
    state: `${p.ActiveState ?? "unknown"} (${p.SubState ?? "unknown"})`,
    exit_code: exited && p.ExecMainStatus !== undefined ? Number(p.ExecMainStatus) : null,
  };
}

async function launchdState(): Promise<UnitState | null> {
  const r = await tool("launchctl", ["list", LAUNCHD_LABEL]);
  if (r === null) return null;
  if (r.code !== 0) return { enabled: false, active: false, state: "not loaded", exit_code: null };
  const pid = /"PID" = (\d+);/.exec(r.stdout);
  const last = /"LastExitStatus" = (-?\d+);/.exec(r.stdout);
  return {
    enabled: true,
    active: pid !== null,
    state: pid !== null ? "running" : "loaded (not running)",
    exit_code: last !== null && last[1] !== "0" ? Number(last[1]) : null,
  };
}

function managerState(t: Target): Promise<UnitState | null> {
  return t.manager === "systemd" ? systemdState(t) : launchdState();
}

/** The service's last log lines, from the journal (systemd) or `daemon.log`'s capture (launchd). */
async function lastLines(t: Target, n: number): Promise<string[]> {
  if (t.manager !== "systemd") return [];
  const r = await tool("journalctl", [
    ...(t.system ? [] : ["--user"]),
    "-u",
    SYSTEMD_UNIT_NAME,
    "-n",
    String(n),
    "--no-pager",
    "-o",
    "cat",
  ]);
  if (r === null || r.code !== 0) return [];
  return r.stdout.trimEnd().split("\n").filter((l) => l !== "");
}

async function readIfExists(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Puts the previous file back (or removes the new one): what a failed install leaves. */
async function restore(t: Target, previous: string | null): Promise<void> {
  if (previous === null) await Deno.remove(t.path).catch(() => {});
  else await writeFileAtomic(t.path, previous, 0o644);
  if (t.managed && t.manager === "systemd") await systemctl(t, "daemon-reload");
}

/** The home must exist and be writable, or the daemon would fail at every boot. */
async function checkHome(home: string): Promise<void> {
  try {
    await ensureHome(home);
  } catch (e) {
    const why = (e as Error).message.split("\n")[0];
    throw invalid(
      e instanceof PilotError ? why! : `Cannot write in home "${home}": ${why}`,
      "give a --home DIR the service's user can create and write",
    );
  }
}

async function execOf(ctx: CommandContext): Promise<string[]> {
  if (typeof ctx.flags.exec !== "string") return selfInvocation();
  const path = resolve(ctx.flags.exec);
  const info = await Deno.stat(path).catch(() => null);
  if (info === null || !info.isFile) {
    throw invalid(`No program at --exec "${path}"`, "give the path of the pilot binary");
  }
  return [path];
}

async function enable(t: Target, changed: boolean): Promise<ToolResult | null> {
  if (t.manager === "launchd") {
    if (changed) await tool("launchctl", ["unload", t.path]);
    return tool("launchctl", ["load", "-w", t.path]);
  }
  const reload = await systemctl(t, "daemon-reload");
  if (reload === null || reload.code !== 0) return reload;
  const r = await systemctl(t, "enable", SYSTEMD_UNIT_NAME);
  if (r === null || r.code !== 0) return r;
  // A changed unit replaces the running daemon; an unchanged one keeps it.
  return systemctl(t, changed ? "restart" : "start", SYSTEMD_UNIT_NAME);
}

async function disable(t: Target): Promise<void> {
  if (t.manager === "launchd") await tool("launchctl", ["unload", "-w", t.path]);
  else await systemctl(t, "disable", "--now", SYSTEMD_UNIT_NAME);
}

/** Watches a started service briefly; throws, with its exit code and last lines, if it fails. */
async function watchBoot(t: Target): Promise<void> {
  const deadline = Date.now() + BOOT_WATCH_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const s = await managerState(t);
    if (s === null) return;
    const failing = t.manager === "systemd"
      ? /^(failed|activating \(auto-restart\))/.test(s.state)
      : !s.active && s.exit_code !== null;
    if (!failing) continue;
    const last = (await lastLines(t, 3)).join(" | ");
    throw new PilotError(
      "internal",
      `The daemon failed at boot (${s.state}, exit code ${s.exit_code ?? "unknown"})` +
        (last ? `: ${last}` : ""),
      `nothing was left installed; ${journalHint(t)}, fix it and install again`,
    );
  }
}

const install = command({
  name: "service install",
  routes: [],
  summary: "run this home's daemon at boot: a systemd unit (Linux) or launchd job (macOS), " +
    "restarted on failure",
  args: [],
  flags: {
    ...SCOPE_FLAGS,
    exec: {
      type: "string",
      value: "PATH",
      description: "the pilot program the service runs (default: this one; run from source, " +
        "deno with this checkout's main.ts)",
    },
    "no-enable": {
      type: "boolean",
      description: "only write the file; do not enable or start it",
    },
    force: { type: "boolean", description: "replace a different service file already there" },
  },
  output: obj({
    path: str,
    manager: oneOf("systemd", "launchd"),
    scope: oneOf("user", "system"),
    exec: arr(str),
    changed: bool,
    enabled: bool,
    enable_command: nullable(str),
  }),
  errors: ["conflict"],
  async run(ctx) {
    const t = target(ctx);
    // With --dir (packaging) the file is only written, so root is not needed.
    if (t.system && t.managed && Deno.uid() !== 0) {
      throw invalid(
        "--system installs a system-wide service, which needs root",
        "run it with sudo, or leave out --system for a user service",
      );
    }
    const home = resolve(ctx.home);
    await checkHome(home);
    const exec = await execOf(ctx);
    const options = { exec, home, system: t.system };
    const text = t.manager === "systemd" ? systemdUnit(options) : launchdPlist(options);
    const previous = await readIfExists(t.path);
    if (previous !== null && previous !== text && ctx.flags.force !== true) {
      throw new PilotError(
        "conflict",
        `A different pilot service is already installed at "${t.path}"`,
        "run `pilot service uninstall` first, or give --force to replace it",
      );
    }
    const changed = previous !== text;
    if (changed) {
      try {
        await Deno.mkdir(dirname(t.path), { recursive: true });
        await writeFileAtomic(t.path, text, 0o644);
      } catch (e) {
        throw invalid(
          `Cannot write "${t.path}": ${(e as Error).message.split("\n")[0]}`,
          t.system ? "run it as root" : "check the folder's permissions, or give --dir DIR",
        );
      }
    }
    const result = {
      path: t.path,
      manager: t.manager,
      scope: t.system ? "system" as const : "user" as const,
      exec,
      changed,
      enabled: false,
      enable_command: enableCommand(t) as string | null,
    };
    if (!t.managed || ctx.flags["no-enable"] === true) return result;
    let r: ToolResult | null;
    try {
      r = await enable(t, changed);
      if (r !== null && r.code === 0) await watchBoot(t);
    } catch (e) {
      await disable(t);
      await restore(t, changed ? previous : null);
      throw e;
    }
    if (r === null) {
      ctx.progress(
        `${t.manager === "systemd" ? "systemctl" : "launchctl"} not found: ` +
          `enable it by hand: ${result.enable_command}`,
      );
      return result;
    }
    if (r.code !== 0) {
      await disable(t);
      await restore(t, changed ? previous : null);
      throw new PilotError(
        "internal",
        `Enabling the service failed (exit code ${r.code}): ${firstLine(r)}`,
        `nothing was left installed; ${
          t.system ? "" : "a user service needs a user session (loginctl enable-linger $USER); "
        }${journalHint(t)}`,
      );
    }
    return { ...result, enabled: true, enable_command: null };
  },
  human: (o) =>
    keyValues([
      ["service", `${o.changed ? "installed" : "already installed"} (${o.manager}, ${o.scope})`],
      ["file", o.path],
      ["runs", o.exec.join(" ")],
      ["enabled", o.enabled ? "yes, started" : `no; to enable: ${o.enable_command}`],
    ]),
});

const uninstall = command({
  name: "service uninstall",
  routes: [],
  summary: "stop and disable the boot service and remove its file",
  args: [],
  flags: SCOPE_FLAGS,
  output: obj({ path: str, changed: bool }),
  errors: [],
  async run(ctx) {
    const t = target(ctx);
    if ((await readIfExists(t.path)) === null) return { path: t.path, changed: false };
    if (t.managed) await disable(t);
    try {
      await Deno.remove(t.path);
    } catch (e) {
      throw invalid(
        `Cannot remove "${t.path}": ${(e as Error).message.split("\n")[0]}`,
        t.system ? "run it as root" : "check the folder's permissions",
      );
    }
    if (t.managed && t.manager === "systemd") await systemctl(t, "daemon-reload");
    return { path: t.path, changed: true };
  },
  human: (o) => o.changed ? `service removed (${o.path})` : `no service installed (${o.path})`,
});

const status = command({
  name: "service status",
  routes: [],
  summary: "tell whether the boot service is installed, enabled and running, and why it failed",
  args: [],
  flags: SCOPE_FLAGS,
  output: obj({
    installed: bool,
    path: str,
    manager: oneOf("systemd", "launchd"),
    // null: the service manager was not asked (--dir) or is not there.
    enabled: nullable(bool),
    active: nullable(bool),
    state: nullable(str),
    exit_code: nullable(int),
    last_lines: arr(str),
    unit_text: nullable(str),
  }),
  errors: [],
  async run(ctx) {
    const t = target(ctx);
    const text = await readIfExists(t.path);
    const s = text !== null && t.managed ? await managerState(t) : null;
    const failed = s !== null && !s.active;
    return {
      installed: text !== null,
      path: t.path,
      manager: t.manager,
      enabled: s?.enabled ?? null,
      active: s?.active ?? null,
      state: s?.state ?? null,
      exit_code: s?.exit_code ?? null,
      last_lines: failed ? await lastLines(t, 5) : [],
      unit_text: text,
    };
  },
  human: (o) => {
    if (!o.installed) return `service: not installed (${o.path})`;
    return keyValues([
      ["service", `installed (${o.manager})`],
      ["file", o.path],
      ["enabled", o.enabled === null ? "unknown" : o.enabled ? "yes" : "no"],
      ["state", o.state ?? "unknown"],
      ...(o.exit_code !== null ? [["exit code", o.exit_code] as [string, unknown]] : []),
      ...o.last_lines.map((l) => ["log", escapeText(l)] as [string, unknown]),
    ]);
  },
});

/** The service commands. */
export const SERVICE_COMMANDS = [install, uninstall, status];
