/**
 * LAN discovery (PROTOCOL.md §14; issue 10): this node's announcements on
 * its link, and the table of nodes heard there (`discovery/lan_table.ts`).
 *
 * Sockets: one receiving socket on the well-known port (shared with other
 * daemons on the host: `reuseAddress`), joined to the IPv4 group on each
 * interface the node listens on; one sending socket per such interface,
 * bound to its address so the kernel sends the group's datagrams out of it
 * (Deno has no IP_MULTICAST_IF) and receivers see that address as source.
 * TTL 1: announcements never leave the link. IPv6 (ff12::7440) only when
 * the node listens on `::`, best effort on the default interface.
 *
 * Timing: an announcement with `solicit` set at start (nodes that hear it
 * answer within a second, so a new node learns its neighbours at once),
 * then every LAN_ANNOUNCE_MS with jitter, and again when the endpoints a
 * public node's record carries change. Each one is signed afresh (a new
 * serial), so a replayed old one is `stale`.
 *
 * @module
 */
import {
  LAN_ANNOUNCE_JITTER_MS,
  LAN_ANNOUNCE_MS,
  LAN_ANSWER_MIN_MS,
  LAN_GROUP_V4,
  LAN_GROUP_V6,
  LAN_RATE_KEYS,
  LAN_RECORD_TTL_MS,
  LAN_SOURCE_RATE,
} from "../constants.ts";
import { type Endpoint, isLoopbackHost } from "../discovery/endpoint.ts";
import { LanTable } from "../discovery/lan_table.ts";
import { signOwnPresence } from "../discovery/presence.ts";
import type { PeerQuery } from "../discovery/resolver.ts";
import type { Identity } from "../identity/identity.ts";
import { RateLimiter } from "../session/rate_limit.ts";
import { encodeLanAnnouncement, MAX_LAN_ANNOUNCEMENT } from "../wire/lan_announcement.ts";
import type { RecordEndpoint } from "../wire/presence_record.ts";
import type { Discovered } from "./reach.ts";

/** How often new interfaces are joined, and a public node checks whether its endpoints changed (ms). */
const LAN_CHANGE_CHECK_MS = 5_000;

/** What `pilot info` shows of LAN discovery. */
export interface LanStats {
  /** The UDP port announcements go to. */
  port: number;
  /** Nodes heard and not yet expired. */
  known: number;
  /** Announcements taken. */
  heard: number;
  /** Announcements this node sent. */
  announced: number;
  /** Announcements dropped, by reason (every reason, from 0). */
  dropped: Record<string, number>;
}

/** Options of {@linkcode LanDiscovery.start}. */
export interface LanOptions {
  /** This node's identity (signs the records). */
  identity: Identity;
  /** Its hostname, or null. */
  hostname: string | null;
  /** Private nodes' records carry no endpoints. */
  visibility: "private" | "public";
  /** The UDP endpoint its sessions listen on. */
  listen: Endpoint;
  /** The multicast port (LAN_PORT unless configured). */
  port: number;
}

/** Whether a node listening at `listen` can be reached from its LAN at all. */
export function lanReachable(listen: { hostname: string }): boolean {
  return !isLoopbackHost(listen.hostname);
}

/** The node's IPv4 interface addresses its sessions listen on (all for a wildcard). */
function interfaces(listen: Endpoint): string[] {
  let all: Deno.NetworkInterfaceInfo[];
  try {
    all = Deno.networkInterfaces();
  } catch {
    return [];
  }
  const v4 = [...new Set(all.filter((i) => i.family === "IPv4").map((i) => i.address))]
    .filter((a) => !isLoopbackHost(a));
  const wildcard = listen.hostname === "0.0.0.0" || listen.hostname === "::";
  return wildcard ? v4 : v4.filter((a) => a === listen.hostname);
}

