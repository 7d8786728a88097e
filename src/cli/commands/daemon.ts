/**
 * `pilot daemon` (foreground) and `pilot daemon start|stop|status`.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../../errors.ts";
import { readControlFile } from "../../control/client.ts";
import { PilotClient } from "../../client/mod.ts";
import { selfInvocation } from "../service.ts";
import { LOG_TO_FILE_ENV, runDaemon } from "../../control/run_daemon.ts";
import {
  ensureHome,
  HOME_FILES,
  isHomeLocked,
  loadConfig,
  loadOrCreateIdentity,
  LOG_LEVELS,
} from "../../daemon/boot.ts";
import type { ConfigFlags } from "../../daemon/boot.ts";
import { command, type CommandContext, type CommandSpec, type FlagSpec } from "../command.ts";
import { arr, bool, type Infer, int, nullable, obj, record, str } from "../../control/schema.ts";
import { INFO, SHUTDOWN } from "../../control/contract/diagnostics.ts";
import { RENDEZVOUS_STATUS } from "../../control/contract/rendezvous.ts";
import { numberFlag } from "../flags.ts";
import { keyValues } from "../output.ts";

const NODE_FLAGS: Record<string, FlagSpec> = {
  listen: {
    type: "string",
    value: "IP:PORT",
    description: "UDP address to listen on (default 0.0.0.0:7440; port 0 = any)",
  },
  hostname: {
    type: "string",
    value: "NAME",
    description: "hostname this node claims in its signed self-description",
  },
  peer: {
    type: "string",
    value: "NAME=ENDPOINT",
    multiple: true,
    description: "static peer name and where to reach it",
  },
  "auto-approve": {
    type: "string",
    value: "KEY",
    multiple: true,
    description: "approve this peer's trust requests at once (key, fingerprint or address)",
  },
  disable: {
    type: "string",
    value: "SERVICE",
    multiple: true,
    description: "turn a built-in service off (echo, messages, pubsub, tasks)",
  },
  stealth: {
    type: "boolean",
    description: "answer only initiators that already know this node's key (mac1)",
  },
  rendezvous: {
    type: "string",
    value: "KEY@HOST:PORT",
    multiple: true,
    description: "publish this node's signed record at this rendezvous and look names up there",
  },
  public: {
    type: "boolean",
    description: "publish this node's endpoints to anyone who looks it up (private by default)",
  },
  "no-lan": {
    type: "boolean",
    description: "neither announce this node on its LAN nor hear announcements (on by default)",
  },
  dht: {
    type: "boolean",
    description: "publish this node's signed record in the Mainline DHT and look names up there",
  },
  "allow-remote-webhooks": {
    type: "boolean",
    description: "let webhooks POST events off this machine (loopback URLs only by default)",
  },
  "log-level": {
    type: "string",
    value: "LEVEL",
    description: `lowest level the log writes: ${LOG_LEVELS.join(", ")} (default info)`,
  },
  "log-format": {
    type: "string",
    value: "FORMAT",
    description: "log lines as text (default) or json (one object per line)",
  },
};

function configFlags(ctx: CommandContext): ConfigFlags {
  const f = ctx.flags;
  return {
    ...(typeof f.listen === "string" ? { listen: f.listen } : {}),
    ...(typeof f.hostname === "string" ? { hostname: f.hostname } : {}),
    ...(Array.isArray(f.peer) ? { peer: f.peer } : {}),
    ...(f.stealth === true ? { stealth: true } : {}),
    ...(Array.isArray(f["auto-approve"]) ? { autoApprove: f["auto-approve"] } : {}),
    ...(Array.isArray(f.disable) ? { disable: f.disable } : {}),
    ...(Array.isArray(f.rendezvous) ? { rendezvous: f.rendezvous } : {}),
    ...(f.public === true ? { public: true } : {}),
    ...(f["no-lan"] === true ? { noLan: true } : {}),
    ...(f.dht === true ? { dht: true } : {}),
    ...(f["allow-remote-webhooks"] === true ? { allowRemoteWebhooks: true } : {}),
    ...(typeof f["log-level"] === "string" ? { logLevel: f["log-level"] } : {}),
    ...(typeof f["log-format"] === "string" ? { logFormat: f["log-format"] } : {}),
  };
}

/** The node flags given, as the background daemon is started with them again. */
function passThrough(ctx: CommandContext): string[] {
  return Object.keys(NODE_FLAGS).flatMap((name) => {
    const v = ctx.flags[name];
    if (v === true) return [`--${name}`];
    if (typeof v === "string") return [`--${name}`, v];
    return Array.isArray(v) ? v.flatMap((x) => [`--${name}`, String(x)]) : [];
  });
}

