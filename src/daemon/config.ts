/**
 * Daemon configuration: flags > environment > `config.json` > defaults.
 * Unknown keys are errors. Timers may be shortened (tests), never lengthened
 * past the protocol's limits: a longer value is refused here, quoting it
 * (the session and stream layers clamp as well, as a second line).
 *
 * @module
 */
import { join } from "node:path";
import {
  CONTROL_HEADER_TIMEOUT_MS,
  CONTROL_IDLE_TIMEOUT_MS,
  DROP_SUMMARY_MS,
  LAN_PORT,
  PERSISTENT_KEEPALIVE_MS,
} from "../constants.ts";
import { invalid, PilotError } from "../errors.ts";
import { type EndpointSpec, parseEndpoint } from "../discovery/endpoint.ts";
import { ipFamily } from "../wire/ip_endpoint.ts";
import { isValidHostname, validateHostname } from "../identity/self_description.ts";
import { isAddressLike, parseAddress } from "../identity/address.ts";
import { fingerprintIn, parseFingerprint } from "../identity/fingerprint.ts";
import { DEFAULT_TIMERS, type SessionTimers } from "../session/manager.ts";
import { DEFAULT_STREAM_TIMERS, type StreamTimers } from "../stream/options.ts";
import { DEFAULT_RELAY_QUOTA } from "../services/rendezvous/service.ts";
import { HOME_FILES, writeFileAtomic } from "./home.ts";
import { MAX_WEBHOOKS, parseWebhook, type WebhookSpec } from "./webhooks.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from "./log.ts";

/** Default UDP listen endpoint. */
export const DEFAULT_LISTEN = "0.0.0.0:7440";

/** The daemon's effective configuration. */
export interface DaemonConfig {
  /** UDP listen address (IP literal) and port (0 = OS-chosen). */
  listen: { hostname: string; port: number };
  /** Self-claimed hostname, or null. */
  hostname: string | null;
  /** Static peer names: NAME -> endpoint text (`peer add`/`peer remove` change it at run time). */
  peers: Record<string, string>;
  /** Refuse handshake message 1 without mac1 (stealth). */
  requireMac1: boolean;
  /** Half-open handshakes at which cookies are demanded (null = default). */
  cookieThreshold: number | null;
  /** Timer overrides in ms. */
  timers: Partial<SessionTimers>;
  /** Stream timer overrides in ms. */
  streamTimers: Partial<StreamTimers>;
  /** Control API timer overrides in ms (shorter only). */
  control: Partial<Record<ControlTimer, number>>;
  /** Pre-authorised peers: full keys (hex), fingerprints or addresses. */
  autoApprove: string[];
  /** Built-in services turned off (echo, data, events). */
  disable: string[];
  /** `rendezvous` when run by `pilot rendezvous`: serves port 445 to anyone (issue 9). */
  role: "node" | "rendezvous";
  /** Rendezvous nodes this node publishes to and looks names up at (issue 9). */
  rendezvous: RendezvousAddress[];
  /** Whether strangers may learn this node's endpoints from its presence record. */
  visibility: "private" | "public";
  /**
   * Whether relayed paths to trusted peers are upgraded to direct ones by
   * hole punching (which tells those peers this node's endpoints). Off, a
   * node keeps its IP from everyone, trusted or not, at the relay's cost.
   */
  punch: boolean;
  /** On a rendezvous: relayed bytes per second it forwards for each sending node, and in all. */
  relayQuota: { perPeer: number; total: number };
  /** LAN discovery (PROTOCOL.md §14): announce on the link and hear others; `--no-lan` turns it off. */
  lan: boolean;
  /** The UDP port of LAN announcements (LAN_PORT; another for an isolated test network). */
  lanPort: number;
  /** The Mainline DHT (issue 10): publish this node's record there and look names up. */
  dht: boolean;
  /** The DHT node's own UDP port (0: any free one). */
  dhtPort: number;
  /** DHT nodes to join through, as HOST:PORT. */
  dhtBootstrap: EndpointSpec[];
  /** Where events are POSTed (`webhook add`/`webhook remove` change it at run time). */
  webhooks: WebhookSpec[];
  /** Whether webhook URLs may be off this machine (`--allow-remote-webhooks`). */
  allowRemoteWebhooks: boolean;
  /** Local TCP services exposed to trusted peers (`expose` in config.json; `pilot expose --save`). */
  expose: ExposeEntry[];
  /** Loopback TCP ports forwarded to peers' exposures (`forward`; `pilot forward --save`). */
  forward: ForwardEntry[];
  /** The lowest level the daemon's log writes (`--log-level`). */
  logLevel: LogLevel;
  /** Text lines or JSON lines (`--log-format`). */
  logFormat: LogFormat;
  /** How often dropped datagrams are summarised in the log (ms; timer `drop_summary_ms`). */
  dropSummaryMs: number;
}