/** A node's LAN presence: announcing, listening, and the table of what it heard. */
export class LanDiscovery {
  /** What it heard. */
  readonly table: LanTable;
  #o: LanOptions;
  #receivers: Deno.DatagramConn[] = [];
  /** The IPv4 receiving socket on the group's port, once bound. */
  #rx4: Deno.DatagramConn | null = null;
  /** Interface addresses joined (and `::` for IPv6). */
  #joined = new Set<string>();
  #senders: { conn: Deno.DatagramConn; group: string }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #answerTimer: ReturnType<typeof setTimeout> | undefined;
  #changeTimer: ReturnType<typeof setInterval> | undefined;
  #lastAnnounce = -Infinity;
  #lastSerial = 0;
  #published = "";
  #closed = false;
  #announced = 0;

  private constructor(options: LanOptions) {
    this.#o = options;
    this.table = new LanTable({
      selfKeyHex: options.identity.publicKey.toHex(),
      limiter: new RateLimiter({ ...LAN_SOURCE_RATE, maxKeys: LAN_RATE_KEYS }),
    });
  }

  /**
   * Joins the group on the node's interfaces and announces it (in the
   * background: `ready` settles when the first announcement is out). A host
   * where no socket can be set up (no interface, no multicast route) gets a
   * LAN presence that hears and sends nothing, rather than a daemon that fails.
   */
  static start(options: LanOptions): LanDiscovery {
    const lan = new LanDiscovery(options);
    lan.ready = lan.#open().then(() => {
      // Closed while the sockets were being set up: they go at once.
      if (lan.#closed) return lan.#closeSockets();
      lan.announce(true);
      lan.#schedule();
      lan.#changeTimer = setInterval(() => {
        // A new interface: announce there at once, and ask who is on it.
        void lan.#open().then((added) => added ? lan.announce(true) : lan.#announceChanges());
      }, LAN_CHANGE_CHECK_MS);
    });
    return lan;
  }

  /** Settles once the sockets are set up and the first announcement is sent. */
  ready: Promise<void> = Promise.resolve();

  /**
   * Joins the group on every interface not joined yet (at start, then every
   * few seconds: a laptop's Wi-Fi may come up after the daemon); true when
   * it joined any.
   */
  async #open(): Promise<boolean> {
    const { port, listen } = this.#o;
    const before = this.#joined.size;
    for (const ip of interfaces(listen)) {
      if (this.#joined.has(ip) || this.#closed) continue;
      this.#joined.add(ip);
      if (this.#rx4 === null) {
        try {
          this.#rx4 = Deno.listenDatagram({
            transport: "udp",
            hostname: "0.0.0.0",
            port,
            reuseAddress: true,
          });
          this.#receivers.push(this.#rx4);
          void this.#serve(this.#rx4);
        } catch {
          // The port is taken by something that does not share it: this node still announces.
        }
      }
      try {
        const m = await this.#rx4?.joinMulticastV4(LAN_GROUP_V4, ip);
        await m?.setLoopback(true);
      } catch {
        // Not joinable on this interface (no multicast): it is not heard there.
      }
      try {
        const tx = Deno.listenDatagram({ transport: "udp", hostname: ip, port: 0 });
        this.#senders.push({ conn: tx, group: LAN_GROUP_V4 });
        const m = await tx.joinMulticastV4(LAN_GROUP_V4, ip);
        await m.setTTL(1);
        await m.setLoopback(true);
      } catch {
        // This interface cannot send to the group (the default TTL is 1 anyway).
      }
    }
    if (listen.hostname === "::" && !this.#joined.has("::")) {
      this.#joined.add("::");
      try {
        const rx = Deno.listenDatagram({
          transport: "udp",
          hostname: "::",
          port,
          reuseAddress: true,
        });
        this.#receivers.push(rx);
        void this.#serve(rx);
        const m = await rx.joinMulticastV6(LAN_GROUP_V6, 0);
        await m.setLoopback(true);
        const tx = Deno.listenDatagram({ transport: "udp", hostname: "::", port: 0 });
        this.#senders.push({ conn: tx, group: LAN_GROUP_V6 });
      } catch {
        // IPv6 multicast unavailable here: IPv4 still works.
      }
    }
    if (this.#closed) this.#closeSockets();
    return this.#joined.size > before;
  }

  async #serve(rx: Deno.DatagramConn): Promise<void> {
    // One byte more than the largest announcement: a longer datagram shows as oversized.
    const buffer = new Uint8Array(MAX_LAN_ANNOUNCEMENT + 1);
    while (!this.#closed) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await rx.receive(buffer);
      } catch {
        return;
      }
      const from = got[1] as Deno.NetAddr;
      const v = this.table.receive(got[0], { hostname: from.hostname, port: from.port });
      if (v.taken && v.solicit) this.#answerSoon();
    }
  }

  /** The endpoints a public node's record carries: the listen address, or each interface's. */
  #endpoints(): RecordEndpoint[] {
    if (this.#o.visibility !== "public") return [];
    const { listen } = this.#o;
    const wildcard = listen.hostname === "0.0.0.0" || listen.hostname === "::";
    const hosts = wildcard ? interfaces(listen) : [listen.hostname];
    return hosts.slice(0, 8).map((h) => ({ kind: "local", hostname: h, port: listen.port }));
  }

  /** Signs and multicasts this node's announcement now. */
  announce(solicit = false): void {
    if (this.#closed) return;
    const { identity, hostname, visibility, listen } = this.#o;
    const now = Date.now();
    this.#lastSerial = Math.max(now, this.#lastSerial + 1);
    const endpoints = this.#endpoints();
    this.#published = JSON.stringify(endpoints);
    const record = signOwnPresence(identity, {
      hostname: hostname ?? "",
      visibility,
      serial: this.#lastSerial,
      expiresAt: now + LAN_RECORD_TTL_MS,
      endpoints,
    });
    const bytes = encodeLanAnnouncement({ solicit, port: listen.port, record });
    this.#lastAnnounce = performance.now();
    for (const { conn, group } of this.#senders) {
      this.#announced++;
      conn.send(bytes, { transport: "udp", hostname: group, port: this.#o.port }).catch(() => {});
    }
  }

  /** Announces again when what a public record says has changed. */
  #announceChanges(): void {
    if (this.#o.visibility === "public" && JSON.stringify(this.#endpoints()) !== this.#published) {
      this.announce();
    }
  }

  #schedule(): void {
    const jitter = (Math.random() * 2 - 1) * LAN_ANNOUNCE_JITTER_MS;
    this.#timer = setTimeout(() => {
      this.announce();
      this.#schedule();
    }, LAN_ANNOUNCE_MS + jitter);
  }

  /** A soliciting node was heard: announce within a short random delay, at most once a second. */
  #answerSoon(): void {
    if (this.#answerTimer !== undefined || this.#closed) return;
    const earliest = this.#lastAnnounce + LAN_ANSWER_MIN_MS - performance.now();
    const delay = Math.max(earliest, 0) + Math.random() * 250;
    this.#answerTimer = setTimeout(() => {
      this.#answerTimer = undefined;
      this.announce();
    }, delay);
  }

  /** The one node on the LAN `query` names, or null (see `LanTable.discover`). */
  discover(query: PeerQuery): Discovered | null {
    return this.table.discover(query);
  }

  /** What `pilot info` shows. */
  stats(): LanStats {
    return {
      port: this.#o.port,
      known: this.table.size,
      heard: this.table.heard,
      announced: this.#announced,
      dropped: { ...this.table.dropped },
    };
  }

  /** Stops announcing and closes the sockets. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#answerTimer);
    clearInterval(this.#changeTimer);
    this.#closeSockets();
  }

  #closeSockets(): void {
    for (const c of [...this.#receivers, ...this.#senders.map((s) => s.conn)]) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
  }
}
