/**
 * How responses and events name a peer, and the error for an untrusted one.
 *
 * @module
 */
import { PilotError } from "../errors.ts";
import { fingerprint } from "../identity/fingerprint.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";

/** A peer as every response names it. */
export interface PeerRef {
  /** Canonical address. */
  address: string;
  /** Self-claimed hostname, or null. */
  hostname: string | null;
  /** Key fingerprint. */
  fingerprint: string;
  /** Full Ed25519 key, hex. */
  public_key: string;
}

/** Turns an authenticated identity into the reference responses carry. */
export function peerRef(p: PeerIdentity): PeerRef {
  return {
    address: p.address,
    hostname: p.hostname === "" ? null : p.hostname,
    fingerprint: p.fingerprint,
    public_key: p.keyHex,
  };
}

/** A reference from a stored record (its fingerprint recomputed from the key). */
export function refOf(
  r: { address: string; hostname: string | null; public_key: string },
): PeerRef {
  return {
    address: r.address,
    hostname: r.hostname,
    fingerprint: fingerprint(Uint8Array.fromHex(r.public_key)),
    public_key: r.public_key,
  };
}

/** The error for a peer that is not trusted (yet). */
export function notTrusted(text: string): PilotError {
  return new PilotError(
    "not_trusted",
    `"${text}" is not a trusted peer`,
    `run \`pilot handshake ${text}\` and wait for its approval`,
  );
}
