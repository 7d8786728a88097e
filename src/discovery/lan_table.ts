/**
 * What a node heard on its LAN (PROTOCOL.md §14): the nodes whose signed
 * announcements reached it, each with where to send a handshake. Sans-IO:
 * the daemon hands in datagrams with their source and a clock.
 *
 * Order of checks, cheapest first: size, then a per-source-IP rate limit
 * (before any hash or signature), the header, our own key, then the record
 * exactly as a rendezvous answer is checked (`verifyPresence`: shape,
 * lifetime, key, stamp, signature), then freshness against what the same
 * key announced before (a replay never moves a node). Every refusal is
 * counted by reason.
 *
 * Where a node is: the datagram's source IP and the session port in the
 * header, for private and public nodes alike (a private node's record has no
 * endpoints; on a link its IP is no secret to its neighbours). Neither is
 * signed: each is a hint, and the handshake still proves the record's key.
 *
 * The table is bounded (least recently heard forgotten first) and forgets a
 * node LAN_RECORD_TTL_MS after it was last heard, or when its record expires.
 *
 * @module
 */
import { DecodeError } from "../bytes.ts";
import { LAN_MAX_NODES, LAN_RECORD_TTL_MS } from "../constants.ts";
import { decodeLanAnnouncement, MAX_LAN_ANNOUNCEMENT } from "../wire/lan_announcement.ts";
import type { IpEndpoint } from "../wire/ip_endpoint.ts";
import { PresenceError, type VerifiedPresence, verifyPresence } from "./presence.ts";
import { PilotError } from "../errors.ts";
import type { EndpointSpec } from "./endpoint.ts";
import { answers, type PeerQuery } from "./resolver.ts";

/** Why an announcement was not taken. */
export type LanDropReason =
  | "oversized"
  | "rate_limited"
  | "malformed"
  | "self"
  | "bad_record"
  | "stale";

/** Every drop reason, in the order `pilot info` lists them. */
export const LAN_DROP_REASONS: readonly LanDropReason[] = [
  "oversized",
  "rate_limited",
  "malformed",
  "self",
  "bad_record",
  "stale",
];

/** A node heard on the LAN. */
export interface LanNode {
  /** Its verified record. */
  presence: VerifiedPresence;
  /** Where to send a handshake: the announcement's source IP and session port. */
  endpoint: IpEndpoint;
  /** When it was last heard (the table's clock, ms). */
  heardAt: number;
}

/** What taking one datagram did. */
export type LanVerdict =
  | { taken: true; node: LanNode; solicit: boolean; isNew: boolean }
  | { taken: false; reason: LanDropReason };

/** Options of {@linkcode LanTable}. */
export interface LanTableOptions {
  /** This node's key (hex): its own announcements, looped back, are dropped. */
  selfKeyHex: string;
  /** Wall clock (ms) for record expiry; defaults to `Date.now`. */
  now?: () => number;
  /** Monotonic clock (ms) for the rate limit and the table's ages; defaults to `performance.now`. */
  monotonic?: () => number;
  /** Most nodes kept (default LAN_MAX_NODES). */
  maxNodes?: number;
  /**
   * The per-source limit, asked with the source IP before anything else is
   * checked (the daemon gives a `RateLimiter` of LAN_SOURCE_RATE; it lives
   * in the session layer, above this one).
   */
  limiter: { allow(sourceIp: string): boolean };
}

/** The nodes heard on the LAN, and why others were not taken. */
export class LanTable {
  #selfKeyHex: string;
  #now: () => number;
  #monotonic: () => number;
  #maxNodes: number;
  #limiter: { allow(sourceIp: string): boolean };
  /** By key (hex), least recently heard first. */
  #nodes = new Map<string, LanNode>();
  /** Announcements taken. */
  heard = 0;
  /** Announcements dropped, by reason. */
  readonly dropped: Record<LanDropReason, number> = Object.fromEntries(
    LAN_DROP_REASONS.map((r) => [r, 0]),
  ) as Record<LanDropReason, number>;

  /** Creates an empty table. */
  constructor(options: LanTableOptions) {
    this.#selfKeyHex = options.selfKeyHex;
    this.#now = options.now ?? (() => Date.now());
    this.#monotonic = options.monotonic ?? (() => performance.now());
    this.#maxNodes = options.maxNodes ?? LAN_MAX_NODES;
    this.#limiter = options.limiter;
  }

