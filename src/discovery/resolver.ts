/**
 * The peer resolver: turns what a user typed (address, hostname or endpoint)
 * into where to send a handshake and who must answer there. It asks several
 * sources (names learned from authenticated sessions, the static `--peer`
 * table; later rendezvous and LAN discovery) and never guesses: more than
 * one key for a name is a `conflict`.
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

/** One answer from a source. */
export interface PeerCandidate {
  /** The source that answered, e.g. `"session"` or `"static"`. */
  source: string;
  /** The full key, when the source knows it. */
  publicKey?: Uint8Array;
  /** The address, when known. */
  address?: Address;
  /** The hostname, when known. */
  hostname?: string;
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
  /** Who must answer: full key when any source knows it, else the name itself. */
  expected: { publicKey?: Uint8Array; address?: Address; hostname?: string };
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

/** Resolves peer names through several sources. */
export class Resolver {
  #sources: ResolverSource[];

  /** Creates a resolver asking `sources` in order. */
  constructor(sources: ResolverSource[]) {
    this.#sources = sources;
  }

  /** Resolves `text`; `conflict` when sources name different keys, `not_found` when none knows it. */
  resolve(text: string): Resolution {
    const query = classifyPeer(text);
    if (query.kind === "endpoint") return { query, endpoint: query.endpoint, expected: {} };
    const found = this.#sources.flatMap((s) => s.lookup(query));
    const keyed = (cs: PeerCandidate[]) =>
      new Set(cs.flatMap((c) => (c.publicKey ? [c.publicKey.toHex()] : [])));
    const trustedKeys = keyed(found.filter((c) => c.source === "trust"));
    const keys = keyed(found);
    if (trustedKeys.size === 1 && keys.size > 1) {
      // Like SSH's changed host key: the name now points at another key.
      throw new PilotError(
        "key_changed",
        `"${text}" now belongs to a different key than the trusted one`,
        "if the peer really changed its key, `pilot untrust` the old one first",
      );
    }
    if (keys.size > 1) {
      throw new PilotError(
        "conflict",
        `"${text}" names ${keys.size} different keys`,
        "name the peer by its full address or endpoint instead",
      );
    }
    const withKey = found.find((c) => c.source === "trust" && c.publicKey !== undefined) ??
      found.find((c) => c.publicKey !== undefined);
    const endpoint = found.find((c) => c.endpoint !== undefined)?.endpoint;
    if (withKey === undefined && endpoint === undefined) {
      throw new PilotError(
        "not_found",
        `No known peer "${text}"`,
        "give its endpoint (IP:PORT), or add --peer NAME=ENDPOINT to the daemon",
      );
    }
    const expected: Resolution["expected"] = withKey?.publicKey
      ? { publicKey: withKey.publicKey }
      : query.kind === "address"
      ? { address: query.address }
      : query.kind === "key"
      ? { publicKey: Uint8Array.fromHex(query.keyHex) }
      : { hostname: query.hostname };
    return endpoint ? { query, endpoint, expected } : { query, expected };
  }
}

/** A source backed by the static `--peer NAME=ENDPOINT` table. */
export function staticSource(peers: Record<string, string>): ResolverSource {
  const table = Object.entries(peers).map(([name, ep]) => ({ name, endpoint: parseEndpoint(ep) }));
  return {
    lookup(query) {
      if (query.kind === "endpoint") return [];
      if (query.kind === "key") return [];
      const name = query.kind === "address" ? query.address : query.hostname;
      return table
        .filter((p) => (isAddressLike(p.name) ? parseAddress(p.name) : p.name) === name)
        .map((p) => ({ source: "static", endpoint: p.endpoint }));
    },
  };
}