async function tailLog(home: string): Promise<string> {
  try {
    const text = await Deno.readTextFile(join(home, HOME_FILES.log));
    return text.trimEnd().split("\n").slice(-1)[0] ?? "";
  } catch {
    return "";
  }
}

/**
 * The flags given now that the running daemon was not started with, as
 * typed (`--listen`): `--ensure` keeps the running daemon, and says so.
 * Flags not given are not compared; a daemon from before control files
 * named their flags differs in nothing that can be told.
 */
function flagsDiffer(given: ConfigFlags, running: Record<string, unknown> | undefined): string[] {
  if (running === undefined) return [];
  return Object.entries(given)
    .filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(running[k]))
    .map(([k]) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
}

/** What `status` shows of a running daemon; `not_running` when none answers. */
async function statusOf(home: string, role: Role) {
  let client: PilotClient;
  try {
    client = await PilotClient.open(home);
  } catch (e) {
    if (e instanceof PilotError && e.code === "not_running") {
      throw new PilotError(
        "not_running",
        `No ${role} is running for home "${home}"`,
        `start it with \`pilot ${role} start\``,
      );
    }
    throw e;
  }
  const info = await client.call("GET", "/v1/info", { timeoutMs: 5_000 }) as Record<
    string,
    unknown
  >;
  return {
    running: true,
    pid: client.control.pid,
    address: info.address as string,
    hostname: info.hostname as string | null,
    listen: info.listen as string,
    flags: client.control.flags,
  };
}

/** Which program a command runs or manages: an ordinary node, or a rendezvous (issue 9). */
type Role = "daemon" | "rendezvous";

/** `pilot daemon` or `pilot rendezvous`: runs in the foreground until stopped. */
function runCommand(role: Role, summary: string): CommandSpec {
  return {
    name: role,
    routes: [],
    summary,
    args: [],
    flags: NODE_FLAGS,
    output: obj({ stopped: bool }),
    errors: ["already_running"],
    async run(ctx) {
      await runDaemon(ctx.home, configFlags(ctx), role === "daemon" ? "node" : role);
      return { stopped: true };
    },
    human: () => "",
  };
}

