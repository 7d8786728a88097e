/**
 * Contract of the static peer routes: `peer list`, `peer add`, `peer
 * remove` (the `--peer NAME=ENDPOINT` table, changed while the daemon runs).
 *
 * @module
 */
import { arr, bool, nullable, obj, str } from "../schema.ts";
import { PEER_REF } from "./common.ts";
import type { FieldSpec } from "./spec.ts";
import { route } from "./spec.ts";

const NAME = {
  type: "string",
  required: true,
  description: "a hostname (1-63 of a-z, 0-9 and -) or an address",
} as const satisfies FieldSpec;

const SAVE = {
  type: "boolean",
  description: "also write the change to the home's config.json (other keys kept)",
  default: false,
} as const satisfies FieldSpec;

/** `GET /v1/peer/list`: the static peers. */
export const PEER_LIST = route({
  route: "GET /v1/peer/list",
  input: {},
  output: obj({
    peers: arr(obj({ name: str, endpoint: str, trusted: arr(PEER_REF) })),
  }),
});

/** `POST /v1/peer/add`: add or change a static peer. */
export const PEER_ADD = route({
  route: "POST /v1/peer/add",
  input: {
    name: NAME,
    endpoint: {
      type: "string",
      required: true,
      description: "IP:PORT, [IPv6]:PORT, HOST:PORT or udp://HOST:PORT (port 1-65535)",
    },
    save: SAVE,
  },
  output: obj({
    name: str,
    endpoint: str,
    changed: bool,
    saved: bool,
    trusted: arr(PEER_REF),
  }),
});

/** `POST /v1/peer/remove`: remove a static peer. */
export const PEER_REMOVE = route({
  route: "POST /v1/peer/remove",
  input: { name: NAME, save: SAVE },
  output: obj({
    name: str,
    endpoint: nullable(str),
    changed: bool,
    saved: bool,
    trusted: arr(PEER_REF),
  }),
});
