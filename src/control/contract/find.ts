/**
 * Contract of `find` (issue 9): what this node and its rendezvous nodes know
 * about a hostname, address or key, without contacting the peer.
 *
 * @module
 */
import { SOURCE_ORDER } from "../../discovery/resolver.ts";
import { arr, bool, int, nullable, obj, oneOf, str } from "../schema.ts";
import { timeoutField } from "./common.ts";
import { route } from "./spec.ts";

/** Default time `find` waits for the rendezvous nodes (ms). */
export const FIND_TIMEOUT_MS = 5_000;

const SOURCE = oneOf("trust", "static", "session", "lan", "rendezvous", "dht");
/** Every resolver source, strongest first. */
const RESOLVER_SOURCE = oneOf(...SOURCE_ORDER);

/**
 * `GET /v1/find`: every candidate a name matches, local knowledge first, then
 * the LAN, the rendezvous and the DHT; what each source said; and what the
 * resolver's merge rule decided.
 */
export const FIND = route({
  route: "GET /v1/find",
  input: {
    peer: {
      type: "string",
      required: true,
      description: "a hostname, address or full key (an endpoint is not a name to look up)",
    },
    timeout_ms: timeoutField(
      FIND_TIMEOUT_MS,
      "wait this long for the LAN, rendezvous and DHT (ms)",
    ),
  },
  output: obj({
    query: str,
    kind: oneOf("hostname", "address", "key"),
    candidates: arr(obj({
      // Null only for a `--peer` hostname entry whose key is not known here.
      address: nullable(str),
      hostname: nullable(str),
      fingerprint: nullable(str),
      public_key: nullable(str),
      visibility: oneOf("public", "private", "unknown"),
      trusted: bool,
      source: SOURCE,
      sources: arr(SOURCE),
      reachability: oneOf("session", "direct", "relay", "unknown"),
      endpoint: nullable(str),
    })),
    conflict: nullable(obj({ hostname: str, claimants: int })),
    rendezvous: obj({ asked: int, answered: int }),
    // Every source, strongest first, whether it answered, and what it said.
    sources: arr(obj({
      source: RESOLVER_SOURCE,
      status: oneOf("answered", "none", "failed", "skipped", "not_configured"),
      said: arr(obj({
        public_key: nullable(str),
        address: nullable(str),
        hostname: nullable(str),
        endpoint: nullable(str),
        relay: bool,
        visibility: nullable(oneOf("public", "private")),
        serial: nullable(int),
        unreachable: nullable(str),
      })),
      error: nullable(obj({ code: str, message: str })),
      servers: nullable(obj({ asked: int, answered: int })),
    })),
    // What a handshake by this name would aim at (the one merge rule).
    decision: obj({
      outcome: oneOf("found", "conflict", "not_found"),
      public_key: nullable(str),
      source: nullable(RESOLVER_SOURCE),
      endpoint: nullable(str),
      endpoint_source: nullable(RESOLVER_SOURCE),
      trusted: bool,
      key_changed: bool,
    }),
  }),
});
