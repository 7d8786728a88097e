/**
 * `pilot status`: this node and every peer it knows on one screen, like
 * `tailscale status`. Gathered from the routes behind `info`, `peers`,
 * `trust`, `pending`, `inbox` and `outbox` at once; a peer appears when it
 * has a session, is trusted (offline ones too) or asked for trust.
 * `pilot daemon status` stays the process view.
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import {
  INBOX,
  INFO,
  LIMIT_FIELD,
  OUTBOX,
  PEERS,
  PENDING,
  TRUST,
} from "../../control/contract/mod.ts";
import {
  arr,
  bool,
  type Infer,
  int,
  nullable,
  num,
  obj,
  oneOf,
  str,
} from "../../control/schema.ts";
import { command, type CommandSpec } from "../command.ts";
import { keyValues, table } from "../output.ts";
import { peerText } from "../peer_text.ts";
import { ago, shortAge } from "../time_ago.ts";

const STATUS_PEER = obj({
  address: str,
  hostname: nullable(str),
  fingerprint: str,
  public_key: str,
  trusted: bool,
  // Both sides trust each other (false unless trusted).
  mutual: bool,
  // It asked this node for trust and waits in `pilot pending`.
  pending: bool,
  // How frames reach it; null when it has no session (offline).
  path: nullable(oneOf("direct", "relay")),
  // Its UDP endpoint, or the relaying rendezvous's address on a relay path; null offline.
  endpoint: nullable(str),
  rtt_ms: nullable(num),
  // ISO time of its last authenticated frame (for an offline trusted peer, as remembered).
  last_seen: nullable(str),
  // Its messages in this node's inbox, and this node's messages queued for it.
  inbox: int,
  queued: int,
  // Its packets dropped by the trust gate in the current session.
  dropped: int,
});

/** Schema of `pilot status --json`'s data. */
export const STATUS_OUTPUT = obj({
  node: obj({
    address: str,
    hostname: nullable(str),
    fingerprint: str,
    listen: str,
    // The public endpoint this node's rendezvous observe, or null.
    observed: nullable(str),
    uptime_s: int,
    version: str,
  }),
  peers: arr(STATUS_PEER),
  // Pending trust requests, inbox messages, queued messages, and frames this
  // node dropped for any reason (`pilot info --json` has them by reason).
  counts: obj({ pending: int, inbox: int, queued: int, dropped: int }),
});

type Status = Infer<typeof STATUS_OUTPUT>;
type StatusPeer = Infer<typeof STATUS_PEER>;

/** Every message in the inbox, page by page: how many each sender has. */
async function inboxCounts(client: PilotClient): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const limit = LIMIT_FIELD.max;
  let after = 0;
  while (true) {
    const page = await client.api.inbox({ after, limit });
    for (const m of page.messages) counts.set(m.from_key, (counts.get(m.from_key) ?? 0) + 1);
    const last = page.messages.at(-1);
    if (last === undefined || page.messages.length < limit) return counts;
    after = last.seq;
  }
}

