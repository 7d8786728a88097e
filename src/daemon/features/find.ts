/**
 * `pilot find <hostname|address|key>` (issues 9 and 10): what every source of
 * names says about one, without sending anything to the peer itself. The
 * resolver asks them all (discovery/resolver.ts `Resolver.candidates`):
 * trusted bindings, the `--peer` table, live sessions, remembered endpoints,
 * the LAN, the rendezvous, the DHT. `find` shows each source's answer (or
 * that it is not configured, failed or knew nothing), every key that claims
 * the name, and what the one merge rule decided, the rule a handshake by
 * that name follows. A hostname with more than one claimant is a conflict,
 * never settled here.
 *
 * A private node's endpoints are never shown from a record: its record
 * carries none, and one that does is not believed on that point. A node heard
 * on the LAN is shown where its announcement came from (PROTOCOL.md §14).
 *
 * @module
 */
import { type EndpointSpec, formatEndpoint, relayPathOf } from "../../discovery/endpoint.ts";
import {
  type Candidates,
  classifyPeer,
  type Decision,
  type PeerCandidate,
  type PeerQuery,
  type SourceAnswer,
  type SourceKind,
  type SourceStatus,
} from "../../discovery/resolver.ts";
import { invalid, PilotError } from "../../errors.ts";
import type { Address } from "../../identity/address.ts";
import { fingerprint } from "../../identity/fingerprint.ts";
import type { NodeContext } from "../context.ts";
import { recordCandidate } from "../discovery_sources.ts";

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

