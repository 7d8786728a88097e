/**
 * `pilot find <hostname|address|key>` (issue 9): what this node knows about
 * a name, and what its LAN and rendezvous nodes say, without sending anything
 * to the peer itself. Local knowledge comes first (trusted bindings, the static
 * `--peer` table, live sessions), then verified presence records: those heard
 * in LAN announcements (issue 10), then the rendezvous's. Every key
 * that claims the name is listed: a hostname with more than one claimant is
 * shown as a conflict, never settled here (the resolver's rules decide what
 * a handshake by that name would do: discovery/resolver.ts).
 *
 * A private node's endpoints are never shown from a record: its record
 * carries none, and one that does is not believed on that point. A node heard
 * on the LAN is shown where its announcement came from (PROTOCOL.md §14).
 *
 * @module
 */
import { formatEndpoint } from "../../discovery/endpoint.ts";
import type { LookupResult } from "../../discovery/rendezvous_client.ts";
import { answers, classifyPeer, type PeerQuery } from "../../discovery/resolver.ts";
import type { VerifiedPresence } from "../../discovery/presence.ts";
import type { LanTable } from "../../discovery/lan_table.ts";
import { invalid, PilotError } from "../../errors.ts";
import { type Address, isAddressLike, parseAddress } from "../../identity/address.ts";
import { fingerprint } from "../../identity/fingerprint.ts";
import type { NodeContext } from "../context.ts";

/** The most conflicting claimants of a hostname whose records are looked up by address. */
export const MAX_FIND_CLAIMANTS = 8;

/** Where a candidate is known from, strongest first. */
export type FindSource = "trust" | "static" | "session" | "lan" | "rendezvous" | "dht";
/** Whether strangers may learn a candidate's endpoints, as its signed record says. */
export type FindVisibility = "public" | "private" | "unknown";
/**
 * How the candidate could be reached now: over a live `session`, `direct`
 * to a known endpoint, through a rendezvous `relay` (a record but no
 * endpoint), or `unknown`.
 */
export type Reachability = "session" | "direct" | "relay" | "unknown";

const SOURCE_ORDER: readonly FindSource[] = [
  "trust",
  "static",
  "session",
  "lan",
  "rendezvous",
  "dht",
];

/** One key (or, for a keyless `--peer` entry, one name) the query matched. */
export interface FindCandidate {
  /** Canonical address; null for a `--peer` hostname entry whose key is unknown. */
  address: string | null;
  /** Identity key (hex), null when unknown. */
  publicKey: string | null;
  /** Fingerprint of the key, null when unknown. */
  fingerprint: string | null;
  /** The hostname it claims (or is bound to here), null when none is known. */
  hostname: string | null;
  /** From its signed record; unknown without one. */
  visibility: FindVisibility;
  /** The key is trusted here. */
  trusted: boolean;
  /** The strongest source that knows it. */
  source: FindSource;
  /** Every source that knows it, strongest first. */
  sources: FindSource[];
  /** How it could be reached now. */
  reachability: Reachability;
  /** The endpoint a handshake would go to (never a private record's), or null. */
  endpoint: string | null;
}

/** What `find` found. */
export interface FindResult {
  /** The query, classified. */
  kind: "hostname" | "address" | "key";
  /** Every candidate, trusted first, then by source. */
  candidates: FindCandidate[];
  /** More than one key claims the hostname asked for. */
  conflict: { hostname: string; claimants: number } | null;
  /** Rendezvous nodes configured, and how many answered in time. */
  rendezvous: { asked: number; answered: number };
}

interface Draft {
  address: string | null;
  publicKey: string | null;
  hostname: string | null;
  sources: Set<FindSource>;
  record: VerifiedPresence | null;
  /** An endpoint from local knowledge: a `--peer` entry or where a trusted peer was last seen. */
  localEndpoint: string | null;
  /** Where its LAN announcement came from, when one was heard. */
  lanEndpoint?: string;
}

/** Looks names up locally and at the rendezvous, never at the peer. */
export class FindFeature {
  #ctx: NodeContext;
  #lan: LanTable | undefined;
  #dht: { lookupKey(publicKey: Uint8Array): Promise<VerifiedPresence | null> } | undefined;

  /** Works over the node's stores, sessions, LAN table (when LAN discovery is on) and rendezvous link. */
  constructor(
    ctx: NodeContext,
    lan?: LanTable,
    dht?: { lookupKey(publicKey: Uint8Array): Promise<VerifiedPresence | null> },
  ) {
    this.#ctx = ctx;
    this.#lan = lan;
    this.#dht = dht;
  }

