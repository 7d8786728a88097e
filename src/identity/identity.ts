/**
 * A node's identity: its Ed25519 key, address stamp, and the static X25519
 * tunnel key bound to it; and the identity file that stores them.
 *
 * Decoding checks everything a file claims, so a corrupt or tampered file is
 * refused with {@linkcode IdentityFileError} and never silently replaced.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { constantTimeEqual } from "../bytes.ts";
import { type Address, createStamp, STAMP_BYTES, verifyStamp } from "./address.ts";
import { generateSeed, publicKeyFromSeed, SEED_BYTES, SIGNATURE_BYTES } from "./ed25519.ts";
import { fingerprint } from "./fingerprint.ts";
import {
  signBinding,
  type StaticKeyBinding,
  verifyBinding,
  X25519_KEY_BYTES,
} from "./static_key.ts";

/** Version written into, and required from, identity files. */
export const IDENTITY_FILE_VERSION = 1;

/** A raw X25519 key pair (32 bytes each). */
export interface X25519KeyPair {
  /** Raw private scalar. */
  privateKey: Uint8Array;
  /** Raw public u-coordinate. */
  publicKey: Uint8Array;
}

/** Everything a node is: secret keys included, so handle with care. */
export interface Identity {
  /** 32-byte Ed25519 seed (the secret identity key). */
  seed: Uint8Array;
  /** 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  /** 8-byte stamp proving {@linkcode Identity.address} for the public key. */
  stamp: Uint8Array;
  /** The node's address. */
  address: Address;
  /** Human-comparable fingerprint of the public key. */
  fingerprint: string;
  /** The static X25519 tunnel key pair. */
  staticKey: X25519KeyPair;
  /** The identity key's signature over the static public key. */
  binding: StaticKeyBinding;
}

/** Options of {@linkcode createIdentity}. */
export interface CreateIdentityOptions {
  /** Progress of the stamp search, with the number of hashes tried. */
  onProgress?: (tried: number) => void;
  /** Makes the static X25519 key pair; defaults to node:crypto. */
  x25519Generate?: () => X25519KeyPair;
  /** Aborts the stamp search. */
  signal?: AbortSignal;
  /** Creation time in ms since the epoch; defaults to now. */
  now?: number;
}

/** An identity file that cannot be used; the message is one line saying what is wrong. */
export class IdentityFileError extends Error {
  /** Creates an identity file error. */
  constructor(message: string) {
    super(message);
    this.name = "IdentityFileError";
  }
}

