/**
 * Contract of `find` (issue 9): what this node and its rendezvous nodes know
 * about a hostname, address or key, without contacting the peer.
 *
 * @module
 */
import { arr, bool, int, nullable, obj, oneOf, str } from "../schema.ts";
import { timeoutField } from "./common.ts";
import { route } from "./spec.ts";

/** Default time `find` waits for the rendezvous nodes (ms). */
export const FIND_TIMEOUT_MS = 5_000;

const SOURCE = oneOf("trust", "static", "session", "lan", "rendezvous", "dht");

/** `GET /v1/find`: every candidate a name matches, local knowledge first, then the rendezvous. */
export const FIND = route({
  route: "GET /v1/find",
  input: {
    peer: {
      type: "string",
      required: true,
      description: "a hostname, address or full key (an endpoint is not a name to look up)",
    },
    timeout_ms: timeoutField(FIND_TIMEOUT_MS, "wait this long for the rendezvous nodes (ms)"),
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
  }),
});
