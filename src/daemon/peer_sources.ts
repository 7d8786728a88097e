/**
 * The node's own resolver sources: its trusted bindings (with where each was
 * last authenticated), and its live sessions for names that prove themselves
 * (full key, address). A hostname claimed on a session is never a source:
 * see discovery/resolver.ts.
 *
 * @module
 */
import { parseEndpoint } from "../discovery/endpoint.ts";
import { answers, type PeerCandidate, type ResolverSource } from "../discovery/resolver.ts";
import type { PeerStatus } from "../session/manager.ts";
import type { TrustEntry } from "../services/trust_types.ts";

/**
 * Trusted bindings: key, address and hostname as they were when trust was
 * given; the endpoint a peer was last authenticated at comes as a separate
 * `remembered` candidate, weaker than a live session or a `--peer` entry.
 */
export function trustSource(list: () => readonly TrustEntry[]): ResolverSource {
  return {
    lookup: (query) =>
      list()
        .filter((e) => answers(query, { keyHex: e.public_key, ...e }))
        .flatMap((e) => {
          const publicKey = Uint8Array.fromHex(e.public_key);
          const c: PeerCandidate[] = [{ source: "trust", publicKey }];
          if (e.endpoint) {
            c.push({ source: "remembered", publicKey, endpoint: parseEndpoint(e.endpoint) });
          }
          return c;
        }),
  };
}

/** Live authenticated sessions, asked only by full key or address (never by hostname). */
export function sessionSource(peers: () => readonly PeerStatus[]): ResolverSource {
  return {
    lookup: (query) => {
      if (query.kind !== "key" && query.kind !== "address") return [];
      return peers()
        .filter((p) => answers(query, { ...p.identity, hostname: null }))
        .map((p) => ({
          source: "session",
          publicKey: p.identity.publicKey,
          ...(p.endpoint ? { endpoint: { host: p.endpoint.hostname, port: p.endpoint.port } } : {}),
        }));
    },
  };
}