/** Where an exposure's TCP service listens. */
export interface ServiceTarget {
  /** Host name or IP literal (127.0.0.1 unless the user names another). */
  hostname: string;
  /** TCP port. */
  port: number;
}

/** A local TCP service trusted peers reach on a virtual port (`pilot expose`). */
export interface ExposeEntry {
  /** The virtual port. */
  vport: number;
  /** The service. */
  target: ServiceTarget;
  /** Keys (hex) or fingerprints allowed; empty: every trusted peer. */
  allow: string[];
}

/** A TCP port on 127.0.0.1 carried to a peer's exposure (`pilot forward`). */
export interface ForwardEntry {
  /** The local TCP port (0: any free one). */
  localPort: number;
  /** The peer as the user named it. */
  peer: string;
  /** The peer's exposed virtual port. */
  vport: number;
  /** How long each connection's tunnel may take to open (ms). */
  timeoutMs: number;
}

/** The public DHT nodes a node joins through unless config.json names others. */
export const DHT_BOOTSTRAP = [
  "router.bittorrent.com:6881",
  "router.utorrent.com:6881",
  "dht.transmissionbt.com:6881",
] as const;

/** A rendezvous as configured: `KEY@HOST:PORT` (pinned) or `HOST:PORT`. */
export interface RendezvousAddress {
  /** Its Ed25519 key, when given: the handshake must prove it. */
  key: Uint8Array | null;
  /** Where it listens. */
  endpoint: EndpointSpec;
  /** As typed. */
  text: string;
}

/** Parses one rendezvous address; throws `invalid_argument` with a hint. */
export function parseRendezvous(text: string, where: string): RendezvousAddress {
  const at = text.indexOf("@");
  const keyText = at < 0 ? null : text.slice(0, at);
  const endpointText = at < 0 ? text : text.slice(at + 1);
  const hint =
    "write KEY@HOST:PORT (the rendezvous's 64-hex key, from its `pilot info`) or HOST:PORT";
  if (keyText !== null && !/^[0-9a-fA-F]{64}$/.test(keyText)) {
    throw invalid(
      `Cannot parse rendezvous "${text}" (${where}): the key is not 64 hex digits`,
      hint,
    );
  }
  let endpoint: EndpointSpec;
  try {
    endpoint = parseEndpoint(endpointText);
  } catch (e) {
    throw invalid(`Cannot parse rendezvous "${text}" (${where}): ${(e as Error).message}`, hint);
  }
  return {
    key: keyText === null ? null : Uint8Array.fromHex(keyText.toLowerCase()),
    endpoint,
    text,
  };
}

/** `relay_quota` in config.json: `{"per_peer": BYTES_PER_S, "total": BYTES_PER_S}`, each optional. */
function parseRelayQuota(v: unknown, where: string): { perPeer: number; total: number } {
  const hint = 'write {"per_peer": 1000000, "total": 50000000} (bytes per second, 1000 to 10^10)';
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw invalid(`${where}: "relay_quota" must be an object, not ${quote(v)}`, hint);
  }
  const out: { perPeer: number; total: number } = { ...DEFAULT_RELAY_QUOTA };
  for (const [k, n] of Object.entries(v)) {
    const key = k === "per_peer" ? "perPeer" : k === "total" ? "total" : null;
    if (key === null) throw invalid(`${where}: unknown "relay_quota" field "${k}"`, hint);
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1000 || n > 1e10) {
      throw invalid(
        `${where}: "relay_quota.${k}" must be an integer from 1000 to 10^10, not ${quote(n)}`,
        hint,
      );
    }
    out[key] = n;
  }
  return out;
}

/** Built-in services that may be turned off (trust on port 444 may not). */
export const OPTIONAL_SERVICES = ["echo", "messages", "pubsub", "tasks"];

/** Earlier names of the optional services, still accepted. */
const SERVICE_ALIASES: Readonly<Record<string, string>> = { data: "messages", events: "pubsub" };

/** Configuration given as flags (already parsed by the CLI table). */
export interface ConfigFlags {
  listen?: string;
  hostname?: string;
  peer?: string[];
  stealth?: boolean;
  autoApprove?: string[];
  disable?: string[];
  rendezvous?: string[];
  public?: boolean;
  noLan?: boolean;
  dht?: boolean;
  allowRemoteWebhooks?: boolean;
  logLevel?: string;
  logFormat?: string;
}

const TIMER_KEYS: Record<string, keyof SessionTimers> = {
  rekey_after_ms: "rekeyAfterMs",
  reject_after_ms: "rejectAfterMs",
  rekey_timeout_ms: "rekeyTimeoutMs",
  rekey_attempt_ms: "rekeyAttemptMs",
  keepalive_ms: "keepaliveMs",
  persistent_keepalive_ms: "persistentKeepaliveMs",
  previous_grace_ms: "previousGraceMs",
  untrusted_idle_ms: "untrustedIdleMs",
  answer_ms: "answerMs",
  silence_ms: "silenceMs",
};

