/**
 * What the daemon's log says happened: one line per meaningful event of the
 * event bus (a peer up or down, trust asked, given, refused or revoked, a
 * name conflict, a path change; messages and tasks at debug), and a summary
 * of the datagrams dropped, by reason, once per interval when there were
 * any. A flood of junk is one line a minute, never one line per datagram.
 *
 * @module
 */
import type { EventType, NodeEvent } from "./events.ts";
import { log, type LogLevel, logs } from "./log.ts";

/** The level of each event's line: what an operator wants by default is at info. */
const EVENT_LEVELS: Record<EventType, LogLevel> = {
  "trust.requested": "info",
  "trust.approved": "info",
  "trust.rejected": "info",
  "trust.revoked": "info",
  "message.received": "debug",
  "message.delivered": "debug",
  "message.refused": "warn",
  "message.expired": "warn",
  "peer.up": "info",
  "peer.down": "info",
  "peer.name_conflict": "warn",
  "peer.path_changed": "info",
  "task.received": "debug",
  "task.accepted": "debug",
  "task.declined": "debug",
  "task.progress": "debug",
  "task.result": "debug",
  "task.expired": "warn",
};

/** A peer as a line names it: its hostname and address, or its address. */
function peerText(peer: unknown): string {
  if (typeof peer !== "object" || peer === null) return "a peer";
  const { address, hostname } = peer as { address?: unknown; hostname?: unknown };
  return typeof hostname === "string" && hostname !== ""
    ? `${hostname} (${String(address)})`
    : String(address);
}

/** A peer-written text, quoted so that it cannot pass for more of the line. */
function quoted(text: unknown): string {
  return JSON.stringify(String(text ?? ""));
}

/** The sentence one event's line says. */
export function eventMessage(event: NodeEvent): string {
  const d = event.data;
  const who = peerText(d.peer);
  const incoming = d.direction === "incoming";
  switch (event.type) {
    case "peer.up":
      return `${who} is up`;
    case "peer.down":
      return `${who} is down`;
    case "peer.path_changed":
      return d.path === "relay"
        ? `${who} is now reached through the relay ${String(d.via)}`
        : `${who} is now reached directly at ${String(d.endpoint)}`;
    case "peer.name_conflict":
      return `${who} claims the name ${quoted(d.name)}, which is bound to another key; ` +
        "the name keeps resolving to that binding";
    case "trust.requested":
      return `${who} asks for trust: ${quoted(d.reason)}`;
    case "trust.approved":
      return incoming ? `${who} approved our trust request` : `trusting ${who} (${String(d.via)})`;
    case "trust.rejected":
      return incoming
        ? `${who} rejected our trust request: ${quoted(d.reason)}`
        : `rejected ${who}'s trust request`;
    case "trust.revoked":
      return incoming ? `${who} stopped trusting this node` : `no longer trusting ${who}`;
    case "message.received":
      return `message ${quoted(d.id)} from ${who} (${String(d.bytes)} bytes)`;
    case "message.delivered":
    case "message.refused":
    case "message.expired":
      return `message ${quoted(d.id)} to ${who} ${event.type.slice("message.".length)}`;
    default:
      // task.*: the task and where it stands.
      return `task ${quoted(d.id)} with ${who}: ${String(d.state)}`;
  }
}

/** Events about a session, which any stranger can cause: at info only for a trusted peer. */
const SESSION_EVENTS: ReadonlySet<EventType> = new Set([
  "peer.up",
  "peer.down",
  "peer.path_changed",
]);

/**
 * Logs every event `listen` hears at its level; returns the function that
 * stops. Peer-written text (a trust request's reason) is quoted. A
 * stranger's session coming and going is at debug: a flood of handshakes
 * must not become a flood of log lines.
 */
export function logEvents(
  listen: (l: (event: NodeEvent) => void) => () => void,
  isTrusted: (keyHex: string) => boolean,
): () => void {
  return listen((event) => {
    const peer = event.data.peer as { public_key?: unknown } | undefined;
    const stranger = SESSION_EVENTS.has(event.type) &&
      !(typeof peer?.public_key === "string" && isTrusted(peer.public_key));
    const level = stranger ? "debug" : EVENT_LEVELS[event.type];
    if (!logs(level)) return;
    log(eventMessage(event), { level, event: event.type, fields: event.data });
  });
}

/**
 * Says once per interval how many datagrams were dropped, by reason, when
 * any were: `tick()` is called by the node's once-a-second timer (no timer
 * of its own), `counters()` gives the running totals.
 */
export class DropSummary {
  #counters: () => Record<string, number>;
  #intervalMs: number;
  #last: Record<string, number>;
  #lastAt: number;
  #now: () => number;

  /** Starts counting from the totals `counters()` gives now. */
  constructor(
    counters: () => Record<string, number>,
    intervalMs: number,
    now: () => number = () => performance.now(),
  ) {
    this.#counters = counters;
    this.#intervalMs = intervalMs;
    this.#now = now;
    this.#last = { ...counters() };
    this.#lastAt = now();
  }

  /** Logs the interval's drops, if the interval is over and there were any. */
  tick(): void {
    const now = this.#now();
    if (now - this.#lastAt < this.#intervalMs) return;
    const totals = this.#counters();
    const since: Record<string, number> = {};
    let all = 0;
    for (const [reason, n] of Object.entries(totals)) {
      const d = n - (this.#last[reason] ?? 0);
      if (d > 0) {
        since[reason] = d;
        all += d;
      }
    }
    const seconds = Math.round((now - this.#lastAt) / 1000);
    this.#last = { ...totals };
    this.#lastAt = now;
    if (all === 0) return;
    const byReason = Object.entries(since).sort((a, b) => b[1] - a[1])
      .map(([r, n]) => `${r} ${n}`).join(", ");
    log(`${all} datagrams dropped in the last ${seconds} s: ${byReason}`, {
      event: "drops",
      fields: { dropped: all, seconds, by_reason: since },
    });
  }
}
