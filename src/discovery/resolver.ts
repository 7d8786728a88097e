/**
 * The peer resolver: turns what a user typed (address, hostname, full key or
 * endpoint) into where to send a handshake and who must answer there.
 *
 * Naming rules (docs/PROTOCOL.md, threat model):
 * - only trusted bindings, the static `--peer NAME=ENDPOINT` table and names
 *   that prove themselves (a full key, or an address, which costs about 2^68
 *   hashes to match) resolve; a hostname claimed on an untrusted session never
 *   picks a key or an endpoint;
 * - a trusted peer's name keeps resolving to its trusted key whatever
 *   strangers claim (their claims are flagged elsewhere, never followed);
 * - more than one key for a name among equally strong sources is a
 *   `conflict`, never a guess;
 * - where to handshake: a live session's endpoint first, then a configured
 *   `--peer` endpoint, then where a trusted peer was last authenticated
 *   (remembered across restarts). Each is only a hint: the handshake still
 *   checks the expected key, so another key there is `key_changed`.
 *
 * Names none of these sources know are discovered after them, in this
 * order: signed LAN announcements, the rendezvous, the Mainline DHT
 * (`discover` in daemon/node.ts, used by daemon/reach.ts). What they find is
 * trust on first use and never pins a name; a trusted binding always wins.
 *
 * @module
 */
import { isAddressLike, parseAddress } from "../identity/address.ts";
import { isValidHostname } from "../identity/self_description.ts";
import { invalid, PilotError } from "../errors.ts";
import { type EndpointSpec, looksLikeEndpoint, parseEndpoint } from "./endpoint.ts";
import type { Address } from "../identity/address.ts";

/** What the user asked for, classified. */
export type PeerQuery =
  | { kind: "endpoint"; endpoint: EndpointSpec }
  | { kind: "address"; address: Address }
  | { kind: "hostname"; hostname: string }
  | { kind: "key"; keyHex: string };

/**
 * Where an answer came from: a trusted binding, the static `--peer` table, a
 * live authenticated session (answers by key or address only), or the
 * endpoint a trusted peer was last authenticated at (`remembered`, carrying
 * the trusted key it was remembered for).
 */
export type SourceKind = "trust" | "static" | "session" | "remembered";

/** Which source's endpoint is tried first (lower first); names are decided by trust alone. */
const ENDPOINT_RANK: Readonly<Record<SourceKind, number>> = {
  session: 0,
  trust: 1,
  static: 2,
  remembered: 3,
};

/** One answer from a source. */
export interface PeerCandidate {
  /** The source that answered. */
  source: SourceKind;
  /** The full key, when the source knows it. */
  publicKey?: Uint8Array;
  /** Where to reach it, when known. */
  endpoint?: EndpointSpec;
}

/** A source of names. */
export interface ResolverSource {
  /** Candidates for a query (empty when the source knows nothing). */
  lookup(query: PeerQuery): PeerCandidate[];
}

/** The resolver's answer. */
export interface Resolution {
  /** The classified query. */
  query: PeerQuery;
  /** Where to send the handshake, when known. */
  endpoint?: EndpointSpec;
  /** Who must answer: full key when known, else the name itself. */
  expected: { publicKey?: Uint8Array; address?: Address; hostname?: string };
  /** The expected key is a trusted binding's. */
  trusted: boolean;
  /**
   * The user named this exact key: by full key, by address, or by a name
   * bound to a trusted key. A hostname from `--peer` or an endpoint is
   * trust on first use, not pinned.
   */
  pinned: boolean;
}

const HINT =
  "name a peer by address (3fa2.09c1.77e4), hostname, full key (64 hex digits) or endpoint (IP:PORT)";

/** Classifies peer text; throws `invalid_argument` for anything else. */
export function classifyPeer(text: string): PeerQuery {
  if (looksLikeEndpoint(text)) return { kind: "endpoint", endpoint: parseEndpoint(text) };
  if (/^[0-9a-fA-F]{64}$/.test(text)) return { kind: "key", keyHex: text.toLowerCase() };
  if (isAddressLike(text)) {
    try {
      return { kind: "address", address: parseAddress(text) };
    } catch (e) {
      throw invalid((e as Error).message, HINT);
    }
  }
  if (isValidHostname(text)) return { kind: "hostname", hostname: text };
  throw invalid(`Cannot parse peer "${text}"`, HINT);
}