const CANDIDATE_ORDER: readonly FindSource[] = [
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

/** What one source said of one key (or name), as `find` shows it. */
export interface SourceSaid {
  /** The key (hex), null when the source names none (a `--peer` entry, a claimant's address). */
  publicKey: string | null;
  /** The address it names, when known. */
  address: string | null;
  /** The hostname it binds or its record claims. */
  hostname: string | null;
  /** Where this source would send a handshake (never a private record's endpoint, never a relay path). */
  endpoint: string | null;
  /** Reached through a rendezvous relay (a private node whose record a connected rendezvous holds). */
  relay: boolean;
  /** From a signed record: its visibility and serial; null otherwise. */
  visibility: "public" | "private" | null;
  /** The record's serial, null without a record. */
  serial: number | null;
  /** Why this source has no endpoint for it, when it said. */
  unreachable: string | null;
}

/** How one source took the query, and what it said. */
export interface FindSourceReport {
  /** The source. */
  source: SourceKind;
  /** answered, none, failed, skipped or not_configured. */
  status: SourceStatus;
  /** What it said, one entry per key or name. */
  said: SourceSaid[];
  /** Why it failed. */
  error: { code: string; message: string } | null;
  /** Servers asked and answered in time (the rendezvous), else null. */
  servers: { asked: number; answered: number } | null;
}

/** The resolver's merged decision (discovery/resolver.ts `mergeCandidates`), as `find` shows it. */
export interface FindDecision {
  /** found, conflict or not_found. */
  outcome: Decision["outcome"];
  /** The key a handshake by this name must meet, when one is decided. */
  publicKey: string | null;
  /** The strongest source behind it. */
  source: SourceKind | null;
  /** Where a handshake would go (a relay path shown as `relay`), or null. */
  endpoint: string | null;
  /** The source of that endpoint. */
  endpointSource: SourceKind | null;
  /** Decided by a trusted binding. */
  trusted: boolean;
  /** Trust decided the name, and only other keys claim it elsewhere now. */
  keyChanged: boolean;
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
  /** Every source, strongest first: how it took the query and what it said. */
  sources: FindSourceReport[];
  /** What the resolver's merge rule decided (what a handshake by this name would aim at). */
  decision: FindDecision;
}

interface Draft {
  address: string | null;
  publicKey: string | null;
  hostname: string | null;
  sources: Set<FindSource>;
  /** From the newest signed record seen. */
  record: { visibility: "public" | "private"; serial: number } | null;
  /** The newest record's published endpoint (public records only). */
  published: string | null;
  /** An endpoint from local knowledge: a `--peer` entry or where a trusted peer was last seen. */
  localEndpoint: string | null;
  /** Where its LAN announcement came from, when one was heard. */
  lanEndpoint?: string;
}

const specText = (e: EndpointSpec) => formatEndpoint({ hostname: e.host, port: e.port });

/** Looks names up through every resolver source, never at the peer. */
export class FindFeature {
  #ctx: NodeContext;

  /** Works over the node's stores, and its resolver with the discovery sources it has. */
  constructor(ctx: NodeContext) {
    this.#ctx = ctx;
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
    const deadline = Date.now() + timeoutMs;
    const found = await this.#ctx.reach.candidates(query, timeoutMs);
    const answer = (k: SourceKind) => found.sources.find((s) => s.source === k)!;
    const drafts = new Map<string, Draft>();
    this.#local(query, found, drafts);
    for (const k of ["lan", "rendezvous", "dht"] as const) {
      for (const c of answer(k).candidates) this.#discovered(c, drafts);
    }
    const servers = answer("rendezvous").servers;
    const asked = servers?.asked ?? 0;
    let answered = servers?.answered ?? 0;
    const claimants = answer("rendezvous").candidates
      .filter((c) => c.publicKey === undefined && c.address !== undefined)
      .map((c) => c.address!);
    if (query.kind === "hostname" && claimants.length > 0) {
      // Other claimants of the hostname: their own records, by address.
      const others = this.#others(claimants, drafts);
      const left = deadline - Date.now();
      const followed = left <= 0 ? [] : await Promise.all(
        others.map((address) => this.#ctx.lookup({ kind: "address", address }, left)),
      );
      others.forEach((address, i) => {
        const v = followed[i]?.records.find((x) => x.address === address);
        // A claimant that has since let the name go is no claimant.
        if (v === undefined || v.record.hostname !== query.hostname) return;
        const c: PeerCandidate = { ...recordCandidate(v), source: "rendezvous" };
        this.#discovered(c, drafts);
        // What the rendezvous said of it: its record now, not only its address.
        const said = answer("rendezvous").candidates;
        const named = said.findIndex((x) => x.publicKey === undefined && x.address === address);
        if (named >= 0) said[named] = c;
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
        CANDIDATE_ORDER.indexOf(x.source) - CANDIDATE_ORDER.indexOf(y.source)
      );
    const keyed = candidates.filter((c) => c.address !== null).length;
    return {
      kind: query.kind,
      candidates,
      conflict: query.kind === "hostname" && keyed > 1
        ? { hostname: query.hostname, claimants: keyed }
        : null,
      rendezvous: { asked, answered },
      sources: found.sources.map((s) => this.#report(query, s, drafts)),
      decision: decisionView(found.decision),
    };
  }

  /**
   * Trusted bindings with their remembered endpoints, live sessions (by key
   * or address only: the resolver's session source) and the `--peer` table.
   */
  #local(query: PeerQuery, found: Candidates, drafts: Map<string, Draft>): void {
    const said = (k: SourceKind) => found.sources.find((s) => s.source === k)?.candidates ?? [];
    for (const c of said("trust")) {
      const key = c.publicKey!.toHex();
      const e = this.#ctx.trust.get(key);
      this.#draft(drafts, key, e?.address ?? null, e?.hostname ?? null).sources.add("trust");
    }
    for (const c of said("remembered")) {
      const d = drafts.get(c.publicKey!.toHex());
      if (d !== undefined) d.localEndpoint ??= specText(c.endpoint!);
    }
    const live = new Map(this.#ctx.sessions.peers().map((p) => [p.identity.keyHex, p.identity]));
    for (const c of said("session")) {
      const key = c.publicKey!.toHex();
      const id = live.get(key);
      const d = this.#draft(drafts, key, id?.address ?? null, null);
      d.hostname ??= id?.hostname || null;
      d.sources.add("session");
    }
    for (const c of said("static")) {
      // The table says where to handshake for a name: its endpoint goes with the
      // keys this name already names here, else it stands alone, keyless.
      const endpoint = specText(c.endpoint!);
      const bound = [...drafts.values()].filter((d) =>
        query.kind === "address" ? d.address === query.address : d.sources.has("trust")
      );
      if (bound.length === 0) {
        drafts.set(`static:${endpoint}`, {
          address: query.kind === "address" ? query.address : null,
          publicKey: null,
          hostname: query.kind === "hostname" ? query.hostname : null,
          sources: new Set(["static"]),
          record: null,
          published: null,
          localEndpoint: endpoint,
        });
      }
      for (const d of bound) {
        d.sources.add("static");
        d.localEndpoint = endpoint;
      }
    }
  }

  /** Adds what a discovery source said: a verified record's key, or an address alone. */
  #discovered(c: PeerCandidate, drafts: Map<string, Draft>): void {
    const source = c.source as "lan" | "rendezvous" | "dht";
    if (c.publicKey === undefined) {
      if (c.address === undefined && c.hostname === undefined) return;
      // Named without its key (a claimant a rendezvous listed, an address or a
      // hostname the DHT announced): joined to the key that holds the address,
      // else shown alone.
      const owner = c.address === undefined
        ? undefined
        : [...drafts.values()].find((d) => d.address === c.address);
      const d = owner ?? {
        address: c.address ?? null,
        publicKey: null,
        hostname: c.hostname ?? null,
        sources: new Set<FindSource>(),
        record: null,
        published: null,
        localEndpoint: null,
      };
      if (owner === undefined) {
        drafts.set(c.address === undefined ? `hostname:${c.hostname}` : `address:${c.address}`, d);
      }
      d.sources.add(source);
      if (source === "dht" && c.endpoint !== undefined) d.published ??= specText(c.endpoint);
      return;
    }
    const d = this.#draft(drafts, c.publicKey.toHex(), c.address ?? null, c.hostname ?? null);
    d.sources.add(source);
    if (source === "lan" && c.endpoint !== undefined) d.lanEndpoint = specText(c.endpoint);
    if (c.record !== undefined && (d.record === null || d.record.serial < c.record.serial)) {
      d.record = c.record;
      // A record's own endpoint only when public; a relay path is not the node's.
      const own = c.record.visibility === "public" && c.endpoint !== undefined &&
        relayPathOf(c.endpoint) === null;
      d.published = own ? specText(c.endpoint!) : null;
    }
  }

  /** Claimant addresses the rendezvous listed that no record here covers yet. */
  #others(claimants: Address[], drafts: Map<string, Draft>): Address[] {
    const known = new Set(
      [...drafts.values()].filter((d) => d.publicKey !== null).map((d) => d.address),
    );
    const selfAddress = this.#ctx.identity.address;
    return claimants
      .filter((a) => !known.has(a) && a !== selfAddress)
      .slice(0, MAX_FIND_CLAIMANTS);
  }

  #draft(
    drafts: Map<string, Draft>,
    key: string,
    address: string | null,
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
        published: null,
        localEndpoint: null,
      };
      // What was known by this address alone (a `--peer` entry, a claimant
      // named by a rendezvous) is this key: an address proves its key.
      for (const [id, other] of drafts) {
        if (other.publicKey !== null || address === null || other.address !== address) continue;
        for (const s of other.sources) d.sources.add(s);
        d.localEndpoint ??= other.localEndpoint;
        d.published ??= other.published;
        drafts.delete(id);
      }
      drafts.set(key, d);
    }
    d.address ??= address;
    d.hostname ??= hostname;
    return d;
  }

  #candidate(d: Draft): FindCandidate {
    const live = d.publicKey === null ? null : this.#ctx.reach.endpointOf(d.publicKey);
    // A key already named by another source: its live session is known too.
    if (live !== null) d.sources.add("session");
    const sources = CANDIDATE_ORDER.filter((s) => d.sources.has(s));
    const endpoint = live !== null
      ? formatEndpoint(live)
      : d.localEndpoint ?? d.lanEndpoint ?? d.published;
    const reachability: Reachability = live !== null
      ? "session"
      : endpoint !== null
      ? "direct"
      : d.record !== null
      ? "relay"
      : "unknown";
    return {
      address: d.address,
      publicKey: d.publicKey,
      fingerprint: d.publicKey === null ? null : fingerprint(Uint8Array.fromHex(d.publicKey)),
      hostname: d.hostname,
      visibility: d.record?.visibility ?? "unknown",
      trusted: d.publicKey !== null && this.#ctx.trust.has(d.publicKey),
      source: sources[0]!,
      sources,
      reachability,
      endpoint,
    };
  }

  /** One source's answer as shown: names filled in from what the node knows of each key. */
  #report(query: PeerQuery, s: SourceAnswer, drafts: Map<string, Draft>): FindSourceReport {
    const named = query.kind === "hostname" ? query.hostname : null;
    const said = s.candidates.map((c): SourceSaid => {
      const key = c.publicKey?.toHex() ?? null;
      const d = key === null ? undefined : drafts.get(key);
      const relay = c.endpoint !== undefined && relayPathOf(c.endpoint) !== null;
      // Never a private record's endpoint (PROTOCOL.md §14: only the LAN it was heard on).
      const shown = c.endpoint !== undefined && !relay &&
        (c.record === undefined || c.record.visibility === "public" || c.source === "lan");
      return {
        publicKey: key,
        address: c.address ?? d?.address ??
          (c.source === "static" && query.kind === "address" ? query.address : null),
        hostname: c.hostname ??
          (c.source === "trust" ? d?.hostname ?? null : c.source === "static" ? named : null),
        endpoint: shown ? specText(c.endpoint!) : null,
        relay,
        visibility: c.record?.visibility ?? null,
        serial: c.record?.serial ?? null,
        unreachable: c.unreachable ?? null,
      };
    });
    return {
      source: s.source,
      status: s.status,
      said,
      error: s.error === undefined ? null : { code: s.error.code, message: s.error.message },
      servers: s.servers ?? null,
    };
  }
}

function decisionView(d: Decision): FindDecision {
  return {
    outcome: d.outcome,
    publicKey: d.key,
    source: d.source,
    endpoint: d.endpoint === null
      ? null
      : relayPathOf(d.endpoint) !== null
      ? "relay"
      : specText(d.endpoint),
    endpointSource: d.endpointSource,
    trusted: d.trusted,
    keyChanged: d.keyChanged,
  };
}
