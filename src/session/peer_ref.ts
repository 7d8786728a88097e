/**
 * How responses, events and stored records name a peer: one shape for every layer.
 *
 * @module
 */
import { fingerprint } from "../identity/fingerprint.ts";
import type { PeerIdentity } from "./peer_identity.ts";

/** A peer as every response and event names it. */
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