function keysOf(cs: PeerCandidate[]): Set<string> {
  return new Set(cs.flatMap((c) => (c.publicKey ? [c.publicKey.toHex()] : [])));
}

/** Resolves peer names through several sources. */
export class Resolver {
  #sources: ResolverSource[];

  /** Creates a resolver asking `sources` (in any order: strength decides, not order). */
  constructor(sources: ResolverSource[]) {
    this.#sources = sources;
  }

  /** Resolves `text`; `conflict` when a name is ambiguous, `not_found` when no source knows it. */
  resolve(text: string): Resolution {
    const query = classifyPeer(text);
    if (query.kind === "endpoint") {
      return { query, endpoint: query.endpoint, expected: {}, trusted: false, pinned: false };
    }
    const found = this.#sources.flatMap((s) => s.lookup(query));
    const trustedKeys = keysOf(found.filter((c) => c.source === "trust"));
    if (trustedKeys.size > 1) {
      throw new PilotError(
        "conflict",
        `"${text}" names ${trustedKeys.size} trusted peers with different keys`,
        "name the peer by its fingerprint or full key (see `pilot trust`)",
      );
    }
    // A trusted binding wins over everything else: other claims are not followed.
    const trustedKey = [...trustedKeys][0];
    const keys = trustedKey === undefined ? keysOf(found) : new Set([trustedKey]);
    if (query.kind === "key") keys.add(query.keyHex);
    if (keys.size > 1) {
      throw new PilotError(
        "conflict",
        `"${text}" names ${keys.size} different keys`,
        "name the peer by its full key or endpoint instead",
      );
    }
    const key = [...keys][0];
    // Endpoints of the chosen key or of no key (the `--peer` table), by
    // ENDPOINT_RANK: a live session, a configured entry, then a remembered one.
    const endpoint = found
      .filter((c) => c.endpoint !== undefined)
      .filter((c) => c.publicKey === undefined || c.publicKey.toHex() === key)
      .sort((x, y) => ENDPOINT_RANK[x.source] - ENDPOINT_RANK[y.source])[0]?.endpoint;
    if (key === undefined && endpoint === undefined) {
      throw new PilotError(
        "not_found",
        `No known peer "${text}"`,
        "give its endpoint (IP:PORT or HOST:PORT), or run `pilot peer add NAME ENDPOINT`",
      );
    }
    const expected: Resolution["expected"] = key !== undefined
      ? { publicKey: Uint8Array.fromHex(key) }
      : query.kind === "address"
      ? { address: query.address }
      : { hostname: (query as { hostname: string }).hostname };
    const trusted = trustedKey !== undefined;
    const pinned = trusted || query.kind === "key" || query.kind === "address";
    return endpoint
      ? { query, endpoint, expected, trusted, pinned }
      : { query, expected, trusted, pinned };
  }
}

/** Whether a record with these names answers `query`. */
export function answers(
  query: PeerQuery,
  record: { keyHex: string; address: string; hostname: string | null },
): boolean {
  switch (query.kind) {
    case "key":
      return record.keyHex === query.keyHex;
    case "address":
      return record.address === query.address;
    case "hostname":
      return record.hostname === query.hostname;
    case "endpoint":
      return false;
  }
}

/**
 * A source backed by the static `--peer NAME=ENDPOINT` table, read at every
 * lookup (`peer add` and `peer remove` change it while the daemon runs).
 */
export function staticSource(peers: Readonly<Record<string, string>>): ResolverSource {
  return {
    lookup(query) {
      if (query.kind !== "address" && query.kind !== "hostname") return [];
      const name = query.kind === "address" ? query.address : query.hostname;
      return Object.entries(peers)
        .filter(([n]) => (isAddressLike(n) ? parseAddress(n) : n) === name)
        .map(([, ep]) => ({ source: "static", endpoint: parseEndpoint(ep) }));
    },
  };
}