/** Stream timers config may shorten (the stream layer clamps them to its defaults). */
const STREAM_TIMER_KEYS: Record<string, keyof StreamTimers> = {
  stream_initial_rto_ms: "initialRtoMs",
  stream_min_rto_ms: "minRtoMs",
  stream_keepalive_ms: "keepaliveMs",
  stream_idle_timeout_ms: "idleTimeoutMs",
  stream_time_wait_ms: "timeWaitMs",
};

type ControlTimer = "headerTimeoutMs" | "idleTimeoutMs";

/** Control API timers config may shorten, with their defaults. */
const CONTROL_TIMER_KEYS: Record<string, [ControlTimer, number]> = {
  control_header_timeout_ms: ["headerTimeoutMs", CONTROL_HEADER_TIMEOUT_MS],
  control_idle_timeout_ms: ["idleTimeoutMs", CONTROL_IDLE_TIMEOUT_MS],
};

/** The log's summary of drops, which config may make more frequent (tests). */
const DROP_SUMMARY_KEY = "drop_summary_ms";

const FILE_KEYS = [
  "listen",
  "rendezvous",
  "public",
  "punch",
  "relay_quota",
  "hostname",
  "peers",
  "require_mac1",
  "cookie_threshold",
  "timers",
  "auto_approve",
  "disable",
  "lan",
  "dht",
  "dht_port",
  "dht_bootstrap",
  "lan_port",
  "webhooks",
  "allow_remote_webhooks",
  "expose",
  "forward",
  "log_level",
  "log_format",
];

/** `file[key]` when it is a boolean, undefined when absent; anything else is refused quoting it. */
function fileBoolean(
  file: Record<string, unknown>,
  key: string,
  where: string,
): boolean | undefined {
  const v = file[key];
  if (v === undefined || typeof v === "boolean") return v;
  throw invalid(`${where}: "${key}" must be true or false, not ${quote(v)}`);
}

/** `file[key]` when it is a UDP port from `min` (0: any free one) to 65535, undefined when absent. */
function filePort(
  file: Record<string, unknown>,
  key: string,
  min: 0 | 1,
  where: string,
): number | undefined {
  const v = file[key];
  if (v === undefined) return undefined;
  if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= 65535) return v;
  throw invalid(`${where}: "${key}" must be a port from ${min} to 65535, not ${quote(v)}`);
}

/** A config value as the error quotes it: JSON, shortened. */
function quote(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function checkService(given: string, where: string): string {
  const name = Object.hasOwn(SERVICE_ALIASES, given) ? SERVICE_ALIASES[given]! : given;
  if (!OPTIONAL_SERVICES.includes(name)) {
    throw invalid(
      `Cannot disable "${name}" (${where})`,
      `services that can be turned off: ${OPTIONAL_SERVICES.join(", ")}`,
    );
  }
  return name;
}

/** Checks one `--auto-approve` value: a 64-hex-digit key, a fingerprint or an address. */
export function parseAutoApprove(text: string, where: string): string {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return t.toLowerCase();
  const print = fingerprintIn(t);
  if (print !== null) return print;
  try {
    return parseAddress(t);
  } catch {
    throw invalid(
      `Cannot use "${text}" as a pre-authorised peer (${where})`,
      "give its full public key (64 hex digits), fingerprint, or address",
    );
  }
}

/** Parses `IP:PORT` for listening (port 0 allowed). */
export function parseListen(text: string, where: string): { hostname: string; port: number } {
  const expected = `Cannot listen on "${text}" (${where}): expected an IP address and port`;
  let spec;
  try {
    // Port 0 (OS-chosen) is fine for listening, not for reaching a peer.
    spec = /:0$/.test(text)
      ? { ...parseEndpoint(text.replace(/:0$/, ":1")), port: 0 }
      : parseEndpoint(text);
  } catch {
    throw invalid(expected, "e.g. --listen 0.0.0.0:7440, or 127.0.0.1:0 for any free port");
  }
  if (ipFamily(spec.host) === 0) {
    throw invalid(expected, "give an IP literal: a hostname would resolve differently later");
  }
  return { hostname: spec.host, port: spec.port };
}

function parsePeerFlag(text: string, where: string): [string, string] {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    throw invalid(
      `Cannot parse peer "${text}" (${where}): expected NAME=ENDPOINT`,
      "e.g. --peer data-processor-node=198.18.0.2:7440",
    );
  }
  return parsePeerEntry(text.slice(0, eq), text.slice(eq + 1), where);
}

