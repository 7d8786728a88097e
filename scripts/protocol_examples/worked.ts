/**
 * The fixed inputs of the worked handshake (§6): which committed test
 * identities take part, their hostnames, indices, endpoints and the labels
 * their ephemeral keys come from. Every later example travels over it.
 *
 * @module
 */

import type { Endpoint } from "../../src/discovery/endpoint.ts";

/** The fixed inputs of the worked handshake; everything else follows from them. */
export const WORKED = {
  /** Index of the initiator's identity in `tests/fixtures/identities.json`. */
  initiatorFixture: 0,
  /** Index of the responder's identity in `tests/fixtures/identities.json`. */
  responderFixture: 1,
  initiatorHostname: "alpha",
  responderHostname: "beta",
  /** Self-description time of both nodes (Unix ms; informational). */
  selfTime: 1_796_000_000_000,
  initiatorIndex: 0x1111_1111,
  responderIndex: 0x2222_2222,
  initiatorEndpoint: { hostname: "198.18.0.1", port: 7440 } as Endpoint,
  responderEndpoint: { hostname: "198.18.0.2", port: 7440 } as Endpoint,
  /** Ephemeral private keys are SHA-256 of these labels. */
  initiatorEphemeralLabel: "pilot/example/ephemeral/initiator",
  responderEphemeralLabel: "pilot/example/ephemeral/responder",
  /** The example cookie secret is SHA-256 of this label. */
  cookieSecretLabel: "pilot/example/cookie-secret",
  /** Source port of the datagram to the echo port. */
  datagramSourcePort: 49_152,
  datagramPayload: "ping",
} as const;