  /** `pilot find TEXT`: `not_found` when nobody knows the name; an endpoint is `invalid_argument`. */
  async find(text: string, timeoutMs: number): Promise<FindResult> {
    const query = classifyPeer(text);
    if (query.kind === "endpoint") {
      throw invalid(
        `Cannot find "${text}": an endpoint is not a name to look up`,
        "name the peer by hostname, address or full key; `pilot connect IP:PORT` shows who answers there",
      );
    }
    const selfKey = this.#ctx.identity.publicKey.toHex();
    const drafts = new Map<string, Draft>();
    this.#local(query, drafts);
    for (const n of this.#lan?.lookup(query) ?? []) {
      const d = this.#record(n.presence, drafts, "lan");
      d.lanEndpoint = formatEndpoint(n.endpoint);
    }
    const deadline = Date.now() + timeoutMs;
    const result = await this.#ctx.lookup(query, timeoutMs);
    const asked = result === null ? 0 : this.#ctx.config.rendezvous.length;
    let answered = result?.answered ?? 0;
    for (const v of result?.records ?? []) this.#record(v, drafts);
    // The DHT holds records by key only (an address or hostname finds no record there).
    if (this.#dht !== undefined && query.kind === "key") {
      const v = await this.#dht.lookupKey(Uint8Array.fromHex(query.keyHex));
      if (v !== null) this.#record(v, drafts, "dht");
    }
    if (result !== null && query.kind === "hostname") {
      // Other claimants of the hostname: their own records, by address.
      const others = this.#others(result, drafts);
      const left = deadline - Date.now();
      const followed = left <= 0 ? [] : await Promise.all(
        others.map((address) => this.#ctx.lookup({ kind: "address", address }, left)),
      );
      others.forEach((address, i) => {
        const v = followed[i]?.records.find((x) => x.address === address);
        if (v !== undefined) {
          // A claimant that has since let the name go is no claimant.
          if (v.record.hostname === query.hostname) this.#record(v, drafts);
        } else {
          // Named as a claimant, its record not (or no longer) there: shown by address alone.
          drafts.set(`address:${address}`, {
            address,
            publicKey: null,
            hostname: query.hostname,
            sources: new Set(["rendezvous"]),
            record: null,
            localEndpoint: null,
          });
        }
      });
      answered = Math.max(answered, ...followed.map((r) => r?.answered ?? 0));
    }
    const self = drafts.get(selfKey);
    drafts.delete(selfKey);
    if (drafts.size === 0) {
      if (self !== undefined) throw invalid(`"${text}" is this node itself`, "see `pilot info`");
      throw new PilotError(
        "not_found",
        `No known peer "${text}"${
          asked === 0
            ? " (this node has no rendezvous)"
            : answered === 0
            ? " (no rendezvous answered)"
            : " (no rendezvous knows it)"
        }`,
        asked === 0
          ? "a name is found through trust, --peer, a live session, the LAN or a rendezvous: " +
            "start the daemon with --rendezvous KEY@IP:PORT, or run `pilot peer add NAME ENDPOINT`"
          : "check the name; its node may be offline or not publishing to the same rendezvous",
      );
    }
    const candidates = [...drafts.values()].map((d) => this.#candidate(d))
      .sort((x, y) =>
        Number(y.trusted) - Number(x.trusted) ||
        SOURCE_ORDER.indexOf(x.source) - SOURCE_ORDER.indexOf(y.source)
      );
    const claimants = candidates.filter((c) => c.address !== null).length;
    return {
      kind: query.kind,
      candidates,
      conflict: query.kind === "hostname" && claimants > 1
        ? { hostname: query.hostname, claimants }
        : null,
      rendezvous: { asked, answered },
    };
  }

  /** Trusted bindings, the `--peer` table and live sessions (the last by key or address only). */
  #local(query: PeerQuery, drafts: Map<string, Draft>): void {
    const { trust, sessions, config } = this.#ctx;
    for (const e of trust.list()) {
      if (!answers(query, { keyHex: e.public_key, ...e })) continue;
      const d = this.#draft(drafts, e.public_key, e.address, e.hostname);
      d.sources.add("trust");
      d.localEndpoint ??= e.endpoint ?? null;
    }
    // A claimed hostname on a session never names a key (discovery/resolver.ts).
    if (query.kind !== "hostname") {
      for (const p of sessions.peers()) {
        if (!answers(query, { ...p.identity, hostname: null })) continue;
        const d = this.#draft(drafts, p.identity.keyHex, p.identity.address, null);
        d.hostname ??= p.identity.hostname || null;
        d.sources.add("session");
      }
    }
    for (const [name, endpoint] of Object.entries(config.peers)) {
      const named = isAddressLike(name) ? parseAddress(name) : name;
      const target = query.kind === "address"
        ? query.address
        : query.kind === "hostname"
        ? query.hostname
        : null;
      if (named !== target) continue;
      // The table says where to handshake for a name: its endpoint goes with the
      // keys this name already names here, else it stands alone, keyless.
      const bound = [...drafts.values()].filter((d) =>
        query.kind === "address" ? d.address === named : d.sources.has("trust")
      );
      if (bound.length === 0) {
        drafts.set(`static:${name}`, {
          address: query.kind === "address" ? query.address : null,
          publicKey: null,
          hostname: query.kind === "hostname" ? query.hostname : null,
          sources: new Set(["static"]),
          record: null,
          localEndpoint: endpoint,
        });
      }
      for (const d of bound) {
        d.sources.add("static");
        d.localEndpoint = endpoint;
      }
    }
  }

  /** Adds a verified record's key (its hostname is a claim the key signed). */
  #record(
    v: VerifiedPresence,
    drafts: Map<string, Draft>,
    source: "lan" | "rendezvous" | "dht" = "rendezvous",
  ): Draft {
    const key = v.record.publicKey.toHex();
    const d = this.#draft(drafts, key, v.address, v.record.hostname || null);
    d.sources.add(source);
    if (d.record === null || d.record.record.serial < v.record.serial) d.record = v;
    return d;
  }