/** Makes a new identity: fresh keys and a stamp search of a few seconds. */
export async function createIdentity(options: CreateIdentityOptions = {}): Promise<Identity> {
  // The static key first, so a bad generator fails before seconds of search.
  const staticKey = (options.x25519Generate ?? generateX25519KeyPair)();
  const derived = x25519PublicFromPrivate(staticKey.privateKey);
  if (derived === null || !constantTimeEqual(derived, staticKey.publicKey)) {
    throw new Error(
      "X25519 key generator returned a public key that does not match its private key",
    );
  }
  const seed = generateSeed();
  const publicKey = publicKeyFromSeed(seed);
  const { address, stamp } = await createStamp(publicKey, {
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const binding = signBinding(seed, {
    staticKey: staticKey.publicKey,
    serial: 0,
    created: options.now ?? Date.now(),
  });
  return {
    seed,
    publicKey,
    stamp,
    address,
    fingerprint: fingerprint(publicKey),
    staticKey,
    binding,
  };
}

/** Makes a raw X25519 key pair with node:crypto. */
export function generateX25519KeyPair(): X25519KeyPair {
  const { privateKey } = generateKeyPairSync("x25519");
  const jwk = privateKey.export({ format: "jwk" });
  if (typeof jwk.d !== "string" || typeof jwk.x !== "string") {
    throw new Error("node:crypto exported an X25519 key without raw components");
  }
  return {
    privateKey: Uint8Array.fromBase64(jwk.d, { alphabet: "base64url" }),
    publicKey: Uint8Array.fromBase64(jwk.x, { alphabet: "base64url" }),
  };
}

/** Serialises an identity as the JSON text of an identity file (version 1, hex fields). */
export function encodeIdentityFile(identity: Identity): string {
  const file = {
    version: IDENTITY_FILE_VERSION,
    address: identity.address,
    fingerprint: identity.fingerprint,
    public_key: identity.publicKey.toHex(),
    seed: identity.seed.toHex(),
    stamp: identity.stamp.toHex(),
    static_key: {
      private_key: identity.staticKey.privateKey.toHex(),
      public_key: identity.staticKey.publicKey.toHex(),
      serial: identity.binding.serial,
      created: identity.binding.created,
      signature: identity.binding.signature.toHex(),
    },
  };
  return JSON.stringify(file, null, 2) + "\n";
}

/**
 * Parses and fully checks an identity file: shape, no unknown keys, lengths,
 * public key from seed, stamp, address, fingerprint, binding signature and the
 * X25519 pair. Throws {@linkcode IdentityFileError} on the first problem.
 *
 * @example
 * ```ts ignore
 * import { decodeIdentityFile, IdentityFileError } from "./identity.ts";
 * try {
 *   const identity = decodeIdentityFile(await Deno.readTextFile(path));
 * } catch (error) {
 *   // Refuse to start; never overwrite the file.
 *   if (error instanceof IdentityFileError) console.error(`${path}: ${error.message}`);
 *   throw error;
 * }
 * ```
 */
export function decodeIdentityFile(text: string): Identity {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    const why = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new IdentityFileError(`Cannot read identity file: it is not valid JSON (${why})`);
  }
  const top = object(json, "the top level", [
    "version",
    "address",
    "fingerprint",
    "public_key",
    "seed",
    "stamp",
    "static_key",
  ]);
  if (top.version !== IDENTITY_FILE_VERSION) {
    throw fail(`"version" is ${show(top.version)}, expected ${IDENTITY_FILE_VERSION}`);
  }
  const seed = hex(top.seed, "seed", SEED_BYTES);
  const publicKey = hex(top.public_key, "public_key", 32);
  const stamp = hex(top.stamp, "stamp", STAMP_BYTES);
  const inner = object(top.static_key, '"static_key"', [
    "private_key",
    "public_key",
    "serial",
    "created",
    "signature",
  ]);
  const staticKey: X25519KeyPair = {
    privateKey: hex(inner.private_key, "static_key.private_key", X25519_KEY_BYTES),
    publicKey: hex(inner.public_key, "static_key.public_key", X25519_KEY_BYTES),
  };
  const binding: StaticKeyBinding = {
    staticKey: staticKey.publicKey,
    serial: integer(inner.serial, "static_key.serial", 0xffff_ffff),
    created: integer(inner.created, "static_key.created", Number.MAX_SAFE_INTEGER),
    signature: hex(inner.signature, "static_key.signature", SIGNATURE_BYTES),
  };

  if (!constantTimeEqual(publicKeyFromSeed(seed), publicKey)) {
    throw fail(`"public_key" is not the public key of "seed"`);
  }
  const address = verifyStamp(publicKey, stamp);
  if (address === null) {
    throw fail(`"stamp" does not prove an address for "public_key" (missing zero bits)`);
  }
  if (top.address !== address) {
    throw fail(`"address" is ${show(top.address)}, expected "${address}" from the stamp`);
  }
  const print = fingerprint(publicKey);
  if (top.fingerprint !== print) {
    throw fail(`"fingerprint" is ${show(top.fingerprint)}, expected "${print}"`);
  }
  const derived = x25519PublicFromPrivate(staticKey.privateKey);
  if (derived === null || !constantTimeEqual(derived, staticKey.publicKey)) {
    throw fail(`"static_key.public_key" is not the public key of "static_key.private_key"`);
  }
  if (!verifyBinding(publicKey, binding)) {
    throw fail(`"static_key.signature" is not the identity key's signature over the static key`);
  }
  return { seed, publicKey, stamp, address, fingerprint: print, staticKey, binding };
}

// RFC 8410 PKCS #8 wrapping of a raw X25519 private key: node:crypto imports
// this form from the private bytes alone, so the public key is recomputed
// rather than taken from the file.
const X25519_PKCS8_PREFIX = Uint8Array.fromHex("302e020100300506032b656e04220420");

function x25519PublicFromPrivate(privateKey: Uint8Array): Uint8Array | null {
  if (privateKey.length !== X25519_KEY_BYTES) return null;
  try {
    const der = Buffer.concat([X25519_PKCS8_PREFIX, privateKey]);
    const key = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
    const x = createPublicKey(key).export({ format: "jwk" }).x;
    return typeof x === "string" ? Uint8Array.fromBase64(x, { alphabet: "base64url" }) : null;
  } catch {
    return null;
  }
}

function fail(what: string): IdentityFileError {
  return new IdentityFileError(`Cannot use identity file: ${what}`);
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

function object(value: unknown, where: string, keys: string[]): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw fail(`${where} is ${show(value)}, expected an object`);
  }
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) throw fail(`unknown key ${show(key)} in ${where}`);
  }
  for (const key of keys) {
    if (!Object.hasOwn(value, key)) throw fail(`missing key "${key}" in ${where}`);
  }
  return value as Record<string, unknown>;
}

function hex(value: unknown, name: string, bytes: number): Uint8Array {
  if (typeof value !== "string" || value.length !== bytes * 2 || !/^[0-9a-f]*$/.test(value)) {
    throw fail(`"${name}" is ${show(value)}, expected ${bytes * 2} lowercase hex digits`);
  }
  return Uint8Array.fromHex(value);
}

function integer(value: unknown, name: string, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw fail(`"${name}" is ${show(value)}, expected an integer from 0 to ${max}`);
  }
  return value;
}
