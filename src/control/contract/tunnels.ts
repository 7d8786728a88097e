/**
 * Contract of the tunnel routes: `expose` (a local TCP service on a virtual
 * port, for trusted peers), `forward` (a loopback TCP port carried to a
 * peer's exposed port), their removal, and the list `tunnels` (which `info`
 * shows too).
 *
 * @module
 */
import { arr, bool, int, nullable, obj, str } from "../schema.ts";
import { PEER_CALL_TIMEOUT_MS, PEER_FIELD } from "./common.ts";
import { type FieldSpec, route } from "./spec.ts";

/** The virtual port an exposure takes and a forward reaches when none is given. */
export const DEFAULT_TUNNEL_VPORT = 80;

const VPORT = {
  type: "integer",
  description: "virtual port of the exposure (not a built-in service's)",
  default: DEFAULT_TUNNEL_VPORT,
  min: 1,
  max: 65_535,
} as const satisfies FieldSpec;

const SAVE = {
  type: "boolean",
  description: "also write the change to the home's config.json (other keys kept)",
  default: false,
} as const satisfies FieldSpec;

/** Schema of one exposure. */
export const EXPOSURE = obj({
  vport: int,
  target: str,
  // Keys (64 hex) or fingerprints; empty: every trusted peer.
  allow: arr(str),
  saved: bool,
  // Tunnels open now; tunnels served since the exposure began; streams refused by
  // `allow` or the cap; streams reset because the service did not answer.
  active: int,
  served: int,
  refused: int,
  failed: int,
});

/** Schema of one forward. */
export const FORWARD_ENTRY = obj({
  local_port: int,
  listen: str,
  peer: str,
  vport: int,
  timeout_ms: int,
  saved: bool,
  // Connections open now; tunnels opened; connections answered with an error
  // (502) or closed; connections over the cap (503).
  active: int,
  served: int,
  failed: int,
  busy: int,
});

/** Schema of the tunnel list (`GET /v1/tunnels`, `tunnels` in `info`). */
export const TUNNEL_LIST = obj({ exposed: arr(EXPOSURE), forwarded: arr(FORWARD_ENTRY) });

/** `POST /v1/expose`: let trusted peers reach a local TCP service on a virtual port. */
export const EXPOSE = route({
  route: "POST /v1/expose",
  input: {
    target: {
      type: "string",
      required: true,
      description: "the TCP service: PORT (on 127.0.0.1), HOST:PORT or [IPv6]:PORT",
    },
    vport: VPORT,
    allow: {
      type: "strings",
      description: "only these trusted peers (full keys or fingerprints); else every trusted one",
    },
    save: SAVE,
  },
  output: obj({ exposure: EXPOSURE, changed: bool }),
});

/** `POST /v1/unexpose`: stop an exposure (its open tunnels are reset). */
export const UNEXPOSE = route({
  route: "POST /v1/unexpose",
  input: {
    vport: {
      type: "integer",
      required: true,
      description: "the exposure's virtual port",
      min: 1,
      max: 65_535,
    },
    save: SAVE,
  },
  output: obj({ vport: int, target: nullable(str), changed: bool, saved: bool }),
});

/** `POST /v1/forward`: listen on 127.0.0.1 and carry each connection to a peer's exposure. */
export const FORWARD = route({
  route: "POST /v1/forward",
  input: {
    local_port: {
      type: "integer",
      description: "TCP port on 127.0.0.1 (0: any free one)",
      default: 0,
      min: 0,
      max: 65_535,
    },
    peer: PEER_FIELD,
    vport: { ...VPORT, description: "the peer's exposed virtual port" },
    timeout_ms: {
      type: "integer",
      description: "give up opening each connection's tunnel after this long (ms)",
      default: PEER_CALL_TIMEOUT_MS,
      min: 1,
      max: 120_000,
    },
    save: SAVE,
  },
  output: obj({ forward: FORWARD_ENTRY, changed: bool }),
});

/** `POST /v1/unforward`: stop a forward (its open connections are closed). */
export const UNFORWARD = route({
  route: "POST /v1/unforward",
  input: {
    local_port: {
      type: "integer",
      required: true,
      description: "the forward's TCP port on 127.0.0.1",
      min: 1,
      max: 65_535,
    },
    save: SAVE,
  },
  output: obj({
    local_port: int,
    peer: nullable(str),
    vport: nullable(int),
    changed: bool,
    saved: bool,
  }),
});

/** `GET /v1/tunnels`: exposures and forwards. */
export const TUNNELS = route({
  route: "GET /v1/tunnels",
  input: {},
  output: TUNNEL_LIST,
});
