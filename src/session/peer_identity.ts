/**
 * Turns the identity payload a peer sent inside the Noise handshake into an
 * authenticated {@linkcode PeerIdentity}, enforcing the MUST rules: the key is
 * a valid Ed25519 key, the address stamp holds, and the identity signature
 * covers the static key Noise actually used.
 *
 * @module
 */
import { type Address, addressToBytes, verifyStamp } from "../identity/address.ts";
import { isValidPublicKey, verifyAsync } from "../identity/ed25519.ts";
import { fingerprint } from "../identity/fingerprint.ts";
import { selfDescriptionMessage } from "../identity/self_description.ts";
import { bindingMessage } from "../identity/static_key.ts";
import { binaryString, concat, constantTimeEqual, packBytes } from "../bytes.ts";
import { sha256 } from "./crypto.ts";
import { encodeHandshakePayload, type HandshakePayload } from "../wire/handshake_payload.ts";

/** Why a handshake was refused after its cryptography succeeded (each is also a drop reason). */
export type HandshakeFailureReason =
  | "bad_key"
  | "bad_stamp"
  | "bad_binding"
  | "bad_self"
  | "unexpected_key"
  | "unexpected_address"
  | "unexpected_hostname"
  | "self";

/** Why a handshake was refused after its cryptography succeeded. */
export class HandshakeFailure extends Error {
  /** Short machine-readable reason. */
  readonly reason: HandshakeFailureReason;
  /** Creates a failure with a reason code and a sentence-case message. */
  constructor(reason: HandshakeFailureReason, message: string) {
    super(message);
    this.name = "HandshakeFailure";
    this.reason = reason;
  }
}

/** A peer whose identity the handshake proved. All state is keyed by `keyHex`. */
export interface PeerIdentity {
  /** Ed25519 identity key. */
  publicKey: Uint8Array;
  /** Hex of the identity key: the key of every per-peer map. */
  keyHex: string;
  /** The address the peer claimed, with a valid stamp. */
  address: Address;
  /** The address as 6 raw bytes (inner packets carry these). */
  addressBytes: Uint8Array;
  /** Human fingerprint of the key. */
  fingerprint: string;
  /** Self-claimed hostname ("" when none). */
  hostname: string;
  /** Serial of the static key binding it used. */
  staticSerial: number;
  /** The static X25519 key Noise authenticated. */
  staticKey: Uint8Array;
}

/**
 * Payloads whose signatures verified (with the static key used), most
 * recent last, by the SHA-256 of every signed byte and that key as a
 * 32-character string: the payload's hex would take 0.5 KB of heap each.
 */
const verified = new Map<string, true>();
const VERIFIED_MAX = 4096;

/**
 * A received payload and the static key Noise authenticated with it,
 * hashed once (SHA-256 of every signed byte and that key) for the cache
 * of payloads that verified: a responder asks whether it is known before
 * it pays for the check, then checks it, with one hash for both.
 */
export class PayloadCheck {
  readonly payload: HandshakePayload;
  readonly remoteStatic: Uint8Array;
  readonly #cacheKey: string;

  private constructor(payload: HandshakePayload, remoteStatic: Uint8Array, cacheKey: string) {
    this.payload = payload;
    this.remoteStatic = remoteStatic;
    this.#cacheKey = cacheKey;
  }

  /** The check of `p` as it came with `remoteStatic`. */
  static async of(p: HandshakePayload, remoteStatic: Uint8Array): Promise<PayloadCheck> {
    const key = binaryString(await sha256(concat(encodeHandshakePayload(p), remoteStatic)));
    return new PayloadCheck(p, remoteStatic, key);
  }

  /**
   * Whether this exact payload with this static key verified before, so
   * that {@linkcode PayloadCheck.verify} costs no signature or key check.
   */
  get verifiedBefore(): boolean {
    return verified.has(this.#cacheKey);
  }

  /** Verifies the payload against the static key (see {@linkcode verifyPeerPayload}). */
  verify(): Promise<PeerIdentity> {
    return verifyChecked(this.payload, this.remoteStatic, this.#cacheKey);
  }
}

/** Verifies a handshake payload against the static key Noise authenticated. */
export async function verifyPeerPayload(
  p: HandshakePayload,
  remoteStatic: Uint8Array,
): Promise<PeerIdentity> {
  return await (await PayloadCheck.of(p, remoteStatic)).verify();
}

async function verifyChecked(
  p: HandshakePayload,
  remoteStatic: Uint8Array,
  cacheKey: string,
): Promise<PeerIdentity> {
  // A rekey or reconnect sends the very same signed payload: its signatures
  // were checked already. The cache key is a hash of every signed byte plus
  // the static key Noise used, so nothing unchecked can hit it.
  if (verified.has(cacheKey)) {
    verified.delete(cacheKey);
    verified.set(cacheKey, true);
    return identityOf(p, remoteStatic, verifyStamp(p.publicKey, p.stamp)!);
  }
  if (!isValidPublicKey(p.publicKey)) {
    throw new HandshakeFailure("bad_key", "Peer sent a weak or malformed identity key");
  }
  const address = verifyStamp(p.publicKey, p.stamp);
  if (address === null) {
    throw new HandshakeFailure("bad_stamp", "Peer's address stamp does not verify");
  }
  const binding = {
    staticKey: remoteStatic,
    serial: p.staticSerial,
    created: p.staticCreated,
    signature: p.bindingSignature,
  };
  // The signature must cover the key Noise used, not a key the payload names.
  if (!(await signed(p.bindingSignature, () => bindingMessage(binding), p.publicKey))) {
    throw new HandshakeFailure(
      "bad_binding",
      "Peer's identity signature does not cover the static key it used",
    );
  }
  const selfOk = await signed(p.selfSignature, () =>
    selfDescriptionMessage({
      publicKey: p.publicKey,
      stamp: p.stamp,
      hostname: p.hostname === "" ? null : p.hostname,
      time: p.selfTime,
    }), p.publicKey);
  if (!selfOk) {
    throw new HandshakeFailure("bad_self", "Peer's signed self-description does not verify");
  }
  verified.set(cacheKey, true);
  if (verified.size > VERIFIED_MAX) verified.delete(verified.keys().next().value!);
  return identityOf(p, remoteStatic, address);
}

function identityOf(p: HandshakePayload, remoteStatic: Uint8Array, address: Address): PeerIdentity {
  const keyHex = p.publicKey.toHex();
  // Copies in one buffer: a session keeps its peer's identity as long as it lives.
  const [publicKey, addressBytes, staticKey] = packBytes(
    p.publicKey,
    addressToBytes(address),
    remoteStatic,
  );
  return {
    publicKey,
    keyHex,
    address,
    addressBytes,
    fingerprint: fingerprint(p.publicKey),
    hostname: p.hostname,
    staticSerial: p.staticSerial,
    staticKey,
  };
}

/** Verifies `signature` over the message `build` makes; a message that cannot be built fails. */
async function signed(
  signature: Uint8Array,
  build: () => Uint8Array,
  publicKey: Uint8Array,
): Promise<boolean> {
  let message: Uint8Array;
  try {
    message = build();
  } catch {
    return false;
  }
  return await verifyAsync(signature, message, publicKey);
}

/** Whether two identities are the same key. */
export function sameKey(a: PeerIdentity, b: PeerIdentity): boolean {
  return constantTimeEqual(a.publicKey, b.publicKey);
}