  /** Takes one datagram from `from` (its source IP; the source port is not used). */
  receive(bytes: Uint8Array, from: IpEndpoint): LanVerdict {
    if (bytes.length > MAX_LAN_ANNOUNCEMENT) return this.#drop("oversized");
    if (!this.#limiter.allow(from.hostname)) return this.#drop("rate_limited");
    let announcement;
    try {
      announcement = decodeLanAnnouncement(bytes);
    } catch (e) {
      if (e instanceof DecodeError) return this.#drop("malformed");
      throw e;
    }
    // The key is the record's bytes 1..33: our own, looped back, costs no signature check.
    if (announcement.record.subarray(1, 33).toHex() === this.#selfKeyHex) return this.#drop("self");
    let presence: VerifiedPresence;
    try {
      presence = verifyPresence(announcement.record, this.#now());
    } catch (e) {
      if (e instanceof PresenceError) {
        return this.#drop(e.reason === "malformed" ? "malformed" : "bad_record");
      }
      throw e;
    }
    const key = presence.record.publicKey.toHex();
    const endpoint = { hostname: from.hostname, port: announcement.port };
    const known = this.#live(key);
    if (known !== undefined) {
      const serial = known.presence.record.serial;
      const same = known.endpoint.hostname === endpoint.hostname &&
        known.endpoint.port === endpoint.port;
      // An older record, or the same one from elsewhere (a replay), never moves a node.
      if (presence.record.serial < serial || (presence.record.serial === serial && !same)) {
        return this.#drop("stale");
      }
    }
    const node: LanNode = { presence, endpoint, heardAt: this.#monotonic() };
    this.#nodes.delete(key);
    this.#nodes.set(key, node);
    while (this.#nodes.size > this.#maxNodes) {
      this.#nodes.delete(this.#nodes.keys().next().value!);
    }
    this.heard++;
    return { taken: true, node, solicit: announcement.solicit, isNew: known === undefined };
  }

  /** Every live node whose record answers `query` (by key, address or hostname). */
  lookup(query: PeerQuery): LanNode[] {
    this.#expire();
    return [...this.#nodes.values()].filter((n) =>
      answers(query, {
        keyHex: n.presence.record.publicKey.toHex(),
        address: n.presence.address,
        hostname: n.presence.record.hostname || null,
      })
    );
  }

  /**
   * The one node a name, address or key names, as a handshake target: null
   * when none does, `conflict` when more than one key claims it (never a
   * guess). Trust on first use, like a rendezvous answer: the caller asks
   * only for names no trusted binding or `--peer` entry knows, and the
   * handshake proves the key.
   */
  discover(query: PeerQuery): { publicKey: Uint8Array; endpoint: EndpointSpec } | null {
    if (query.kind === "endpoint") return null;
    const found = this.lookup(query);
    if (found.length === 0) return null;
    if (found.length > 1) {
      const name = query.kind === "hostname"
        ? query.hostname
        : query.kind === "address"
        ? query.address
        : query.keyHex;
      throw new PilotError(
        "conflict",
        `"${name}" is claimed on the LAN by more than one key: ${
          found.map((n) => n.presence.address).join(", ")
        }`,
        "name the peer by its address or full key instead",
      );
    }
    const n = found[0]!;
    return {
      publicKey: n.presence.record.publicKey,
      endpoint: { host: n.endpoint.hostname, port: n.endpoint.port },
    };
  }

  /** Nodes known now. */
  get size(): number {
    this.#expire();
    return this.#nodes.size;
  }

  #live(key: string): LanNode | undefined {
    this.#expire();
    return this.#nodes.get(key);
  }

  #expire(): void {
    const mono = this.#monotonic();
    const now = this.#now();
    for (const [key, n] of this.#nodes) {
      if (mono - n.heardAt >= LAN_RECORD_TTL_MS || n.presence.record.expiresAt <= now) {
        this.#nodes.delete(key);
      }
    }
  }

  #drop(reason: LanDropReason): LanVerdict {
    this.dropped[reason]++;
    return { taken: false, reason };
  }
}