/** Checks a static peer's name: a hostname, or an address (returned canonical). */
export function parsePeerName(name: string, where: string): string {
  if (isValidHostname(name)) return name;
  if (isAddressLike(name)) {
    try {
      return parseAddress(name);
    } catch {
      // not an address either
    }
  }
  throw invalid(
    `Cannot use "${name}" as a peer name (${where}): expected a hostname or an address`,
    "hostnames are a-z, 0-9 and -, up to 63 characters (e.g. data-processor-node)",
  );
}

/**
 * Checks one static peer (`--peer NAME=ENDPOINT`, `peers` in config.json,
 * `peer add`): the name as {@linkcode parsePeerName}, the endpoint as typed.
 */
export function parsePeerEntry(name: string, endpoint: string, where: string): [string, string] {
  const n = parsePeerName(name, where);
  parseEndpoint(endpoint);
  return [n, endpoint];
}

function checkHostname(h: string, where: string): string {
  try {
    validateHostname(h);
  } catch (e) {
    throw invalid(`Bad hostname (${where}): ${(e as Error).message}`);
  }
  return h;
}

/** Reads `config.json` from the home (absent = empty) and checks every key. */
export async function readConfigFile(home: string): Promise<Record<string, unknown>> {
  const path = join(home, HOME_FILES.config);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw e;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalid(`Config "${path}" is not valid JSON`, "fix the file or remove it");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw invalid(`Config "${path}" must be a JSON object`);
  }
  checkKnownKeys(v as Record<string, unknown>, `Config "${path}"`);
  return v as Record<string, unknown>;
}

/**
 * config.json as read before a change to save `what` into it: a file the
 * daemon would refuse is left as it is, and the error says so (`keep`).
 */
async function configToChange(
  home: string,
  what: string,
  keep: string,
): Promise<Record<string, unknown>> {
  try {
    return await readConfigFile(home);
  } catch (e) {
    if (!(e instanceof PilotError)) throw e;
    throw new PilotError(e.code, `Cannot save ${what}: ${e.message}`, `${keep} (${e.hint})`);
  }
}

/** The keys config.json may hold. */
export const CONFIG_KEYS: readonly string[] = FILE_KEYS;

/** Refuses a key config.json does not know, naming `where`. */
function checkKnownKeys(file: Record<string, unknown>, where: string): void {
  const unknown = Object.keys(file).find((k) => !FILE_KEYS.includes(k));
  if (unknown !== undefined) {
    throw invalid(`${where} has unknown key "${unknown}"`, `known keys: ${FILE_KEYS.join(", ")}`);
  }
}

/** Merges flags, environment and the config file into the effective configuration. */
export async function loadConfig(home: string, flags: ConfigFlags): Promise<DaemonConfig> {
  return configOf(await readConfigFile(home), flags);
}

/**
 * Checks a config.json object exactly as the daemon reads it, and merges it
 * with `flags` and the environment: the one place each key is checked.
 */