/** Starts this home's node (or rendezvous) in the background; returns once its API answers. */
async function startInBackground(ctx: CommandContext, role: Role) {
  await ensureHome(ctx.home);
  if (await isHomeLocked(ctx.home)) {
    if (ctx.flags.ensure !== true) {
      throw new PilotError(
        "already_running",
        `A ${role} is already running for home "${ctx.home}"`,
        `use --ensure to accept a running ${role}, or \`pilot ${role} stop\``,
      );
    }
    const s = await statusOf(ctx.home, role).catch((e) => {
      // Locked but not answering: a daemon starting or stopping; start one, or fail on the lock.
      if (e instanceof PilotError && e.code === "not_running") return null;
      throw e;
    });
    if (s !== null) {
      return {
        pid: s.pid,
        address: s.address,
        hostname: s.hostname,
        listen: s.listen,
        changed: false,
        differs: flagsDiffer(configFlags(ctx), s.flags),
      };
    }
  }
  // Bad flags or config fail here, with their own error, not as a dead child.
  await loadConfig(ctx.home, configFlags(ctx));
  // Make the identity here, so its one-time stamp search shows progress in this terminal.
  let shown = 0;
  await loadOrCreateIdentity(ctx.home, (tried) => {
    if (tried - shown >= 1 << 18) {
      shown = tried;
      ctx.progress(`creating identity: ${tried} hashes tried (about 1M expected)`);
    }
  });
  const [exec, ...pre] = selfInvocation();
  const child = new Deno.Command(exec!, {
    args: [...pre, role, "--home", ctx.home, ...passThrough(ctx)],
    env: { [LOG_TO_FILE_ENV]: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  let exited: Deno.CommandStatus | undefined;
  child.status.then((s) => exited = s);
  child.unref();
  const timeoutMs = numberFlag(ctx, "timeout");
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    if (exited !== undefined) {
      const last = await tailLog(ctx.home);
      throw new PilotError(
        "internal",
        `The ${role} exited at start (code ${exited.code})${last ? `: ${last}` : ""}`,
        `see ${join(ctx.home, HOME_FILES.log)}`,
      );
    }
    const control = await readControlFile(ctx.home).catch(() => null);
    if (control?.pid !== child.pid) continue;
    const s = await statusOf(ctx.home, role).catch(() => null);
    if (s !== null) {
      return {
        pid: s.pid,
        address: s.address,
        hostname: s.hostname,
        listen: s.listen,
        changed: true,
        differs: [],
      };
    }
  }
  throw new PilotError(
    "timeout",
    `The ${role} did not answer within ${timeoutMs} ms`,
    `see ${join(ctx.home, HOME_FILES.log)}`,
  );
}

/** `pilot daemon start` or `pilot rendezvous start`. */
function startCommand(role: Role, summary: string): CommandSpec {
  return command({
    name: `${role} start`,
    routes: [INFO.route],
    summary,
    args: [],
    flags: {
      ...NODE_FLAGS,
      ensure: { type: "boolean", description: `succeed when this home's ${role} already runs` },
      timeout: {
        type: "duration",
        description: `how long to wait for the ${role}`,
        default: "60s",
        min: 1,
      },
    },
    output: obj({
      pid: int,
      address: str,
      hostname: nullable(str),
      listen: str,
      changed: bool,
      differs: arr(str),
    }),
    errors: ["already_running", "timeout"],
    run: (ctx) => startInBackground(ctx, role),
    human: (o) =>
      keyValues([
        [
          role,
          o.changed
            ? `started (pid ${o.pid})`
            : o.differs.length === 0
            ? `already running (pid ${o.pid})`
            : `already running (pid ${o.pid}), started without the ${o.differs.join(", ")} ` +
              `given now: they apply after \`pilot ${role} stop\` and a start`,
        ],
        ["address", o.address],
        ["listen", o.listen],
      ]),
  });
}

/** `pilot daemon stop` or `pilot rendezvous stop`. */
function stopCommand(role: Role): CommandSpec {
  return command({
    name: `${role} stop`,
    routes: [SHUTDOWN.route],
    summary: `stop this home's background ${role}`,
    args: [],
    flags: {
      timeout: {
        type: "duration",
        description: "how long to wait for it to exit",
        default: "10s",
        min: 1,
      },
    },
    output: obj({ stopped: bool, changed: bool }),
    errors: ["timeout"],
    async run(ctx) {
      let client: PilotClient;
      try {
        client = await PilotClient.open(ctx.home);
      } catch (e) {
        if (e instanceof PilotError && e.code === "not_running") {
          return { stopped: true, changed: false };
        }
        throw e;
      }
      await client.call("POST", "/v1/shutdown");
      const timeoutMs = numberFlag(ctx, "timeout");
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (!(await isHomeLocked(ctx.home))) return { stopped: true, changed: true };
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new PilotError(
        "timeout",
        `The ${role} (pid ${client.control.pid}) did not exit within ${timeoutMs} ms`,
        `kill it: kill ${client.control.pid}`,
      );
    },
    human: (o) => (o.changed ? `${role} stopped` : `${role} was not running`),
  });
}

const daemonStatus = command({
  name: "daemon status",
  routes: [INFO.route],
  summary: "tell whether this home's daemon runs",
  args: [],
  flags: {},
  output: obj({
    running: bool,
    pid: nullable(int),
    address: nullable(str),
    hostname: nullable(str),
    listen: nullable(str),
  }),
  errors: ["not_running"],
  run: async (ctx) => {
    const { flags: _, ...s } = await statusOf(ctx.home, "daemon");
    return s;
  },
  human: (o) => {
    return keyValues([
      ["daemon", `running (pid ${o.pid})`],
      ["address", o.address],
      ["listen", o.listen],
    ]);
  },
});

/** Counters by reason, the non-zero ones only: `stale 2, rate_limited 1`, or `none`. */
function nonZero(counts: Record<string, number>): string {
  const shown = Object.entries(counts).filter(([, n]) => n !== 0).map(([k, n]) => `${k} ${n}`);
  return shown.length === 0 ? "none" : shown.join(", ");
}

const rendezvousStatus = command({
  name: "rendezvous status",
  routes: [INFO.route, RENDEZVOUS_STATUS.route],
  summary: "tell whether this home's rendezvous runs, what it holds and relays, " +
    "and what it refused and dropped",
  args: [],
  flags: {},
  // GET /v1/rendezvous's counters, all null when nothing runs.
  output: obj({
    running: bool,
    pid: nullable(int),
    address: nullable(str),
    listen: nullable(str),
    records: nullable(int),
    hostnames: nullable(int),
    retained: nullable(int),
    refused: nullable(record(int)),
    relayed_frames: nullable(int),
    relayed_bytes: nullable(int),
    dropped: nullable(record(int)),
    mailboxes: nullable(RENDEZVOUS_STATUS.output.properties.mailboxes),
  }),
  errors: ["not_running"],
  async run(ctx) {
    const s = await statusOf(ctx.home, "rendezvous");
    const client = await PilotClient.open(ctx.home);
    const r = await client.call("GET", "/v1/rendezvous", { timeoutMs: 5_000 }) as Infer<
      typeof RENDEZVOUS_STATUS.output
    >;
    return { running: true, pid: s.pid, address: s.address, listen: s.listen, ...r };
  },
  human: (o) => {
    return keyValues([
      ["rendezvous", `running (pid ${o.pid})`],
      ["address", o.address],
      ["listen", o.listen],
      ["records", `${o.records} (${o.hostnames} hostnames); ${o.retained} retained for mailboxes`],
      ["relayed", `${o.relayed_bytes} bytes in ${o.relayed_frames} frames`],
      ["refused", nonZero(o.refused ?? {})],
      ["dropped", nonZero(o.dropped ?? {})],
      [
        "mailboxes",
        `${o.mailboxes?.items} sealed items, ${o.mailboxes?.bytes} bytes, for ` +
        `${o.mailboxes?.mailboxes} nodes; refused ${nonZero(o.mailboxes?.refused ?? {})}`,
      ],
    ]);
  },
});

/** The daemon commands. */
export const DAEMON_COMMANDS: CommandSpec[] = [
  runCommand("daemon", "run a node in the foreground (for systemd, containers)"),
  startCommand("daemon", "start a node in the background; returns once its API answers"),
  stopCommand("daemon"),
  daemonStatus,
  runCommand(
    "rendezvous",
    "run a rendezvous node in the foreground: stores signed presence records and " +
      "answers lookups for anyone (port 445)",
  ),
  startCommand(
    "rendezvous",
    "start a rendezvous node in the background; returns once its API answers",
  ),
  stopCommand("rendezvous"),
  rendezvousStatus,
];
