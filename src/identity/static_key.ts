/**
 * The identity key's signature over the static X25519 tunnel key. Peers keep
 * the binding with the highest serial they have seen, so the tunnel key can
 * rotate while the identity key and address stay.
 *
 * Layout: `utf8(STATIC_KEY_LABEL) || x25519_pub (32) || serial (u32 BE) ||
 * created (u64 BE, ms since the epoch)`, signed with Ed25519.
 *
 * @module
 */

import { STATIC_KEY_LABEL } from "../constants.ts";
import { utf8, Writer } from "../bytes.ts";
import { sign, SIGNATURE_BYTES, verify } from "./ed25519.ts";

/** Length in bytes of an X25519 key. */
export const X25519_KEY_BYTES = 32;

/** The fields a binding signs. */
export interface UnsignedBinding {
  /** Raw 32-byte X25519 public key. */
  staticKey: Uint8Array;
  /** Rotation counter, 0 to 2^32-1; higher replaces lower. */
  serial: number;
  /** Creation time in ms since the epoch (informational). */
  created: number;
}

/** A static X25519 key with the identity key's signature over it. */
export interface StaticKeyBinding extends UnsignedBinding {
  /** 64-byte Ed25519 signature over {@linkcode bindingMessage}. */
  signature: Uint8Array;
}

const LABEL = utf8(STATIC_KEY_LABEL);

/** Returns the bytes the identity key signs; throws `TypeError` on out-of-range fields. */
export function bindingMessage(binding: UnsignedBinding): Uint8Array {
  const problem = fieldProblem(binding);
  if (problem !== undefined) throw new TypeError(problem);
  return new Writer(LABEL.length + X25519_KEY_BYTES + 12)
    .bytes(LABEL)
    .bytes(binding.staticKey)
    .u32(binding.serial)
    .u64(BigInt(binding.created))
    .finish();
}

/** Signs a binding of `binding.staticKey` with the identity key of `seed`. */
export function signBinding(seed: Uint8Array, binding: UnsignedBinding): StaticKeyBinding {
  const message = bindingMessage(binding);
  return {
    staticKey: binding.staticKey.slice(),
    serial: binding.serial,
    created: binding.created,
    signature: sign(seed, message),
  };
}

/** Returns true when `binding` is well-formed and signed by `identityKey`. */
export function verifyBinding(identityKey: Uint8Array, binding: StaticKeyBinding): boolean {
  if (fieldProblem(binding) !== undefined) return false;
  if (!(binding.signature instanceof Uint8Array)) return false;
  if (binding.signature.length !== SIGNATURE_BYTES) return false;
  return verify(binding.signature, bindingMessage(binding), identityKey);
}

function fieldProblem(b: UnsignedBinding): string | undefined {
  if (!(b.staticKey instanceof Uint8Array) || b.staticKey.length !== X25519_KEY_BYTES) {
    const got = b.staticKey instanceof Uint8Array ? `${b.staticKey.length} bytes` : "no bytes";
    return `Cannot bind a static key of ${got}: expected ${X25519_KEY_BYTES} bytes`;
  }
  if (!Number.isInteger(b.serial) || b.serial < 0 || b.serial > 0xffff_ffff) {
    return `Cannot bind with serial ${b.serial}: expected an integer from 0 to 4294967295`;
  }
  if (!Number.isSafeInteger(b.created) || b.created < 0) {
    return `Cannot bind with creation time ${b.created}: expected a non-negative integer of ms since the epoch`;
  }
  return undefined;
}
