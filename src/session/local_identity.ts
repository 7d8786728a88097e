/**
 * What a node shows of itself in its handshakes, built from its identity:
 * the signed self-description and the Noise payload of messages 2 and 3
 * (docs/PROTOCOL.md §3.5), plus the keys the session table needs.
 *
 * @module
 */
import { addressToBytes } from "../identity/address.ts";
import type { Identity } from "../identity/identity.ts";
import { signSelfDescription } from "../identity/self_description.ts";
import { encodeHandshakePayload } from "../wire/handshake_payload.ts";
import type { LocalNodeIdentity } from "./manager.ts";

/** The session table's view of `identity`, claiming `hostname` (null: none). */
export function localNodeIdentity(identity: Identity, hostname: string | null): LocalNodeIdentity {
  const self = signSelfDescription(identity.seed, { stamp: identity.stamp, hostname });
  return {
    staticKey: identity.staticKey,
    payload: encodeHandshakePayload({
      publicKey: identity.publicKey,
      stamp: identity.stamp,
      staticSerial: identity.binding.serial,
      staticCreated: identity.binding.created,
      bindingSignature: identity.binding.signature,
      hostname: hostname ?? "",
      selfTime: self.time,
      selfSignature: self.signature,
    }),
    publicKey: identity.publicKey,
    addressBytes: addressToBytes(identity.address),
  };
}