export function configOf(file: Record<string, unknown>, flags: ConfigFlags): DaemonConfig {
  checkKnownKeys(file, "config.json");
  const where = "config.json";
  const cfg: DaemonConfig = {
    listen: parseListen(DEFAULT_LISTEN, "default"),
    hostname: null,
    peers: {},
    requireMac1: false,
    cookieThreshold: null,
    timers: {},
    streamTimers: {},
    control: {},
    autoApprove: [],
    disable: [],
    role: "node",
    rendezvous: [],
    visibility: "private",
    punch: true,
    relayQuota: { ...DEFAULT_RELAY_QUOTA },
    lan: true,
    lanPort: LAN_PORT,
    dht: false,
    dhtPort: 0,
    dhtBootstrap: DHT_BOOTSTRAP.map((e) => parseEndpoint(e)),
    webhooks: [],
    allowRemoteWebhooks: false,
    expose: [],
    forward: [],
    logLevel: "info",
    logFormat: "text",
    dropSummaryMs: DROP_SUMMARY_MS,
  };
  if (file.listen !== undefined) {
    if (typeof file.listen !== "string") {
      throw invalid(`${where}: "listen" must be a string, not ${quote(file.listen)}`);
    }
    cfg.listen = parseListen(file.listen, where);
  }
  if (file.hostname !== undefined) {
    if (typeof file.hostname !== "string") {
      throw invalid(`${where}: "hostname" must be a string, not ${quote(file.hostname)}`);
    }
    cfg.hostname = checkHostname(file.hostname, where);
  }
  if (file.peers !== undefined) {
    if (typeof file.peers !== "object" || file.peers === null || Array.isArray(file.peers)) {
      throw invalid(
        `${where}: "peers" must be an object of NAME: ENDPOINT, not ${quote(file.peers)}`,
      );
    }
    for (const [name, ep] of Object.entries(file.peers)) {
      if (typeof ep !== "string") {
        throw invalid(`${where}: peer "${name}" must be an endpoint string, not ${quote(ep)}`);
      }
      const [n, e] = parsePeerFlag(`${name}=${ep}`, where);
      cfg.peers[n] = e;
    }
  }
  const bool = (key: string) => fileBoolean(file, key, where);
  const port = (key: string, min: 0 | 1) => filePort(file, key, min, where);
  cfg.requireMac1 = bool("require_mac1") ?? cfg.requireMac1;
  if (file.cookie_threshold !== undefined) {
    const v = file.cookie_threshold;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw invalid(`${where}: "cookie_threshold" must be a whole number >= 0, not ${quote(v)}`);
    }
    cfg.cookieThreshold = v;
  }
  if (file.timers !== undefined) {
    if (typeof file.timers !== "object" || file.timers === null || Array.isArray(file.timers)) {
      throw invalid(`${where}: "timers" must be an object, not ${quote(file.timers)}`);
    }
    for (const [k, v] of Object.entries(file.timers)) {
      const key = TIMER_KEYS[k];
      const streamKey = STREAM_TIMER_KEYS[k];
      const controlKey = CONTROL_TIMER_KEYS[k];
      const dropKey = k === DROP_SUMMARY_KEY;
      if (
        key === undefined && streamKey === undefined && controlKey === undefined && !dropKey
      ) {
        const known = [TIMER_KEYS, STREAM_TIMER_KEYS, CONTROL_TIMER_KEYS].flatMap(Object.keys);
        throw invalid(
          `${where}: unknown timer "${k}"`,
          `known: ${[...known, DROP_SUMMARY_KEY].join(", ")}`,
        );
      }
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
        throw invalid(`${where}: timer "${k}" must be a number of ms >= 0, not ${quote(v)}`);
      }
      const limit = dropKey
        ? DROP_SUMMARY_MS
        : streamKey !== undefined
        ? DEFAULT_STREAM_TIMERS[streamKey]
        : controlKey !== undefined
        ? controlKey[1]
        : key === "persistentKeepaliveMs"
        ? PERSISTENT_KEEPALIVE_MS // off by default; on, at most every 25 s
        : DEFAULT_TIMERS[key!];
      if (v > limit) {
        throw invalid(
          `${where}: timer "${k}" of ${v} ms is longer than the protocol's ${limit} ms`,
          "timers may be shortened (tests), never lengthened",
        );
      }
      if (streamKey !== undefined || controlKey !== undefined || dropKey) {
        if (v === 0) throw invalid(`${where}: timer "${k}" must be above 0, not 0`);
      }
      if (dropKey) cfg.dropSummaryMs = v;
      else if (streamKey !== undefined) cfg.streamTimers[streamKey] = v;
      else if (controlKey !== undefined) cfg.control[controlKey[0]] = v;
      else cfg.timers[key!] = v;
    }
  }
  if (file.auto_approve !== undefined) {
    const v = file.auto_approve;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      throw invalid(
        `${where}: "auto_approve" must be a list of keys, fingerprints or addresses, not ${
          quote(v)
        }`,
      );
    }
    cfg.autoApprove = v.map((x) => parseAutoApprove(x, where));
  }
  if (file.disable !== undefined) {
    const v = file.disable;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      throw invalid(`${where}: "disable" must be a list of service names, not ${quote(v)}`);
    }
    cfg.disable = v.map((x) => checkService(x, where));
  }
  if (file.rendezvous !== undefined) {
    const v = file.rendezvous;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
      throw invalid(`${where}: "rendezvous" must be a list of KEY@HOST:PORT, not ${quote(v)}`);
    }
    cfg.rendezvous = v.map((x) => parseRendezvous(x, where));
  }
  cfg.punch = bool("punch") ?? cfg.punch;
  if (file.relay_quota !== undefined) cfg.relayQuota = parseRelayQuota(file.relay_quota, where);
  const publicRecord = bool("public");
  if (publicRecord !== undefined) cfg.visibility = publicRecord ? "public" : "private";
  cfg.lan = bool("lan") ?? cfg.lan;
  cfg.lanPort = port("lan_port", 1) ?? cfg.lanPort;
  cfg.dht = bool("dht") ?? cfg.dht;
  cfg.dhtPort = port("dht_port", 0) ?? cfg.dhtPort;
  if (file.dht_bootstrap !== undefined) {
    const v = file.dht_bootstrap;
    if (!Array.isArray(v) || !v.every((x) => typeof x === "string") || v.length > 64) {
      throw invalid(
        `${where}: "dht_bootstrap" must be a list of at most 64 HOST:PORT, not ${quote(v)}`,
      );
    }
    cfg.dhtBootstrap = v.map((x) => parseEndpoint(x));
  }
  cfg.allowRemoteWebhooks = flags.allowRemoteWebhooks === true ||
    (bool("allow_remote_webhooks") ?? false);
  if (file.webhooks !== undefined) cfg.webhooks = parseWebhooks(file.webhooks, where, cfg);
  if (file.expose !== undefined) cfg.expose = parseExposeList(file.expose, where);
  if (file.forward !== undefined) cfg.forward = parseForwardList(file.forward, where);
  const envListen = Deno.env.get("PILOT_LISTEN");
  if (envListen) cfg.listen = parseListen(envListen, "PILOT_LISTEN");
  const envHostname = Deno.env.get("PILOT_HOSTNAME");
  if (envHostname) cfg.hostname = checkHostname(envHostname, "PILOT_HOSTNAME");
  const level = (given: unknown, at: string) => oneOf(given, LOG_LEVELS, at, "log level");
  const format = (given: unknown, at: string) => oneOf(given, LOG_FORMATS, at, "log format");
  if (file.log_level !== undefined) cfg.logLevel = level(file.log_level, `${where} "log_level"`);
  if (file.log_format !== undefined) {
    cfg.logFormat = format(file.log_format, `${where} "log_format"`);
  }
  const envLevel = Deno.env.get("PILOT_LOG_LEVEL");
  if (envLevel) cfg.logLevel = level(envLevel, "PILOT_LOG_LEVEL");
  const envFormat = Deno.env.get("PILOT_LOG_FORMAT");
  if (envFormat) cfg.logFormat = format(envFormat, "PILOT_LOG_FORMAT");
  if (flags.logLevel !== undefined) cfg.logLevel = level(flags.logLevel, "--log-level");
  if (flags.logFormat !== undefined) cfg.logFormat = format(flags.logFormat, "--log-format");
  if (flags.listen !== undefined) cfg.listen = parseListen(flags.listen, "--listen");
  if (flags.hostname !== undefined) cfg.hostname = checkHostname(flags.hostname, "--hostname");
  for (const p of flags.peer ?? []) {
    const [n, e] = parsePeerFlag(p, "--peer");
    cfg.peers[n] = e;
  }
  if (flags.stealth) cfg.requireMac1 = true;
  for (const a of flags.autoApprove ?? []) {
    cfg.autoApprove.push(parseAutoApprove(a, "--auto-approve"));
  }
  for (const d of flags.disable ?? []) cfg.disable.push(checkService(d, "--disable"));
  for (const r of flags.rendezvous ?? []) cfg.rendezvous.push(parseRendezvous(r, "--rendezvous"));
  if (flags.public) cfg.visibility = "public";
  if (flags.noLan) cfg.lan = false;
  if (flags.dht) cfg.dht = true;
  // Strangers reach a node with a rendezvous through its relay, knowing its
  // key: message 1 without mac1 (a scan) gets no answer (docs/PROTOCOL.md §5).
  if (cfg.rendezvous.length > 0) cfg.requireMac1 = true;
  return cfg;
}

