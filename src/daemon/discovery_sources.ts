/**
 * The node's discovery sources as the resolver asks them
 * (discovery/resolver.ts `DiscoverySources`): signed LAN announcements, the
 * rendezvous, the Mainline DHT. Each says what its verified records claim;
 * the resolver's one merge rule decides. Nothing here contacts the peer.
 *
 * A record's endpoints are believed only when the record is public (a
 * private node's record carries none); a private node found at a
 * rendezvous is reached through the relay of one that holds its record.
 *
 * @module
 */
import { type Endpoint, formatEndpoint, relayPathOf } from "../discovery/endpoint.ts";
import type { LanTable } from "../discovery/lan_table.ts";
import type { VerifiedPresence } from "../discovery/presence.ts";
import type { LookupResult } from "../discovery/rendezvous_client.ts";
import type {
  DiscoveryAnswer,
  DiscoverySources,
  PeerCandidate,
  PeerQuery,
} from "../discovery/resolver.ts";
import { PilotError } from "../errors.ts";
import type { Discovered } from "./reach.ts";

/** What of a rendezvous link the resolver asks. */
export interface RendezvousLookup {
  /** Every rendezvous's verified records for a name, and the other claimants they list. */
  lookup(query: PeerQuery, timeoutMs: number): Promise<LookupResult>;
  /** The one key a name names, with a public endpoint or a relay path (throws otherwise). */
  discover(query: PeerQuery, timeoutMs: number): Promise<Discovered>;
}

/** What of a DHT link the resolver asks. */
export interface DhtLookup {
  /** The verified record of a key, or null. */
  lookupKey(publicKey: Uint8Array): Promise<VerifiedPresence | null>;
  /** A key's record endpoint, or the endpoint an address announced, or null. */
  discover(query: PeerQuery, timeoutMs: number): Promise<Discovered | null>;
  /** The endpoints announced under a hostname (by anyone: only where to try a handshake). */
  lookupHostname(hostname: string, timeoutMs: number): Promise<Endpoint[]>;
}

/** What a node's discovery is made of; one left out is not configured. */
export interface DiscoveryParts {
  /** The table of nodes heard on the LAN. */
  lan?: LanTable | undefined;
  /** The rendezvous link, and how many rendezvous it has. */
  rendezvous?: { link: RendezvousLookup; count: number } | undefined;
  /** The DHT link. */
  dht?: DhtLookup | undefined;
}

/** A discovery source's answer before the resolver names the source. */
export type Found = Omit<PeerCandidate, "source">;

/** What a verified record says of its key, with the endpoint it publishes when public. */
export function recordCandidate(v: VerifiedPresence): Found {
  const r = v.record;
  const where = r.visibility === "public"
    ? r.endpoints.find((e) => e.kind === "observed") ?? r.endpoints[0]
    : undefined;
  return {
    publicKey: r.publicKey,
    address: v.address,
    ...(r.hostname === "" ? {} : { hostname: r.hostname }),
    record: { visibility: r.visibility, serial: r.serial },
    ...(where === undefined ? {} : { endpoint: { host: where.hostname, port: where.port } }),
  };
}

/** The resolver's discovery sources over the parts this node has. */
export function discoverySources(parts: DiscoveryParts): DiscoverySources {
  const out: DiscoverySources = {};
  const { lan, rendezvous, dht } = parts;
  if (lan !== undefined) {
    // Where the announcement came from, private or not: the LAN is where it was heard.
    out.lan = (query) => ({
      candidates: lan.lookup(query).map((n) => ({
        ...recordCandidate(n.presence),
        endpoint: { host: n.endpoint.hostname, port: n.endpoint.port },
      })),
    });
  }
  if (rendezvous !== undefined) {
    out.rendezvous = async (query, timeoutMs): Promise<DiscoveryAnswer> => {
      const deadline = Date.now() + timeoutMs;
      const result = await rendezvous.link.lookup(query, timeoutMs);
      const candidates = await Promise.all(result.records.map(async (v) => {
        const found = recordCandidate(v);
        if (found.endpoint !== undefined) return found;
        try {
          const key = { kind: "key" as const, keyHex: v.record.publicKey.toHex() };
          const via = await rendezvous.link.discover(key, Math.max(0, deadline - Date.now()));
          if (relayPathOf(via.endpoint) !== null) return { ...found, endpoint: via.endpoint };
          return found;
        } catch (e) {
          return e instanceof PilotError ? { ...found, unreachable: e.message } : found;
        }
      }));
      const named = hostnameOf(query);
      for (const address of result.conflicts) {
        candidates.push({ address, ...(named === undefined ? {} : { hostname: named }) });
      }
      return { candidates, servers: { asked: rendezvous.count, answered: result.answered } };
    };
  }
  if (dht !== undefined) {
    // The DHT holds records by key, and endpoints announced by address and by hostname.
    out.dht = async (query, timeoutMs): Promise<DiscoveryAnswer> => {
      if (query.kind === "key") {
        const v = await dht.lookupKey(Uint8Array.fromHex(query.keyHex));
        if (v === null) return { candidates: [] };
        const found = recordCandidate(v);
        return {
          candidates: [
            found.endpoint !== undefined ? found : {
              ...found,
              unreachable: `${v.address} is a private node: its DHT record names no endpoint`,
            },
          ],
        };
      }
      if (query.kind === "hostname") {
        // Anyone may announce under any hostname: one endpoint is where to try
        // (the handshake must show a key whose signed self-description claims
        // the name); several are claimants this source cannot tell apart.
        const found = await dht.lookupHostname(query.hostname, Math.min(timeoutMs, 5_000));
        if (found.length > 1) {
          throw new PilotError(
            "conflict",
            `${found.length} endpoints announce "${query.hostname}" in the DHT: ${
              found.map(formatEndpoint).join(", ")
            }`,
            "name the peer by its address or full key instead",
          );
        }
        const at = found[0];
        return {
          candidates: at === undefined
            ? []
            : [{ hostname: query.hostname, endpoint: { host: at.hostname, port: at.port } }],
        };
      }
      if (query.kind !== "address") return { candidates: [] };
      const at = await dht.discover(query, timeoutMs);
      return { candidates: at === null ? [] : [{ address: query.address, endpoint: at.endpoint }] };
    };
  }
  return out;
}

function hostnameOf(query: PeerQuery): string | undefined {
  return query.kind === "hostname" ? query.hostname : undefined;
}