/** The status from the routes' answers: one entry per peer key. */
export function statusOf(parts: {
  info: Infer<typeof INFO.output>;
  peers: Infer<typeof PEERS.output>;
  trust: Infer<typeof TRUST.output>;
  pending: Infer<typeof PENDING.output>;
  inbox: ReadonlyMap<string, number>;
  outbox: Infer<typeof OUTBOX.output>;
}): Status {
  const { info } = parts;
  const queued = new Map<string, number>();
  for (const m of parts.outbox.messages) {
    queued.set(m.to.public_key, (queued.get(m.to.public_key) ?? 0) + 1);
  }
  const byKey = new Map<string, StatusPeer>();
  const entry = (
    p: { address: string; hostname: string | null; fingerprint: string; public_key: string },
  ): StatusPeer => {
    let e = byKey.get(p.public_key);
    if (e === undefined) {
      e = {
        address: p.address,
        hostname: p.hostname,
        fingerprint: p.fingerprint,
        public_key: p.public_key,
        trusted: false,
        mutual: false,
        pending: false,
        path: null,
        endpoint: null,
        rtt_ms: null,
        last_seen: null,
        inbox: parts.inbox.get(p.public_key) ?? 0,
        queued: queued.get(p.public_key) ?? 0,
        dropped: 0,
      };
      byKey.set(p.public_key, e);
    }
    return e;
  };
  for (const p of parts.peers.peers) {
    const e = entry(p);
    e.trusted = p.trusted;
    e.path = p.path;
    e.endpoint = p.path === "relay" ? p.via : p.endpoint;
    e.rtt_ms = p.rtt_ms;
    e.last_seen = p.last_seen;
    e.dropped = p.dropped;
  }
  for (const t of parts.trust.trusted) {
    const e = entry(t);
    e.trusted = true;
    e.mutual = t.mutual;
    e.hostname ??= t.hostname;
    e.last_seen ??= t.last_seen;
  }
  for (const p of parts.pending.pending) entry(p).pending = true;
  // The node itself is never its own peer (the session layer refuses that session too).
  byKey.delete(info.public_key);
  const peers = [...byKey.values()].sort((a, b) =>
    Number(b.path !== null) - Number(a.path !== null) || a.address.localeCompare(b.address)
  );
  return {
    node: {
      address: info.address,
      hostname: info.hostname,
      fingerprint: info.fingerprint,
      listen: info.listen,
      observed: info.reachability?.observed ?? null,
      uptime_s: info.uptime_s,
      version: info.version,
    },
    peers,
    counts: {
      pending: parts.pending.pending.length,
      inbox: [...parts.inbox.values()].reduce((a, n) => a + n, 0),
      queued: parts.outbox.messages.length,
      dropped: Object.values(info.drops).reduce((a, n) => a + n, 0),
    },
  };
}

function trustWord(p: StatusPeer): string {
  if (p.trusted) return p.mutual ? "mutual" : "trusted";
  return p.pending ? "pending" : "no";
}

function pathText(p: StatusPeer): string {
  if (p.path === null) return "offline";
  return p.path === "relay" ? `relay ${p.endpoint ?? "-"}` : `direct ${p.endpoint ?? "-"}`;
}

/** The `status` command. */
export const STATUS_COMMAND: CommandSpec = command({
  name: "status",
  routes: [INFO.route, PEERS.route, TRUST.route, PENDING.route, INBOX.route, OUTBOX.route],
  summary: "show this node and its peers at a glance: trust, path, RTT, last seen, counts",
  args: [],
  flags: {},
  output: STATUS_OUTPUT,
  errors: ["not_running", "version_mismatch"],
  async run(ctx) {
    const client = await PilotClient.open(ctx.home);
    const [info, peers, trust, pending, inbox, outbox] = await Promise.all([
      client.api.info(),
      client.api.peers(),
      client.api.trust(),
      client.api.pending(),
      inboxCounts(client),
      client.api.outbox(),
    ]);
    return statusOf({ info, peers, trust, pending, inbox, outbox });
  },
  human: (o) => {
    const n = o.node;
    const head = keyValues([
      [
        "node",
        `${n.address}  ${n.fingerprint}  ${n.hostname === null ? "-" : peerText(n.hostname)}`,
      ],
      ["listen", n.observed === null ? n.listen : `${n.listen} (public ${n.observed})`],
      ["uptime", `${shortAge(n.uptime_s * 1000)}, version ${n.version}`],
      [
        "counts",
        `${o.counts.pending} pending, ${o.counts.inbox} in inbox, ${o.counts.queued} queued, ` +
        `${o.counts.dropped} dropped`,
      ],
    ]);
    if (o.peers.length === 0) return `${head}\n\nno peers`;
    const rows = table(
      [
        "ADDRESS",
        "FINGERPRINT",
        "TRUST",
        "PATH",
        "RTT",
        "LAST SEEN",
        "INBOX",
        "QUEUED",
        "DROPPED",
        "HOSTNAME",
      ],
      o.peers.map((p) => [
        p.address,
        p.fingerprint,
        trustWord(p),
        pathText(p),
        p.rtt_ms === null ? "-" : `${p.rtt_ms}ms`,
        ago(p.last_seen),
        String(p.inbox),
        String(p.queued),
        String(p.dropped),
        p.hostname === null ? "-" : peerText(p.hostname),
      ]),
    );
    return `${head}\n\n${rows}`;
  },
});