/** `given` when it is one of `choices`; anything else is refused, quoting it and naming the choices. */
function oneOf<T extends string>(
  given: unknown,
  choices: readonly T[],
  where: string,
  what: string,
): T {
  if (typeof given === "string" && (choices as readonly string[]).includes(given)) {
    return given as T;
  }
  throw invalid(`Unknown ${what} ${quote(given)} (${where})`, `use one of: ${choices.join(", ")}`);
}

/** `webhooks` in config.json: a list of `{url, events, secret?}`, one per URL. */
function parseWebhooks(v: unknown, where: string, cfg: DaemonConfig): WebhookSpec[] {
  if (!Array.isArray(v) || v.length > MAX_WEBHOOKS) {
    throw invalid(
      `${where}: "webhooks" must be a list of at most ${MAX_WEBHOOKS} {url, events, secret?}, not ${
        quote(v)
      }`,
      'e.g. [{"url": "http://127.0.0.1:8080/pilot", "events": ["message.received"]}]',
    );
  }
  const hooks = v.map((x) => parseWebhook(x, where, cfg.allowRemoteWebhooks));
  const twice = hooks.find((h, i) => hooks.findIndex((o) => o.url === h.url) !== i);
  if (twice !== undefined) {
    throw invalid(`${where}: webhook "${twice.url}" is listed twice`, "list each URL once");
  }
  return hooks;
}

/**
 * Sets (`hook`) or removes (`{url}` alone) the webhook at a URL in the home's
 * `config.json`, keeping every other key and webhook; written atomically.
 * A file that is not a valid config object, or whose `webhooks` is not a
 * list of objects, is refused and left as it is. Returns whether the file
 * changed.
 */
