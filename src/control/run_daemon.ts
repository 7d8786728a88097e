/**
 * The daemon process: one node plus its control API, for one home. Holds
 * the home's lock for its whole life, writes a control file with a token new
 * at every start, and shuts down cleanly on SIGINT, SIGTERM or
 * `POST /v1/shutdown`.
 *
 * @module
 */
import { join } from "node:path";
import { API_VERSION, VERSION } from "../constants.ts";
import { PilotError } from "../errors.ts";
import { type ConfigFlags, type DaemonConfig, loadConfig } from "../daemon/config.ts";
import { ensureHome, HOME_FILES, HomeLock, writeFileAtomic } from "../daemon/home.ts";
import { loadOrCreateIdentity } from "../daemon/identity_store.ts";
import { closeLog, configureLog, log, logToFile } from "../daemon/log.ts";
import { Node } from "../daemon/node.ts";
import { DEFAULT_LARGE_ENOUGH } from "../daemon/socket_buffers.ts";
import { formatEndpoint } from "../discovery/endpoint.ts";
import type { ControlFile } from "./client.ts";
import { nodeRoutes } from "./routes.ts";
import { installLastWords } from "./last_words.ts";
import { type ControlServer, startControlServer } from "./server.ts";

/** Environment variable by which `daemon start` sends the log to the home's file. */
export const LOG_TO_FILE_ENV = "PILOT_DAEMON_LOG_FILE";

/** Runs a daemon in the foreground until it is told to stop; `role` "rendezvous" also serves port 445 to anyone. */
export async function runDaemon(
  home: string,
  flags: ConfigFlags,
  role: DaemonConfig["role"] = "node",
): Promise<void> {
  await ensureHome(home);
  if (Deno.env.get(LOG_TO_FILE_ENV) === "1") logToFile(join(home, HOME_FILES.log));
  const lock = await HomeLock.acquire(home);
  if (lock === null) {
    throw new PilotError(
      "already_running",
      // The home's lock does not say which role holds it.
      `A daemon or rendezvous is already running for home "${home}"`,
      "stop it with `pilot daemon stop` or `pilot rendezvous stop`, or use another --home",
    );
  }
  const controlPath = join(home, HOME_FILES.control);
  const uninstall = installLastWords(controlPath);
  const { promise: stopped, resolve: stop } = Promise.withResolvers<string>();
  const onSignal = (name: string) => () => stop(name);
  const signals: [Deno.Signal, () => void][] = [
    ["SIGINT", onSignal("SIGINT")],
    ["SIGTERM", onSignal("SIGTERM")],
  ];
  for (const [s, h] of signals) Deno.addSignalListener(s, h);
  let node: Node | undefined;
  let server: ControlServer | undefined;
  try {
    const config = { ...await loadConfig(home, flags), role };
    configureLog({ level: config.logLevel, format: config.logFormat });
    let lastShown = 0;
    const { identity, created } = await loadOrCreateIdentity(home, (tried) => {
      if (tried - lastShown >= 1 << 18) {
        lastShown = tried;
        console.error(`creating identity: ${tried} hashes tried (about 1M expected)`);
      }
    });
    if (created) {
      log(`created identity ${identity.address} (${identity.fingerprint})`, {
        event: "identity.created",
        fields: { address: identity.address, fingerprint: identity.fingerprint },
      });
    }
    node = await Node.start(identity, config, home);
    const token = crypto.getRandomValues(new Uint8Array(32)).toHex();
    // The routes show the server's own counters (connections, open long reads).
    const routes = nodeRoutes(node, () => stop("api"), () => server?.stats() ?? null);
    server = await startControlServer(routes, token, {
      limits: config.control,
      onAcceptError: acceptErrorLog(),
      socketPath: join(home, HOME_FILES.controlSocket),
    });
    const control: ControlFile = {
      url: server.url,
      token,
      pid: Deno.pid,
      version: VERSION,
      api_version: API_VERSION,
      socket: server.socket,
      flags: { ...flags },
    };
    await writeFileAtomic(controlPath, JSON.stringify(control) + "\n", 0o600);
    const udp = formatEndpoint(node.listen);
    log(`pilot ${VERSION} ${role} ${identity.address} udp ${udp} api ${control.url}`, {
      event: "daemon.started",
      fields: {
        version: VERSION,
        role,
        address: identity.address,
        fingerprint: identity.fingerprint,
        udp,
        api: control.url,
        pid: Deno.pid,
      },
    });
    const buffers = node.udpBuffers;
    if (!buffers.raised && buffers.why !== DEFAULT_LARGE_ENOUGH) {
      // Not fatal: bursts (a stream's, a flood's) may then drop at the kernel.
      log(`UDP receive buffer stays at ${buffers.receive} bytes: ${buffers.why}`, {
        level: "warn",
        event: "daemon.udp_buffers",
        fields: { receive: buffers.receive, why: buffers.why ?? "" },
      });
    }
    const why = await stopped;
    log(`stopping (${why})`, { event: "daemon.stopping", fields: { why } });
  } catch (e) {
    // The background daemon's only voice is its log: say why it could not run.
    const code = e instanceof PilotError ? e.code : "internal";
    log((e as Error).message, { level: "error", event: "fatal", code });
    throw e;
  } finally {
    for (const [s, h] of signals) Deno.removeSignalListener(s, h);
    await Deno.remove(controlPath).catch(() => {});
    await server?.close().catch(() => {});
    await node?.close();
    lock.release();
    uninstall();
    closeLog();
  }
}

/** Logs failed accepts on the control port at most once a second, with the count since. */
function acceptErrorLog(): (error: Error) => void {
  let last = -Infinity;
  let quiet = 0;
  return (error) => {
    const now = performance.now();
    if (now - last < 1_000) {
      quiet++;
      return;
    }
    log(`control API accept failed (${quiet} more since last said): ${error.message}`, {
      level: "error",
      event: "api.accept_failed",
    });
    last = now;
    quiet = 0;
  };
}