  /** Claimant addresses the rendezvous listed that no record here covers yet. */
  #others(result: LookupResult, drafts: Map<string, Draft>): Address[] {
    const known = new Set([...drafts.values()].map((d) => d.address));
    const selfAddress = this.#ctx.identity.address;
    return result.conflicts
      .filter((a) => !known.has(a) && a !== selfAddress)
      .slice(0, MAX_FIND_CLAIMANTS);
  }

  #draft(
    drafts: Map<string, Draft>,
    key: string,
    address: string,
    hostname: string | null,
  ): Draft {
    let d = drafts.get(key);
    if (d === undefined) {
      d = {
        address,
        publicKey: key,
        hostname,
        sources: new Set(),
        record: null,
        localEndpoint: null,
      };
      // What was known by this address alone (a `--peer` entry, a claimant
      // named by a rendezvous) is this key: an address proves its key.
      for (const [id, other] of drafts) {
        if (other.publicKey !== null || other.address !== address) continue;
        for (const s of other.sources) d.sources.add(s);
        d.localEndpoint ??= other.localEndpoint;
        drafts.delete(id);
      }
      drafts.set(key, d);
    }
    d.hostname ??= hostname;
    return d;
  }

  #candidate(d: Draft): FindCandidate {
    const live = d.publicKey === null ? null : this.#ctx.reach.endpointOf(d.publicKey);
    // A key already named by another source: its live session is known too.
    if (live !== null) d.sources.add("session");
    const sources = SOURCE_ORDER.filter((s) => d.sources.has(s));
    const record = d.record?.record;
    const visibility: FindVisibility = record?.visibility ?? "unknown";
    const published = record?.visibility === "public"
      ? record.endpoints.find((e) => e.kind === "observed") ?? record.endpoints[0]
      : undefined;
    const endpoint = live !== null ? formatEndpoint(live) : d.localEndpoint ?? d.lanEndpoint ??
      (published === undefined ? null : formatEndpoint(published));
    const reachability: Reachability = live !== null
      ? "session"
      : endpoint !== null
      ? "direct"
      : record !== undefined
      ? "relay"
      : "unknown";
    return {
      address: d.address,
      publicKey: d.publicKey,
      fingerprint: d.publicKey === null ? null : fingerprint(Uint8Array.fromHex(d.publicKey)),
      hostname: d.hostname,
      visibility,
      trusted: d.publicKey !== null && this.#ctx.trust.has(d.publicKey),
      source: sources[0]!,
      sources,
      reachability,
      endpoint,
    };
  }
}