export async function saveConfigWebhook(
  home: string,
  url: string,
  hook: WebhookSpec | null,
): Promise<boolean> {
  const path = join(home, HOME_FILES.config);
  const keep = "nothing was changed; fix the file";
  const file = await configToChange(home, "the webhook", keep);
  const list = file.webhooks ?? [];
  if (
    !Array.isArray(list) ||
    !list.every((h) => typeof h === "object" && h !== null && !Array.isArray(h))
  ) {
    throw invalid(
      `Cannot save the webhook: "webhooks" in "${path}" is not a list of {url, events, secret?}`,
      keep,
    );
  }
  const sameUrl = (h: Record<string, unknown>) => {
    try {
      return typeof h.url === "string" && new URL(h.url).href === url;
    } catch {
      return false;
    }
  };
  const entry = hook === null ? null : {
    url: hook.url,
    events: hook.events,
    ...(hook.secret === null ? {} : { secret: hook.secret }),
  };
  const at = (list as Record<string, unknown>[]).findIndex(sameUrl);
  const next = [...(list as Record<string, unknown>[])];
  if (entry === null) {
    if (at < 0) return false;
    next.splice(at, 1);
  } else if (at < 0) {
    next.push(entry);
  } else {
    if (JSON.stringify(next[at]) === JSON.stringify(entry)) return false;
    next[at] = entry;
  }
  await writeFileAtomic(path, JSON.stringify({ ...file, webhooks: next }, null, 2) + "\n", 0o600);
  return true;
}

/**
 * Sets (`endpoint`) or removes (`null`) one static peer in the home's
 * `config.json`, keeping every other key; written atomically. A file that is
 * not a valid config object, or whose `peers` is not NAME: ENDPOINT, is
 * refused and left as it is. Returns whether the file changed.
 */
export async function saveConfigPeer(
  home: string,
  name: string,
  endpoint: string | null,
): Promise<boolean> {
  const path = join(home, HOME_FILES.config);
  const keep = "nothing was changed; fix the file, or leave out --save";
  const file = await configToChange(home, "the peer", keep);
  const peers = file.peers ?? {};
  if (
    typeof peers !== "object" || peers === null || Array.isArray(peers) ||
    !Object.values(peers).every((v) => typeof v === "string")
  ) {
    throw invalid(
      `Cannot save the peer: "peers" in "${path}" is not an object of NAME: ENDPOINT`,
      keep,
    );
  }
  const table = { ...(peers as Record<string, string>) };
  if (endpoint === null ? !Object.hasOwn(table, name) : table[name] === endpoint) return false;
  if (endpoint === null) delete table[name];
  else table[name] = endpoint;
  await writeFileAtomic(path, JSON.stringify({ ...file, peers: table }, null, 2) + "\n", 0o600);
  return true;
}

/** How a service target reads back: `HOST:PORT`, `[IPv6]:PORT`. */
export function formatTarget(t: ServiceTarget): string {
  return t.hostname.includes(":") ? `[${t.hostname}]:${t.port}` : `${t.hostname}:${t.port}`;
}

/**
 * Parses an exposure's service: `PORT` (on 127.0.0.1), `HOST:PORT` or
 * `[IPv6]:PORT`. Any host the user names is allowed (it is their own
 * daemon); loopback is only the default.
 */
export function parseServiceTarget(text: string, where: string): ServiceTarget {
  const t = text.trim();
  const m = /^(\d{1,5})$/.exec(t) ?? /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(t) ??
    /^([A-Za-z0-9.-]+):(\d{1,5})$/.exec(t);
  const port = m === null ? NaN : Number(m[m.length - 1]);
  if (m === null || !(port >= 1 && port <= 65_535)) {
    throw invalid(
      `Cannot expose "${text}" (${where}): expected PORT, HOST:PORT or [IPv6]:PORT`,
      "e.g. 8080 for 127.0.0.1:8080 (ports 1-65535)",
    );
  }
  return { hostname: m.length === 2 ? "127.0.0.1" : m[1]!, port };
}

/**
 * Checks one `--allow` value: a full key (64 hex, returned lower case) or a
 * fingerprint (canonical). An address is refused: it is a name, not an identity.
 */
export function parseAllow(text: string, where: string): string {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return t.toLowerCase();
  try {
    return parseFingerprint(t);
  } catch {
    throw invalid(
      `Cannot allow "${text}" (${where}): expected a full key or a fingerprint`,
      "give the peer's fingerprint or 64-hex key (from `pilot trust`); an address is only a name",
    );
  }
}

function vportOf(v: unknown, what: string, where: string): number {
  if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 65_535) return v;
  throw invalid(`${where}: ${what} "vport" must be a port from 1 to 65535, not ${quote(v)}`);
}

function entriesOf(v: unknown, key: string, where: string): Record<string, unknown>[] {
  if (
    !Array.isArray(v) || !v.every((x) => typeof x === "object" && x !== null && !Array.isArray(x))
  ) {
    throw invalid(`${where}: "${key}" must be a list of objects, not ${quote(v)}`);
  }
  return v as Record<string, unknown>[];
}

function onlyKeys(e: Record<string, unknown>, keys: string[], what: string, where: string): void {
  const extra = Object.keys(e).find((k) => !keys.includes(k));
  if (extra !== undefined) {
    throw invalid(`${where}: ${what} has unknown key "${extra}"`, `known: ${keys.join(", ")}`);
  }
}

/** `expose` in config.json: `[{"target": "127.0.0.1:8080", "vport": 80, "allow": [KEY]}]`. */
function parseExposeList(v: unknown, where: string): ExposeEntry[] {
  const seen = new Set<number>();
  return entriesOf(v, "expose", where).map((e) => {
    onlyKeys(e, ["target", "vport", "allow"], "an expose entry", where);
    if (typeof e.target !== "string") {
      throw invalid(
        `${where}: an expose entry's "target" must be a string, not ${quote(e.target)}`,
      );
    }
    const vport = vportOf(e.vport ?? 80, "an expose entry's", where);
    if (seen.has(vport)) throw invalid(`${where}: "expose" lists vport ${vport} twice`);
    seen.add(vport);
    const allow = e.allow ?? [];
    if (!Array.isArray(allow) || !allow.every((x) => typeof x === "string")) {
      throw invalid(
        `${where}: an expose entry's "allow" must be a list of keys, not ${quote(allow)}`,
      );
    }
    return {
      vport,
      target: parseServiceTarget(e.target, where),
      allow: allow.map((a) => parseAllow(a, where)),
    };
  });
}

/** `forward` in config.json: `[{"local_port": 9000, "peer": "NAME", "vport": 80}]`. */
function parseForwardList(v: unknown, where: string): ForwardEntry[] {
  const seen = new Set<number>();
  return entriesOf(v, "forward", where).map((e) => {
    onlyKeys(e, ["local_port", "peer", "vport", "timeout_ms"], "a forward entry", where);
    const lp = e.local_port;
    if (typeof lp !== "number" || !Number.isInteger(lp) || lp < 1 || lp > 65_535) {
      throw invalid(`${where}: a forward entry's "local_port" must be 1-65535, not ${quote(lp)}`);
    }
    if (seen.has(lp)) throw invalid(`${where}: "forward" lists local_port ${lp} twice`);
    seen.add(lp);
    if (typeof e.peer !== "string" || e.peer === "") {
      throw invalid(`${where}: a forward entry's "peer" must be a peer name, not ${quote(e.peer)}`);
    }
    const t = e.timeout_ms ?? 10_000;
    if (typeof t !== "number" || !Number.isInteger(t) || t < 1 || t > 120_000) {
      throw invalid(`${where}: a forward entry's "timeout_ms" must be 1-120000, not ${quote(t)}`);
    }
    return {
      localPort: lp,
      peer: e.peer,
      vport: vportOf(e.vport ?? 80, "a forward entry's", where),
      timeoutMs: t,
    };
  });
}

/** The config.json form of an exposure. */
export function exposeJson(e: ExposeEntry): Record<string, unknown> {
  return {
    target: formatTarget(e.target),
    vport: e.vport,
    ...(e.allow.length > 0 ? { allow: e.allow } : {}),
  };
}

/** The config.json form of a forward. */
export function forwardJson(f: ForwardEntry): Record<string, unknown> {
  return { local_port: f.localPort, peer: f.peer, vport: f.vport, timeout_ms: f.timeoutMs };
}

/**
 * Sets (`entry`) or removes (`null`) the one entry of `expose` (by `vport`)
 * or `forward` (by `local_port`) in the home's config.json whose key field is
 * `id`, keeping every other key; written atomically. A file that is not a
 * valid config is refused and left as it is. Returns whether the file changed.
 */
export async function saveConfigTunnel(
  home: string,
  list: "expose" | "forward",
  id: number,
  entry: Record<string, unknown> | null,
): Promise<boolean> {
  const path = join(home, HOME_FILES.config);
  const keep = "nothing was changed; fix the file, or leave out --save";
  let file: Record<string, unknown>;
  try {
    file = await readConfigFile(home);
    // The whole file must load, so what is saved also starts.
    if (file[list] !== undefined) {
      if (list === "expose") parseExposeList(file[list], "config.json");
      else parseForwardList(file[list], "config.json");
    }
  } catch (e) {
    if (!(e instanceof PilotError)) throw e;
    throw new PilotError(e.code, `Cannot save the ${list}: ${e.message}`, `${keep} (${e.hint})`);
  }
  const field = list === "expose" ? "vport" : "local_port";
  const before = (file[list] ?? []) as Record<string, unknown>[];
  const after = before.filter((e) => (e[field] ?? 80) !== id);
  if (entry !== null) after.push(entry);
  if (JSON.stringify(before) === JSON.stringify(after)) return false;
  const next: Record<string, unknown> = { ...file, [list]: after };
  if (after.length === 0) delete next[list];
  await writeFileAtomic(path, JSON.stringify(next, null, 2) + "\n", 0o600);
  return true;
}
